# Evaluation: one job per trained model, looping over every stressor and severity of the shared plan.


rule evaluate:
    output:
        evaluation="results/{dataset}/{model}/seed{seed}/eval.json",
        predictions="results/{dataset}/{model}/seed{seed}/predictions.h5",
    input:
        model="results/{dataset}/{model}/seed{seed}/model.pt",
        config="results/{dataset}/{model}/seed{seed}/config.json",
        metadata="results/{dataset}/{model}/seed{seed}/metadata.json",
        cache="resources/cache/{dataset}.h5",
        plan="results/{dataset}/stress_plan.h5",
        code=model_sources("evaluate"),
    params:
        checkpoint=subpath(input.model, parent=True),
    wildcard_constraints:
        seed=r"\d+",
    log:
        "logs/{dataset}/{model}/seed{seed}/evaluate.log",
    benchmark:
        "logs/{dataset}/{model}/seed{seed}/evaluate.benchmark.tsv"
    threads: MODEL_JOB_THREADS
    resources:
        **MODEL_JOB_RESOURCES,
        mem_mb=8000,
        runtime=60,
    conda:
        ENV
    shell:
        "rider evaluate --checkpoint {params.checkpoint:q} --cache {input.cache:q} --plan {input.plan:q}"
        " --dataset {wildcards.dataset}"
        " --threads {threads} --out {output.evaluation:q} --predictions {output.predictions:q} > {log} 2>&1"


rule evaluations:
    input:
        expand(
            "results/{dataset}/{model}/seed{seed}/eval.json",
            dataset=run_datasets(),
            model=run_models(),
            seed=config["run"]["seeds"],
        ),
