# Tuning (issue 21): every kind of config.yaml's `tune.kinds` trained once per trial of the declared search (sizes x
# learning-rate factors, rider.train.tune) with the search's seed; the choice per kind by validation MAE. `snakemake
# tune` runs it for every dataset of run.datasets. A dataset trains from a choice when `datasets.<name>.tuned` names
# one: this target's own output (then `all` tunes first), or a copy of it kept with the project.

from rider.train.tune import TuneConfig, find_trial, trial_overrides, trials

TUNE_CHOICE = "results/tuning/{dataset}/choice.json"
TRIAL_FOLDER = "results/tuning/{dataset}/{kind}/{trial}"


def tune_search():
    return TuneConfig(**config["tune"])


def trial_record(dataset, trial):
    """What a trial trains from: the kind's run settings on the dataset (``base``) and what the trial changes."""
    from rider.model import model_kind
    from rider.train.trainer import TrainConfig, run_config

    section = config["datasets"][dataset]
    base = run_config(section, {"kind": trial.kind})
    overrides = trial_overrides(trial, base, model_kind(trial.kind).paper, section["folds"], TrainConfig.lr)
    return {"kind": trial.kind, "trial": trial.name, "base": base, "overrides": overrides}


def trial_spec(dataset, kind, name):
    """A trial's run settings: the kind's on the dataset with the trial's overrides on top, as a run takes a
    choice's (run_config's ``tuned``)."""
    from rider.train.trainer import run_config

    record = trial_record(dataset, find_trial(tune_search(), kind, name))
    return checked_run(run_config(config["datasets"][dataset], {"kind": kind}, record["overrides"]),
                       f"tune trial {name} of {kind} on datasets.{dataset}")


def tuned_file(dataset):
    """The choice a dataset trains from: this workflow's tune output (through its checkpoint, so the runs'
    settings are read once it is written) or a file kept elsewhere; [] for an untuned dataset."""
    path = config["datasets"][dataset]["tuned"]
    if path is None:
        return []
    if os.path.normpath(path) == os.path.normpath(TUNE_CHOICE.format(dataset=dataset)):
        return checkpoints.tune_choose.get(dataset=dataset).output[0]
    return path


rule tune_trial:
    output:
        **{name.split(".")[0]: f"{TRIAL_FOLDER}/{name}" for name in CHECKPOINT_FILES},
    input:
        cache="resources/cache/{dataset}.h5",
        code=lambda wildcards: sources("train", wildcards.kind),
    params:
        spec=lambda wildcards: trial_spec(wildcards.dataset, wildcards.kind, wildcards.trial),
        seed=lambda wildcards: config["tune"]["seed"],
        out_dir=subpath(output.model, parent=True),
    wildcard_constraints:
        kind="|".join(config["tune"]["kinds"]),
        trial=r"(configured|authors)-lr[0-9.e+-]+",
    log:
        "logs/tuning/{dataset}/{kind}/{trial}/train.log",
    benchmark:
        "logs/tuning/{dataset}/{kind}/{trial}/train.benchmark.tsv"
    threads: MODEL_JOB_THREADS
    resources:
        **MODEL_JOB_RESOURCES,
        mem_mb=8000,
        runtime=240,
    conda:
        ENV
    shell:
        "rider train --spec {params.spec:q} --cache {input.cache:q} --dataset {wildcards.dataset} --seed {params.seed}"
        " --threads {threads} --out-dir {params.out_dir:q} > {log} 2>&1"


checkpoint tune_choose:
    output:
        TUNE_CHOICE,
    input:
        metadata=lambda wildcards: [f"{TRIAL_FOLDER}/metadata.json".format(dataset=wildcards.dataset, kind=t.kind,
                                                                           trial=t.name) for t in trials(tune_search())],
    params:
        spec=lambda wildcards: json.dumps({"search": config["tune"],
                                           "trials": [trial_record(wildcards.dataset, t) for t in trials(tune_search())]},
                                          sort_keys=True),
    log:
        "logs/tuning/{dataset}/choose.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        ENV
    shell:
        "rider tune --spec {params.spec:q} --metadata {input.metadata:q} --out {output:q} > {log} 2>&1"


rule tune:
    input:
        expand(TUNE_CHOICE, dataset=run_datasets()),
