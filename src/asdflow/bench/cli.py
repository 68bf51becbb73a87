"""`asdflow bench <benchmark>`: one sub-command per benchmark, each with the options it uses.

Only argparse is imported here: the main parser adds this one at start-up, and the benchmarks'
modules (torch among their imports) load when `cmd_bench` runs one of them.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def _add_model_options(p: argparse.ArgumentParser, default_model: str, default_frames: int) -> None:
    p.add_argument("--model", default="", help=f"encoder size (default: {default_model})")
    p.add_argument("--n-frames", type=int, default=0, help=f"frames per clip (0: {default_frames})")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])


def _add_timing_options(p: argparse.ArgumentParser, configfiles: str) -> None:
    p.add_argument(
        "--configfile",
        nargs="*",
        default=None,
        help=f"configuration files over config/config.yaml, as given to snakemake ({configfiles})",
    )
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--repeats", type=int, default=10, help="timed steps (median)")


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        nargs="+",
        default=["config/config.yaml"],
        help="the run's configuration files, later ones over earlier ones",
    )
    p.add_argument("--results", default="results", help="results of the run")


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add `bench` and its benchmarks to the `asdflow` sub-commands `subparsers`."""
    p = subparsers.add_parser(
        "bench",
        help="benchmarks that print figures",
        description="Benchmarks that print figures (never assertions); "
        "`asdflow bench BENCHMARK --help` lists a benchmark's options.",
    )
    benchmarks = p.add_subparsers(dest="what", required=True, metavar="BENCHMARK")

    b = benchmarks.add_parser(
        "features", help="log-mel cache build, and a training epoch from it vs fbank on the fly"
    )
    b.add_argument("--clips", type=int, default=400)
    b.add_argument("--clip-seconds", type=float, default=10.0)
    b.add_argument("--n-frames", type=int, default=0, help="frames per clip (0: 1024)")
    b.add_argument("--epochs", type=int, default=1)

    b = benchmarks.add_parser("adamw", help="the AdamW step: loop over parameters vs fused")
    b.add_argument("--model", default="", help="encoder size (default: eat_tiny)")

    b = benchmarks.add_parser(
        "attributes", help="(after make run) attributes predicted from loudness vs log-mel"
    )
    b.add_argument("--features-root", default="results/features")
    b.add_argument("--synth-root", default="resources/synthetic")

    b = benchmarks.add_parser("clones", help="pre-training student clips/s, clone_batch 16 vs 1")
    _add_model_options(b, "eat_tiny", 192)
    b.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="STEPS",
        help="also profile this many steps of each and print the time of each phase",
    )

    b = benchmarks.add_parser("pretrain-memory", help="peak memory of one pre-training step on CPU")
    _add_model_options(b, "eat_base", 1024)
    b.add_argument("--batch", type=int, default=12, help="clips per step")
    b.add_argument("--clone-batch", type=int, default=16, help="clones per clip")

    b = benchmarks.add_parser(
        "clustering", help="(after make run) cluster quality of each clustering variant"
    )
    b.add_argument("--synth-root", default="resources/synthetic")

    b = benchmarks.add_parser("knn", help="k-NN scoring: ours vs scikit-learn")
    b.add_argument("--k", type=int, default=1, help="neighbours")

    b = benchmarks.add_parser("jobs", help="per-rule job times of a Snakemake log")
    b.add_argument(
        "--log", default="", help="a Snakemake log (default: the newest in .snakemake/log)"
    )

    b = benchmarks.add_parser("hours", help="GPU hours per stage of a configuration")
    _add_timing_options(b, "default: config/dcase2025.yaml")
    b.add_argument(
        "--train-clips",
        type=int,
        default=0,
        help="normal training clips over all machine types (0: DCASE 2025 dev + eval)",
    )
    b.add_argument("--test-clips", type=int, default=0, help="test clips (0: DCASE 2025's)")
    b.add_argument("--model", default="", help="encoder size (default: the configuration's)")
    b.add_argument(
        "--n-frames", type=int, default=0, help="frames per clip (0: the configuration's)"
    )
    b.add_argument("--out", default="", help="also write the figures to this JSON file")

    b = benchmarks.add_parser(
        "quality", help="(after make run, synthetic) diagnosis of every encoder's embeddings"
    )
    _add_run_options(b)
    b.add_argument("--out", default="", help="the tables' folder (default: RESULTS/bench/quality)")

    b = benchmarks.add_parser("precision", help="float32 vs bf16 step times")
    _add_timing_options(b, "default: none")
    b.add_argument(
        "--model", default="", help="encoder sizes, comma-separated (default: eat_tiny,eat_small)"
    )

    b = benchmarks.add_parser(
        "finetune", help="(after make run) fine-tuning sweep, one factor at a time"
    )
    _add_run_options(b)
    b.add_argument("--run", default="na", help="the run whose fine-tuning is varied")
    b.add_argument("--out", default="", help="the sweep's folder (default: RESULTS/bench/finetune)")
    b.add_argument("--sweep-steps", default="100,300,1000,3000", help="steps values")
    b.add_argument("--sweep-lr", default="", help="learning rates, comma-separated")
    b.add_argument("--sweep-pooling", default="mean,freq", help="poolings")
    b.add_argument(
        "--holdout",
        type=float,
        default=0.1,
        help="share of each class's clips held back for the training curves",
    )

    p.set_defaults(func=cmd_bench)
    return p


def cmd_bench(args: argparse.Namespace) -> None:
    """Run the benchmark `args.what`. Its module is imported here, inside this function:
    asdflow.codeversion reads this function's source for what `asdflow bench` loads."""
    if args.what == "clones":
        from asdflow.bench import clones

        clones.bench_clones(
            args.model or "eat_tiny",
            n_frames=args.n_frames or 192,
            precision=args.precision,
            profile_steps=args.profile,
        )
    elif args.what == "adamw":
        from asdflow.bench import clones

        clones.bench_adamw(args.model or "eat_tiny")
    elif args.what == "pretrain-memory":
        from asdflow.bench import clones

        clones.bench_pretrain_memory(
            args.model or "eat_base",
            args.batch,
            args.clone_batch,
            args.n_frames or 1024,
            args.precision,
        )
    elif args.what == "jobs":
        from asdflow.bench import jobs

        jobs.main(Path(args.log) if args.log else None, Path("."))
    elif args.what == "knn":
        from asdflow.bench import knn

        knn.bench_knn(k=args.k)
    elif args.what == "clustering":
        from asdflow.bench import clustering

        clustering.bench_clustering(Path("results"), Path(args.synth_root))
    elif args.what == "attributes":
        from asdflow.bench import clustering

        clustering.bench_attributes(Path(args.features_root), Path(args.synth_root))
    elif args.what == "hours":
        from asdflow.bench import hours

        configfiles = ["config/dcase2025.yaml"] if args.configfile is None else args.configfile
        hours.bench_hours(
            [Path(p) for p in configfiles],
            train_clips=args.train_clips or hours.DCASE2025_TRAIN_CLIPS,
            test_clips=args.test_clips or hours.DCASE2025_TEST_CLIPS,
            model=args.model,
            n_frames=args.n_frames,
            warmup=args.warmup,
            repeats=args.repeats,
            out=Path(args.out) if args.out else None,
        )
    elif args.what == "precision":
        from asdflow.bench import hours

        hours.bench_precision(
            [Path(p) for p in args.configfile or []],
            models_=tuple(args.model.split(",")) if args.model else ("eat_tiny", "eat_small"),
            warmup=args.warmup,
            repeats=args.repeats,
        )
    elif args.what == "finetune":
        from asdflow.bench import quality

        factors = {
            "steps": [int(v) for v in args.sweep_steps.split(",") if v],
            "lr": [float(v) for v in args.sweep_lr.split(",") if v],
            "pooling": [v for v in args.sweep_pooling.split(",") if v],
        }
        quality.finetune_sweep(
            [Path(p) for p in args.config],
            Path(args.results),
            args.run,
            factors,
            Path(args.out or Path(args.results) / "bench" / "finetune"),
            holdout=args.holdout,
        )
    elif args.what == "quality":
        from asdflow.bench import quality

        quality.main([Path(p) for p in args.config], Path(args.results), Path(args.out or ""))
    elif args.what == "features":
        from asdflow.bench import features

        features.bench_features(
            n_clips=args.clips,
            clip_seconds=args.clip_seconds,
            n_frames=args.n_frames or 1024,
            epochs=args.epochs,
        )
