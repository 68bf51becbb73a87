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


def knn_scores(
    train_emb: np.ndarray, train: pd.DataFrame, test_emb: np.ndarray, k: int = 1, name: str = ""
) -> tuple[np.ndarray, np.ndarray]:
    """Anomaly scores of test clips and leave-one-out scores of training clips.

    The memory bank is every normal training clip of the machine type, both domains (the paper's
    back end). Training scores exclude each clip itself and set the decision threshold.
    """
    normal = (train["label"] == "normal").to_numpy()
    if not normal.any():
        raise ValueError(f"{name}: no normal training clips to build the memory bank from")
    bank = train_emb[normal]
    test_scores = knn.cosine_knn_distance(test_emb, bank, k=k)
    train_scores = (
        knn.cosine_knn_distance(bank, bank, k=k, exclude_self=True)
        if len(bank) > k
        else (np.zeros(len(bank)))
    )
    return test_scores, train_scores


def score_logmel_machine(
    features_dir: Path,
    norm_stats: Path,
    out_dir: Path,
    machine_type: str,
    k: int = 1,
    decision_quantile: float = 0.9,
) -> None:
    """Score one machine type's test clips with the log-mel k-NN baseline; write submissions."""
    features_dir = Path(features_dir)
    stats = features.NormStats.load(norm_stats)
    train = features.read_index(features_dir / "train.csv")
    test = features.read_index(features_dir / "test.csv")
    train_emb = logmel_embeddings(
        features.open_cache(features_dir / "train.npy"), train["n_frames"], stats
    )
    test_emb = logmel_embeddings(
        features.open_cache(features_dir / "test.npy"), test["n_frames"], stats
    )
    test_scores, train_scores = knn_scores(train_emb, train, test_emb, k=k, name=str(features_dir))
    threshold = metrics.gamma_threshold(train_scores, quantile=decision_quantile)
    names = [Path(f).name for f in test["file"]]
    metrics.write_submission(
        out_dir, machine_type, names, test_scores, (test_scores > threshold).astype(int)
    )
