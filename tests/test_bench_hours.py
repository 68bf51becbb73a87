"""`asdflow bench hours`: the configuration merge (asdflow.workflow), the stage arithmetic and a
tiny timed run."""

import json

import pytest
import yaml
from conftest import REPO

from asdflow import models
from asdflow import workflow as plan
from asdflow.bench import hours as bench_hours


def test_merged_config_updates_nested_keys_like_snakemake(tmp_path):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(yaml.safe_dump({"x": {"p": 1, "q": 2}, "y": [1, 2]}))
    b.write_text(yaml.safe_dump({"x": {"q": 3}, "y": [5]}))
    assert plan.merge_config_files([a, b]) == {"x": {"p": 1, "q": 3}, "y": [5]}


def test_merged_config_names_a_file_that_is_not_a_mapping(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ValueError, match="bad.yaml"):
        plan.merge_config_files([bad])


def test_merged_config_names_a_file_that_is_not_yaml(tmp_path):
    bad = tmp_path / "broken.yaml"
    bad.write_text("pretrain: {model: [eat_base\n")
    with pytest.raises(ValueError, match="broken.yaml: not valid YAML"):
        plan.merge_config_files([bad])


def test_stage_hours_multiplies_steps_runs_seeds_and_clips(monkeypatch):
    monkeypatch.chdir(REPO)
    config = plan.load_config(["config/config.yaml", "config/dcase2025.yaml"])
    table = bench_hours.stage_hours(config, 0.5, 0.1, 1000.0, 15000, 3000).set_index("stage")
    hours = table["hours"]
    assert hours["pretrain general (imported)"] == 0
    assert hours["pretrain dap"] == pytest.approx(40000 * 0.5 / 3600)
    assert hours["pretrain dap_full"] == pytest.approx(80000 * 0.5 / 3600)
    runs, seeds = len(config["finetune"]["runs"]), len(config["finetune"]["seeds"])
    assert hours[f"finetune ({runs} runs x {seeds} seeds)"] == pytest.approx(
        runs * seeds * 20000 * 0.1 / 3600
    )
    assert hours[f"score ({runs * seeds} models, train + test clips)"] == pytest.approx(
        runs * seeds * 18000 / 1000 / 3600
    )
    # general, ft, dap, dap_full: the pseudo-label table's encoders and the runs' label sources
    assert hours["embed training clips (4 encoders)"] == pytest.approx(4 * 15000 / 1000 / 3600)


def test_stage_hours_follows_the_configured_encoders_and_runs(monkeypatch):
    monkeypatch.chdir(REPO)
    config = plan.load_config(["config/config.yaml"])
    config["pseudolabels"]["encoders"] = ["general"]
    config["finetune"]["runs"] = {"na": {"init": "general", "labels": "none"}}
    stages = bench_hours.stage_hours(config, 0.5, 0.1, 1000.0, 100, 10)["stage"].tolist()
    assert stages == [
        "pretrain general",
        "finetune (1 runs x 3 seeds)",
        "embed training clips (1 encoders)",
        "score (3 models, train + test clips)",
    ]


def test_count_flops_counts_forward_and_backward_matrix_products():
    import torch

    layer = torch.nn.Linear(64, 32, bias=False)
    x = torch.randn(8, 64)

    def step(i):
        layer(x).sum().backward()

    # forward 2*B*in*out; backward: the weight gradient only (x needs none), the same again
    assert bench_hours.count_flops(step, 0) == 2 * (2 * 8 * 64 * 32)


def test_a_tiny_timed_run_writes_its_figures(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    out = tmp_path / "hours.json"
    table = bench_hours.bench_hours(
        [], model="eat_tiny", n_frames=32, warmup=1, repeats=1, classes=4, out=out
    )
    figures = json.loads(out.read_text())
    assert figures["model"] == "eat_tiny" and figures["pretrain_seconds_per_step"] > 0
    assert figures["pretrain_TFLOP_per_step"] > figures["finetune_TFLOP_per_step"] > 0
    assert len(figures["stages"]) == len(table) and (table["hours"] > 0).any()
    assert "total:" in capsys.readouterr().out


def test_outside_the_workflow_folder_is_an_error_naming_the_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="config/config.yaml"):
        bench_hours.bench_hours([], model="eat_tiny")


def test_precision_times_fp32_and_bf16_side_by_side(monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    table = bench_hours.bench_precision(
        [], models_=("eat_tiny",), threads=(1,), warmup=0, repeats=1
    )
    assert table[["model", "stage"]].values.tolist() == [
        ["eat_tiny", "pretrain"],
        ["eat_tiny", "finetune"],
        ["eat_tiny", "embed (64 clips)"],
    ]
    assert (table[["fp32_s_per_step", "bf16_s_per_step"]] > 0).all().all()
    ratio = table["fp32_s_per_step"] / table["bf16_s_per_step"]
    assert ratio.tolist() == table["bf16_speedup"].tolist()
    # the training rows also time plain bf16 (bf16 attention and patch-embedding gradients)
    plain = table.set_index("stage")["plain_bf16_s_per_step"]
    assert plain[["pretrain", "finetune"]].gt(0).all() and plain.isna()["embed (64 clips)"]
    assert models.FLOAT32_CPU_BACKWARD  # switched back on after the plain timing
    assert "bf16_speedup" in capsys.readouterr().out
