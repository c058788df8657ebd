"""`evaluate` does not depend on the order of the data, and loading a run says what is wrong with it.

The real comparison data of a builtin split can be sorted by class (the embedded MNIST test digits are); the
Inception Score's chunks and the subset of a larger split that `evaluate` compares with must not see that order.
A `.keras` file that Keras refuses in safe mode and a ``config.json`` that is not JSON get messages that name the
file and say what to do. Expected values are closed forms or computed here independently.
"""

import json

import keras
import numpy as np
import pytest
from PIL import Image

from keras_gen import data, presets
from keras_gen.metrics import evaluate, format_table, inception_score, train_domain_classifier
from keras_gen.runs import load_run, load_source


class CyclingSampler:
    """A stand-in for a generative model: ``generate(n, seed)`` returns the rows of a fixed array, cycling."""

    def __init__(self, array):
        self.array = np.asarray(array, dtype=np.float32)

    def generate(self, n, seed=None):
        return self.array[np.arange(n) % len(self.array)]


@pytest.fixture(scope="module")
def digits_classifier():
    """A small classifier of the 8x8 digits (a few seconds), confident enough for an IS above 6 of 10."""
    return train_domain_classifier("digits", epochs=10, width=16, batch_size=32)


# ------------------------------------------------------------------------------------------- Inception Score
def test_inception_score_of_class_sorted_real_data(digits_classifier):
    digits, labels = data.load_arrays("digits", "test")  # (180, 8, 8, 1)
    by_class = digits[np.argsort(labels, kind="stable")]  # 0, 0, ..., 1, 1, ...: like the MNIST test split
    shuffled = digits[np.random.default_rng(0).permutation(len(digits))]
    result = evaluate(
        CyclingSampler(shuffled), metrics="is", n=180, batch_size=180, real=by_class, classifier=digits_classifier,
        dataset="digits", is_splits=3, seed=5, progress=False,
    )
    entry = result["metrics"]["is"]
    # One chunk of all 180 digits has no order to depend on.
    whole = inception_score(digits_classifier.probabilities(digits), splits=1)[0]
    assert whole > 6  # a confident classifier: consecutive chunks of sorted digits (3 or 4 classes) score < 4
    # Three chunks of 60: a little below the one-chunk value, the same for the sorted and the shuffled digits.
    assert 0.85 * whole < entry["real_mean"] <= whole
    assert entry["real_mean"] == pytest.approx(entry["mean"], rel=0.05)
    assert entry["real_std"] < 0.1 * whole and entry["splits"] == 3 and entry["permutation_seed"] == 5
    json.dumps(result)
    table = format_table(result)
    assert "| Inception Score (real data) |" in table
    assert entry["real_splits"] == 3  # chunks of the samples' size: 180 real digits in chunks of 60
    assert "Inception Score: 3 chunks of the samples and 3 of the real data, of 60 each, in a random order drawn " \
           "with seed 5" in table


# ------------------------------------------------------------------------------------------- the comparison data
def _class_sorted_folder(root, per_class=20):
    """An image folder whose loader lists class ``a`` (black 8x8 images) before class ``b`` (white ones)."""
    for name, value in (("a", 0), ("b", 255)):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(np.full((8, 8), value, np.uint8), mode="L").save(root / name / f"{i:03d}.png")
    return f"folder:{root}"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_real_data_is_a_seeded_subset_of_a_class_sorted_split(tmp_path, seed):
    dataset = _class_sorted_folder(tmp_path / "images")
    fake = np.concatenate([np.full((10, 8, 8, 1), -1.0), np.full((10, 8, 8, 1), 1.0)])  # both classes, 10 each
    result = evaluate(
        CyclingSampler(fake), metrics="pr", n=20, batch_size=20, dataset=dataset, extractor="identity", seed=seed,
        progress=False,
    )
    # The first 20 images of the split are all black: half the fakes (the white ones) would be unrealistic.
    # A random 20 of the 40 holds at least k + 1 = 4 of each (a hypergeometric draw; fixed by the seed), so every
    # fake lies in a real ball of radius 0 and every real image in a fake one.
    assert result["metrics"]["pr"]["precision"] == 1.0 and result["metrics"]["pr"]["recall"] == 1.0
    assert result["num_real"] == 20 and result["real_split_size"] == 40
    again = evaluate(
        CyclingSampler(fake), metrics="fid", n=20, batch_size=20, dataset=dataset, extractor="identity", seed=seed,
        progress=False,
    )
    # Real images of one class only: 64 pixels 1 apart in the mean plus the fakes' variance, a FID of 131.
    assert again["metrics"]["fid"]["value"] < 64
    assert "20 of the 40 examples" in format_table(result)


# ------------------------------------------------------------------------------------------- loading a run
def _run_folder(path, model=None):
    """A run folder by hand: a valid config.json and, if given, ``model`` saved as model.keras."""
    path.mkdir(parents=True)
    presets.get_config("ring2d", epochs=1).save(str(path / "config.json"))
    if model is not None:
        model.save(str(path / "model.keras"))
    return path


def _lambda_model():
    return keras.Sequential([keras.Input((3,)), keras.layers.Dense(2), keras.layers.Lambda(lambda x: 2.0 * x)])


def test_a_keras_file_with_a_lambda_is_not_called_corrupt(tmp_path, capsys):
    from keras_gen import cli

    model = _lambda_model()
    run = _run_folder(tmp_path / "run", model)
    path = str(run / "model.keras")
    for load in (lambda: load_run(run), lambda: load_source(path)):
        with pytest.raises(ValueError) as info:
            load()
        message = str(info.value)
        assert path in message and "corrupt" not in message
        assert "custom Python code (a `Lambda` layer whose `function` is a Python lambda)" in message
        assert "safe_mode=False" in message and "If you trust the file" in message
    assert cli.main(["evaluate", path, "--no-progress"]) == 2  # the command prints it on one line
    err = capsys.readouterr().err
    assert "holds custom Python code" in err and len(err.strip().splitlines()) == 1
    # Trusted: safe_mode=False loads it, and the restored model computes what the saved one did.
    x = np.random.default_rng(0).normal(size=(4, 3)).astype("float32")
    expected = model.predict(x, verbose=0)
    np.testing.assert_allclose(load_run(run, safe_mode=False).predict(x, verbose=0), expected, rtol=1e-6)
    loaded, description = load_source(path, safe_mode=False)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), expected, rtol=1e-6)
    assert description["type"] == "keras"


def test_a_truncated_keras_file_is_still_called_corrupt(tmp_path):
    run = _run_folder(tmp_path / "run", keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]))
    path = run / "model.keras"
    path.write_bytes(path.read_bytes()[:200])
    for load in (lambda: load_run(run), lambda: load_source(str(path))):
        with pytest.raises(ValueError, match="corrupt or incomplete") as info:
            load()
        assert str(path) in str(info.value) and "safe_mode" not in str(info.value)


@pytest.mark.parametrize(
    "text,where",
    [('{\n  "preset": ring2d\n}\n', "line 2, column 13"), ("", "line 1, column 1"), ('{"preset": "x",}', "column 16")],
)
def test_a_config_json_that_is_not_json_is_named(tmp_path, capsys, text, where):
    from keras_gen import cli

    run = _run_folder(tmp_path / "run")
    config = run / "config.json"
    config.write_text(text)
    for load in (lambda: presets.RunConfig.load(str(config)), lambda: presets.run_dir_config(run),
                 lambda: load_run(run), lambda: load_source(str(run))):
        with pytest.raises(ValueError, match="is not valid JSON") as info:
            load()
        assert str(config) in str(info.value) and where in str(info.value)
    assert cli.main(["evaluate", str(run), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert str(config) in err and where in err and len(err.strip().splitlines()) == 1


def test_a_config_json_that_is_not_an_object_or_not_a_config_is_named(tmp_path):
    run = _run_folder(tmp_path / "run")
    config = run / "config.json"
    for text, message in (("[1, 2]", "holds an array"), ('"ring2d"', "holds a string"),
                          ('{"preset": "x", "colour": 1}', "Unknown config field"), ("{}", "preset")):
        config.write_text(text)
        with pytest.raises(ValueError, match=message) as info:
            presets.RunConfig.load(str(config))
        assert str(config) in str(info.value)


def test_a_dataset_json_that_is_not_json_is_named(tmp_path):
    run = _run_folder(tmp_path / "run")
    (run / "dataset.json").write_text("{'kind': 'points'}")
    with pytest.raises(ValueError, match="is not valid JSON") as info:
        load_source(str(run))
    assert str(run / "dataset.json") in str(info.value) and "line 1, column 2" in str(info.value)

