"""The domain classifier of the digit datasets: deterministic training, its cache, its outputs and errors."""

import os

import numpy as np
import pytest

from keras_gen import data
from keras_gen.metrics import (
    DomainClassifier,
    domain_classifier,
)
from tests.helpers import TINY_CLASSIFIER


# ------------------------------------------------------------------------------------------- the domain classifier
def test_classifier_training_is_deterministic_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_GEN_CACHE", str(tmp_path / "a"))
    first = domain_classifier("mnist", **TINY_CLASSIFIER)
    monkeypatch.setenv("KERAS_GEN_CACHE", str(tmp_path / "b"))
    second = domain_classifier("mnist", **TINY_CLASSIFIER)
    assert first.path.startswith(str(tmp_path / "a")) and second.path.startswith(str(tmp_path / "b"))
    # Non-default training arguments never take the default file's name.
    assert os.path.basename(first.path) != "mnist_classifier.keras"
    for a, b in zip(first.model.get_weights(), second.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)

    # A later call loads the file instead of training again (the file is not rewritten).
    stamp = os.stat(second.path).st_mtime_ns
    again = domain_classifier("mnist", **TINY_CLASSIFIER)
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
