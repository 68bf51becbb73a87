"""Tests for asdflow.metrics: published known answers, a direct re-implementation, file formats."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from asdflow import metrics
from asdflow.metrics import (
    arithmetic_score,
    evaluate,
    gamma_threshold,
    machine_metrics,
    official_score,
    read_submission,
    score_table,
    write_submission,
)

# --------------------------------------------------------------------------- known answers

# Published per-machine results of the DCASE 2025 eval-set baselines (dcase2025_task2_evaluator
# README): order AutoTrash, HomeCamera, ToyPet, ToyRCCar, BandSealer, CoffeeGrinder, Polisher,
# ScrewFeeder. With 100 normals and 100 anomalies per machine the standardised pAUC is
# 0.5 + (k - 50) / 1900 for integer k, i.e. a multiple of 1/1900: these fractions are the exact
# values behind the evaluator's printed floats. (The 4-decimal pAUCs the README quotes are
# rounded and give Omega 0.54428487 instead.)
KNOWN_2025 = {
    "MSE": {
        "auc_source": [0.8102, 0.8140, 0.6770, 0.5284, 0.7198, 0.7304, 0.6686, 0.6486],
        "auc_target": [0.3436, 0.4976, 0.3670, 0.6272, 0.3956, 0.4436, 0.4430, 0.6592],
        "pauc": [k / 1900 for k in (1030, 1004, 1045, 1055, 989, 1015, 994, 1180)],
        "official": 0.5442827820713174,
        "amean": 0.5728557017543859,
    },
    "MAHALA": {
        "auc_source": [0.7726, 0.8616, 0.6982, 0.5586, 0.7638, 0.7498, 0.7042, 0.7290],
        "auc_target": [0.5260, 0.4264, 0.5090, 0.5548, 0.3268, 0.4042, 0.5278, 0.7904],
        "pauc": [k / 1900 for k in (1029, 985, 1080, 1026, 933, 977, 1022, 1331)],
        "official": 0.5650558189601554,
        "amean": 0.596471052631579,
    },
}
MACHINES_2025 = [
    "AutoTrash", "HomeCamera", "ToyPet", "ToyRCCar",
    "BandSealer", "CoffeeGrinder", "Polisher", "ScrewFeeder",
]  # fmt: skip

# 2024 eval-set baselines, printed floats copied as published (dcase2024_task2_evaluator README).
KNOWN_2024 = {
    "MSE": (
        [0.7912, 0.65, 0.6916, 0.7658, 0.8601999999999999, 0.6224000000000001,
         0.7504000000000001, 0.6596, 0.7070000000000001],
        [0.47959999999999997, 0.4824, 0.5374000000000001, 0.5266000000000001,
         0.43879999999999997, 0.4598, 0.6948, 0.4152, 0.6352],
        [0.4942105263157895, 0.5547368421052632, 0.5010526315789474, 0.5, 0.5021052631578947,
         0.5163157894736842, 0.5273684210526316, 0.511578947368421, 0.5557894736842105],
        0.5650830191796572,
    ),
    "MAHALA": (
        [0.7544, 0.6609999999999999, 0.5684, 0.6794, 0.8387999999999999, 0.606, 0.6556, 0.5834,
         0.8032],
        [0.42399999999999993, 0.555, 0.5549999999999999, 0.4464, 0.46399999999999997, 0.5898,
         0.579, 0.42499999999999993, 0.7338],
        [0.508421052631579, 0.6078947368421053, 0.4926315789473684, 0.4921052631578947,
         0.5800000000000001, 0.5510526315789473, 0.48368421052631577, 0.5178947368421053,
         0.5905263157894737],
        0.5648933421610234,
    ),
}  # fmt: skip


def _known_table(system: str) -> pd.DataFrame:
    known = KNOWN_2025[system]
    return pd.DataFrame(
        {"machine_type": MACHINES_2025, **{c: known[c] for c in metrics.METRIC_COLUMNS}}
    )


@pytest.mark.parametrize("system", sorted(KNOWN_2025))
def test_known_answers_2025(system: str) -> None:
    known = KNOWN_2025[system]
    values = known["auc_source"] + known["auc_target"] + known["pauc"]
    assert official_score(values) == pytest.approx(known["official"], abs=1e-12, rel=0)
    assert arithmetic_score(values) == pytest.approx(known["amean"], abs=1e-12, rel=0)
    table = score_table(_known_table(system))
    assert table["official"] == pytest.approx(known["official"], abs=1e-12, rel=0)
    assert table["amean"] == pytest.approx(known["amean"], abs=1e-12, rel=0)
    assert table["n_machines"] == 8


@pytest.mark.parametrize("system", sorted(KNOWN_2024))
def test_known_answers_2024(system: str) -> None:
    auc_s, auc_t, pauc, omega = KNOWN_2024[system]
    assert official_score(auc_s + auc_t + pauc) == pytest.approx(omega, abs=1e-12, rel=0)


def test_score_table_subset_and_errors() -> None:
    table = _known_table("MSE")
    subset = ["ToyPet", "Polisher"]
    rows = table[table["machine_type"].isin(subset)]
    expected = scipy.stats.hmean(rows[list(metrics.METRIC_COLUMNS)].to_numpy().ravel())
    result = score_table(table, machine_types=subset)
    assert result["official"] == pytest.approx(expected, abs=1e-15)
    assert result["n_machines"] == 2
    with pytest.raises(ValueError, match="not in the table: fan"):
        score_table(table, machine_types=["fan"])
    with pytest.raises(ValueError, match="lacks column"):
        score_table(table.drop(columns="pauc"))
    with pytest.raises(ValueError, match="listed twice: ToyPet"):
        score_table(pd.concat([table, table[table["machine_type"] == "ToyPet"]]))


def test_official_score_clips_at_epsilon() -> None:
    eps = np.finfo(np.float64).eps
    assert official_score([0.0, 0.5]) == pytest.approx(scipy.stats.hmean([eps, 0.5]))
    assert arithmetic_score([0.0, 0.5]) == 0.25
    with pytest.raises(ValueError, match="NaN"):
        official_score([0.5, float("nan")])
    with pytest.raises(ValueError, match="no values"):
        official_score([])


# --------------------------------------------------------------------------- differential tests


def direct_auc(neg: np.ndarray, pos: np.ndarray) -> float:
    """Mann-Whitney: fraction of (anomaly, normal) pairs ordered correctly, ties count 1/2."""
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(wins) / (len(pos) * len(neg))


def direct_pauc(neg: np.ndarray, pos: np.ndarray, max_fpr: float = 0.1) -> float:
    """ROC by hand, trapezoid area up to max_fpr, McClish standardisation."""
    points = [(0.0, 0.0)]
    for t in sorted(set(neg.tolist()) | set(pos.tolist()), reverse=True):
        points.append(((neg >= t).sum() / len(neg), (pos >= t).sum() / len(pos)))
    area = 0.0
    for (x0, y0), (x1, y1) in zip(points[:-1], points[1:], strict=True):
        if x0 >= max_fpr:
            break
        if x1 <= max_fpr:
            area += (x1 - x0) * (y0 + y1) / 2
        else:  # the segment crosses max_fpr: interpolate linearly there
            y_cut = y0 + (y1 - y0) * (max_fpr - x0) / (x1 - x0)
            area += (max_fpr - x0) * (y0 + y_cut) / 2
            break
    lo, hi = 0.5 * max_fpr**2, max_fpr
    return 0.5 * (1 + (area - lo) / (hi - lo))


def random_problem(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n_source, n_target = rng.integers(1, 40, size=2)
    n_anomaly = rng.integers(1, 60)
    anomaly_domains = rng.choice(["source", "target"], size=n_anomaly).tolist()
    domain = np.array(["source"] * n_source + ["target"] * n_target + anomaly_domains)
    label = np.r_[np.zeros(n_source + n_target, int), np.ones(n_anomaly, int)]
    kind = seed % 3
    if kind == 0:  # continuous scores
        score = rng.normal(size=len(label)) + rng.uniform(0, 2) * label
    elif kind == 1:  # small integers: many ties, also across classes
        score = rng.integers(0, 6, size=len(label)) + rng.integers(0, 2) * label
    else:  # rounded floats: some ties
        score = np.round(rng.normal(size=len(label)) + 0.5 * label, 1)
    order = rng.permutation(len(label))
    return domain[order], label[order], score[order]


@pytest.mark.parametrize("seed", range(50))
def test_machine_metrics_matches_direct_implementation(seed: int) -> None:
    domain, label, score = random_problem(seed)
    # Alternate label encodings: 0/1 and the strings of the file names.
    given_label = np.where(label == 1, "anomaly", "normal") if seed % 2 else label
    got = machine_metrics(domain, given_label, score)
    anomalies = score[label == 1]
    for d in ("source", "target"):
        normals = score[(label == 0) & (domain == d)]
        assert got[f"auc_{d}"] == pytest.approx(direct_auc(normals, anomalies), abs=1e-12)
    expected_pauc = direct_pauc(score[label == 0], anomalies)
    assert got["pauc"] == pytest.approx(expected_pauc, abs=1e-12)


def test_auc_uses_all_anomalies_of_both_domains() -> None:
    # Target anomalies score high, source anomalies low: the 2022+ rule pairs target normals with
    # both, so AUC_target is 0.5 (the 2021 within-domain rule would give 1.0).
    domain = ["source", "source", "target", "target", "source", "source", "target", "target"]
    label = [0, 0, 0, 0, 1, 1, 1, 1]
    score = [0, 1, 5, 6, 2, 3, 7, 8]
    got = machine_metrics(domain, label, score)
    assert got["auc_source"] == 1.0
    assert got["auc_target"] == 0.5


@pytest.mark.parametrize(
    ("domain", "label", "score", "message"),
    [
        (["source", "source"], [0, 1], [0.1, 0.2], "no normal clips in the target domain"),
        (["source", "target"], [0, 0], [0.1, 0.2], "no anomalous clips"),
        (["source", "target", "source"], [0, 0, 1], [0.1, np.nan, 0.3], "NaN or infinite"),
        (["source", "target", "source"], [0, 0, 1], [0.1, np.inf, 0.3], "NaN or infinite"),
        (["source", "target", "source"], [0, 0, 2], [0.1, 0.2, 0.3], "labels must be 0/1"),
        (["source", "target", "source"], ["normal", "normal", "bad"], [1, 2, 3], "got bad"),
        (["source", "other", "source"], [0, 0, 1], [0.1, 0.2, 0.3], "other"),
        (["source", "target", "source"], [0, 0, 1], [0.1, 0.2], "equal length"),
        (["source", "target", "source"], [0, 0, 1], ["a", "b", "c"], "not numeric"),
    ],
)
def test_machine_metrics_errors_name_the_problem(domain, label, score, message) -> None:
    with pytest.raises(ValueError, match=message) as err:
        machine_metrics(domain, label, score, name="ToyCar")
    assert str(err.value).startswith("ToyCar: ")


# --------------------------------------------------------------------------- evaluate


def make_truth(machines: dict[str, int], seed: int = 0) -> pd.DataFrame:
    """Ground truth with n clips per machine, a quarter each of source/target x normal/anomaly."""
    rows = []
    for machine, n in machines.items():
        for i in range(n):
            domain = "source" if i % 2 == 0 else "target"
            label = "anomaly" if (i // 2) % 2 else "normal"
            rows.append((machine, f"section_00_{i:04d}.wav", domain, label))
    return pd.DataFrame(rows, columns=["machine_type", "file_name", "domain", "label"])


def make_scores(truth: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    scores = truth[["machine_type", "file_name"]].copy()
    scores["score"] = rng.normal(size=len(truth)) + (truth["label"] == "anomaly").to_numpy()
    return scores.sample(frac=1.0, random_state=seed)  # order must not matter


def test_evaluate_matches_machine_metrics() -> None:
    truth = make_truth({"fan": 40, "valve": 24})
    scores = make_scores(truth)
    result = evaluate(scores, truth)
    assert list(result.columns) == ["machine_type", "auc_source", "auc_target", "pauc", "n_clips"]
    assert list(result["machine_type"]) == ["fan", "valve"]
    assert list(result["n_clips"]) == [40, 24]
    for _, row in result.iterrows():
        clips = truth[truth["machine_type"] == row["machine_type"]].merge(scores)
        expected = machine_metrics(clips["domain"], clips["label"], clips["score"])
        for column, value in expected.items():
            assert row[column] == value
    assert score_table(result)["n_machines"] == 2


def test_evaluate_join_errors() -> None:
    truth = make_truth({"fan": 16, "valve": 16})
    scores = make_scores(truth)
    dropped = (scores["machine_type"] == "fan") & (scores["file_name"] == "section_00_0003.wav")
    with pytest.raises(ValueError, match=r"fan: missing scores for section_00_0003\.wav"):
        evaluate(scores[~dropped], truth)
    extra = pd.concat(
        [
            scores,
            pd.DataFrame({"machine_type": ["valve"], "file_name": ["stray.wav"], "score": [0.0]}),
        ]
    )
    with pytest.raises(ValueError, match=r"valve: unknown file\(s\) stray\.wav"):
        evaluate(extra, truth)
    with pytest.raises(ValueError, match=r"valve: no scores at all \(16 test clips\)"):
        evaluate(scores[scores["machine_type"] == "fan"], truth)
    other = pd.concat(
        [scores, pd.DataFrame({"machine_type": ["pump"], "file_name": ["a.wav"], "score": [0.0]})]
    )
    with pytest.raises(ValueError, match=r"unknown machine type\(s\): pump"):
        evaluate(other, truth)
    with pytest.raises(ValueError, match="more than once: fan/section_00_0003.wav"):
        evaluate(pd.concat([scores, scores[dropped]]), truth)
    with pytest.raises(ValueError, match="truth lack column"):
        evaluate(scores, truth.drop(columns="domain"))


# --------------------------------------------------------------------------- submission files


def test_submission_round_trip(tmp_path: Path) -> None:
    names = ["section_00_0000.wav", "section_00_0001.wav", "section_00_0002.wav"]
    scores = np.array([1 / 3, -2.5e-300, 12345.678901234567])
    decisions = [1, 0, True]
    s_path, d_path = write_submission(tmp_path / "sub", "ToyCar", names, scores, decisions)
    assert s_path.name == "anomaly_score_ToyCar_section_00_test.csv"
    assert d_path.name == "decision_result_ToyCar_section_00_test.csv"
    assert d_path.read_text() == (
        "section_00_0000.wav,1\nsection_00_0001.wav,0\nsection_00_0002.wav,1\n"
    )
    assert s_path.read_text().splitlines()[0] == f"section_00_0000.wav,{1 / 3!r}"  # no header
    back = read_submission(tmp_path / "sub", "ToyCar")
    assert list(back.columns) == ["file_name", "score", "decision"]
    assert list(back["file_name"]) == names
    np.testing.assert_array_equal(back["score"].to_numpy(), scores)  # exact, not approximate
    assert list(back["decision"]) == [1, 0, 1]
    # The evaluator reads the same file with pandas: it must see two columns and no header.
    frame = pd.read_csv(s_path, header=None)
    assert frame.shape == (3, 2)


def test_write_submission_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_submission(tmp_path, "fan", ["a.wav"], [1.0], [0])
    before = sorted(p.name for p in tmp_path.iterdir())

    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(metrics.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        write_submission(tmp_path, "fan", ["b.wav"], [2.0], [1])
    monkeypatch.setattr(metrics.os, "replace", os.replace)
    # Old files intact, no temp files left behind.
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert read_submission(tmp_path, "fan")["file_name"].tolist() == ["a.wav"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((["a.wav", "b.wav"], [1.0], [0, 1]), "lengths must match"),
        ((["a.wav"], [float("nan")], [0]), "NaN or infinite"),
        ((["a.wav"], [1.0], [2]), "decisions must be 0/1"),
        ((["a.wav", "a.wav"], [1.0, 2.0], [0, 1]), "repeated: a.wav"),
        ((["a,b.wav"], [1.0], [0]), "unusable in CSV"),
        (([], [], []), "no clips"),
    ],
)
def test_write_submission_rejects_bad_input(tmp_path: Path, args, message) -> None:
    with pytest.raises(ValueError, match=message):
        write_submission(tmp_path, "fan", *args)


@pytest.mark.parametrize(
    ("score_text", "decision_text", "bad_file", "message"),
    [
        ("a.wav,1.0,extra\n", "a.wav,0\n", "anomaly_score", "line 1 has 3 column"),
        ("file_name,score\na.wav,1.0\n", "a.wav,0\n", "anomaly_score", "'score' is not a number"),
        ("a.wav,1.0\nb.wav,abc\n", "a.wav,0\nb.wav,1\n", "anomaly_score", "line 2: score 'abc'"),
        ("a.wav,nan\n", "a.wav,0\n", "anomaly_score", "must be finite"),
        ("", "a.wav,0\n", "anomaly_score", "empty"),
        ("a.wav,1.0\na.wav,2.0\n", "a.wav,0\n", "anomaly_score", "repeats file name 'a.wav'"),
        ("a.wav,1.0\n", "a.wav,2\n", "decision_result", "decision '2' must be 0 or 1"),
        ("a.wav,1.0\n", "b.wav,1\n", "anomaly_score", "list different files"),
    ],
)
def test_read_submission_rejects_malformed_files(
    tmp_path: Path, score_text: str, decision_text: str, bad_file: str, message: str
) -> None:
    (tmp_path / "anomaly_score_fan_section_00_test.csv").write_text(score_text)
    (tmp_path / "decision_result_fan_section_00_test.csv").write_text(decision_text)
    with pytest.raises(ValueError, match=message) as err:
        read_submission(tmp_path, "fan")
    assert bad_file in str(err.value)


def test_read_submission_missing_file(tmp_path: Path) -> None:
    (tmp_path / "anomaly_score_fan_section_00_test.csv").write_text("a.wav,1.0\n")
    with pytest.raises(FileNotFoundError, match="decision_result_fan_section_00_test.csv"):
        read_submission(tmp_path, "fan")


def test_read_submission_skips_blank_lines(tmp_path: Path) -> None:
    (tmp_path / "anomaly_score_fan_section_00_test.csv").write_text("a.wav,1.5\n\nb.wav,2\n")
    (tmp_path / "decision_result_fan_section_00_test.csv").write_text("b.wav,1\na.wav,0\n")
    back = read_submission(tmp_path, "fan")
    assert back["file_name"].tolist() == ["a.wav", "b.wav"]
    assert back["decision"].tolist() == [0, 1]


# --------------------------------------------------------------------------- gamma threshold


def test_gamma_threshold_near_true_quantile() -> None:
    rng = np.random.default_rng(0)
    shape, loc, scale = 2.0, 3.0, 1.5
    train = scipy.stats.gamma.rvs(shape, loc=loc, scale=scale, size=5000, random_state=rng)
    true_q90 = scipy.stats.gamma.ppf(0.9, shape, loc=loc, scale=scale)
    threshold = gamma_threshold(train)
    assert threshold == pytest.approx(true_q90, rel=0.03)
    assert threshold == pytest.approx(np.quantile(train, 0.9), rel=0.03)
    assert gamma_threshold(train, 0.5) < threshold < gamma_threshold(train, 0.99)


def test_gamma_threshold_is_the_baseline_rule() -> None:
    train = np.random.default_rng(1).lognormal(size=300)
    fitted = scipy.stats.gamma.fit(train)
    assert gamma_threshold(train, 0.9) == scipy.stats.gamma.ppf(0.9, *fitted)


def test_gamma_threshold_degenerate_input_falls_back() -> None:
    assert gamma_threshold(np.full(100, 4.2)) == pytest.approx(4.2)
    assert gamma_threshold([1.0, 2.0]) == pytest.approx(np.quantile([1.0, 2.0], 0.9))
    assert gamma_threshold([7.0]) == 7.0
    with pytest.raises(ValueError, match="quantile"):
        gamma_threshold([1.0, 2.0, 3.0], quantile=1.0)
    with pytest.raises(ValueError, match="NaN"):
        gamma_threshold([1.0, np.nan, 3.0])
    with pytest.raises(ValueError, match="no training scores"):
        gamma_threshold([])
