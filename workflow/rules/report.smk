# Report: the paper's Tables 1-6, Figures 3-5 and the App. D overhead from every evaluation, mean ± std over seeds,
# with the published numbers beside them; `snakemake --report report.html` gathers them into one HTML file.
# Which variants and runs: rider.report.spec (report.sweeps = full adds the Table 4/5 sweeps to the trained set).

from rider.report.layout import FIGURE_FORMATS, FIGURES, OVERHEAD_TABLE, OVERHEAD_TITLE, TABLE_FORMATS, TABLES
from rider.report.spec import eval_files, overhead_run, prediction_files, run_kinds, spec_from_config


report: "../report/workflow.rst"


# What to report comes from the config through rider.report.spec; the rules ask for it in input functions, so
# a config whose report section does not fit (say, an untrained reference) fails only when a report is built.
EVAL_PATH = "results/{dataset}/{model}/seed{seed}/eval.json"
PREDICTIONS_PATH = "results/{dataset}/{model}/seed{seed}/predictions.h5"  # read by the tables' bootstrap test
# What stages of their own measured for the tables: App. D's timings and the counts at the published sizes.
MEASURED = {"overhead_path": "results/{dataset}/overhead.json", "parameters_path": "results/parameters.json"}
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
            for name, title in {**TABLES, OVERHEAD_TABLE: OVERHEAD_TITLE}.items()
            for fmt in TABLE_FORMATS
        },
    input:
        evals=lambda wildcards: eval_files(config, EVAL_PATH),
        predictions=lambda wildcards: prediction_files(config, EVAL_PATH, PREDICTIONS_PATH),
        overhead=expand(MEASURED["overhead_path"], dataset=run_datasets()),
        parameters=MEASURED["parameters_path"],
        tuning=lambda wildcards: [tuned_file(dataset) for dataset in run_datasets() if config["datasets"][dataset]["tuned"]],
        **PAPER_FILES,
        code=sources("report"),
    params:
        spec=lambda wildcards: json.dumps(spec_from_config(config, EVAL_PATH, PREDICTIONS_PATH, **MEASURED,
                                                           tuning=True), sort_keys=True),
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


rule report:
    input:
        rules.tables.output,
        rules.figures.output,
