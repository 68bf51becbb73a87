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
    params:
        asdflow=runner,
        machine_dirs=machine_dirs,
        out_dir=parent_of("output"),
        ground_truth=ground_truth_arg,
        sample_rate=config["features"]["sample_rate"],
        n_frames=config["features"]["n_frames"],
        channel=lambda wc: DATASETS[wc.dataset].channel or config["features"]["channel"],
        code=code_version("features"),
    threads: 1
    conda:
        ENV
    shell:
        "{params.asdflow} features --machine-dir {params.machine_dirs:q} {params.ground_truth} "
        "--out-dir {params.out_dir:q} --sample-rate {params.sample_rate} "
        "--n-frames {params.n_frames} --channel {params.channel} > {log:q} 2>&1"


rule norm_stats:
    input:
        cached_split("train"),
    output:
        "results/features/norm_stats.json",
    log:
        "logs/features/norm_stats.log",
    params:
        asdflow=runner,
        mode=config["features"]["normalization"],
        mean=config["features"].get("fixed_mean", -4.268),
        std=config["features"].get("fixed_std", 4.569),
        code=code_version("norm-stats"),
    threads: 1
    conda:
        ENV
    shell:
        "{params.asdflow} norm-stats --train {input:q} --mode {params.mode} --mean {params.mean} "
        "--std {params.std} --out {output:q} > {log:q} 2>&1"
