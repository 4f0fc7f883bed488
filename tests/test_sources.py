"""The sources a rule declares are the ones its stage runs: read from the imports, checked against real imports."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rider.sources import stage_sources

ROOT = Path(__file__).resolve().parents[1]
ENTRIES = ["rider.data.synthetic", "rider.data.download", "rider.data.align", "rider.data.transcripts",
           "rider.data.cache", "rider.data.pickle_source", "rider.stress", "rider.train.trainer", "rider.evaluate",
           "rider.report.build"]


@pytest.mark.parametrize("entry", ENTRIES)
def test_every_module_a_stage_imports_is_declared(entry):
    code = f"import sys, json, {entry}; print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'rider')))"
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True,
                                       text=True).stdout)
    files = {str(Path(*name.split(".")).with_suffix(".py")) if (ROOT / Path(*name.split(".")).with_suffix(".py")).exists()
             else str(Path(*name.split(".")) / "__init__.py") for name in loaded}
    assert files <= set(stage_sources(ROOT, entry))


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
