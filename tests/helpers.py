"""Helpers shared by test files: the repository root, tiny classifier settings, stand-in samplers and loading
the scripts of benchmarks/ and experiments/ (which are not packages) as modules."""

import importlib.util
import os

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_CLASSIFIER = dict(epochs=1, num_samples=256, width=4, batch_size=32)
"""`domain_classifier` settings that train in seconds (for tests that need a classifier, not a good one)."""


def load_script(name):
    """A script of benchmarks/ (or of experiments/, the studies) as a module."""
    path = os.path.join(ROOT, "benchmarks", f"{name}.py")
    if not os.path.isfile(path):
        path = os.path.join(ROOT, "experiments", f"{name}.py")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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


def randomize_normalization(model, seed=0):
    """Moves batch-norm statistics and (conditional) scales / offsets of a model's generator, decoder or encoder away
    from their identity initial values, so that a dropped label or a skipped normalization would show."""
    generator = np.random.default_rng(seed)
    for network in (getattr(model, name, None) for name in ("generator", "decoder", "encoder")):
        if network is None:
            continue
        for weight in network.weights:
            leaf = weight.path.rsplit("/", 1)[-1]
            if leaf in ("gamma", "moving_variance"):
                weight.assign(generator.uniform(0.5, 1.5, weight.shape).astype("float32"))
            elif leaf in ("beta", "moving_mean"):
                weight.assign(generator.uniform(-0.3, 0.3, weight.shape).astype("float32"))
    return model
