# Validation, the data sets of this run, and the input functions every stage shares.
import os
import re
import shlex
import sys
from pathlib import Path

# The package runs from this workflow's source tree, here and in every job, whatever environment
# a job is given (the venv, a `--sdm conda` environment built from ENV, a SLURM node), so the code
# that runs is the code the `code` params hash (see `runner` below).
SRC = Path(workflow.basedir) / "src"
sys.path.insert(0, str(SRC))

from asdflow import workflow as plan
from asdflow.codeversion import command_version
from asdflow.data.datasets import missing_extra_note, resolve_datasets
from asdflow.settings import to_json

validate(config, "../config/schema.yaml")
plan.check_plan(config)

DATASETS = {d.name: d for d in resolve_datasets(config)}
SCORED = [d for d in DATASETS.values() if d.role in ("dev", "eval")]
SYNTH_ROOT = config["synthetic"]["root"]
ENV = "../envs/asdflow.yaml"


def literal_pattern(names):
    """A wildcard regex matching exactly these names (longest first)."""
    return "|".join(re.escape(n) for n in sorted(set(names), key=len, reverse=True))


# Data set and machine type names are matched literally, so that a name with an underscore
# (`my_pump`) cannot split differently in `{dataset}_{machine}`.
wildcard_constraints:
    dataset=literal_pattern(DATASETS),
    machine=literal_pattern(m for d in DATASETS.values() for m in d.machine_types),


def code_version(command):
    """Hash of every package module `asdflow <command>` loads (asdflow.codeversion), so a change
    to the code a stage runs reruns it, and a change elsewhere does not."""
    return command_version(command)


# --- paths --------------------------------------------------------------------------------------
# Every results path is spelled here once; rules name their files through these helpers, and
# their params derive command-line paths from `input` and `output`.


def features_dir(dataset, machine):
    return f"results/features/{dataset}/{machine}"


def embeddings_file(encoder, dataset, machine):
    return f"results/embeddings/{encoder}/{dataset}/{machine}/train.npy"


def pseudo_file(encoder, dataset, machine):
    return f"results/pseudolabels/{encoder}/{dataset}/{machine}.csv"


def scores_dir(run, seed, dataset):
    return f"results/scores/{run}/seed{seed}/{dataset}"


def score_file(run, seed, dataset, machine, kind="anomaly_score"):
    return f"{scores_dir(run, seed, dataset)}/{kind}_{machine}_section_00_test.csv"


def parent_of(name, index=0):
    """Params function: the folder of one input or output file (no hard-coded path prefix)."""

    def folder(wildcards, input, output):
        files = input if name == "input" else output
        return str(Path(files[index]).parent)

    return folder


def folders(files, suffix=""):
    """The folders of these files (of those ending in `suffix`), in order."""
    return [str(Path(f).parent) for f in files if f.endswith(suffix)]


def repeated(flag, *columns):
    """`FLAG a1 b1 FLAG a2 b2 ...` from columns of values, each quoted for the shell."""
    return " ".join(
        " ".join([flag, *map(shlex.quote, map(str, row))]) for row in zip(*columns, strict=True)
    )


def machine_pairs(datasets):
    """[(dataset name, machine type)] of the given data sets."""
    return [(d.name, m) for d in datasets for m in d.machine_types]


def machine_dirs(wildcards):
    """Folders holding the raw clips of one (dataset, machine type)."""
    return list(DATASETS[wildcards.dataset].machine_dirs[wildcards.machine])


def machine_inputs(wildcards):
    """Inputs of feature caching: the machine folders, or the archives that hold them."""
    dataset = DATASETS[wildcards.dataset]
    archives = dataset.archives.get(wildcards.machine)
    if archives:
        return [f"resources/dcase/{archive}" for archive in archives]
    return machine_dirs(wildcards)


def ground_truth_arg(wildcards):
    """`--ground-truth LIST` for eval sets whose labels live outside the file names, else ""."""
    path = DATASETS[wildcards.dataset].ground_truth.get(wildcards.machine, "")
    return f"--ground-truth {shlex.quote(path)}" if path else ""


def archive_md5_arg(wildcards):
    """`--md5 HEX` when the config pins this archive's checksum (dcase.checksums), else ""."""
    md5 = config["dcase"]["checksums"].get(f"{wildcards.year}/{wildcards.stem}.zip")
    return f"--md5 {md5}" if md5 else ""


def custom_machine_arg(wildcards):
    """`--machine-json DEFINITION` for machine types defined in the configuration, else ""."""
    custom = config["synthetic"]["machine_types"].get(wildcards.machine)
    return f"--machine-json {shlex.quote(to_json(custom))}" if custom else ""


def cached_split(split):
    """Input function: the cached array and index of one split of every scored machine type."""

    def inputs(wildcards):
        return [
            f"{features_dir(d, m)}/{split}.{ext}"
            for d, m in machine_pairs(SCORED)
            for ext in ("npy", "csv")
        ]

    return inputs


def run_scores(run, seed):
    """Submission files of every scored machine type for one run and seed."""
    return [score_file(run, seed, d, m) for d, m in machine_pairs(SCORED)]


def cached_train(roles):
    """The cached training splits (.npy) of every machine type of data sets with these roles."""
    return [
        f"{features_dir(d.name, m)}/train.npy"
        for d in DATASETS.values()
        if d.role in roles
        for m in d.machine_types
    ]


# --- encoders, pseudo-labels and the experiment matrix ------------------------------------------

SEEDS = config["finetune"]["seeds"]
RUNS = config["finetune"]["runs"]
ENCODERS = {
    name: f"results/pretrain/{name}/model.pt" for name in ("general", "dap", "dap_full")
} | {"ft": f"results/finetune/{config['pseudolabels']['ft_run']}/seed{SEEDS[0]}/model.pt"}


def encoder_checkpoint(wildcards):
    return ENCODERS[wildcards.encoder]


def pseudo_label_files(source):
    """Cluster labels of every scored machine type from one encoder's embeddings."""
    return [pseudo_file(source, d, m) for d, m in machine_pairs(SCORED)]


def hidden_truth(dataset, machine):
    """The synthetic factory's hidden-attribute file of a machine type ("" for real data)."""
    if config["data_source"] != "synthetic":
        return ""
    return f"{SYNTH_ROOT}/ground_truth/{dataset}/{machine}_hidden_attributes.csv"


def label_file(wildcards):
    return f"results/labels/{RUNS[wildcards.run]['labels']}.csv"


# --- scoring and tables -------------------------------------------------------------------------

BASELINES = plan.BASELINES
RUN_PATTERN = "|".join(sorted(RUNS, key=len, reverse=True))


def run_seeds(run):
    """Seeds of a run: a baseline has one."""
    return plan.run_seeds(config, run)


def table_runs():
    """The baselines and every run of either table, in table order."""
    return plan.table_runs(config)


def metrics_files(runs):
    return [f"results/metrics/{run}/seed{seed}.csv" for run in runs for seed in run_seeds(run)]


def run_titles():
    """`run=title` arguments for the tables."""
    titles = {**{run: RUNS[run].get("title", run) for run in RUNS}, **BASELINES}
    return " ".join(shlex.quote(f"{run}={title}") for run, title in titles.items())


# Without an "extra" data set DAP-full pre-trains on DAP's data: say so now and under the tables.
DAP_FULL_NOTE = ""
if any("dap_full" in (r["init"], r["labels"]) for r in RUNS.values()) and not any(
    d.role == "extra" for d in DATASETS.values()
):
    DAP_FULL_NOTE = missing_extra_note()
    print(f"Warning: {DAP_FULL_NOTE}", file=sys.stderr)


def table_note():
    """`--note TEXT` for the tables when DAP-full has no data of its own, else ""."""
    return f"--note {shlex.quote(DAP_FULL_NOTE)}" if DAP_FULL_NOTE else ""


def runner(wildcards, resources):
    """Params function: how a job starts the package. `python -m asdflow`, or torchrun when a
    training job asks for several GPUs, with the workflow's src/ first on PYTHONPATH: set on the
    command line because Snakemake clears PYTHONPATH in conda jobs, and relative to the working
    directory so that moving a checkout together with its results reruns nothing."""
    src = shlex.quote(os.path.relpath(SRC))
    gpus = int(resources.get("gpu", 0) or 0)
    if gpus > 1:
        command = f"torchrun --standalone --nproc_per_node {gpus} -m asdflow"
    else:
        command = "python -m asdflow"
    return f"PYTHONPATH={src}${{PYTHONPATH:+:$PYTHONPATH}} {command}"
