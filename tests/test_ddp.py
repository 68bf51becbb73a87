"""Pre-training under torchrun: two CPU processes with the gloo backend, DistributedDataParallel."""

import json
import os
import subprocess
import sys

import pytest
import torch
from test_pretrain import write_cache

from asdflow import checkpoint


@pytest.mark.slow
def test_two_process_gloo_run(tmp_path):
    prefix = write_cache(tmp_path / "cache", n=32)
    settings = {
        "model": "eat_tiny",
        "clone_batch": 2,
        "steps": 6,
        "batch_size": 4,
        "lr": 5e-4,
        "warmup_steps": 2,
        "log_every": 3,
        "checkpoint_every": 3,
    }
    out = tmp_path / "model.pt"
    stats = tmp_path / "stats.json"
    stats.write_text(json.dumps({"mean": 0.0, "std": 0.5, "source": "fixed"}))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "asdflow",  # as the workflow's runner launches it
            "pretrain",
            "--cache",
            f"{prefix}.npy",
            "--settings",
            json.dumps(settings),
            "--norm-stats",
            str(stats),
            "--out",
            str(out),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = [json.loads(x) for x in (tmp_path / "model.metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [3, 6]  # rank 0 alone writes
    assert all(x["processes"] == 2 for x in lines)
    state = checkpoint.load_checkpoint(out)
    assert state["step"] == 6
    encoder, _ = checkpoint.encoder_from_checkpoint(out)
    assert torch.isfinite(encoder.embed(torch.zeros(1, 1, 32, 128))).all()
