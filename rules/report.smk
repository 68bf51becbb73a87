# Metrics per run (the official DCASE rule) and the results table over runs.


rule evaluate:
    input:
        scores=lambda wc: run_scores(wc.run),
        tests=cached_split("test"),
    output:
        "results/metrics/{run}.csv",
    log:
        "logs/metrics/{run}.log",
    params:
        machines=lambda wc: machine_entries(wc.run),
        code=code_version("tables.py", "metrics.py"),
    threads: 1
    conda:
        ENV
    shell:
        "asdflow evaluate --run {wildcards.run} {params.machines} --out {output} > {log} 2>&1"


rule results_table:
    input:
        "results/metrics/logmel_knn.csv",
    output:
        md="results/tables/results.md",
        csv="results/tables/results.csv",
    log:
        "logs/tables/results.log",
    params:
        code=code_version("tables.py"),
    threads: 1
    conda:
        ENV
    shell:
        "asdflow table --metrics {input} --out-md {output.md} --out-csv {output.csv} > {log} 2>&1"
