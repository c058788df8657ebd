"""The `keras-gen` command, run as a user runs it: a subprocess of the installed console script."""

import csv
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from keras_gen import presets

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def keras_gen(*args, cwd=None, timeout=300):
    """Runs the console script (falling back to `python -m keras_gen.cli` if the script is not on PATH)."""
    script = shutil.which("keras-gen", path=os.path.dirname(sys.executable)) or shutil.which("keras-gen")
    command = [script] if script else [sys.executable, "-m", "keras_gen.cli"]
    return subprocess.run(
        command + [str(a) for a in args], capture_output=True, text=True, env=ENV, cwd=cwd, timeout=timeout
    )


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "dcgan-digits"
    result = keras_gen("train", "dcgan", "--dataset", "digits", "--epochs", 1, "--batch-size", 64, "--out", out)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def test_presets_lists_every_preset():
    result = keras_gen("presets")
    assert result.returncode == 0, result.stderr
    for name in presets.PRESETS:
        assert any(line.split()[0] == name for line in result.stdout.splitlines()[1:]), name


def test_train_writes_a_complete_run_folder(run_dir):
    for name in ("config.json", "dataset.json", "model.keras", "checkpoints/last.keras", "history.csv",
                 "losses.png", "samples/epoch_001.png", "samples/latest.png", "backup/epoch-000001/model.weights.h5"):
        assert (run_dir / name).is_file(), name
    config = json.loads((run_dir / "config.json").read_text())
    assert config["preset"] == "dcgan" and config["dataset"] == "digits" and config["epochs"] == 1
    grid = Image.open(run_dir / "samples" / "latest.png")
    assert grid.size[0] >= 256 and grid.mode == "L"
    assert (run_dir / "samples/latest.png").read_bytes() == (run_dir / "samples/epoch_001.png").read_bytes()


def test_existing_run_folder_is_never_overwritten_silently(run_dir):
    before = (run_dir / "model.keras").stat().st_mtime_ns
    result = keras_gen("train", "dcgan", "--dataset", "digits", "--epochs", 1, "--out", run_dir)
    assert result.returncode == 2
    assert "already exists" in result.stderr and "--resume" in result.stderr and "Traceback" not in result.stderr
    assert (run_dir / "model.keras").stat().st_mtime_ns == before


def test_sample_is_deterministic_for_a_seed(run_dir, tmp_path):
    paths = [tmp_path / "a.png", tmp_path / "b.png", tmp_path / "c.png"]
    for path, seed in zip(paths, (3, 3, 4)):
        result = keras_gen("sample", run_dir, "--n", 16, "--seed", seed, "--out", path)
        assert result.returncode == 0, result.stderr[-2000:]
    a, b, c = (np.asarray(Image.open(p)) for p in paths)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_resume_continues_from_the_backup(run_dir, tmp_path):
    copy = tmp_path / "resumed"
    shutil.copytree(run_dir, copy)
    result = keras_gen("train", "dcgan", "--resume", "--epochs", 2, "--out", copy)
    assert result.returncode == 0, result.stderr[-3000:]
    with open(copy / "history.csv") as f:
        epochs = [int(row["epoch"]) for row in csv.DictReader(f)]
    assert epochs == [0, 1]  # epoch 0 from the first run, epoch 1 from the resumed one
    assert (copy / "samples" / "epoch_002.png").is_file()
    assert json.loads((copy / "config.json").read_text())["epochs"] == 2


def test_unknown_preset_lists_the_valid_ones():
    result = keras_gen("train", "dcgann", "--epochs", 1)
    assert result.returncode == 2
    assert "Unknown preset 'dcgann'" in result.stderr and "wgan-gp" in result.stderr
    assert "Traceback" not in result.stderr


def test_sample_from_a_folder_that_is_not_a_run(tmp_path):
    result = keras_gen("sample", tmp_path, "--out", tmp_path / "x.png")
    assert result.returncode == 2 and "not a keras-gen run folder" in result.stderr
    assert not (tmp_path / "x.png").exists()


def test_corrupt_model_file_is_named(run_dir, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(run_dir, broken)
    (broken / "model.keras").write_bytes(b"not a zip file")
    result = keras_gen("sample", broken, "--out", tmp_path / "x.png")
    assert result.returncode == 2
    assert "model.keras" in result.stderr and "corrupt" in result.stderr
    assert not (tmp_path / "x.png").exists()


def test_bad_labels_for_an_unconditional_model(run_dir, tmp_path):
    result = keras_gen("sample", run_dir, "--labels", "1,2", "--n", 2, "--out", tmp_path / "x.png")
    assert result.returncode == 2 and "unconditional" in result.stderr
