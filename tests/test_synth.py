"""Tests of the synthetic machine-sound factory (tiny counts, 1 s clips)."""

import csv
import json
import re
from collections import Counter

import numpy as np
import pytest
import soundfile as sf

from asdflow import cli
from asdflow.data import synth
from asdflow.data.synth import Counts

TINY = Counts(train_source=3, train_target=2, test_per_quadrant=2, supplemental=2)
DCASE_NAME = re.compile(
    r"section_00_(source|target)_(train|test)_(normal|anomaly)_(\d{4})_(.+)\.wav"
)
REAL_DCASE_NAMES = {
    "ToyCar", "ToyTrain", "ToyConveyor", "ToyRCCar", "ToyPet", "ToyDrone", "ToyNscale", "ToyTank",
    "bearing", "fan", "gearbox", "pump", "slider", "valve", "Vacuum", "bandsaw", "grinder",
    "shaker", "HomeCamera", "AutoTrash", "Polisher", "ScrewFeeder", "BandSealer", "CoffeeGrinder",
}  # fmt: skip


def _generate(root, set_name, machine, workers=1, seed=0):
    return synth.generate_machine(root, set_name, machine, TINY, seed, 1.0, workers=workers)


def _tree_bytes(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _attribute_pairs(suffix):
    tokens = suffix.split("_")
    return dict(zip(tokens[::2], tokens[1::2], strict=True))


def test_default_catalog_and_sets():
    sets = synth.DEFAULT_SETS
    assert [len(sets[s]) for s in ("dev", "eval", "earlier")] == [5, 5, 3]
    names = [m for s in sets.values() for m in s]
    assert len(set(names)) == len(names)  # sets hold different machine types
    assert {n.lower() for n in names}.isdisjoint({n.lower() for n in REAL_DCASE_NAMES})
    hidden = {s: sum(synth.get_machine_type(m).attributes_hidden for m in sets[s]) for s in sets}
    assert hidden == {"dev": 2, "eval": 2, "earlier": 0}
    assert len({synth.get_machine_type(m).archetype for m in names}) >= 5
    for mt in synth.MACHINE_TYPES.values():
        assert 1 <= len(mt.attributes) <= 3
        assert len(mt.anomaly_kinds) >= 4
        # domain shift: some attribute's target values are all unseen in the source domain
        assert any(not set(a.source_values) & set(a.target_values) for a in mt.attributes.values())


def test_same_seed_same_bytes_whatever_the_worker_count(tmp_path):
    one = _generate(tmp_path / "a", "dev", "motor", workers=1)
    two = _generate(tmp_path / "b", "dev", "motor", workers=2)
    assert _tree_bytes(one) == _tree_bytes(two)
    other = _generate(tmp_path / "c", "dev", "motor", seed=1)
    assert _tree_bytes(one) != _tree_bytes(other)


def test_names_attributes_csv_and_domain_shift(tmp_path):
    mt = synth.get_machine_type("compressor")
    out = _generate(tmp_path, "dev", mt)
    train = sorted(p.name for p in (out / "train").glob("*.wav"))
    test = sorted(p.name for p in (out / "test").glob("*.wav"))
    assert len(train) == TINY.train_source + TINY.train_target
    assert len(test) == 4 * TINY.test_per_quadrant
    assert len(list((out / "supplemental").glob("*.wav"))) == TINY.supplemental
    shifted = [
        k for k, a in mt.attributes.items() if not set(a.source_values) & set(a.target_values)
    ]
    for name in train + test:
        m = DCASE_NAME.fullmatch(name)
        assert m, name
        domain, _, label, _, suffix = m.groups()
        pairs = _attribute_pairs(suffix)
        assert list(pairs) == list(mt.attributes)  # fixed key order
        for key, value in pairs.items():
            spec = mt.attributes[key]
            allowed = spec.source_values if domain == "source" else spec.target_values
            assert value in allowed
        for key in shifted:
            if domain == "target":
                assert pairs[key] not in mt.attributes[key].source_values
        assert label == "normal" or name in test
    labels = [DCASE_NAME.fullmatch(n).group(3) for n in test]
    assert labels.count("anomaly") == 2 * TINY.test_per_quadrant
    x, sr = sf.read(out / "train" / train[0])
    assert sr == 16000 and x.ndim == 1 and len(x) == 16000
    assert sf.info(out / "train" / train[0]).subtype == "PCM_16"
    with open(out / "attributes_00.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["file_name", "d1p", "d1v", "d2p", "d2v", "d3p", "d3v"]
    listed = {r[0] for r in rows[1:]}
    assert listed == {f"compressor/train/{n}" for n in train} | {
        f"compressor/test/{n}" for n in test
    }
    for r in rows[1:]:
        assert r[1::2] == list(mt.attributes)


def test_hidden_machine_names_and_truth_file(tmp_path):
    mt = synth.get_machine_type("conveyor")
    assert mt.attributes_hidden
    out = _generate(tmp_path, "dev", mt)
    names = {f"conveyor/{p.parent.name}/{p.name}" for p in out.glob("t*/*.wav")}
    assert len(names) == TINY.train_source + TINY.train_target + 4 * TINY.test_per_quadrant
    assert all(n.endswith("_noAttribute.wav") for n in names)
    assert all(DCASE_NAME.fullmatch(n.split("/")[-1]) for n in names)
    with open(out / "attributes_00.csv") as f:
        rows = list(csv.reader(f))
    assert {r[0] for r in rows[1:]} == names
    assert all(not any(r[1:]) for r in rows[1:])  # no attribute pairs, as DCASE
    truth_file = tmp_path / "ground_truth" / "dev" / "conveyor_hidden_attributes.csv"
    assert not list(out.rglob("*hidden*"))  # truth lives outside the machine folder
    with open(truth_file) as f:
        truth = list(csv.DictReader(f))
    assert {r["file_name"] for r in truth} == names
    for r in truth:
        assert r["machine_type"] == "conveyor"
        attrs = json.loads(r["attributes"])
        assert r["attributes"] == json.dumps(attrs, sort_keys=True)
        assert set(attrs) == set(mt.attributes)
        domain = DCASE_NAME.fullmatch(r["file_name"].split("/")[-1]).group(1)
        for key, value in attrs.items():
            spec = mt.attributes[key]
            assert value in (spec.source_values if domain == "source" else spec.target_values)


def test_eval_names_and_ground_truth_block(tmp_path):
    for machine in ("press", "shuttle"):  # one visible, one hidden
        out = _generate(tmp_path, "eval", machine)
        test = sorted(p.name for p in (out / "test").glob("*.wav"))
        assert test == [f"section_00_{i:04d}.wav" for i in range(4 * TINY.test_per_quadrant)]
        lines = (tmp_path / "ground_truth" / "eval" / f"{machine}_eval_data_list.csv").read_text()
        header, *rows = lines.splitlines()
        assert header == machine
        mapping = dict(r.split(",") for r in rows)
        assert sorted(mapping) == test
        parsed = [DCASE_NAME.fullmatch(v) for v in mapping.values()]
        assert all(parsed)
        quadrants = Counter((m.group(1), m.group(3)) for m in parsed)
        assert len(quadrants) == 4 and set(quadrants.values()) == {TINY.test_per_quadrant}
        assert all(m.group(2) == "test" for m in parsed)
        with open(out / "attributes_00.csv") as f:
            listed = [r[0] for r in list(csv.reader(f))[1:]]
        assert all("/train/" in n for n in listed)  # eval test clips carry no labels
    relabeled = list(mapping.values())
    assert all(v.endswith("_noAttribute.wav") for v in relabeled)  # shuttle is hidden
    truth = (tmp_path / "ground_truth" / "eval" / "shuttle_hidden_attributes.csv").read_text()
    for name in test:
        assert f"shuttle/test/{name}" in truth


@pytest.mark.parametrize(
    "machine", ["motor", "blower", "compressor", "conveyor", "solenoid", "winch"]
)
def test_anomalies_differ_from_normals(machine):
    mt = synth.get_machine_type(machine)
    attrs = mt.combos("source")[0]

    def render(kind, severity=1.0):
        rng, arng = np.random.default_rng(5), np.random.default_rng(6)
        return synth.render_clip(mt, attrs, rng, arng, kind, severity, clip_seconds=1.0)

    normal = render(None)
    assert np.isfinite(normal).all() and np.abs(normal).max() <= 1.0
    for kind in mt.anomaly_kinds:
        assert np.array_equal(render(kind, severity=0.0), normal)  # the anomaly is all the change
        diff = np.sqrt(np.mean((render(kind) - normal) ** 2) / np.mean(normal**2))
        assert diff > 0.05, (machine, kind, diff)


def test_interrupted_generation_never_looks_complete(tmp_path, monkeypatch):
    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(synth.writer, "_run_all", crash)
    with pytest.raises(KeyboardInterrupt):
        _generate(tmp_path, "dev", "motor")
    assert (tmp_path / "dev" / "motor.tmp").is_dir()
    assert not (tmp_path / "dev" / "motor").exists()
    monkeypatch.undo()
    out = _generate(tmp_path, "dev", "motor")  # a leftover .tmp is replaced, not reused
    assert out == tmp_path / "dev" / "motor" and out.is_dir()
    assert not (tmp_path / "dev" / "motor.tmp").exists()
    assert (out / "attributes_00.csv").is_file()


def test_unknown_machine_type_lists_known_names(tmp_path):
    with pytest.raises(ValueError, match="known: .*motor"):
        synth.get_machine_type("nosuchmachine")
    with pytest.raises(ValueError, match="Unknown machine type"):
        _generate(tmp_path, "dev", "nosuchmachine")


def test_machine_type_from_dict():
    d = {
        "archetype": "gearbox",
        "attributes": {"spd": {"source": [600, 700], "target": [800]}, "bkg": {
            "source": ["pink"], "target": ["pink"]}},
        "attributes_hidden": True,
    }  # fmt: skip
    mt = synth.machine_type_from_dict("hoist", d)
    assert mt.attributes["spd"].source_values == ("600", "700") and mt.attributes_hidden
    x = synth.render_clip(mt, mt.combos("target")[0], np.random.default_rng(0), clip_seconds=0.5)
    assert x.shape == (8000,)
    with pytest.raises(ValueError, match="unknown keys"):
        synth.machine_type_from_dict("hoist", {**d, "colour": "red"})
    no_shift = {"archetype": "fan", "attributes": {"spd": {"source": [1], "target": [1]}}}
    with pytest.raises(ValueError, match="unseen"):
        synth.machine_type_from_dict("hoist", no_shift)
    with pytest.raises(ValueError, match="archetype"):
        synth.machine_type_from_dict("hoist", {**d, "archetype": "teleporter"})
    bad_value = {"archetype": "fan", "attributes": {"bkg": {"source": ["a_b"], "target": ["c"]}}}
    with pytest.raises(ValueError, match="without '_'"):
        synth.machine_type_from_dict("hoist", bad_value)


def test_general_corpus(tmp_path):
    out = synth.generate_general(tmp_path, 9, seed=0, clip_seconds=0.5)
    names = sorted(p.name for p in out.glob("*.wav"))
    assert len(names) == 9
    assert all(re.fullmatch(r"[a-z]+_\d{4}\.wav", n) for n in names)
    assert {n.rsplit("_", 1)[0] for n in names} == set(synth.GENERAL_KINDS)
    assert not (tmp_path / "general.tmp").exists()
    x, sr = sf.read(out / names[0])
    assert sr == 16000 and len(x) == 8000 and np.abs(x).max() > 0


def test_cli(tmp_path, capsys):
    custom = {"archetype": "valve", "attributes": {"spd": {"source": [60], "target": [90]}}}
    counts = {"train_source": 2, "train_target": 1, "test_per_quadrant": 1, "supplemental": 0}
    settings = json.dumps({"clip_seconds": 0.5, "counts": counts, "general_clips": 3})
    args = ["synth", "--root", str(tmp_path), "--set", "earlier", "--machine-type", "sprayer",
            "--machine-json", json.dumps(custom), "--settings", settings]  # fmt: skip
    assert cli.main(args) == 0
    out = tmp_path / "earlier" / "sprayer"
    assert len(list(out.glob("*/*.wav"))) == 7
    assert str(out) in capsys.readouterr().out
    assert cli.main(["synth", "--root", str(tmp_path), "--general", "--settings", settings]) == 0
    assert len(list((tmp_path / "general").glob("*.wav"))) == 3


def test_cli_names_a_bad_machine_definition(tmp_path, capsys):
    args = ["synth", "--root", str(tmp_path), "--machine-type", "x", "--machine-json", "{archetype"]
    assert cli.main(args) == 1
    assert "--machine-json: not a JSON object" in capsys.readouterr().err
