"""Pre-training benchmarks: `asdflow bench clones` (student clips/s with and without EAT's
clones), `asdflow bench adamw` (the optimizer step, Python loop vs fused) and
`asdflow bench pretrain-memory` (peak memory of one pre-training step on CPU)."""

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


def step_flops(step, i: int) -> float:
    """FLOPs of one full training step (forward, backward), counted by torch's FlopCounterMode
    (matrix products and convolutions; element-wise work and AdamW are not counted)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step(i)
    return float(counter.get_total_flops())


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
    Also the ratio of the two steps' counted FLOPs: the speed-up the clones would give if every
    FLOP ran at the same rate (the teacher's share of the work bounds it).
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
        result[f"clone{clones}_gflop_per_step"] = step_flops(step, steps + 1) / 1e9
        if profile_steps:
            phases[f"clone_batch {clones} (s/step)"] = phase_seconds(step, steps + 1, profile_steps)
    result["ratio_student_clips_per_s_16_vs_1"] = (
        result["clone16_student_clips_per_s"] / result["clone1_student_clips_per_s"]
    )
    result["ratio_flop_bound_16_vs_1"] = (
        result["clone1_gflop_per_step"] / result["clone16_gflop_per_step"]
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


def bench_adamw(model: str = "eat_tiny", steps: int = 20) -> dict:
    """Seconds per AdamW step over the parameters of the pre-training objective (encoder and
    decoder) and of the fine-tuning one (encoder and head): torch's loop over the parameters
    against the fused kernel the training loop uses, side by side in one run, with the largest
    parameter difference after `steps` identical updates."""
    from asdflow import finetune, models, pretrain, train

    torch.manual_seed(0)
    objectives = {
        "pretrain": pretrain.UFOObjective(
            models.create_model(model), pretrain.PretrainSettings(model=model)
        ),
        "finetune": finetune.MACObjective(
            models.create_model(model), 40, finetune.FinetuneSettings()
        ),
    }
    result = {"model": model, "threads": torch.get_num_threads()}
    for stage, objective in objectives.items():
        params = {}
        for fused in (False, True):
            copies = [
                p.detach().clone().requires_grad_()
                for p in objective.parameters()
                if p.requires_grad
            ]
            generator = torch.Generator().manual_seed(1)
            grads = [torch.randn(p.shape, generator=generator) for p in copies]
            optimizer = train.build_optimizer(
                "adamw", [{"params": copies, "weight_decay": 0.05}], 1e-3, (0.9, 0.95), fused
            )
            for p, g in zip(copies, grads, strict=True):
                p.grad = g
            optimizer.step()  # warm-up, state allocated
            start = time.perf_counter()
            for _ in range(steps):
                optimizer.step()
            name = "fused" if fused else "loop"
            result[f"{stage}_{name}_ms_per_step"] = (time.perf_counter() - start) / steps * 1e3
            params[name] = copies
        result[f"{stage}_ratio_loop_vs_fused"] = (
            result[f"{stage}_loop_ms_per_step"] / result[f"{stage}_fused_ms_per_step"]
        )
        result[f"{stage}_max_param_difference"] = max(
            float((a - b).detach().abs().max())
            for a, b in zip(params["loop"], params["fused"], strict=True)
        )
        result[f"{stage}_parameters_M"] = sum(p.numel() for p in params["fused"]) / 1e6
    print_figures(result)
    return result
