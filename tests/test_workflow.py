"""The Snakemake DAG: configuration validation, dry runs, and a tiny real run of the demo."""

import pandas as pd
import pytest
import yaml
from conftest import dry_run_counts, run_snakemake, tiny_config, write_workdir


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
    assert counts["score_logmel_knn"] == 4
    assert counts["norm_stats"] == counts["tables"] == 1
    assert counts["finetune"] == counts["score_run"] == 7 * 3  # runs x seeds
    assert counts["evaluate"] == 7 * 3 + 1  # and the baseline
    assert counts["label_space"] == 5  # none, general, ft, dap, dap_full
    for rule in ("synth_general", "features_general", "norm_stats_general"):
        assert counts[rule] == 1
    assert counts["pretrain_general"] == 1 and counts["pretrain_dap"] == 2
    assert counts["embed_train"] == counts["cluster"] == 4  # one per encoder


@pytest.mark.slow
def test_tiny_real_run_produces_the_tables(tiny_workdir):
    run_snakemake(tiny_workdir, "--cores", "2")
    groups = ["dev_mean", "eval_mean", "no_attribute_mean", "all_mean"]
    for name, runs in (
        ("table1", ["na", "gp", "ft", "dap", "dap_full"]),
        ("table2", ["na", "dap_full", "ma", "pl_ma"]),
    ):
        table = pd.read_csv(tiny_workdir / f"results/tables/{name}.csv")
        assert table["run"].tolist() == ["logmel_knn", *runs]
        assert table["seeds"].tolist() == [1] + [3] * len(runs)
        assert table[groups].notna().all(axis=None)
        assert ((table[groups] > 0) & (table[groups] <= 100)).all(axis=None)
        assert (table.loc[1:, "all_std"] > 0).all()  # three seeds differ
        tex = (tiny_workdir / f"results/tables/{name}.tex").read_text()
        body = [line for line in tex.splitlines() if line.strip().endswith("\\\\")][1:]
        assert len(body) == len(table) and all(line.count("$\\pm$") == 4 for line in body)
    per_machine = pd.read_csv(tiny_workdir / "results/metrics/logmel_knn/seed0.csv")
    assert len(per_machine) == 4 and per_machine["no_attribute"].sum() == 2
    machines = pd.read_csv(tiny_workdir / "results/tables/machines.csv")
    assert len(machines) == 4 * 8  # machine types x (baseline + 7 runs)
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
    for figure in ("runs.png", "scores/pl_ma.png", "scores/logmel_knn.png"):
        assert (tiny_workdir / "results/figures" / figure).stat().st_size > 1000
    # pseudo-label quality table and one t-SNE figure per scored machine type
    quality = pd.read_csv(tiny_workdir / "results/tables/pseudolabels.csv")
    assert set(quality["encoder"]) == {"general", "ft", "dap", "dap_full"}
    assert quality["nmi"].between(0, 1).all() and quality["hidden"].sum() == 2 * 4
    figures = sorted(p.name for p in (tiny_workdir / "results/figures/tsne").iterdir())
    assert len(figures) == 4 and all(name.endswith(".png") for name in figures)
    # a second run has nothing to do
    proc = run_snakemake(tiny_workdir, "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr
    # changing a clustering setting reruns clustering and what follows, nothing before it
    config = yaml.safe_load((tiny_workdir / "config/config.yaml").read_text())
    config["pseudolabels"]["clustering"]["k_max"] = 5
    (tiny_workdir / "config/config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    counts = dry_run_counts(tiny_workdir)
    assert counts.pop("cluster") == 4  # one per encoder
    # ... and the runs whose classes come from clusters: their label space, fine-tuning, scores
    pseudo_runs = 5  # gp, ft, dap, dap_full, pl_ma
    assert counts == {
        "label_space": 4,
        "finetune": 3 * pseudo_runs,
        "score_run": 3 * pseudo_runs,
        "evaluate": 3 * pseudo_runs,
        "pseudolabel_quality": 1,
        "tsne_figure": 4,
        "score_figure": pseudo_runs,
        "tables": 1,
        "all": 1,
        "total": 4 + 4 + 45 + 1 + 4 + 5 + 1 + 1,
    }


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
    ],
)
def test_bad_experiment_matrix_is_a_clear_error(tmp_path, change, message):
    config = tiny_config()
    change(config)
    proc = run_snakemake(write_workdir(tmp_path, config), "-n", check=False)
    assert proc.returncode != 0 and message in proc.stdout + proc.stderr
