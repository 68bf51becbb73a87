# asdflow: anomalous sound detection from raw audio to result tables (see README.md).
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


report: "report/workflow.rst"


# Scheduling priorities (`priority:`; among ready jobs the higher goes first): the data and the
# pre-training -> clustering -> label chain that gates every fine-tuning job 40, fine-tuning 20,
# scoring, metrics and tables 10, and the baselines and figures, which nothing waits on, 0: they
# fill the cores the chain leaves idle instead of delaying it.
include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/features.smk"
include: "rules/baseline.smk"
include: "rules/pretrain.smk"
include: "rules/pseudolabels.smk"
include: "rules/finetune.smk"
include: "rules/scoring.smk"
include: "rules/report.smk"


rule all:
    input:
        multiext("results/tables/table1", ".md", ".csv", ".tex"),
        multiext("results/tables/table2", ".md", ".csv", ".tex"),
        "results/tables/machines.md",
        "results/tables/pseudolabels.md",
        expand("results/figures/scores/{run}.png", run=table_runs()),
        expand(
            "results/figures/tsne/{pair}.png",
            pair=[f"{d}_{m}" for d, m in machine_pairs(SCORED)],
        ),
