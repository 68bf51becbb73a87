# Raw audio: the synthetic factory writes DCASE-layout folders; real DCASE archives are downloaded.

# Downloads run where Snakemake runs (a cluster's login node), since compute nodes are often
# offline; they have no code version on purpose: a new downloader must not fetch 100 GB again.


localrules:
    download_archive,


rule synth_machine:
    output:
        directory(f"{SYNTH_ROOT}/{{set}}/{{machine}}"),
    log:
        "logs/synth/{set}/{machine}.log",
    params:
        asdflow=runner,
        root=lambda wildcards, output: str(Path(output[0]).parents[1]),
        seed=config["synthetic"]["seed"],
        clip_seconds=config["synthetic"]["clip_seconds"],
        severity=config["synthetic"]["severity"],
        counts=config["synthetic"]["counts"],
        custom=custom_machine_arg,
        code=code_version("synth"),
    threads: 1
    conda:
        ENV
    shell:
        "{params.asdflow} synth --root {params.root:q} --set {wildcards.set} "
        "--machine-type {wildcards.machine} --seed {params.seed} "
        "--clip-seconds {params.clip_seconds} --severity {params.severity} "
        "--train-source {params.counts[train_source]} --train-target {params.counts[train_target]} "
        "--test-per-quadrant {params.counts[test_per_quadrant]} "
        "--supplemental {params.counts[supplemental]} {params.custom} "
        "--workers {threads} > {log:q} 2>&1"


rule download_archive:
    output:
        directory("resources/dcase/{year}/{stem}"),
    log:
        "logs/download/{year}/{stem}.log",
    params:
        asdflow=runner,
        base_url=config["dcase"].get("base_url", "https://zenodo.org"),
        dest=lambda wildcards, output: str(Path(output[0]).parents[1]),
        md5=archive_md5_arg,
        max_gb=config["dcase"]["max_unpacked_gb"],
        max_ratio=config["dcase"]["max_compression_ratio"],
    threads: 1
    conda:
        ENV
    shell:
        "{params.asdflow} download --year {wildcards.year} --zip {wildcards.stem}.zip "
        "--dest {params.dest:q} --base-url {params.base_url:q} {params.md5} "
        "--max-unpacked-gb {params.max_gb} --max-compression-ratio {params.max_ratio} "
        "--quiet > {log:q} 2>&1"
