# Report: the paper's Tables 1-6, Figures 3-5 and the App. D overhead from every evaluation, mean ± std over seeds,
# with the published numbers beside them; `snakemake --report report.html` gathers them into one HTML file.
# Which variants and runs: rider.report.spec (report.sweeps = full adds the Table 4/5 sweeps to the trained set).

from rider.report.layout import FIGURE_FORMATS, FIGURES, OVERHEAD_TABLE, OVERHEAD_TITLE, TABLE_FORMATS, TABLES
from rider.report.spec import eval_files, overhead_files, overhead_from_config, prediction_files, spec_from_config


report: "../report/workflow.rst"


# What to report comes from the config through rider.report.spec; the rules ask for it in input functions, so
# a config whose report section does not fit (say, an untrained reference) fails only when a report is built.
EVAL_PATH = "results/{dataset}/{model}/seed{seed}/eval.json"
PREDICTIONS_PATH = "results/{dataset}/{model}/seed{seed}/predictions.h5"  # read by the tables' bootstrap test
OVERHEAD_PATHS = {"config_path": "results/{dataset}/{model}/seed{seed}/config.json",
                  "cache_path": "resources/cache/{dataset}.h5"}
# The paper's published numbers ship with the repository (resources/paper/), whatever the working directory.
PAPER_FILES = {
    "paper": str(Path(workflow.basedir) / "resources/paper/rider_moe_published.csv"),
    "paper_cost": str(Path(workflow.basedir) / "resources/paper/rider_moe_published_cost.csv"),
}


rule tables:
    output:
        **{
            f"{name}_{fmt}": report(
                f"results/tables/{name}.{fmt}",
                caption=f"../report/{name}.rst",
                category="Tables",
                subcategory=title,
                labels={"table": title.split(":")[0], "format": fmt},
            )
            for name, title in TABLES.items()
            for fmt in TABLE_FORMATS
        },
    input:
        evals=lambda wildcards: eval_files(config, EVAL_PATH),
        predictions=lambda wildcards: prediction_files(config, EVAL_PATH, PREDICTIONS_PATH),
        **PAPER_FILES,
        code=sources("report"),
    params:
        spec=lambda wildcards: json.dumps(spec_from_config(config, EVAL_PATH, PREDICTIONS_PATH), sort_keys=True),
        out_dir=subpath(output[0], parent=True),
    log:
        "logs/report/tables.log",
    benchmark:
        "logs/report/tables.benchmark.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    conda:
        ENV
    shell:
        "rider report tables --spec {params.spec:q} --paper {input.paper:q} --paper-cost {input.paper_cost:q}"
        " --out-dir {params.out_dir:q} > {log} 2>&1"


rule figures:
    output:
        **{
            f"{name}_{fmt}": (
                report(
                    f"results/figures/{name}.{fmt}",
                    caption=f"../report/{name}.rst",
                    category="Figures",
                    labels={"figure": title.split(":")[0]},
                )
                if fmt == "png"
                else f"results/figures/{name}.{fmt}"
            )
            for name, title in FIGURES.items()
            for fmt in FIGURE_FORMATS
        },
    input:
        evals=lambda wildcards: eval_files(config, EVAL_PATH),
        code=sources("report"),
    params:
        spec=lambda wildcards: json.dumps(spec_from_config(config, EVAL_PATH), sort_keys=True),
        out_dir=subpath(output[0], parent=True),
    log:
        "logs/report/figures.log",
    benchmark:
        "logs/report/figures.benchmark.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    conda:
        ENV
    shell:
        "rider report figures --spec {params.spec:q} --out-dir {params.out_dir:q} > {log} 2>&1"


# App. D on this run: a few training steps of the reference variant's configuration, single view against four
# views. It claims the GPU (gpu=1, capped by the profile) so that no training or evaluation job runs beside it.
rule overhead:
    output:
        **{
            f"{OVERHEAD_TABLE}_{fmt}": report(
                f"results/tables/{OVERHEAD_TABLE}.{fmt}",
                caption=f"../report/{OVERHEAD_TABLE}.rst",
                category="Tables",
                subcategory=OVERHEAD_TITLE,
                labels={"table": "Appendix D", "format": fmt},
            )
            for fmt in TABLE_FORMATS
        },
    input:
        unpack(lambda wildcards: overhead_files(config, **OVERHEAD_PATHS)),
        paper_cost=PAPER_FILES["paper_cost"],
        code=sources("report"),
    params:
        spec=lambda wildcards: json.dumps(overhead_from_config(config, **OVERHEAD_PATHS), sort_keys=True),
        out_dir=subpath(output[0], parent=True),
    log:
        "logs/report/overhead.log",
    benchmark:
        "logs/report/overhead.benchmark.tsv"
    threads: 2
    resources:
        gpu=1,
        mem_mb=4000,
        runtime=20,
    conda:
        ENV
    shell:
        "rider report overhead --spec {params.spec:q} --paper-cost {input.paper_cost:q} --threads {threads}"
        " --out-dir {params.out_dir:q} > {log} 2>&1"


rule report:
    input:
        rules.tables.output,
        rules.figures.output,
        rules.overhead.output,
