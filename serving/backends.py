"""Servables: one loaded version of an exported model, behind named signatures.

Two backends read the export layout of `keras_gen.export` (``BASE/NAME/VERSION/``):

- ``savedmodel``: the SavedModel's signatures through `tf.saved_model.load` (every signature the export wrote:
  ``serving_default``, ``generate``, ``generate_uint8``, ``sample``, ``sample_uint8``, ...). GetModelMetadata
  answers with the ``SignatureDef`` s stored in ``saved_model.pb``, as TF Serving does.
- ``onnx``: the export's ``onnx/<endpoint>.onnx`` files through ONNX Runtime, one signature per file, plus
  ``serving_default`` (the export's alias of ``generate``) and ``sample`` / ``sample_uint8``, which ONNX files
  cannot hold (stateless random ops, see ``docs/export.md``). Here they are computed the way `keras_gen.export.load`
  does: the latent's parts drawn by the `keras_gen.latent_spec.LatentSpec` that ``manifest.json`` records
  (``z = keras_gen.rng.normal((n, *latent_shape), seed=[seed, 0])`` for a standard normal ``z``), then the
  ``generate`` / ``generate_uint8`` ONNX graph. The answer equals the SavedModel's ``sample`` (and
  ``model.generate(n, labels, seed)``) up to float rounding.

A servable checks nothing about its inputs; `keras_gen.serving.service.PredictionCore` validates requests
against `Signature` before calling `Servable.run`.
"""

import dataclasses
import os
import threading

import numpy as np

__all__ = ["BACKENDS", "TensorSpec", "Signature", "Servable", "load_servable", "warm_up_inputs"]

BACKENDS = ("savedmodel", "onnx")
PREDICT_METHOD = "tensorflow/serving/predict"


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    """dtype (a NumPy dtype) and shape (ints, None for any size) of one signature input or output."""

    dtype: np.dtype
    shape: tuple

    @classmethod
    def from_dict(cls, spec):
        return cls(np.dtype(spec["dtype"]), tuple(None if d is None or d < 0 else int(d) for d in spec["shape"]))

    def describe(self):
        dims = ", ".join("-1" if d is None else str(d) for d in self.shape)
        return f"{self.dtype.name}[{dims}]"

    @property
    def batched(self):
        """Has a leading axis of any size (the batch)."""
        return len(self.shape) >= 1 and self.shape[0] is None


@dataclasses.dataclass(frozen=True)
class Signature:
    """A named function of a servable: ``inputs`` and ``outputs`` map names to `TensorSpec`.

    Attributes:
        name: the signature key.
        inputs, outputs: ``{name: TensorSpec}``.
        target: the signature it is an alias of (``serving_default`` -> ``generate``), or its own name.
    """

    name: str
    inputs: dict
    outputs: dict
    target: str = None

    @property
    def batchable(self):
        """Every input has a leading batch axis: concurrent requests can be concatenated (server batching)."""
        return bool(self.inputs) and all(spec.batched for spec in self.inputs.values())

    @property
    def count_input(self):
        """The scalar input that says how many samples to draw (``n``), or None."""
        spec = self.inputs.get("n")
        return "n" if spec is not None and spec.shape == () else None


class Servable:
    """One version of one model, loaded. Subclasses fill ``signatures`` and implement `run`.

    Attributes:
        name, version, path: the model name, version number and version folder.
        backend: ``"savedmodel"`` or ``"onnx"``.
        manifest: the export's ``manifest.json`` (None without one).
        signatures: ``{signature name: Signature}``.
        num_classes: classes of a conditional model (from the manifest; None if unknown or unconditional).
        latent_spec: the model's `keras_gen.latent_spec.LatentSpec` (from the manifest; see
            `keras_gen.export.manifest.latent_spec`): the parts ``generate`` takes, what ``sample`` draws.
    """

    backend = None

    def __init__(self, name, version, path, manifest):
        self.name = name
        self.version = int(version)
        self.path = path
        self.manifest = manifest
        self.signatures = {}
        from keras_gen.export.manifest import latent_spec

        model = (manifest or {}).get("model") or {}
        self.num_classes = model.get("num_classes")
        self.latent_spec = latent_spec(model)
        self.batchers = {}
        self._batcher_lock = threading.Lock()

    def run(self, signature, inputs):
        """``{input name: array}`` -> ``{output name: NumPy array}`` for a validated request."""
        raise NotImplementedError

    def signature_def_map(self):
        """The ``SignatureDefMap`` proto GetModelMetadata answers with."""
        raise NotImplementedError

    def batcher(self, signature, parameters, slots=None):
        """The `Batcher` of one signature (made on first use); ``slots``: run slots shared by all batchers."""
        from keras_gen.serving.batching import Batcher

        with self._batcher_lock:
            if signature not in self.batchers:
                self.batchers[signature] = Batcher(
                    lambda inputs: self.run(signature, inputs), parameters,
                    name=f"{self.name}/{self.version}/{signature}", slots=slots,
                )
            return self.batchers[signature]

    def warm_up(self):
        """Runs every signature once on a one-sample input (TF Serving's model warm-up), so the first request
        does not pay for tracing and allocation. A failure fails the load."""
        for name, signature in sorted(self.signatures.items()):
            self.run(name, warm_up_inputs(signature))

    def close(self):
        with self._batcher_lock:
            batchers, self.batchers = list(self.batchers.values()), {}
        for batcher in batchers:
            batcher.close()

    def __repr__(self):
        return f"{type(self).__name__}({self.name!r}, version={self.version}, path={self.path!r})"


def warm_up_inputs(signature):
    """One-sample inputs for ``signature``: ``n = 1``, ``seed = 0``, label 0, zeros elsewhere."""
    inputs = {}
    for name, spec in signature.inputs.items():
        if name == "n" and spec.shape == ():
            inputs[name] = np.array(1, spec.dtype)
        else:
            inputs[name] = np.zeros(tuple(1 if d is None else d for d in spec.shape), spec.dtype)
    return inputs


def _tensor_info(name, spec):
    from tensorflow.core.framework import tensor_shape_pb2
    from tensorflow.core.protobuf import meta_graph_pb2

    from keras_gen.serving.tensors import dtype_enum

    dims = [tensor_shape_pb2.TensorShapeProto.Dim(size=-1 if d is None else d) for d in spec.shape]
    return meta_graph_pb2.TensorInfo(
        name=name, dtype=dtype_enum(spec.dtype), tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=dims)
    )


class SavedModelServable(Servable):
    """A SavedModel's signatures through `tf.saved_model.load` (`keras_gen.export.savedmodel.SavedModelRunner`)."""

    backend = "savedmodel"

    def __init__(self, name, version, path, manifest):
        from keras_gen.export.savedmodel import SavedModelRunner

        super().__init__(name, version, path, manifest)
        if not os.path.isfile(os.path.join(path, "saved_model.pb")):
            raise FileNotFoundError(f"{path} holds no SavedModel (no saved_model.pb).")
        self.runner = SavedModelRunner(path)
        aliases = _aliases(manifest)
        for key in self.runner.endpoints:
            if key.startswith("__"):  # __saved_model_init_op: not a callable signature
                continue
            spec = self.runner.signature(key)
            self.signatures[key] = Signature(
                key,
                {k: TensorSpec.from_dict(v) for k, v in spec["inputs"].items()},
                {k: TensorSpec.from_dict(v) for k, v in spec["outputs"].items()},
                target=aliases.get(key, key),
            )
        self._signature_defs = None

    def run(self, signature, inputs):
        return self.runner(signature, inputs)

    def signature_def_map(self):
        if self._signature_defs is None:
            from tensorflow.core.protobuf import saved_model_pb2
            from tensorflow_serving.apis import get_model_metadata_pb2

            saved = saved_model_pb2.SavedModel()
            with open(os.path.join(self.path, "saved_model.pb"), "rb") as f:
                saved.ParseFromString(f.read())
            stored = saved.meta_graphs[0].signature_def
            result = get_model_metadata_pb2.SignatureDefMap()
            for key in stored:
                result.signature_def[key].CopyFrom(stored[key])
            self._signature_defs = result
        return self._signature_defs

    def close(self):
        super().close()
        self.runner.close()


class ONNXServable(Servable):
    """The export's ONNX files through ONNX Runtime (`keras_gen.export.onnx.ONNXRunner`), with ``sample``
    computed from ``generate`` (see the module docstring).

    Args:
        threads: ONNX Runtime intra-op threads per session (0: its default).
    """

    backend = "onnx"

    def __init__(self, name, version, path, manifest, threads=0):
        from keras_gen.export.onnx import ONNXRunner

        super().__init__(name, version, path, manifest)
        folder = _onnx_folder(path, manifest)
        self.runner = ONNXRunner(folder, providers=["CPUExecutionProvider"], intra_op_num_threads=threads)
        endpoints = {}
        for key in self.runner.endpoints:
            spec = self.runner.signature(key)  # opens the session now: no lazy creation under concurrent calls
            endpoints[key] = Signature(
                key,
                {k: TensorSpec.from_dict(v) for k, v in spec["inputs"].items()},
                {k: TensorSpec.from_dict(v) for k, v in spec["outputs"].items()},
                target=key,
            )
        self.signatures.update(endpoints)
        for alias, target in _aliases(manifest).items():
            if target in endpoints and alias not in endpoints:
                self.signatures[alias] = dataclasses.replace(endpoints[target], name=alias, target=target)
        from keras_gen.export.manifest import latent_spec

        generate_inputs = self.runner.signature("generate")["inputs"] if "generate" in endpoints else None
        self.latent_spec = latent_spec((manifest or {}).get("model"), generate_inputs)
        for key, source in (("sample", "generate"), ("sample_uint8", "generate_uint8")):
            if source not in endpoints or key in self.signatures:
                continue
            generate = endpoints[source]
            inputs = {"n": TensorSpec(np.dtype("int32"), ()), "seed": TensorSpec(np.dtype("int64"), ())}
            if "label" in generate.inputs:
                inputs["label"] = generate.inputs["label"]
            outputs = dict(generate.outputs)
            for part in self.latent_spec.parts:  # `sample` returns the parts it drew, as the SavedModel's does
                outputs[part.name] = TensorSpec(np.dtype(part.dtype), (None,) + part.shape)
            self.signatures[key] = Signature(key, inputs, outputs, target=key)
        self._sources = {"sample": "generate", "sample_uint8": "generate_uint8"}
        self._signature_defs = None

    def run(self, signature, inputs):
        target = self.signatures[signature].target
        if target in self._sources and target not in self.runner.endpoints:
            return self._sample(self._sources[target], inputs)
        return self.runner(target, inputs)

    def _sample(self, source, inputs):
        n, seed = int(inputs["n"]), int(inputs["seed"])
        parts = {name: np.asarray(value) for name, value in self.latent_spec.sample(n, seed).items()}  # (n, ...)
        feed = dict(parts)
        if "label" in inputs:
            feed["label"] = inputs["label"]
        outputs = self.runner(source, feed)
        outputs.update(parts)
        return outputs

    def signature_def_map(self):
        if self._signature_defs is None:
            from tensorflow.core.protobuf import meta_graph_pb2
            from tensorflow_serving.apis import get_model_metadata_pb2

            result = get_model_metadata_pb2.SignatureDefMap()
            for key, signature in self.signatures.items():
                result.signature_def[key].CopyFrom(
                    meta_graph_pb2.SignatureDef(
                        inputs={k: _tensor_info(k, v) for k, v in signature.inputs.items()},
                        outputs={k: _tensor_info(k, v) for k, v in signature.outputs.items()},
                        method_name=PREDICT_METHOD,
                    )
                )
            self._signature_defs = result
        return self._signature_defs

    def close(self):
        super().close()
        self.runner.close()


def _aliases(manifest):
    for artifact in (manifest or {}).get("artifacts", []):
        if artifact.get("format") == "savedmodel" and artifact.get("aliases"):
            return dict(artifact["aliases"])
    return {"serving_default": "generate"}


def _onnx_folder(path, manifest):
    for artifact in (manifest or {}).get("artifacts", []):
        if artifact.get("format") == "onnx":
            folder = os.path.join(path, artifact["path"])
            if os.path.isdir(folder):
                return folder
    folder = os.path.join(path, "onnx")
    if os.path.isdir(folder) and any(n.endswith(".onnx") for n in os.listdir(folder)):
        return folder
    raise FileNotFoundError(f"{path} holds no ONNX artifact (no onnx/ folder of .onnx files).")


def load_servable(name, version, path, backend="savedmodel", onnx_threads=0):
    """Loads one version folder with ``backend`` (``"savedmodel"`` or ``"onnx"``).

    Raises:
        ValueError: an unknown backend.
        FileNotFoundError: the folder lacks the backend's artifact.
    """
    from keras_gen.export.manifest import MANIFEST_FILE, read_manifest

    if backend not in BACKENDS:
        raise ValueError(f"Unknown backend {backend!r}. Valid: {', '.join(BACKENDS)}.")
    manifest = read_manifest(path) if os.path.isfile(os.path.join(path, MANIFEST_FILE)) else None
    if backend == "savedmodel":
        return SavedModelServable(name, version, path, manifest)
    return ONNXServable(name, version, path, manifest, threads=onnx_threads)
