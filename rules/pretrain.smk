# EAT pre-training: the general encoder (trained on the general-audio corpus, or imported from
# official weights), then domain-adaptive pre-training on machine sounds (DAP, DAP-full).


rule synth_general:
    output:
        directory(f"{SYNTH_ROOT}/general"),
    log:
        "logs/synth/general.log",
    benchmark:
        "benchmarks/synth_general/synth_general.tsv"
    params:
        asdflow=runner,
        root=lambda wildcards, output: str(Path(output[0]).parent),
        settings=to_json(plan.synth_settings(config, general=True)),
        code=code_version("synth"),
    threads: 1
    priority: 40
    conda:
        ENV
    shell:
        "{params.asdflow} synth --root {params.root:q} --general --settings {params.settings:q} "
        "--workers {threads} > {log:q} 2>&1"


rule features_general:
    input:
        f"{SYNTH_ROOT}/general",
    output:
        "results/features/general/train.npy",
        "results/features/general/train.csv",
    log:
        "logs/features/general.log",
    benchmark:
        "benchmarks/features_general/features_general.tsv"
    params:
        asdflow=runner,
        out_dir=parent_of("output"),
        settings=to_json(plan.fbank_settings(config)),
        code=code_version("features"),
    threads: 1
    priority: 40
    conda:
        ENV
    shell:
        "{params.asdflow} features --plain-dir {input:q} --out-dir {params.out_dir:q} "
        "--settings {params.settings:q} > {log:q} 2>&1"


rule norm_stats_general:
    input:
        "results/features/general/train.npy",
        "results/features/general/train.csv",
    output:
        "results/features/general/norm_stats.json",
    log:
        "logs/features/norm_stats_general.log",
    benchmark:
        "benchmarks/norm_stats_general/norm_stats_general.tsv"
    params:
        asdflow=runner,
        settings=to_json({"normalization": "train"}),
        code=code_version("norm-stats"),
    threads: 1
    priority: 40
    conda:
        ENV
    shell:
        "{params.asdflow} norm-stats --train {input:q} --settings {params.settings:q} "
        "--out {output:q} > {log:q} 2>&1"


if config["pretrain"]["general"]["source"] == "import":

    rule import_general:
        input:
            config["pretrain"]["general"]["checkpoint"],
        output:
            "results/pretrain/general/model.pt",
        log:
            "logs/pretrain/general.log",
        benchmark:
            "benchmarks/import_general/import_general.tsv"
        params:
            asdflow=runner,
            code=code_version("import-eat"),
        threads: 1
        priority: 40
        conda:
            ENV
        shell:
            "{params.asdflow} import-eat {input:q} --out {output:q} > {log:q} 2>&1"

else:

    rule pretrain_general:
        input:
            cache="results/features/general/train.npy",
            stats="results/features/general/norm_stats.json",
        output:
            "results/pretrain/general/model.pt",
        log:
            "logs/pretrain/general.log",
        benchmark:
            "benchmarks/pretrain_general/pretrain_general.tsv"
        params:
            asdflow=runner,
            settings=to_json(plan.pretrain_settings(config, "general")),
            code=code_version("pretrain"),
        threads: config["pretrain"].get("threads", 2)
        resources:
            gpu=1,
            runtime=24 * 60,
        priority: 40
        conda:
            ENV
        shell:
            "{params.asdflow} pretrain --cache {input.cache:q} --norm-stats {input.stats:q} "
            "--settings {params.settings:q} --out {output:q} --threads {threads} "
            "--quiet > {log:q} 2>&1"


rule pretrain_dap:
    input:
        init=ENCODERS["general"],
        cache=lambda wildcards: cached_train(plan.DAP_ROLES[wildcards.encoder]),
    output:
        "results/pretrain/{encoder}/model.pt",
    log:
        "logs/pretrain/{encoder}.log",
    benchmark:
        "benchmarks/pretrain_dap/{encoder}.tsv"
    params:
        asdflow=runner,
        settings=lambda wildcards: to_json(plan.pretrain_settings(config, wildcards.encoder)),
        code=code_version("pretrain"),
    threads: config["pretrain"].get("threads", 2)
    resources:
        gpu=1,
        runtime=24 * 60,
    wildcard_constraints:
        encoder="dap|dap_full",
    priority: 40
    conda:
        ENV
    shell:
        "{params.asdflow} pretrain --cache {input.cache:q} --init {input.init:q} "
        "--settings {params.settings:q} --out {output:q} --threads {threads} --quiet > {log:q} 2>&1"
