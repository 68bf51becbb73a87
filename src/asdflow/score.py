"""Scoring stage: clip embeddings -> k-NN anomaly scores -> DCASE submission files, per machine
type.

The "log-mel k-NN" baseline lives here too: its embedding is the mean and standard deviation over
time of the normalised log-mel frames, so it needs no neural network.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from asdflow import features, knn, metrics


def logmel_embeddings(
    array: np.ndarray, n_valid: np.ndarray, stats: features.NormStats
) -> np.ndarray:
    """(N, T, F) cached log-mel + unpadded frame counts -> (N, 2F): [mean; std] over time."""
    out = np.empty((array.shape[0], 2 * array.shape[2]), dtype=np.float32)
    for i in range(array.shape[0]):
        x = stats.apply(np.asarray(array[i, : max(int(n_valid[i]), 1)], dtype=np.float32))  # (T, F)
        out[i] = np.concatenate([x.mean(axis=0), x.std(axis=0)])
    return out


def score_machine(
    train: pd.DataFrame,
    train_emb: np.ndarray,
    test: pd.DataFrame,
    test_emb: np.ndarray,
    out_dir: Path,
    settings: knn.KnnSettings,
    name: str = "",
) -> np.ndarray:
    """k-NN anomaly scores of one machine type's test clips against its normal training clips;
    writes the DCASE submission files (decision threshold: gamma fit to the training scores)."""
    normal = (train["label"] == "normal").to_numpy()
    if not normal.any():
        raise ValueError(f"{name}: no normal training clips to build the memory bank from")
    machine_type = str(train["machine_type"].iloc[0])
    test_scores, train_scores = knn.anomaly_scores(
        train_emb[normal], train["domain"].to_numpy()[normal], test_emb, settings, name=name
    )
    threshold = metrics.gamma_threshold(train_scores, quantile=settings.decision_quantile)
    names = [Path(f).name for f in test["file"]]
    decisions = (test_scores > threshold).astype(int)
    metrics.write_submission(out_dir, machine_type, names, test_scores, decisions)
    return test_scores


def score_logmel_machine(
    features_dir: Path,
    norm_stats: Path,
    out_dir: Path,
    settings: knn.KnnSettings,
) -> None:
    """Score one machine type's test clips with the log-mel k-NN baseline."""
    features_dir = Path(features_dir)
    stats = features.NormStats.load(norm_stats)
    embeddings = {}
    for split in ("train", "test"):
        index = features.read_index(features_dir / f"{split}.csv")
        array = features.open_cache(features_dir / f"{split}.npy")
        embeddings[split] = (index, logmel_embeddings(array, index["n_frames"].to_numpy(), stats))
    score_machine(
        *embeddings["train"],
        *embeddings["test"],
        out_dir,
        settings,
        name=str(features_dir),
    )


def score_encoder(
    checkpoint_path: Path,
    machines: list[tuple[Path, Path]],
    settings: knn.KnnSettings,
    batch_size: int = 64,
) -> None:
    """Score every machine type with one fine-tuned encoder: `machines` lists (features dir,
    submission dir). Embeds train and test clips (normalised as the checkpoint says), then k-NN."""
    from asdflow import checkpoint, embed, train

    if settings.precision not in train.PRECISIONS:
        raise ValueError(
            f"scoring setting precision {settings.precision!r}: use one of "
            f"{', '.join(train.PRECISIONS)}"
        )
    encoder, state = checkpoint.encoder_from_checkpoint(checkpoint_path)
    stats = features.NormStats(**state["normalization"])
    pooling = state["settings"].get("pooling", "mean")
    for features_dir, out_dir in machines:
        embeddings = {}
        for split in ("train", "test"):
            index = features.read_index(Path(features_dir) / f"{split}.csv")
            array = features.open_cache(Path(features_dir) / f"{split}.npy")
            desc = f"{features_dir}/{split}"
            embeddings[split] = (
                index,
                embed.embed_array(
                    encoder,
                    array,
                    stats,
                    pooling,
                    batch_size,
                    precision=settings.precision,
                    desc=desc,
                ),
            )
        score_machine(
            *embeddings["train"],
            *embeddings["test"],
            Path(out_dir),
            settings,
            name=str(features_dir),
        )
