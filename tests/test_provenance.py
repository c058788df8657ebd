"""keras_gen.provenance: versions, machine and the git revision of the checkout keras-gen runs from."""

import json
import os
import platform
import subprocess
import sys

import keras
import pytest
import tensorflow as tf

import keras_gen
from keras_gen import provenance

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _git(root, *args):
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def checkout(tmp_path):
    """A one-commit git repository."""
    root = tmp_path / "checkout"
    root.mkdir()
    (root / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    _git(root, "init", "-q")
    _git(root, "add", "pyproject.toml")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    return root


def test_source_revision_names_the_commit_and_whether_tracked_files_changed(checkout):
    revision = provenance.source_revision.__wrapped__  # uncached: the checkout changes between calls
    assert revision(str(checkout)) == {"commit": _git(checkout, "rev-parse", "HEAD"), "dirty": False}
    (checkout / "notes.txt").write_text("untracked")  # untracked files do not change the code that runs
    assert revision(str(checkout))["dirty"] is False
    (checkout / "pyproject.toml").write_text("[project]\nname = 'y'\n")
    assert revision(str(checkout))["dirty"] is True


def test_source_revision_is_none_outside_a_checkout_root_or_without_git(checkout, tmp_path, monkeypatch):
    revision = provenance.source_revision.__wrapped__
    assert revision(str(tmp_path / "nowhere")) is None
    inner = checkout / "site-packages"  # an install inside some other repository is not that repository
    inner.mkdir()
    assert revision(str(inner)) is None
    monkeypatch.setenv("PATH", str(tmp_path / "no-binaries"))
    assert revision(str(checkout)) is None


def test_environment_records_versions_machine_and_this_checkout():
    environment = provenance.environment()
    assert provenance.versions() == {"keras_gen": keras_gen.__version__, "tensorflow": tf.__version__,
                                     "keras": keras.__version__}
    assert {k: environment[k] for k in ("keras_gen", "tensorflow", "keras")} == provenance.versions()
    assert environment["backend"] == keras.backend.backend() and environment["cpu_count"] == os.cpu_count()
    assert environment["processor"] == provenance.processor()
    if os.path.exists(os.path.join(ROOT, ".git")):  # a git checkout (a source archive has no revision to give)
        assert environment["source"]["commit"] == _git(ROOT, "rev-parse", "HEAD")
        environment["source"]["commit"] = "edited"  # a report's copy: the next report still names the checkout
        assert provenance.environment()["source"]["commit"] == _git(ROOT, "rev-parse", "HEAD")
    else:
        assert environment["source"] is None


def test_processor_is_the_cpuinfo_model_name_or_what_platform_knows(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Platinum 8481C "
                       "CPU @ 2.70GHz\nflags\t\t: fpu\n\nprocessor\t: 1\nmodel name\t: Intel(R) Xeon(R) Platinum\n")
    assert provenance.processor(str(cpuinfo)) == "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz"
    cpuinfo.write_text("processor\t: 0\nmodel name\t:\nHardware\t: BCM2835\n")  # no name (some ARM boards)
    assert provenance.processor(str(cpuinfo)) == (platform.processor() or platform.machine())
    assert provenance.processor(str(tmp_path / "missing")) == (platform.processor() or platform.machine())
    assert provenance.processor(str(tmp_path / "missing"))  # never empty: a timing names some processor


def test_command_line_is_what_to_type_to_run_the_script_again(monkeypatch):
    assert provenance.command_line("benchmarks/x.py", ["--seeds", "3"]) == "python benchmarks/x.py --seeds 3"
    assert provenance.command_line("benchmarks/x.py", []) == "python benchmarks/x.py"  # no trailing blank
    monkeypatch.setattr(sys, "argv", ["benchmarks/x.py", "--out", "a b.json"])
    assert provenance.command_line("benchmarks/x.py") == "python benchmarks/x.py --out a b.json"


def test_write_report_records_the_environment_and_never_leaves_a_half_written_file(tmp_path):
    path = tmp_path / "results" / "report.json"  # a folder that does not exist yet
    assert provenance.write_report(str(path), {"rows": [1.5]}) == str(path)
    first = path.read_text()
    assert first.endswith("}\n")
    assert json.loads(first) == {"rows": [1.5], "environment": provenance.environment()}
    given = {"rows": [2], "environment": {"processor": "elsewhere"}}  # one taken when the run began stays
    provenance.write_report(str(path), given)
    assert json.loads(path.read_text()) == given
    second = path.read_text()
    with pytest.raises(ValueError, match="JSON compliant"):  # NaN refused before the old report is touched
        provenance.write_report(str(path), {"rows": [float("nan")]}, allow_nan=False)
    with pytest.raises(TypeError, match="not JSON serializable"):
        provenance.write_report(str(path), {"rows": [object()]})
    assert path.read_text() == second
    assert os.listdir(path.parent) == ["report.json"]  # and no temporary file
    provenance.write_report(str(path), {"rows": [float("inf")]})  # allowed unless refused
    assert json.loads(path.read_text())["rows"] == [float("inf")]
