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
    benchmark:
        "benchmarks/synth_machine/{set}_{machine}.tsv"
    params:
        asdflow=runner,
        root=lambda wildcards, output: str(Path(output[0]).parents[1]),
        settings=to_json(plan.synth_settings(config)),
        custom=custom_machine_arg,
        code=code_version("synth"),
    threads: 1
    priority: 40
    conda:
        ENV
    shell:
        "{params.asdflow} synth --root {params.root:q} --set {wildcards.set} "
        "--machine-type {wildcards.machine:q} --settings {params.settings:q} {params.custom} "
        "--workers {threads} > {log:q} 2>&1"


rule download_archive:
    output:
        directory("resources/dcase/{year}/{stem}"),
    log:
        "logs/download/{year}/{stem}.log",
    benchmark:
        "benchmarks/download_archive/{year}_{stem}.tsv"
    params:
        asdflow=runner,
        dest=lambda wildcards, output: str(Path(output[0]).parents[1]),
        md5=archive_md5_arg,
        settings=to_json(plan.download_settings(config)),
    threads: 1
    priority: 40
    conda:
        ENV
    shell:
        "{params.asdflow} download --year {wildcards.year} --zip {wildcards.stem}.zip "
        "--dest {params.dest:q} --settings {params.settings:q} {params.md5} --quiet > {log:q} 2>&1"
