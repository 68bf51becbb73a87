"""EAT pre-training (the UFO objective) and domain-adaptive pre-training (DAP) on cached log-mel.

Student: masked clones of each clip (inverse block masking, an independent mask per clone) through
the encoder, then a light CNN decoder predicts the teacher's targets at the masked positions
(frame loss Lf) and the student's CLS output regresses their clip mean (utterance loss Lu).
Teacher: an EMA copy of the encoder on the unmasked clip. It follows official
EAT's pre-training; every constant is a setting whose default is the official value.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.profiler import record_function

from asdflow import checkpoint, features, models, train
from asdflow.settings import FLATTEN


@dataclass(frozen=True)
class PretrainSettings:
    model: str = "eat_base"
    clone_batch: int = 16
    mask_prob: float = 0.8
    mask_prob_adjust: float = 0.07
    mask_length: int = 5
    decoder_noise_std: float = 0.01
    top_k_layers: int = 0  # teacher blocks averaged into the target; 0 = all
    # Lu weight per clone row. None = the reference trainer's effective weight: the number of
    # clone rows per process (its CLS loss is summed over rows while Lf is a per-token mean).
    utterance_weight: float | None = None
    ema_decay: float = 0.9998
    ema_end_decay: float = 0.99999
    ema_anneal_steps: int = 100_000
    # Representation-collapse guard of EAT's trainer (from data2vec 2.0): after `collapse_after`
    # updates, stop when the targets' or the predictions' spread falls below these floors.
    min_target_var: float = 0.1
    min_pred_var: float = 0.01
    collapse_after: int = 5000
    # the training loop's settings, given in the same flat object (asdflow.settings)
    loop: train.LoopSettings = field(
        metadata=FLATTEN,
        default_factory=lambda: train.LoopSettings(
            steps=400_000, batch_size=12, lr=5e-4, warmup_steps=53_333, clip_grad=4.0
        ),
    )

    def to_dict(self) -> dict:
        return asdict(self)


# --- masking ------------------------------------------------------------------------------------


def inverse_block_mask(
    rows: int,
    grid: tuple[int, int],
    mask_prob: float = 0.8,
    mask_prob_adjust: float = 0.07,
    block: int = 5,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """EAT's inverse block mask: (rows, H*W) bool, True = masked, exactly int(L * (1 - p)) kept.

    Kept tokens are `block` x `block` squares (clamped at the grid's edges) around
    int(L * (1 - p + adjust) / block^2) random centres; the kept set is then trimmed or topped
    up uniformly at random to the exact count (102 of 512 for EAT-base shapes).
    """
    h, w = grid
    length = h * w
    keep_prob = 1.0 - mask_prob
    n_keep = int(length * keep_prob)
    n_centres = int(length * (keep_prob + mask_prob_adjust) / block**2)
    kept = torch.zeros(rows, h, w, dtype=torch.bool)
    if n_centres > 0:
        centres = torch.randint(0, length, (rows, n_centres), generator=generator)
        ct, cf = centres // w, centres % w  # (rows, n_centres) each
        offsets = torch.arange(block) - block // 2
        t = (ct[:, :, None, None] + offsets[:, None]).clamp(0, h - 1)  # (rows, n, block, 1)
        f = (cf[:, :, None, None] + offsets[None, :]).clamp(0, w - 1)  # (rows, n, 1, block)
        t, f = torch.broadcast_tensors(t, f)
        r = torch.arange(rows)[:, None, None, None].expand_as(t)
        kept[r.reshape(-1), t.reshape(-1), f.reshape(-1)] = True
    kept = kept.view(rows, length)
    # Exact count: random priority, block tokens first; the top n_keep stay kept.
    priority = kept.float() + torch.rand(rows, length, generator=generator)
    keep_idx = priority.topk(n_keep, dim=1).indices
    mask = torch.ones(rows, length, dtype=torch.bool)
    mask.scatter_(1, keep_idx, False)
    return mask


# --- the objective ------------------------------------------------------------------------------


def spread(x: torch.Tensor) -> torch.Tensor:
    """Mean over channels of the standard deviation over all other axes of x (..., D): the
    "variance" EAT and data2vec 2.0 log for targets and predictions (collapse makes it ~0)."""
    x = x.detach().float().reshape(-1, x.shape[-1])
    return torch.sqrt(x.var(dim=0) + 1e-6).mean()


class RepresentationCollapse(RuntimeError):
    pass


def ema_decay_at(step: int, start: float, end: float, anneal_steps: int) -> float:
    """Linear from `start` to `end` over `anneal_steps` updates, then constant."""
    if step >= anneal_steps:
        return end
    return end - (end - start) * (1 - step / anneal_steps)


class UFOObjective(nn.Module):
    """Student encoder + decoder (trained) and the EMA teacher (no gradients)."""

    def __init__(self, encoder: models.EATEncoder, settings: PretrainSettings):
        super().__init__()
        self.settings = settings
        self.student = encoder
        self.decoder = models.Decoder2d(encoder.cfg)
        self.teacher = copy.deepcopy(encoder)
        self.teacher.requires_grad_(False)
        self.teacher.eval()

    def train(self, mode: bool = True):
        super().train(mode)
        self.teacher.eval()  # the teacher never trains
        return self

    @torch.no_grad()
    def targets(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, D) targets: instance-normed FFN outputs of the top-K teacher blocks, averaged,
        then layer-normed over channels (all in float32)."""
        _, ffn = self.teacher.forward_tokens(self.teacher.tokens(x))
        k = self.settings.top_k_layers or len(ffn)
        layers = [
            F.instance_norm(t[:, 1:].float().transpose(1, 2)).transpose(1, 2) for t in ffn[-k:]
        ]
        y = torch.stack(layers).sum(0) / k
        return F.layer_norm(y, y.shape[-1:])

    def forward(self, batch: dict, generator: torch.Generator) -> tuple[torch.Tensor, dict]:
        # Phases are labelled for the profiler (`asdflow bench clones --profile`).
        s = self.settings
        x = batch["x"]
        b, clones = x.shape[0], s.clone_batch
        with record_function("ufo.teacher"):
            y = self.targets(x)  # (B, N, D)
        with record_function("ufo.mask"):
            tokens = self.student.tokens(x)  # (B, N, D), positions added
            grid = self.student.grid(x.shape[-2])
            n, d = tokens.shape[1], tokens.shape[2]
            mask = inverse_block_mask(
                b * clones, grid, s.mask_prob, s.mask_prob_adjust, s.mask_length, generator
            ).to(x.device)  # (B*C, N), row c of clip i at i*C + c
            keep = (~mask).nonzero()[:, 1].view(b * clones, -1)  # (B*C, K) kept token indices
            tokens = tokens.repeat_interleave(clones, dim=0)  # (B*C, N, D)
        with record_function("ufo.student"):
            out, _ = self.student.forward_tokens(tokens, keep)  # (B*C, 1+K, D)

        with record_function("ufo.decoder"):
            noise = torch.randn(
                b * clones,
                n,
                d,
                generator=train.generator_on(generator, out.device),
                device=out.device,
            ).to(out.dtype)
            filled = (noise * s.decoder_noise_std).scatter(
                1, keep.unsqueeze(-1).expand(-1, -1, d), out[:, 1:]
            )  # (B*C, N, D): student outputs at kept slots, noise at masked ones
            pred = self.decoder(filled, grid)  # (B*C, N, D)

        with record_function("ufo.loss"):
            y = y.repeat_interleave(clones, dim=0)
            scale = 1.0 / math.sqrt(d)
            frame = ((pred.float() - y) ** 2).sum(-1)[mask].mean() * scale
            utterance = ((out[:, 0].float() - y.mean(1)) ** 2).sum(-1).mean() * scale
            weight = s.utterance_weight if s.utterance_weight is not None else float(b * clones)
            loss = frame + weight * utterance
            # spreads at the masked positions, where the frame loss is taken
            self.last_spread = {"target_var": spread(y[mask]), "pred_var": spread(pred[mask])}
        return loss, {
            "frame_loss": frame.detach(),
            "utterance_loss": utterance.detach(),
            **self.last_spread,
        }

    def check_collapse(self, step: int) -> None:
        """Raise RepresentationCollapse when, after `collapse_after` updates, the last step's
        target or prediction spread fell below its floor (EAT's trainer stops there)."""
        s = self.settings
        if step < s.collapse_after or not getattr(self, "last_spread", None):
            return
        target, pred = (float(self.last_spread[k]) for k in ("target_var", "pred_var"))
        if target < s.min_target_var or pred < s.min_pred_var:
            raise RepresentationCollapse(
                f"step {step}: target spread {target:.4g} (floor {s.min_target_var:g}), "
                f"prediction spread {pred:.4g} (floor {s.min_pred_var:g}): the representation "
                "collapsed; lower the learning rate or raise the EMA decay"
            )

    @torch.no_grad()
    def after_step(self, step: int) -> None:
        """EMA teacher update with the decay of this update (the reference skips update 0)."""
        self.check_collapse(step)
        if step == 0:
            return
        s = self.settings
        decay = ema_decay_at(step, s.ema_decay, s.ema_end_decay, s.ema_anneal_steps)
        for t, p in zip(self.teacher.parameters(), self.student.parameters(), strict=True):
            t.mul_(decay).add_(p.detach().float(), alpha=1 - decay)

    def checkpoint_state(self) -> dict:
        return {"teacher": self.teacher.state_dict(), "decoder": self.decoder.state_dict()}

    def load_checkpoint_state(self, state: dict) -> None:
        self.student.load_state_dict(state["encoder"])
        self.teacher.load_state_dict(state["teacher"])
        self.decoder.load_state_dict(state["decoder"])


# --- the stage ----------------------------------------------------------------------------------


def initial_encoder(
    settings: PretrainSettings, init: Path | None
) -> tuple[models.EATEncoder, dict | None]:
    """A fresh encoder of the configured size, or the one checkpoint `init` holds (its teacher
    weights, when it has them, become the new teacher as well)."""
    if not init:
        return models.create_model(settings.model), None
    encoder, state = checkpoint.encoder_from_checkpoint(init)
    if state["model"]["name"] != settings.model:
        raise ValueError(
            f"{init}: holds a {state['model']['name']} encoder, "
            f"the settings ask for {settings.model}"
        )
    return encoder, state


def pretrain(
    settings: PretrainSettings,
    cache_prefixes: list[str | Path],
    out_path: Path,
    norm_stats: features.NormStats | None = None,
    progress: bool = True,
    init: Path | None = None,
) -> Path:
    """Pre-train (or continue pre-training: from checkpoint `init`) an encoder on cached clips;
    write `out_path`.

    Normalisation: an `init` checkpoint's statistics win (the encoder was trained on them);
    otherwise `norm_stats` is required. Resumes from `<out>.resume.pt` when present.
    """
    torch.manual_seed(settings.loop.seed)  # initial weights (encoder, decoder): part of the run
    encoder, init_state = initial_encoder(settings, init)
    stats_dict = (init_state or {}).get("normalization")
    if stats_dict:
        stats = features.NormStats(**stats_dict)
    elif norm_stats is not None:
        stats = norm_stats
    else:
        raise ValueError("pre-training from scratch needs normalisation statistics")
    data = train.CachedClips(cache_prefixes, stats)
    n_frames, n_mels = data.shape
    encoder.check_input(torch.zeros(1, 1, n_frames, n_mels))
    objective = UFOObjective(encoder, settings)
    if init_state and init_state.get("teacher"):
        objective.teacher.load_state_dict(init_state["teacher"])
    resolved = {
        "stage": "pretrain",
        **settings.to_dict(),
        "init": str(init or ""),
        "clips": len(data),
        "n_frames": n_frames,
    }

    def describe(obj: UFOObjective) -> dict:
        return checkpoint.make_state(
            settings.model, obj.student.cfg, obj.student.state_dict(), resolved, asdict(stats)
        )

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    resume = out_path.with_name(out_path.stem + ".resume.pt")
    metrics = out_path.with_name(out_path.stem + ".metrics.jsonl")
    objective = train.run_training(
        objective, data, settings.loop, resume, metrics, describe, progress=progress
    )
    if train.init_distributed()[0] == 0:
        final = {**describe(objective), **objective.checkpoint_state(), "step": settings.loop.steps}
        train.save_final(out_path, final, resume)
    return out_path
