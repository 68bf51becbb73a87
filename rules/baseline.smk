# The log-mel k-NN baseline: pooled log-mel statistics, cosine distance to the nearest normal
# training clip of the same machine type (both domains in the bank).


rule score_logmel_knn:
    input:
        train="results/features/{dataset}/{machine}/train.npy",
        test="results/features/{dataset}/{machine}/test.npy",
        stats="results/features/norm_stats.json",
    output:
        scores="results/scores/logmel_knn/seed0/{dataset}/anomaly_score_{machine}_section_00_test.csv",
        decisions="results/scores/logmel_knn/seed0/{dataset}/decision_result_{machine}_section_00_test.csv",
    log:
        "logs/scores/logmel_knn/{dataset}/{machine}.log",
    params:
        asdflow=runner,
        features_dir=parent_of("input"),
        out_dir=parent_of("output"),
        knn=knn_args(),
        code=code_version("score.py", "knn.py", "metrics.py", "features.py"),
    threads: 1
    conda:
        ENV
    shell:
        "{params.asdflow} score-logmel --features-dir {params.features_dir} --norm-stats {input.stats} "
        "--out-dir {params.out_dir} {params.knn} > {log} 2>&1"
