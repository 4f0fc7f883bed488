# Helpers shared by the stages: config validation and the per-dataset lookups that rules need.

import json
from pathlib import Path

from rider.config import validate_config

validate_config(config, Path(workflow.basedir) / "workflow/schemas/config.schema.yaml", source="config")

ENV = "../../envs/rider.yaml"

# Snakemake does not watch imported modules: the rider sources each stage runs are declared as its inputs,
# so editing one reruns that stage (DESIGN §1).
STAGE_SOURCES = {
    "generate": ["rider/data/synthetic.py", "rider/data/csd.py", "rider/data/glove.py", "rider/data/folds.py"],
    "download": ["rider/data/download.py", "rider/data/csd.py"],
    "align": ["rider/data/align.py", "rider/data/csd.py"],
    "cache": ["rider/data/cache.py", "rider/data/glove.py", "rider/data/folds.py"],
}
RAW_ROLES = ("words", "audio", "vision", "labels")


def sources(stage):
    return [str(Path(workflow.basedir) / path) for path in STAGE_SOURCES[stage]]


def run_datasets():
    unknown = sorted(set(config["run"]["datasets"]) - set(config["datasets"]))
    if unknown:
        raise ValueError(f"config: run.datasets names {unknown}, which are not under datasets")
    return config["run"]["datasets"]


def spec(dataset):
    """The dataset's config section as JSON: a rule's params, so only a change to it reruns the rule."""
    return json.dumps(config["datasets"][dataset], sort_keys=True)


def names_with_source(source):
    """A wildcard constraint matching exactly the datasets of one source (never matching if none)."""
    names = [name for name, section in config["datasets"].items() if section["source"] == source]
    return "|".join(names) if names else "(?!)"


def raw_files(wildcards):
    """The raw .csd of each role: generated or downloaded under resources/raw, or in the user's folder."""
    section = config["datasets"][wildcards.dataset]
    if section["source"] == "local":
        folder = section["local"]["folder"]
        if folder is None:
            raise ValueError(f"config: datasets.{wildcards.dataset}.local.folder is not set")
        return {role: str(Path(folder) / section["local"]["files"][role]) for role in RAW_ROLES}
    return {role: f"resources/raw/{wildcards.dataset}/{role}.csd" for role in RAW_ROLES}


def glove_file(wildcards):
    section = config["datasets"][wildcards.dataset]
    if section["source"] == "synthetic":
        return f"resources/raw/{wildcards.dataset}/glove.txt"
    if section["glove_file"] is None:
        raise ValueError(f"config: datasets.{wildcards.dataset}.glove_file is required for source {section['source']}")
    return section["glove_file"]


def latents_file(wildcards):
    """Ground-truth latents exist for synthetic data only."""
    if config["datasets"][wildcards.dataset]["source"] == "synthetic":
        return {"latents": f"resources/raw/{wildcards.dataset}/latents.h5"}
    return {}
