# Helpers shared by the stages: config validation and the per-dataset lookups that rules need.

import json
import os
import shlex
import subprocess
from pathlib import Path

from rider.config import validate_config

validate_config(config, Path(workflow.basedir) / "workflow/schemas/config.schema.yaml", source="config")

ENV = "../../envs/rider.yaml"


def visible_gpus():
    """NVIDIA GPUs this host sees (nvidia-smi; none without the driver). Read once, when the workflow is parsed."""
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20, check=True)
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(line.startswith("GPU ") for line in listing.stdout.splitlines())


# Model jobs (train, evaluate, overhead) on a GPU host: one per GPU (`gpu=1` each; the default profile caps `gpu`
# at 1, `--resources gpu=N` lifts it) with 2 CPU threads. On a host without one, they share the cores: one thread
# each, and at most one job per core (the `cpu_jobs` limit, whatever --cores says; `--resources cpu_jobs=N`
# overrides it). The SLURM profile sets both for each of these jobs, as SLURM hands out the GPUs and cores there.
GPUS = visible_gpus()
CPU_CORES = len(os.sched_getaffinity(0))
MODEL_JOB_THREADS = 2 if GPUS else 1
MODEL_JOB_RESOURCES = {"gpu": 1 if GPUS else 0, "cpu_jobs": 0 if GPUS else 1}
if "cpu_jobs" not in workflow.global_resources:
    workflow.register_resource("cpu_jobs", CPU_CORES)

# Snakemake does not watch imported modules: the rider sources each stage runs are declared as its inputs, so
# editing one reruns that stage (DESIGN §1). They are read from the entry modules' imports (rider.sources). A model
# job adds its variant's kind (model_sources): the interface reaches no kind, so editing one kind's module reruns
# the jobs of that kind only, and a new kind reruns nothing.
STAGE_MODULES = {
    "generate": ["rider.data.synthetic"],
    "download": ["rider.data.download"],
    "align": ["rider.data.align"],
    "labels": ["rider.data.segment_labels"],
    "transcribe": ["rider.data.transcripts"],
    "cache": ["rider.data.cache"],
    "pickle": ["rider.data.pickle_source"],
    "plan": ["rider.stress"],
    "train": ["rider.train.trainer"],
    "overhead": ["rider.train.overhead"],
    "parameters": ["rider.model.params"],
    "evaluate": ["rider.evaluate"],
    "report": ["rider.report.build"],
}
RAW_ROLES = ("words", "audio", "vision", "labels")


def sources(stage, *kinds):
    """The rider files a stage runs: its entry modules, the modules of the model kinds it builds, and everything
    those import."""
    from rider.model.registry import kind_module
    from rider.sources import stage_sources

    modules = [*STAGE_MODULES[stage], *(kind_module(kind, workflow.basedir) for kind in kinds)]
    return [str(Path(workflow.basedir) / path) for path in stage_sources(workflow.basedir, *modules)]


def variant_kind(model):
    from rider.model.registry import DEFAULT_KIND

    return config["models"][model].get("kind", DEFAULT_KIND)


def model_sources(stage):
    """An input function: the sources of a stage's job for one model variant (``{model}``), its kind's included."""
    return lambda wildcards: sources(stage, variant_kind(wildcards.model))


def run_datasets():
    unknown = sorted(set(config["run"]["datasets"]) - set(config["datasets"]))
    if unknown:
        raise ValueError(f"config: run.datasets names {unknown}, which are not under datasets")
    return config["run"]["datasets"]


def run_models():
    unknown = sorted(set(config["run"]["models"]) - set(config["models"]))
    if unknown:
        raise ValueError(f"config: run.models names {unknown}, which are not under models")
    return config["run"]["models"]


def checked_run(run, where):
    """``run`` as JSON, checked by building its RunSpec now, so a bad value stops the workflow before any job
    runs, naming ``where``."""
    from rider.train.trainer import RunSpec

    try:
        RunSpec.from_dict(run)
    except (ValueError, TypeError) as err:
        raise ValueError(f"config: {where}: {err}") from None
    return json.dumps(run, sort_keys=True)


def run_spec(dataset, model):
    """A training run's settings (rider.train.trainer.run_config): the kind's sections of the dataset, what
    tuning chose for the kind where the dataset names a choice (datasets.<name>.tuned), the variant's overrides on
    top."""
    from rider.train.trainer import run_config
    from rider.train.tune import read_choice, tuned_overrides

    section, variant = config["datasets"][dataset], config["models"][model]
    tuned = None
    if section["tuned"] is not None:
        kind = variant_kind(model)
        choice = read_choice(tuned_file(dataset))
        tuned = tuned_overrides(choice, kind, run_config(section, {"kind": kind}), section["tuned"])
    return checked_run(run_config(section, variant, tuned), f"datasets.{dataset} with models.{model}")


def spec(dataset, *parts):
    """The parts of a dataset's config section a stage reads, as JSON: the rule's params, so that only a
    change to those parts reruns it (a new learning rate must not regenerate the data)."""
    section = config["datasets"][dataset]
    return json.dumps({part: section[part] for part in parts}, sort_keys=True)


def names_with_source(source):
    """A wildcard constraint matching exactly the datasets of one source (never matching if none)."""
    names = [name for name, section in config["datasets"].items() if section["source"] == source]
    return "|".join(names) if names else "(?!)"


def names_except_source(source):
    """A wildcard constraint matching every dataset but those of one source (never matching if none)."""
    names = [name for name, section in config["datasets"].items() if section["source"] != source]
    return "|".join(names) if names else "(?!)"


def pickle_file(wildcards):
    """The pickle a pickle-source dataset names (read in place)."""
    path = config["datasets"][wildcards.dataset]["pickle"]["path"]
    if path is None:
        raise ValueError(f"config: datasets.{wildcards.dataset}.pickle.path is not set (source pickle)")
    return path


def dataset_roles(dataset):
    """The raw roles a dataset has: words and labels, audio/vision when its modalities name them, and the SDK's
    word vectors when its GloVe features come from them."""
    section = config["datasets"][dataset]
    roles = [role for role in RAW_ROLES if role in ("words", "labels") or role in section["modalities"]]
    return (*roles, "glove_vectors") if section["glove_vectors"] else tuple(roles)


def transcripts_config(dataset):
    from rider.data.transcripts import TranscriptsConfig

    return TranscriptsConfig(**config["datasets"][dataset]["transcripts"])


def shared_files(wildcards):
    """The genuine files of a transcripts source, read in place from the shared folder (never copied)."""
    from rider.data.transcripts import source_files

    files = source_files(transcripts_config(wildcards.dataset), workflow.basedir)
    return {name: str(path) for name, path in files.items()}


def names_with_labels_from_table():
    """A wildcard constraint matching the transcripts datasets whose labels the labels stage writes (MOSEI)."""
    from rider.data.transcripts import labels_from_table

    names = [name for name, section in config["datasets"].items()
             if section["source"] == "transcripts" and labels_from_table(transcripts_config(name))]
    return "|".join(names) if names else "(?!)"


def transcript_files(wildcards):
    """The label .csd and transcript table the transcribe stage reads: MOSI's genuine files where they lie, or
    what the labels stage writes from MOSEI's segment table."""
    from rider.data.transcripts import labels_from_table

    if labels_from_table(transcripts_config(wildcards.dataset)):
        folder = f"resources/raw/{wildcards.dataset}"
        return {"labels": f"{folder}/labels.csd", "segments": f"{folder}/transcripts.csv"}
    return shared_files(wildcards)


def raw_files(wildcards):
    """The raw .csd of each role the dataset has: generated or downloaded under resources/raw, in the user's
    folder, or (transcripts) the words built here and the genuine label file where it lies."""
    section = config["datasets"][wildcards.dataset]
    roles = dataset_roles(wildcards.dataset)
    if section["glove_vectors"] and section["source"] not in ("cmu", "local"):
        raise ValueError(f"config: datasets.{wildcards.dataset}.glove_vectors needs source cmu or local (the SDK's "
                         f"word-vector file), not {section['source']}")
    if section["source"] == "local":
        folder = section["local"]["folder"]
        if folder is None:
            raise ValueError(f"config: datasets.{wildcards.dataset}.local.folder is not set")
        return {role: str(Path(folder) / section["local"]["files"][role]) for role in roles}
    if section["source"] == "transcripts":
        if roles != ("words", "labels"):
            raise ValueError(f"config: datasets.{wildcards.dataset}: source transcripts has text only; "
                             "set modalities: [text]")
        words = f"resources/raw/{wildcards.dataset}/words.csd"
        return {"words": words, "labels": transcript_files(wildcards)["labels"]}
    return {role: f"resources/raw/{wildcards.dataset}/{role}.csd" for role in roles}


def glove_file(wildcards):
    """The GloVe-format file, or nothing when the text comes from a text encoder alone."""
    section = config["datasets"][wildcards.dataset]
    if section["source"] == "synthetic":
        return f"resources/raw/{wildcards.dataset}/glove.txt"
    if section["glove_vectors"]:
        return []
    if section["glove_file"] is None:
        if section["text_encoder"]["model"] is not None:
            return []
        raise ValueError(f"config: datasets.{wildcards.dataset}.glove_file is required for source {section['source']}"
                         " unless text_encoder.model is set")
    return section["glove_file"]


def latents_file(wildcards):
    """Ground-truth latents exist for synthetic data only."""
    if config["datasets"][wildcards.dataset]["source"] == "synthetic":
        return {"latents": f"resources/raw/{wildcards.dataset}/latents.h5"}
    return {}
