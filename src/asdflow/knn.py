"""k-nearest-neighbour anomaly scores: cosine distance from each query to a bank of normal
embeddings, with the memory-bank variants of the top DCASE Task 2 systems.

One matrix product per chunk of queries, so memory stays bounded (chunk x bank) whatever the size.
Distances are computed in float64: mean-pooled outputs of post-LayerNorm encoders share one large
direction, which leaves cosine distances between clips near float32's resolution (issue 10).
Centring on the machine type's training mean (`KnnSettings.center`) is an option; measured on
the demo it loses to plain float64 cosine for most encoders (README, "Why the learned systems
lost").
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

BANKS = ("joint", "per_domain", "kmeans_source")
DOMAINS = ("source", "target")
# Median nearest-neighbour cosine distance between uncentred training embeddings below which the
# scorer warns: at 1e-3 a float32 embedding keeps about four significant digits of what tells
# clips apart (issue 10 saw 3e-4 for a general encoder and 1e-7 after fine-tuning).
SMALL_SPREAD = 1e-3


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
    q = torch.as_tensor(np.asarray(queries), dtype=torch.float64, device=device)
    b = torch.as_tensor(np.asarray(bank), dtype=torch.float64, device=device)
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
    out = torch.empty(q.shape[0], dtype=torch.float64, device=device)
    for start in range(0, q.shape[0], chunk):
        stop = min(start + chunk, q.shape[0])
        dist = 1.0 - q[start:stop] @ b.T  # (chunk, M)
        if exclude_self:
            rows = torch.arange(start, stop, device=device)
            dist[rows - start, rows] = float("inf")
        out[start:stop] = dist.topk(k, dim=1, largest=False).values.mean(dim=1)
    return out.cpu().numpy()


@dataclass(frozen=True)
class KnnSettings:
    """How test clips are scored against the normal training clips of one machine type.

    bank: "joint" (every normal training clip, both domains: the paper's back end), "per_domain"
    (separate source and target banks, score = minimum over the two domains) or "kmeans_source"
    (k-means centres of the source clips plus all target clips, as top DCASE 2024/2025 systems).
    center: subtract the mean of the machine type's normal training embeddings (both domains)
    from train and test embeddings before the cosine distance.
    decision_quantile: the decision threshold is this quantile of a gamma distribution fitted
    to the training clips' scores (the DCASE baseline's rule).
    precision: of the encoder's embedding pass (`score-encoder`; train.autocast_for): "native"
    is bf16 where the hardware computes it (GPU, AMX CPU), else float32.
    The workflow passes the `scoring` section of its configuration (asdflow.settings).
    """

    k: int = 1
    bank: str = "joint"
    center: bool = False
    kmeans_centers: int = 16  # capped at the number of source clips
    seed: int = 0  # k-means initialisation
    chunk: int = 4096  # queries per matrix product
    decision_quantile: float = 0.9
    precision: str = "native"

    def __post_init__(self) -> None:
        if self.bank not in BANKS:
            raise ValueError(f"Unsupported bank {self.bank!r}; choose one of {', '.join(BANKS)}")
        if self.k < 1:
            raise ValueError(f"k must be >= 1, got {self.k}")
        if self.kmeans_centers < 1:
            raise ValueError(f"kmeans_centers must be >= 1, got {self.kmeans_centers}")
        if self.chunk < 1:
            raise ValueError(f"chunk must be >= 1, got {self.chunk}")
        if not 0.0 < self.decision_quantile < 1.0:
            raise ValueError(f"decision_quantile must be in (0, 1), got {self.decision_quantile}")


def embedding_spread(emb: np.ndarray) -> float:
    """Median cosine distance from each row of `emb` (N, D), N >= 2, to its nearest other row,
    uncentred: how far apart the encoder itself puts the clips."""
    return float(np.median(cosine_knn_distance(emb, emb, k=1, exclude_self=True)))


def _check_finite(emb: np.ndarray, what: str, name: str) -> None:
    """Raise naming how many rows of `emb` (N, D) hold NaN or inf values."""
    nan_rows = int(np.isnan(emb).any(axis=1).sum())
    inf_rows = int(np.isinf(emb).any(axis=1).sum())
    problems = [f"{kind} in {n} rows" for kind, n in (("NaN", nan_rows), ("inf", inf_rows)) if n]
    if problems:
        raise ValueError(f"{name}: {what} embeddings contain {' and '.join(problems)}")


def kmeans_bank(source_emb: np.ndarray, settings: KnnSettings) -> np.ndarray:
    """(S, D) source embeddings -> (C, D) unit-norm k-means centres, C = min(kmeans_centers, S).

    Clustering runs on L2-normalised rows so that it follows the cosine geometry of the scorer.
    """
    from sklearn.cluster import KMeans

    source = np.asarray(source_emb, dtype=np.float64)
    if source.ndim != 2 or len(source) == 0:
        raise ValueError(f"k-means needs (S, D) source embeddings with S >= 1, got {source.shape}")
    unit = source / np.maximum(np.linalg.norm(source, axis=1, keepdims=True), 1e-12)
    n_clusters = min(settings.kmeans_centers, len(unit))
    centres = KMeans(n_clusters, n_init=4, random_state=settings.seed).fit(unit).cluster_centers_
    return centres / np.maximum(np.linalg.norm(centres, axis=1, keepdims=True), 1e-12)


def _banks(
    train_emb: np.ndarray, train_domain: np.ndarray, settings: KnnSettings
) -> dict[str, np.ndarray]:
    """The memory banks (rows, D) that test clips are scored against, by name."""
    by_domain = {d: train_emb[train_domain == d] for d in DOMAINS}
    if settings.bank == "joint":
        return {"joint": train_emb}
    if settings.bank == "per_domain":
        # A domain without training clips is left out: the other domain alone scores.
        return {d: bank for d, bank in by_domain.items() if len(bank)}
    # kmeans_source; without source clips the bank is the target clips alone.
    parts = [by_domain["target"]]
    if len(by_domain["source"]):
        parts.insert(0, kmeans_bank(by_domain["source"], settings))
    return {"kmeans_source": np.concatenate(parts)}


def anomaly_scores(
    train_emb: np.ndarray,
    train_domain: np.ndarray,
    test_emb: np.ndarray,
    settings: KnnSettings,
    device: str | torch.device = "cpu",
    name: str = "",
) -> tuple[np.ndarray, np.ndarray]:
    """Anomaly scores (M,) of test clips and leave-one-out scores (N,) of training clips.

    train_emb (N, D) are the normal training clips, train_domain (N,) their "source"/"target",
    test_emb (M, D), centred on the training mean when `settings.center`. Test scores are the
    mean cosine distance (1 - cos) to the k nearest rows of
    the bank chosen by `settings.bank` ("per_domain": the minimum over the domains' scores).
    Training scores are each clip's k-NN distance to the JOINT bank without itself, same k; they
    only set the gamma threshold of the decision files and never enter the AUC.
    """
    train_emb = np.asarray(train_emb, dtype=np.float64)
    test_emb = np.asarray(test_emb, dtype=np.float64)
    train_domain = np.asarray(train_domain).astype(str)
    if train_emb.ndim != 2 or test_emb.ndim != 2 or train_emb.shape[1] != test_emb.shape[1]:
        raise ValueError(
            f"{name}: expected (N, D) train and (M, D) test embeddings, "
            f"got {train_emb.shape}, {test_emb.shape}"
        )
    if train_domain.shape != (len(train_emb),):
        raise ValueError(
            f"{name}: {train_domain.shape} domains for {len(train_emb)} training embeddings"
        )
    unknown = sorted(set(train_domain) - set(DOMAINS))
    if unknown:
        raise ValueError(f"{name}: unknown domains {unknown}; expected {', '.join(DOMAINS)}")
    _check_finite(train_emb, "train", name)
    _check_finite(test_emb, "test", name)
    # Leave-one-out needs k other clips, so the joint bank needs k + 1 rows.
    if len(train_emb) < settings.k + 1:
        raise ValueError(
            f"{name}: k={settings.k} needs at least {settings.k + 1} training clips "
            f"(k + 1 for leave-one-out training scores), got {len(train_emb)}"
        )

    spread = embedding_spread(train_emb)
    if spread < SMALL_SPREAD:
        warnings.warn(
            f"{name}: the training embeddings hardly spread (median nearest-neighbour cosine "
            f"distance {spread:.2g} < {SMALL_SPREAD:g}): the encoder puts clips almost on one "
            "direction, so float32 embeddings carry few digits of what tells them apart",
            stacklevel=2,
        )
    if settings.center:
        mean = train_emb.mean(axis=0)
        train_emb, test_emb = train_emb - mean, test_emb - mean

    banks = _banks(train_emb, train_domain, settings)
    for bank_name, bank in banks.items():
        if len(bank) < settings.k:
            raise ValueError(
                f"{name}: k={settings.k} needs at least {settings.k} rows in the "
                f"{bank_name} bank, it has {len(bank)}"
            )
    test_scores = np.min(
        [
            cosine_knn_distance(test_emb, bank, k=settings.k, chunk=settings.chunk, device=device)
            for bank in banks.values()
        ],
        axis=0,
    )  # (M,)
    train_scores = cosine_knn_distance(
        train_emb, train_emb, k=settings.k, exclude_self=True, chunk=settings.chunk, device=device
    )  # (N,)
    return test_scores, train_scores
