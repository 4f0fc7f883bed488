"""The sources a rule declares are the ones its stage runs: read from the imports, checked against real imports."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rider.model.registry import kind_module, kind_names
from rider.sources import stage_sources

ROOT = Path(__file__).resolve().parents[1]
ENTRIES = ["rider.data.synthetic", "rider.data.download", "rider.data.align", "rider.data.transcripts",
           "rider.data.cache", "rider.data.pickle_source", "rider.stress", "rider.train.trainer", "rider.evaluate",
           "rider.report.build", *(kind_module(kind) for kind in kind_names())]


# Each entry imported afresh in one interpreter: the rider modules are dropped between entries (the third-party
# ones, torch above all, stay, so the whole list costs one start-up).
LOADER = """
import importlib, json, sys
loaded = {}
for entry in sys.argv[1:]:
    for name in [m for m in sys.modules if m.split('.')[0] == 'rider']:
        del sys.modules[name]
    importlib.import_module(entry)
    loaded[entry] = sorted(m for m in sys.modules if m.split('.')[0] == 'rider')
print(json.dumps(loaded))
"""


@pytest.fixture(scope="module")
def loaded_by_entry() -> dict[str, list[str]]:
    result = subprocess.run([sys.executable, "-c", LOADER, *ENTRIES], cwd=ROOT, check=True, capture_output=True,
                            text=True)
    return json.loads(result.stdout)


@pytest.mark.parametrize("entry", ENTRIES)
def test_every_module_a_stage_imports_is_declared(entry, loaded_by_entry):
    files = {str(Path(*name.split(".")).with_suffix(".py")) if (ROOT / Path(*name.split(".")).with_suffix(".py")).exists()
             else str(Path(*name.split(".")) / "__init__.py") for name in loaded_by_entry[entry]}
    assert files <= set(stage_sources(ROOT, entry))


@pytest.mark.parametrize("stage", ["rider.train.trainer", "rider.evaluate", "rider.train.overhead"])
def test_a_model_stage_reaches_no_kind_by_itself(stage):
    # A model job adds its own kind's sources (workflow/rules/common.smk, model_sources): one kind's edit reruns
    # that kind's jobs only.
    kinds = [path for path in stage_sources(ROOT, stage)
             if path.startswith(("rider/model/rider_moe/", "rider/model/baselines/")) and not path.endswith("__init__.py")]
    assert kinds == []


def test_a_kind_reaches_the_interface_and_its_own_modules_only():
    mult = stage_sources(ROOT, kind_module("mult"))
    assert "rider/model/baselines/mult.py" in mult and "rider/model/crossmodal.py" in mult
    assert not any(path.startswith("rider/model/rider_moe/") or path.endswith(("tfn.py", "dmd.py")) for path in mult)


def test_the_trainer_is_not_a_source_of_evaluation():
    # Evaluation must not import a sibling stage: data loading and the device live below both.
    assert "rider/train/trainer.py" not in stage_sources(ROOT, "rider.evaluate")
    assert "rider/data/split.py" in stage_sources(ROOT, "rider.evaluate")


def test_relative_function_level_and_from_package_imports(tmp_path):
    package = tmp_path / "rider"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("from .leaf import thing\n")
    (package / "sub" / "leaf.py").write_text("thing = 1\n")
    (package / "lazy.py").write_text("")
    (package / "unused.py").write_text("")
    (package / "entry.py").write_text("from rider import sub\n\ndef run():\n    import rider.lazy\n")
    assert stage_sources(tmp_path, "rider.entry") == [
        "rider/__init__.py", "rider/entry.py", "rider/lazy.py", "rider/sub/__init__.py", "rider/sub/leaf.py"]
    with pytest.raises(ValueError, match="no module"):
        stage_sources(tmp_path, "rider.missing")
