"""Evaluation end to end: the domain classifier, `evaluate`, stacked MNIST, the mode-collapse alarm, the
`keras-gen evaluate` command and the mode-collapse benchmark.

Expected values are constructed (points placed on known modes, a sampler that returns real digits, channels
that are known test digits) or computed here with NumPy, never copied from the code's output.
"""

import contextlib
import copy
import csv
import json
import math
import os
import subprocess
import sys
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_gen import data, presets
from keras_gen.callbacks import ModeCollapseAlarm
from keras_gen.metrics import (
    METRICS,
    DomainClassifier,
    domain_classifier,
    evaluate,
    fid_from_features,
    format_table,
    generate_samples,
    train_domain_classifier,
)
from tests.test_cli import keras_gen

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = dict(epochs=1, num_samples=256, width=4, batch_size=32)


# ------------------------------------------------------------------------------------------- the domain classifier
@pytest.fixture(scope="module")
def digits_classifier():
    """A small classifier of the 8x8 digits (a few seconds): good enough to tell digits from shifted digits."""
    return train_domain_classifier("digits", epochs=4, width=8, batch_size=32)


@pytest.fixture(scope="module")
def mnist_classifier(tmp_path_factory):
    return domain_classifier("mnist", path=tmp_path_factory.mktemp("cache") / "tiny.keras", **TINY)


def test_classifier_training_is_deterministic_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_GEN_CACHE", str(tmp_path / "a"))
    first = domain_classifier("mnist", **TINY)
    monkeypatch.setenv("KERAS_GEN_CACHE", str(tmp_path / "b"))
    second = domain_classifier("mnist", **TINY)
    assert first.path.startswith(str(tmp_path / "a")) and second.path.startswith(str(tmp_path / "b"))
    # Non-default training arguments never take the default file's name.
    assert os.path.basename(first.path) != "mnist_classifier.keras"
    for a, b in zip(first.model.get_weights(), second.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)

    # A later call loads the file instead of training again (the file is not rewritten).
    stamp = os.stat(second.path).st_mtime_ns
    again = domain_classifier("mnist", **TINY)
    assert os.stat(second.path).st_mtime_ns == stamp
    for a, b in zip(second.model.get_weights(), again.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    described = again.describe()
    assert described["name"] == "mnist_classifier" and described["path"] == second.path
    assert described["accuracy"] == second.accuracy and 0.0 <= described["accuracy"] <= 1.0
    assert described["num_test"] == 500 and described["training"]["num_samples"] == 256


def test_classifier_outputs(mnist_classifier):
    x, _ = data.load_arrays("mnist", "test", num_samples=10)
    features = mnist_classifier.features(x)
    assert features.shape == (10, mnist_classifier.feature_dim) == (10, 16)
    np.testing.assert_array_equal(mnist_classifier(x), features)
    p = mnist_classifier.probabilities(x[..., 0])  # (N, H, W) is read as grayscale
    assert p.shape == (10, 10) and np.all(p >= 0)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_array_equal(mnist_classifier.predict(x), np.argmax(p, axis=1))


def test_classifier_errors(mnist_classifier, tmp_path):
    with pytest.raises(ValueError, match="28, 28, 1"):
        mnist_classifier.features(np.zeros((2, 8, 8, 1)))
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        mnist_classifier.features(np.full((2, 28, 28, 1), 255.0))
    with pytest.raises(ValueError, match="valid: mnist, digits"):
        domain_classifier("cifar10")
    with pytest.raises(ValueError, match="epochs"):
        domain_classifier("mnist", epochs=0)
    with pytest.raises(FileNotFoundError, match="No domain classifier"):
        DomainClassifier.load(tmp_path / "missing.keras")


def test_digits_classifier_learns(digits_classifier):
    # 10 classes: chance is 0.1. A few epochs of a small CNN on 1,617 digits is far above it on the held-out 180.
    assert digits_classifier.accuracy > 0.8
    assert digits_classifier.describe()["num_test"] == 180


@pytest.mark.slow
def test_default_mnist_classifier_accuracy():
    classifier = domain_classifier("mnist")  # the user's cache: trained once (~30-60 s on 2 cores), then loaded
    assert classifier.accuracy >= 0.95
    assert os.path.basename(classifier.path) == "mnist_classifier.keras"


# ------------------------------------------------------------------------------------------- evaluate: samplers
class ArraySampler:
    """A stand-in for a generative model: ``generate(n, seed)`` returns rows of a fixed array, cycling."""

    def __init__(self, array):
        self.array = np.asarray(array, dtype=np.float32)

    def generate(self, n, seed=None):
        return self.array[np.arange(n) % len(self.array)]


class DictSampler:
    """The export-style interface: ``sample(n, seed)`` returning a dict of outputs."""

    def __init__(self, array):
        self.array = np.asarray(array, dtype=np.float32)

    def sample(self, n, seed=0):
        rows = np.random.default_rng(seed).integers(0, len(self.array), n)
        return {"images": self.array[rows], "z": np.zeros((n, 2), np.float32)}


def test_generate_samples_draws_batch_i_with_seed_plus_i_times_2_to_the_32():
    calls = []

    class SeedEcho:  # each row holds the seed of the call that drew it
        def generate(self, n, seed=None):
            calls.append((n, seed))
            return np.full((n, 2), seed, dtype=np.float64)

    samples = generate_samples(SeedEcho(), 1200, seed=5, batch_size=500, progress=False)
    assert calls == [(500, 5), (500, 5 + 2**32), (200, 5 + 2 * 2**32)]
    assert samples.dtype == np.float32 and samples.shape == (1200, 2)
    np.testing.assert_array_equal(samples[:, 0], np.float32(np.repeat([5, 5 + 2**32, 5 + 2 * 2**32], [500, 500, 200])))
    exported = generate_samples(DictSampler(np.arange(6.0).reshape(3, 2)), 4, seed=2, progress=False)
    np.testing.assert_array_equal(exported, DictSampler(np.arange(6.0).reshape(3, 2)).sample(4, seed=2)["images"])
    for bad, message in (({"n": 0}, "n=0"), ({"batch_size": 2.5}, "batch_size=2.5"), ({"seed": -1}, "seed=-1")):
        with pytest.raises(ValueError, match=message):
            generate_samples(SeedEcho(), **{"n": 3, **bad})


def test_evaluate_real_digits_beat_shifted_digits(digits_classifier):
    train, _ = data.load_arrays("digits", "train")
    shifted = np.clip(np.roll(train, 2, axis=2) * 0.5 + 0.3, -1, 1)  # moved right, washed out
    kwargs = dict(n=600, classifier=digits_classifier, progress=False, dataset="digits", kid_subsets=20,
                  batch_size=600)  # one call: ArraySampler cycles from row 0 in every call
    real = evaluate(ArraySampler(train), **kwargs)
    fake = evaluate(DictSampler(shifted), **kwargs)
    assert set(real["metrics"]) == set(METRICS)  # digits with the classifier: everything applies
    assert real["metrics"]["fid"]["value"] < 0.2 * fake["metrics"]["fid"]["value"]
    assert real["metrics"]["kid"]["mean"] < 0.2 * fake["metrics"]["kid"]["mean"]
    assert real["metrics"]["pr"]["precision"] > fake["metrics"]["pr"]["precision"]
    assert real["metrics"]["coverage"]["modes"] == 10 and real["metrics"]["coverage"]["num_modes"] == 10
    # Provenance: the extractor and the sample counts are recorded with every number.
    assert real["extractor"]["name"] == "digits_classifier"
    assert real["extractor"]["accuracy"] == digits_classifier.accuracy
    for entry in real["metrics"].values():
        assert entry["extractor"] == "digits_classifier" and entry["num_samples"] == 600 and entry["num_real"] == 180
    # The FID is the one of the features, computed independently here.
    features = digits_classifier.features
    test_digits = data.load_arrays("digits", "test")[0]
    expected = fid_from_features(features(test_digits), features(train[np.arange(600) % 1617]))
    assert real["metrics"]["fid"]["value"] == pytest.approx(expected, rel=1e-9)
    json.dumps(real)  # JSON-able
    table = format_table(real)
    assert table.splitlines()[0].startswith("| metric |") and "| FID |" in table and "digits_classifier" in table


def test_evaluate_is_deterministic_for_a_seed():
    x, _ = data.load_arrays("ring2d", "test")
    kwargs = dict(metrics=["fid"], n=300, progress=False, dataset="ring2d", batch_size=100)
    a = evaluate(DictSampler(x), seed=3, **kwargs)["metrics"]["fid"]["value"]
    b = evaluate(DictSampler(x), seed=3, **kwargs)["metrics"]["fid"]["value"]
    c = evaluate(DictSampler(x), seed=4, **kwargs)["metrics"]["fid"]["value"]
    assert a == b and a != c


@pytest.mark.parametrize("name", ["ring2d", "grid2d"])
def test_evaluate_coverage_on_constructed_points(name):
    centers, sigma = data.mixture_modes(name)
    k = 5
    on_modes = centers[:k]  # exactly on the first k modes
    far = centers[:1] + np.array([[0.5, 0.5]], dtype=np.float32)  # 0.5 from a mode: far beyond 3 sigma
    points = np.concatenate([np.repeat(on_modes, 3, axis=0), far], axis=0)  # 15 high-quality points, 1 not
    # 4 generator calls of 400 = 25 whole cycles each (ArraySampler restarts at row 0 in every call).
    result = evaluate(ArraySampler(points), metrics="coverage", n=1600, batch_size=400, progress=False, dataset=name)
    coverage = result["metrics"]["coverage"]
    assert coverage["modes"] == k and coverage["num_modes"] == len(centers)
    assert coverage["high_quality"] == pytest.approx(15 / 16)
    assert coverage["reverse_kl"] == pytest.approx(math.log(len(centers) / k))  # k modes used equally
    assert coverage["counts"] == [300] * k + [0] * (len(centers) - k)
    assert list(result["metrics"]) == ["coverage"] and result["extractor"]["name"] == "identity"


def test_evaluate_defaults_for_points_and_errors():
    x, _ = data.load_arrays("ring2d", "test")
    result = evaluate(ArraySampler(x), n=2500, batch_size=2500, progress=False, dataset="ring2d", kid_subsets=5)
    assert list(result["metrics"]) == ["fid", "kid", "pr", "coverage"]  # no IS for points
    assert result["num_samples"] == 2500 and result["metrics"]["coverage"]["modes"] == 8
    assert result["metrics"]["fid"]["value"] < 1e-9  # the same 2,500 points
    with pytest.raises(ValueError, match="Valid metrics: fid, kid, is, pr, coverage"):
        evaluate(ArraySampler(x), metrics=["fid", "bogus"], dataset="ring2d", progress=False)
    with pytest.raises(ValueError, match="do not apply.*is: it needs class probabilities"):
        evaluate(ArraySampler(x), metrics="is", dataset="ring2d", progress=False)
    with pytest.raises(ValueError, match="dataset=NAME"):
        evaluate(ArraySampler(x), progress=False)
    with pytest.raises(ValueError, match="makes samples of shape"):
        evaluate(ArraySampler(np.zeros((4, 3))), dataset="ring2d", progress=False, n=10)
    with pytest.raises(TypeError, match="generate"):
        evaluate(object(), dataset="ring2d")
    with pytest.raises(FileNotFoundError, match="Nothing to evaluate"):
        evaluate("/no/such/run", progress=False)
    with pytest.raises(ValueError, match="Unknown extractor"):
        evaluate(ArraySampler(x), dataset="ring2d", extractor="vgg")


# ------------------------------------------------------------------------------------------- stacked MNIST
def test_stacked_mnist_channels_are_labelled_digits():
    x, y = data.load_arrays("stacked_mnist", "test", num_samples=50)
    digits, labels = data.load_arrays("mnist", "test")
    assert x.shape == (50, 28, 28, 3) and x.dtype == np.float32 and y.dtype == np.int32
    for i in range(50):
        for channel, place in enumerate((100, 10, 1)):
            match = np.flatnonzero(np.all(digits[..., 0] == x[i, :, :, channel], axis=(1, 2)))
            assert match.size and labels[match[0]] == y[i] // place % 10
    info = data.dataset_info("stacked_mnist")
    assert info["shape"] == (28, 28, 3) and info["num_classes"] == 1000 and info["splits"]["train"] == 50_000
    # Deterministic from the seed, different for another seed, and the lazy tf.data path gives the same images.
    np.testing.assert_array_equal(data.load_arrays("stacked_mnist", "test", num_samples=50)[0], x)
    assert not np.array_equal(data.load_arrays("stacked_mnist", "test", num_samples=50, seed=1)[0], x)
    batch, batch_labels = next(iter(data.load_dataset("stacked_mnist", "test", batch_size=50, shuffle=False,
                                                      num_samples=50)))
    np.testing.assert_array_equal(batch.numpy(), x)
    np.testing.assert_array_equal(batch_labels.numpy(), y)
    # Resized, the images are gathered a batch at a time; each equals its own resize.
    resized = next(iter(data.load_dataset("stacked_mnist", "test", batch_size=50, shuffle=False, num_samples=50,
                                          image_size=(32, 32), with_labels=False)))
    each = [tf.clip_by_value(tf.image.resize(image, (32, 32), antialias=True), -1.0, 1.0) for image in x]
    np.testing.assert_allclose(resized.numpy(), np.stack(each), atol=1e-6)


def test_stacked_mnist_evaluation_counts_predicted_triples(mnist_classifier):
    x, _ = data.load_arrays("stacked_mnist", "test", num_samples=300)
    result = evaluate(ArraySampler(x), metrics=["coverage", "is"], n=300, dataset="stacked_mnist",
                      classifier=mnist_classifier, progress=False)
    # Independent count: the classifier's digit for each channel, triples counted with NumPy.
    digits = np.stack([mnist_classifier.predict(x[..., c]) for c in range(3)], axis=1)
    codes = digits @ np.array([100, 10, 1])
    counts = np.bincount(codes, minlength=1000)
    q = counts[counts > 0] / 300
    coverage = result["metrics"]["coverage"]
    assert coverage["modes"] == len(np.unique(codes)) and coverage["num_modes"] == 1000
    assert coverage["kl"] == pytest.approx(float(np.sum(q * np.log(q * 1000))))
    assert coverage["channel_counts"] == [np.bincount(digits[:, c], minlength=10).tolist() for c in range(3)]
    assert result["extractor"]["name"] == "mnist_classifier_per_channel"
    assert 1.0 <= result["metrics"]["is"]["mean"] <= 1000.0


# ------------------------------------------------------------------------------------------- the alarm
class SwitchingGenerator:
    """Ring points over all 8 modes until `collapse_at` epochs have passed, then all on mode 0."""

    def __init__(self, collapse_at=None):
        self.centers, _ = data.mixture_modes("ring2d")
        self.collapse_at = collapse_at
        self.epoch = 0

    def generate(self, n, seed=None):
        modes = np.arange(n) % 8
        if self.collapse_at is not None and self.epoch >= self.collapse_at:
            modes[:] = 0
        return self.centers[modes]


def _run_alarm(alarm, generator, epochs):
    alarm.set_model(generator)
    alarm.on_train_begin()
    logged = []
    for epoch in range(epochs):
        generator.epoch = epoch
        logs = {"d_loss": 1.0}
        alarm.on_epoch_end(epoch, logs)
        logged.append(logs[alarm.name])
    return logged


def test_alarm_fires_on_a_collapse(capsys):
    alarm = ModeCollapseAlarm("ring2d", n=80, drop=2)
    with pytest.warns(RuntimeWarning, match="Mode collapse"):
        logged = _run_alarm(alarm, SwitchingGenerator(collapse_at=3), epochs=5)
    assert logged == [8, 8, 8, 1, 1]
    assert alarm.alarms == [(3, 1, 8)]  # once, at the epoch of the fall
    assert "modes_covered fell to 1" in capsys.readouterr().err


def test_alarm_is_silent_on_a_healthy_run():
    alarm = ModeCollapseAlarm("ring2d", n=80, every=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        logged = _run_alarm(alarm, SwitchingGenerator(collapse_at=None), epochs=5)
    assert logged == [8] * 5 and alarm.alarms == []
    assert [epoch for epoch, _ in alarm.history] == [0, 1, 3]  # first epoch, then every 2


def test_alarm_entropy_with_a_classifier():
    class ModeClassifier:
        """One-hot 'class' = index of the nearest ring mode (10 classes, two never used)."""

        def probabilities(self, points):
            centers, _ = data.mixture_modes("ring2d")
            nearest = np.argmin(np.linalg.norm(points[:, None] - centers[None], axis=-1), axis=1)
            return np.eye(10)[nearest]

    alarm = ModeCollapseAlarm(ModeClassifier(), n=80)
    with pytest.warns(RuntimeWarning):
        logged = _run_alarm(alarm, SwitchingGenerator(collapse_at=2), epochs=3)
    assert alarm.name == "mode_entropy"
    np.testing.assert_allclose(logged, [math.log(8), math.log(8), 0.0], atol=1e-12)


def test_alarm_errors():
    with pytest.raises(ValueError, match="every"):
        ModeCollapseAlarm("ring2d", every=0)
    with pytest.raises(ValueError, match="not a Gaussian mixture"):
        ModeCollapseAlarm("mnist")
    with pytest.raises(TypeError, match="monitor"):
        ModeCollapseAlarm(42)


def test_alarm_in_fit_is_recorded_by_csv_logger(tmp_path):
    config = presets.get_config(
        "ring2d", batch_size=64,
        networks={"generator": {"latent_dim": 2, "hidden": [8]}, "discriminator": {"hidden": [8]}},
    )
    model = presets.build_model(config)
    x, _ = data.load_arrays("ring2d", "train", num_samples=256)
    alarm = ModeCollapseAlarm("ring2d", n=100)
    csv_path = tmp_path / "history.csv"
    model.fit(x, batch_size=64, epochs=2, verbose=0, callbacks=[alarm, keras.callbacks.CSVLogger(str(csv_path))])
    with open(csv_path) as f:
        rows = list(csv.DictReader(f))
    assert [float(r["modes_covered"]) for r in rows] == [v for _, v in alarm.history]


# ------------------------------------------------------------------------------------------- the CLI
@pytest.fixture(scope="module")
def ring_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "ring"
    result = keras_gen("train", "ring2d", "--epochs", 1, "--out", out, "--verbose", 0)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def test_cli_evaluate_writes_json_and_table(ring_run):
    result = keras_gen("evaluate", ring_run, "--metrics", "coverage,fid", "--n", 500, "--no-progress")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| modes covered |" in result.stdout and "| FID |" in result.stdout
    saved = json.loads((ring_run / "eval.json").read_text())
    assert set(saved) >= {"source", "dataset", "num_samples", "num_real", "extractor", "metrics", "seed"}
    assert saved["dataset"] == "ring2d" and saved["num_samples"] == 500 and saved["source"]["type"] == "run"
    assert saved["environment"]["tensorflow"] == tf.__version__ and saved["environment"]["cpu_count"] == os.cpu_count()
    assert list(saved["metrics"]) == ["fid", "coverage"]
    assert set(saved["metrics"]["coverage"]) >= {"modes", "num_modes", "high_quality", "reverse_kl", "counts"}


def test_cli_evaluate_errors(ring_run, tmp_path, capsys):
    from keras_gen import cli  # in-process: the same code path as the console script, without a new interpreter

    with pytest.raises(SystemExit) as exit_info:  # argparse rejects unknown names before anything is loaded
        cli.main(["evaluate", str(ring_run), "--metrics", "fid,bogus"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "bogus" in err and "fid, kid, is, pr, coverage" in err
    assert cli.main(["evaluate", str(ring_run), "--metrics", "is", "--out", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err
    assert "do not apply" in err and "is: it needs class probabilities" in err and not (tmp_path / "x.json").exists()
    assert cli.main(["evaluate", str(tmp_path / "nothing")]) == 2
    assert "Nothing to evaluate" in capsys.readouterr().err


def test_evaluate_an_export_like_its_run(ring_run, tmp_path):
    export = pytest.importorskip("keras_gen.export")
    if not hasattr(export, "load"):
        pytest.skip("keras_gen.export has no load() yet")
    result = export.export_run(ring_run, base_dir=tmp_path / "exports", formats="savedmodel")
    from_export = evaluate(result.path, metrics="coverage", progress=False)
    from_run = evaluate(ring_run, metrics="coverage", progress=False)
    assert from_export["source"]["type"] == "export" and from_export["dataset"] == "ring2d"  # from the manifest
    # The artifact reproduces model.generate(n, seed), so the counts agree exactly.
    assert from_export["metrics"]["coverage"]["counts"] == from_run["metrics"]["coverage"]["counts"]


# ------------------------------------------------------------------------------------------- the benchmark
def test_benchmark_quick_run(tmp_path):
    out = tmp_path / "mode_collapse.json"
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "mode_collapse.py"), "--quick", "--epochs", "1",
         "--presets", "ring2d,grid2d", "--out", str(out), "--plots", str(tmp_path)],
        capture_output=True, text=True, timeout=600, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2D ring" in result.stdout and "PacGAN" in result.stdout and "keras-gen goal" in result.stdout
    saved = json.loads(out.read_text())
    assert saved["seeds"] == [0] and set(saved["results"]) == {"ring2d", "grid2d"}
    run = saved["results"]["ring2d"]["runs"][0]
    assert set(run) >= {"seed", "modes", "high_quality", "reverse_kl", "seconds"}
    assert (tmp_path / "mode_collapse_ring2d.png").is_file()
    # The calibration rows score fresh training data the same way: every mode, ~98.9% within 3 sigma
    # (1 - exp(-4.5) for a 2-D Gaussian), and a KL near the multinomial noise (K - 1) / 2N.
    for dataset, modes in (("ring2d", 8), ("grid2d", 25)):
        real = saved["calibration"][dataset]
        assert real["modes"] == modes and 0.975 < real["high_quality"] < 0.995, real
        assert real["reverse_kl"] < 4 * (modes - 1) / (2 * 2500), real
    assert "training data, 2,500 samples (calibration)" in result.stdout


def _benchmark(name):
    """A script of benchmarks/ (or of experiments/, the studies) as a module (they are not packages)."""
    import importlib.util

    path = os.path.join(ROOT, "benchmarks", f"{name}.py")
    if not os.path.isfile(path):
        path = os.path.join(ROOT, "experiments", f"{name}.py")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_input_pipeline_benchmark_counts_what_fit_would_see(tmp_path):
    bench = _benchmark("input_pipeline")
    out = tmp_path / "pipeline.json"
    assert bench.main(["--datasets", "digits,ring2d", "--batch-size", "50", "--repeats", "2", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    rows = {row["dataset"]: row for row in report["rows"]}
    for name, row in rows.items():
        size = data.dataset_info(name)["splits"]["train"]
        assert row["batches"] == size // 50 and row["examples"] == 50 * (size // 50), row  # last partial dropped
        assert len(row["runs"]) == 2 and row["seconds_per_epoch"] > 0
        assert f"| {name} | {row['batches']} | {row['seconds_per_epoch']:.2f} |" in report["table"]
    with pytest.raises(SystemExit):
        bench.main(["--datasets", "mnistt"])


def test_benchmark_stacked_table_shows_the_channel_kls():
    """The stacked-MNIST table: a run with per-channel KLs shows their sum; an older run without them a dash."""
    bench = _benchmark("mode_collapse")
    runs = [{"seed": s, "modes": 1000, "kl": kl, "channel_kl_sum": c, "num_samples": 26000}
            for s, kl, c in ((0, 0.2, 0.15), (1, 0.1, 0.05))]
    mean, std = bench.summarize(runs, ("modes", "kl", "channel_kl_sum"))
    assert mean["channel_kl_sum"] == pytest.approx(0.1) and std["channel_kl_sum"] == pytest.approx(0.05)
    results = {
        "new": {"dataset": "stacked_mnist", "runs": runs, "mean": mean, "std": std, "goal_met": False,
                "seconds_per_run": 1.0},
        "old": {"dataset": "stacked_mnist", "runs": runs[:1], "mean": {"modes": 1000.0, "kl": 0.2},
                "std": {"modes": 0.0, "kl": 0.0}, "goal_met": False, "seconds_per_run": 1.0},
    }
    table = bench.format_tables(results, {"stacked_mnist": {"modes": 1000, "kl": 0.02, "channel_kl_sum": 0.001}})
    assert "| channel KLs, summed |" in table
    assert "| new | 1000.0 ± 0.0 | 0.150 ± 0.050 | 0.100 ± 0.050 | no | 2 | 1 |" in table
    assert "| old | 1000.0 | 0.200 | — | no | 1 | 1 |" in table
    assert "| 1000 | 0.020 | 0.001 | | | |" in table


def test_sweep_scores_like_stacked_mnist_modes():
    """benchmarks/stacked_mnist_sweep.py scores its PyTorch runs with its own NumPy code; on skewed random triples
    it must give what `stacked_mnist_modes` gives, and the confidence share is counted by hand."""
    from keras_gen.metrics import stacked_mnist_modes

    sweep = _benchmark("stacked_mnist_sweep")  # imports NumPy only at module level: PyTorch stays unneeded here
    rng = np.random.default_rng(0)
    digits = rng.choice(10, size=(3000, 3), p=np.linspace(1, 3, 10) / 20)  # (3000, 3), skewed toward 9
    confidence = np.tile([0.5, 0.95, 0.99], (3000, 1))  # one channel in three below 0.9
    scores, expected = sweep.summarize(digits, confidence), stacked_mnist_modes(digits)
    assert scores["modes"] == expected["modes"] < 1000
    assert scores["kl"] == pytest.approx(expected["kl"], rel=1e-12) and scores["kl"] > 0.05
    assert scores["channel_kl_sum"] == pytest.approx(sum(expected["channel_kl"]), rel=1e-12)
    assert scores["low_confidence"] == pytest.approx(1 / 3)


def test_benchmark_curve_scores_epoch_n_as_an_n_epoch_run_would(tmp_path):
    """`--curve-every K` scores during training; epoch N of a longer run must score exactly as an N-epoch run (the
    scoring draws from fixed latents and leaves training's random numbers alone), and the table shows the curve."""
    bench = _benchmark("mode_collapse")
    common = ["--presets", "ring2d", "--seeds", "1", "--plots", str(tmp_path)]
    bench.main(common + ["--epochs", "16", "--curve-every", "8", "--out", str(tmp_path / "long.json")])
    bench.main(common + ["--epochs", "8", "--out", str(tmp_path / "short.json")])
    with open(tmp_path / "long.json") as f:
        long = json.load(f)
    with open(tmp_path / "short.json") as f:
        short = json.load(f)["results"]["ring2d"]["runs"][0]
    curve = long["results"]["ring2d"]["runs"][0]["curve"]
    assert [point["epoch"] for point in curve] == [8, 16]
    assert curve[0]["high_quality"] > 0.1 and curve[0]["reverse_kl"] is not None  # a real score to compare
    for key in ("modes", "high_quality", "reverse_kl"):
        assert curve[0][key] == short[key], key
        assert curve[1][key] == long["results"]["ring2d"]["runs"][0][key], key
    assert "| preset | seed | epoch 8 | epoch 16 |" in long["table"]
    assert "curve" not in short


def test_benchmark_resumes_a_run_from_its_backup(tmp_path):
    """`--backup`: rerunning a finished run restores it and only scores it again (the same numbers, its curve and
    training seconds taken back); a run given more epochs resumes where its backup ends, keeps the curve up to there
    (not a point the stopped process wrote past its last backup) and records where it resumed."""
    bench = _benchmark("mode_collapse")
    common = ["--presets", "ring2d", "--seeds", "1", "--curve-every", "4", "--backup", str(tmp_path / "backup"),
              "--plots", str(tmp_path)]

    def run(name, epochs):
        bench.main(common + ["--epochs", str(epochs), "--out", str(tmp_path / name)])
        with open(tmp_path / name) as f:
            return json.load(f)["results"]["ring2d"]["runs"][0]

    first = run("first.json", 8)
    assert [point["epoch"] for point in first["curve"]] == [4, 8] and "resumed_at" not in first
    again = run("again.json", 8)
    for key in ("modes", "high_quality", "reverse_kl", "curve"):
        assert again[key] == first[key], key
    assert again["seconds"] == pytest.approx(first["seconds"], abs=0.5)  # not the seconds of a second training
    state = tmp_path / "backup" / "ring2d_seed0" / "curve.json"
    saved = json.loads(state.read_text())
    assert saved["epoch"] == 8
    saved["curve"].append({**saved["curve"][-1], "epoch": 12})  # written by a process stopped before its backup
    state.write_text(json.dumps(saved))
    longer = run("longer.json", 12)
    assert [point["epoch"] for point in longer["curve"]] == [4, 8, 12] and longer["curve"][:2] == first["curve"]
    assert longer["resumed_at"] == [8] and longer["seconds"] > first["seconds"]
    assert longer["curve"][2]["seconds"] > first["curve"][1]["seconds"]


def test_benchmark_curve_also_scores_the_generator_weight_average(tmp_path, monkeypatch):
    """With a ``use_ema`` generator optimizer the curve scores the live weights and, in brackets, the average; the
    last epoch's average is what fit leaves in place, so it scores exactly as the finished run."""
    from keras_gen import presets

    bench = _benchmark("mode_collapse")
    averaged = copy.deepcopy(presets.PRESETS["ring2d"])
    averaged["optimizers"]["g_optimizer"]["config"].update(use_ema=True, ema_momentum=0.99)
    monkeypatch.setitem(presets.PRESETS, "ring2d-ema", averaged)
    bench.main(["--presets", "ring2d-ema", "--seeds", "1", "--epochs", "16", "--curve-every", "8", "--plots",
                str(tmp_path), "--out", str(tmp_path / "ema.json")])
    with open(tmp_path / "ema.json") as f:
        saved = json.load(f)
    run = saved["results"]["ring2d-ema"]["runs"][0]
    assert run["weights"] == "averaged"
    assert [point["epoch"] for point in run["curve"]] == [8, 16]
    last = run["curve"][-1]
    for key in ("modes", "high_quality", "reverse_kl"):
        assert last["averaged"][key] == run[key], key
    assert last["averaged"]["high_quality"] != last["high_quality"]  # the live weights are another generator
    cell = f"{last['reverse_kl']:.3f} ({last['averaged']['reverse_kl']:.3f})"
    assert f"| ring2d-ema | 0 | {run['curve'][0]['reverse_kl']:.3f} (" in saved["table"] and cell in saved["table"]


def test_benchmark_scores_the_average_on_recomputed_statistics_and_puts_training_ones_back():
    """The curve's third score (stacked MNIST): inside ``_standing_statistics`` the generator's batch norms hold
    what `recompute_generator_statistics` computes; afterwards, also after an exception, the ones training keeps."""
    from tests.test_gan import IMAGES, small_gan

    bench = _benchmark("mode_collapse")
    gan = small_gan()
    gan.fit(IMAGES, epochs=1, batch_size=4, verbose=0)
    layers = gan._generator_batch_norms()
    assert layers
    kept = [(layer.moving_mean.numpy(), layer.moving_variance.numpy()) for layer in layers]
    gan.recompute_generator_statistics()
    recomputed = [(layer.moving_mean.numpy(), layer.moving_variance.numpy()) for layer in layers]
    for layer, (mean, variance) in zip(layers, kept):
        layer.moving_mean.assign(mean)
        layer.moving_variance.assign(variance)
    assert not np.allclose(recomputed[0][1], kept[0][1])  # one epoch: training's statistics are another thing
    for fail in (False, True):
        with pytest.raises(KeyboardInterrupt) if fail else contextlib.nullcontext():
            with bench._standing_statistics(gan):
                for layer, (mean, variance) in zip(layers, recomputed):
                    np.testing.assert_array_equal(layer.moving_mean.numpy(), mean)
                    np.testing.assert_array_equal(layer.moving_variance.numpy(), variance)
                if fail:
                    raise KeyboardInterrupt
        for layer, (mean, variance) in zip(layers, kept):
            np.testing.assert_array_equal(layer.moving_mean.numpy(), mean)
            np.testing.assert_array_equal(layer.moving_variance.numpy(), variance)
    point = {"kl": 0.06, "averaged": {"kl": 0.0512}, "standing": {"kl": 0.048}}
    assert bench._curve_cell(point, "kl") == "0.060 (0.051, 0.048)"
    assert bench._curve_cell({"kl": 0.06, "averaged": {"kl": 0.0512}}, "kl") == "0.060 (0.051)"
    assert bench._curve_cell({"kl": 0.06}, "kl") == "0.060"


def test_benchmark_combine_pools_the_seeds_of_separate_runs(tmp_path, capsys):
    """Runs made side by side (one seed per process) pool into one row: the mean over both seeds, each run kept;
    a seed given twice, or runs of another length, are refused with a message naming the file; runs of different
    keras-gen revisions, or timed on different processors, pool with a note naming them."""
    from keras_gen import provenance

    bench = _benchmark("mode_collapse")
    common = ["--presets", "ring2d", "--seeds", "1", "--epochs", "8", "--plots", str(tmp_path)]
    for seed in (0, 1):
        bench.main(common + ["--first-seed", str(seed), "--out", str(tmp_path / f"seed{seed}.json")])
    runs = [json.loads((tmp_path / f"seed{s}.json").read_text())["results"]["ring2d"]["runs"][0] for s in (0, 1)]
    assert runs[0]["high_quality"] != runs[1]["high_quality"]  # two different runs to pool
    bench.main(["--combine", str(tmp_path / "seed0.json"), str(tmp_path / "seed1.json"), "--out",
                str(tmp_path / "both.json")])
    both = json.loads((tmp_path / "both.json").read_text())
    pooled = both["results"]["ring2d"]
    assert [run["seed"] for run in pooled["runs"]] == [0, 1] and both["seeds"] == [0, 1]
    assert pooled["mean"]["high_quality"] == pytest.approx((runs[0]["high_quality"] + runs[1]["high_quality"]) / 2)
    assert pooled["std"]["high_quality"] == pytest.approx(abs(runs[0]["high_quality"] - runs[1]["high_quality"]) / 2)
    assert len(both["invocations"]) == 2 and "| ring2d |" in both["table"] and "| 2 |" in both["table"]
    assert [i["environment"]["source"] for i in both["invocations"]] == [provenance.source_revision()] * 2
    out = capsys.readouterr().out
    assert "revisions of keras-gen" not in out and "processors" not in out
    other = json.loads((tmp_path / "seed1.json").read_text())
    other["invocations"][0]["environment"]["source"] = {"commit": "0123456789abcdef", "dirty": True}
    other["invocations"][0]["environment"].update(processor="Another CPU", cpu_count=64)
    (tmp_path / "other.json").write_text(json.dumps(other))
    bench.main(["--combine", str(tmp_path / "seed0.json"), str(tmp_path / "other.json"), "--out",
                str(tmp_path / "other_both.json")])
    out = capsys.readouterr().out
    assert "0123456+dirty" in out.split("come from 2 revisions of keras-gen")[1]
    assert f"{provenance.processor()} x{os.cpu_count()}; Another CPU x64" in out.split("timed on 2 processors")[1]
    with pytest.raises(SystemExit, match="seed 0 is already"):
        bench.main(["--combine", str(tmp_path / "seed0.json"), str(tmp_path / "seed0.json"), "--out",
                    str(tmp_path / "twice.json")])
    bench.main(common[:-4] + ["--epochs", "4", "--first-seed", "2", "--plots", str(tmp_path), "--out",
                              str(tmp_path / "short.json")])
    with pytest.raises(SystemExit, match="ran 4 epochs"):
        bench.main(["--combine", str(tmp_path / "seed0.json"), str(tmp_path / "short.json"), "--out",
                    str(tmp_path / "mixed.json")])
    (tmp_path / "broken.json").write_text("{not json")
    for bad in ("broken.json", "missing.json"):
        with pytest.raises(SystemExit, match=f"--combine .*{bad}: not a mode_collapse.py JSON report"):
            bench.main(["--combine", str(tmp_path / "seed0.json"), str(tmp_path / bad), "--out",
                        str(tmp_path / "bad.json")])
    assert not any((tmp_path / f).exists() for f in ("twice.json", "mixed.json", "bad.json"))


def test_stacked_digits_benchmark_splits_the_kl_of_a_generator_it_loads(tmp_path, mnist_classifier, capsys):
    """benchmarks/stacked_digits.py on a generator whose weights are all zero (so every sample is one constant
    image): every vote goes to one digit, so KL = log 1000, each channel's KL = log 10 and nothing is left over.
    A freshly built generator draws varied images, so these numbers show the weights were loaded."""
    bench = _benchmark("stacked_digits")
    model = presets.build_model(presets.get_config("r1-ema-stacked-mnist"))
    for variable in model.generator.trainable_variables:
        variable.assign(np.zeros(variable.shape, variable.dtype))
    backup = tmp_path / "r1-ema-stacked-mnist_seed3"
    backup.mkdir()
    model.save_weights(str(backup / "latest.weights.h5"))
    out = tmp_path / "digits.json"
    assert bench.main(["--backup", str(backup), "--classifier", mnist_classifier.path, "--n", "120",
                       "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert (report["preset"], report["seed"]) == ("r1-ema-stacked-mnist", 3)  # read from the folder's name
    assert bench.parse_args(["--backup", str(backup), "--classifier-seed", "2"]).classifier_seed == [2]
    assert bench.parse_args(["--backup", str(backup), "--classifier-seed", "0,3,1"]).classifier_seed == [0, 3, 1]
    assert report["classifier"]["path"] == mnist_classifier.path
    rows = report["rows"]
    assert list(rows) == ["training data (120)", "generator, averaged weights", "generator, live weights"]
    blank = int(mnist_classifier.predict(np.zeros((1, 28, 28, 1), "float32"))[0])
    for label in list(rows)[1:]:
        scores = rows[label]
        assert scores["votes"] == [1.0 if d == blank else 0.0 for d in range(10)]
        assert scores["modes"] == 1
        np.testing.assert_allclose([scores["kl"], scores["channel_kl_sum"], scores["rest"]],
                                   [math.log(1000), 3 * math.log(10), 0.0], atol=1e-9)
        np.testing.assert_allclose(sum(scores["probability"]), 1.0, rtol=1e-5)
    real = rows["training data (120)"]
    assert real["modes"] > 1 and sum(real["votes"]) == pytest.approx(1.0)  # varied images (the tiny classifier
    # reads them poorly: no closed form here)
    printed = capsys.readouterr().out
    assert f"| generator, live weights | votes % | {' | '.join('100.0' if d == blank else '0.0' for d in range(10))}" \
        in printed
    rarest = 1 if blank == 0 else 0  # the first digit with no votes
    assert printed.rstrip().endswith(f"| seed 3 | classifier 0 | {100 * mnist_classifier.accuracy:.1f} % | "
                                     f"6.908 (6.908) | 6.908 | 0.000 | {rarest} (0.0) | {blank} (100.0) |")

    typo = str(tmp_path / "typo.keras")
    for argv, message in ((["--weights", str(backup / "latest.weights.h5")], "--weights needs --preset"),
                          (["--backup", str(tmp_path)], "is not named PRESET_seedS"),
                          (["--backup", str(backup), "--preset", "grid2d"], "trains on grid2d, not stacked_mnist"),
                          (["--backup", str(backup), "--preset", "r1-stacked"], "'r1-stacked' is not a preset; the "
                           "stacked-MNIST presets are dcgan-stacked-mnist, "),
                          (["--backup", str(tmp_path / "dcgan-stacked-mnist_seed0")], "No weights at"),
                          (["--backup", str(backup), "--classifier", typo], "No classifier at"),
                          (["--backup", str(backup), "--seed", "-1"], "--seed must be in [0, 2**32), got -1"),
                          (["--backup", str(backup), "--classifier", mnist_classifier.path, "--classifier-seed", "1"],
                           "not allowed with argument"),
                          (["--backup", str(backup), "--classifier-seed", "0,x"], "expected seeds like 0 or 0,1,2,3; "
                           "got '0,x'"),
                          (["--backup", str(backup), "--classifier-seed", "1,1"], "distinct and >= 0; got '1,1'")):
        with pytest.raises(SystemExit):
            bench.parse_args(argv)
        assert message in capsys.readouterr().err
    (tmp_path / "broken.weights.h5").write_bytes(b"not HDF5")  # a truncated or foreign file: named, not a traceback
    with pytest.raises(SystemExit, match="Could not load .*broken.weights.h5.* into the r1-stacked-mnist model"):
        bench.main(["--weights", str(tmp_path / "broken.weights.h5"), "--preset", "r1-stacked-mnist",
                    "--classifier", mnist_classifier.path, "--out", str(out)])
    assert json.loads(out.read_text())["seed"] == 3  # the earlier report is untouched


def test_stacked_digits_reads_each_digit_by_the_mean_of_several_classifiers(tmp_path, mnist_classifier):
    """``--classifier A --classifier B``: every share is that of the mean of A's and B's probabilities, checked
    against the two classifiers run separately, and the reader's accuracy is that mean's on the test digits."""
    bench = _benchmark("stacked_digits")
    other = domain_classifier("mnist", path=tmp_path / "other.keras", **{**TINY, "seed": 1})
    model = presets.build_model(presets.get_config("r1-stacked-mnist", seed=5))
    model.save_weights(str(tmp_path / "g.weights.h5"))
    out = tmp_path / "mean.json"
    assert bench.main(["--weights", str(tmp_path / "g.weights.h5"), "--preset", "r1-stacked-mnist", "--n", "64",
                       "--classifier", mnist_classifier.path, "--classifier", other.path, "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    real, _ = data.load_arrays("stacked_mnist", split="train", num_samples=64, seed=0)
    channels = [(mnist_classifier.probabilities(real[..., c : c + 1]) + other.probabilities(real[..., c : c + 1])) / 2
                for c in range(3)]
    votes = np.concatenate([p.argmax(axis=1) for p in channels])
    scores = report["rows"]["training data (64)"]
    np.testing.assert_allclose(scores["probability"], np.concatenate(channels).mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(scores["votes"], np.bincount(votes, minlength=10) / len(votes))
    alone = [mnist_classifier.predict(real[..., c : c + 1]) for c in range(3)]
    assert not np.array_equal(np.concatenate(alone), votes)  # the second classifier changed some votes
    x, y = data.load_arrays("mnist", "test")
    accuracy = np.mean(((mnist_classifier.probabilities(x) + other.probabilities(x)) / 2).argmax(axis=1) == y)
    assert report["classifier"]["accuracy"] == pytest.approx(accuracy)
    assert [m["path"] for m in report["classifier"]["members"]] == [mnist_classifier.path, other.path]
    assert report["classifier"]["name"] == "mean of 2 mnist classifiers"
    assert bench.reader_label(report["classifier"]) == "mean of classifiers 0-1"  # the TINY ones' seeds
    members = [{**member, "training": None} for member in report["classifier"]["members"]]  # a file of unknown origin
    assert bench.reader_label({"members": members}) == "mean of tiny.keras, other.keras"
