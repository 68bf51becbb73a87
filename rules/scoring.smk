# Scoring every fine-tuned encoder: embeddings of train and test clips, k-NN anomaly scores,
# DCASE submission files (one job per run and seed: fine-tuning already spans all machine types).


rule score_run:
    input:
        model="results/finetune/{run}/seed{seed}/model.pt",
        train=cached_split("train"),
        test=cached_split("test"),
    output:
        [
            f"results/scores/{{run}}/seed{{seed}}/{d}/{kind}_{m}_section_00_test.csv"
            for d, m in machine_pairs(SCORED)
            for kind in ("anomaly_score", "decision_result")
        ],
    log:
        "logs/scores/{run}/seed{seed}.log",
    params:
        asdflow=runner,
        machines=lambda wc: " ".join(
            f"--machine results/features/{d}/{m} results/scores/{wc.run}/seed{wc.seed}/{d}"
            for d, m in machine_pairs(SCORED)
        ),
        knn=knn_args(),
        code=code_version("score-encoder"),
    threads: config["finetune"].get("threads", 1)
    resources:
        gpu=1,
        runtime=120,
    wildcard_constraints:
        run=RUN_PATTERN,
        seed=r"\d+",
    conda:
        ENV
    shell:
        "{params.asdflow} score-encoder --checkpoint {input.model:q} {params.machines} {params.knn} "
        "--threads {threads} > {log:q} 2>&1"
