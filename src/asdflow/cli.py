"""The `asdflow` command: one subcommand per workflow stage.

Each subcommand is declared once, beside the function it runs (`@command`): its options and a
function that parses nothing itself. Paths and what a person types by hand are flags; the
settings a stage takes from its section of the workflow configuration arrive as one object,
`--settings JSON` (or a JSON/YAML file), parsed into the stage's dataclass by asdflow.settings.
Stage modules are imported inside the functions, so that a command loads only its own stage
(and `asdflow.codeversion` can hash exactly that).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from asdflow import __version__, settings

# name -> (help, arguments, function); filled by @command in the order of this file
COMMANDS: dict[str, tuple[str, tuple, Callable]] = {}


def arg(*flags: str, **options) -> tuple[tuple[str, ...], dict]:
    """One argument of a subcommand, as argparse's add_argument takes it."""
    return flags, options


def command(name: str, help: str, *arguments: tuple[tuple[str, ...], dict]):
    """Declare `asdflow <name>` with these arguments; the function gets the parsed namespace."""

    def register(function: Callable) -> Callable:
        COMMANDS[name] = (help, arguments, function)
        return function

    return register


SETTINGS = arg(
    "--settings",
    default="{}",
    help="the stage's settings: a JSON object, or a JSON/YAML file (keys of its config section; "
    "missing keys take their defaults)",
)
THREADS = arg("--threads", type=int, default=1)
QUIET = arg("--quiet", action="store_true", help="no progress bar")
MACHINE_DIRS = arg(
    "--machine", nargs=2, action="append", required=True, metavar=("FEATURES_DIR", "OUT_DIR")
)


def _limit_threads() -> None:
    """Snakemake runs one job per core: keep torch from oversubscribing them."""
    import os

    import torch

    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))


def _prefixes(paths: list[str]) -> list[str]:
    """Cached splits given as .npy/.csv files -> their common prefixes, sorted."""
    return sorted({str(Path(p).with_suffix("")) for p in paths})


# --- configuration and data ---------------------------------------------------------------------


@command(
    "check-config",
    "read workflow config files; name the file, line and column of an error",
    arg("files", nargs="+", help="YAML or JSON config files"),
)
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


@command(
    "synth",
    "write synthetic DCASE-layout machine sounds (one machine type, or the general corpus)",
    arg("--root", type=Path, required=True, help="folder of the synthetic data sets"),
    arg("--set", dest="set_name", default="dev", help="data set: dev, eval or earlier"),
    arg("--machine-type", help="catalog name (or the name of --machine-json's type)"),
    arg("--machine-json", default="", help="custom machine type as a JSON object"),
    arg("--general", action="store_true", help="write the general-audio corpus instead"),
    SETTINGS,
    arg("--workers", type=int, default=1),
)
def cmd_synth(args: argparse.Namespace) -> None:
    from asdflow.data import synth

    s = settings.parse(synth.SynthSettings, args.settings)
    if args.general:
        out = synth.generate_general(
            args.root, s.general_clips, s.seed, s.clip_seconds, s.sample_rate, args.workers
        )
    else:
        if not args.machine_type:
            raise ValueError("--machine-type is required unless --general is given")
        machine_type = args.machine_type
        if args.machine_json.strip():
            try:
                definition = json.loads(args.machine_json)
            except json.JSONDecodeError as err:
                raise ValueError(f"--machine-json: not a JSON object ({err})") from None
            machine_type = synth.machine_type_from_dict(args.machine_type, definition)
        out = synth.generate_machine(
            args.root,
            args.set_name,
            machine_type,
            s.counts,
            s.seed,
            s.clip_seconds,
            s.sample_rate,
            s.severity,
            args.workers,
        )
    print(out)


@command(
    "download",
    "fetch and unpack DCASE archives",
    arg("--year", type=int, nargs="+", action="extend", required=True),
    arg("--kind", nargs="+", action="extend", choices=["dev", "eval_train", "eval_test"]),
    arg("--machine-type", nargs="+", action="extend"),
    arg("--zip", nargs="+", action="extend", help="archive names (one year)"),
    arg("--dest", type=Path, required=True, help="root of the unpacked data"),
    SETTINGS,
    arg("--md5", help="expected md5 of the archive (one --zip)"),
    arg("--done", type=Path, help="marker file written when all are extracted"),
    QUIET,
)
def cmd_download(args: argparse.Namespace) -> None:
    from asdflow.data import download

    if args.zip:
        archives = [download.find_archive(y, name) for y in args.year for name in args.zip]
    else:
        archives = download.select_archives(
            args.year, args.kind or download.KINDS, args.machine_type
        )
    download.download_archives(
        archives,
        args.dest,
        settings.parse(download.DownloadSettings, args.settings),
        md5=args.md5,
        done=args.done,
        progress=not args.quiet,
    )


@command(
    "import-eat",
    "convert official EAT weights (fairseq .pt, or a Hugging Face folder, model.safetensors or "
    "pytorch_model.bin) into an asdflow encoder checkpoint",
    arg("input", type=Path),
    arg("--out", type=Path, required=True, help="asdflow checkpoint to write"),
    arg(
        "--weights",
        choices=("student", "teacher"),
        default=None,
        help="pre-trained fairseq files: which copy becomes the encoder (default: the student, "
        "as official EAT extracts features and fine-tunes)",
    ),
    arg(
        "--num-heads",
        type=int,
        default=None,
        help="attention heads (default: config.json, else 3/6/12/16 for width 192/384/768/1024)",
    ),
)
def cmd_import_eat(args: argparse.Namespace) -> None:
    from asdflow import import_eat

    report = import_eat.import_eat(
        args.input, args.out, weights=args.weights, num_heads=args.num_heads
    )
    for warning in report.warnings:
        print(f"import-eat: warning: {warning}", file=sys.stderr)
    print(json.dumps(report.summary()))


# --- features -----------------------------------------------------------------------------------


@command(
    "features",
    "cache the log-mel features of one machine type (or of a folder of unlabelled wavs)",
    arg("--machine-dir", nargs="+", default=[], help="DCASE-layout machine folders"),
    arg("--plain-dir", default="", help="a folder of wav files without labels"),
    arg("--ground-truth", default="", help="eval ground-truth list (DCASE format)"),
    arg("--out-dir", required=True),
    SETTINGS,
)
def cmd_features(args: argparse.Namespace) -> None:
    import pandas as pd

    from asdflow import features
    from asdflow.data import dcase

    _limit_threads()
    fbank = settings.parse(features.FbankSettings, args.settings)
    if args.plain_dir:
        clips = features.plain_clip_table(Path(args.plain_dir))
        features.cache_machine(clips, Path(args.out_dir), fbank)
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
    features.cache_machine(clips, Path(args.out_dir), fbank)


@command(
    "norm-stats",
    "log-mel normalisation statistics",
    arg("--train", nargs="*", default=[], help="cached training splits (.npy/.csv)"),
    SETTINGS,
    arg("--out", required=True),
)
def cmd_norm_stats(args: argparse.Namespace) -> None:
    from asdflow import features

    norm = settings.parse(features.NormSettings, args.settings)
    if norm.normalization == "fixed":
        stats = features.NormStats(mean=norm.fixed_mean, std=norm.fixed_std, source="fixed")
    else:
        stats = features.compute_norm_stats([Path(p) for p in _prefixes(args.train)])
    stats.save(args.out)
    print(json.dumps(stats.__dict__))


# --- encoders -----------------------------------------------------------------------------------


@command(
    "pretrain",
    "EAT pre-training (general, or domain-adaptive from --init)",
    arg("--cache", nargs="+", required=True, help="cached splits (.npy) to train on"),
    arg("--init", default="", help="checkpoint to continue from (DAP: the general encoder)"),
    arg("--norm-stats", default="", help="statistics for a run from scratch"),
    SETTINGS,
    arg("--out", required=True),
    THREADS,
    QUIET,
)
def cmd_pretrain(args: argparse.Namespace) -> None:
    import torch

    from asdflow import features, pretrain

    torch.set_num_threads(args.threads)
    stats = features.NormStats.load(args.norm_stats) if args.norm_stats else None
    pretrain.pretrain(
        settings.parse(pretrain.PretrainSettings, args.settings),
        _prefixes(args.cache),
        Path(args.out),
        stats,
        progress=not args.quiet,
        init=Path(args.init) if args.init else None,
    )


@command(
    "finetune",
    "fine-tune an encoder on machine attribute classes",
    arg("--cache", nargs="+", required=True, help="cached training splits (.npy)"),
    arg("--labels", required=True, help="label space CSV: file, class_name, class_index"),
    arg("--init", required=True, help="the encoder checkpoint to adapt"),
    SETTINGS,
    arg("--out", required=True),
    THREADS,
    QUIET,
)
def cmd_finetune(args: argparse.Namespace) -> None:
    import pandas as pd
    import torch

    from asdflow import finetune

    torch.set_num_threads(args.threads)
    finetune.finetune(
        settings.parse(finetune.FinetuneSettings, args.settings),
        _prefixes(args.cache),
        pd.read_csv(args.labels, keep_default_na=False),
        Path(args.out),
        Path(args.init),
        progress=not args.quiet,
    )


@command(
    "embed",
    "clip embeddings of machine types from an encoder",
    arg("--checkpoint", required=True),
    MACHINE_DIRS,
    arg("--splits", nargs="+", default=["train"]),
    arg("--pooling", default="mean", choices=["mean", "cls", "freq"]),
    arg("--batch-size", type=int, default=64),
    THREADS,
)
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


# --- pseudo-labels ------------------------------------------------------------------------------


@command(
    "cluster",
    "Ward pseudo-attributes per machine type, from clip embeddings",
    arg(
        "--job",
        nargs=3,
        action="append",
        required=True,
        metavar=("EMBEDDINGS_NPY", "INDEX_CSV", "OUT_CSV"),
        help="one clustering: embeddings (N, D), the clip table of the N clips, the labels to "
        "write (and OUT_CSV.json, the choice made per machine type)",
    ),
    arg("--quality-truth", help="CSV file,attributes to score the clusters on"),
    SETTINGS,
)
def cmd_cluster(args: argparse.Namespace) -> None:
    from asdflow import pseudolabel

    cluster = settings.parse(pseudolabel.ClusterSettings, args.settings)
    for embeddings, index, out in args.job:
        pseudolabel.cluster_machine_types(
            Path(embeddings), Path(index), Path(out), cluster, args.quality_truth
        )


@command(
    "labels",
    "the class label space of the training clips for fine-tuning",
    arg("--index", nargs="+", required=True, help="clip table CSVs"),
    arg("--pseudo", nargs="*", default=[], help="`asdflow cluster`'s CSVs"),
    arg("--out", required=True, help="CSV: the clips with their classes"),
)
def cmd_labels(args: argparse.Namespace) -> None:
    from asdflow import pseudolabel

    pseudolabel.write_label_space(
        [Path(p) for p in args.index], [Path(p) for p in args.pseudo], Path(args.out)
    )


@command(
    "pseudolabel-quality",
    "NMI / ARI / purity of the clusters",
    arg(
        "--machine",
        nargs=4,
        action="append",
        required=True,
        metavar=("ENCODER", "PSEUDO_CSV", "INDEX_CSV", "TRUTH_CSV"),
    ),
    arg("--out-md", required=True),
    arg("--out-csv", required=True),
)
def cmd_pseudolabel_quality(args: argparse.Namespace) -> None:
    from asdflow import tables

    entries = [tuple(m) for m in args.machine]
    print(tables.write_pseudolabel_quality(entries, Path(args.out_csv), Path(args.out_md)))


@command(
    "tsne",
    "t-SNE figure of one machine type's embeddings",
    arg("--encoders", nargs="+", required=True),
    arg("--embeddings", nargs="+", required=True),
    arg("--pseudo", nargs="+", required=True),
    arg("--index", required=True),
    arg("--truth", default="-", help="hidden-truth CSV, or -"),
    arg("--out", required=True),
)
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


# --- scoring ------------------------------------------------------------------------------------


@command(
    "score-logmel",
    "log-mel k-NN baseline scores of one machine type",
    arg("--features-dir", required=True),
    arg("--norm-stats", required=True),
    arg("--out-dir", required=True),
    SETTINGS,
)
def cmd_score_logmel(args: argparse.Namespace) -> None:
    from asdflow import knn, score

    _limit_threads()
    score.score_logmel_machine(
        Path(args.features_dir),
        Path(args.norm_stats),
        Path(args.out_dir),
        settings.parse(knn.KnnSettings, args.settings),
    )


@command(
    "score-encoder",
    "k-NN scores of every machine type from an encoder",
    arg("--checkpoint", required=True),
    MACHINE_DIRS,
    SETTINGS,
    THREADS,
)
def cmd_score_encoder(args: argparse.Namespace) -> None:
    import torch

    from asdflow import knn, score

    torch.set_num_threads(args.threads)
    machines = [(Path(f), Path(o)) for f, o in args.machine]
    score.score_encoder(
        Path(args.checkpoint), machines, settings.parse(knn.KnnSettings, args.settings)
    )


@command(
    "baseline-ae",
    "DCASE baseline autoencoder of one machine type (MSE and Mahalanobis)",
    arg("--features-dir", required=True, help="folder of the train/test index CSVs"),
    SETTINGS,
    arg("--out-mse", required=True, help="submission folder of the MSE score"),
    arg("--out-maha", required=True, help="submission folder of the Mahalanobis score"),
    arg("--model", required=True, help="where the trained autoencoder goes (.pt)"),
    THREADS,
    QUIET,
)
def cmd_baseline_ae(args: argparse.Namespace) -> None:
    import torch

    from asdflow import baseline_ae

    torch.set_num_threads(args.threads)
    baseline_ae.run_machine(
        Path(args.features_dir),
        {"mse": Path(args.out_mse), "maha": Path(args.out_maha)},
        Path(args.model),
        settings.parse(baseline_ae.AESettings, args.settings),
        progress=not args.quiet,
    )


# --- metrics, tables and figures ----------------------------------------------------------------


@command(
    "evaluate",
    "official DCASE metrics of one run and seed",
    arg("--run", required=True),
    arg("--seed", type=int, default=0),
    arg(
        "--machine",
        nargs=5,
        action="append",
        required=True,
        metavar=("DATASET", "ROLE", "MACHINE", "FEATURES_DIR", "SCORES_DIR"),
    ),
    arg("--out", required=True),
)
def cmd_evaluate(args: argparse.Namespace) -> None:
    from asdflow import tables

    entries = [
        tables.MachineResult(dataset, role, machine, Path(fdir), Path(sdir))
        for dataset, role, machine, fdir, sdir in args.machine
    ]
    table = tables.write_run_metrics(args.run, args.seed, entries, Path(args.out))
    print(table.to_string(index=False))


@command(
    "tables",
    "the paper's tables (Markdown, CSV, LaTeX) and a bar chart",
    arg("--metrics", nargs="+", required=True, help="per-machine metrics CSVs"),
    arg("--table1", nargs="+", required=True, help="runs of Table 1, in order"),
    arg("--table2", nargs="+", required=True, help="runs of Table 2, in order"),
    arg("--titles", nargs="*", default=[], help="run=title pairs"),
    arg("--out-dir", required=True),
    arg("--figure", required=True, help="bar chart of the runs (PNG)"),
    arg("--note", default="", help="a note under each table (e.g. why two rows are equal)"),
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


@command(
    "score-figure",
    "score distributions of one run",
    arg("--run", required=True),
    arg("--machine", nargs=2, action="append", required=True, metavar=("TEST_CSV", "SCORES_DIR")),
    arg("--out", required=True),
)
def cmd_score_figure(args: argparse.Namespace) -> None:
    from asdflow import figures

    figures.score_distributions(
        args.run, [(Path(i), Path(s)) for i, s in args.machine], Path(args.out)
    )


# --- parser -------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="asdflow", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"asdflow {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="STAGE")
    for name, (help, arguments, function) in COMMANDS.items():
        p = sub.add_parser(name, help=help, description=help)
        for flags, options in arguments:
            p.add_argument(*flags, **options)
        p.set_defaults(func=function)

    from asdflow.bench import cli as bench_cli  # argparse only: no torch at start-up

    bench_cli.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"asdflow {args.command}: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
