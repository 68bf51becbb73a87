"""Pre-training benchmarks: `asdflow bench clones` (student clips/s with and without EAT's
clones) and `asdflow bench pretrain-memory` (peak memory of one pre-training step on CPU)."""

from __future__ import annotations

import time

import torch
from torch.profiler import ProfilerActivity, profile, record_function

from asdflow.bench.printing import print_figures


def _pretrain_step_timer(model: str, batch: int, clones: int, n_frames: int, precision: str):
    """A ready UFO objective + optimizer and a function running one full training step."""
    from asdflow import models, pretrain, train

    torch.manual_seed(0)
    settings = pretrain.PretrainSettings(model=model, clone_batch=clones)
    objective = pretrain.UFOObjective(models.create_model(model), settings)
    optimizer = train.build_optimizer(
        "adamw", train.param_groups(objective, 0.05), lr=1e-4, betas=(0.9, 0.95)
    )
    x = torch.randn(batch, 1, n_frames, 128)
    device = torch.device("cpu")

    def step(i: int) -> None:
        with train.autocast_for(device, precision):
            loss, _ = objective({"x": x}, train.step_generator(0, i))
        with record_function("step.backward_and_adamw"):
            train.optimizer_step(objective, optimizer, loss, clip_grad=None)
        with record_function("step.ema"):
            objective.after_step(i + 1)

    return objective, step


def phase_seconds(step, first: int, steps: int) -> dict[str, float]:
    """Seconds per step of each labelled phase of the pre-training step (the `ufo.*` regions
    of UFOObjective.forward, backward with AdamW, the EMA update), from torch's profiler."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for i in range(first, first + steps):
            step(i)
    return {
        event.key: event.cpu_time_total / 1e6 / steps
        for event in prof.key_averages()
        if event.key.startswith(("ufo.", "step."))
    }


def bench_clones(
    model: str = "eat_tiny",
    rows: int = 32,
    n_frames: int = 192,
    steps: int = 10,
    precision: str = "fp32",
    profile_steps: int = 0,
) -> dict:
    """Student clips/s with clone_batch 16 against 1 at the same number of student rows per
    step (EAT's claim: clones amortise the teacher pass and the data loading). One run.
    With `profile_steps`, also where a step's time goes, phase by phase, for both."""
    result = {"model": model, "student_rows_per_step": rows, "n_frames": n_frames, "steps": steps}
    phases = {}
    for clones in (1, 16):
        _, step = _pretrain_step_timer(model, rows // clones, clones, n_frames, precision)
        step(0)  # warm-up
        start = time.perf_counter()
        for i in range(1, steps + 1):
            step(i)
        seconds = (time.perf_counter() - start) / steps
        result[f"clone{clones}_seconds_per_step"] = seconds
        result[f"clone{clones}_student_clips_per_s"] = rows / seconds
        result[f"clone{clones}_distinct_clips_per_s"] = rows / clones / seconds
        if profile_steps:
            phases[f"clone_batch {clones} (s/step)"] = phase_seconds(step, steps + 1, profile_steps)
    result["ratio_student_clips_per_s_16_vs_1"] = (
        result["clone16_student_clips_per_s"] / result["clone1_student_clips_per_s"]
    )
    print_figures(result)
    if phases:
        import pandas as pd

        table = pd.DataFrame(phases).sort_index()
        table.loc["sum of the phases"] = table.sum()
        print(f"\nWhere a step's time goes (torch profiler, {profile_steps} steps each):")
        print(table.round(4).to_string())
        result["phases"] = table.to_dict()
    return result


def bench_pretrain_memory(
    model: str = "eat_base",
    batch: int = 12,
    clones: int = 16,
    n_frames: int = 1024,
    precision: str = "fp32",
) -> dict:
    """Peak resident memory of one pre-training step (forward, backward, AdamW, EMA) on CPU.

    Reported as the process's peak RSS and its increase over the RSS after building the model
    and optimizer state; run it in a fresh process, since the peak never goes down.
    """
    import resource

    def rss_gib() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB

    torch.set_num_threads(max(1, torch.get_num_threads()))
    objective, step = _pretrain_step_timer(model, batch, clones, n_frames, precision)
    before = rss_gib()
    start = time.perf_counter()
    step(0)
    seconds = time.perf_counter() - start
    from asdflow import models

    cfg = objective.student.cfg
    time_patches, freq = objective.student.grid(n_frames)
    kept = int(time_patches * freq * 0.2)
    result = {
        "model": model,
        "batch_x_clones": f"{batch} x {clones}",
        "n_frames": n_frames,
        "precision": precision,
        "encoder_parameters_M": models.count_parameters(objective.student) / 1e6,
        "peak_rss_GiB": rss_gib(),
        "rss_before_step_GiB": before,
        "step_increase_GiB": rss_gib() - before,
        "step_seconds": seconds,
        "student_tokens_per_step": batch * clones * (kept + 1),
        "embed_dim": cfg.embed_dim,
    }
    print_figures(result)
    return result
