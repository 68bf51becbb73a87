# EAT pre-training: the general encoder (trained on the general-audio corpus, or imported from
# official weights), then domain-adaptive pre-training on machine sounds (DAP, DAP-full).


rule synth_general:
    output:
        directory(f"{SYNTH_ROOT}/general"),
    log:
        "logs/synth/general.log",
    params:
        asdflow=runner,
        root=lambda wildcards, output: str(Path(output[0]).parent),
        clips=config["synthetic"].get("general_clips", 600),
        seed=config["synthetic"]["seed"],
        clip_seconds=config["synthetic"]["clip_seconds"],
        code=code_version("synth"),
    threads: 1
    conda:
        ENV
    shell:
        "{params.asdflow} synth --root {params.root:q} --general {params.clips} --seed {params.seed} "
        "--clip-seconds {params.clip_seconds} --workers {threads} > {log:q} 2>&1"


rule features_general:
    input:
        f"{SYNTH_ROOT}/general",
    output:
        "results/features/general/train.npy",
        "results/features/general/train.csv",
    log:
        "logs/features/general.log",
    params:
        asdflow=runner,
        out_dir=parent_of("output"),
        sample_rate=config["features"]["sample_rate"],
        n_frames=config["features"]["n_frames"],
        channel=config["features"]["channel"],
        code=code_version("features"),
    threads: 1
    conda:
        ENV
    shell:
        "{params.asdflow} features --plain-dir {input:q} --out-dir {params.out_dir:q} "
        "--sample-rate {params.sample_rate} --n-frames {params.n_frames} "
        "--channel {params.channel} > {log:q} 2>&1"


rule norm_stats_general:
    input:
        "results/features/general/train.npy",
        "results/features/general/train.csv",
    output:
        "results/features/general/norm_stats.json",
    log:
        "logs/features/norm_stats_general.log",
    params:
        asdflow=runner,
        code=code_version("norm-stats"),
    threads: 1
    conda:
        ENV
    shell:
        "{params.asdflow} norm-stats --train {input:q} --mode train --out {output:q} > {log:q} 2>&1"


if config["pretrain"]["general"]["source"] == "import":

    rule import_general:
        input:
            config["pretrain"]["general"]["checkpoint"],
        output:
            "results/pretrain/general/model.pt",
        log:
            "logs/pretrain/general.log",
        params:
            asdflow=runner,
            code=code_version("import-eat"),
        threads: 1
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
        params:
            asdflow=runner,
            settings=pretrain_settings("general"),
            settings_json=lambda wildcards: shlex.quote(json.dumps(pretrain_settings("general"))),
            code=code_version("pretrain"),
        threads: config["pretrain"].get("threads", 2)
        resources:
            gpu=1,
            runtime=24 * 60,
        conda:
            ENV
        shell:
            "{params.asdflow} pretrain --cache {input.cache:q} --norm-stats {input.stats:q} "
            "--settings {params.settings_json} --out {output:q} --threads {threads} "
            "--quiet > {log:q} 2>&1"


rule pretrain_dap:
    input:
        init="results/pretrain/general/model.pt",
        cache=lambda wildcards: cached_train(DAP_ROLES[wildcards.encoder]),
    output:
        "results/pretrain/{encoder}/model.pt",
    log:
        "logs/pretrain/{encoder}.log",
    params:
        asdflow=runner,
        settings=lambda wildcards: pretrain_settings(wildcards.encoder),
        settings_json=lambda wildcards: shlex.quote(
            json.dumps(pretrain_settings(wildcards.encoder))
        ),
        code=code_version("pretrain"),
    threads: config["pretrain"].get("threads", 2)
    resources:
        gpu=1,
        runtime=24 * 60,
    wildcard_constraints:
        encoder="dap|dap_full",
    conda:
        ENV
    shell:
        "{params.asdflow} pretrain --cache {input.cache:q} --settings {params.settings_json} "
        "--out {output:q} --threads {threads} --quiet > {log:q} 2>&1"
