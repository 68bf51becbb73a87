# Metrics per run and seed (the official DCASE rule), the paper's tables and the figures.


rule evaluate:
    input:
        scores=lambda wc: run_scores(wc.run, wc.seed),
        tests=cached_split("test"),
    output:
        "results/metrics/{run}/seed{seed}.csv",
    log:
        "logs/metrics/{run}/seed{seed}.log",
    benchmark:
        "benchmarks/evaluate/{run}_seed{seed}.tsv"
    params:
        asdflow=runner,
        machines=lambda wc, input: repeated(
            "--machine",
            *zip(*[(d.name, d.role, m) for d in SCORED for m in d.machine_types]),
            folders(input.tests, ".npy"),
            folders(input.scores),
        ),
        code=code_version("evaluate"),
    threads: 1
    wildcard_constraints:
        seed=r"\d+",
    priority: 10
    conda:
        ENV
    shell:
        "{params.asdflow} evaluate --run {wildcards.run} --seed {wildcards.seed} {params.machines} "
        "--out {output:q} > {log:q} 2>&1"


rule tables:
    input:
        metrics_files(table_runs()),
    output:
        report(
            multiext("results/tables/table1", ".md", ".csv", ".tex"),
            category="Tables",
            caption="../report/table1.rst",
        ),
        report(
            multiext("results/tables/table2", ".md", ".csv", ".tex"),
            category="Tables",
            caption="../report/table2.rst",
        ),
        report(
            multiext("results/tables/machines", ".md", ".csv"),
            category="Tables",
            caption="../report/machines.rst",
        ),
        figure=report("results/figures/runs.png", category="Figures", caption="../report/runs.rst"),
    log:
        "logs/tables/tables.log",
    benchmark:
        "benchmarks/tables/tables.tsv"
    params:
        asdflow=runner,
        baselines=list(BASELINES),
        table1=config["tables"]["table1"],
        table2=config["tables"]["table2"],
        titles=run_titles(),
        out_dir=parent_of("output"),
        note=table_note(),
        code=code_version("tables"),
    threads: 1
    priority: 10
    conda:
        ENV
    shell:
        "{params.asdflow} tables --metrics {input:q} --table1 {params.baselines} {params.table1} "
        "--table2 {params.baselines} {params.table2} --titles {params.titles} "
        "--out-dir {params.out_dir:q} --figure {output.figure:q} {params.note} > {log:q} 2>&1"


rule score_figure:
    input:
        scores=lambda wc: run_scores(wc.run, run_seeds(wc.run)[0]),
        tests=cached_split("test"),
    output:
        report(
            "results/figures/scores/{run}.png",
            category="Figures",
            caption="../report/scores.rst",
        ),
    log:
        "logs/figures/scores/{run}.log",
    benchmark:
        "benchmarks/score_figure/{run}.tsv"
    params:
        asdflow=runner,
        machines=lambda wc, input: repeated(
            "--machine", [f for f in input.tests if f.endswith(".csv")], folders(input.scores)
        ),
        code=code_version("score-figure"),
    threads: 1
    conda:
        ENV
    shell:
        "{params.asdflow} score-figure --run {wildcards.run} {params.machines} --out {output:q} "
        "> {log:q} 2>&1"
