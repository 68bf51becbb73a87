"""One way for settings to reach a stage: config section -> JSON object -> the stage's dataclass.

Defaults live in config/schema.yaml (it fills them into the configuration); the dataclasses carry
the same defaults for use from Python. These tests hold the two together, check that every
settings object the workflow builds is accepted by its stage, and that bad settings are errors
naming the key.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest
import yaml

from asdflow import baseline_ae, features, finetune, knn, pretrain, pseudolabel, settings
from asdflow import workflow as plan
from asdflow.data import download, synth

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((ROOT / "config" / "schema.yaml").read_text())

# (schema section, keys of it that reach the stage, the stage's dataclass)
SECTIONS = [
    (("features",), {"sample_rate", "n_frames", "channel"}, features.FbankSettings),
    (("features",), {"normalization", "fixed_mean", "fixed_std"}, features.NormSettings),
    (("pretrain", "common"), None, pretrain.PretrainSettings),
    (("finetune", "common"), None, finetune.FinetuneSettings),
    (("pseudolabels", "clustering"), None, pseudolabel.ClusterSettings),
    (("scoring",), None, knn.KnnSettings),
    (("baseline_ae",), None, baseline_ae.AESettings),
    (
        ("dcase",),
        {"base_url", "max_unpacked_gb", "max_compression_ratio"},
        download.DownloadSettings,
    ),
    (("synthetic",), {"seed", "clip_seconds", "severity", "counts"}, synth.SynthSettings),
]


def schema_section(path: tuple[str, ...]) -> dict:
    node = SCHEMA
    for key in path:
        node = node["properties"][key]
    return node


def normalise(value):
    return list(value) if isinstance(value, tuple) else value


@pytest.mark.parametrize("path, keys, cls", SECTIONS, ids=lambda v: getattr(v, "__name__", None))
def test_schema_and_dataclass_defaults_agree(path, keys, cls) -> None:
    section = schema_section(path)
    properties = section["properties"]
    keys = set(properties) if keys is None else keys
    accepted = settings.field_names(cls)
    assert keys <= accepted, f"{cls.__name__} does not accept {sorted(keys - accepted)}"
    own = settings.defaults(cls)
    required = set(section.get("required", []))
    for key in keys:
        if key in required:
            continue
        assert "default" in properties[key], f"{'.'.join(path)}.{key}: optional without default"
        if key in own:
            schema_default = properties[key]["default"]
            assert normalise(own[key]) == schema_default, f"{'.'.join(path)}.{key}"


def test_ward_clustering_defaults_are_the_settings_defaults() -> None:
    signature = inspect.signature(pseudolabel.WardClustering)
    ward = {name: p.default for name, p in signature.parameters.items()}
    assert ward == settings.defaults(pseudolabel.ClusterSettings)


CONFIGS = [
    ["config/config.yaml"],
    ["config/config.yaml", "config/quality.yaml"],
    ["config/config.yaml", "config/dcase2025.yaml"],
]


@pytest.mark.parametrize("files", CONFIGS, ids=lambda f: f[-1])
def test_every_settings_object_of_the_workflow_parses(files) -> None:
    config = plan.load_config([ROOT / f for f in files])
    objects = [
        (features.FbankSettings, plan.fbank_settings(config)),
        (features.NormSettings, plan.norm_settings(config)),
        (pseudolabel.ClusterSettings, plan.cluster_settings(config)),
        (knn.KnnSettings, plan.scoring_settings(config)),
        (baseline_ae.AESettings, plan.baseline_ae_settings(config)),
        (download.DownloadSettings, plan.download_settings(config)),
        (synth.SynthSettings, plan.synth_settings(config)),
        (synth.SynthSettings, plan.synth_settings(config, general=True)),
        (finetune.FinetuneSettings, plan.finetune_settings(config, 2)),
        *[
            (pretrain.PretrainSettings, plan.pretrain_settings(config, run))
            for run in plan.pretrained_encoders(config)
        ],
    ]
    for cls, values in objects:
        parsed = settings.parse(cls, settings.to_json(values))
        assert isinstance(parsed, cls)
    assert settings.parse(finetune.FinetuneSettings, "{}") == finetune.FinetuneSettings()


def test_parse_rejects_unknown_and_mistyped_keys(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown KnnSettings setting\(s\) \['kk'\]"):
        settings.parse(knn.KnnSettings, '{"kk": 3}')
    with pytest.raises(ValueError, match="k: '3' is not a int"):
        settings.parse(knn.KnnSettings, '{"k": "3"}')
    with pytest.raises(ValueError, match="center: 1 is not a bool"):
        settings.parse(knn.KnnSettings, '{"center": 1}')
    with pytest.raises(ValueError, match="not a JSON object"):
        settings.parse(knn.KnnSettings, '{"k": 3')
    with pytest.raises(ValueError, match=r"FinetuneSettings needs setting\(s\)|LoopSettings needs"):
        settings.parse(finetune.FinetuneSettings, '{"steps": 3}')


def test_parse_reads_a_settings_file_and_flattens_the_loop(tmp_path: Path) -> None:
    path = tmp_path / "ft.yaml"
    path.write_text("steps: 7\nbatch_size: 4\nlr: 1.0e-3\nwarmup_steps: 1\nbetas: [0.8, 0.9]\n")
    parsed = settings.parse(finetune.FinetuneSettings, str(path))
    assert parsed.loop.steps == 7 and parsed.loop.betas == (0.8, 0.9)
    assert parsed.pooling == finetune.FinetuneSettings().pooling
    with pytest.raises(FileNotFoundError, match="neither a JSON object nor a file"):
        settings.parse(finetune.FinetuneSettings, str(tmp_path / "missing.yaml"))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"steps": 7, "poolin": "mean"}))
    with pytest.raises(
        ValueError, match=rf"{bad}: unknown FinetuneSettings setting\(s\) \['poolin'\]"
    ):
        settings.parse(finetune.FinetuneSettings, str(bad))
