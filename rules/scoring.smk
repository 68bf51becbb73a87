# Scoring every fine-tuned encoder: embeddings of train and test clips, k-NN anomaly scores,
# DCASE submission files (one job per run and seed: fine-tuning already spans all machine types).


rule score_run:
    input:
        model="results/finetune/{run}/seed{seed}/model.pt",
        train=cached_split("train"),
        test=cached_split("test"),
    output:
        [
            score_file("{run}", "{seed}", d, m, kind)
            for d, m in machine_pairs(SCORED)
            for kind in ("anomaly_score", "decision_result")
        ],
    log:
        "logs/scores/{run}/seed{seed}.log",
    benchmark:
        "benchmarks/score_run/{run}_seed{seed}.tsv"
    params:
        asdflow=runner,
        machines=lambda wc, input, output: repeated(
            "--machine", folders(input.test, ".npy"), folders(output, ".csv")[::2]
        ),
        settings=to_json(plan.scoring_settings(config)),
        code=code_version("score-encoder"),
    threads: config["finetune"].get("threads", 1)
    resources:
        gpu=1,
        runtime=120,
    wildcard_constraints:
        run=RUN_PATTERN,
        seed=r"\d+",
    priority: 10
    conda:
        ENV
    shell:
        "{params.asdflow} score-encoder --checkpoint {input.model:q} {params.machines} "
        "--settings {params.settings:q} "
        "--threads {threads} > {log:q} 2>&1"
