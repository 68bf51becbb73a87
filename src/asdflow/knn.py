"""k-nearest-neighbour anomaly scores: cosine distance from each query to a bank of normal
embeddings.

One matrix product per chunk of queries, so memory stays bounded (chunk x bank) whatever the size.
"""

from __future__ import annotations

import numpy as np
import torch


def _unit_rows(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(x, dim=1, eps=1e-12)


def cosine_knn_distance(
    queries: np.ndarray | torch.Tensor,
    bank: np.ndarray | torch.Tensor,
    k: int = 1,
    exclude_self: bool = False,
    chunk: int = 4096,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """Mean cosine distance (1 - cos) of each query (N, D) to its k nearest rows of `bank` (M, D).

    `exclude_self` scores the bank against itself leave-one-out (queries must be the bank): row i
    ignores bank row i, which is how training clips get scores for the decision threshold.
    """
    q = torch.as_tensor(np.asarray(queries), dtype=torch.float32, device=device)
    b = torch.as_tensor(np.asarray(bank), dtype=torch.float32, device=device)
    if q.ndim != 2 or b.ndim != 2 or q.shape[1] != b.shape[1]:
        raise ValueError(
            f"expected (N, D) queries and (M, D) bank, got {tuple(q.shape)}, {tuple(b.shape)}"
        )
    if exclude_self and q.shape[0] != b.shape[0]:
        raise ValueError("exclude_self needs the queries to be the bank itself")
    available = b.shape[0] - (1 if exclude_self else 0)
    if not 1 <= k <= available:
        raise ValueError(f"k={k} needs at least {k} bank rows, the bank has {available}")
    if not (torch.isfinite(q).all() and torch.isfinite(b).all()):
        raise ValueError("embeddings contain NaN or infinite values")
    q, b = _unit_rows(q), _unit_rows(b)
    out = torch.empty(q.shape[0], dtype=torch.float32, device=device)
    for start in range(0, q.shape[0], chunk):
        stop = min(start + chunk, q.shape[0])
        dist = 1.0 - q[start:stop] @ b.T  # (chunk, M)
        if exclude_self:
            rows = torch.arange(start, stop, device=device)
            dist[rows - start, rows] = float("inf")
        out[start:stop] = dist.topk(k, dim=1, largest=False).values.mean(dim=1)
    return out.cpu().numpy().astype(np.float64)
