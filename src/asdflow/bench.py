"""Benchmarks that print figures (never assertions): run with `asdflow bench <what>`."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
import torch

from asdflow import features


def _write_clips(folder: Path, n_clips: int, clip_seconds: float, sample_rate: int) -> list[str]:
    """Machine-like test clips: a few harmonics of a random shaft frequency in noise."""
    rng = np.random.default_rng(0)
    t = np.arange(int(clip_seconds * sample_rate)) / sample_rate
    paths = []
    for i in range(n_clips):
        f0 = rng.uniform(40, 200)
        wav = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 6))
        wav = 0.1 * wav + 0.05 * rng.standard_normal(t.size)
        path = folder / f"clip_{i:05d}.wav"
        sf.write(path, wav.astype(np.float32), sample_rate, subtype="PCM_16")
        paths.append(str(path))
    return paths


def bench_features(
    n_clips: int = 400, clip_seconds: float = 10.0, n_frames: int = 1024, epochs: int = 1
) -> dict:
    """Cache build speed, and reading a training epoch from the cache vs fbank on the fly.

    Both epoch variants deliver the same normalised (n_frames, 128) float32 tensors in a shuffled
    order, one clip at a time, as a data loader would.
    """
    torch.set_num_threads(1)
    settings = features.FbankSettings(n_frames=n_frames)
    stats = features.NormStats(features.AUDIOSET_MEAN, features.AUDIOSET_STD, "fixed")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        paths = _write_clips(tmp, n_clips, clip_seconds, settings.sample_rate)
        clips = pd.DataFrame({"file": paths, "split": "train"})

        start = time.perf_counter()
        features.cache_split(clips, tmp / "train.npy", tmp / "train.csv", settings, progress=False)
        build_s = time.perf_counter() - start

        order = np.random.default_rng(1).permutation(n_clips)
        cache = features.open_cache(tmp / "train.npy")
        start = time.perf_counter()
        for _ in range(epochs):
            for i in order:
                x = torch.from_numpy(stats.apply(np.array(cache[i])))
        cached_s = time.perf_counter() - start

        start = time.perf_counter()
        for _ in range(epochs):
            for i in order:
                x, _ = features.clip_features(paths[i], settings)
                x = torch.from_numpy(stats.apply(x))
        onthefly_s = time.perf_counter() - start
        del x

    result = {
        "clips": n_clips,
        "clip_seconds": clip_seconds,
        "n_frames": n_frames,
        "cache_build_clips_per_s": n_clips / build_s,
        "epoch_from_cache_clips_per_s": epochs * n_clips / cached_s,
        "epoch_on_the_fly_clips_per_s": epochs * n_clips / onthefly_s,
        "speedup_cache_vs_on_the_fly": onthefly_s / cached_s,
    }
    _print(result)
    return result


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


def _pretrain_step_timer(model: str, batch: int, clones: int, n_frames: int, precision: str):
    """A ready UFO objective + optimizer and a function running one full training step."""
    from asdflow import models, pretrain, train

    torch.manual_seed(0)
    settings = pretrain.PretrainSettings(model=model, clone_batch=clones)
    objective = pretrain.UFOObjective(models.create_model(model), settings)
    optimizer = train.build_optimizer(
        "adamw", train.param_groups(objective, 0.05), lr=1e-4, betas=(0.9, 0.95)
    )
    x = torch.randn(batch, 1, n_frames, 128)
    device = torch.device("cpu")

    def step(i: int) -> None:
        with train.autocast_for(device, precision):
            loss, _ = objective({"x": x}, train.step_generator(0, i))
        train.optimizer_step(objective, optimizer, loss, clip_grad=None)
        objective.after_step(i + 1)

    return objective, step


def bench_clones(
    model: str = "eat_tiny",
    rows: int = 32,
    n_frames: int = 192,
    steps: int = 10,
    precision: str = "fp32",
) -> dict:
    """Student clips/s with clone_batch 16 against 1 at the same number of student rows per
    step (EAT's claim: clones amortise the teacher pass and the data loading). One run."""
    result = {"model": model, "student_rows_per_step": rows, "n_frames": n_frames, "steps": steps}
    for clones in (1, 16):
        _, step = _pretrain_step_timer(model, rows // clones, clones, n_frames, precision)
        step(0)  # warm-up
        start = time.perf_counter()
        for i in range(1, steps + 1):
            step(i)
        seconds = (time.perf_counter() - start) / steps
        result[f"clone{clones}_seconds_per_step"] = seconds
        result[f"clone{clones}_student_clips_per_s"] = rows / seconds
        result[f"clone{clones}_distinct_clips_per_s"] = rows / clones / seconds
    result["ratio_student_clips_per_s_16_vs_1"] = (
        result["clone16_student_clips_per_s"] / result["clone1_student_clips_per_s"]
    )
    _print(result)
    return result


def bench_pretrain_memory(
    model: str = "eat_base",
    batch: int = 12,
    clones: int = 16,
    n_frames: int = 1024,
    precision: str = "fp32",
) -> dict:
    """Peak resident memory of one pre-training step (forward, backward, AdamW, EMA) on CPU.

    Reported as the process's peak RSS and its increase over the RSS after building the model
    and optimizer state; run it in a fresh process, since the peak never goes down.
    """
    import resource

    def rss_gib() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB

    torch.set_num_threads(max(1, torch.get_num_threads()))
    objective, step = _pretrain_step_timer(model, batch, clones, n_frames, precision)
    before = rss_gib()
    start = time.perf_counter()
    step(0)
    seconds = time.perf_counter() - start
    from asdflow import models

    cfg = objective.student.cfg
    time_patches, freq = objective.student.grid(n_frames)
    kept = int(time_patches * freq * 0.2)
    result = {
        "model": model,
        "batch_x_clones": f"{batch} x {clones}",
        "n_frames": n_frames,
        "precision": precision,
        "encoder_parameters_M": models.count_parameters(objective.student) / 1e6,
        "peak_rss_GiB": rss_gib(),
        "rss_before_step_GiB": before,
        "step_increase_GiB": rss_gib() - before,
        "step_seconds": seconds,
        "student_tokens_per_step": batch * clones * (kept + 1),
        "embed_dim": cfg.embed_dim,
    }
    _print(result)
    return result


def _print(result: dict) -> None:
    width = max(map(len, result))
    for key, value in result.items():
        text = f"{value:.3f}" if isinstance(value, float) else str(value)
        print(f"{key:<{width}}  {text}")


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
