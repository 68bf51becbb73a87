"""Figures: t-SNE of encoder embeddings coloured by true attribute and by cluster (the paper's
Fig. 2), written as PNG files with matplotlib's non-interactive backend."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.manifold import TSNE  # noqa: E402


def _scatter(ax, xy: np.ndarray, labels: np.ndarray, title: str) -> None:
    names, codes = np.unique(labels, return_inverse=True)
    cmap = plt.get_cmap("tab20" if len(names) > 10 else "tab10")
    for i, name in enumerate(names):
        pts = xy[codes == i]
        ax.scatter(pts[:, 0], pts[:, 1], s=8, color=cmap(i % cmap.N), label=str(name))
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    if len(names) <= 12:
        ax.legend(fontsize=6, markerscale=1.5, loc="best", frameon=False)


def tsne_grid(
    machine_type: str,
    encoders: list[str],
    embeddings: list[np.ndarray],
    clusters: list[np.ndarray],
    truth: np.ndarray | None,
    out: Path,
    seed: int = 0,
) -> None:
    """One row per encoder: t-SNE coloured by true attribute set (left) and by cluster (right)."""
    fig, axes = plt.subplots(len(encoders), 2, figsize=(9, 4 * len(encoders)), squeeze=False)
    for row, (encoder, emb, cl) in enumerate(zip(encoders, embeddings, clusters, strict=True)):
        perplexity = float(min(30, max(2, (len(emb) - 1) / 3)))
        xy = TSNE(perplexity=perplexity, random_state=seed, init="pca").fit_transform(emb)
        if truth is not None:
            _scatter(axes[row, 0], xy, truth, f"{encoder}: true attributes")
        else:
            axes[row, 0].set_axis_off()
            axes[row, 0].set_title(f"{encoder}: true attributes unknown", fontsize=9)
        _scatter(axes[row, 1], xy, cl, f"{encoder}: Ward clusters ({len(np.unique(cl))})")
    fig.suptitle(f"{machine_type}: training-clip embeddings", fontsize=11)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    tmp.replace(out)


def short_attributes(attributes: pd.Series) -> np.ndarray:
    """`{"mic": "1", "spd": "28V"}` -> `mic=1,spd=28V` for legends."""
    import json

    return np.array([",".join(f"{k}={v}" for k, v in json.loads(a).items()) for a in attributes])
