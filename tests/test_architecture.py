"""The house's import rules, read from the source (as keras-hub's import tests do): the core never reaches up into
export or serving, networks know nothing of how they are trained, no module imports the whole package, and the
heavy optional converters and runtimes are imported only inside the functions that use them."""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
# The installed package `keras_gen` maps these folders (pyproject.toml's package-dir).
PACKAGES = {"keras_gen": ROOT / "keras_gen", "keras_gen.export": ROOT / "export", "keras_gen.serving": ROOT / "serving"}
HEAVY = ("tf2onnx", "onnxruntime", "onnx", "ai_edge_litert", "grpc", "tensorflow_serving")


def _modules():
    """``{dotted module name: path}`` of every module of the package."""
    found = {}
    for package, folder in PACKAGES.items():
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            name = ".".join((package, *parts))
            if package == "keras_gen" and parts and parts[0] in ("export", "serving"):
                continue
            found[name] = path
    return found


def _imports(path):
    """``[(imported name, top_level)]`` of a file: ``import a.b`` gives ``a.b``, ``from a import b`` gives ``a.b``;
    ``top_level`` is True for imports that run when the module is imported (not inside a function)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    inside = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            inside.update(id(child) for child in ast.walk(node) if child is not node)
    found = []
    for node in ast.walk(tree):
        top = id(node) not in inside
        if isinstance(node, ast.Import):
            found += [(alias.name, top) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found += [(f"{node.module}.{alias.name}", top) for alias in node.names]
    return found


def _under(name, prefix):
    return name == prefix or name.startswith(prefix + ".")


MODULES = _modules()
CORE = {name: path for name, path in MODULES.items()
        if not _under(name, "keras_gen.export") and not _under(name, "keras_gen.serving") and name != "keras_gen.cli"}


def test_the_package_has_the_modules_this_test_reads():
    assert {"keras_gen.models.gan", "keras_gen.export.adapters", "keras_gen.serving.service", "keras_gen.cli"} <= set(
        MODULES
    )


@pytest.mark.parametrize("name", sorted(CORE))
def test_the_core_never_imports_export_or_serving(name):
    """Only the command line (keras_gen.cli) may reach up into keras_gen.export and keras_gen.serving."""
    upward = [m for m, _ in _imports(CORE[name]) if _under(m, "keras_gen.export") or _under(m, "keras_gen.serving")]
    assert not upward, f"{name} imports {upward}"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_imports_the_whole_package(name):
    """``import keras_gen`` inside the package hides what a module needs (and imports everything)."""
    assert "keras_gen" not in [m for m, _ in _imports(MODULES[name])], f"{name} imports keras_gen"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if _under(n, "keras_gen.networks")))
def test_networks_know_nothing_of_training(name):
    banned = ("keras_gen.losses", "keras_gen.models", "keras_gen.metrics", "keras_gen.runs", "keras_gen.presets")
    bad = [m for m, _ in _imports(MODULES[name]) if any(_under(m, b) for b in banned)]
    assert not bad, f"{name} imports {bad}"


def test_losses_are_plain_math():
    bad = [m for m, _ in _imports(MODULES["keras_gen.losses"]) if _under(m, "keras_gen") and m != "keras_gen.rng"]
    assert not bad, bad


@pytest.mark.parametrize("name", sorted(MODULES))
def test_heavy_runtimes_are_imported_inside_functions(name):
    eager = [m for m, top in _imports(MODULES[name]) if top and any(_under(m, h) for h in HEAVY)]
    assert not eager, f"{name} imports {eager} when it is imported"


def test_export_never_imports_serving():
    bad = [(n, m) for n in MODULES if _under(n, "keras_gen.export") for m, _ in _imports(MODULES[n])
           if _under(m, "keras_gen.serving")]
    assert not bad, bad
