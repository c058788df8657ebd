"""`evaluate` end to end on stand-in samplers and real digits: the metrics it picks, the samples it draws, stacked
MNIST.

Expected values are constructed (points placed on known modes, a sampler that returns real digits, channels
that are known test digits) or computed here with NumPy, never copied from the code's output."""

import json
import math

import numpy as np
import pytest
import tensorflow as tf

from keras_gen import data
from keras_gen.runs import evaluate_run
from keras_gen.metrics import (
    METRICS,
    evaluate,
    fid_from_features,
    format_table,
    generate_samples,
)
from tests.helpers import ArraySampler, DictSampler


# ------------------------------------------------------------------------------------------- evaluate: samplers
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
    for bad, message in (({"n": 0}, "`n` must be a positive integer, got 0"),
                         ({"batch_size": 2.5}, "`batch_size` must be a positive integer, got 2.5"),
                         ({"seed": -1}, "`seed` must be a non-negative integer, got -1")):
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
    with pytest.raises(TypeError, match="takes a model or a sampler, not the path '/no/such/run'.*evaluate_run"):
        evaluate("/no/such/run", progress=False)
    with pytest.raises(FileNotFoundError, match="Nothing at '/no/such/run'"):
        evaluate_run("/no/such/run", progress=False)
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
