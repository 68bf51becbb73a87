"""Shared fixtures: the repository root and a tiny workflow configuration."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def snakemake_cmd(workdir: Path, *args: str) -> list[str]:
    """`snakemake` on the repo's Snakefile, working in `workdir` (its config/config.yaml)."""
    return [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        *args,
    ]


def run_snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    proc = subprocess.run(
        snakemake_cmd(workdir, *args), capture_output=True, text=True, env=env, cwd=workdir
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def tiny_config() -> dict:
    """The default configuration shrunk to seconds: 2 dev + 2 eval machine types, 1 s clips."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    synthetic = config["synthetic"]
    synthetic["clip_seconds"] = 1.0
    synthetic["counts"] = {
        "train_source": 16,
        "train_target": 3,
        "test_per_quadrant": 4,
        "supplemental": 2,
    }
    synthetic["sets"]["dev"] = synthetic["sets"]["dev"][-2:]  # the hidden-attribute ones last
    synthetic["sets"]["eval"] = synthetic["sets"]["eval"][:2]
    synthetic["general_clips"] = 8
    config["features"]["n_frames"] = 96
    pre = config["pretrain"]
    pre["common"] |= {"batch_size": 4, "clone_batch": 2, "log_every": 2, "checkpoint_every": 4}
    for run in ("general", "dap", "dap_full"):
        pre[run] |= {"steps": 4, "warmup_steps": 1}
    config["baseline_ae"] |= {"epochs": 2, "batch_size": 64}
    config["finetune"]["common"] |= {
        "steps": 4,
        "batch_size": 4,
        "warmup_steps": 1,
        "log_every": 2,
        "checkpoint_every": 4,
    }
    return config


def dry_run_counts(workdir: Path, *args: str) -> dict[str, int]:
    """{rule: jobs} that a dry run would execute (the "Job stats" table)."""
    proc = run_snakemake(workdir, "-n", "-q", "rules", *args)
    counts = {}
    for line in (proc.stdout + proc.stderr).splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    return counts


def write_workdir(path: Path, config: dict) -> Path:
    (path / "config").mkdir(parents=True, exist_ok=True)
    (path / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    shutil.copytree(REPO / "config" / "profiles", path / "config" / "profiles", dirs_exist_ok=True)
    return path


@pytest.fixture
def tiny_workdir(tmp_path):
    return write_workdir(tmp_path / "work", tiny_config())
