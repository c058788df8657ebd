"""The models shipped with keras-gen (`keras_gen.pretrained`): loaded by name, the weights that were evaluated,
cards that say what their JSON says, and ``pretrained:NAME`` wherever a run folder is accepted, with nothing
written into the package."""

import io
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from keras_gen import pretrained
from keras_gen.runs import (
    describe_run,
    evaluate_run,
    load_run,
    load_source,
    resolve_run_dir,
)
from tests.helpers import ROOT

SHIPPED = ("acgan-mnist", "cgan-mnist", "dcgan-mnist", "vae-mnist")
PRESET = {"dcgan-mnist": "dcgan", "cgan-mnist": "cgan", "acgan-mnist": "acgan-r1-ema", "vae-mnist": "vae"}
FOLDER = os.path.join(ROOT, "keras_gen", "pretrained")

# The card's evaluation rows and where the JSON holds each value (read independently of the script that writes).
CARD_METRICS = {
    "FID": ("fid", "value"),
    "KID": ("kid", "mean"),
    "KID std": ("kid", "std"),
    "IS": ("is", "mean"),
    "IS std": ("is", "std"),
    "IS of the real digits": ("is", "real_mean"),
    "precision": ("pr", "precision"),
    "recall": ("pr", "recall"),
    "classes covered": ("coverage", "modes"),
    "KL of the class histogram to uniform": ("coverage", "kl"),
}
CARD_LIKELIHOOD = {
    "ELBO (nats)": ("elbo", "mean_elbo"),
    "IW-NLL (nats)": ("iw_nll", "mean_nll"),
    "bits/dim": ("iw_nll", "bits_per_dim"),
}


def _read_json(name, filename):
    with open(os.path.join(FOLDER, name, filename), encoding="utf-8") as f:
        return json.load(f)


def _lookup(data, path):
    for key in path:
        data = data[key]
    return data


def _dataset_dtypes(group):
    """The dtypes of every dataset in an HDF5 group, at any depth."""
    import h5py

    found = set()
    for item in group.values():
        found |= _dataset_dtypes(item) if isinstance(item, h5py.Group) else {item.dtype}
    return found


def _snapshot():
    """Every file under keras_gen/pretrained with its size and modification time."""
    found = {}
    for folder, dirs, files in os.walk(FOLDER):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for filename in files:
            path = os.path.join(folder, filename)
            found[os.path.relpath(path, FOLDER)] = (os.path.getsize(path), os.stat(path).st_mtime_ns)
    return found


@pytest.fixture(scope="module")
def dcgan():
    return pretrained.from_preset("dcgan-mnist")


@pytest.fixture(scope="module")
def vae():
    return pretrained.from_preset("vae-mnist")


# --------------------------------------------------------------------------------------------- what is shipped
def test_the_three_models_are_shipped():
    assert set(SHIPPED) <= set(pretrained.list_pretrained())


def test_an_unknown_name_lists_the_shipped_ones():
    for load in (lambda: pretrained.from_preset("dcgan-cifar"), lambda: load_run("pretrained:dcgan-cifar"),
                 lambda: load_source("pretrained:dcgan-cifar")):
        with pytest.raises(ValueError, match="dcgan-cifar") as info:
            load()
        assert all(name in str(info.value) for name in SHIPPED), str(info.value)


@pytest.mark.parametrize("name", SHIPPED)
def test_files_are_small_and_the_weights_float16(name):
    import h5py

    folder = os.path.join(FOLDER, name)
    sizes = {f: os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder)}
    assert max(sizes.values()) < 5 * 2**20, sizes
    record = _read_json(name, "pretrained.json")
    assert set(record["weights"]) == ({"encoder", "decoder"} if name == "vae-mnist" else {"generator"})
    for filename in record["weights"].values():
        with h5py.File(os.path.join(folder, filename), "r") as f:
            kinds = _dataset_dtypes(f)
        assert kinds and kinds == {np.dtype("float16")}, (filename, kinds)
    assert record["float16_max_error"] <= record["float16_tolerance"] <= 2 / 255


def test_all_models_together_take_a_few_megabytes():
    total = sum(os.path.getsize(os.path.join(FOLDER, name, f)) for name in SHIPPED
                for f in os.listdir(os.path.join(FOLDER, name)))
    assert total < 8 * 2**20, total


@pytest.mark.parametrize("name", SHIPPED)
def test_the_steps_trained_are_the_presets(name):
    """epochs x (training digits // batch): the steps the preset's run takes, as the exporter will count them."""
    config, info = _read_json(name, "config.json"), _read_json(name, "dataset.json")
    assert config["preset"] == PRESET[name] and config["dataset"] == "mnist"
    expected = config["epochs"] * (info["splits"]["train"] // config["batch_size"])
    assert _read_json(name, "pretrained.json")["trained_steps"] == expected
    assert pretrained.from_preset(name).trained_steps == expected


# ------------------------------------------------------------------------------------- the weights that were evaluated
@pytest.mark.parametrize("name", SHIPPED)
def test_generate_gives_the_stored_samples(name):
    reference = np.load(os.path.join(FOLDER, name, "samples.npy"))
    model = pretrained.from_preset(f"pretrained:{name}")
    samples = model.generate(16, seed=0)
    assert samples.shape == reference.shape == (16, 28, 28, 1)
    np.testing.assert_allclose(samples, reference, atol=1e-5, rtol=0)
    assert np.std(samples) > 0.3  # digits, not a flat image


@pytest.mark.parametrize("name", SHIPPED)
def test_the_card_says_what_the_json_says(name):
    with open(os.path.join(FOLDER, name, "README.md"), encoding="utf-8") as f:
        card = f.read()
    rows = dict(re.findall(r"^\| ([^|]+?) \| (-?[0-9][0-9.,]*) \|$", card, flags=re.MULTILINE))
    report = _read_json(name, "eval.json")
    expected = dict(CARD_METRICS)
    reports = {label: report["metrics"] for label in CARD_METRICS}
    if name == "vae-mnist":
        expected.update(CARD_LIKELIHOOD)
        reports.update({label: _read_json(name, "likelihood.json") for label in CARD_LIKELIHOOD})
    assert set(expected) <= set(rows), sorted(set(expected) - set(rows))
    for label, path in expected.items():
        cell = rows[label]
        decimals = len(cell.split(".")[1]) if "." in cell else 0
        value = _lookup(reports[label], path)
        assert abs(float(cell) - value) <= 0.5 * 10**-decimals + 1e-12, (label, cell, value)
    # The evaluation is `keras-gen evaluate` with its default settings, of this very model.
    assert report["source"]["path"] == f"pretrained:{name}" and report["source"]["type"] == "pretrained"
    assert report["num_samples"] == 5000 and report["seed"] == 0 and report["batch_size"] == 500
    assert report["extractor"]["name"] == "mnist_classifier" and report["extractor"]["training"]["epochs"] == 8
    assert f"keras-gen evaluate pretrained:{name}" in card
    assert _read_json(name, "pretrained.json")["train_command"] in card


def test_the_docs_table_says_what_the_json_says():
    with open(os.path.join(ROOT, "docs", "pretrained.md"), encoding="utf-8") as f:
        text = f.read()
    columns = {"FID": ("fid", "value"), "IS": ("is", "mean"), "precision": ("pr", "precision"),
               "recall": ("pr", "recall"), "classes": ("coverage", "modes")}
    header = next(line for line in text.splitlines() if line.startswith("| model |"))
    names = [cell.strip() for cell in header.strip("|").split("|")]
    for name in SHIPPED:
        line = next(line for line in text.splitlines() if line.startswith(f"| [`{name}`]"))
        cells = dict(zip(names, (cell.strip() for cell in line.strip("|").split("|"))))
        metrics = _read_json(name, "eval.json")["metrics"]
        for column, path in columns.items():
            decimals = len(cells[column].split(".")[1]) if "." in cells[column] else 0
            assert abs(float(cells[column]) - _lookup(metrics, path)) <= 0.5 * 10**-decimals, (name, column)
        assert cells["preset"] == f"`{PRESET[name]}`"
        assert cells["training"] == f"{_read_json(name, 'pretrained.json')['train_seconds']:.0f} s"


@pytest.mark.slow
@pytest.mark.parametrize("name", SHIPPED)
def test_evaluating_again_reproduces_the_json(name):
    """`keras-gen evaluate pretrained:NAME` with default settings, as the card's JSON was made (the default digit
    classifier trains deterministically, so its cached copy here is the one that scored the JSON)."""
    stored = _read_json(name, "eval.json")
    results = evaluate_run(f"pretrained:{name}", None, n=None, extractor="auto", seed=0, batch_size=500,
                           progress=False)
    assert results["extractor"]["accuracy"] == stored["extractor"]["accuracy"]
    assert json.loads(json.dumps(results["metrics"])) == stored["metrics"]


def test_the_training_script_stores_float16_values_that_keras_loads(tmp_path):
    """scripts/train_pretrained.py's weight files: a Keras weight file whose values are float16, half the size,
    that `load_weights` reads into float32 variables as the float16 rounding of the originals."""
    import importlib.util

    import keras

    path = os.path.join(ROOT, "scripts", "train_pretrained.py")
    spec = importlib.util.spec_from_file_location("train_pretrained", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)

    def network():
        inputs = keras.Input((64,))
        x = keras.layers.Dense(256)(inputs)
        x = keras.layers.BatchNormalization()(x)
        return keras.Model(inputs, keras.layers.Dense(3)(x))

    original, copy = network(), network()
    values = [np.random.default_rng(i).normal(size=w.shape).astype("float32") for i, w in enumerate(original.weights)]
    for weight, value in zip(original.weights, values):
        weight.assign(np.abs(value) if "variance" in weight.path else value)
    original.save_weights(tmp_path / "full.weights.h5")
    script.write_float16_weights(original, tmp_path / "half.weights.h5")
    copy.load_weights(tmp_path / "half.weights.h5")
    for loaded, weight in zip(copy.weights, original.weights):
        assert loaded.dtype == "float32"
        np.testing.assert_array_equal(np.asarray(loaded), np.asarray(weight).astype("float16").astype("float32"))
    payload = 4 * sum(int(np.prod(w.shape)) for w in original.weights)  # bytes of the float32 values
    saved = os.path.getsize(tmp_path / "full.weights.h5") - os.path.getsize(tmp_path / "half.weights.h5")
    assert saved >= 0.45 * payload, (saved, payload)  # half the values' bytes, less a little HDF5 bookkeeping


# -------------------------------------------------------------------------------------------------------- the VAE
def test_the_vae_encodes_and_reconstructs_held_out_digits(vae):
    """Its encoder is shipped: a digit comes back closer to itself than to another held-out digit."""
    from keras_gen import data

    images = data.load_arrays("mnist", "test")[0][:64]
    rebuilt = vae.reconstruct(images)
    own = np.mean(np.abs(rebuilt - images), axis=(1, 2, 3))
    other = np.mean(np.abs(rebuilt - np.roll(images, 1, axis=0)), axis=(1, 2, 3))
    assert np.mean(own < other) > 0.95 and own.mean() < 0.6 * other.mean(), (own.mean(), other.mean())


def test_a_latent_edit_runs_on_the_vae():
    from keras_gen.latent_grids import grid_for_run

    grid = grid_for_run("pretrained:vae-mnist", "edit", seed=0, count=4, strengths=[1.0])
    assert grid.shape[0] == 4
    # The thin-to-bold vector makes strokes heavier: more ink than in the reconstructions.
    assert np.mean(grid.column("+1") + 1) > 1.1 * np.mean(grid.column("reconstruction") + 1)


# ------------------------------------------------------------------------------------------------- run resolution
def test_pretrained_names_resolve_where_run_folders_do(dcgan):
    folder, name = resolve_run_dir("pretrained:dcgan-mnist")
    assert name == "dcgan-mnist" and os.path.samefile(folder, os.path.join(FOLDER, "dcgan-mnist"))
    assert resolve_run_dir(folder) == (folder, "dcgan-mnist")  # its folder, given as a path, is the same model
    assert resolve_run_dir("runs/dcgan") == ("runs/dcgan", None)
    description = describe_run("pretrained:dcgan-mnist")
    assert description["pretrained"] == "dcgan-mnist" and "run_dir" not in description  # nothing to write into
    assert description["dataset"] == "mnist" and description["dataset_info"]["shape"] == [28, 28, 1]
    model, source = load_source("pretrained:dcgan-mnist")
    assert source["type"] == "pretrained" and source["path"] == "pretrained:dcgan-mnist" and "run_dir" not in source
    np.testing.assert_array_equal(model.generate(4, seed=3), dcgan.generate(4, seed=3))
    np.testing.assert_array_equal(load_run("pretrained:dcgan-mnist").generate(4, seed=3), dcgan.generate(4, seed=3))


def test_evaluating_a_pretrained_model_records_no_folder_to_write_into(mnist_classifier):
    before = _snapshot()
    results = evaluate_run("pretrained:cgan-mnist", ["fid", "coverage"], n=200, classifier=mnist_classifier,
                           progress=False)
    assert results["source"]["pretrained"] == "cgan-mnist" and "run_dir" not in results["source"]
    assert results["metrics"]["fid"]["value"] > 0
    assert _snapshot() == before  # no TensorBoard logs or report inside the package


def test_keras_gen_evaluate_writes_its_report_in_the_current_directory(tmp_path, monkeypatch, mnist_classifier):
    """`keras-gen evaluate pretrained:NAME` (here with the tiny classifier standing in as the cached default one)
    writes ./eval.json, not into the package."""
    import shutil

    from keras_gen.cli import main

    cache = tmp_path / "cache"
    cache.mkdir()
    shutil.copy(mnist_classifier.path, cache / "mnist_classifier.keras")
    shutil.copy(os.path.splitext(mnist_classifier.path)[0] + ".json", cache / "mnist_classifier.json")
    monkeypatch.setenv("KERAS_GEN_CACHE", str(cache))
    monkeypatch.chdir(tmp_path)
    before = _snapshot()
    code = main(["evaluate", "pretrained:dcgan-mnist", "--n", "200", "--metrics", "fid", "--no-progress"],
                out=io.StringIO())
    assert code == 0
    report = json.loads((tmp_path / "eval.json").read_text())
    assert report["source"]["pretrained"] == "dcgan-mnist" and report["num_samples"] == 200
    assert _snapshot() == before


def test_the_exporter_counts_the_steps_a_pretrained_model_trained(tmp_path, dcgan):
    """`export_model(from_preset(...))` needs no allow_untrained: the model says how long it trained; a model
    with fresh optimizers and no such record is still refused."""
    import keras_gen.export as kx

    from keras_gen.presets import build_model, get_config

    result = kx.export_model(dcgan, tmp_path, "dcgan", formats="savedmodel")
    np.testing.assert_allclose(kx.load(result.path).sample(3, seed=5), dcgan.generate(3, seed=5), atol=1e-5)
    fresh = build_model(get_config("dcgan"))
    with pytest.raises(ValueError, match="never been trained"):
        kx.export_model(fresh, tmp_path, "fresh", formats="savedmodel")


# ----------------------------------------------------------------------------------------- the command line, end to end
def test_the_commands_take_a_pretrained_model_and_write_nothing_into_it(tmp_path, monkeypatch, dcgan):
    """sample, export (SavedModel, TFLite, ONNX: each artifact samples what `from_preset` generates) and latent on
    ``pretrained:dcgan-mnist``; an export without --out goes to ./export; the package's folder is unchanged."""
    import keras_gen.export as kx

    from keras_gen.cli import main
    from keras_gen.images import save_image_grid

    before = _snapshot()
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    assert main(["sample", "pretrained:dcgan-mnist", "--n", "16", "--seed", "2", "--out", "grid.png"], out=out) == 0
    save_image_grid(dcgan.generate(16, seed=2), tmp_path / "expected.png")
    assert np.array_equal(np.asarray(Image.open("grid.png")), np.asarray(Image.open(tmp_path / "expected.png")))

    assert main(["export", "pretrained:dcgan-mnist", "--out", "exports"], out=out) == 0
    version = tmp_path / "exports" / "dcgan-mnist" / "1"
    manifest = json.loads((version / "manifest.json").read_text())
    assert manifest["source"]["pretrained"] == "dcgan-mnist" and "run_dir" not in manifest["source"]
    expected = dcgan.generate(5, seed=7)
    for path in (version, version / "tflite" / "model_fp32.tflite", version / "onnx"):
        np.testing.assert_allclose(kx.load(path).sample(5, seed=7), expected, atol=1e-4, err_msg=str(path))

    assert main(["export", "pretrained:dcgan-mnist", "--formats", "savedmodel"], out=out) == 0
    assert (tmp_path / "export" / "dcgan-mnist" / "1" / "saved_model.pb").is_file()
    assert main(["latent", "interpolate", "pretrained:dcgan-mnist", "--rows", "2", "--steps", "3", "--out",
                 "x.png"], out=out) == 0
    assert Image.open("x.png").size[0] > 3 * 28
    assert _snapshot() == before


def test_the_command_line_names_the_shipped_models_for_an_unknown_one(tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-m", "keras_gen.cli", "sample", "pretrained:nope", "--out", "g.png"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300, check=False)
    assert done.returncode == 2 and "Traceback" not in done.stderr and "'nope'" in done.stderr
    assert all(name in done.stderr for name in SHIPPED), done.stderr
    assert not (tmp_path / "g.png").exists()


# ------------------------------------------------------------------------------------------------------- packaging
def test_a_wheel_holds_every_package_and_every_file_of_the_models(tmp_path):
    """A wheel built from pyproject.toml (in a copy of the sources: the build writes build/ and egg-info) holds
    every package of the source tree and every file of every shipped model; an installed keras-gen would
    otherwise lack a module or load a model without its weights."""
    import shutil
    import zipfile

    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(os.path.join(ROOT, name), source)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")
    for name in ("keras_gen", "export", "serving"):
        shutil.copytree(os.path.join(ROOT, name), source / name, ignore=ignore)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path / "dist"),
         str(source)], capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    mapped = (("keras_gen", "keras_gen"), ("export", "keras_gen/export"), ("serving", "keras_gen/serving"))
    for folder, package in mapped:
        for path, dirs, files in os.walk(os.path.join(ROOT, folder)):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            if "__init__.py" in files:
                relative = os.path.relpath(path, os.path.join(ROOT, folder))
                init = "/".join(p for p in (package, "" if relative == "." else relative, "__init__.py") if p)
                assert init in names, init
    for name in SHIPPED:
        for filename in os.listdir(os.path.join(FOLDER, name)):
            assert f"keras_gen/pretrained/{name}/{filename}" in names, (name, filename)


@pytest.mark.parametrize("flag", ["--resume", "--overwrite"])
def test_a_shipped_model_is_never_trained_into(flag, capsys):
    """Its folder has a config.json like a run folder's, but --resume / --overwrite must not touch the package."""
    from keras_gen.cli import main

    before = _snapshot()
    folder = pretrained.model_dir("dcgan-mnist")
    for out in ("pretrained:dcgan-mnist", str(folder)):
        assert main(["train", "dcgan", "--out", out, flag, "--epochs", "1"]) == 2
        err = capsys.readouterr().err
        assert "is the shipped model 'dcgan-mnist': it is read only" in err and "Traceback" not in err
    assert _snapshot() == before
