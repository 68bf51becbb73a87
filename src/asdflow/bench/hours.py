"""GPU hours per stage of a configuration, from step times measured on this machine's device.

`asdflow bench hours --configfile config/dcase2025.yaml` builds the configuration's encoder,
times real training steps of the pre-training (UFO) and fine-tuning (ArcFace MAC) objectives
and the embedding forward pass at the configuration's batch sizes, clip length and precision,
then multiplies by the steps and clips the configuration asks for. Data loading is not timed:
the stages read a memory-mapped log-mel cache, which costs a small fraction of a step.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from pathlib import Path

import pandas as pd
import torch

from asdflow import finetune, models, pretrain, train
from asdflow import workflow as plan
from asdflow.settings import from_mapping

# DCASE 2025 Task 2, development + evaluation sets: 15 machine types, each with 1000 normal
# training clips (990 source + 10 target) and 200 test clips.
DCASE2025_TRAIN_CLIPS = 15 * 1000
DCASE2025_TEST_CLIPS = 15 * 200


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(step, device: torch.device, warmup: int, repeats: int) -> float:
    """Median seconds of `step(i)` over `repeats` calls after `warmup` calls."""
    for i in range(warmup):
        step(i)
    _sync(device)
    times = []
    for i in range(warmup, warmup + repeats):
        start = time.perf_counter()
        step(i)
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def count_flops(step, i: int) -> float:
    """Floating-point operations of one call of `step` (matrix products, convolutions and
    attention, forward and backward), counted by torch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step(i)
    return float(counter.get_total_flops())


def _training_step(objective, batch: dict, loop: train.LoopSettings, device: torch.device):
    objective.to(device).train()
    groups = train.param_groups(objective, loop.weight_decay)
    optimizer = train.build_optimizer(loop.optimizer, groups, lr=loop.lr, betas=loop.betas)

    def step(i: int) -> None:
        with train.autocast_for(device, loop.precision):
            loss, _ = objective(batch, train.step_generator(loop.seed, i))
        train.optimizer_step(objective, optimizer, loss, loop.clip_grad)
        if hasattr(objective, "after_step"):
            objective.after_step(i + 1)

    return step


def _time_and_count(objective, batch, loop, device, warmup: int, repeats: int):
    step = _training_step(objective, batch, loop, device)
    seconds = time_steps(step, device, warmup, repeats)
    return seconds, count_flops(step, warmup + repeats)


def time_pretrain_step(
    model: str, settings: dict, n_frames: int, device: torch.device, warmup: int, repeats: int
) -> tuple[float, float]:
    """(median seconds, FLOPs) of one UFO training step at the settings' batch and clones."""
    s = from_mapping(pretrain.PretrainSettings, {**settings, "model": model})
    torch.manual_seed(0)
    objective = pretrain.UFOObjective(models.create_model(model), s)
    x = torch.randn(s.loop.batch_size, 1, n_frames, 128, device=device)
    return _time_and_count(objective, {"x": x}, s.loop, device, warmup, repeats)


def time_finetune_step(
    model: str,
    settings: dict,
    n_frames: int,
    classes: int,
    device: torch.device,
    warmup: int,
    repeats: int,
) -> tuple[float, float]:
    """(median seconds, FLOPs) of one ArcFace fine-tuning step at the settings' batch."""
    s = from_mapping(finetune.FinetuneSettings, settings)
    torch.manual_seed(0)
    objective = finetune.MACObjective(models.create_model(model, drop_path=s.drop_path), classes, s)
    batch = s.loop.batch_size
    x = torch.randn(batch, 1, n_frames, 128, device=device)
    y = torch.randint(classes, (batch,), device=device)
    return _time_and_count(objective, {"x": x, "y": y}, s.loop, device, warmup, repeats)


def time_embedding(
    model: str,
    n_frames: int,
    precision: str,
    device: torch.device,
    repeats: int,
    batch: int = 64,
    pooling: str = "mean",
) -> float:
    """Clips per second of the embedding forward pass (the embed and score stages)."""
    encoder = models.create_model(model).to(device).eval()
    x = torch.randn(batch, 1, n_frames, 128, device=device)

    @torch.no_grad()
    def step(i: int) -> None:
        with train.autocast_for(device, precision):
            encoder.embed(x, pooling=pooling)

    return batch / time_steps(step, device, 2, repeats)


def matmul_tflops(device: torch.device, n: int = 8192, repeats: int = 10) -> float:
    """The device's bf16 rate on one large matrix product of random data (the ceiling the
    training steps are compared with): median of `repeats` timed products after 3 warm-ups."""
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    seconds = time_steps(lambda i: a @ b, device, 3, repeats)
    return 2 * n**3 / seconds / 1e12


def stage_hours(
    config: dict,
    pretrain_seconds: float,
    finetune_seconds: float,
    embed_clips_per_s: float,
    train_clips: int,
    test_clips: int,
) -> pd.DataFrame:
    """One row per stage: the steps or clips the configuration asks for, and the device hours.
    Which encoders are pre-trained and clustered is the workflow's own plan (asdflow.workflow)."""
    pre, ft = config["pretrain"], config["finetune"]
    runs, seeds = ft["runs"], ft["seeds"]
    sources = plan.label_sources(config)
    rows = []
    for name in plan.pretrained_encoders(config):
        if name == "general" and pre["general"]["source"] == "import":
            rows.append(("pretrain general (imported)", 0, 0.0))
        else:
            rows.append((f"pretrain {name}", int(pre[name]["steps"]), pretrain_seconds))
    jobs = len(runs) * len(seeds)
    rows.append(
        (
            f"finetune ({len(runs)} runs x {len(seeds)} seeds)",
            jobs * ft["common"]["steps"],
            finetune_seconds,
        )
    )
    rows.append(
        (
            f"embed training clips ({len(sources)} encoders)",
            len(sources) * train_clips,
            1 / embed_clips_per_s,
        )
    )
    rows.append(
        (
            f"score ({jobs} models, train + test clips)",
            jobs * (train_clips + test_clips),
            1 / embed_clips_per_s,
        )
    )
    table = pd.DataFrame(rows, columns=["stage", "steps_or_clips", "seconds_each"])
    table["hours"] = table["steps_or_clips"] * table["seconds_each"] / 3600
    return table


def bench_hours(
    configfiles: list[Path],
    train_clips: int = DCASE2025_TRAIN_CLIPS,
    test_clips: int = DCASE2025_TEST_CLIPS,
    model: str = "",
    n_frames: int = 0,
    warmup: int = 3,
    repeats: int = 10,
    classes: int = 100,
    out: Path | None = None,
) -> pd.DataFrame:
    default = Path("config/config.yaml")
    if not default.is_file():
        raise FileNotFoundError(
            f"{default.resolve()} not found: run `asdflow bench hours` in the workflow's folder"
        )
    config = plan.load_config([default, *configfiles])
    model = model or config["pretrain"]["model"]
    n_frames = n_frames or int(config["features"]["n_frames"])
    device = train.pick_device()
    pre = plan.pretrain_settings(config, "dap")
    ft = plan.finetune_settings(config, 0)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"CPU, {torch.get_num_threads()} threads"
    header = {
        "device": name,
        "torch": torch.__version__,
        "model": model,
        "encoder_parameters_M": models.count_parameters(models.create_model(model)) / 1e6,
        "n_frames": n_frames,
        "pretrain_batch_x_clones": f"{pre['batch_size']} x {pre['clone_batch']}",
        "finetune_batch": ft["batch_size"],
        "precision": f"pretrain {pre.get('precision', 'auto')}, "
        f"finetune {ft.get('precision', 'auto')}",
    }
    pretrain_s, pretrain_flops = time_pretrain_step(model, pre, n_frames, device, warmup, repeats)
    peak_pre = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    finetune_s, finetune_flops = time_finetune_step(
        model, ft, n_frames, classes, device, warmup, repeats
    )
    embed_rate = time_embedding(model, n_frames, ft.get("precision", "auto"), device, repeats)
    ceiling = matmul_tflops(device) if device.type == "cuda" else None
    header.update(
        pretrain_seconds_per_step=pretrain_s,
        pretrain_TFLOP_per_step=pretrain_flops / 1e12,
        pretrain_TFLOP_per_s=pretrain_flops / pretrain_s / 1e12,
        pretrain_peak_GiB=peak_pre,
        finetune_seconds_per_step=finetune_s,
        finetune_TFLOP_per_step=finetune_flops / 1e12,
        finetune_TFLOP_per_s=finetune_flops / finetune_s / 1e12,
        embed_clips_per_s=embed_rate,
        bf16_matmul_TFLOP_per_s=ceiling,
    )
    if ceiling:
        header["pretrain_share_of_matmul_rate"] = header["pretrain_TFLOP_per_s"] / ceiling
        header["finetune_share_of_matmul_rate"] = header["finetune_TFLOP_per_s"] / ceiling
    table = stage_hours(config, pretrain_s, finetune_s, embed_rate, train_clips, test_clips)
    width = max(map(len, header))
    for key, value in header.items():
        text = f"{value:.4g}" if isinstance(value, float) else str(value)
        print(f"{key:<{width}}  {text}")
    print()
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"total: {table['hours'].sum():.1f} hours on one {name}")
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(
            json.dumps({**header, "stages": table.to_dict(orient="records")}, indent=2)
        )
    return table


def bench_precision(
    configfiles: list[Path],
    models_: tuple[str, ...] = ("eat_tiny", "eat_small"),
    threads: tuple[int, ...] = (1, 2),
    warmup: int = 3,
    repeats: int = 10,
    classes: int = 40,
) -> pd.DataFrame:
    """float32 vs bf16 autocast step times, side by side in one run, of the configuration's
    pre-training and fine-tuning steps and of the embedding pass (a batch of 64 clips) on this
    machine's CPU (or GPU), per encoder size and thread count. Prints the table, the bf16
    speed-up of each row, and whether "native" precision picks bf16 here. On CPU the training
    rows also time the plain bf16 path (attention and patch-embedding gradients in bf16, not
    float32: models.FLOAT32_CPU_BACKWARD) and the speed-up the float32 backward gives."""
    config = plan.load_config([Path("config/config.yaml"), *configfiles])
    n_frames = int(config["features"]["n_frames"])
    device = train.pick_device()
    pre = plan.pretrain_settings(config, "dap")
    ft = plan.finetune_settings(config, 0)
    rows = []
    for n_threads in threads if device.type == "cpu" else (torch.get_num_threads(),):
        torch.set_num_threads(n_threads)
        for model in models_:
            timers = {
                "pretrain": lambda p, model=model: time_pretrain_step(
                    model, {**pre, "precision": p}, n_frames, device, warmup, repeats
                ),
                "finetune": lambda p, model=model: time_finetune_step(
                    model, {**ft, "precision": p}, n_frames, classes, device, warmup, repeats
                ),
                # the embed and score stages: one batch of 64 clips through the encoder, as
                # (seconds, FLOPs) like the other timers; its FLOPs are not counted
                "embed (64 clips)": lambda p, model=model: (
                    64 / time_embedding(model, n_frames, p, device, repeats, 64, ft["pooling"]),
                    None,
                ),
            }
            for stage, timer in timers.items():
                seconds = {precision: timer(precision)[0] for precision in ("fp32", "bf16")}
                # the plain bf16 path: attention and patch-embedding gradients in bf16 too
                plain = math.nan
                if device.type == "cpu" and not stage.startswith("embed"):
                    models.FLOAT32_CPU_BACKWARD = False
                    try:
                        plain = timer("bf16")[0]
                    finally:
                        models.FLOAT32_CPU_BACKWARD = True
                rows.append(
                    {
                        "threads": n_threads,
                        "model": model,
                        "stage": stage,
                        "fp32_s_per_step": seconds["fp32"],
                        "bf16_s_per_step": seconds["bf16"],
                        "bf16_speedup": seconds["fp32"] / seconds["bf16"],
                        "plain_bf16_s_per_step": plain,
                        "float32_backward_speedup": plain / seconds["bf16"],
                    }
                )
    table = pd.DataFrame(rows)
    print(
        f"device: {device}, torch {torch.__version__}, {n_frames} frames per clip; "
        f"precision 'native' is {'bf16' if train.native_bf16(device) else 'fp32'} here"
    )
    print(
        f"pretrain batch x clones {pre['batch_size']} x {pre['clone_batch']}, "
        f"finetune batch {ft['batch_size']}"
    )
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    return table
