"""keras-gen: generative image models (GANs, VAEs) for Keras 3.

    import keras_gen
    gan = keras_gen.build_model(keras_gen.get_config("dcgan"))
    gan.fit(keras_gen.load_dataset("mnist"), epochs=5)
    images = gan.generate(64, seed=0)

`keras_gen.export` (SavedModel / TFLite / ONNX) and `keras_gen.serving` (TF Serving protocol) are imported
on their own: ``import keras_gen.export``.

``import keras_gen`` itself is cheap: it does not import TensorFlow (the ``keras-gen`` command answers ``--help``
without it). Each public name is imported when it is first used (PEP 562). ``keras.models.load_model`` reads a
saved keras-gen model once the package's models are imported: by ``import keras_gen`` after ``import keras``, by
any use of a model (``keras_gen.GAN``, `keras_gen.load_run`), or by ``import keras_gen.models``.
"""

import importlib
import importlib.util
import sys

from keras_gen.version import __version__  # noqa: F401

__all__ = [
    "GAN",
    "PRESETS",
    "PixelCNN",
    "VAE",
    "VQVAE",
    "RunConfig",
    "build_model",
    "dataset_info",
    "evaluate_run",
    "from_preset",
    "get_config",
    "latent",
    "list_presets",
    "load_arrays",
    "load_dataset",
    "load_run",
    "losses",
    "metrics",
    "networks",
    "provenance",
    "train_run",
]

_LAZY = {
    "GAN": "keras_gen.models",
    "PixelCNN": "keras_gen.models",
    "VAE": "keras_gen.models",
    "VQVAE": "keras_gen.models",
    "PRESETS": "keras_gen.presets",
    "RunConfig": "keras_gen.presets",
    "build_model": "keras_gen.presets",
    "get_config": "keras_gen.presets",
    "list_presets": "keras_gen.presets",
    "dataset_info": "keras_gen.data",
    "load_arrays": "keras_gen.data",
    "load_dataset": "keras_gen.data",
    "evaluate_run": "keras_gen.runs",
    "load_run": "keras_gen.runs",
    "train_run": "keras_gen.runs",
    "from_preset": "keras_gen.pretrained",
}
"""Public name -> the module that defines it. The submodules of ``__all__`` (``latent``, ``losses``, ...) are
imported by name."""


def _register_with_keras():
    """Imports the modules whose classes are registered Keras serializables (this imports TensorFlow)."""
    importlib.import_module("keras_gen.networks")
    importlib.import_module("keras_gen.models")


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    elif not name.startswith("__") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        value = importlib.import_module(f"{__name__}.{name}")  # a submodule: keras_gen.data, keras_gen.losses, ...
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))


if "keras" in sys.modules:  # `import keras` came first: Keras can already load saved keras-gen models
    _register_with_keras()
