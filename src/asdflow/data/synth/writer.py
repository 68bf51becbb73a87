"""Writing data sets: the DCASE folder layout, file names and CSV files, and the CLI.

plan_clips lists a machine type's clips and names, generate_machine renders and writes them (in
a worker pool) with attributes_00.csv and the ground truth, generate_general writes the
general-audio corpus, and main_synth is `asdflow synth`.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from asdflow.data.synth.catalog import Counts, MachineType, get_machine_type
from asdflow.data.synth.general import GENERAL_KINDS
from asdflow.data.synth.render import render_clip
from asdflow.data.synth.scene import _level
from asdflow.data.synth.signals import _db, _pink, _shaped_noise, clip_rng

SECTION = "section_00"
EVAL_SET = "eval"  # the set whose test clips are distributed as section_00_NNNN.wav


# ----------------------------------------------------------------------------------------------
# Writing a machine type
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Job:
    """One wav file to render: its identity (which seeds its rng) and its output path."""

    machine_type: MachineType
    set_name: str
    split: str  # train | test | supplemental
    domain: str
    label: str  # normal | anomaly | clean | noise
    index: int
    attributes: dict = field(default_factory=dict)
    anomaly: str | None = None
    path: str = ""
    seed: int = 0
    severity: float = 1.0
    clip_seconds: float = 2.0
    sample_rate: int = 16000


def _run_job(job: _Job) -> None:
    key = (job.set_name, job.machine_type.name, job.split, job.domain, job.label, job.index)
    content = {"clean": "clean", "noise": "noise"}.get(job.label, "full")
    x = render_clip(
        job.machine_type,
        job.attributes,
        clip_rng(job.seed, *key),
        clip_rng(job.seed, *key, "anomaly"),
        job.anomaly,
        job.severity,
        job.clip_seconds,
        job.sample_rate,
        content,
    )
    sf.write(job.path, x.astype(np.float32), job.sample_rate, subtype="PCM_16")


def _run_all(jobs: list, fn: Callable, workers: int, desc: str) -> None:
    bar = tqdm(total=len(jobs), desc=desc, unit="clip", mininterval=1.0)
    if workers <= 1:
        for job in jobs:
            fn(job)
            bar.update()
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for _ in pool.map(fn, jobs, chunksize=8):
                bar.update()
    bar.close()


def attribute_suffix(mt: MachineType, attributes: dict[str, str]) -> str:
    """File-name attribute part: "spd_1500_mic_2", or "noAttribute" for hidden machines."""
    if mt.attributes_hidden:
        return "noAttribute"
    return "_".join(f"{k}_{attributes[k]}" for k in mt.attributes)


def clip_name(mt: MachineType, domain: str, split: str, label: str, index: int, attrs) -> str:
    return f"{SECTION}_{domain}_{split}_{label}_{index:04d}_{attribute_suffix(mt, attrs)}.wav"


def plan_clips(mt: MachineType, set_name: str, counts: Counts, seed: int) -> list[dict]:
    """Every clip of a machine type: split, domain, label, index, attributes, anomaly, name."""
    kinds = mt.anomaly_kinds

    def row(split, domain, label, index, attributes, anomaly=None):
        return dict(split=split, domain=domain, label=label, index=index,
                    attributes=attributes, anomaly=anomaly)  # fmt: skip

    rows = []
    for domain, n_train in (("source", counts.train_source), ("target", counts.train_target)):
        combos = mt.combos(domain)
        rows += [row("train", domain, "normal", i, combos[i % len(combos)]) for i in range(n_train)]
    for domain in ("source", "target"):
        combos = mt.combos(domain)
        for i in range(counts.test_per_quadrant):
            rows.append(row("test", domain, "normal", i, combos[i % len(combos)]))
        for i in range(counts.test_per_quadrant):
            # every kind in turn; the combo shifts by one each pass over the kinds (no confounding)
            combo = combos[(i + i // len(kinds)) % len(combos)]
            rows.append(row("test", domain, "anomaly", i, combo, kinds[i % len(kinds)]))
    combos = mt.combos("source")
    n_clean = (counts.supplemental + 1) // 2  # clean machine sound first, then noise only
    for i in range(counts.supplemental):
        label, j = ("clean", i) if i < n_clean else ("noise", i - n_clean)
        rows.append(row("supplemental", "source", label, j, combos[j % len(combos)]))
    for r in rows:
        r["name"] = clip_name(mt, r["domain"], r["split"], r["label"], r["index"], r["attributes"])
    if set_name == EVAL_SET:  # distributed as section_00_NNNN.wav in a shuffled order
        tests = [r for r in rows if r["split"] == "test"]
        order = clip_rng(seed, "eval-order", set_name, mt.name).permutation(len(tests))
        for number, t in zip(order, tests, strict=True):
            t["relabeled"] = t["name"]
            t["name"] = f"{SECTION}_{int(number):04d}.wav"
    return rows


def generate_machine(
    root: Path,
    set_name: str,
    machine_type: MachineType | str,
    counts: Counts,
    seed: int,
    clip_seconds: float,
    sample_rate: int = 16000,
    severity: float = 1.0,
    workers: int = 1,
) -> Path:
    """Write <root>/<set>/<M>/{train,test,supplemental}/*.wav and attributes_00.csv, plus ground
    truth under <root>/ground_truth/<set>/. Built in <M>.tmp and renamed at the end, so a folder
    named <M> is always complete."""
    mt = get_machine_type(machine_type) if isinstance(machine_type, str) else machine_type
    root = Path(root)
    final = root / set_name / mt.name
    tmp = root / set_name / f"{mt.name}.tmp"
    for stale in (final, tmp):
        if stale.exists():
            shutil.rmtree(stale)
    for split in ("train", "test", "supplemental"):
        (tmp / split).mkdir(parents=True)
    rows = plan_clips(mt, set_name, counts, seed)
    jobs = [
        _Job(
            mt,
            set_name,
            r["split"],
            r["domain"],
            r["label"],
            r["index"],
            r["attributes"],
            r["anomaly"],
            str(tmp / r["split"] / r["name"]),
            seed,
            severity,
            clip_seconds,
            sample_rate,
        )
        for r in rows
    ]
    _run_all(jobs, _run_job, workers, f"{set_name}/{mt.name}")

    labelled = [
        r for r in rows if r["split"] == "train" or (r["split"] == "test" and "relabeled" not in r)
    ]
    _write_attributes_csv(tmp / "attributes_00.csv", mt, labelled)
    truth_dir = root / "ground_truth" / set_name
    truth = {}
    if set_name == EVAL_SET:
        tests = sorted((r for r in rows if "relabeled" in r), key=lambda r: r["name"])
        lines = [mt.name] + [f"{r['name']},{r['relabeled']}" for r in tests]
        truth[f"{mt.name}_eval_data_list.csv"] = "\n".join(lines) + "\n"
    if mt.attributes_hidden:
        truth[f"{mt.name}_hidden_attributes.csv"] = _hidden_csv(mt, rows)
    if truth:
        truth_dir.mkdir(parents=True, exist_ok=True)
    for name, text in truth.items():  # atomic per file; the machine folder appears last
        part = truth_dir / f"{name}.tmp"
        part.write_text(text)
        os.replace(part, truth_dir / name)
    os.replace(tmp, final)
    return final


def _write_attributes_csv(path: Path, mt: MachineType, rows: list[dict]) -> None:
    """DCASE attributes_00.csv: file_name,d1p,d1v[,d2p,d2v...]; hidden machines: empty pairs."""
    n_attr = 1 if mt.attributes_hidden else len(mt.attributes)
    header = ["file_name"] + [f"d{i}{c}" for i in range(1, n_attr + 1) for c in "pv"]
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        for r in rows:
            pairs = (
                ["", ""]
                if mt.attributes_hidden
                else [v for k in mt.attributes for v in (k, r["attributes"][k])]
            )
            w.writerow([f"{mt.name}/{r['split']}/{r['name']}", *pairs])


def _hidden_csv(mt: MachineType, rows: list[dict]) -> str:
    """True attributes of a hidden machine's train and test clips, by the name as distributed."""
    lines = [["machine_type", "file_name", "attributes"]]
    for r in rows:
        if r["split"] in ("train", "test"):
            lines.append(
                [
                    mt.name,
                    f"{mt.name}/{r['split']}/{r['name']}",
                    json.dumps(r["attributes"], sort_keys=True),
                ]
            )
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(lines)
    return buf.getvalue()


# ----------------------------------------------------------------------------------------------
# General-audio corpus
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _GeneralJob:
    kind: str
    index: int
    path: str
    seed: int
    clip_seconds: float
    sample_rate: int


def _run_general_job(job: _GeneralJob) -> None:
    rng = clip_rng(job.seed, "general", job.kind, job.index)
    n = int(round(job.clip_seconds * job.sample_rate))
    x = GENERAL_KINDS[job.kind](n, job.sample_rate, rng)
    x = x + _db(-40.0) * _shaped_noise(rng, n, job.sample_rate, _pink)  # never digital silence
    sf.write(job.path, _level(x, rng).astype(np.float32), job.sample_rate, subtype="PCM_16")


def generate_general(
    root: Path,
    n_clips: int,
    seed: int,
    clip_seconds: float,
    sample_rate: int = 16000,
    workers: int = 1,
) -> Path:
    """Write <root>/general/<kind>_<NNNN>.wav: n_clips non-machine clips, kinds in rotation."""
    root = Path(root)
    final, tmp = root / "general", root / "general.tmp"
    for stale in (final, tmp):
        if stale.exists():
            shutil.rmtree(stale)
    tmp.mkdir(parents=True)
    kinds = list(GENERAL_KINDS)
    jobs = []
    for i in range(n_clips):
        kind, j = kinds[i % len(kinds)], i // len(kinds)
        jobs.append(
            _GeneralJob(kind, j, str(tmp / f"{kind}_{j:04d}.wav"), seed, clip_seconds, sample_rate)
        )
    _run_all(jobs, _run_general_job, workers, "general")
    os.replace(tmp, final)
    return final


@dataclass(frozen=True)
class SynthSettings:
    """What a synthetic data set depends on (keys of the `synthetic` section): the master seed,
    clip length, anomaly strength, sample rate, clip counts per machine type, and the size of
    the general-audio corpus."""

    seed: int = 0
    clip_seconds: float = 2.0
    severity: float = 1.0
    sample_rate: int = 16000
    counts: Counts = field(default_factory=Counts)
    general_clips: int = 600
