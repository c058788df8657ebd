"""The notebooks in notebooks/ run top to bottom without errors (nbclient), so they cannot rot.

Each runs in a fresh temporary working directory on a kernel of *this* interpreter: a ``python3`` kernelspec
written to a temporary folder, whose ``argv`` is ``sys.executable -m ipykernel_launcher``, so whatever other
kernels a machine has installed (a user's ``~/.local/share/jupyter``, a system Jupyter) are never picked up.
The notebooks are committed without outputs; `test_notebooks_are_committed_clean` keeps it that way.
"""

import json
import pathlib
import sys

import ipykernel  # noqa: F401 - the kernel the notebooks run in (a dev dependency: a missing one must fail)
import nbclient
import nbformat
import pytest

NOTEBOOK_DIR = pathlib.Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
CELL_TIMEOUT = 600  # seconds per cell; the whole notebooks take a few minutes each on 2 busy cores


def _kernel_manager(kernel_root):
    """A KernelManager for a ``python3`` kernel that runs this interpreter (``sys.executable``)."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    spec_dir = kernel_root / "python3"
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": f"Python {sys.version_info.major}.{sys.version_info.minor} (keras-gen tests)",
        "language": "python",
        "env": {"TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONWARNINGS": "ignore::DeprecationWarning"},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    specs = KernelSpecManager(kernel_dirs=[str(kernel_root)], ensure_native_kernel=False)
    return KernelManager(kernel_name="python3", kernel_spec_manager=specs)


def _errors(notebook):
    for index, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                yield index, f"{output.get('ename')}: {output.get('evalue')}"


def _run(path, tmp_path):
    notebook = nbformat.read(path, as_version=4)
    work = tmp_path / "work"
    work.mkdir()
    client = nbclient.NotebookClient(
        notebook,
        km=_kernel_manager(tmp_path / "kernels"),
        timeout=CELL_TIMEOUT,
        allow_errors=False,
        resources={"metadata": {"path": str(work)}},  # the kernel's working directory
    )
    try:
        client.execute()
    finally:
        nbformat.write(notebook, tmp_path / path.name)  # the executed copy, to look at when a test fails
    assert not list(_errors(notebook))
    return notebook


def test_there_are_four_notebooks():
    assert [p.name[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04"], [p.name for p in NOTEBOOKS]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebooks_are_committed_clean(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    assert notebook.nbformat == 4
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name} holds outputs: clear them"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(path, tmp_path):
    notebook = _run(path, tmp_path)
    images = sum(
        1 for cell in notebook.cells for output in cell.get("outputs", []) if "image/png" in output.get("data", {})
    )
    assert images >= 3, f"{path.name} shows {images} pictures; its plots and grids should be inline"
