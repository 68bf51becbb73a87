"""The experiment plan of a configuration, shared by the Snakemake rules and the benchmarks.

From a validated configuration (config/schema.yaml fills the defaults): which encoders are
pre-trained, embedded and clustered, the runs and seeds of the experiment matrix, and the
settings object each stage receives as `--settings` (asdflow.settings). rules/common.smk builds
its rules from these functions, and `asdflow bench hours` costs the same plan, so the two cannot
disagree on what a configuration runs.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import yaml

SCHEMA = Path(__file__).resolve().parents[2] / "config" / "schema.yaml"

# Domain-adaptive pre-training data: DAP on the dev and eval sets' training clips (DCASE 2025),
# DAP-full adds the earlier years' sets.
DAP_ROLES = {"dap": ("dev", "eval"), "dap_full": ("dev", "eval", "extra")}
PRETRAINED = ("general", "dap", "dap_full")

# The baselines, first rows of every table in this order, with their titles: one seed each (the
# k-NN is deterministic, the autoencoder trains once per machine type).
BASELINES = {
    "logmel_knn": "log-mel k-NN",
    "dcase_ae_mse": "DCASE AE (MSE)",
    "dcase_ae_maha": "DCASE AE (Mahalanobis)",
}


def merge_config_files(paths: list[Path]) -> dict:
    """The configuration Snakemake builds from `--configfile a b ...`: later files update
    earlier ones, nested mappings key by key (not yet validated)."""

    def update(base: dict, new: dict) -> dict:
        for key, value in new.items():
            if isinstance(value, dict) and isinstance(base.get(key), dict):
                update(base[key], value)
            else:
                base[key] = value
        return base

    config: dict = {}
    for path in paths:
        try:
            loaded = yaml.safe_load(Path(path).read_text()) or {}
        except yaml.YAMLError as err:
            raise ValueError(f"{path}: not valid YAML ({err})") from err
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: expected a mapping of settings at the top level")
        update(config, loaded)
    return config


def load_config(paths: list[Path], schema: Path = SCHEMA) -> dict:
    """The configuration the workflow runs with for these config files (config/config.yaml
    first): merged, validated against the schema with its defaults filled in, and checked."""
    config = merge_config_files(paths)
    try:
        from snakemake.utils import validate
    except ImportError:  # e.g. a GPU node given only the training stack (scripts/gpu-check.sh)
        warnings.warn(
            "snakemake is not installed: the configuration is not validated, and the stages "
            "take their dataclasses' defaults (the same as the schema's, tests/test_settings.py)",
            stacklevel=2,
        )
    else:
        validate(config, str(schema))
    check_plan(config)
    return config


def check_plan(config: dict) -> None:
    """Errors a schema cannot express: runs that refer to each other or to the tables."""
    runs = config["finetune"]["runs"]
    ft_run = config["pseudolabels"]["ft_run"]
    if {k: runs.get(ft_run, {}).get(k) for k in ("init", "labels")} != {
        "init": "general",
        "labels": "none",
    }:
        raise ValueError(
            f"pseudolabels.ft_run {ft_run!r} must name a run with init general and labels none "
            f"(the general encoder fine-tuned with each no-attribute machine type as one class)"
        )
    for name in BASELINES:
        if name in runs:
            raise ValueError(f"finetune.runs: {name!r} is a baseline's name; rename the run")
    for table in ("table1", "table2"):
        for run in config["tables"][table]:
            if run not in runs:
                raise ValueError(
                    f"tables.{table} names run {run!r}, not in finetune.runs {sorted(runs)}"
                )


# --- what a configuration runs ------------------------------------------------------------------


def label_sources(config: dict) -> list[str]:
    """Encoders whose training-clip embeddings are clustered: the pseudo-label table's and those
    the runs take their labels from, in a fixed order."""
    runs = config["finetune"]["runs"].values()
    wanted = set(config["pseudolabels"]["encoders"]) | {r["labels"] for r in runs}
    return [e for e in ("general", "ft", "dap", "dap_full") if e in wanted]


def pretrained_encoders(config: dict) -> list[str]:
    """Pre-training runs the configuration needs: the general encoder always, DAP and DAP-full
    when a run starts from them or their clusters are used."""
    runs = config["finetune"]["runs"].values()
    needed = set(label_sources(config)) | {r["init"] for r in runs} | {"general"}
    return [name for name in PRETRAINED if name in needed]


def table_runs(config: dict) -> list[str]:
    """The baselines and every run of either table, in table order."""
    runs = list(BASELINES)
    for table in ("table1", "table2"):
        runs += [r for r in config["tables"][table] if r not in runs]
    return runs


def run_seeds(config: dict, run: str) -> list[int]:
    """Seeds of a run: a baseline has one."""
    return [0] if run in BASELINES else list(config["finetune"]["seeds"])


# --- the settings object of each stage ----------------------------------------------------------


def fbank_settings(config: dict, channel: str = "") -> dict:
    """`asdflow features --settings`: the front end (a data set may override the channel)."""
    f = config["features"]
    return {
        "sample_rate": f["sample_rate"],
        "n_frames": f["n_frames"],
        "channel": channel or f["channel"],
    }


def norm_settings(config: dict) -> dict:
    """`asdflow norm-stats --settings`."""
    f = config["features"]
    return {k: f[k] for k in ("normalization", "fixed_mean", "fixed_std")}


def pretrain_settings(config: dict, run: str) -> dict:
    """`asdflow pretrain --settings` of one pre-training run (general, dap or dap_full)."""
    pre = config["pretrain"]
    own = {k: v for k, v in pre[run].items() if k not in ("source", "checkpoint")}
    return {"model": pre["model"], **pre["common"], **own}


def finetune_settings(config: dict, seed: int) -> dict:
    """`asdflow finetune --settings` of one seed (the same for every run of the matrix)."""
    return {**config["finetune"]["common"], "seed": int(seed)}


def cluster_settings(config: dict) -> dict:
    """`asdflow cluster --settings`."""
    return dict(config["pseudolabels"]["clustering"])


def scoring_settings(config: dict, encoder: bool = True) -> dict:
    """`asdflow score-encoder --settings` (`encoder`) / `score-logmel --settings`: the k-NN back
    end of every system; the log-mel baseline's lacks the embedding pass's precision, so that
    changing it does not rerun that baseline."""
    section = dict(config["scoring"])
    if not encoder:
        section.pop("precision", None)
    return section


def baseline_ae_settings(config: dict, channel: str = "") -> dict:
    """`asdflow baseline-ae --settings`: its section, with the front end's sample rate and
    channel and the scoring's decision quantile."""
    return {
        **config["baseline_ae"],
        "sample_rate": config["features"]["sample_rate"],
        "channel": channel or config["features"]["channel"],
        "decision_quantile": config["scoring"]["decision_quantile"],
    }


def synth_settings(config: dict, general: bool = False) -> dict:
    """`asdflow synth --settings`: what a machine-type job (or the general corpus) depends on."""
    s = config["synthetic"]
    if general:
        return {k: s[k] for k in ("seed", "clip_seconds", "general_clips")}
    return {k: s[k] for k in ("seed", "clip_seconds", "severity", "counts")}


def download_settings(config: dict) -> dict:
    """`asdflow download --settings`."""
    d = config["dcase"]
    return {k: d[k] for k in ("base_url", "max_unpacked_gb", "max_compression_ratio")}
