"""keras_gen.serving: sample from exported generators over TF Serving's gRPC and REST protocol.

Three things, all on the export layout of `keras_gen.export` (``BASE/NAME/VERSION/``, a SavedModel with named
signatures, ONNX files and ``manifest.json``):

- a client for any TF-Serving-protocol endpoint (the ``tensorflow/serving`` image, or the server below)::

      from keras_gen.serving import SamplerClient
      client = SamplerClient("127.0.0.1:8500", model="dcgan", timeout=10, retries=2)
      pixels = client.sample(64, seed=0)       # uint8 (64, 28, 28, 1) == model.generate(64, seed=0) as pixels

  `RestSamplerClient` has the same methods over REST; ``keras-gen sample --server HOST:8500 --model NAME``.
- a local server speaking the same protocol (no TF Serving binary or Docker engine needed)::

      keras-gen serve exports [--grpc-port 8500] [--rest-port 8501] [--backend savedmodel|onnx] [--batching]

  or `ModelServer` / `serve` from Python.
- deployment files for the real ``tensorflow/serving`` image in this folder: ``models.config``,
  ``docker-compose.yml``, ``batching.config``, ``monitoring.config`` and the guide ``README.md``
  (`deployment_file` gives their paths).

Modules: `client`, `server` (`ModelServer`), `manager` (versions and hot swaps), `service` (validation and
limits), `grpc_server`, `rest_server`, `batching`, `backends` (SavedModel and ONNX Runtime), `config` (TF
Serving's config files), `tensors` (``TensorProto`` and JSON conversions), `errors`, `metrics`. gRPC, the TF
Serving stubs and ONNX Runtime are imported when first used.
"""

import importlib
import os

__all__ = [
    "BatchingParameters",
    "ModelServer",
    "ModelSource",
    "Prediction",
    "RequestError",
    "RestSamplerClient",
    "SamplerClient",
    "ServerUnavailableError",
    "ServingError",
    "deployment_file",
    "serve",
    "write_models_config",
]

_LAZY = {
    "BatchingParameters": "keras_gen.serving.batching",
    "ModelServer": "keras_gen.serving.server",
    "serve": "keras_gen.serving.server",
    "ModelSource": "keras_gen.serving.config",
    "write_models_config": "keras_gen.serving.config",
    "Prediction": "keras_gen.serving.client",
    "SamplerClient": "keras_gen.serving.client",
    "RestSamplerClient": "keras_gen.serving.client",
    "ServingError": "keras_gen.serving.errors",
    "RequestError": "keras_gen.serving.errors",
    "ServerUnavailableError": "keras_gen.serving.errors",
}

DEPLOYMENT_FILES = ("models.config", "docker-compose.yml", "batching.config", "monitoring.config", "README.md")


def deployment_file(name):
    """The path of one of the deployment files shipped in this package (`DEPLOYMENT_FILES`)."""
    if name not in DEPLOYMENT_FILES:
        raise ValueError(f"Unknown deployment file {name!r}. Valid: {', '.join(DEPLOYMENT_FILES)}.")
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), name)


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'keras_gen.serving' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
