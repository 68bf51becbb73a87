# Pseudo-attribute labels: embeddings of the training clips from each encoder, Ward clustering per
# machine type, the label spaces fine-tuning uses, and the measured quality of the clusters.


rule embed_train:
    input:
        checkpoint=encoder_checkpoint,
        cache=cached_split("train"),
    output:
        [embeddings_file("{encoder}", d, m) for d, m in machine_pairs(SCORED)],
    log:
        "logs/embeddings/{encoder}.log",
    benchmark:
        "benchmarks/embed_train/{encoder}.tsv"
    params:
        asdflow=runner,
        machines=lambda wc, input, output: repeated(
            "--machine", folders(input.cache, ".npy"), folders(output)
        ),
        code=code_version("embed"),
    threads: 1
    resources:
        gpu=1,
        runtime=60,
    wildcard_constraints:
        encoder="|".join(ENCODERS),
    priority: 40
    conda:
        ENV
    shell:
        "{params.asdflow} embed --checkpoint {input.checkpoint:q} {params.machines} --splits train "
        "--threads {threads} > {log:q} 2>&1"


rule cluster:
    input:
        embeddings=lambda wc: [embeddings_file(wc.encoder, d, m) for d, m in machine_pairs(SCORED)],
        index=cached_split("train"),
    output:
        pseudo_label_files("{encoder}"),
    log:
        "logs/pseudolabels/{encoder}.log",
    benchmark:
        "benchmarks/cluster/{encoder}.tsv"
    params:
        asdflow=runner,
        jobs=lambda wc, input, output: repeated(
            "--job",
            input.embeddings,
            [f for f in input.index if f.endswith(".csv")],
            output,
        ),
        settings=to_json(plan.cluster_settings(config)),
        code=code_version("cluster"),
    threads: 1
    wildcard_constraints:
        encoder="|".join(ENCODERS),
    priority: 40
    conda:
        ENV
    shell:
        "{params.asdflow} cluster {params.jobs} --settings {params.settings:q} > {log:q} 2>&1"


rule label_space:
    input:
        index=cached_split("train"),
        pseudo=lambda wc: [] if wc.source == "none" else pseudo_label_files(wc.source),
    output:
        "results/labels/{source}.csv",
    log:
        "logs/labels/{source}.log",
    benchmark:
        "benchmarks/label_space/{source}.tsv"
    params:
        asdflow=runner,
        indexes=lambda wc, input: [f for f in input.index if f.endswith(".csv")],
        code=code_version("labels"),
    threads: 1
    wildcard_constraints:
        source="none|general|ft|dap|dap_full",
    priority: 40
    conda:
        ENV
    shell:
        "{params.asdflow} labels --index {params.indexes:q} --pseudo {input.pseudo:q} --out {output:q} "
        "> {log:q} 2>&1"


rule pseudolabel_quality:
    input:
        pseudo=[
            f
            for encoder in config["pseudolabels"]["encoders"]
            for f in pseudo_label_files(encoder)
        ],
        index=cached_split("train"),
    output:
        md=report("results/tables/pseudolabels.md", category="Pseudo-labels"),
        csv="results/tables/pseudolabels.csv",
    log:
        "logs/tables/pseudolabels.log",
    benchmark:
        "benchmarks/pseudolabel_quality/pseudolabel_quality.tsv"
    params:
        asdflow=runner,
        entries=repeated(
            "--machine",
            *zip(
                *[
                    (
                        e,
                        pseudo_file(e, d, m),
                        f"{features_dir(d, m)}/train.csv",
                        hidden_truth(d, m) or "-",
                    )
                    for e in config["pseudolabels"]["encoders"]
                    for d, m in machine_pairs(SCORED)
                ]
            ),
        ),
        code=code_version("pseudolabel-quality"),
    threads: 1
    conda:
        ENV
    shell:
        "{params.asdflow} pseudolabel-quality {params.entries} --out-md {output.md:q} "
        "--out-csv {output.csv:q} > {log:q} 2>&1"


rule tsne_figure:
    input:
        embeddings=expand(
            embeddings_file("{encoder}", "{{dataset}}", "{{machine}}"),
            encoder=config["pseudolabels"]["encoders"],
        ),
        pseudo=expand(
            pseudo_file("{encoder}", "{{dataset}}", "{{machine}}"),
            encoder=config["pseudolabels"]["encoders"],
        ),
        index=f"{features_dir('{dataset}', '{machine}')}/train.csv",
    output:
        report(
            "results/figures/tsne/{dataset}_{machine}.png",
            category="Pseudo-labels",
            caption="../report/tsne.rst",
        ),
    log:
        "logs/figures/tsne/{dataset}_{machine}.log",
    benchmark:
        "benchmarks/tsne_figure/{dataset}_{machine}.tsv"
    params:
        asdflow=runner,
        encoders=config["pseudolabels"]["encoders"],
        truth=lambda wc: hidden_truth(wc.dataset, wc.machine) or "-",
        code=code_version("tsne"),
    threads: 1
    conda:
        ENV
    shell:
        "{params.asdflow} tsne --encoders {params.encoders} --embeddings {input.embeddings:q} "
        "--pseudo {input.pseudo:q} --index {input.index:q} --truth {params.truth:q} "
        "--out {output:q} > {log:q} 2>&1"
