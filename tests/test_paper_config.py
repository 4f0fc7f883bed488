"""configs/paper.yaml on top of config.yaml (merged as Snakemake merges them) trains every model kind at its
authors' published sizes: the same sizes its ``PAPER`` entry holds, from which Table 6 and the faithfulness
counts are built."""

import copy
import dataclasses

import pytest
import yaml
from snakemake.utils import update_config

from rider.config import validate_config
from rider.model import MODEL_KINDS
from rider.train.trainer import RunSpec, run_config

from conftest import REPO

SCHEMA = REPO / "workflow/schemas/config.schema.yaml"
DATA_DIMS = ("text_dim", "audio_dim", "vision_dim", "max_len")  # set from the cache by the trainer
PAPER_OF = {"synth_mosi": "mosi", "mosi": "mosi", "synth_mosei": "mosei", "mosei": "mosei"}


@pytest.fixture(scope="module")
def paper_config():
    config = copy.deepcopy(yaml.safe_load((REPO / "config.yaml").read_text()))
    update_config(config, yaml.safe_load((REPO / "configs/paper.yaml").read_text()))
    return validate_config(config, SCHEMA)


def trained_kinds(config):
    return sorted({config["models"][m].get("kind", "rider_moe") for m in config["run"]["models"]})


@pytest.mark.parametrize("dataset", sorted(PAPER_OF))
def test_every_trained_kind_runs_at_its_authors_sizes(paper_config, dataset):
    kinds = trained_kinds(paper_config)
    assert len(kinds) > 2  # RIDER-MoE and baselines
    for kind in kinds:
        spec = RunSpec.from_dict(run_config(paper_config["datasets"][dataset], {"kind": kind}))
        expected = MODEL_KINDS[kind].paper[PAPER_OF[dataset]]
        strip = {name: getattr(expected, name) for name in DATA_DIMS}
        assert dataclasses.replace(spec.model, **strip) == expected, (dataset, kind)
