# Training: one job per (dataset, model variant, seed); the GPU when there is one.

CHECKPOINT_FILES = ("model.pt", "config.json", "metadata.json", "epochs.csv")


rule train:
    output:
        **{
            name.split(".")[0]: f"results/{{dataset}}/{{model}}/seed{{seed}}/{name}"
            for name in CHECKPOINT_FILES
        },
    input:
        cache="resources/cache/{dataset}.h5",
        code=sources("train"),
    params:
        spec=lambda wildcards: run_spec(wildcards.dataset, wildcards.model),
        out_dir=subpath(output.model, parent=True),
    wildcard_constraints:
        seed=r"\d+",
    log:
        "logs/{dataset}/{model}/seed{seed}/train.log",
    benchmark:
        "logs/{dataset}/{model}/seed{seed}/train.benchmark.tsv"
    threads: 2
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=240,
    conda:
        ENV
    shell:
        "rider train --spec {params.spec:q} --cache {input.cache:q} --seed {wildcards.seed}"
        " --threads {threads} --out-dir {params.out_dir:q} > {log} 2>&1"
