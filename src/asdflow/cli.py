"""The `asdflow` command: one subcommand per workflow stage, each a thin wrapper that parses
arguments and calls the stage's function in the package."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from asdflow import __version__


def _limit_threads() -> None:
    """Snakemake runs one job per core: keep torch from oversubscribing them."""
    import os

    import torch

    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))


# --- data ---------------------------------------------------------------------------------------


def cmd_synth(args: argparse.Namespace, extra: list[str]) -> int:
    from asdflow.data import synth

    return synth.main_synth(extra)


def cmd_download(args: argparse.Namespace, extra: list[str]) -> int:
    from asdflow.data import download

    return download.main_download(extra)


# Stages whose own argument parser lives beside their code: the rest of the line goes to it.
DELEGATED = {"synth", "download", "import-eat", "cluster", "labels"}


# --- configuration --------------------------------------------------------------------------------


def cmd_check_config(args: argparse.Namespace) -> None:
    """Parse each config file as Snakemake will; Snakemake's own error names no file or line."""
    import yaml

    for path in args.files:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as err:
            raise FileNotFoundError(
                f"{path}: cannot read the config file ({err.strerror})"
            ) from err
        try:
            content = yaml.safe_load(text)
        except yaml.MarkedYAMLError as err:
            mark = err.problem_mark or err.context_mark
            where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else path
            raise ValueError(f"{where}: invalid YAML: {err.problem or err.context}") from None
        except yaml.YAMLError as err:
            raise ValueError(f"{path}: invalid YAML: {err}") from None
        if content is not None and not isinstance(content, dict):
            raise ValueError(f"{path}: a config file must map keys to values at its top level")


# --- features -----------------------------------------------------------------------------------


def cmd_features(args: argparse.Namespace) -> None:
    import pandas as pd

    from asdflow import features
    from asdflow.data import dcase

    _limit_threads()
    settings = features.FbankSettings(
        sample_rate=args.sample_rate, n_frames=args.n_frames, channel=args.channel
    )
    if args.plain_dir:
        features.cache_machine(
            features.plain_clip_table(Path(args.plain_dir)), Path(args.out_dir), settings
        )
        return
    if not args.machine_dir:
        raise ValueError("give --machine-dir (DCASE layout) or --plain-dir (unlabelled wavs)")
    truth = dcase.read_eval_ground_truth(args.ground_truth) if args.ground_truth else None
    # An eval machine's train and test halves may come in separate folders: share the key names.
    keys = dcase.machine_attribute_keys(args.machine_dir)
    clips = pd.concat(
        [dcase.machine_clip_table(Path(d), truth, attribute_keys=keys) for d in args.machine_dir],
        ignore_index=True,
    )
    if not (clips["split"] == "train").any():
        raise FileNotFoundError(
            f"{', '.join(args.machine_dir)}: no training clips (train/*.wav) for this machine type"
        )
    features.cache_machine(clips, Path(args.out_dir), settings)


def cmd_norm_stats(args: argparse.Namespace) -> None:
    from asdflow import features

    if args.mode == "fixed":
        stats = features.NormStats(mean=args.mean, std=args.std, source="fixed")
    else:
        prefixes = sorted({str(Path(p).with_suffix("")) for p in args.train})
        stats = features.compute_norm_stats([Path(p) for p in prefixes])
    stats.save(args.out)
    print(json.dumps(stats.__dict__))


# --- pre-training -------------------------------------------------------------------------------


def cmd_pretrain(args: argparse.Namespace) -> None:
    import torch

    from asdflow import features, pretrain, train

    torch.set_num_threads(args.threads)
    settings = train.settings_from_dict(pretrain.PretrainSettings, json.loads(args.settings))
    stats = features.NormStats.load(args.norm_stats) if args.norm_stats else None
    prefixes = sorted({str(Path(p).with_suffix("")) for p in args.cache})
    pretrain.pretrain(settings, prefixes, Path(args.out), stats, progress=not args.quiet)


def cmd_finetune(args: argparse.Namespace) -> None:
    import pandas as pd
    import torch

    from asdflow import finetune, train

    torch.set_num_threads(args.threads)
    settings = train.settings_from_dict(finetune.FinetuneSettings, json.loads(args.settings))
    labels = pd.read_csv(args.labels, keep_default_na=False)
    prefixes = sorted({str(Path(p).with_suffix("")) for p in args.cache})
    finetune.finetune(settings, prefixes, labels, Path(args.out), progress=not args.quiet)


def cmd_embed(args: argparse.Namespace) -> None:
    import torch

    from asdflow import embed

    torch.set_num_threads(args.threads)
    for features_dir, out_dir in args.machine:
        embed.embed_machine(
            Path(args.checkpoint),
            Path(features_dir),
            Path(out_dir),
            tuple(args.splits),
            args.pooling,
            args.batch_size,
        )


def cmd_import_eat(args: argparse.Namespace, extra: list[str]) -> int:
    from asdflow import import_eat

    return import_eat.main_import(extra)


# --- scoring and tables -------------------------------------------------------------------------


def _knn_settings(args: argparse.Namespace):
    from asdflow import knn

    return knn.KnnSettings(
        k=args.k, bank=args.bank, kmeans_centers=args.kmeans_centers, center=args.center
    )


def _add_knn_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--k", type=int, default=1)
    p.add_argument("--bank", default="joint", choices=["joint", "per_domain", "kmeans_source"])
    p.add_argument("--kmeans-centers", type=int, default=16)
    p.add_argument(
        "--center",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="centre embeddings on the machine type's training mean before cosine distances",
    )
    p.add_argument("--decision-quantile", type=float, default=0.9)


def cmd_score_logmel(args: argparse.Namespace) -> None:
    from asdflow import score

    _limit_threads()
    score.score_logmel_machine(
        Path(args.features_dir),
        Path(args.norm_stats),
        Path(args.out_dir),
        _knn_settings(args),
        args.decision_quantile,
    )


def cmd_baseline_ae(args: argparse.Namespace) -> None:
    import torch

    from asdflow import baseline_ae

    torch.set_num_threads(args.threads)
    settings = baseline_ae.AESettings.from_dict(json.loads(args.settings))
    out_dirs = {"mse": Path(args.out_mse), "maha": Path(args.out_maha)}
    baseline_ae.run_machine(
        Path(args.features_dir), out_dirs, Path(args.model), settings, progress=not args.quiet
    )


def cmd_score_encoder(args: argparse.Namespace) -> None:
    import torch

    from asdflow import score

    torch.set_num_threads(args.threads)
    machines = [(Path(f), Path(o)) for f, o in args.machine]
    score.score_encoder(
        Path(args.checkpoint), machines, _knn_settings(args), args.decision_quantile
    )


def cmd_evaluate(args: argparse.Namespace) -> None:
    from asdflow import tables

    entries = [
        tables.MachineResult(dataset, role, machine, Path(fdir), Path(sdir))
        for dataset, role, machine, fdir, sdir in args.machine
    ]
    print(
        tables.write_run_metrics(args.run, args.seed, entries, Path(args.out)).to_string(
            index=False
        )
    )


def cmd_tables(args: argparse.Namespace) -> None:
    from asdflow import tables

    titles = {run: title.replace("_", " ") for run, title in (t.split("=", 1) for t in args.titles)}
    print(
        tables.write_paper_tables(
            [Path(p) for p in args.metrics],
            {"table1": args.table1, "table2": args.table2},
            titles,
            Path(args.out_dir),
            Path(args.figure),
            args.note,
        )
    )


def cmd_score_figure(args: argparse.Namespace) -> None:
    from asdflow import figures

    figures.score_distributions(
        args.run, [(Path(i), Path(s)) for i, s in args.machine], Path(args.out)
    )


def cmd_cluster(args: argparse.Namespace, extra: list[str]) -> int:
    """`--job EMBEDDINGS INDEX OUT` (repeatable) runs one clustering per machine type in this
    process; the other options go to each (see `asdflow cluster --help`)."""
    from asdflow import pseudolabel

    jobs = argparse.ArgumentParser(add_help=False)
    jobs.add_argument("--job", nargs=3, action="append", default=[])
    known, rest = jobs.parse_known_args(extra)
    if not known.job:
        return pseudolabel.main_cluster(rest)
    for embeddings, index, out in known.job:
        code = pseudolabel.main_cluster(
            ["--embeddings", embeddings, "--index", index, "--out", out, *rest]
        )
        if code:
            return code
    return 0


def cmd_labels(args: argparse.Namespace, extra: list[str]) -> int:
    from asdflow import pseudolabel

    return pseudolabel.main_labels(extra)


def cmd_pseudolabel_quality(args: argparse.Namespace) -> None:
    from asdflow import tables

    entries = [tuple(m) for m in args.machine]
    print(tables.write_pseudolabel_quality(entries, Path(args.out_csv), Path(args.out_md)))


def cmd_tsne(args: argparse.Namespace) -> None:
    from asdflow import figures

    figures.tsne_figure(
        args.encoders,
        [Path(p) for p in args.embeddings],
        [Path(p) for p in args.pseudo],
        Path(args.index),
        None if args.truth == "-" else Path(args.truth),
        Path(args.out),
    )


def cmd_bench(args: argparse.Namespace) -> None:
    from asdflow import bench

    if args.what == "clones":
        bench.bench_clones(
            args.model or "eat_tiny", n_frames=args.n_frames or 192, precision=args.precision
        )
    elif args.what == "pretrain-memory":
        bench.bench_pretrain_memory(
            args.model or "eat_base",
            args.batch,
            args.clone_batch,
            args.n_frames or 1024,
            args.precision,
        )
    elif args.what == "jobs":
        from asdflow import bench_jobs

        bench_jobs.main(Path(args.log) if args.log else None, Path("."))
    elif args.what == "knn":
        from asdflow import bench_knn

        bench_knn.bench_knn(k=args.k)
    elif args.what == "clustering":
        bench.bench_clustering(Path("results"), Path(args.synth_root))
    elif args.what == "attributes":
        bench.bench_attributes(Path(args.features_root), Path(args.synth_root))
    elif args.what == "hours":
        from asdflow import bench_hours

        configfiles = ["config/dcase2025.yaml"] if args.configfile is None else args.configfile
        bench_hours.bench_hours(
            [Path(p) for p in configfiles],
            train_clips=args.train_clips or bench_hours.DCASE2025_TRAIN_CLIPS,
            test_clips=args.test_clips or bench_hours.DCASE2025_TEST_CLIPS,
            model=args.model,
            n_frames=args.n_frames,
            warmup=args.warmup,
            repeats=args.repeats,
            out=Path(args.out) if args.out else None,
        )
    elif args.what == "precision":
        from asdflow import bench_hours

        bench_hours.bench_precision(
            [Path(p) for p in args.configfile or []],
            models_=tuple(args.model.split(",")) if args.model else ("eat_tiny", "eat_small"),
            warmup=args.warmup,
            repeats=args.repeats,
        )
    elif args.what == "finetune":
        from asdflow import bench_quality

        factors = {
            "steps": [int(v) for v in args.sweep_steps.split(",") if v],
            "lr": [float(v) for v in args.sweep_lr.split(",") if v],
            "pooling": [v for v in args.sweep_pooling.split(",") if v],
        }
        bench_quality.finetune_sweep(
            [Path(p) for p in args.config],
            Path(args.results),
            args.run,
            factors,
            Path(args.out or Path(args.results) / "bench" / "finetune"),
            holdout=args.holdout,
        )
    elif args.what == "quality":
        from asdflow import bench_quality

        bench_quality.main([Path(p) for p in args.config], Path(args.results), Path(args.out or ""))
    elif args.what == "features":
        bench.bench_features(
            n_clips=args.clips,
            clip_seconds=args.clip_seconds,
            n_frames=args.n_frames,
            epochs=args.epochs,
        )


# --- parser -------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="asdflow", description=__doc__)
    parser.add_argument("--version", action="version", version=f"asdflow {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="STAGE")

    p = sub.add_parser(
        "check-config",
        help="read workflow config files; name the file, line and column of an error",
    )
    p.add_argument("files", nargs="+", help="YAML or JSON config files")
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser(
        "synth", add_help=False, help="write synthetic DCASE-layout machine sounds (see --help)"
    )
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser(
        "download", add_help=False, help="fetch and unpack DCASE archives (see --help)"
    )
    p.set_defaults(func=cmd_download)

    p = sub.add_parser("features", help="cache the log-mel features of one machine type")
    p.add_argument("--machine-dir", nargs="+", default=[], help="DCASE-layout machine folders")
    p.add_argument("--plain-dir", default="", help="a folder of wav files without labels")
    p.add_argument("--ground-truth", default="", help="eval ground-truth list (DCASE format)")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--sample-rate", type=int, default=16000)
    p.add_argument("--n-frames", type=int, default=0, help="frames per clip (0: per benchmark)")
    p.add_argument("--channel", default="mix", choices=["mix", "left", "right"])
    p.set_defaults(func=cmd_features)

    p = sub.add_parser("pretrain", help="EAT pre-training (general or domain-adaptive)")
    p.add_argument("--cache", nargs="+", required=True, help="cached splits (.npy) to train on")
    p.add_argument("--settings", required=True, help="pre-training settings as a JSON object")
    p.add_argument("--norm-stats", default="", help="statistics for a run from scratch")
    p.add_argument("--out", required=True)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_pretrain)

    p = sub.add_parser("finetune", help="fine-tune an encoder on machine attribute classes")
    p.add_argument("--cache", nargs="+", required=True, help="cached training splits (.npy)")
    p.add_argument("--labels", required=True, help="label space CSV: file, class_name, class_index")
    p.add_argument("--settings", required=True, help="fine-tuning settings as a JSON object")
    p.add_argument("--out", required=True)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_finetune)

    p = sub.add_parser("embed", help="clip embeddings of machine types from an encoder")
    p.add_argument("--checkpoint", required=True)
    p.add_argument(
        "--machine", nargs=2, action="append", required=True, metavar=("FEATURES_DIR", "OUT_DIR")
    )
    p.add_argument("--splits", nargs="+", default=["train"])
    p.add_argument("--pooling", default="mean", choices=["mean", "cls", "freq"])
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(func=cmd_embed)

    p = sub.add_parser(
        "import-eat", add_help=False, help="convert official EAT weights (see --help)"
    )
    p.set_defaults(func=cmd_import_eat)

    p = sub.add_parser("norm-stats", help="log-mel normalisation statistics")
    p.add_argument("--train", nargs="*", default=[], help="cached training splits (.npy/.csv)")
    p.add_argument("--mode", choices=["train", "fixed"], default="train")
    p.add_argument("--mean", type=float, default=-4.268)
    p.add_argument("--std", type=float, default=4.569)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_norm_stats)

    p = sub.add_parser("score-logmel", help="log-mel k-NN baseline scores of one machine type")
    p.add_argument("--features-dir", required=True)
    p.add_argument("--norm-stats", required=True)
    p.add_argument("--out-dir", required=True)
    _add_knn_arguments(p)
    p.set_defaults(func=cmd_score_logmel)

    p = sub.add_parser(
        "baseline-ae", help="DCASE baseline autoencoder of one machine type (MSE and Mahalanobis)"
    )
    p.add_argument("--features-dir", required=True, help="folder of the train/test index CSVs")
    p.add_argument("--settings", required=True, help="baseline_ae settings as a JSON object")
    p.add_argument("--out-mse", required=True, help="submission folder of the MSE score")
    p.add_argument("--out-maha", required=True, help="submission folder of the Mahalanobis score")
    p.add_argument("--model", required=True, help="where the trained autoencoder goes (.pt)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_baseline_ae)

    p = sub.add_parser("score-encoder", help="k-NN scores of every machine type from an encoder")
    p.add_argument("--checkpoint", required=True)
    p.add_argument(
        "--machine", nargs=2, action="append", required=True, metavar=("FEATURES_DIR", "OUT_DIR")
    )
    p.add_argument("--threads", type=int, default=1)
    _add_knn_arguments(p)
    p.set_defaults(func=cmd_score_encoder)

    p = sub.add_parser("evaluate", help="official DCASE metrics of one run and seed")
    p.add_argument("--run", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--machine",
        nargs=5,
        action="append",
        required=True,
        metavar=("DATASET", "ROLE", "MACHINE", "FEATURES_DIR", "SCORES_DIR"),
    )
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("tables", help="the paper's tables (Markdown, CSV, LaTeX) and a bar chart")
    p.add_argument("--metrics", nargs="+", required=True, help="per-machine metrics CSVs")
    p.add_argument("--table1", nargs="+", required=True, help="runs of Table 1, in order")
    p.add_argument("--table2", nargs="+", required=True, help="runs of Table 2, in order")
    p.add_argument("--titles", nargs="*", default=[], help="run=title pairs")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--figure", required=True, help="bar chart of the runs (PNG)")
    p.add_argument(
        "--note", default="", help="a note under each table (e.g. why two rows are equal)"
    )
    p.set_defaults(func=cmd_tables)

    p = sub.add_parser("score-figure", help="score distributions of one run")
    p.add_argument("--run", required=True)
    p.add_argument(
        "--machine", nargs=2, action="append", required=True, metavar=("TEST_CSV", "SCORES_DIR")
    )
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_score_figure)

    p = sub.add_parser("cluster", add_help=False, help="Ward pseudo-labels of one machine type")
    p.set_defaults(func=cmd_cluster)

    p = sub.add_parser("labels", add_help=False, help="the class label space for fine-tuning")
    p.set_defaults(func=cmd_labels)

    p = sub.add_parser("pseudolabel-quality", help="NMI / ARI / purity of the clusters")
    p.add_argument(
        "--machine",
        nargs=4,
        action="append",
        required=True,
        metavar=("ENCODER", "PSEUDO_CSV", "INDEX_CSV", "TRUTH_CSV"),
    )
    p.add_argument("--out-md", required=True)
    p.add_argument("--out-csv", required=True)
    p.set_defaults(func=cmd_pseudolabel_quality)

    p = sub.add_parser("tsne", help="t-SNE figure of one machine type's embeddings")
    p.add_argument("--encoders", nargs="+", required=True)
    p.add_argument("--embeddings", nargs="+", required=True)
    p.add_argument("--pseudo", nargs="+", required=True)
    p.add_argument("--index", required=True)
    p.add_argument("--truth", default="-", help="hidden-truth CSV, or -")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_tsne)

    p = sub.add_parser("bench", help="benchmarks that print figures")
    p.add_argument(
        "what",
        choices=[
            "features",
            "attributes",
            "clones",
            "pretrain-memory",
            "clustering",
            "knn",
            "jobs",
            "hours",
            "quality",
            "precision",
            "finetune",
        ],
    )
    p.add_argument("--model", default="", help="(clones, pretrain-memory) encoder size")
    p.add_argument("--batch", type=int, default=12, help="(pretrain-memory) clips per step")
    p.add_argument("--clone-batch", type=int, default=16, help="(pretrain-memory)")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    p.add_argument("--k", type=int, default=1, help="(knn) neighbours")
    p.add_argument("--features-root", default="results/features", help="(attributes)")
    p.add_argument("--synth-root", default="resources/synthetic", help="(attributes)")
    p.add_argument("--clips", type=int, default=400)
    p.add_argument("--clip-seconds", type=float, default=10.0)
    p.add_argument("--n-frames", type=int, default=0, help="frames per clip (0: per benchmark)")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument(
        "--configfile",
        nargs="*",
        default=None,
        help="(hours, precision) configuration files over config/config.yaml, as given to "
        "snakemake (hours: config/dcase2025.yaml unless given; precision: none)",
    )
    p.add_argument(
        "--train-clips",
        type=int,
        default=0,
        help="(hours) normal training clips over all machine types (0: DCASE 2025 dev + eval)",
    )
    p.add_argument("--test-clips", type=int, default=0, help="(hours) test clips (0: DCASE 2025's)")
    p.add_argument("--warmup", type=int, default=3, help="(hours) untimed steps first")
    p.add_argument("--repeats", type=int, default=10, help="(hours) timed steps (median)")
    p.add_argument(
        "--out",
        default="",
        help="(hours) also write the figures to this JSON file; (quality) the tables' folder",
    )
    p.add_argument(
        "--config",
        nargs="+",
        default=["config/config.yaml"],
        help="(quality, finetune) the run's configuration files, later ones over earlier ones",
    )
    p.add_argument("--results", default="results", help="(quality, finetune) results of the run")
    p.add_argument("--run", default="na", help="(finetune) the run whose fine-tuning is varied")
    p.add_argument(
        "--log", default="", help="(jobs) a Snakemake log (default: the newest in .snakemake/log)"
    )
    p.add_argument("--sweep-steps", default="100,300,1000,3000", help="(finetune) steps values")
    p.add_argument("--sweep-lr", default="", help="(finetune) learning rates, comma-separated")
    p.add_argument("--sweep-pooling", default="mean,freq", help="(finetune) poolings")
    p.add_argument(
        "--holdout",
        type=float,
        default=0.1,
        help="(finetune) share of each class's clips held back for the training curves",
    )
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command in DELEGATED:
        return args.func(args, extra)
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        args.func(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"asdflow {args.command}: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
