"""Benchmark of the k-NN scorer: our chunked torch matrix product vs scikit-learn's brute-force
NearestNeighbors, on the same random data. Prints figures, asserts nothing about speed.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from asdflow import knn


def _best_seconds(fn, repeats: int) -> tuple[float, np.ndarray]:
    """Fastest wall time of `repeats` calls of fn(), and the result of the last call."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def bench_knn(
    bank_size: int = 10_000, dim: int = 768, n_test: int = 2_000, k: int = 1, repeats: int = 3
) -> dict:
    """Test clips scored per second: `knn.cosine_knn_distance` (torch, CPU) vs scikit-learn
    `NearestNeighbors(algorithm="brute", metric="cosine")`; best of `repeats`, side by side.
    """
    from sklearn.neighbors import NearestNeighbors

    rng = np.random.default_rng(0)
    bank = rng.standard_normal((bank_size, dim), dtype=np.float32)  # (bank_size, dim)
    test = rng.standard_normal((n_test, dim), dtype=np.float32)  # (n_test, dim)
    device = "cpu"

    ours_s, ours = _best_seconds(
        lambda: knn.cosine_knn_distance(test, bank, k=k, device=device), repeats
    )

    def sklearn_scores() -> np.ndarray:
        neighbours = NearestNeighbors(n_neighbors=k, algorithm="brute", metric="cosine")
        distances, _ = neighbours.fit(bank).kneighbors(test)  # (n_test, k)
        return distances.mean(axis=1)

    sklearn_s, theirs = _best_seconds(sklearn_scores, repeats)
    max_abs_diff = float(np.max(np.abs(ours - theirs)))

    result = {
        "bank_size": bank_size,
        "dim": dim,
        "n_test": n_test,
        "k": k,
        "device": f"{device} ({torch.get_num_threads()} torch threads)",
        "torch_test_clips_per_s": n_test / ours_s,
        "sklearn_test_clips_per_s": n_test / sklearn_s,
        "speedup_torch_vs_sklearn": sklearn_s / ours_s,
        "max_abs_distance_diff": max_abs_diff,
        "distances_agree": max_abs_diff < 1e-4,
    }
    width = max(map(len, result))
    for key, value in result.items():
        if key == "max_abs_distance_diff":
            print(f"{key:<{width}}  {value:.2e}")
        elif key == "speedup_torch_vs_sklearn":
            print(f"{key:<{width}}  {value:.2f}")
        elif isinstance(value, float):
            print(f"{key:<{width}}  {value:.1f}")
        else:
            print(f"{key:<{width}}  {value}")
    return result
