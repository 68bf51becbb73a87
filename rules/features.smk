# Log-mel cache: one memory-mappable array per (data set, machine type, split), then the
# normalisation statistics of the training clips.


rule features:
    input:
        machine_inputs,
    output:
        multiext(
            "results/features/{dataset}/{machine}/",
            "train.npy",
            "train.csv",
            "test.npy",
            "test.csv",
            "supplemental.npy",
            "supplemental.csv",
        ),
    log:
        "logs/features/{dataset}/{machine}.log",
    benchmark:
        "benchmarks/features/{dataset}_{machine}.tsv"
    params:
        asdflow=runner,
        machine_dirs=machine_dirs,
        out_dir=parent_of("output"),
        ground_truth=ground_truth_arg,
        settings=lambda wc: to_json(plan.fbank_settings(config, DATASETS[wc.dataset].channel)),
        code=code_version("features"),
    threads: 1
    priority: 40
    conda:
        ENV
    shell:
        "{params.asdflow} features --machine-dir {params.machine_dirs:q} {params.ground_truth} "
        "--out-dir {params.out_dir:q} --settings {params.settings:q} > {log:q} 2>&1"


rule norm_stats:
    input:
        cached_split("train"),
    output:
        "results/features/norm_stats.json",
    log:
        "logs/features/norm_stats.log",
    benchmark:
        "benchmarks/norm_stats/norm_stats.tsv"
    params:
        asdflow=runner,
        settings=to_json(plan.norm_settings(config)),
        code=code_version("norm-stats"),
    threads: 1
    priority: 40
    conda:
        ENV
    shell:
        "{params.asdflow} norm-stats --train {input:q} --settings {params.settings:q} "
        "--out {output:q} > {log:q} 2>&1"
