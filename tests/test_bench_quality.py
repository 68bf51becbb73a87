"""The diagnosis measures of `asdflow bench quality` on small made-up embeddings."""

import numpy as np
import pandas as pd
import pytest
from conftest import REPO

from asdflow.bench import quality as bench_quality
from asdflow.data import synth


def test_shared_direction_ratio():
    rng = np.random.default_rng(0)
    spread = rng.normal(size=(200, 16))
    assert bench_quality.shared_direction_ratio(spread) < 0.2
    assert bench_quality.shared_direction_ratio(spread + 100.0) > 0.99
    assert bench_quality.shared_direction_ratio(np.ones((5, 3))) == pytest.approx(1.0)


def test_nearest_neighbour_accuracy_centres_away_a_shared_direction():
    rng = np.random.default_rng(1)
    labels = np.repeat([0, 1, 2], 20)
    centres = 5 * rng.normal(size=(3, 8))
    emb = centres[labels] + rng.normal(size=(60, 8))
    assert bench_quality.nearest_neighbour_accuracy(emb, labels) > 0.95
    # Labels that no neighbour predicts: chance level.
    assert bench_quality.nearest_neighbour_accuracy(emb, rng.permutation(labels)) < 0.6
    # A huge shared offset in float32: centring keeps the classes apart.
    shifted = (emb + 1e5).astype(np.float32)
    assert bench_quality.nearest_neighbour_accuracy(shifted, labels) > 0.9


def test_kind_aucs_split_the_anomalies_by_kind_and_domain():
    test = pd.DataFrame(
        {
            "file": [f"x/c{i}.wav" for i in range(8)],
            "domain": ["source"] * 4 + ["target"] * 4,
            "label": ["normal", "normal", "anomaly", "anomaly"] * 2,
        }
    )
    kinds = {"c2.wav": "rattle", "c3.wav": "leak", "c6.wav": "rattle", "c7.wav": "leak"}
    # source: rattle caught, leak missed; target: both caught
    scores = np.array([0.1, 0.2, 0.9, 0.0, 0.1, 0.2, 0.9, 0.8])
    got = {(r["domain"], r["kind"]): r["auc"] for r in bench_quality.kind_aucs(test, scores, kinds)}
    assert got == {
        ("source", "leak"): 0.0,
        ("source", "rattle"): 1.0,
        ("target", "leak"): 1.0,
        ("target", "rattle"): 1.0,
    }


def test_anomaly_kinds_follow_the_factory_plan():
    counts = synth.Counts(train_source=4, train_target=2, test_per_quadrant=4, supplemental=2)
    mt = synth.get_machine_type("motor")
    kinds = bench_quality.anomaly_kinds(mt.name, "dev", counts, seed=0)
    assert len(kinds) == 16
    anomalous = [k for name, k in kinds.items() if "anomaly" in name]
    assert len(anomalous) == 8 and set(anomalous) <= set(mt.anomaly_kinds)
    assert all(k is None for name, k in kinds.items() if "normal" in name)


def test_sweep_varies_one_factor_at_a_time():
    common = {"steps": 100, "lr": 5e-4, "pooling": "freq"}
    variants = bench_quality.sweep_variants(
        common, {"steps": [100, 300], "lr": [], "pooling": ["mean", "freq"]}
    )
    assert variants == {
        "config": common,
        "steps=300": {**common, "steps": 300},
        "pooling=mean": {**common, "pooling": "mean"},
    }


def test_sweep_of_an_unknown_run_names_the_config_and_the_run(tmp_path):
    config = tmp_path / "my.yaml"
    config.write_text("finetune:\n  seeds: [0]\n")
    paths = [REPO / "config" / "config.yaml", config]
    with pytest.raises(ValueError, match=r"my.yaml: no run 'nope' under finetune.runs; known: na"):
        bench_quality.finetune_sweep(paths, tmp_path, "nope", {}, tmp_path / "out")
