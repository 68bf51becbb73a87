"""The Snakemake DAG: configuration validation, dry runs, and a tiny real run of the demo."""

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import REPO, dry_run_counts, run_snakemake, tiny_config, write_workdir


def test_config_typo_is_an_error_naming_the_key(tmp_path):
    config = tiny_config()
    config["features"]["n_frame"] = 96  # typo of n_frames
    work = write_workdir(tmp_path, config)
    proc = run_snakemake(work, "-n", check=False)
    assert proc.returncode != 0
    assert "n_frame" in proc.stdout + proc.stderr


def test_config_wrong_type_is_an_error(tmp_path):
    config = tiny_config()
    config["features"]["n_frames"] = 100  # not a multiple of 16
    proc = run_snakemake(write_workdir(tmp_path, config), "-n", check=False)
    assert proc.returncode != 0 and "multiple" in (proc.stdout + proc.stderr)


def test_dry_run_plans_one_job_per_machine_and_stage(tiny_workdir):
    counts = dry_run_counts(tiny_workdir)
    assert counts["synth_machine"] == counts["features"] == 4 + 3  # dev + eval + earlier
    assert counts["score_logmel_knn"] == counts["baseline_ae"] == 4
    assert counts["norm_stats"] == counts["tables"] == 1
    assert counts["finetune"] == counts["score_run"] == 7 * 3  # runs x seeds
    assert counts["evaluate"] == 7 * 3 + 3  # and the baselines: k-NN, AE (MSE), AE (Mahalanobis)
    assert counts["label_space"] == 5  # none, general, ft, dap, dap_full
    for rule in ("synth_general", "features_general", "norm_stats_general"):
        assert counts[rule] == 1
    assert counts["pretrain_general"] == 1 and counts["pretrain_dap"] == 2
    assert counts["embed_train"] == counts["cluster"] == 4  # one per encoder


def _only_general_na(config):
    config["pseudolabels"]["encoders"] = ["general"]
    config["finetune"]["runs"] = {"na": {"init": "general", "labels": "none"}}
    config["tables"] = {"table1": ["na"], "table2": ["na"]}


def _dap_labels_only(config):
    config["pseudolabels"]["encoders"] = ["general", "ft"]
    config["finetune"]["runs"] = {
        "na": {"init": "general", "labels": "none"},
        "d": {"init": "general", "labels": "dap"},
    }
    config["tables"] = {"table1": ["na", "d"], "table2": ["na"]}


@pytest.mark.parametrize("change", [lambda c: None, _only_general_na, _dap_labels_only])
def test_the_workflows_plan_is_what_snakemake_runs(tmp_path, change):
    """asdflow.workflow (which `asdflow bench hours` costs) names the pre-training and
    embedding jobs a dry run of the same configuration plans."""
    from asdflow import workflow

    config = tiny_config()
    change(config)
    work = write_workdir(tmp_path / "work", config)
    counts = dry_run_counts(work)
    planned = workflow.load_config([work / "config" / "config.yaml"])
    pretrained = workflow.pretrained_encoders(planned)
    assert counts.get("pretrain_general", 0) == ("general" in pretrained)
    assert counts.get("pretrain_dap", 0) == len(set(pretrained) & {"dap", "dap_full"})
    assert counts.get("embed_train", 0) == len(workflow.label_sources(planned))
    assert counts["finetune"] == len(planned["finetune"]["runs"]) * len(
        planned["finetune"]["seeds"]
    )


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A work folder where the tiny demo DAG has run to the end (shared by the rerun tests,
    which only dry-run against it and put its configuration back).

    It is run the way a user runs the demo, `make run`, in a copy of the checkout whose path
    holds a space and a non-ASCII character, with the synthetic data under such a path too.
    """
    clone = copy_workflow(tmp_path_factory.mktemp("finished") / "my clone é")
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy2(REPO / name, clone / name)
    # the venv running these tests stands in for the clone's own; never reinstall it from here
    (clone / ".venv").symlink_to(Path(sys.prefix))
    config = tiny_config()
    config["synthetic"]["root"] = "resources/synth é data"
    write_workdir(clone, config)
    proc = subprocess.run(
        ["make", "-o", ".venv/.installed", "run", "CORES=2"],
        cwd=clone,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, f"make run failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    assert "Table 2 (results/tables/table2.md):" in proc.stdout
    assert (clone / "resources/synth é data/dev").is_dir()
    return clone


def planned_after(work, change, *args) -> dict[str, int]:
    """{rule: jobs} a dry run plans once `change(config)` is applied; the file is put back."""
    path = work / "config/config.yaml"
    original = path.read_text()
    config = yaml.safe_load(original)
    change(config)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    try:
        return jobs_by_rule(dry_run_counts(work, *args))
    finally:
        path.write_text(original)


def jobs_by_rule(counts: dict[str, int]) -> dict[str, int]:
    """Snakemake's job stats without their total, checked against the rules' sum."""
    total = counts.pop("total", 0)
    assert total == sum(counts.values()), counts
    return counts


RUNS, SEEDS = 7, 3
BASELINES = {
    "logmel_knn": "log-mel k-NN",
    "dcase_ae_mse": "DCASE AE (MSE)",
    "dcase_ae_maha": "DCASE AE (Mahalanobis)",
}
PSEUDO_RUNS = 5  # runs whose classes come from clusters: gp, ft, dap, dap_full, pl_ma
ENCODERS = 4  # general, ft, dap, dap_full: one embedding and one clustering job each
MACHINES = 4  # scored machine types of the tiny configuration


@pytest.mark.slow
def test_tiny_real_run_produces_the_tables(finished):
    tiny_workdir = finished
    groups = ["dev_mean", "eval_mean", "no_attribute_mean", "all_mean"]
    for name, runs in (
        ("table1", ["na", "gp", "ft", "dap", "dap_full"]),
        ("table2", ["na", "dap_full", "ma", "pl_ma"]),
    ):
        table = pd.read_csv(tiny_workdir / f"results/tables/{name}.csv")
        assert table["run"].tolist() == [*BASELINES, *runs]
        assert table["title"].tolist()[:3] == list(BASELINES.values())
        assert table["seeds"].tolist() == [1] * len(BASELINES) + [3] * len(runs)
        assert table[groups].notna().all(axis=None)
        assert ((table[groups] > 0) & (table[groups] <= 100)).all(axis=None)
        assert (table.loc[len(BASELINES) :, "all_std"] > 0).all()  # three seeds differ
        tex = (tiny_workdir / f"results/tables/{name}.tex").read_text()
        body = [line for line in tex.splitlines() if line.strip().endswith("\\\\")][1:]
        assert len(body) == len(table) and all(line.count("$\\pm$") == 4 for line in body)
    per_machine = pd.read_csv(tiny_workdir / "results/metrics/logmel_knn/seed0.csv")
    assert len(per_machine) == 4 and per_machine["no_attribute"].sum() == 2
    machines = pd.read_csv(tiny_workdir / "results/tables/machines.csv")
    assert len(machines) == 4 * (len(BASELINES) + 7)  # machine types x (baselines + 7 runs)
    assert set(machines["system"]) >= set(BASELINES.values())
    # submission files exist for every machine, in the DCASE format
    config = yaml.safe_load((tiny_workdir / "config/config.yaml").read_text())
    for machine in config["synthetic"]["sets"]["eval"]:
        scores = pd.read_csv(
            tiny_workdir
            / f"results/scores/pl_ma/seed2/eval/anomaly_score_{machine}_section_00_test.csv",
            header=None,
        )
        assert len(scores) == 16 and scores[0].str.match(r"section_00_\d{4}\.wav").all()
    # label spaces: one class per no-attribute machine type without pseudo-labels, clusters with
    labels = {s: pd.read_csv(tiny_workdir / f"results/labels/{s}.csv") for s in ("none", "dap")}
    hidden = labels["none"][labels["none"]["label_source"] == "machine"]
    assert hidden.groupby("machine_type")["class_name"].nunique().tolist() == [1, 1]
    gt = labels["none"][labels["none"]["label_source"] == "ground_truth"]
    assert gt.equals(labels["dap"][labels["dap"]["label_source"] == "ground_truth"])
    assert set(labels["dap"]["label_source"]) >= {"ground_truth"}
    drawn = ("runs.png", "scores/pl_ma.png", "scores/logmel_knn.png", "scores/dcase_ae_mse.png")
    for figure in drawn:
        assert (tiny_workdir / "results/figures" / figure).stat().st_size > 1000
    # pseudo-label quality table and one t-SNE figure per scored machine type
    quality = pd.read_csv(tiny_workdir / "results/tables/pseudolabels.csv")
    assert set(quality["encoder"]) == {"general", "ft", "dap", "dap_full"}
    assert quality["nmi"].between(0, 1).all() and quality["hidden"].sum() == 2 * 4
    figures = sorted(p.name for p in (tiny_workdir / "results/figures/tsne").iterdir())
    assert len(figures) == 4 and all(name.endswith(".png") for name in figures)


@pytest.mark.slow
def test_every_job_records_its_time_and_memory_and_bench_jobs_reads_them(finished):
    proc = subprocess.run(
        [sys.executable, "-m", "asdflow", "bench", "jobs"],
        capture_output=True,
        text=True,
        cwd=finished,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    assert proc.returncode == 0, proc.stderr
    ran = {p.name for p in (finished / "benchmarks").iterdir()}
    assert {"features", "pretrain_general", "finetune", "score_run", "tables"} <= ran
    assert "peak RSS of one job:" in proc.stdout and "max_rss_MiB" in proc.stdout


@pytest.mark.slow
def test_a_second_run_has_nothing_to_do(finished):
    proc = run_snakemake(finished, "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_bench_quality_diagnoses_every_encoder_of_a_finished_run(finished):
    import subprocess

    cmd = [sys.executable, "-m", "asdflow", "bench", "quality", "--out", "diagnosis"]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run(cmd, cwd=finished, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    summary = pd.read_csv(finished / "diagnosis/summary.csv", index_col="system")
    trained = yaml.safe_load((finished / "config/config.yaml").read_text())["finetune"]["common"]
    # the baseline, an untrained encoder, 3 pre-trained encoders and 7 runs, each pooling
    assert len(summary) == 1 + 11 * 3 and summary.index[0] == "logmel_knn"
    assert "random init (freq)" in summary.index
    assert f"finetune/pl_ma ({trained['pooling']}*)" in summary.index
    assert (
        summary[["official", "auc_source", "auc_target", "attribute_1nn"]]
        .stack()
        .between(0, 1)
        .all()
    )
    kinds = pd.read_csv(finished / "diagnosis/kinds.csv")
    assert set(kinds["domain"]) == {"source", "target"} and kinds["auc"].between(0, 1).all()
    assert "AUC by anomaly kind and domain" in proc.stdout
    # the fine-tuning sweep: the configured run plus one variant per other factor value
    cmd = [sys.executable, "-m", "asdflow", "bench", "finetune", "--out", "sweep"]
    cmd += ["--sweep-steps", "2", "--sweep-pooling", "mean"]
    proc = subprocess.run(cmd, cwd=finished, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    sweep = pd.read_csv(finished / "sweep/sweep.csv")
    assert sweep["variant"].tolist() == ["config", "steps=2", "pooling=mean"]
    assert sweep["steps"].tolist() == [trained["steps"], 2, trained["steps"]]
    assert sweep["official"].between(0, 1).all()
    # training curves: held-back figures at every metric line of every variant, and their plot
    curves = pd.read_csv(finished / "sweep/curves.csv")
    assert set(curves["variant"]) == set(sweep["variant"])
    assert curves[["heldout_ce", "heldout_accuracy"]].notna().all().all()
    assert sweep["heldout_accuracy_last"].between(0, 1).all()
    assert (finished / "sweep/curves.png").stat().st_size > 0


@pytest.mark.slow
def test_clustering_change_reruns_pseudolabels_finetuning_scoring_and_tables_only(finished):
    def change(config):
        config["pseudolabels"]["clustering"]["k_max"] = 5

    assert planned_after(finished, change) == {
        "cluster": ENCODERS,
        "label_space": ENCODERS,
        "finetune": SEEDS * PSEUDO_RUNS,
        "score_run": SEEDS * PSEUDO_RUNS,
        "evaluate": SEEDS * PSEUDO_RUNS,
        "pseudolabel_quality": 1,
        "tsne_figure": MACHINES,
        "score_figure": PSEUDO_RUNS,
        "tables": 1,
        "all": 1,
    }


# What a change to fine-tuning reruns: every fine-tuning job and what follows it. The FT
# pseudo-labels are clusters of a fine-tuned encoder's embeddings (the paper's "FT" row), so
# that one source's embedding and clustering rerun too; features, the log-mel baseline,
# pre-training and the other three pseudo-label sources stay as they are.
AFTER_FINETUNING = {
    "finetune": RUNS * SEEDS,
    "score_run": RUNS * SEEDS,
    "evaluate": RUNS * SEEDS,
    "score_figure": RUNS,
    "embed_train": 1,
    "cluster": 1,
    "label_space": 1,
    "pseudolabel_quality": 1,
    "tsne_figure": MACHINES,
    "tables": 1,
    "all": 1,
}


@pytest.mark.slow
def test_finetuning_change_leaves_features_pretraining_and_pseudolabels_alone(finished):
    def change(config):
        config["finetune"]["common"]["lr"] *= 2

    assert planned_after(finished, change) == AFTER_FINETUNING


def copy_workflow(copy):
    """The workflow and its package source, copied to `copy` (which is returned)."""
    for name in ("Snakefile", "rules", "config", "envs", "report", "src/asdflow"):
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, copy / name)
    return copy


def test_every_job_starts_the_package_with_the_workflow_src_on_its_command_line(tiny_workdir):
    """Snakemake clears PYTHONPATH in `--sdm conda` jobs, so each command line sets it; a rule
    given two GPUs runs under torchrun."""
    proc = run_snakemake(tiny_workdir, "-n", "-p", "--set-resources", "pretrain_dap:gpu=2")
    commands = [line for line in proc.stdout.splitlines() if "-m asdflow " in line]
    counts = dry_run_counts(tiny_workdir)
    assert len(commands) == counts["total"] - counts["all"]  # every job but the target rule
    for command in commands:
        # the checkout's path may hold spaces: split as the shell does
        prefix, *rest = shlex.split(command.removeprefix("Shell command: "))
        src = prefix.removeprefix("PYTHONPATH=").removesuffix("${PYTHONPATH:+:$PYTHONPATH}")
        assert (tiny_workdir / src).resolve() == REPO / "src", command
        assert " ".join(rest).startswith(("python -m asdflow ", "torchrun ")), command
    torchrun = [c for c in commands if "torchrun" in c]
    assert len(torchrun) == 2  # DAP and DAP-full
    assert all("--nproc_per_node 2 -m asdflow pretrain" in c for c in torchrun)


@pytest.mark.parametrize("profile", ["slurm", "local"])
def test_shipped_profiles_are_valid_snakemake_options(tiny_workdir, profile):
    """Every key of the shipped profiles is an option this Snakemake and its SLURM plugin know
    (a typo is an error), and the GPU rules ask the cluster for what the README says."""
    proc = run_snakemake(tiny_workdir, "-n", "--profile", f"config/profiles/{profile}")
    assert "This was a dry-run" in proc.stdout + proc.stderr
    if profile == "slurm":
        settings = yaml.safe_load((REPO / "config/profiles/slurm/profile.yaml").read_text())
        for rule in ("pretrain_general", "pretrain_dap", "finetune", "score_run", "embed_train"):
            asked = settings["set-resources"][rule]
            assert asked["gpu"] == 1 and {"cpus_per_task", "mem_mb", "runtime"} <= set(asked)
        assert settings["retries"] > 0 and settings["slurm-requeue"] is True


def test_jobs_run_the_package_from_the_workflows_own_source(tmp_path):
    """What a job runs is the code its `code` param hashes: the workflow's src/, not whatever
    `asdflow` is installed where the job runs (a --sdm conda env has none)."""
    copy = copy_workflow(tmp_path / "workflow")
    main = copy / "src/asdflow/__main__.py"
    main.write_text('open("ran-from-copy", "w").close()\n' + main.read_text())
    config = tiny_config()
    work = write_workdir(tmp_path / "work", config)
    machine = config["synthetic"]["sets"]["dev"][0]
    target = f"{config['synthetic']['root']}/dev/{machine}"
    run_snakemake(work, "--snakefile", str(copy / "Snakefile"), "--cores", "1", target)
    assert (work / "ran-from-copy").exists() and (work / target).is_dir()


@pytest.mark.slow
def test_code_change_reruns_its_stage_and_what_follows(finished, tmp_path):
    """A copy of the workflow whose fine-tuning module differs by one line: its code version
    param changes, and Snakemake plans exactly what a fine-tuning setting change plans."""
    copy = copy_workflow(tmp_path / "workflow")
    module = copy / "src/asdflow/finetune.py"
    module.write_text(module.read_text() + "\n# a changed line\n")
    planned = dry_run_counts(finished, "--snakefile", str(copy / "Snakefile"))
    assert jobs_by_rule(planned) == AFTER_FINETUNING


def rules_with_changed_code(work, snakefile) -> set[str]:
    """Rules whose outputs Snakemake's summary marks "params changed" (the code version is a
    param); unlike a dry run's reasons, the status does not hide behind an upstream change."""
    proc = run_snakemake(work, "--summary", "--snakefile", str(snakefile))
    rows = [line.split("\t") for line in proc.stdout.splitlines()[1:]]
    return {row[2] for row in rows if len(row) > 4 and row[4] == "params changed"}


@pytest.mark.slow
def test_editing_a_module_reruns_exactly_the_rules_whose_command_imports_it(finished, tmp_path):
    """For every module of the package: one changed line reruns each rule whose command
    loads that module (its code version changes), and no other rule directly."""
    from asdflow import codeversion

    copy = copy_workflow(tmp_path / "workflow")
    commands = {}  # rule -> the asdflow command of its shell line
    for path in (REPO / "rules").glob("*.smk"):
        for block in re.split(r"\n(?=\s*rule \w+:)", path.read_text()):
            rule = re.match(r"\s*rule (\w+):", block)
            code = re.search(r'code=code_version\("([\w-]+)"\)', block)
            if rule and code:
                commands[rule.group(1)] = code.group(1)
    commands.pop("import_general", None)  # not in this configuration's DAG
    loads = {rule: codeversion.command_modules(c) for rule, c in commands.items()}
    package = REPO / "src"
    modules = sorted(
        ".".join(p.relative_to(package).with_suffix("").parts).removesuffix(".__init__")
        for p in (package / "asdflow").rglob("*.py")
    )
    # the lists kept by hand before missed these (issue 12)
    assert {"score_run", "embed_train"} <= {r for r in loads if "asdflow.models" in loads[r]}
    assert "pretrain_dap" in {r for r in loads if "asdflow.features" in loads[r]}
    for module in modules:
        expected = {rule for rule, loaded in loads.items() if module in loaded}
        source = copy / "src" / codeversion.module_file(module).relative_to(package)
        original = source.read_text()
        source.write_text(original + "\n# one changed line\n")
        try:
            assert rules_with_changed_code(finished, copy / "Snakefile") == expected, module
        finally:
            source.write_text(original)


@pytest.mark.slow
def test_added_seed_adds_only_its_jobs_and_the_tables(finished):
    def change(config):
        config["finetune"]["seeds"].append(7)

    assert planned_after(finished, change) == {
        "finetune": RUNS,
        "score_run": RUNS,
        "evaluate": RUNS,
        "tables": 1,
        "all": 1,
    }


@pytest.mark.slow
def test_added_machine_type_adds_its_jobs_and_what_aggregates_over_machines(finished):
    """The new type gets its own data, cache, autoencoder and t-SNE jobs. What pools the machine
    types reruns: the normalisation statistics (hence every log-mel baseline score), DAP and
    DAP-full pre-training, the embeddings and clusterings of the four label sources, every
    fine-tuning and scoring job, and every run's evaluation (the baselines' too). The other types'
    data and caches, and the general encoder, stay."""

    def change(config):
        sets = config["synthetic"]["sets"]
        sets["dev"].append(next(m for m in ("motor", "blower") if m not in sets["dev"]))

    planned = planned_after(finished, change)
    assert planned == {
        "synth_machine": 1,
        "features": 1,
        "norm_stats": 1,
        "score_logmel_knn": MACHINES + 1,
        "baseline_ae": 1,
        "pretrain_dap": 2,
        "embed_train": ENCODERS,
        "cluster": ENCODERS,
        "label_space": 1 + ENCODERS,  # "none" (one class per machine type) and one per source
        "pseudolabel_quality": 1,
        "tsne_figure": MACHINES + 1,
        "finetune": RUNS * SEEDS,
        "score_run": RUNS * SEEDS,
        "evaluate": RUNS * SEEDS + len(BASELINES),
        "score_figure": RUNS + len(BASELINES),
        "tables": 1,
        "all": 1,
    }


@pytest.mark.slow
def test_report_holds_the_tables_figures_and_captions(finished):
    run_snakemake(finished, "--report", "report.html")
    html = (finished / "report.html").read_text()
    for name in ("table1.md", "table2.md", "machines.md", "pseudolabels.md", "runs.png"):
        assert name in html
    assert "pseudo-labels from different embeddings" in html  # Table 1's caption
    assert "Data: synthetic source; encoder eat_tiny" in html  # the workflow description
    assert len(html) > 500_000  # the figures are embedded


def test_snakemake_lint_and_snakefmt_are_clean():
    import subprocess
    import sys
    from pathlib import Path

    from conftest import REPO

    bin_dir = Path(sys.executable).parent
    lint = subprocess.run(
        [sys.executable, "-m", "snakemake", "--lint"], cwd=REPO, capture_output=True, text=True
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    fmt = subprocess.run(
        [str(bin_dir / "snakefmt"), "--check", "Snakefile", "rules"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


def test_ruff_is_clean():
    import subprocess
    import sys
    from pathlib import Path

    from conftest import REPO

    ruff = Path(sys.executable).parent / "ruff"
    proc = subprocess.run(
        [str(ruff), "check", "src", "tests"], cwd=REPO, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.slow
def test_official_weights_are_imported_and_continued_by_dap(tmp_path):
    import torch
    from test_import_eat import decoder_tensors, fairseq_keys, official_tensors, write_fairseq

    from asdflow import checkpoint

    official = tmp_path / "EAT-tiny_official.pt"
    student, teacher = official_tensors(1, depth=6), official_tensors(2, depth=6)
    model = fairseq_keys(student) | decoder_tensors(3)
    write_fairseq(official, model, "nested", fairseq_keys(teacher))
    config = tiny_config()
    config["pretrain"]["general"] = {"source": "import", "checkpoint": str(official)}
    work = write_workdir(tmp_path / "work", config)
    run_snakemake(work, "--cores", "2", "results/pretrain/dap/model.pt")
    general = checkpoint.load_checkpoint(work / "results/pretrain/general/model.pt")
    assert general["settings"]["source"] == "import-eat"
    assert general["normalization"]["mean"] == -4.268  # AudioSet statistics travel with it
    dap = checkpoint.load_checkpoint(work / "results/pretrain/dap/model.pt")
    assert dap["normalization"]["mean"] == -4.268 and dap["step"] == 4
    assert dap["settings"]["init"] == "results/pretrain/general/model.pt"
    # DAP moved the weights away from the imported ones, but only a little in 4 steps
    moved = (
        dap["encoder"]["blocks.0.mlp.fc1.weight"] - general["encoder"]["blocks.0.mlp.fc1.weight"]
    )
    assert 0 < moved.abs().max() < 0.1
    assert not (work / "results/features/general").exists()  # no general corpus needed
    del torch


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda c: c["finetune"]["runs"].update(x={"init": "bogus", "labels": "none"}), "bogus"),
        (lambda c: c["finetune"]["runs"].update(x={"init": "general", "labels": "gpt"}), "gpt"),
        (lambda c: c["finetune"].update(seeds=[]), "seeds"),
        (lambda c: c["tables"].update(table1=["nope"]), "nope"),
        (
            lambda c: c["synthetic"]["sets"].update(dev=["motorr"]),
            "synthetic.sets.dev: unknown machine type 'motorr' (did you mean 'motor'?)",
        ),
    ],
)
def test_bad_experiment_matrix_is_a_clear_error(tmp_path, change, message):
    config = tiny_config()
    change(config)
    proc = run_snakemake(write_workdir(tmp_path, config), "-n", check=False)
    assert proc.returncode != 0 and message in proc.stdout + proc.stderr


@pytest.mark.slow
def test_killed_training_job_resumes_from_its_checkpoint_when_run_again(tmp_path):
    """What a preempted SLURM job or a killed Snakemake does: the job dies mid-training, its
    output is missing, the resume file stays; the same command again continues from it."""
    import signal
    import subprocess
    import time

    from conftest import snakemake_cmd

    config = tiny_config()
    config["pretrain"]["general"] |= {"steps": 400}
    config["pretrain"]["common"] |= {"checkpoint_every": 5}
    work = write_workdir(tmp_path, config)
    target = "results/pretrain/general/model.pt"
    resume = work / "results/pretrain/general/model.resume.pt"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    proc = subprocess.Popen(
        snakemake_cmd(work, "--cores", "1", target),
        cwd=work,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    while not resume.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert resume.exists(), "no checkpoint appeared before the job ended"
    os.killpg(proc.pid, signal.SIGKILL)  # snakemake and the job, with no chance to clean up
    proc.wait()
    assert not (work / target).exists()
    run_snakemake(work, "--unlock")  # a killed Snakemake leaves its lock behind
    run_snakemake(work, "--cores", "1", "--rerun-incomplete", target)
    log = (work / "logs/pretrain/general.log").read_text()
    step = int(log.split("resuming at step ")[1].split()[0])
    assert 5 <= step < 400 and step % 5 == 0
    assert (work / target).exists()


@pytest.mark.slow
def test_the_chain_that_gates_fine_tuning_runs_before_the_baselines(tmp_path):
    """Scheduling priorities: on one core, every job of the data -> pre-training -> clustering
    chain starts before the baseline jobs, which were ready long before (Snakemake's greedy
    scheduler alone prefers the jobs with the largest inputs)."""
    config = tiny_config()
    work = write_workdir(tmp_path / "work", config)
    machine = config["synthetic"]["sets"]["dev"][0]
    targets = [
        f"results/scores/logmel_knn/seed0/dev/anomaly_score_{machine}_section_00_test.csv",
        f"results/baseline_ae/dev/{machine}/model.pt",
        "results/labels/dap.csv",
    ]
    run_snakemake(work, "--cores", "1", *targets)
    (log,) = (work / ".snakemake/log").glob("*.snakemake.log")
    started = [  # rules in the order their jobs started
        line.split()[1].rstrip(":")
        for line in log.read_text().splitlines()
        if line.startswith(("rule ", "localrule "))
    ]
    baselines = [i for i, rule in enumerate(started) if rule in ("baseline_ae", "score_logmel_knn")]
    chain = [i for i, rule in enumerate(started) if rule != "all" and i not in baselines]
    assert len(baselines) == 2 and "label_space" in started, started
    assert max(chain) < min(baselines), started
