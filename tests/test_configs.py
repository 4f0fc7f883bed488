"""config.yaml and every file of configs/ (merged over it as Snakemake merges them) are valid, and each dataset that
trains from a kept tuning choice has one made by the declared search from its present settings, for every kind it
trains: otherwise `snakemake all` would stop before its first job."""

import copy

import pytest
import yaml
from snakemake.utils import update_config

from rider.config import validate_config
from rider.train.trainer import RunSpec, run_config
from rider.train.tune import read_choice, trials, tuned_overrides, TuneConfig

from conftest import REPO

SCHEMA = REPO / "workflow/schemas/config.schema.yaml"
LAYERS = [None, *sorted(path.name for path in (REPO / "configs").glob("*.yaml"))]


def merged(layer):
    config = copy.deepcopy(yaml.safe_load((REPO / "config.yaml").read_text()))
    if layer is not None:
        update_config(config, yaml.safe_load((REPO / "configs" / layer).read_text()))
    return validate_config(config, SCHEMA)


@pytest.mark.parametrize("layer", LAYERS, ids=[layer or "config.yaml" for layer in LAYERS])
def test_every_run_trains_from_a_choice_of_the_declared_search_or_as_configured(layer):
    config = merged(layer)
    for name in config["run"]["datasets"]:
        section = config["datasets"][name]
        kinds = {config["models"][m].get("kind", "rider_moe") for m in config["run"]["models"]}
        choice = None
        if section["tuned"] is not None:
            assert not section["tuned"].startswith("results/"), "a kept choice is checked here; results/ is tuned by the run"
            choice = read_choice(REPO / section["tuned"])
            search = TuneConfig(**config["tune"])
            assert choice["search"] == {"kinds": list(search.kinds), "seed": search.seed, "sizes": list(search.sizes),
                                        "lr_factors": list(search.lr_factors)}
            assert [(row["kind"], row["trial"]) for row in choice["trials"]] == [(t.kind, t.name) for t in trials(search)]
        for model in config["run"]["models"]:
            variant = config["models"][model]
            kind = variant.get("kind", "rider_moe")
            tuned = None if choice is None else tuned_overrides(choice, kind, run_config(section, {"kind": kind}),
                                                                 section["tuned"])
            RunSpec.from_dict(run_config(section, variant, tuned))
        if choice is not None:
            assert kinds <= set(choice["chosen"])


def test_the_default_run_trains_three_seeds_of_every_baseline_at_one_epoch_cap_and_patience():
    config = merged(None)
    assert len(config["run"]["seeds"]) >= 3
    section = config["datasets"]["synth_mosi"]
    for model in config["run"]["models"]:
        train = run_config(section, config["models"][model])["train"]
        assert (train["epochs"], train["patience"]) == (section["train"]["epochs"], section["train"]["patience"]), model
