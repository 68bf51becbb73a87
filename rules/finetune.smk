# Model adaptation: every run of the experiment matrix fine-tuned once per seed.


rule finetune:
    input:
        init=lambda wc: ENCODERS[RUNS[wc.run]["init"]],
        labels=label_file,
        cache=cached_train(["dev", "eval"]),
    output:
        "results/finetune/{run}/seed{seed}/model.pt",
    log:
        "logs/finetune/{run}/seed{seed}.log",
    benchmark:
        "benchmarks/finetune/{run}_seed{seed}.tsv"
    params:
        asdflow=runner,
        settings=lambda wc: to_json(plan.finetune_settings(config, wc.seed)),
        code=code_version("finetune"),
    threads: config["finetune"].get("threads", 1)
    resources:
        gpu=1,
        runtime=24 * 60,
    wildcard_constraints:
        run=RUN_PATTERN,
        seed=r"\d+",
    priority: 20
    conda:
        ENV
    shell:
        "{params.asdflow} finetune --cache {input.cache:q} --labels {input.labels:q} "
        "--init {input.init:q} --settings {params.settings:q} --out {output:q} --threads {threads} "
        "--quiet > {log:q} 2>&1"
