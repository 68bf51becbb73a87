# Validation, the data sets of this run, and the input functions every stage shares.
import json
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

from asdflow.codeversion import command_version
from asdflow.data.datasets import missing_extra_note, resolve_datasets

validate(config, "../config/schema.yaml")

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


def parent_of(name, index=0):
    """Params function: the folder of one input or output file (no hard-coded path prefix)."""

    def folder(wildcards, input, output):
        files = input if name == "input" else output
        return str(Path(files[index]).parent)

    return folder


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
    custom = config["synthetic"].get("machine_types", {}).get(wildcards.machine)
    return f"--machine-json {shlex.quote(json.dumps(custom, sort_keys=True))}" if custom else ""


def cached_split(split):
    """Input function: the cached array and index of one split of every scored machine type."""

    def inputs(wildcards):
        return [
            f"results/features/{d}/{m}/{split}.{ext}"
            for d, m in machine_pairs(SCORED)
            for ext in ("npy", "csv")
        ]

    return inputs


def run_scores(run, seed):
    """Submission files of every scored machine type for one run and seed."""
    return [
        f"results/scores/{run}/seed{seed}/{d}/anomaly_score_{m}_section_00_test.csv"
        for d, m in machine_pairs(SCORED)
    ]


def machine_entries(run, seed):
    """`dataset role machine features_dir scores_dir` arguments for `asdflow evaluate`."""
    return " ".join(
        f"--machine {d.name} {d.role} {m} results/features/{d.name}/{m} "
        f"results/scores/{run}/seed{seed}/{d.name}"
        for d in SCORED
        for m in d.machine_types
    )


def cached_train(roles):
    """The cached training splits (.npy) of every machine type of data sets with these roles."""
    return [
        f"results/features/{d.name}/{m}/train.npy"
        for d in DATASETS.values()
        if d.role in roles
        for m in d.machine_types
    ]


# Domain-adaptive pre-training data: DAP on the dev and eval sets' training clips (DCASE 2025),
# DAP-full adds the earlier years' sets.
DAP_ROLES = {"dap": ["dev", "eval"], "dap_full": ["dev", "eval", "extra"]}


def pretrain_settings(run):
    """The resolved settings of one pre-training run (general, dap or dap_full) as a dict."""
    pre = config["pretrain"]
    own = {k: v for k, v in pre[run].items() if k not in ("source", "checkpoint")}
    init = "" if run == "general" else "results/pretrain/general/model.pt"
    return {"model": pre["model"], "init": init, **pre["common"], **own}


# --- encoders, pseudo-labels and the experiment matrix ------------------------------------------

SEEDS = config["finetune"]["seeds"]
RUNS = config["finetune"]["runs"]
FT_RUN = config["pseudolabels"]["ft_run"]
if {k: RUNS.get(FT_RUN, {}).get(k) for k in ("init", "labels")} != {
    "init": "general",
    "labels": "none",
}:
    raise ValueError(
        f"pseudolabels.ft_run {FT_RUN!r} must name a run with init general and labels none "
        f"(the general encoder fine-tuned with each no-attribute machine type as one class)"
    )
ENCODERS = {
    "general": "results/pretrain/general/model.pt",
    "dap": "results/pretrain/dap/model.pt",
    "dap_full": "results/pretrain/dap_full/model.pt",
    "ft": f"results/finetune/{FT_RUN}/seed{SEEDS[0]}/model.pt",
}


def encoder_checkpoint(wildcards):
    return ENCODERS[wildcards.encoder]


def pseudo_label_files(source):
    """Cluster labels of every scored machine type from one encoder's embeddings."""
    return [f"results/pseudolabels/{source}/{d}/{m}.csv" for d, m in machine_pairs(SCORED)]


def cluster_args():
    """Command-line options of `asdflow cluster` from the clustering settings."""
    c = config["pseudolabels"]["clustering"]
    args = [f"--auto {c.get('auto', 'silhouette')}"]
    for key in ("n_clusters", "distance_threshold", "k_min", "k_max", "min_silhouette"):
        if c.get(key) is not None:
            args.append(f"--{key.replace('_', '-')} {c[key]}")
    if c.get("min_relative_gap") is not None:
        args.append(f"--min-relative-gap {c['min_relative_gap']}")
    if c.get("pca_components") is not None:
        args.append(f"--pca {c['pca_components']}")
    if not c.get("l2_normalize", True):
        args.append("--no-l2")
    if c.get("whiten"):
        args.append("--whiten")
    return " ".join(args)


def hidden_truth(dataset, machine):
    """The synthetic factory's hidden-attribute file of a machine type ("" for real data)."""
    if config["data_source"] != "synthetic":
        return ""
    return f"{SYNTH_ROOT}/ground_truth/{dataset}/{machine}_hidden_attributes.csv"


def finetune_settings(run, seed):
    """The resolved settings of one fine-tuning job: common settings, init checkpoint, seed."""
    return {**config["finetune"]["common"], "init": ENCODERS[RUNS[run]["init"]], "seed": int(seed)}


def label_file(wildcards):
    return f"results/labels/{RUNS[wildcards.run]['labels']}.csv"


# --- scoring and tables -------------------------------------------------------------------------

# The baselines, first rows of every table in this order, with their titles: one seed each (the
# k-NN is deterministic, the autoencoder trains once per machine type).
BASELINES = {
    "logmel_knn": "log-mel k-NN",
    "dcase_ae_mse": "DCASE AE (MSE)",
    "dcase_ae_maha": "DCASE AE (Mahalanobis)",
}
for _name in BASELINES:
    if _name in RUNS:
        raise ValueError(f"finetune.runs: {_name!r} is a baseline's name; rename the run")
RUN_PATTERN = "|".join(sorted(RUNS, key=len, reverse=True))
for _table in ("table1", "table2"):
    for _run in config["tables"][_table]:
        if _run not in RUNS:
            raise ValueError(
                f"tables.{_table} names run {_run!r}, not in finetune.runs {sorted(RUNS)}"
            )


def run_seeds(run):
    """Seeds of a run: a baseline has one."""
    return [0] if run in BASELINES else SEEDS


def knn_args():
    """`asdflow score-*` options of the k-NN back end from the scoring settings."""
    s = config["scoring"]
    return (
        f"--k {s['k']} --bank {s['bank']} --kmeans-centers {s.get('kmeans_centers', 16)} "
        f"--{'' if s.get('center', False) else 'no-'}center "
        f"--decision-quantile {s['decision_quantile']}"
    )


def baseline_ae_settings(dataset):
    """The resolved settings of the DCASE autoencoder on one data set, as a dict."""
    channel = DATASETS[dataset].channel or config["features"]["channel"]
    return {
        **config["baseline_ae"],
        "sample_rate": config["features"]["sample_rate"],
        "channel": channel,
        "decision_quantile": config["scoring"]["decision_quantile"],
    }


def table_runs():
    """The baselines and every run of either table, in table order."""
    runs = list(BASELINES)
    for table in ("table1", "table2"):
        runs += [r for r in config["tables"][table] if r not in runs]
    return runs


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
