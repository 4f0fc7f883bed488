"""Which runs a report covers: run.models, the Table 4/5 sweeps with report.sweeps = full, and the checks."""

import copy
import json
from pathlib import Path

import pytest

from rider.config import ConfigError, load_config, validate_config
from rider.report.spec import ReportSpec, overhead_run, report_models, run_kinds, spec_from_config

from conftest import REPO

SCHEMA = REPO / "workflow/schemas/config.schema.yaml"
EVAL = "results/{dataset}/{model}/seed{seed}/eval.json"
PREDICTIONS = "results/{dataset}/{model}/seed{seed}/predictions.h5"


@pytest.fixture(scope="module")
def repo_config():
    return load_config(REPO / "config.yaml", SCHEMA)


def test_reduced_sweep_reports_what_run_models_trains(repo_config):
    assert repo_config["report"]["sweeps"] == "reduced"
    assert report_models(repo_config) == repo_config["run"]["models"]


def test_full_sweep_adds_every_listed_variant_once(repo_config):
    config = copy.deepcopy(repo_config)
    config["report"]["sweeps"] = "full"
    models = report_models(config)
    assert models[:len(config["run"]["models"])] == config["run"]["models"]
    assert models[len(config["run"]["models"]):] == [
        "no_prior", "no_consensus", "no_pid", "no_syn", "no_syn_off", "no_syn_res",  # Table 3's rows not in run.models
        "prior_025", "prior_050", "prior_075", "prior_150", "prior_200", "dir_001", "dir_003", "dir_008", "dir_010",
        "pid002_syn005", "pid005_syn002", "pid002_syn008", "pid008_syn002",
        "corrupt_train", "abs_reliability", "prior_std", "all_remedies"]  # the remedies table's rows too
    assert len(models) == len(set(models)) == 37  # RIDER-MoE, nine ablations, ten baselines, 13 sweeps, 4 remedies


def test_spec_from_config_runs_labels_and_paper_counterparts(repo_config):
    spec = ReportSpec.from_json(json.dumps(spec_from_config(repo_config, EVAL), sort_keys=True))
    # RIDER-MoE, three ablations and ten baselines, three seeds each
    assert len(spec.runs) == len(repo_config["run"]["models"]) * 3 == 14 * 3
    assert spec.runs[0].eval.as_posix() == "results/synth_mosi/rider_moe/seed0/eval.json"
    assert list(spec.models) == repo_config["run"]["models"]  # the order survives sorted JSON keys
    assert spec.models["no_dir"] == "w/o DIR (λ_PID = λ_syn = 0)"
    assert spec.paper == {"synth_mosi": "mosi"}
    assert spec.rows("prior_sweep") == ("rider_moe",)  # the reduced sweep: what run.models trains
    assert spec.rows("ablations") == ("rider_moe", "no_dir", "no_masked_views", "single_expert")
    assert overhead_run(repo_config, "synth_mosi", "results/{dataset}/{model}/seed{seed}/config.json") == \
        "results/synth_mosi/rider_moe/seed0/config.json"
    assert run_kinds(repo_config)[0] == "rider_moe"
    measured = spec_from_config(repo_config, EVAL, overhead_path="r/{dataset}/overhead.json", parameters_path="p.json")
    spec = ReportSpec.from_json(json.dumps(measured))
    assert spec.overhead == {"synth_mosi": Path("r/synth_mosi/overhead.json")} and spec.parameters == Path("p.json")
    assert spec.tuning == {}  # only the tables read the tuning choice
    spec = ReportSpec.from_json(json.dumps(spec_from_config(repo_config, EVAL, tuning=True)))
    assert spec.tuning == {"synth_mosi": Path("resources/tuning/synth_mosi.json")}


def test_the_tables_bootstrap_names_every_predictions_file(repo_config):
    spec = ReportSpec.from_json(json.dumps(spec_from_config(repo_config, EVAL, PREDICTIONS)))
    assert (spec.significance.test, spec.significance.resamples, spec.significance.seed) == ("bootstrap", 1000, 0)
    assert spec.runs[1].predictions.as_posix() == "results/synth_mosi/rider_moe/seed1/predictions.h5"
    # The figures mark nothing: their spec holds neither predictions nor significance settings.
    figures = spec_from_config(repo_config, EVAL)
    assert "significance" not in figures and all("predictions" not in run for run in figures["runs"])
    t_test = copy.deepcopy(repo_config)
    t_test["report"]["significance_test"] = "t_test"
    spec = ReportSpec.from_dict(spec_from_config(t_test, EVAL, PREDICTIONS))
    assert spec.significance.test == "t_test" and all(run.predictions is None for run in spec.runs)


def test_a_bootstrap_without_predictions_is_refused(repo_config):
    values = spec_from_config(repo_config, EVAL, PREDICTIONS)
    del values["runs"][4]["predictions"]
    with pytest.raises(ValueError, match=r"needs every run's predictions; none given for \['results/synth_mosi/"
                                         r"no_dir/seed1/eval.json'\]"):
        ReportSpec.from_dict(values)
    values = spec_from_config(repo_config, EVAL, PREDICTIONS)
    values["significance"]["test"] = "wilcoxon"
    with pytest.raises(ValueError, match="significance test 'wilcoxon'"):
        ReportSpec.from_dict(values)


def test_minimal_config_reports_rider_moe():
    config = validate_config({"datasets": {"toy": {"source": "synthetic"}}}, SCHEMA)
    assert config["report"] == {"reference": "rider_moe", "alpha": 0.05, "significance_test": "bootstrap",
                                "bootstrap_resamples": 1000, "bootstrap_seed": 0, "sweeps": "reduced",
                                "baselines": [], "routing_models": [], "chain_models": [], "ablations": [],
                                "prior_sweep": [], "dir_sweep": [], "remedies": []}
    assert report_models(config) == ["rider_moe"]


@pytest.mark.parametrize("report, message", [
    ({"ablations": ["rider_moe", "no_piror"]}, r"report names \['no_piror'\], which are not under models"),
    ({"reference": "no_dir"}, r"report names \['no_dir'\]"),
    ({"chain_models": ["remedy_al"]}, r"report names \['remedy_al'\]"),
])
def test_unknown_names_are_refused(report, message):
    config = validate_config({"datasets": {"toy": {"source": "synthetic"}}, "report": report}, SCHEMA)
    with pytest.raises(ValueError, match=message):
        report_models(config)


def test_reference_must_be_trained():
    config = validate_config({"datasets": {"toy": {"source": "synthetic"}},
                              "models": {"rider_moe": {}, "no_dir": {"loss": {"lambda_pid": 0.0}}},
                              "report": {"reference": "no_dir"}}, SCHEMA)
    with pytest.raises(ValueError, match="report.reference 'no_dir' is not trained"):
        report_models(config)


def test_bad_report_values_are_named():
    with pytest.raises(ConfigError, match=r"'report.sweeps' = \"all\""):
        validate_config({"datasets": {"toy": {"source": "synthetic"}}, "report": {"sweeps": "all"}}, SCHEMA)
    with pytest.raises(ConfigError, match=r"'report.alpha' = 1.5"):
        validate_config({"datasets": {"toy": {"source": "synthetic"}}, "report": {"alpha": 1.5}}, SCHEMA)


def test_spec_checks_itself(tmp_path):
    run = {"dataset": "d", "model": "m", "seed": 0, "eval": "e.json"}
    with pytest.raises(ValueError, match="no evaluations"):
        ReportSpec.from_dict({"runs": [], "models": []})
    with pytest.raises(ValueError, match=r"runs of model\(s\) \['m'\]"):
        ReportSpec.from_dict({"runs": [run], "models": [["rider_moe", "R"]]})
    with pytest.raises(ValueError, match="reference model 'rider_moe' is not among"):
        ReportSpec.from_dict({"runs": [run], "models": [["m", "M"]]})
    with pytest.raises(ValueError, match=r"paper dataset\(s\) \['iemocap'\]"):
        ReportSpec.from_dict({"runs": [run], "models": [["m", "M"]], "reference": "m", "paper": {"d": "iemocap"}})
