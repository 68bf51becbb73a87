"""Embedding stage: clip embeddings of cached clips from an encoder checkpoint.

The embedding is the encoder's `embed` (mean of the patch outputs, the paper's eq. 8, or CLS), on
log-mel normalised with the statistics the checkpoint carries. Rows follow the cache's index.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from asdflow import checkpoint, features, models, train


@torch.no_grad()
def embed_array(
    encoder: models.EATEncoder,
    array: np.ndarray,
    stats: features.NormStats,
    pooling: str = "mean",
    batch_size: int = 64,
    device: torch.device | None = None,
    precision: str = "auto",
    desc: str = "embed",
) -> np.ndarray:
    """(N, T, F) cached log-mel -> (N, D) float32 embeddings."""
    device = device or train.pick_device()
    encoder = encoder.to(device).eval()
    out = np.empty((array.shape[0], encoder.embedding_dim(pooling)), dtype=np.float32)
    for start in tqdm(range(0, array.shape[0], batch_size), desc=desc, disable=array.shape[0] == 0):
        x = torch.from_numpy(stats.apply(np.asarray(array[start : start + batch_size])))
        with train.autocast_for(device, precision):
            emb = encoder.embed(x.unsqueeze(1).to(device), pooling=pooling)
        out[start : start + len(x)] = emb.float().cpu().numpy()
    if not np.isfinite(out).all():
        raise ValueError(f"{desc}: the encoder produced NaN or infinite embeddings")
    return out


def embed_machine(
    checkpoint_path: Path,
    features_dir: Path,
    out_dir: Path,
    splits: tuple[str, ...] = ("train",),
    pooling: str = "mean",
    batch_size: int = 64,
) -> None:
    """Embed the cached splits of one machine type: `<out_dir>/<split>.npy`, written atomically."""
    encoder, state = checkpoint.encoder_from_checkpoint(checkpoint_path)
    if not state.get("normalization"):
        raise ValueError(f"{checkpoint_path}: the checkpoint carries no normalisation statistics")
    stats = features.NormStats(**state["normalization"])
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for split in splits:
        array = features.open_cache(Path(features_dir) / f"{split}.npy")
        emb = embed_array(
            encoder, array, stats, pooling, batch_size, desc=f"{features_dir}/{split}"
        )
        tmp = out_dir / f".{split}.tmp.npy"
        np.save(tmp, emb)
        os.replace(tmp, out_dir / f"{split}.npy")
