"""`export_model`'s progress: a tqdm bar over its steps on a terminal, nothing elsewhere or with progress=False, and
the step lines to a callable (what ``keras-gen export`` passes)."""

import io
import re
import sys

import pytest

import keras_gen.export as kx
from keras_gen import presets
from tests.test_models import tiny_config


class Terminal(io.StringIO):
    """A stream that says it is a terminal, as tqdm asks."""

    def isatty(self):
        return True


@pytest.fixture(scope="module")
def dcgan():
    return presets.build_model(tiny_config("dcgan"))


def _export(model, tmp_path, monkeypatch, stderr, **kwargs):
    monkeypatch.setattr(sys, "stderr", stderr)
    kx.export_model(model, tmp_path, "m", formats="savedmodel", batch_sizes=(2,), allow_untrained=True, **kwargs)
    return stderr.getvalue()


def test_export_shows_a_bar_over_its_steps_on_a_terminal(dcgan, tmp_path, monkeypatch):
    lines = []
    shown = _export(dcgan, tmp_path, monkeypatch, Terminal(), progress=lines.append)
    # Four steps for a SavedModel: reference outputs, writing, two parity checks; the bar counts them to the end.
    assert "SavedModel: parity (TF1 session" in shown and re.search(r"\b4/4\b", shown), shown[-500:]
    assert [line.split(":")[0].split(" ")[0] for line in lines] == ["Keras", "SavedModel", "SavedModel", "SavedModel",
                                                                    "Wrote"]


def test_export_shows_no_bar_off_a_terminal_or_when_asked_not_to(dcgan, tmp_path, monkeypatch):
    assert _export(dcgan, tmp_path / "a", monkeypatch, io.StringIO()) == ""  # progress=True: the default
    assert _export(dcgan, tmp_path / "b", monkeypatch, Terminal(), progress=False) == ""
