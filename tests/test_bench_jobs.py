"""`asdflow bench jobs`: per-rule job times read from a Snakemake log."""

import json

import pytest

from asdflow.bench import jobs as bench_jobs

LOG = """Building DAG of jobs...
[Wed Dec  2 12:09:57 2026]
localrule synth_machine:
    output: resources/synthetic/eval/ventilator
    jobid: 18
    wildcards: set=eval, machine=ventilator
[Wed Dec  2 12:09:58 2026]
rule finetune:
    output: results/finetune/na/seed0/model.pt
    jobid: 7
Select jobs to execute...
[Wed Dec  2 12:10:03 2026]
Finished jobid: 18 (Rule: synth_machine)
1 of 3 steps (33%) done
[Wed Dec  2 12:10:03 2026]
localrule synth_machine:
    jobid: 20
[Wed Dec  2 12:11:00 2026]
Finished jobid: 7 (Rule: finetune)
[Wed Dec  2 12:11:10 2026]
Finished jobid: 20 (Rule: synth_machine)
"""


def test_job_times_pair_starts_with_ends_per_job(tmp_path):
    log = tmp_path / "run.snakemake.log"
    log.write_text(LOG)
    jobs = bench_jobs.job_times(log).set_index("jobid")
    assert jobs.loc[18, "seconds"] == 6 and jobs.loc[7, "seconds"] == 62
    assert jobs.loc[20, "seconds"] == 67 and jobs.loc[20, "rule"] == "synth_machine"
    per_rule, wall = bench_jobs.summarize(jobs.reset_index())
    assert per_rule.loc["synth_machine", "jobs"] == 2
    assert per_rule.loc["synth_machine", "total_s"] == 73
    assert per_rule.index[0] == "synth_machine" and wall == 73
    assert per_rule["share"].sum() == pytest.approx(1.0)


def test_no_log_is_an_error_naming_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="no Snakemake log"):
        bench_jobs.newest_log(tmp_path)
    (tmp_path / ".snakemake/log").mkdir(parents=True)
    (tmp_path / ".snakemake/log/a.snakemake.log").write_text("Building DAG of jobs...\n")
    with pytest.raises(ValueError, match="no finished jobs"):
        bench_jobs.main(None, tmp_path)


def test_memory_from_the_benchmark_files_and_the_concurrency_bound(tmp_path, capsys):
    log = tmp_path / ".snakemake/log/run.snakemake.log"
    log.parent.mkdir(parents=True)
    log.write_text(LOG)
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    for rule, job, rss, cpu in [
        ("synth_machine", "eval_ventilator", 120.5, 4.0),
        ("synth_machine", "dev_fan", 80.0, 3.0),
        ("finetune", "na_seed0", 900.0, 60.0),
    ]:
        path = tmp_path / "benchmarks" / rule / f"{job}.tsv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(header + f"5.0\t0:00:05\t{rss}\t1\t1\t1\t0\t0\t90\t{cpu}\n")
    memory = bench_jobs.job_memory(tmp_path)
    assert len(memory) == 3
    jobs = bench_jobs.job_times(log)
    assert bench_jobs.max_concurrent(jobs) == 2  # jobs 18 and 7, then 7 and 20
    per_rule = bench_jobs.main(None, tmp_path)
    assert per_rule.loc["synth_machine", "max_rss_MiB"] == 120.5
    assert per_rule.loc["synth_machine", "cpu_s"] == 7.0
    out = capsys.readouterr().out
    assert "peak RSS of one job: 900 MiB (finetune na_seed0)" in out
    assert "never held more than 1020 MiB together" in out


def test_training_jobs_split_into_steps_and_the_rest(tmp_path, capsys):
    log = tmp_path / ".snakemake/log/run.snakemake.log"
    log.parent.mkdir(parents=True)
    log.write_text(LOG)  # its finetune job, 62 s
    lines = {  # log_every 10, then the last 5 steps
        "results/finetune/na/seed0/model.metrics.jsonl": [(10, 0.5), (20, 0.25), (25, 0.2)],
        "results/finetune/ma/seed1/model.metrics.jsonl": [(10, 0.1)],
        "results/pretrain/dap_full/model.metrics.jsonl": [(10, 2.0)],
    }
    for name, entries in lines.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True)
        timed = [json.dumps({"step": s, "loss": 1.0, "seconds_per_step": t}) for s, t in entries]
        untimed = json.dumps({"step": 30, "heldout_ce": 1.0})  # counts nothing
        path.write_text("\n".join([*timed, untimed]) + "\n")
    steps = bench_jobs.training_step_seconds(tmp_path)
    assert steps.to_dict() == pytest.approx({"finetune": 5 + 2.5 + 1 + 1, "pretrain_dap": 20})
    per_rule = bench_jobs.main(None, tmp_path)
    assert per_rule.loc["finetune", "steps_s"] == pytest.approx(9.5)
    # pretrain_dap's metrics are not of this log's jobs: only the finetune job counts
    assert "training jobs: 62 s, of which 10 s in training steps" in capsys.readouterr().out
