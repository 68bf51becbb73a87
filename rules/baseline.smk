# The baselines. Log-mel k-NN: pooled log-mel statistics, cosine distance to the nearest normal
# training clip of the same machine type (both domains in the bank). DCASE AE: the official
# challenge baseline, an autoencoder per machine type scored two ways (MSE, Mahalanobis).


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
    benchmark:
        "benchmarks/score_logmel_knn/{dataset}_{machine}.tsv"
    params:
        asdflow=runner,
        features_dir=parent_of("input"),
        out_dir=parent_of("output"),
        settings=to_json(plan.scoring_settings(config, encoder=False)),
        code=code_version("score-logmel"),
    threads: 1
    conda:
        ENV
    shell:
        "{params.asdflow} score-logmel --features-dir {params.features_dir:q} --norm-stats {input.stats:q} "
        "--out-dir {params.out_dir:q} --settings {params.settings:q} > {log:q} 2>&1"


rule baseline_ae:
    input:
        train="results/features/{dataset}/{machine}/train.csv",
        test="results/features/{dataset}/{machine}/test.csv",
    output:
        mse_scores="results/scores/dcase_ae_mse/seed0/{dataset}/anomaly_score_{machine}_section_00_test.csv",
        mse_decisions="results/scores/dcase_ae_mse/seed0/{dataset}/decision_result_{machine}_section_00_test.csv",
        maha_scores="results/scores/dcase_ae_maha/seed0/{dataset}/anomaly_score_{machine}_section_00_test.csv",
        maha_decisions="results/scores/dcase_ae_maha/seed0/{dataset}/decision_result_{machine}_section_00_test.csv",
        model="results/baseline_ae/{dataset}/{machine}/model.pt",
    log:
        "logs/baseline_ae/{dataset}/{machine}.log",
    benchmark:
        "benchmarks/baseline_ae/{dataset}_{machine}.tsv"
    params:
        asdflow=runner,
        features_dir=parent_of("input"),
        out_mse=parent_of("output", 0),
        out_maha=parent_of("output", 2),
        settings=lambda wc: to_json(plan.baseline_ae_settings(config, DATASETS[wc.dataset].channel)),
        code=code_version("baseline-ae"),
    threads: 1
    conda:
        ENV
    shell:
        "{params.asdflow} baseline-ae --features-dir {params.features_dir:q} "
        "--settings {params.settings:q} --out-mse {params.out_mse:q} "
        "--out-maha {params.out_maha:q} --model {output.model:q} --threads {threads} "
        "--quiet > {log:q} 2>&1"
