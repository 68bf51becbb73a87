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
    _save(fig, out)


def short_attributes(attributes: pd.Series) -> np.ndarray:
    """`{"mic": "1", "spd": "28V"}` -> `mic=1,spd=28V` for legends."""
    import json

    return np.array([",".join(f"{k}={v}" for k, v in json.loads(a).items()) for a in attributes])


def _save(fig, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    tmp.replace(out)


def run_bars(scores: pd.DataFrame, titles: dict[str, str], out: Path) -> None:
    """Bar chart of the official score over all machine types per run: mean over seeds, with the
    standard deviation as error bars and each seed as a dot."""
    runs = list(dict.fromkeys(scores["run"]))
    fig, ax = plt.subplots(figsize=(1.2 * len(runs) + 2, 4))
    for i, run in enumerate(runs):
        values = scores.loc[scores["run"] == run, "all"].to_numpy(dtype=float)
        std = values.std(ddof=1) if len(values) > 1 else 0.0
        ax.bar(i, values.mean(), yerr=std, capsize=4, color="tab:blue", alpha=0.7)
        ax.scatter(np.full(len(values), i), values, color="black", s=10, zorder=3)
    ax.set_xticks(range(len(runs)))
    ax.set_xticklabels([titles.get(r, r) for r in runs], rotation=30, ha="right")
    ax.set_ylabel("official score, all machine types (%)")
    low = scores["all"].min()
    ax.set_ylim(max(0, low - 5), min(100, scores["all"].max() + 5))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    _save(fig, out)


def score_distributions(run: str, machines: list[tuple[Path, Path]], out: Path) -> None:
    """Histograms of anomaly scores per machine type: normal vs anomalous test clips, source
    (solid) vs target (dashed). `machines`: (test index CSV, submission folder)."""
    from asdflow import features, metrics

    n = len(machines)
    cols = min(5, n)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    for ax, (test_csv, scores_dir) in zip(axes.ravel(), machines, strict=False):
        test = features.read_index(test_csv)
        machine = str(test["machine_type"].iloc[0])
        sub = metrics.read_submission(scores_dir, machine).set_index("file_name")["score"]
        test = test.assign(score=[sub[Path(f).name] for f in test["file"]])
        bins = np.histogram_bin_edges(test["score"], bins=20)
        for (label, domain), part in test.groupby(["label", "domain"]):
            if not label:
                continue
            ax.hist(
                part["score"],
                bins=bins,
                histtype="step",
                linewidth=1.5,
                linestyle="-" if domain == "source" else "--",
                color="tab:green" if label == "normal" else "tab:red",
                label=f"{label} {domain}",
            )
        ax.set_title(machine, fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[n:]:
        ax.set_axis_off()
    axes[0, 0].legend(fontsize=6, frameon=False)
    fig.suptitle(f"{run}: anomaly scores of the test clips (first seed)", fontsize=10)
    fig.tight_layout()
    _save(fig, out)


def tsne_figure(
    encoders: list[str],
    embeddings: list[Path],
    pseudo_labels: list[Path],
    index_csv: Path,
    truth_csv: Path | None,
    out: Path,
) -> None:
    """The `tsne` stage: one machine type's training embeddings from each encoder, coloured by
    that encoder's clusters and (when known) by the true attribute sets."""
    from asdflow import features, tables

    index = features.read_index(index_csv)
    truth = tables.true_attribute_sets(index, truth_csv)
    clusters = []
    for path in pseudo_labels:
        table = pd.read_csv(path, keep_default_na=False)
        by_file = dict(zip(table["file"], table["pseudo_attribute"], strict=True))
        clusters.append(np.array([by_file[f] for f in index["file"]]))
    tsne_grid(
        index["machine_type"].iloc[0],
        encoders,
        [np.load(p) for p in embeddings],
        clusters,
        None if truth is None else short_attributes(truth),
        Path(out),
    )
