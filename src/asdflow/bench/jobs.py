"""Where a workflow run's time and memory went: `asdflow bench jobs` reads a Snakemake log and
the run's `benchmarks/` folder and prints, per rule, how many jobs ran, their summed and mean wall
seconds, their CPU seconds and the peak resident memory (RSS) of the largest job, then the run's
wall time and a bound on its peak host RSS, so that a slow or large `make run` can be traced to
its stages. Every rule writes `benchmarks/<rule>/<wildcards>.tsv` (Snakemake's `benchmark:`:
wall seconds, max_rss in MB, cpu_time, ...); training jobs also get the seconds spent in their
training steps (steps_s, from their metric files), the rest being start-up and checkpoints.
Prints figures, asserts nothing about speed.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

import pandas as pd

_STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")
_RULE = re.compile(r"^(?:local)?(?:rule|checkpoint) (\w+):$")
_JOBID = re.compile(r"^\s+jobid: (\d+)$")
_FINISHED = re.compile(r"^Finished jobid: (\d+)")


def newest_log(workdir: Path) -> Path:
    """The newest Snakemake log of the work folder `workdir`."""
    logs = sorted((Path(workdir) / ".snakemake" / "log").glob("*.snakemake.log"))
    if not logs:
        raise FileNotFoundError(f"{workdir}: no Snakemake log under .snakemake/log")
    return logs[-1]


def job_times(log: Path) -> pd.DataFrame:
    """One row per finished job of the Snakemake log `log`: rule, jobid, start, end, seconds
    (to the log's one-second resolution)."""
    stamp, rule, started, rows = None, None, {}, []
    for line in Path(log).read_text().splitlines():
        if m := _STAMP.match(line):
            stamp = datetime.strptime(" ".join(m.group(1).split()), "%a %b %d %H:%M:%S %Y")
        elif m := _RULE.match(line):
            rule = m.group(1)
        elif (m := _JOBID.match(line)) and rule is not None:
            started[int(m.group(1))] = (rule, stamp)
            rule = None
        elif (m := _FINISHED.match(line)) and int(m.group(1)) in started:
            name, start = started.pop(int(m.group(1)))
            rows.append({"rule": name, "jobid": int(m.group(1)), "start": start, "end": stamp})
    table = pd.DataFrame(rows, columns=["rule", "jobid", "start", "end"])
    table[["start", "end"]] = table[["start", "end"]].astype("datetime64[ns]")
    table["seconds"] = (table["end"] - table["start"]).dt.total_seconds()
    return table


def summarize(jobs: pd.DataFrame) -> tuple[pd.DataFrame, float]:
    """Per rule (most job-seconds first): jobs, total and mean seconds, share of all
    job-seconds; and the wall seconds from the first start to the last end."""
    per_rule = jobs.groupby("rule")["seconds"].agg(jobs="count", total_s="sum", mean_s="mean")
    per_rule["share"] = per_rule["total_s"] / max(per_rule["total_s"].sum(), 1e-9)
    per_rule = per_rule.sort_values("total_s", ascending=False)
    wall = (jobs["end"].max() - jobs["start"].min()).total_seconds() if len(jobs) else 0.0
    return per_rule, wall


def job_memory(workdir: Path) -> pd.DataFrame:
    """One row per benchmark file under `<workdir>/benchmarks/<rule>/`: rule, job (the file's
    stem), max_rss_MiB (peak resident memory of the job's processes), cpu_s."""
    rows = []
    for path in sorted((Path(workdir) / "benchmarks").glob("*/*.tsv")):
        table = pd.read_csv(path, sep="\t")
        if table.empty or "max_rss" not in table.columns:
            continue
        last = table.iloc[-1]  # a rerun appends nothing: Snakemake rewrites the file
        rss = pd.to_numeric(last["max_rss"], errors="coerce")  # MB; "-" when not measured
        cpu = pd.to_numeric(last.get("cpu_time", float("nan")), errors="coerce")
        rows.append({"rule": path.parent.name, "job": path.stem, "max_rss_MiB": rss, "cpu_s": cpu})
    return pd.DataFrame(rows, columns=["rule", "job", "max_rss_MiB", "cpu_s"])


# the training jobs' metric files (train.run_training) and the rules that write them
_METRICS = {
    "pretrain_general": "results/pretrain/general/model.metrics.jsonl",
    "pretrain_dap": "results/pretrain/dap*/model.metrics.jsonl",
    "finetune": "results/finetune/*/seed*/model.metrics.jsonl",
}


def training_step_seconds(workdir: Path) -> pd.Series:
    """Per training rule, the seconds its jobs spent in training steps: the sum over their
    metric lines of seconds_per_step x the steps since the line before. The rest of those
    jobs' time is start-up (imports, data, model) and checkpoints."""
    totals = {}
    for rule, pattern in _METRICS.items():
        seconds = 0.0
        for path in Path(workdir).glob(pattern):
            before = 0
            for line in path.read_text().splitlines():
                entry = json.loads(line)
                if "seconds_per_step" in entry:
                    seconds += entry["seconds_per_step"] * (entry["step"] - before)
                    before = entry["step"]
        if seconds:
            totals[rule] = seconds
    return pd.Series(totals, name="steps_s", dtype=float)


def max_concurrent(jobs: pd.DataFrame) -> int:
    """The most jobs running at one time (from their start and end stamps)."""
    events = [(t, 1) for t in jobs["start"]] + [(t, -1) for t in jobs["end"]]
    running = peak = 0
    for _, change in sorted(events, key=lambda e: (e[0], e[1])):  # ends before starts
        running += change
        peak = max(peak, running)
    return peak


def main(log: Path | None, workdir: Path) -> pd.DataFrame:
    log = Path(log) if log else newest_log(workdir)
    jobs = job_times(log)
    if jobs.empty:
        raise ValueError(f"{log}: no finished jobs in this Snakemake log")
    per_rule, wall = summarize(jobs)
    memory = job_memory(workdir)
    if not memory.empty:
        per_rule = per_rule.join(
            memory.groupby("rule").agg(cpu_s=("cpu_s", "sum"), max_rss_MiB=("max_rss_MiB", "max"))
        )
    steps = training_step_seconds(workdir)
    steps = steps[steps.index.isin(per_rule.index)]  # the rules this log ran
    if not steps.empty:
        per_rule = per_rule.join(steps)
    print(f"Jobs of {log} ({len(jobs)} finished jobs):")
    rounded = per_rule.round({"total_s": 0, "mean_s": 1, "share": 3, "cpu_s": 0, "steps_s": 0})
    print(rounded.to_string(na_rep=""))
    busy = per_rule["total_s"].sum()
    print(
        f"\nwall time {wall:.0f} s ({wall / 60:.1f} min); job time {busy:.0f} s, "
        f"{busy / max(wall, 1e-9):.2f} jobs running on average"
    )
    if not steps.empty:
        trained = per_rule.loc[steps.index, "total_s"].sum()
        print(
            f"training jobs: {trained:.0f} s, of which {steps.sum():.0f} s in training steps "
            f"(steps_s) and {trained - steps.sum():.0f} s start-up and checkpoints"
        )
    if not memory.empty:
        largest = memory.sort_values("max_rss_MiB", ascending=False)
        top = largest.iloc[0]
        at_once = max_concurrent(jobs)
        bound = largest["max_rss_MiB"].head(at_once).sum()
        print(
            f"peak RSS of one job: {top['max_rss_MiB']:.0f} MiB ({top['rule']} {top['job']}); "
            f"at most {at_once} jobs ran at once, so the run's jobs never held more than "
            f"{bound:.0f} MiB together (the sum of the {at_once} largest peaks)"
        )
    return per_rule
