"""The training loop shared by pre-training and fine-tuning: data from the log-mel cache, AdamW with
parameter groups, warm-up + cosine schedule, NaN guard, JSON metric lines, atomic checkpoints and
resume, and DistributedDataParallel when launched by torchrun.

An *objective* is an nn.Module whose forward takes a batch (a dict of tensors: "x" the (B, 1, T, F)
log-mel, "y" labels where there are any) and the step's random generator and returns
(loss, metrics); it may define `after_step(step)` (e.g. the EMA teacher
update) and `checkpoint_state()` / `load_checkpoint_state(state)` for what it keeps besides the
optimised weights.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from asdflow import checkpoint, features

# --- data ---------------------------------------------------------------------------------------


class CachedClips:
    """Clips of several cached splits as one indexable set of normalised (1, T, F) tensors."""

    def __init__(self, prefixes: Sequence[str | Path], stats: features.NormStats):
        self.arrays = [features.open_cache(f"{p}.npy") for p in prefixes]
        self.arrays = [a for a in self.arrays if a.shape[0] > 0]
        if not self.arrays:
            raise ValueError(f"no clips in the cached splits {list(map(str, prefixes))}")
        shapes = {a.shape[1:] for a in self.arrays}
        if len(shapes) > 1:
            raise ValueError(
                f"cached splits have different (frames, mels) shapes: {sorted(shapes)}"
            )
        self.offsets = np.cumsum([0] + [a.shape[0] for a in self.arrays])
        self.stats = stats

    def __len__(self) -> int:
        return int(self.offsets[-1])

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.arrays[0].shape[1:])

    def clips(self, indices: np.ndarray) -> torch.Tensor:
        """(B, 1, T, F) float32 normalised log-mel of the clips at `indices`."""
        which = np.searchsorted(self.offsets, indices, side="right") - 1
        rows = [self.arrays[w][i - self.offsets[w]] for w, i in zip(which, indices, strict=True)]
        return torch.from_numpy(self.stats.apply(np.stack(rows))).unsqueeze(1)

    def batch(self, indices: np.ndarray) -> dict[str, torch.Tensor]:
        return {"x": self.clips(indices)}


class ClipSubset:
    """The clips of `data` at `rows` (e.g. the training part of a held-back split), indexed
    0..len(rows)-1 like a cached set of their own."""

    def __init__(self, data: CachedClips, rows: np.ndarray):
        self.data, self.rows = data, np.asarray(rows, dtype=np.int64)
        if len(self.rows) == 0:
            raise ValueError("a clip subset needs at least one clip")

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def shape(self) -> tuple[int, int]:
        return self.data.shape

    def batch(self, indices: np.ndarray) -> dict[str, torch.Tensor]:
        return self.data.batch(self.rows[np.asarray(indices)])


class LabelledClips(CachedClips):
    """Cached clips with one integer class label per clip (rows in cache order)."""

    def __init__(self, prefixes, stats: features.NormStats, labels: np.ndarray):
        super().__init__(prefixes, stats)
        if len(labels) != len(self):
            raise ValueError(f"{len(labels)} labels for {len(self)} cached clips")
        self.labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)

    def batch(self, indices: np.ndarray) -> dict[str, torch.Tensor]:
        return {"x": self.clips(indices), "y": self.labels[torch.as_tensor(indices)]}


def batch_indices(step: int, batch_size: int, n: int, seed: int) -> np.ndarray:
    """Global batch of a step: consecutive slices of per-epoch permutations, stateless, so a
    resumed run sees exactly the batches an uninterrupted one would."""
    positions = np.arange(step * batch_size, (step + 1) * batch_size)
    epochs, offsets = np.divmod(positions, n)
    out = np.empty(batch_size, dtype=np.int64)
    for epoch in np.unique(epochs):
        perm = np.random.default_rng([seed, int(epoch)]).permutation(n)
        out[epochs == epoch] = perm[offsets[epochs == epoch]]
    return out


def step_seed(seed: int, step: int, rank: int = 0) -> int:
    return int(np.random.SeedSequence([seed, step, rank]).generate_state(1)[0])


def step_generator(seed: int, step: int, rank: int = 0) -> torch.Generator:
    """Random stream of one step (masks, noise), independent of how the run was interrupted."""
    return torch.Generator().manual_seed(step_seed(seed, step, rank))


# --- optimisation -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Schedule:
    """Linear warm-up from 0 to `peak`, then cosine down to `final` at `total` steps."""

    peak: float
    warmup: int
    total: int
    final: float = 0.0

    def lr_at(self, step: int) -> float:
        if step < self.warmup:
            return self.peak * (step + 1) / self.warmup
        progress = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
        return self.final + 0.5 * (self.peak - self.final) * (1 + math.cos(math.pi * progress))


def generator_on(generator: torch.Generator, device: torch.device) -> torch.Generator:
    """`generator` itself on the CPU; on an accelerator a generator there, seeded from it, so that
    large random tensors are drawn where they are used instead of copied over each step."""
    if device.type == "cpu":
        return generator
    seed = int(torch.randint(2**62, (1,), generator=generator))
    return torch.Generator(device=device).manual_seed(seed)


def param_groups(
    module: nn.Module, weight_decay: float, lr_scale: Callable[[str], float] | None = None
):
    """AdamW groups: no weight decay on biases, norms and other 1-D parameters (as the reference).

    `lr_scale(name)` (e.g. layer-wise decay in fine-tuning) multiplies a parameter's learning rate.
    """
    groups: dict[tuple[float, float], list] = defaultdict(list)
    for name, param in module.named_parameters():
        if not param.requires_grad:
            continue
        no_decay = param.ndim <= 1 or name.endswith(".bias")
        scale = lr_scale(name) if lr_scale else 1.0
        groups[(0.0 if no_decay else weight_decay, scale)].append(param)
    return [
        {"params": params, "weight_decay": wd, "lr_scale": scale}
        for (wd, scale), params in groups.items()
    ]


def build_optimizer(
    name: str, groups: list, lr: float, betas: Sequence[float], fused: bool | None = None
) -> torch.optim.Optimizer:
    """AdamW over `groups`. `fused` (None: wherever torch has the kernel, i.e. every parameter
    on the CPU or a GPU) updates all parameters in one kernel instead of a Python loop over
    them: the same update within float rounding, 3x faster for eat_tiny on CPU
    (`asdflow bench adamw`)."""
    if name != "adamw":
        raise ValueError(f"Unsupported optimizer {name!r}: use 'adamw'")
    if fused is None:
        fused = all(p.device.type in ("cpu", "cuda") for g in groups for p in g["params"])
    # fused=None (not False) leaves torch its own choice of the unfused implementation
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), fused=fused or None)


def optimizer_step(
    objective: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss: torch.Tensor,
    clip_grad: float | None,
) -> torch.Tensor | None:
    """One update from `loss`: gradients, clipping to `clip_grad` (None: no clipping), the
    optimizer's step. Returns the gradient norm before clipping (None without clipping)."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    norm = None
    if clip_grad is not None:
        norm = nn.utils.clip_grad_norm_(objective.parameters(), clip_grad)
    optimizer.step()
    return norm


# --- distributed --------------------------------------------------------------------------------


def init_distributed() -> tuple[int, int]:
    """(rank, world size); joins the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            local = int(os.environ.get("LOCAL_RANK", "0"))
            torch.cuda.set_device(local)
            # a job's shapes are fixed: let cuDNN time its algorithms once and keep the fastest
            # (scripts/cudnn-autotuner-ab.py: fine-tuning steps 9 % faster on an H200)
            torch.backends.cudnn.benchmark = True
            return torch.device("cuda", local)
        return torch.device("cpu")
    return torch.device(name)


PRECISIONS = ("auto", "native", "fp32", "bf16")


def native_bf16(device: torch.device) -> bool:
    """Whether `device` computes bf16 matrix products in hardware: a GPU, or a CPU with AMX
    tiles (Intel Sapphire Rapids and later). Elsewhere bf16 autocast on CPU is slower than
    float32 (`asdflow bench precision`)."""
    if device.type == "cuda":
        return True
    if device.type != "cpu":
        return False
    amx = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool(amx and amx())


def autocast_for(device: torch.device, precision: str):
    """bf16 autocast: on GPU by default ("auto"); "native": wherever the hardware computes bf16
    (GPU, AMX CPU), else float32; "bf16" always, "fp32" never."""
    if precision not in PRECISIONS:
        raise ValueError(f"Unsupported precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    bf16 = (
        precision == "bf16"
        or (precision == "auto" and device.type == "cuda")
        or (precision == "native" and native_bf16(device))
    )
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext()


# --- the loop -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoopSettings:
    steps: int
    batch_size: int  # global: split across ranks
    lr: float
    warmup_steps: int
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.95)
    optimizer: str = "adamw"
    clip_grad: float = 4.0
    min_lr: float = 0.0
    seed: int = 0
    log_every: int = 10
    checkpoint_every: int = 100
    precision: str = "auto"
    max_bad_steps: int = 10  # consecutive non-finite losses before giving up


class NonFiniteLoss(RuntimeError):
    pass


def _unwrap(module: nn.Module) -> nn.Module:
    return module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module


def run_training(
    objective: nn.Module,
    data: CachedClips,
    loop: LoopSettings,
    resume_path: Path,
    metrics_path: Path,
    describe: Callable[[nn.Module], dict],
    lr_scale: Callable[[str], float] | None = None,
    device: torch.device | None = None,
    progress: bool = True,
    evaluate: Callable[[nn.Module], dict] | None = None,
) -> nn.Module:
    """Train `objective` for `loop.steps` steps, resuming from `resume_path` when it matches.

    `describe(objective)` returns the checkpoint body (see checkpoint.make_state) without the
    loop's own entries; the resume file adds optimizer, step and the objective's extra state.
    `evaluate(objective)`, when given, runs at every metric line (in eval mode, without
    gradients) and its figures join that line.
    """
    rank, world = init_distributed()
    device = device or pick_device()
    if loop.batch_size % world:
        raise ValueError(f"batch_size {loop.batch_size} not divisible by {world} processes")
    objective.to(device)
    groups = param_groups(objective, loop.weight_decay, lr_scale)
    optimizer = build_optimizer(loop.optimizer, groups, loop.lr, loop.betas)
    schedule = Schedule(loop.lr, loop.warmup_steps, loop.steps, loop.min_lr)
    start = _resume(objective, optimizer, resume_path, describe, rank)
    if rank == 0:
        _truncate_metrics(metrics_path, start)
    model = (
        nn.parallel.DistributedDataParallel(
            objective, device_ids=[device.index] if device.type == "cuda" else None
        )
        if world > 1
        else objective
    )
    meter: dict[str, list[float]] = defaultdict(list)
    bad_steps, tick = 0, time.perf_counter()
    local = loop.batch_size // world
    bar = tqdm(
        range(start, loop.steps), initial=start, total=loop.steps, disable=not progress or rank > 0
    )
    for step in bar:
        lr = schedule.lr_at(step)
        for group in optimizer.param_groups:
            group["lr"] = lr * group["lr_scale"]
        indices = batch_indices(step, loop.batch_size, len(data), loop.seed)[
            rank * local : (rank + 1) * local
        ]
        batch = {k: v.to(device, non_blocking=True) for k, v in data.batch(indices).items()}
        torch.manual_seed(step_seed(loop.seed, step, rank) + 1)  # dropout, augmentation: resumable
        with autocast_for(device, loop.precision):
            loss, metrics = model(batch, step_generator(loop.seed, step, rank))
        if not torch.isfinite(loss):
            bad_steps += 1
            optimizer.zero_grad(set_to_none=True)
            if bad_steps >= loop.max_bad_steps:
                raise NonFiniteLoss(
                    f"loss not finite for {bad_steps} consecutive steps (step {step})"
                )
            continue  # NaN guard: skip the update, keep the weights
        bad_steps = 0
        grad_norm = optimizer_step(objective, optimizer, loss, loop.clip_grad)
        if hasattr(objective, "after_step"):
            objective.after_step(step)
        for key, value in {
            **metrics,
            "loss": loss.detach(),
            "grad_norm": grad_norm,
            "lr": lr,
        }.items():
            meter[key].append(float(value))
        done = step + 1
        if done % loop.log_every == 0 or done == loop.steps:
            line = {"step": done, **{k: float(np.mean(v)) for k, v in meter.items()}}
            line["seconds_per_step"] = (time.perf_counter() - tick) / len(meter["loss"])
            line["processes"] = world
            if evaluate is not None and rank == 0:
                line.update(_evaluated(objective, evaluate))
            if rank == 0:
                with open(metrics_path, "a") as f:
                    f.write(json.dumps(line) + "\n")
                bar.set_postfix(loss=f"{line['loss']:.4f}")
            meter.clear()
            tick = time.perf_counter()
        if rank == 0 and (done % loop.checkpoint_every == 0 or done == loop.steps):
            _save_resume(objective, optimizer, resume_path, describe, done)
    if world > 1:
        dist.barrier()
    return objective


def save_final(out_path: Path, state: dict, resume_path: Path) -> None:
    """Write the finished job's checkpoint, read it back, then delete the resume file.

    The resume file of a finished run weighs as much as the model and its optimizer (about
    1 GB for eat_base); once the final checkpoint is known good it is no longer needed. A job
    killed before this point still finds the resume file at the last step and only rewrites
    the output.
    """
    checkpoint.save_checkpoint(out_path, state)
    if checkpoint.load_checkpoint(out_path).get("step") != state.get("step"):
        raise checkpoint.CheckpointError(f"{out_path}: the written checkpoint does not read back")
    Path(resume_path).unlink(missing_ok=True)


def _truncate_metrics(path: Path, start: int) -> None:
    """Keep only the metric lines up to the resumed step, so a resumed run repeats none."""
    path = Path(path)
    if not path.is_file():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            step = json.loads(line).get("step", 0)
        except json.JSONDecodeError:
            break  # a line cut short by the kill, and anything after it
        if step > start:
            break
        kept.append(line + "\n")
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(kept))
    os.replace(tmp, path)


def _evaluated(objective: nn.Module, evaluate: Callable[[nn.Module], dict]) -> dict:
    """`evaluate(objective)` in eval mode without gradients, training mode restored after."""
    was_training = objective.training
    objective.eval()
    try:
        with torch.no_grad():
            return {k: float(v) for k, v in evaluate(objective).items()}
    finally:
        objective.train(was_training)


def _save_resume(objective, optimizer, path: Path, describe, step: int) -> None:
    extra = objective.checkpoint_state() if hasattr(objective, "checkpoint_state") else {}
    state = {**describe(objective), **extra, "optimizer": optimizer.state_dict(), "step": step}
    checkpoint.save_checkpoint(path, state)


def _resume(objective, optimizer, path: Path, describe, rank: int) -> int:
    """Load the resume file when it exists and was made with the same settings; else start at 0."""
    if not Path(path).is_file():
        return 0
    state = checkpoint.load_checkpoint(path)
    if state.get("settings") != describe(objective)["settings"]:
        if rank == 0:
            print(f"{path}: made with other settings, starting afresh")
        return 0
    _unwrap(objective).load_checkpoint_state(state)
    optimizer.load_state_dict(state["optimizer"])
    if rank == 0:
        print(f"{path}: resuming at step {state['step']}")
    return int(state["step"])
