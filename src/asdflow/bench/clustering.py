"""What the embeddings know about the machines' attributes: `asdflow bench clustering` (cluster
quality of each clustering variant on each encoder's embeddings, after `make run`) and
`asdflow bench attributes` (attribute values predicted from loudness alone vs from log-mel)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from asdflow import features

CLUSTERING_VARIANTS = {
    "l2, silhouette": {},
    "l2, gap": {"auto": "gap"},
    "l2 + PCA 0.90 + whiten, silhouette": {"pca_components": 0.9, "whiten": True},
    "l2 + PCA 0.95 + whiten, silhouette": {"pca_components": 0.95, "whiten": True},
    "l2 + PCA 0.99 + whiten, silhouette": {"pca_components": 0.99, "whiten": True},
    "l2 + PCA 0.99 + whiten, gap": {"pca_components": 0.99, "whiten": True, "auto": "gap"},
    "l2 + PCA 0.99 + whiten, true count": {
        "pca_components": 0.99,
        "whiten": True,
        "n_clusters": -1,
    },
}


def bench_clustering(
    results: Path = Path("results"), synth_root: Path = Path("resources/synthetic")
) -> pd.DataFrame:
    """Cluster quality (NMI, ARI, clusters found) of each clustering variant on each encoder's
    training-clip embeddings, averaged over the machine types whose true attributes are known
    (run after `make run`). "true count" cheats with the true number of attribute sets."""
    import warnings

    from asdflow import pseudolabel, tables

    rows = []
    for enc_dir in sorted((Path(results) / "embeddings").iterdir()):
        for emb_path in sorted(enc_dir.glob("*/*/train.npy")):
            dataset, machine = emb_path.parent.parent.name, emb_path.parent.name
            index = features.read_index(
                Path(results) / "features" / dataset / machine / "train.csv"
            )
            truth_csv = (
                Path(synth_root) / "ground_truth" / dataset / f"{machine}_hidden_attributes.csv"
            )
            truth = tables.true_attribute_sets(index, truth_csv)
            if truth is None:
                continue
            X = np.load(emb_path)
            for name, settings in CLUSTERING_VARIANTS.items():
                settings = dict(settings)
                if settings.get("n_clusters") == -1:
                    settings["n_clusters"] = truth.nunique()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    labels = pseudolabel.WardClustering(**settings).fit(X).labels_
                q = pseudolabel.cluster_quality(truth.to_numpy(), labels)
                rows.append({"encoder": enc_dir.name, "variant": name, **q})
    table = (
        pd.DataFrame(rows)
        .groupby(["variant", "encoder"], sort=False)[["nmi", "ari", "n_clusters", "n_true"]]
        .mean()
        .reset_index()
    )
    wide = table.pivot(index="variant", columns="encoder", values="nmi").loc[
        list(CLUSTERING_VARIANTS)
    ]
    print("NMI, mean over machine types with known attributes:")
    print(wide.to_string(float_format=lambda v: f"{v:.3f}"))
    print("\nARI:")
    print(
        table.pivot(index="variant", columns="encoder", values="ari")
        .loc[list(CLUSTERING_VARIANTS)]
        .to_string(float_format=lambda v: f"{v:.3f}")
    )
    print(
        "\nclusters found (true attribute sets per machine type: "
        f"{table['n_true'].mean():.1f} on average):"
    )
    print(
        table.pivot(index="variant", columns="encoder", values="n_clusters")
        .loc[list(CLUSTERING_VARIANTS)]
        .to_string(float_format=lambda v: f"{v:.1f}")
    )
    return table


def bench_attributes(
    features_root: Path, synth_root: Path, datasets=("dev", "eval")
) -> pd.DataFrame:
    """How well each attribute's value is predicted from loudness alone vs from pooled log-mel.

    Source-domain training clips of every machine type; 5-fold cross-validated logistic
    regression; chance = the share of the most frequent value. Hidden attributes of the synthetic
    factory's no-attribute machine types come from its ground-truth files.
    """
    import json

    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from asdflow import score, tables

    stats = features.NormStats.load(Path(features_root) / "norm_stats.json")
    rows = []
    for dataset in datasets:
        for machine_dir in sorted((Path(features_root) / dataset).iterdir()):
            train = features.read_index(machine_dir / "train.csv")
            source = (train["domain"] == "source").to_numpy()
            truth = (
                Path(synth_root)
                / "ground_truth"
                / dataset
                / f"{machine_dir.name}_hidden_attributes.csv"
            )
            truth_sets = tables.true_attribute_sets(train, truth)
            if truth_sets is None:
                raise FileNotFoundError(f"{truth}: hidden attributes needed for {machine_dir.name}")
            attributes = [json.loads(a) for a, s in zip(truth_sets, source, strict=True) if s]
            array = features.open_cache(machine_dir / "train.npy")
            logmel = score.logmel_embeddings(array, train["n_frames"].to_numpy(), stats)[source]
            loudness = np.array(
                [
                    [10 * np.log10(np.mean(np.square(sf.read(f)[0])) + 1e-12)]
                    for f in train["file"][source]
                ]
            )
            for key in sorted(attributes[0]):
                y = np.array([a[key] for a in attributes])
                values, counts = np.unique(y, return_counts=True)
                if len(values) < 2:
                    continue
                folds = StratifiedKFold(n_splits=min(5, counts.min()), shuffle=True, random_state=0)
                model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
                rows.append(
                    {
                        "dataset": dataset,
                        "machine_type": machine_dir.name,
                        "attribute": key,
                        "values": len(values),
                        "chance": counts.max() / counts.sum(),
                        "loudness_only": cross_val_score(model, loudness, y, cv=folds).mean(),
                        "logmel": cross_val_score(model, logmel, y, cv=folds).mean(),
                    }
                )
    table = pd.DataFrame(rows)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    print(
        f"mean accuracy: chance {table['chance'].mean():.2f}, loudness only "
        f"{table['loudness_only'].mean():.2f}, log-mel {table['logmel'].mean():.2f}"
    )
    return table
