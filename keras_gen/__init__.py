"""keras-gen: generative image models (GANs, VAEs) for Keras 3.

    import keras_gen
    gan = keras_gen.build_model(keras_gen.get_config("dcgan"))
    gan.fit(keras_gen.load_dataset("mnist"), epochs=5)
    images = gan.generate(64, seed=0)

`keras_gen.export` (SavedModel / TFLite / ONNX) and `keras_gen.serving` (TF Serving protocol) are imported
on their own: ``import keras_gen.export``.
"""

from keras_gen.version import __version__  # noqa: F401

from keras_gen import latent, losses, metrics, networks, provenance
from keras_gen.data import dataset_info, load_arrays, load_dataset
from keras_gen.models import GAN, VAE, VQVAE, PixelCNN
from keras_gen.presets import PRESETS, RunConfig, build_model, get_config, list_presets
from keras_gen.runs import evaluate_run, load_run, train_run

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
