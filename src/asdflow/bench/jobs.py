"""Where a workflow run's time went: `asdflow bench jobs` reads a Snakemake log and prints, per
rule, how many jobs ran, their summed and mean wall seconds, and the run's wall time, so that a
slow `make run` can be traced to its stages. Prints figures, asserts nothing about speed.
"""

from __future__ import annotations

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


def main(log: Path | None, workdir: Path) -> pd.DataFrame:
    log = Path(log) if log else newest_log(workdir)
    jobs = job_times(log)
    if jobs.empty:
        raise ValueError(f"{log}: no finished jobs in this Snakemake log")
    per_rule, wall = summarize(jobs)
    print(f"Jobs of {log} ({len(jobs)} finished jobs):")
    print(per_rule.round({"total_s": 0, "mean_s": 1, "share": 3}).to_string())
    busy = per_rule["total_s"].sum()
    print(
        f"\nwall time {wall:.0f} s ({wall / 60:.1f} min); job time {busy:.0f} s, "
        f"{busy / max(wall, 1e-9):.2f} jobs running on average"
    )
    return per_rule
