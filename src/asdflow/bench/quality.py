"""Why a system detects what it detects: `asdflow bench quality` measures the embeddings of every
encoder of a finished run (and the log-mel baseline's) on the synthetic demo, where the factory
knows each clip's true attributes and anomaly kind (issue 10).

Per encoder and machine type: how much one shared direction dominates the embeddings, how far
apart the clips are before centring, how well the nearest training clip predicts a clip's true
attribute values (and, pooled, its machine type), and the k-NN AUCs with and without centring;
per anomaly kind and domain, which kinds each system catches.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score

from asdflow import features, knn, metrics, models, score, tables
from asdflow import workflow as plan
from asdflow.data import synth
from asdflow.settings import from_mapping

LOGMEL = "logmel_knn"
# k-NN back ends compared, by column suffix: the default (the paper's joint bank, k = 1), centred
# embeddings, and k-means centres of the source clips plus the target clips
SCORERS = {
    "": knn.KnnSettings(),
    "_centred": knn.KnnSettings(center=True),
    "_kmeans_source": knn.KnnSettings(bank="kmeans_source"),
}


def shared_direction_ratio(emb: np.ndarray) -> float:
    """|mean embedding| / mean |embedding|: 1.0 when every clip is the same vector."""
    emb = np.asarray(emb, dtype=np.float64)
    return float(np.linalg.norm(emb.mean(axis=0)) / np.linalg.norm(emb, axis=1).mean())


def nearest_neighbour_accuracy(emb: np.ndarray, labels: np.ndarray, center: bool = True) -> float:
    """Leave-one-out accuracy of the nearest other row's label (cosine), rows (N, D)."""
    x = np.asarray(emb, dtype=np.float64)
    if center:
        x = x - x.mean(axis=0)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-300)
    sim = x @ x.T
    np.fill_diagonal(sim, -np.inf)
    return float(np.mean(np.asarray(labels)[sim.argmax(axis=1)] == np.asarray(labels)))


def anomaly_kinds(machine_type: str, dataset: str, counts, seed: int) -> dict:
    """Test file base name -> anomaly kind (None for normal clips), as the factory planned them."""
    mt = synth.get_machine_type(machine_type)
    rows = synth.plan_clips(mt, dataset, counts, seed)
    return {r["name"]: r["anomaly"] for r in rows if r["split"] == "test"}


def kind_aucs(test: pd.DataFrame, scores: np.ndarray, kinds: dict) -> list[dict]:
    """AUC of each (anomaly kind, domain): that domain's normal test clips vs its clips of that
    kind (the official AUC_d pools all anomalies; this splits them)."""
    names = [Path(f).name for f in test["file"]]
    kind = np.array([kinds.get(n) or "" for n in names])
    normal = (test["label"] == "normal").to_numpy()
    rows = []
    for domain in knn.DOMAINS:
        in_domain = (test["domain"] == domain).to_numpy()
        for k in sorted(set(kind[~normal & in_domain])):
            mask = in_domain & (normal | (kind == k))
            y = (~normal[mask]).astype(int)
            rows.append({"domain": domain, "kind": k, "auc": roc_auc_score(y, scores[mask])})
    return rows


def _truth(synth_root: Path, dataset: str, machine_dir: Path, train: pd.DataFrame) -> np.ndarray:
    path = Path(synth_root) / "ground_truth" / dataset / f"{machine_dir.name}_hidden_attributes.csv"
    sets = tables.true_attribute_sets(train, path)
    if sets is None:
        raise FileNotFoundError(f"{path}: hidden attributes needed for {machine_dir.name}")
    return np.array([json.dumps(json.loads(s), sort_keys=True) for s in sets])


def embeddings_of(system: str, source, array: np.ndarray, index: pd.DataFrame) -> np.ndarray:
    """(N, D) embeddings of cached clips: `source` is NormStats for the log-mel baseline, else an
    (encoder, NormStats, pooling) tuple."""
    if system == LOGMEL:
        return score.logmel_embeddings(array, index["n_frames"].to_numpy(), source)
    from asdflow import embed

    encoder, stats, pooling = source
    return embed.embed_array(encoder, array, stats, pooling, desc=f"{system}")


def diagnose(
    systems: dict[str, object],
    features_root: Path,
    synth_root: Path,
    counts,
    seed: int,
    datasets=("dev", "eval"),
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(per machine type, per anomaly kind, pooled machine-type accuracy) tables of every system.

    `systems`: name -> what `embeddings_of` takes (NormStats for "logmel_knn").
    """
    machine_rows, kind_rows, pooled_rows = [], [], []
    for system, source in systems.items():
        pooled_emb, pooled_type = [], []
        for dataset in datasets:
            for machine_dir in sorted((Path(features_root) / dataset).iterdir()):
                emb, index = {}, {}
                for split in ("train", "test"):
                    index[split] = features.read_index(machine_dir / f"{split}.csv")
                    array = features.open_cache(machine_dir / f"{split}.npy")
                    emb[split] = embeddings_of(system, source, array, index[split])
                train, test = index["train"], index["test"]
                normal = (train["label"] == "normal").to_numpy()
                truth = _truth(synth_root, dataset, machine_dir, train)
                row = {
                    "system": system,
                    "dataset": dataset,
                    "machine_type": machine_dir.name,
                    "shared_ratio": shared_direction_ratio(emb["train"]),
                    "nn_spread": knn.embedding_spread(emb["train"][normal]),
                    "attribute_1nn": nearest_neighbour_accuracy(emb["train"], truth, center=False),
                }
                label = (test["label"] == "anomaly").astype(int).to_numpy()
                for suffix, settings in SCORERS.items():
                    scores, _ = knn.anomaly_scores(
                        emb["train"][normal],
                        train["domain"].to_numpy()[normal],
                        emb["test"],
                        settings,
                        name=f"{system} {machine_dir.name}",
                    )
                    m = metrics.machine_metrics(test["domain"].to_numpy(), label, scores)
                    row.update({f"{k}{suffix}": v for k, v in m.items()})
                    row[f"official{suffix}"] = metrics.official_score(m.values())
                    if not suffix:  # the default scorer
                        kinds = anomaly_kinds(machine_dir.name, dataset, counts, seed)
                        for r in kind_aucs(test, scores, kinds):
                            kind_rows.append({"system": system, **r})
                machine_rows.append(row)
                pooled_emb.append(emb["train"])
                pooled_type += [machine_dir.name] * len(train)
        pooled_rows.append(
            {
                "system": system,
                "machine_type_1nn": nearest_neighbour_accuracy(
                    np.concatenate(pooled_emb), np.array(pooled_type)
                ),
            }
        )
    return pd.DataFrame(machine_rows), pd.DataFrame(kind_rows), pd.DataFrame(pooled_rows)


def systems_of_run(
    results: Path, features_root: Path, runs: list[str], poolings=models.POOLINGS
) -> dict[str, object]:
    """The log-mel baseline, then an untrained encoder of the general encoder's size ("random
    init": what the general pre-training adds), every pre-trained encoder and the first seed of
    each fine-tuning run found under `results`, each embedded with every one of `poolings`:
    named "<encoder> (<pooling>)", with a * on the pooling a fine-tuned encoder was trained with."""
    from asdflow import checkpoint

    systems: dict[str, object] = {
        LOGMEL: features.NormStats.load(features_root / "norm_stats.json")
    }
    paths = {
        f"pretrain/{n}": results / "pretrain" / n / "model.pt"
        for n in ("general", "dap", "dap_full")
    }
    paths.update({f"finetune/{r}": results / "finetune" / r / "seed0" / "model.pt" for r in runs})
    for name, path in paths.items():
        if path.is_file():
            encoder, state = checkpoint.encoder_from_checkpoint(path)
            stats = features.NormStats(**state["normalization"])
            if name == "pretrain/general":
                torch.manual_seed(0)
                untrained = models.EATEncoder(encoder.cfg).eval()
                for pooling in poolings:
                    systems[f"random init ({pooling})"] = (untrained, stats, pooling)
            trained = state["settings"].get("pooling") if name.startswith("finetune/") else None
            for pooling in poolings:
                mark = "*" if pooling == trained else ""
                systems[f"{name} ({pooling}{mark})"] = (encoder, stats, pooling)
    return systems


def bench_quality(
    results: Path, synth_root: Path, counts, seed: int, runs: list[str], out: Path
) -> None:
    """Print and save (under `out`) the diagnosis tables of a finished demo run."""
    features_root = Path(results) / "features"
    systems = systems_of_run(Path(results), features_root, runs)
    per_machine, per_kind, pooled = diagnose(systems, features_root, Path(synth_root), counts, seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    per_machine.to_csv(out / "machines.csv", index=False)
    per_kind.to_csv(out / "kinds.csv", index=False)
    columns = [
        "official",
        "auc_source",
        "auc_target",
        "pauc",
        "official_centred",
        "official_kmeans_source",
        "attribute_1nn",
        "shared_ratio",
        "nn_spread",
    ]
    summary = per_machine.groupby("system", sort=False)[columns].mean()
    summary = summary.join(pooled.set_index("system"))
    summary.to_csv(out / "summary.csv")
    kinds = per_kind.pivot_table(
        index="system", columns=["domain", "kind"], values="auc", sort=False
    )
    kinds.to_csv(out / "kinds_summary.csv")
    pd.set_option("display.width", 250)
    print(f"Embeddings and k-NN AUCs, mean over machine types ({out / 'summary.csv'}):")
    print(summary.round(4).to_string())
    print(
        f"\nAUC by anomaly kind and domain, mean over machine types ({out / 'kinds_summary.csv'}):"
    )
    print(kinds.round(3).to_string())


def main(config_paths: list[Path], results: Path, out: Path) -> None:
    """`asdflow bench quality`: the diagnosis of the finished synthetic run of `config_paths`."""
    config = plan.load_config(config_paths)
    if config.get("data_source") != "synthetic":
        names = " ".join(map(str, config_paths))
        raise ValueError(f"{names}: bench quality needs the synthetic factory's ground truth")
    synthetic = config["synthetic"]
    counts = synth.Counts(**synthetic["counts"])
    runs = list(config["finetune"]["runs"])
    bench_quality(
        results,
        Path(synthetic["root"]),
        counts,
        synthetic["seed"],
        runs,
        out if str(out) not in ("", ".") else Path(results) / "bench" / "quality",
    )


def sweep_variants(common: dict, factors: dict[str, list]) -> dict[str, dict]:
    """One factor at a time around the configured fine-tuning settings `common`: the
    configuration itself, then each other value of each factor. Name -> settings."""
    variants = {"config": dict(common)}
    for key, values in factors.items():
        for value in values:
            if value != common.get(key):
                variants[f"{key}={value}"] = {**common, key: value}
    return variants


def finetune_sweep(
    config_paths: list[Path],
    results: Path,
    run: str,
    factors: dict[str, list],
    out: Path,
    holdout: float = 0.1,
) -> pd.DataFrame:
    """Fine-tune `run` (its init encoder and label source, first seed) once per variant of
    `sweep_variants`, with `holdout` of each class's clips held back, score each with the k-NN
    back end, and print one row per variant; write the training curves (training and held-back
    cross-entropy and accuracy against steps) as curves.csv and curves.png.
    Finished variants are read back, interrupted ones resume."""
    from asdflow import checkpoint, finetune

    config = plan.load_config(config_paths)
    synthetic, ft = config["synthetic"], config["finetune"]
    if run not in ft["runs"]:
        names = " ".join(map(str, config_paths))
        raise ValueError(
            f"{names}: no run {run!r} under finetune.runs; known: {', '.join(ft['runs'])}"
        )
    spec = ft["runs"][run]
    results, out = Path(results), Path(out)
    init = results / "pretrain" / spec["init"] / "model.pt"
    labels = pd.read_csv(results / "labels" / f"{spec['labels']}.csv")
    features_root = results / "features"
    prefixes = [
        str(p.with_suffix(""))
        for d in ("dev", "eval")
        for p in sorted((features_root / d).glob("*/train.npy"))
    ]
    rows, curves = [], []
    for name, settings in sweep_variants({**ft["common"], "holdout": holdout}, factors).items():
        path = out / name.replace("=", "_") / "model.pt"
        if not path.is_file():
            resolved = {**settings, "seed": ft["seeds"][0]}
            finetune.finetune(
                from_mapping(finetune.FinetuneSettings, resolved),
                prefixes,
                labels,
                path,
                init,
                progress=True,
            )
        lines = [json.loads(line) for line in path.with_suffix(".metrics.jsonl").open()]
        curves += [{"variant": name, **line} for line in lines]
        encoder, state = checkpoint.encoder_from_checkpoint(path)
        stats = features.NormStats(**state["normalization"])
        system = (encoder, stats, settings["pooling"])
        per_machine, _, _ = diagnose(
            {name: system},
            features_root,
            Path(synthetic["root"]),
            synth.Counts(**synthetic["counts"]),
            synthetic["seed"],
        )
        means = per_machine[["official", "auc_source", "auc_target", "pauc", "attribute_1nn"]]
        rows.append(
            {
                "variant": name,
                "steps": settings["steps"],
                "train_accuracy_last": lines[-1]["accuracy"],
                "ce_last": lines[-1]["ce"],
                "heldout_accuracy_last": lines[-1].get("heldout_accuracy", np.nan),
                "heldout_ce_last": lines[-1].get("heldout_ce", np.nan),
                "seconds_per_step": float(np.median([x["seconds_per_step"] for x in lines])),
                **means.mean().to_dict(),
            }
        )
    table = pd.DataFrame(rows)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "sweep.csv", index=False)
    curves = pd.DataFrame(curves)
    curves.to_csv(out / "curves.csv", index=False)
    plot_curves(curves, out / "curves.png")
    pd.set_option("display.width", 250)
    print(f"Fine-tuning run {run!r}, one factor at a time ({out / 'sweep.csv'}):")
    print(table.round(4).to_string(index=False))
    print(f"\nTraining curves: {out / 'curves.csv'}, {out / 'curves.png'}")
    return table


def plot_curves(curves: pd.DataFrame, path: Path) -> None:
    """Cross-entropy and accuracy against steps, one colour per variant: training batches
    (augmented, dashed) and held-back clips (solid)."""
    from asdflow.figures import plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for i, (variant, rows) in enumerate(curves.groupby("variant", sort=False)):
        colour = f"C{i % 10}"
        for ax, key in zip(axes, ("ce", "accuracy"), strict=True):
            ax.plot(rows["step"], rows[key], "--", color=colour, alpha=0.6)
            if f"heldout_{key}" in rows:
                ax.plot(rows["step"], rows[f"heldout_{key}"], "-", color=colour, label=variant)
    for ax, title in zip(axes, ("cross-entropy", "accuracy"), strict=True):
        ax.set_xscale("log")
        ax.set_xlabel("step")
        ax.set_title(f"MAC {title}: held back (solid), training batches (dashed)")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
