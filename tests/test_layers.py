"""Every arrow points down: no module of rider imports from a higher layer (rider.layers.LAYERS), none imports
another in a circle, and every module sits in a layer."""

from pathlib import Path

from rider.layers import LAYERS, layer_of, layer_violations
from rider.sources import direct_imports, import_graph

ROOT = Path(__file__).resolve().parents[1]


def test_the_package_keeps_its_layers():
    assert layer_violations(ROOT) == []


def test_every_module_is_in_a_layer():
    for module in import_graph(ROOT):
        layer_of(module)  # raises for a module no layer names


def test_the_stages_sit_in_the_order_of_the_data_flow():
    order = [name for name, _ in LAYERS]
    assert order.index("data") < order.index("stress") < order.index("model interface") < order.index("models") \
        < order.index("training") < order.index("evaluation") < order.index("report") < order.index("command line")
    assert layer_of("rider.model.baselines.mult") == order.index("models")
    assert layer_of("rider.model.kind") == order.index("model interface")


def write_package(root: Path, files: dict[str, str]) -> None:
    for name, text in {"rider/__init__.py": "", **files}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def test_an_upward_import_is_named(tmp_path):
    write_package(tmp_path, {"rider/data/__init__.py": "", "rider/data/cache.py": "",
                             "rider/h5.py": "def f():\n    from rider.data.cache import thing\n"})
    assert layer_violations(tmp_path) == ["rider.h5 (foundation) imports rider.data.cache (data), a higher layer"]


def test_an_import_circle_is_named(tmp_path):
    write_package(tmp_path, {"rider/data/__init__.py": "", "rider/data/a.py": "from rider.data import b\n",
                             "rider/data/b.py": "from . import c\n", "rider/data/c.py": "import rider.data.a\n"})
    assert layer_violations(tmp_path) == ["import circle: rider.data.a -> rider.data.b -> rider.data.c -> rider.data.a"]


def test_imports_resolve_to_the_module_they_name(tmp_path):
    write_package(tmp_path, {"rider/model/__init__.py": "def build():\n    pass\n", "rider/model/kind.py": "",
                             "rider/train.py": "from rider.model import build, kind\nimport numpy\n"})
    assert direct_imports(tmp_path, tmp_path / "rider/train.py") == {"rider.model", "rider.model.kind"}
