# The stress plan: every stressor x severity drawn once per dataset, shared by every model (App. C.2).


rule plan:
    output:
        "results/{dataset}/stress_plan.h5",
    input:
        cache="resources/cache/{dataset}.h5",
        code=sources("plan"),
    params:
        spec=json.dumps(config["stress"], sort_keys=True),
    log:
        "logs/{dataset}/plan.log",
    benchmark:
        "logs/{dataset}/plan.benchmark.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    conda:
        ENV
    shell:
        "rider plan --spec {params.spec:q} --cache {input.cache:q} --dataset {wildcards.dataset}"
        " --out {output:q} > {log} 2>&1"
