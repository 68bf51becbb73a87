"""Model adaptation: fine-tune an encoder on machine attribute classification (MAC).

One class per (machine type, attribute combination), from ground truth, pseudo-attributes, or one
class per no-attribute machine type; an ArcFace head on the mean-pooled clip embedding, cross-
entropy, mixup and SpecAugment, AdamW with warm-up and cosine decay (the shared training loop).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
import torchaudio.transforms as T
from torch import nn

from asdflow import checkpoint, features, models, train
from asdflow.settings import FLATTEN


@dataclass(frozen=True)
class FinetuneSettings:
    # clip embedding fed to the head and scored: "mean" of patch outputs, "cls", or "freq" (the
    # mean over time of each frequency row of patches; models.EATEncoder.embed)
    pooling: str = "mean"
    arcface_scale: float = 30.0
    arcface_margin: float = 0.2
    subcenters: int = 1  # sub-centre ArcFace: K centres per class, the closest one counts
    mixup_prob: float = 0.5  # share of batches mixed (Beta(alpha, alpha) weights)
    mixup_alpha: float = 0.5
    specaug_freq: float = 0.1  # SpecAugment mask width as a share of mel bins / frames
    specaug_time: float = 0.1
    drop_path: float = 0.1
    layer_decay: float = 1.0  # layer-wise lr decay (1.0 = off; EAT fine-tuning uses 0.65)
    # share of each class's clips held back from training; their cross-entropy and accuracy
    # join every metric line as heldout_ce / heldout_accuracy (0 = train on every clip)
    holdout: float = 0.0
    # the training loop's settings, given in the same flat object (asdflow.settings)
    loop: train.LoopSettings = field(
        metadata=FLATTEN,
        default_factory=lambda: train.LoopSettings(
            steps=20_000, batch_size=32, lr=5e-5, warmup_steps=120, weight_decay=0.05
        ),
    )

    def to_dict(self) -> dict:
        return asdict(self)


# --- the head -----------------------------------------------------------------------------------


class ArcFace(nn.Module):
    """Additive angular margin head: logits s * cos(theta_j), with s * cos(theta_y + m) for the
    true class. Sub-centre ArcFace keeps K centres per class and takes the closest."""

    def __init__(
        self, dim: int, classes: int, scale: float = 30.0, margin: float = 0.2, subcenters: int = 1
    ):
        super().__init__()
        self.classes, self.subcenters = classes, subcenters
        self.scale, self.margin = scale, margin
        self.weight = nn.Parameter(torch.empty(classes * subcenters, dim))
        nn.init.xavier_uniform_(self.weight)

    def cosine(self, emb: torch.Tensor) -> torch.Tensor:
        """(B, D) -> (B, classes) cosine similarity to each class (closest sub-centre)."""
        cos = F.normalize(emb.float(), dim=1) @ F.normalize(self.weight.float(), dim=1).T
        return cos.view(-1, self.classes, self.subcenters).amax(dim=2)

    def forward(self, emb: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, classes); with `target`, the margin is added to each row's true class."""
        with torch.autocast(emb.device.type, enabled=False):  # margins need float32 angles
            cos = self.cosine(emb.float())
        if target is None:
            return self.scale * cos
        theta = torch.acos(cos.clamp(-1 + 1e-7, 1 - 1e-7))
        target_logit = torch.cos(theta.gather(1, target[:, None]) + self.margin)
        return self.scale * cos.scatter(1, target[:, None], target_logit)


# --- the objective ------------------------------------------------------------------------------


class MACObjective(nn.Module):
    """Encoder + ArcFace head trained with cross-entropy on (possibly mixed) clips."""

    def __init__(self, encoder: models.EATEncoder, classes: int, settings: FinetuneSettings):
        super().__init__()
        self.settings = settings
        self.encoder = encoder
        s = settings
        self.head = ArcFace(
            encoder.embedding_dim(settings.pooling),
            classes,
            s.arcface_scale,
            s.arcface_margin,
            s.subcenters,
        )

    def specaugment(self, x: torch.Tensor) -> torch.Tensor:
        """Independent frequency and time masks per clip (torchaudio), on (B, 1, T, F)."""
        s = self.settings
        spec = x.transpose(2, 3)  # (B, 1, F, T): torchaudio masks (..., freq, time)
        if s.specaug_freq > 0:
            spec = T.FrequencyMasking(int(spec.shape[2] * s.specaug_freq), iid_masks=True)(spec)
        if s.specaug_time > 0:
            spec = T.TimeMasking(int(spec.shape[3] * s.specaug_time), iid_masks=True)(spec)
        return spec.transpose(2, 3)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder.embed(x, pooling=self.settings.pooling)

    def forward(self, batch: dict, generator: torch.Generator) -> tuple[torch.Tensor, dict]:
        s = self.settings
        x, y = batch["x"], batch["y"]
        if self.training:
            x = self.specaugment(x)
        mix = (
            self.training
            and s.mixup_prob > 0
            and torch.rand(1, generator=generator).item() < s.mixup_prob
        )
        if mix:
            lam = float(
                np.random.default_rng(int(torch.randint(2**31, (1,), generator=generator))).beta(
                    s.mixup_alpha, s.mixup_alpha
                )
            )
            perm = torch.randperm(x.shape[0], generator=generator).to(x.device)
            x = lam * x + (1 - lam) * x[perm]
        emb = self.embed(x)  # (B, D)
        loss = F.cross_entropy(self.head(emb, y), y)
        if mix:
            loss = lam * loss + (1 - lam) * F.cross_entropy(self.head(emb, y[perm]), y[perm])
        with torch.no_grad():
            accuracy = (self.head(emb).argmax(1) == y).float().mean()
        return loss, {"ce": loss.detach(), "accuracy": accuracy}

    def checkpoint_state(self) -> dict:
        return {"head": self.head.state_dict()}

    def load_checkpoint_state(self, state: dict) -> None:
        self.encoder.load_state_dict(state["encoder"])
        self.head.load_state_dict(state["head"])


def layer_scale(depth: int, decay: float):
    """Layer-wise lr decay: block i gets decay^(depth - i), the embedding decay^(depth + 1)."""

    def scale(name: str) -> float:
        if decay == 1.0 or name.startswith("head."):
            return 1.0
        if name.startswith("encoder.blocks."):
            return decay ** (depth - int(name.split(".")[2]))
        return decay ** (depth + 1)

    return scale


# --- labels and the stage -----------------------------------------------------------------------


def labels_for_cache(prefixes: list[str | Path], label_table: pd.DataFrame) -> np.ndarray:
    """Class index of every cached clip, in cache order; error naming clips without a label."""
    by_file = dict(zip(label_table["file"], label_table["class_index"], strict=True))
    labels, missing = [], []
    for prefix in prefixes:
        for f in features.read_index(f"{prefix}.csv")["file"]:
            if f in by_file:
                labels.append(by_file[f])
            else:
                missing.append(f)
    if missing:
        raise ValueError(f"{len(missing)} cached clip(s) have no class label, e.g. {missing[:3]}")
    return np.asarray(labels, dtype=np.int64)


def holdout_split(labels: np.ndarray, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(training rows, held-back rows): `share` of each class's clips held back, drawn with
    `seed`, rounded to whole clips; a class keeps at least one training clip."""
    if not 0 <= share < 1:
        raise ValueError(f"holdout must be in [0, 1), got {share}")
    rng = np.random.default_rng([seed, 7])
    held = []
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        n = min(int(round(share * len(rows))), len(rows) - 1)
        held.append(rng.permutation(rows)[:n])
    held = np.sort(np.concatenate(held)) if held else np.empty(0, dtype=np.int64)
    return np.setdiff1d(np.arange(len(labels)), held), held


def heldout_metrics(data: train.LabelledClips, rows: np.ndarray, batch_size: int = 64):
    """evaluate(objective) for the training loop: cross-entropy (without the margin) and
    accuracy of the head on the clips at `rows`, without augmentation."""

    def evaluate(objective: MACObjective) -> dict:
        device = next(objective.parameters()).device
        ce, correct = 0.0, 0
        for start in range(0, len(rows), batch_size):
            batch = data.batch(rows[start : start + batch_size])
            x, y = batch["x"].to(device), batch["y"].to(device)
            logits = objective.head(objective.embed(x))
            ce += float(F.cross_entropy(logits, y, reduction="sum"))
            correct += int((logits.argmax(1) == y).sum())
        return {"heldout_ce": ce / len(rows), "heldout_accuracy": correct / len(rows)}

    return evaluate


def finetune(
    settings: FinetuneSettings,
    cache_prefixes: list[str | Path],
    label_table: pd.DataFrame,
    out_path: Path,
    init: Path,
    progress: bool = True,
) -> Path:
    """Fine-tune the encoder of checkpoint `init` on MAC with the classes of `label_table`;
    write `out_path`."""
    torch.manual_seed(settings.loop.seed)  # head init, part of the run
    encoder, init_state = checkpoint.encoder_from_checkpoint(init, drop_path=settings.drop_path)
    stats = features.NormStats(**init_state["normalization"])
    classes = (
        label_table.drop_duplicates("class_index").sort_values("class_index")["class_name"].tolist()
    )
    if len(classes) != label_table["class_index"].max() + 1:
        raise ValueError("class indices must be 0..C-1 without gaps")
    data = train.LabelledClips(cache_prefixes, stats, labels_for_cache(cache_prefixes, label_table))
    training, evaluate = data, None
    if settings.holdout:  # holdout_split rejects values outside [0, 1)
        rows, held = holdout_split(data.labels.numpy(), settings.holdout, settings.loop.seed)
        training = train.ClipSubset(data, rows)
        evaluate = heldout_metrics(data, held) if len(held) else None
    objective = MACObjective(encoder, len(classes), settings)
    resolved = {
        "stage": "finetune",
        **settings.to_dict(),
        "init": str(init),
        "classes": classes,
        "clips": len(training),
    }

    def describe(obj: MACObjective) -> dict:
        return checkpoint.make_state(
            init_state["model"]["name"],
            obj.encoder.cfg,
            obj.encoder.state_dict(),
            resolved,
            init_state["normalization"],
        )

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    resume = out_path.with_name(out_path.stem + ".resume.pt")
    metrics = out_path.with_name(out_path.stem + ".metrics.jsonl")
    scale = layer_scale(encoder.cfg.depth, settings.layer_decay)
    objective = train.run_training(
        objective,
        training,
        settings.loop,
        resume,
        metrics,
        describe,
        lr_scale=scale,
        progress=progress,
        evaluate=evaluate,
    )
    if train.init_distributed()[0] == 0:
        final = {**describe(objective), **objective.checkpoint_state(), "step": settings.loop.steps}
        train.save_final(out_path, final, resume)
    return out_path
