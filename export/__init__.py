"""keras_gen.export: SavedModel (TF Serving layout), TFLite and ONNX writers, each artifact reloaded and checked
against Keras before it is reported as written.

    import keras_gen.export as kx
    result = kx.export_model(gan, "exports", "dcgan", quantize="fp16,int8")   # exports/dcgan/1/
    result = kx.export_run("runs/dcgan", base_dir="exports")                   # or: keras-gen export runs/dcgan
    sampler = kx.load("exports/dcgan/1", format="onnx")
    images = sampler.sample(64, seed=0)                                         # == gan.generate(64, seed=0)

Modules: `adapters` (which networks and endpoints each model kind exports), `savedmodel`, `tflite`, `onnx`
(writers and runners), `parity` (the checks and tolerances), `manifest` (``manifest.json``), `exporter`
(`export_model`, `export_run`: staging, versions, cleanup) and `loader` (`load`, `Sampler`).

The heavy converters (tf2onnx, onnxruntime, ai_edge_litert) are imported inside the functions that use them.
"""

from keras_gen.export.adapters import Endpoint, GANAdapter, ModelAdapter, VAEAdapter, get_adapter, register_adapter
from keras_gen.export.errors import ExportError, ParityError, UnsupportedModelError
from keras_gen.export.exporter import (
    FORMATS,
    QUANTIZATIONS,
    ExportResult,
    export_model,
    export_run,
    next_version,
    supported_formats,
)
from keras_gen.export.loader import Sampler, load
from keras_gen.export.manifest import MANIFEST_FILE, read_manifest
from keras_gen.export.parity import BATCH_SIZES, TOLERANCES

__all__ = [
    "BATCH_SIZES",
    "Endpoint",
    "ExportError",
    "ExportResult",
    "FORMATS",
    "GANAdapter",
    "MANIFEST_FILE",
    "ModelAdapter",
    "ParityError",
    "QUANTIZATIONS",
    "Sampler",
    "TOLERANCES",
    "UnsupportedModelError",
    "VAEAdapter",
    "export_model",
    "export_run",
    "get_adapter",
    "load",
    "next_version",
    "read_manifest",
    "register_adapter",
    "supported_formats",
]
