"""DCASE Task 2 scoring (2022-2025 rule) and the challenge's submission files.

Per machine type: AUC per domain (that domain's normal clips with all anomalous clips), pAUC at
FPR 0.1 over all clips, and the official score Omega, the harmonic mean of all 3*M values, as the
official evaluators (nttcslab dcase2024/2025_task2_evaluator) compute them.
"""

from __future__ import annotations

import csv
import math
import os
import tempfile
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.stats
from sklearn.metrics import roc_auc_score

MAX_FPR = 0.1  # pAUC range of the 2020-2025 evaluators
DOMAINS = ("source", "target")
METRIC_COLUMNS = ("auc_source", "auc_target", "pauc")
# Values are clipped here before the harmonic mean, as the evaluator does (float64 epsilon).
EPS = float(np.finfo(np.float64).eps)

_LABEL_CODES = {"normal": 0, "anomaly": 1, "0": 0, "1": 1}


def _prefix(name: str | None) -> str:
    return f"{name}: " if name else ""


def _preview(values: Iterable[object], limit: int = 5) -> str:
    """First few items, sorted, for error messages."""
    items = sorted(str(v) for v in values)
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items)} in all)" if len(items) > limit else "")


def _as_labels(label: object, name: str | None) -> np.ndarray:
    """0/1, bool or "normal"/"anomaly" labels -> int array of 0 (normal) / 1 (anomaly)."""
    arr = np.asarray(label)
    if arr.dtype.kind in "biuf":
        bad = ~np.isin(arr, [0, 1])
        if bad.any():
            raise ValueError(f"{_prefix(name)}labels must be 0/1, got {_preview(set(arr[bad]))}")
        return arr.astype(np.int64)
    text = np.char.lower(np.char.strip(arr.astype(str)))
    bad_text = {t for t in set(text.tolist()) if t not in _LABEL_CODES}
    if bad_text:
        raise ValueError(
            f"{_prefix(name)}labels must be 'normal'/'anomaly' or 0/1, got {_preview(bad_text)}"
        )
    return np.array([_LABEL_CODES[t] for t in text], dtype=np.int64)


def _as_domains(domain: object, name: str | None) -> np.ndarray:
    text = np.char.lower(np.char.strip(np.asarray(domain).astype(str)))
    bad = set(text.tolist()) - set(DOMAINS)
    if bad:
        raise ValueError(f"{_prefix(name)}domains must be 'source'/'target', got {_preview(bad)}")
    return text


def _as_scores(score: object, name: str | None) -> np.ndarray:
    try:
        arr = np.asarray(score, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{_prefix(name)}scores are not numeric: {err}") from err
    n_bad = int((~np.isfinite(arr)).sum())
    if n_bad:
        raise ValueError(f"{_prefix(name)}{n_bad} score(s) are NaN or infinite")
    return arr


def machine_metrics(
    domain: Sequence[str] | np.ndarray,
    label: Sequence[object] | np.ndarray,
    score: Sequence[float] | np.ndarray,
    name: str | None = None,
) -> dict[str, float]:
    """AUC (source), AUC (target) and pAUC of one machine type's test clips, as the evaluator does.

    AUC_d uses the NORMAL clips of domain d together with ALL anomalous clips (both domains);
    pAUC uses every clip, with sklearn's McClish-standardised partial AUC up to FPR 0.1.
    `name` (machine type or file) prefixes error messages. Higher score = more anomalous.
    """
    domains = _as_domains(domain, name)
    labels = _as_labels(label, name)
    scores = _as_scores(score, name)
    lengths = {len(domains), len(labels), len(scores)}
    if domains.ndim != 1 or labels.ndim != 1 or scores.ndim != 1 or len(lengths) != 1:
        raise ValueError(
            f"{_prefix(name)}domain, label and score must be 1-D and of equal length, got "
            f"shapes {domains.shape}, {labels.shape}, {scores.shape}"
        )
    is_anomaly = labels == 1
    if not is_anomaly.any():
        raise ValueError(f"{_prefix(name)}no anomalous clips: AUC and pAUC are undefined")
    result: dict[str, float] = {}
    for d in DOMAINS:
        is_normal_d = (domains == d) & ~is_anomaly
        if not is_normal_d.any():
            raise ValueError(f"{_prefix(name)}no normal clips in the {d} domain: AUC is undefined")
        mask = is_normal_d | is_anomaly
        result[f"auc_{d}"] = float(roc_auc_score(labels[mask], scores[mask]))
    result["pauc"] = float(roc_auc_score(labels, scores, max_fpr=MAX_FPR))
    return result


def _checked_values(values: Iterable[float]) -> np.ndarray:
    arr = np.asarray(list(values), dtype=np.float64)
    if arr.size == 0:
        raise ValueError("no values to average")
    if not np.isfinite(arr).all():
        raise ValueError(f"values contain NaN or infinity: {arr.tolist()}")
    return arr


def official_score(values: Iterable[float]) -> float:
    """Omega: harmonic mean of the AUC/pAUC values, each clipped below at float64 epsilon."""
    # The clip keeps hmean defined when a value is 0 (the evaluator's own guard).
    return float(scipy.stats.hmean(np.maximum(_checked_values(values), EPS)))


def arithmetic_score(values: Iterable[float]) -> float:
    """Arithmetic mean of the same values (reported next to Omega; not clipped)."""
    return float(np.mean(_checked_values(values)))


def score_table(
    per_machine: pd.DataFrame, machine_types: Iterable[str] | None = None
) -> dict[str, float]:
    """Official score (hmean) and amean over all 3*M values of the per-machine rows.

    `per_machine` has columns machine_type, auc_source, auc_target, pauc (as `evaluate` returns);
    `machine_types` restricts the scores to a subset (e.g. the dev or eval machines).
    Returns {"official", "amean", "n_machines"}.
    """
    missing = {"machine_type", *METRIC_COLUMNS} - set(per_machine.columns)
    if missing:
        raise ValueError(f"per-machine table lacks column(s) {_preview(missing)}")
    duplicated = per_machine["machine_type"][per_machine["machine_type"].duplicated()]
    if len(duplicated):
        raise ValueError(f"machine type(s) listed twice: {_preview(set(duplicated))}")
    rows = per_machine
    if machine_types is not None:
        wanted = list(machine_types)
        unknown = set(wanted) - set(per_machine["machine_type"])
        if unknown:
            raise ValueError(f"machine type(s) not in the table: {_preview(unknown)}")
        rows = per_machine[per_machine["machine_type"].isin(wanted)]
    if rows.empty:
        raise ValueError("no machine types to score")
    values = rows[list(METRIC_COLUMNS)].to_numpy(dtype=np.float64).ravel()
    return {
        "official": official_score(values),
        "amean": arithmetic_score(values),
        "n_machines": len(rows),
    }


def evaluate(scores: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Per-machine metrics from anomaly scores and ground truth.

    `scores`: machine_type, file_name, score. `truth`: machine_type, file_name, domain, label.
    Every test clip of the truth must be scored exactly once, and no other clip; otherwise a
    ValueError names the machine types and files at fault. Returns one row per machine type (truth
    order): machine_type, auc_source, auc_target, pauc, n_clips.
    """
    for frame, what, needed in (
        (scores, "scores", {"machine_type", "file_name", "score"}),
        (truth, "truth", {"machine_type", "file_name", "domain", "label"}),
    ):
        missing = needed - set(frame.columns)
        if missing:
            raise ValueError(f"{what} lack column(s) {_preview(missing)}")
        dup = frame[frame.duplicated(["machine_type", "file_name"])]
        if len(dup):
            pairs = (f"{m}/{f}" for m, f in zip(dup["machine_type"], dup["file_name"], strict=True))
            raise ValueError(f"{what} list file(s) more than once: {_preview(pairs)}")

    problems = []
    unknown_machines = set(scores["machine_type"]) - set(truth["machine_type"])
    if unknown_machines:
        problems.append(f"scores for unknown machine type(s): {_preview(unknown_machines)}")
    machine_order = list(dict.fromkeys(truth["machine_type"]))  # first appearance, stable
    for machine in machine_order:
        truth_files = set(truth.loc[truth["machine_type"] == machine, "file_name"])
        score_files = set(scores.loc[scores["machine_type"] == machine, "file_name"])
        if not score_files:
            problems.append(f"{machine}: no scores at all ({len(truth_files)} test clips)")
            continue
        if truth_files - score_files:
            problems.append(f"{machine}: missing scores for {_preview(truth_files - score_files)}")
        if score_files - truth_files:
            problems.append(f"{machine}: unknown file(s) {_preview(score_files - truth_files)}")
    if problems:
        raise ValueError("scores do not match the ground truth:\n  " + "\n  ".join(problems))

    joined = truth.merge(scores, on=["machine_type", "file_name"], how="inner", validate="1:1")
    rows = []
    for machine in machine_order:
        clips = joined[joined["machine_type"] == machine]
        metrics = machine_metrics(clips["domain"], clips["label"], clips["score"], name=machine)
        rows.append({"machine_type": machine, **metrics, "n_clips": len(clips)})
    return pd.DataFrame(rows, columns=["machine_type", *METRIC_COLUMNS, "n_clips"])


# ----------------------------------------------------------------------------- submission files


def score_path(out_dir: str | Path, machine_type: str) -> Path:
    """Challenge name of a machine type's anomaly-score file (one section, 00, since 2024)."""
    return Path(out_dir) / f"anomaly_score_{machine_type}_section_00_test.csv"


def decision_path(out_dir: str | Path, machine_type: str) -> Path:
    """Challenge name of a machine type's decision-result file."""
    return Path(out_dir) / f"decision_result_{machine_type}_section_00_test.csv"


def _write_atomic(path: Path, rows: Iterable[tuple[str, str]]) -> None:
    """Write CSV rows to a temp file beside `path`, then rename it: no reader sees half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerows(rows)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_submission(
    out_dir: str | Path,
    machine_type: str,
    file_names: Sequence[str],
    scores: Sequence[float] | np.ndarray,
    decisions: Sequence[int] | np.ndarray,
) -> tuple[Path, Path]:
    """Write the two challenge CSVs of one machine type; return (score file, decision file).

    Rows are `file_name,score` (higher = more anomalous; repr keeps float64 exactly) and
    `file_name,0|1` (1 = anomaly), no header, in the order given.
    """
    if not machine_type or any(c in machine_type for c in "/\\"):
        raise ValueError(f"invalid machine type {machine_type!r}")
    names = [str(f) for f in file_names]
    score_arr = _as_scores(scores, machine_type)
    decision_arr = np.asarray(decisions)
    if not (len(names) == len(score_arr) == len(decision_arr)):
        raise ValueError(
            f"{machine_type}: {len(names)} file names, {len(score_arr)} scores and "
            f"{len(decision_arr)} decisions: lengths must match"
        )
    if not names:
        raise ValueError(f"{machine_type}: no clips to write")
    if len(set(names)) != len(names):
        dup = pd.Series(names)[pd.Series(names).duplicated()]
        raise ValueError(f"{machine_type}: file name(s) repeated: {_preview(set(dup))}")
    bad_names = [n for n in names if not n or any(c in n for c in ',"\n\r')]
    if bad_names:
        raise ValueError(f"{machine_type}: file names unusable in CSV: {_preview(bad_names)}")
    if decision_arr.dtype.kind not in "biuf" or not np.isin(decision_arr, [0, 1]).all():
        raise ValueError(f"{machine_type}: decisions must be 0/1")

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    s_path, d_path = score_path(out, machine_type), decision_path(out, machine_type)
    _write_atomic(s_path, ((n, repr(float(s))) for n, s in zip(names, score_arr, strict=True)))
    _write_atomic(d_path, ((n, str(int(d))) for n, d in zip(names, decision_arr, strict=True)))
    return s_path, d_path


def _read_two_columns(path: Path) -> list[tuple[int, str, str]]:
    """(line number, file name, value) rows of a headerless two-column CSV; blank lines skipped."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: submission file not found")
    rows = []
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue  # blank lines are ignored, as pandas.read_csv does in the evaluator
            if len(row) != 2:
                raise ValueError(
                    f"{path}: line {reader.line_num} has {len(row)} column(s), expected 2 "
                    f"(file_name,value; no header): {row!r}"
                )
            rows.append((reader.line_num, row[0].strip(), row[1].strip()))
    if not rows:
        raise ValueError(f"{path}: file is empty")
    for line, name, _ in rows:
        if not name:
            raise ValueError(f"{path}: line {line} has an empty file name")
    seen: set[str] = set()
    for line, name, _ in rows:
        if name in seen:
            raise ValueError(f"{path}: line {line} repeats file name {name!r}")
        seen.add(name)
    return rows


def read_submission(out_dir: str | Path, machine_type: str) -> pd.DataFrame:
    """Read one machine type's score and decision files back, checking their format.

    Returns columns file_name, score (float64), decision (int 0/1) in the score file's order.
    Raises FileNotFoundError / ValueError naming the file and line at fault.
    """
    s_path, d_path = score_path(out_dir, machine_type), decision_path(out_dir, machine_type)
    score_rows = _read_two_columns(s_path)
    scores = []
    for line, _, value in score_rows:
        try:
            number = float(value)
        except ValueError:
            raise ValueError(
                f"{s_path}: line {line}: score {value!r} is not a number (files have no header)"
            ) from None
        if not math.isfinite(number):
            raise ValueError(f"{s_path}: line {line}: score is {value!r}, must be finite")
        scores.append(number)

    decisions = {}
    for line, name, value in _read_two_columns(d_path):
        if value not in ("0", "1"):
            raise ValueError(f"{d_path}: line {line}: decision {value!r} must be 0 or 1")
        decisions[name] = int(value)

    names = [name for _, name, _ in score_rows]
    only_scores, only_decisions = set(names) - set(decisions), set(decisions) - set(names)
    if only_scores or only_decisions:
        raise ValueError(
            f"{s_path.name} and {d_path.name} list different files: only scored "
            f"[{_preview(only_scores)}], only decided [{_preview(only_decisions)}]"
        )
    return pd.DataFrame(
        {
            "file_name": names,
            "score": np.asarray(scores, dtype=np.float64),
            "decision": np.asarray([decisions[n] for n in names], dtype=np.int64),
        }
    )


def gamma_threshold(train_scores: Sequence[float] | np.ndarray, quantile: float = 0.9) -> float:
    """Decision threshold: `quantile` of a gamma distribution fitted to the training scores.

    This is the DCASE baseline's rule (scipy.stats.gamma.fit with free shape, loc and scale,
    then ppf). Fallback: when the fit is impossible or degenerate (fewer than 3 distinct scores,
    e.g. constant scores, a failed fit, or a non-finite ppf) the empirical quantile is returned,
    which for constant scores is that constant.
    """
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile must be in (0, 1), got {quantile}")
    scores = _as_scores(train_scores, "gamma_threshold").ravel()
    if scores.size == 0:
        raise ValueError("gamma_threshold: no training scores")
    empirical = float(np.quantile(scores, quantile))
    # Three free parameters need at least three distinct values to be identifiable.
    if np.unique(scores).size < 3:
        return empirical
    try:
        with warnings.catch_warnings():
            # gamma.fit's optimiser warns on awkward data; the result is checked below instead.
            warnings.simplefilter("ignore", RuntimeWarning)
            shape, loc, scale = scipy.stats.gamma.fit(scores)
            threshold = float(scipy.stats.gamma.ppf(quantile, shape, loc=loc, scale=scale))
    except (ValueError, RuntimeError, FloatingPointError):
        return empirical
    if not math.isfinite(threshold):
        return empirical
    return threshold
