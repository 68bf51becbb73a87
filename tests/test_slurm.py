"""The workflow through a real SLURM cluster: a tiny DAG, features through tables, submitted with
snakemake-executor-plugin-slurm to the one-node cluster that tests/slurm/start_cluster.sh starts
(CI starts it before the tests). Skipped, with the reason, where there is no cluster to be had."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import REPO, run_snakemake, tiny_config, write_workdir

GPU_RULES = ["pretrain_general", "pretrain_dap", "finetune", "score_run", "embed_train"]


def cluster_conf() -> str:
    """SLURM_CONF of a running cluster, starting the test cluster when we are root."""
    conf = os.environ.get("SLURM_CONF") or "/etc/slurm/slurm.conf"
    env = {**os.environ, "SLURM_CONF": conf}
    if shutil.which("sinfo") and Path(conf).is_file():
        probe = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, env=env)
        if probe.returncode == 0 and any(s in probe.stdout for s in ("idle", "mix", "alloc")):
            return conf
    if os.geteuid() != 0:
        pytest.skip("no running SLURM cluster, and starting one needs root")
    start = subprocess.run(
        ["bash", str(REPO / "tests/slurm/start_cluster.sh")], capture_output=True, text=True
    )
    if start.returncode != 0:
        pytest.skip(f"could not start a SLURM cluster: {start.stderr.strip()[-300:]}")
    return start.stdout.strip().splitlines()[-1]


def slurm_profile(workdir: Path) -> Path:
    """A profile for the one-node test cluster: no accounting (squeue status), fast polling, and
    the GPU rules' gpu request dropped (the test node has no GPU)."""
    profile = {
        "executor": "slurm",
        "jobs": 4,
        "latency-wait": 10,
        "retries": 0,
        "slurm-init-seconds-before-status-checks": 2,
        "slurm-status-command": "squeue",
        "slurm-keep-successful-logs": True,
        "seconds-between-status-checks": 2,
        "default-resources": {"cpus_per_task": 1, "mem_mb": 1500, "runtime": 30},
        "set-resources": {rule: {"gpu": 0} for rule in GPU_RULES},
    }
    folder = workdir / "config/profiles/slurm-test"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "profile.yaml").write_text(yaml.safe_dump(profile))
    return folder


@pytest.mark.slurm
@pytest.mark.slow
def test_tiny_dag_runs_through_sbatch(tmp_path, monkeypatch):
    conf = cluster_conf()
    monkeypatch.setenv("SLURM_CONF", conf)
    config = tiny_config()
    config["synthetic"]["sets"]["earlier"] = []
    config["finetune"]["seeds"] = [0]
    config["finetune"]["runs"] = {
        "na": {"init": "general", "labels": "none", "title": "N/A"},
        "pl_ma": {"init": "dap_full", "labels": "dap_full", "title": "PL+MA"},
    }
    config["pseudolabels"]["encoders"] = ["dap_full"]
    config["tables"] = {"table1": ["na"], "table2": ["na", "pl_ma"]}
    work = write_workdir(tmp_path / "work", config)
    profile = slurm_profile(work)
    run_snakemake(work, "--profile", str(profile))

    table = pd.read_csv(work / "results/tables/table2.csv")
    assert table["run"].tolist() == ["logmel_knn", "dcase_ae_mse", "dcase_ae_maha", "na", "pl_ma"]
    assert table["all_mean"].between(0, 100).all()
    # every job went through sbatch: one SLURM log per job, and the controller allocated them
    base = work / ".snakemake/slurm_logs"
    logs = list(base.rglob("*.log"))
    jobs = {p.relative_to(base).parts[0] for p in logs}
    assert {"rule_features", "rule_pretrain_dap", "rule_finetune", "rule_tables"} <= jobs
    assert len(logs) >= 30
    ctld = Path(os.environ.get("ASDFLOW_SLURM_DIR", "/tmp/asdflow-slurm")) / "log/slurmctld.log"
    # the controller starts a job either from its main scheduler ("sched: Allocate JobId=N") or
    # from the backfill scheduler ("sched/backfill: _start_job: Started JobId=N"); every job
    # ended with exit status 0
    log = ctld.read_text()
    started = set(re.findall(r"(?:Allocate|Started) JobId=(\d+)", log))
    completed = set(re.findall(r"_job_complete: JobId=(\d+) WEXITSTATUS 0", log))
    assert len(started) >= len(logs) and started <= completed
