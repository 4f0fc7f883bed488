# Training: one job per (dataset, model variant, seed); a GPU each where there are GPUs, else a core each
# (MODEL_JOB_RESOURCES, common.smk).

from rider.report.spec import run_kinds

CHECKPOINT_FILES = ("model.pt", "config.json", "metadata.json", "epochs.csv")


rule train:
    output:
        **{
            name.split(".")[0]: f"results/{{dataset}}/{{model}}/seed{{seed}}/{name}"
            for name in CHECKPOINT_FILES
        },
    input:
        cache="resources/cache/{dataset}.h5",
        code=model_sources("train"),
        tuned=lambda wildcards: tuned_file(wildcards.dataset),  # the tuning choice the run's settings come from
    params:
        spec=lambda wildcards: run_spec(wildcards.dataset, wildcards.model),
        out_dir=subpath(output.model, parent=True),
    wildcard_constraints:
        seed=r"\d+",
    log:
        "logs/{dataset}/{model}/seed{seed}/train.log",
    benchmark:
        "logs/{dataset}/{model}/seed{seed}/train.benchmark.tsv"
    threads: MODEL_JOB_THREADS
    resources:
        **MODEL_JOB_RESOURCES,
        mem_mb=8000,
        runtime=240,
    conda:
        ENV
    shell:
        "rider train --spec {params.spec:q} --cache {input.cache:q} --dataset {wildcards.dataset} --seed {wildcards.seed}"
        " --threads {threads} --out-dir {params.out_dir:q} > {log} 2>&1"


# App. D on this run: a few training steps of the reference variant's kind and configuration, single view against
# four views. On a host without a GPU it claims every core (cpu_jobs), so that no other model job runs beside it.
rule overhead:
    output:
        "results/{dataset}/overhead.json",
    input:
        run_config=lambda wildcards: overhead_run(config, wildcards.dataset, "results/{dataset}/{model}/seed{seed}/config.json"),
        cache="resources/cache/{dataset}.h5",
        code=lambda wildcards: sources("overhead", variant_kind(config["report"]["reference"])),
    params:
        paper=lambda wildcards: config["datasets"][wildcards.dataset]["folds"],
    log:
        "logs/{dataset}/overhead.log",
    benchmark:
        "logs/{dataset}/overhead.benchmark.tsv"
    threads: MODEL_JOB_THREADS
    resources:
        **{**MODEL_JOB_RESOURCES, "cpu_jobs": 0 if GPUS else CPU_CORES},
        mem_mb=4000,
        runtime=20,
    conda:
        ENV
    shell:
        "rider overhead --run-config {input.run_config:q} --cache {input.cache:q} --dataset {wildcards.dataset}"
        " --paper {params.paper} --threads {threads} --out {output:q} > {log} 2>&1"


# Table 6 at the published sizes: every trained kind built (on the meta device) at its authors' configuration.
rule parameters:
    output:
        "results/parameters.json",
    input:
        code=lambda wildcards: sources("parameters", *run_kinds(config)),
    params:
        kinds=lambda wildcards: " ".join(run_kinds(config)),
    log:
        "logs/parameters.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        ENV
    shell:
        "rider count --kinds {params.kinds} --out {output:q} > {log} 2>&1"
