"""Pseudo-attributes for machine types without attribute labels, and the class space of the
machine-attribute classification (MAC) fine-tuning.

Clip embeddings (mean-pooled encoder outputs, paper eq. 8) of one machine type are clustered with
agglomerative Ward linkage (eq. 9); the clusters become that machine type's pseudo-attributes
(section 2.4), and `build_label_space` joins them with the ground-truth attributes (eq. 10).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import pdist, squareform
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score, silhouette_score
from sklearn.preprocessing import normalize

AUTO_CRITERIA = ("silhouette", "gap")


class WardClustering(ClusterMixin, BaseEstimator):
    """Agglomerative clustering with Ward linkage (minimum increase of the error sum of squares).

    How many clusters:
      * `n_clusters`: that many (fewer only when tied merge heights make it impossible);
      * `distance_threshold`: cut the tree at that height (scipy's `fcluster(..., "distance")`:
        clusters whose cophenetic distance is at most the threshold). A Ward merge height h means
        an ESS increase of h**2 / 2, in the preprocessed space;
      * neither (the default): chosen by `auto` among k in [k_min, min(k_max, n - 1)]:
        - "silhouette": the k with the best mean silhouette (euclidean, preprocessed X);
        - "gap": the k before the largest jump between consecutive merge heights.
    Ties between k pick the smaller k.

    One-cluster rule (a single blob must not be split): in auto mode the answer is k = 1 when
    the best silhouette is below `min_silhouette`, or, for "gap", when the chosen jump is smaller
    than `min_relative_gap` times the height it jumps from. Splitting one isotropic blob in two
    gives silhouettes under 0.1 and relative jumps under 0.3 from about 8 dimensions up, while
    separated clusters give far more; in 1-3 dimensions (or after l2-normalising 2-d data onto a
    circle) a single blob is not recognised this way. `n_clusters` and `distance_threshold` are
    never overridden by the rule.

    Fallbacks (never an error from deep inside scipy):
      * 0 rows, NaN/inf values, `n_clusters` above the number of clips: ValueError;
      * 1 row, or fewer than 3 rows in auto mode: one cluster;
      * all embeddings identical after preprocessing (l2 normalisation counts: rows that differ
        only in scale are identical): one cluster, `selection_["reason"] == "identical
        embeddings"`, whatever was asked (with a warning when n_clusters > 1 was).

    Preprocessing, inside `fit`, in this order: l2 normalisation of rows (`l2_normalize`), PCA
    (`pca_components`: an int keeps that many components, a float in (0, 1) the share of variance
    explained; `whiten` scales components to unit variance). Deterministic: no random state, and
    labels are renumbered 0..k-1 in order of first appearance.

    Attributes: labels_ (n,) int, n_clusters_, linkage_ ((n - 1, 4) scipy linkage matrix, None
    below 2 rows or for identical embeddings), merge_heights_ ((n - 1,) ascending), pca_ (fitted
    PCA or None), n_features_in_, selection_ (dict: mode, k, reason, and the scores seen).
    """

    def __init__(
        self,
        n_clusters: int | None = None,
        distance_threshold: float | None = None,
        auto: str = "silhouette",
        k_min: int = 2,
        k_max: int = 16,
        min_silhouette: float = 0.1,
        min_relative_gap: float = 0.5,
        l2_normalize: bool = True,
        pca_components: int | float | None = None,
        whiten: bool = False,
    ):
        self.n_clusters = n_clusters
        self.distance_threshold = distance_threshold
        self.auto = auto
        self.k_min = k_min
        self.k_max = k_max
        self.min_silhouette = min_silhouette
        self.min_relative_gap = min_relative_gap
        self.l2_normalize = l2_normalize
        self.pca_components = pca_components
        self.whiten = whiten

    # --- fit ------------------------------------------------------------------------------------

    def fit(self, X, y=None) -> WardClustering:
        """Cluster the rows of X (n, D); y is ignored."""
        self._check_settings()
        X = _check_embeddings(X)
        n = X.shape[0]
        self.n_features_in_ = X.shape[1]
        self.pca_ = None
        self.linkage_ = None
        self.merge_heights_ = np.zeros(0)
        if self.n_clusters is not None and self.n_clusters > n:
            raise ValueError(f"asked for {self.n_clusters} clusters but got only {n} clips")
        if n == 1:
            return self._one_cluster(n, "one clip")

        Xp = normalize(X) if self.l2_normalize else X  # (n, D)
        if _all_identical(Xp):
            if self.n_clusters is not None and self.n_clusters > 1:
                warnings.warn(
                    f"all {n} embeddings are identical: one cluster, not {self.n_clusters}",
                    stacklevel=2,
                )
            return self._one_cluster(n, "identical embeddings")
        Xp = self._fit_pca(Xp)  # (n, D')

        self.linkage_ = linkage(Xp, method="ward")  # (n - 1, 4): a, b, height, size
        self.merge_heights_ = self.linkage_[:, 2].copy()
        if self.n_clusters is not None:
            labels = fcluster(self.linkage_, self.n_clusters, criterion="maxclust")
            selection = {"mode": "fixed", "k": int(self.n_clusters), "reason": "n_clusters"}
        elif self.distance_threshold is not None:
            labels = fcluster(self.linkage_, self.distance_threshold, criterion="distance")
            selection = {
                "mode": "threshold",
                "threshold": float(self.distance_threshold),
                "reason": "distance_threshold",
            }
        else:
            labels, selection = self._select_auto(Xp)
        self.labels_ = _first_appearance_order(labels)
        self.n_clusters_ = int(self.labels_.max()) + 1
        selection["n_clusters"] = self.n_clusters_
        self.selection_ = selection
        return self

    def _check_settings(self) -> None:
        if self.n_clusters is not None and self.distance_threshold is not None:
            raise ValueError("give n_clusters or distance_threshold, not both")
        if self.n_clusters is not None and self.n_clusters < 1:
            raise ValueError(f"n_clusters must be at least 1, got {self.n_clusters}")
        if self.distance_threshold is not None and not self.distance_threshold >= 0:
            raise ValueError(f"distance_threshold must be >= 0, got {self.distance_threshold}")
        if self.auto not in AUTO_CRITERIA:
            raise ValueError(
                f"Unsupported auto criterion {self.auto!r}: use one of {AUTO_CRITERIA}"
            )
        if not 2 <= self.k_min <= self.k_max:
            raise ValueError(
                f"need 2 <= k_min <= k_max, got k_min={self.k_min}, k_max={self.k_max}"
            )
        pca = self.pca_components
        if isinstance(pca, float) and not 0.0 < pca < 1.0:
            raise ValueError(f"a float pca_components is a variance share in (0, 1), got {pca}")
        if isinstance(pca, int) and pca < 1:
            raise ValueError(f"pca_components must be at least 1, got {pca}")

    def _fit_pca(self, Xp: np.ndarray) -> np.ndarray:
        if self.pca_components is None:
            if self.whiten:
                raise ValueError("whiten needs pca_components")
            return Xp
        limit = min(Xp.shape)
        if isinstance(self.pca_components, int) and self.pca_components > limit:
            raise ValueError(
                f"pca_components={self.pca_components} exceeds min(n_clips, n_features)={limit}"
            )
        # svd_solver="full": exact and deterministic (no randomized SVD).
        self.pca_ = PCA(n_components=self.pca_components, whiten=self.whiten, svd_solver="full")
        return self.pca_.fit_transform(Xp)

    def _one_cluster(self, n: int, reason: str) -> WardClustering:
        self.labels_ = np.zeros(n, dtype=np.int64)
        self.n_clusters_ = 1
        self.selection_ = {"mode": "fallback", "k": 1, "reason": reason, "n_clusters": 1}
        return self

    def _select_auto(self, Xp: np.ndarray) -> tuple[np.ndarray, dict]:
        n = Xp.shape[0]
        k_max = min(self.k_max, n - 1)
        selection: dict = {"mode": self.auto, "k_min": self.k_min, "k_max": k_max}
        ones = np.ones(n, dtype=np.int64)
        if k_max < self.k_min:
            selection.update(k=1, reason=f"{n} clips: too few to choose among k >= {self.k_min}")
            return ones, selection
        if self.auto == "silhouette":
            return self._select_silhouette(Xp, k_max, selection)
        return self._select_gap(n, k_max, selection)

    def _select_silhouette(self, Xp: np.ndarray, k_max: int, selection: dict):
        dist = squareform(pdist(Xp))  # (n, n), once for every k
        scores: dict[int, float] = {}
        candidates: dict[int, np.ndarray] = {}
        for k in range(self.k_min, k_max + 1):
            labels = fcluster(self.linkage_, k, criterion="maxclust")
            found = len(np.unique(labels))
            # Tied heights can give fewer clusters than asked: score each partition once.
            if found < 2 or found in candidates:
                continue
            candidates[found] = labels
            scores[found] = float(silhouette_score(dist, labels, metric="precomputed"))
        selection["scores"] = {str(k): s for k, s in scores.items()}
        if not scores:
            selection.update(k=1, reason="no partition with 2 or more clusters")
            return np.ones(Xp.shape[0], dtype=np.int64), selection
        best = max(scores, key=lambda k: (scores[k], -k))
        if scores[best] < self.min_silhouette:
            selection.update(
                k=1,
                reason=f"best silhouette {scores[best]:.3f} (k={best}) "
                f"below min_silhouette={self.min_silhouette}",
            )
            return np.ones(Xp.shape[0], dtype=np.int64), selection
        selection.update(k=best, reason="best silhouette")
        return candidates[best], selection

    def _select_gap(self, n: int, k_max: int, selection: dict):
        heights = self.merge_heights_  # (n - 1,) ascending; merge i leaves n - 1 - i clusters
        gaps: dict[int, float] = {}
        relative: dict[int, float] = {}
        for k in range(self.k_min, k_max + 1):
            below, above = heights[n - k - 1], heights[n - k]  # last merge made, next one
            gaps[k] = float(above - below)
            relative[k] = float(gaps[k] / below) if below > 0 else float("inf")
        selection["scores"] = {str(k): g for k, g in gaps.items()}
        selection["relative_gaps"] = {str(k): r for k, r in relative.items()}
        best = max(gaps, key=lambda k: (gaps[k], -k))
        if relative[best] < self.min_relative_gap:
            selection.update(
                k=1,
                reason=f"largest jump (k={best}) is {relative[best]:.3f} of its height, "
                f"below min_relative_gap={self.min_relative_gap}",
            )
            return np.ones(n, dtype=np.int64), selection
        labels = fcluster(self.linkage_, best, criterion="maxclust")
        selection.update(k=best, reason="largest jump in merge height")
        return labels, selection


def _check_embeddings(X) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"expected embeddings of shape (n_clips, dim), got {X.shape}")
    if X.shape[0] == 0:
        raise ValueError("no embeddings to cluster (0 rows)")
    if X.shape[1] == 0:
        raise ValueError("embeddings have 0 dimensions")
    bad = ~np.isfinite(X).all(axis=1)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise ValueError(
            f"{bad.sum()} of {X.shape[0]} embedding rows contain NaN or inf "
            f"(first rows: {rows[:5].tolist()})"
        )
    return X


def _all_identical(X: np.ndarray) -> bool:
    spread = np.ptp(X, axis=0).max()  # widest range of any feature
    return bool(spread <= 1e-12 * max(1.0, float(np.abs(X).max())))


def _first_appearance_order(labels: np.ndarray) -> np.ndarray:
    """Renumber labels 0..k-1 in the order they first appear."""
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.argsort(np.argsort(first))  # unique label -> its order of first appearance
    return rank[inverse].astype(np.int64)


# --- cluster quality ----------------------------------------------------------------------------


def cluster_quality(true_labels, cluster_labels) -> dict:
    """How well clusters match known labels: NMI, ARI, purity, and both counts.

    Purity is the share of clips whose cluster's most common true label is their own.
    """
    truth = np.asarray(true_labels)
    found = np.asarray(cluster_labels)
    if truth.shape != found.shape or truth.ndim != 1:
        raise ValueError(f"need two label vectors of one length, got {truth.shape}, {found.shape}")
    if truth.size == 0:
        raise ValueError("no labels to compare")
    table = pd.crosstab(found, truth)  # (clusters, true labels) counts
    return {
        "nmi": float(normalized_mutual_info_score(truth, found)),
        "ari": float(adjusted_rand_score(truth, found)),
        "purity": float(table.to_numpy().max(axis=1).sum() / truth.size),
        "n_clusters": int(table.shape[0]),
        "n_true": int(table.shape[1]),
    }


# --- label space --------------------------------------------------------------------------------

LABEL_MODES = ("none", "pseudo")
CLIP_TABLE_NEEDS = ("file", "machine_type", "attributes", "attributes_known")


def _known_flags(clips: pd.DataFrame) -> pd.Series:
    """attributes_known as bools, whether read as bools or as "True"/"False" text from a CSV."""
    flags = clips["attributes_known"]
    if flags.dtype == bool:
        return flags
    text = flags.astype(str).str.strip().str.lower()
    unknown = ~text.isin(["true", "false", "1", "0"])
    if unknown.any():
        raise ValueError(
            f"attributes_known has values that are not booleans: {set(flags[unknown])}"
        )
    return text.isin(["true", "1"])


def machine_has_attributes(clips: pd.DataFrame) -> dict[str, bool]:
    """machine_type -> whether its clips carry ground-truth attributes.

    A machine type must be all known or all unknown: a mix is an error naming the machine types.
    """
    _check_columns(clips, ("machine_type", "attributes_known"))
    known = _known_flags(clips).groupby(clips["machine_type"], sort=True).agg(["all", "any"])
    mixed = known.index[known["any"] & ~known["all"]].tolist()
    if mixed:
        raise ValueError(
            f"machine types mixing known and unknown attributes: {mixed}; "
            "pass the training clips of each machine type"
        )
    return {str(m): bool(v) for m, v in known["all"].items()}


def _check_columns(clips: pd.DataFrame, needed) -> None:
    missing = [c for c in needed if c not in clips.columns]
    if missing:
        raise ValueError(f"clip table lacks columns {missing}")


def _attribute_text(attributes: str) -> str:
    """'{"mic": "1", "spd": "28V"}' -> 'mic=1;spd=28V' (key order as stored: sorted)."""
    parsed = json.loads(attributes)
    if not isinstance(parsed, dict):
        raise ValueError(f"attributes must be a JSON object, got {attributes!r}")
    return ";".join(f"{k}={v}" for k, v in parsed.items()) or "-"


def _pseudo_names(machine_type: str, files: pd.Series, labels: pd.Series | None) -> pd.Series:
    if labels is None:
        raise ValueError(f"no pseudo-attributes given for machine type {machine_type!r}")
    if not labels.index.is_unique:
        raise ValueError(f"pseudo-attributes of {machine_type!r} list some files twice")
    found = labels.reindex(files.to_numpy())
    missing = files[found.isna().to_numpy()]
    if len(missing):
        raise ValueError(
            f"{len(missing)} clips of {machine_type!r} have no pseudo-attribute, "
            f"e.g. {missing.head(3).tolist()}"
        )
    return pd.Series([f"{machine_type}|pseudo={_cluster_id(v)}" for v in found], index=files.index)


def _cluster_id(value) -> str:
    """3, 3.0, "3" -> "3"; other ids as text."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return str(int(number)) if number.is_integer() else str(value)


def build_label_space(
    clips: pd.DataFrame, pseudo: dict[str, pd.Series] | None = None, mode: str = "none"
) -> pd.DataFrame:
    """The MAC classes of the training clips: one class per (machine type, attribute set).

    mode "none": machine types with ground-truth attributes get one class per attribute
    combination (`fan|mic=1;spd=28V`, "-" for an empty set); each machine type without attributes
    is one class (`bearing|all`). mode "pseudo": as "none", but machine types without attributes
    take their classes from `pseudo[machine_type]`, a Series indexed by file giving the cluster id
    (`bearing|pseudo=3`); entries for machine types that have ground truth are ignored.

    Returns a copy of `clips` with class_name, class_index (0..C-1 over sorted class names) and
    label_source ("ground_truth" | "pseudo" | "machine").
    """
    if mode not in LABEL_MODES:
        raise ValueError(f"Unsupported label mode {mode!r}: use one of {LABEL_MODES}")
    if mode == "pseudo" and pseudo is None:
        raise ValueError('mode "pseudo" needs pseudo-attributes per machine type')
    _check_columns(clips, CLIP_TABLE_NEEDS)
    if clips["file"].duplicated().any():
        raise ValueError(
            f"clip table lists files twice: {clips['file'][clips['file'].duplicated()]}"
        )
    bad_names = sorted({m for m in clips["machine_type"] if "|" in str(m)})
    if bad_names:
        raise ValueError(f"machine types may not contain '|': {bad_names}")
    has_attributes = machine_has_attributes(clips)
    if mode == "pseudo":
        absent = sorted(m for m, has in has_attributes.items() if not has and m not in pseudo)
        if absent:
            raise ValueError(f"no pseudo-attributes for machine types {absent}")

    out = clips.copy()
    names = pd.Series("", index=out.index, dtype=object)
    sources = pd.Series("", index=out.index, dtype=object)
    for machine_type, rows in out.groupby("machine_type", sort=True):
        if has_attributes[str(machine_type)]:
            names[rows.index] = [f"{machine_type}|{_attribute_text(a)}" for a in rows["attributes"]]
            sources[rows.index] = "ground_truth"
        elif mode == "pseudo":
            names[rows.index] = _pseudo_names(
                str(machine_type), rows["file"], pseudo.get(machine_type)
            )
            sources[rows.index] = "pseudo"
        else:
            names[rows.index] = f"{machine_type}|all"
            sources[rows.index] = "machine"
    # A class name stems from one source only (names start with the machine type, and a machine
    # type has one source); checked, since a collision would silently merge classes.
    per_name = sources.groupby(names).nunique()
    if (per_name > 1).any():
        raise ValueError(f"class names from two label sources: {per_name[per_name > 1].index}")
    classes = sorted(set(names))
    out["class_name"] = names.astype(str)
    out["class_index"] = names.map({c: i for i, c in enumerate(classes)}).astype("int64")
    out["label_source"] = sources.astype(str)
    return out


def read_pseudo_labels(path: Path | str, clips: pd.DataFrame) -> dict[str, pd.Series]:
    """A `file,pseudo_attribute` CSV (from main_cluster) as build_label_space's `pseudo` dict,
    grouped by the machine types of `clips`. Files not in `clips` are an error."""
    table = pd.read_csv(path)
    machine_of = clips.set_index("file")["machine_type"]
    unknown = ~table["file"].isin(machine_of.index)
    if unknown.any():
        raise ValueError(
            f"{path}: {unknown.sum()} files not in the clip table, e.g. "
            f"{table['file'][unknown].head(3).tolist()}"
        )
    table["machine_type"] = table["file"].map(machine_of)
    return {
        str(m): rows.set_index("file")["pseudo_attribute"]
        for m, rows in table.groupby("machine_type", sort=True)
    }


# --- the stage: clustering files and label spaces -----------------------------------------------


def _truth_by_file(path: Path, files: pd.Series) -> pd.Series:
    """True attribute sets of `files` from a CSV with file (or file_name) and attributes columns;
    files are matched by path, else by base name."""
    truth = pd.read_csv(path, dtype=str, keep_default_na=False)
    key = "file" if "file" in truth.columns else "file_name"
    if key not in truth.columns or "attributes" not in truth.columns:
        raise ValueError(f"{path}: needs columns file (or file_name) and attributes")
    canonical = [json.dumps(json.loads(a), sort_keys=True) for a in truth["attributes"]]
    by_path = dict(zip(truth[key], canonical, strict=True))
    by_name = {Path(f).name: a for f, a in by_path.items()}
    found = [by_path.get(f, by_name.get(Path(f).name)) for f in files]
    missing = [f for f, a in zip(files, found, strict=True) if a is None]
    if missing:
        raise ValueError(f"{path}: no attributes for {len(missing)} clips, e.g. {missing[:3]}")
    return pd.Series(found, index=files.index)


@dataclass(frozen=True)
class ClusterSettings:
    """The `pseudolabels.clustering` section: WardClustering's parameters (see its docstring)."""

    n_clusters: int | None = None
    distance_threshold: float | None = None
    auto: str = "silhouette"
    k_min: int = 2
    k_max: int = 16
    min_silhouette: float = 0.1
    min_relative_gap: float = 0.5
    l2_normalize: bool = True
    pca_components: int | float | None = None
    whiten: bool = False


def cluster_machine_types(
    embeddings_path: Path,
    index_path: Path,
    out: Path,
    settings: ClusterSettings,
    quality_truth: Path | None = None,
) -> pd.DataFrame:
    """Cluster each machine type's embeddings (rows as in the clip table `index_path`); write
    `out` (file, pseudo_attribute) and `<out>.json` (the choice made per machine type, and the
    clusters' quality against `quality_truth` when given)."""
    embeddings = np.load(embeddings_path)
    index = pd.read_csv(index_path, keep_default_na=False)
    if embeddings.ndim != 2 or embeddings.shape[0] != len(index):
        raise ValueError(
            f"{embeddings_path}: shape {embeddings.shape} does not match the {len(index)} rows "
            f"of {index_path}"
        )
    params = asdict(settings)
    truth = _truth_by_file(Path(quality_truth), index["file"]) if quality_truth else None

    labels = pd.Series(-1, index=index.index, dtype="int64")
    report: dict = {"settings": params, "machine_types": {}}
    for machine_type, rows in index.groupby("machine_type", sort=True):
        model = WardClustering(**params).fit(embeddings[rows.index.to_numpy()])
        labels[rows.index] = model.labels_
        entry = {"n_clips": len(rows), "n_clusters": model.n_clusters_, **model.selection_}
        if truth is not None:
            entry["quality"] = cluster_quality(truth[rows.index].to_numpy(), model.labels_)
        report["machine_types"][str(machine_type)] = entry

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame({"file": index["file"], "pseudo_attribute": labels})
    table.to_csv(out, index=False)
    Path(f"{out}.json").write_text(json.dumps(report, indent=2) + "\n")
    return table


def write_label_space(index_paths: list[Path], pseudo_paths: list[Path], out: Path) -> pd.DataFrame:
    """Write the label space of the training clips of the clip tables `index_paths`: with
    `pseudo_paths` (cluster_machine_types' CSVs), machine types without attributes get their
    pseudo-attributes; without, one class each."""
    clips = pd.concat(
        [pd.read_csv(p, keep_default_na=False) for p in index_paths], ignore_index=True
    )
    pseudo: dict[str, pd.Series] | None = None
    if pseudo_paths:
        pseudo = {}
        for path in pseudo_paths:
            for machine_type, labels in read_pseudo_labels(path, clips).items():
                if machine_type in pseudo:
                    raise ValueError(f"{path}: machine type {machine_type!r} in two pseudo files")
                pseudo[machine_type] = labels
    space = build_label_space(clips, pseudo, "pseudo" if pseudo_paths else "none")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    space.to_csv(out, index=False)
    return space
