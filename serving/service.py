"""What the gRPC and REST front ends share: request validation, limits, batching, metadata and status.

`PredictionCore.predict` does what TF Serving's ``RunPredict`` does, in this order, each failure with TF
Serving's status code:

1. find the model version (NOT_FOUND; INVALID_ARGUMENT for an unknown version label);
2. find the signature, ``serving_default`` when none is named (FAILED_PRECONDITION);
3. decode the inputs: a gRPC ``TensorProto`` only after its header (dtype, shape, rows along the batch axis) has
   passed the checks of 4 and 5, so a few bytes announcing a huge tensor cost nothing (`decode_protos`);
4. check the input names, dtypes and shapes against the signature, and that float inputs are finite
   (INVALID_ARGUMENT, naming the input);
5. check the limits: at least one and at most ``max_images`` images per request, labels within the model's
   classes and one per sample (INVALID_ARGUMENT);
6. run the signature, through its `Batcher` when the version is batched (`batching_for`: as in TF Serving, every
   signature of a batched model, so a signature with scalar inputs is refused there);
7. keep the outputs ``output_filter`` names (INVALID_ARGUMENT for an unknown or repeated one).
"""

import dataclasses
import logging
import threading
import time
import weakref

import numpy as np

from keras_gen.serving.errors import RequestError, from_exception
from keras_gen.serving.tensors import MAX_ELEMENTS, from_tensor_proto, proto_header

__all__ = ["PredictionCore", "PredictResult", "DEFAULT_SIGNATURE"]

DEFAULT_SIGNATURE = "serving_default"

logger = logging.getLogger("keras_gen.serving")


@dataclasses.dataclass
class PredictResult:
    """A prediction: ``outputs`` (``{name: NumPy array}``), and the model ``name``, ``version`` and ``signature``
    that answered."""

    outputs: dict
    name: str
    version: int
    signature: str


class PredictionCore:
    """Validates and runs requests against a `ModelManager`.

    Args:
        manager: the `ModelManager`.
        max_images: the most images (or samples) one request may ask for.
        batching: `BatchingParameters`, or None for no server-side batching (TF Serving's ``--enable_batching``
            with its ``--batching_parameters_file``).
        metrics: a `Metrics` (or None).
        per_model_batching: batch only the versions given parameters of their own in `model_batching` (TF
            Serving's ``--enable_per_model_batching_parameters``); ``batching`` then gives the batch threads only.
    """

    def __init__(self, manager, max_images=1024, batching=None, metrics=None, per_model_batching=False):
        if isinstance(max_images, bool) or not isinstance(max_images, (int, np.integer)) or max_images < 1:
            raise ValueError(f"`max_images` must be a positive integer, got {max_images!r}.")
        self.manager = manager
        self.max_images = int(max_images)
        self.batching = batching
        self.per_model_batching = bool(per_model_batching) and batching is not None
        self.model_batching = weakref.WeakKeyDictionary()
        """``{servable: BatchingParameters}`` of the versions batched with parameters of their own."""
        # TF Serving's batch threads serve every batched model and signature: one set of run slots for all.
        self._batch_slots = threading.Semaphore(batching.num_batch_threads) if batching is not None else None
        self.metrics = metrics

    def batching_for(self, servable):
        """The `BatchingParameters` a version's requests are batched with, or None when it is not batched: with
        batching on, every version; with per-model batching, the versions in `model_batching`."""
        if self.batching is None:
            return None
        if self.per_model_batching:
            return self.model_batching.get(servable)
        return self.batching

    # ------------------------------------------------------------------------------------------- predict
    def predict(self, name, version=None, label=None, signature_name="", inputs=None, output_filter=()):
        """Runs one request. ``inputs`` maps input names to NumPy arrays (or is ``inputs(signature) -> dict``).

        Returns:
            A `PredictResult`.

        Raises:
            ServingError: with TF Serving's status code (see the module docstring).
        """
        signature_name = signature_name or DEFAULT_SIGNATURE
        with self.manager.acquire(name, version, label) as servable:
            signature = servable.signatures.get(signature_name)
            if signature is None:
                raise RequestError(
                    "FAILED_PRECONDITION",
                    f'Serving signature key "{signature_name}" not found. This model has: '
                    f"{', '.join(sorted(servable.signatures))}.",
                )
            if callable(inputs):  # the front ends decode inputs knowing the signature
                inputs = inputs(signature)
            inputs = self.check_inputs(signature, inputs or {})
            self.check_limits(servable, signature, inputs)
            fetch = self.check_output_filter(signature, output_filter)
            batching = self.batching_for(servable)
            try:
                if batching is not None:
                    outputs = servable.batcher(signature_name, batching, self._batch_slots).submit(inputs)
                else:
                    outputs = servable.run(signature_name, inputs)
            except Exception as exc:  # noqa: BLE001 - every failure becomes a status code
                raise from_exception(exc) from exc
            outputs = {key: np.asarray(outputs[key]) for key in fetch}
            return PredictResult(outputs, name, servable.version, signature_name)

    def decode_protos(self, signature, protos, max_elements=MAX_ELEMENTS):
        """``{name: TensorProto}`` -> ``{name: NumPy array}`` for ``signature``. Each proto's header (dtype, shape)
        is checked against the signature, and the rows along its batch axis against ``max_images``, before any
        value is decoded: a proto of a few bytes that announces a huge tensor is refused without allocating it.

        Raises:
            RequestError: INVALID_ARGUMENT, naming the input (as `check_inputs` and `check_limits`).
        """
        self._check_names(signature, protos)
        described = {key: proto_header(proto, key) for key, proto in protos.items()}
        self._check_specs(signature, described)
        for key, (_, shape) in described.items():
            if signature.inputs[key].batched and shape[0] > self.max_images:
                raise RequestError(
                    "INVALID_ARGUMENT",
                    f"input {key!r} asks for a batch of {shape[0]} images; this server allows at most "
                    f"{self.max_images} per request (--max-images). Split it into several requests.",
                )
        return {key: from_tensor_proto(proto, key, max_elements) for key, proto in protos.items()}

    @staticmethod
    def check_inputs(signature, inputs):
        """Input names, dtypes and shapes against the signature, and float inputs finite (a NaN or infinite
        latent gives a NaN image); returns the inputs (NumPy arrays)."""
        inputs = {key: np.asarray(value) for key, value in inputs.items()}
        PredictionCore._check_specs(signature, {key: (value.dtype, value.shape) for key, value in inputs.items()})
        for key, value in inputs.items():
            if value.dtype.kind == "f" and value.size and not np.isfinite(value).all():
                index = [int(i) for i in np.argwhere(~np.isfinite(value))[0]]
                raise RequestError(
                    "INVALID_ARGUMENT",
                    f"input {key!r} of signature {signature.name!r} holds {value[tuple(index)]} at index {index}: "
                    f"its values must be finite numbers (no NaN or infinity; {value.dtype.name} ends at "
                    f"{np.finfo(value.dtype).max:.4g}).",
                )
        return inputs

    @staticmethod
    def _check_names(signature, inputs):
        """The input names are the signature's."""
        expected, sent = set(signature.inputs), set(inputs)
        if expected != sent:
            extra, missing = sorted(sent - expected), sorted(expected - sent)
            raise RequestError(
                "INVALID_ARGUMENT",
                f"input size does not match signature {signature.name!r}: {len(sent)}!={len(expected)} "
                f"len({{{','.join(sorted(sent))}}}) != len({{{','.join(sorted(expected))}}}). Sent extra: "
                f"{{{','.join(extra)}}}. Missing but required: {{{','.join(missing)}}}.",
            )

    @staticmethod
    def _check_specs(signature, described):
        """``{name: (dtype, shape)}`` against the signature: names, dtypes, shapes, one batch size."""
        PredictionCore._check_names(signature, described)
        batch = {}
        for key, spec in signature.inputs.items():
            dtype, shape = described[key]
            if dtype != spec.dtype:
                raise RequestError(
                    "INVALID_ARGUMENT",
                    f"input {key!r} of signature {signature.name!r} must be {spec.dtype.name}, got {dtype.name}.",
                )
            if len(shape) != len(spec.shape) or any(d is not None and d != s for d, s in zip(spec.shape, shape)):
                raise RequestError(
                    "INVALID_ARGUMENT",
                    f"input {key!r} of signature {signature.name!r} must have shape {spec.describe()} (-1: any size), "
                    f"got {list(shape)}.",
                )
            if spec.batched:
                batch[key] = shape[0]
        if len(set(batch.values())) > 1:
            sizes = ", ".join(f"{k}: {v}" for k, v in sorted(batch.items()))
            raise RequestError("INVALID_ARGUMENT", f"inputs must have the same batch size (axis 0), got {sizes}.")

    def check_limits(self, servable, signature, inputs):
        """The number of images the request asks for, within [1, max_images]; labels within the classes."""
        count_input = signature.count_input
        if count_input is not None:
            count = int(inputs[count_input])
            what = f"{count_input} = {count}"
        else:
            sizes = [v.shape[0] for k, v in inputs.items() if signature.inputs[k].batched]
            count = sizes[0] if sizes else 1
            what = f"a batch of {count}"
        if count < 1:
            raise RequestError("INVALID_ARGUMENT", f"the request asks for {what}: at least 1 image is needed.")
        if count > self.max_images:
            raise RequestError(
                "INVALID_ARGUMENT",
                f"the request asks for {what} images; this server allows at most {self.max_images} per request "
                "(--max-images). Split it into several requests.",
            )
        label = inputs.get("label")
        if label is not None and label.ndim == 1:
            if count_input is not None and label.shape[0] != count:
                raise RequestError(
                    "INVALID_ARGUMENT", f"one label per sample is needed: got {label.shape[0]} labels for n = {count}."
                )
            classes = servable.num_classes
            if label.size and (label.min() < 0 or (classes is not None and label.max() >= classes)):
                bad = sorted({int(x) for x in label if x < 0 or (classes is not None and x >= classes)})[:5]
                valid = f"[0, {classes})" if classes is not None else ">= 0"
                raise RequestError("INVALID_ARGUMENT", f"labels must be in {valid}; got {bad}.")
        spec = getattr(servable, "latent_spec", None)
        for part in spec.parts if spec is not None else ():  # given classes of categorical latent parts
            value = inputs.get(part.name)
            if part.categorical and value is not None and value.size:
                k = part.params["num_classes"]
                if value.min() < 0 or value.max() >= k:
                    bad = sorted({int(x) for x in value.reshape(-1) if x < 0 or x >= k})[:5]
                    raise RequestError(
                        "INVALID_ARGUMENT", f"input {part.name!r} holds classes in [0, {k}); got {bad}."
                    )
        return count

    @staticmethod
    def check_output_filter(signature, output_filter):
        """The outputs to return (all when ``output_filter`` is empty)."""
        if not output_filter:
            return list(signature.outputs)
        seen = []
        for alias in output_filter:
            if alias not in signature.outputs:
                raise RequestError(
                    "INVALID_ARGUMENT",
                    f"output tensor alias not found in signature: {alias} Outputs expected to be in the set "
                    f"{{{','.join(sorted(signature.outputs))}}}.",
                )
            if alias in seen:
                raise RequestError("INVALID_ARGUMENT", f"duplicate output tensor alias: {alias}")
            seen.append(alias)
        return seen

    # ------------------------------------------------------------------------------------------- metadata, status
    def metadata(self, name, version=None, label=None):
        """``(version, SignatureDefMap proto)`` of a model version."""
        with self.manager.acquire(name, version, label) as servable:
            return servable.version, servable.signature_def_map()

    def status(self, name, version=None, label=None):
        """``[{"version", "state", "error_code", "error_message"}]`` (see `ModelManager.status`)."""
        if label:
            with self.manager.acquire(name, None, label) as servable:
                version = servable.version
        return self.manager.status(name, version)

    # ------------------------------------------------------------------------------------------- logging
    def record(self, entrypoint, method, name, version, signature, code, started, images=None):
        """One debug log line per request, and the request metrics."""
        elapsed = time.perf_counter() - started
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "%s %s model=%s version=%s signature=%s images=%s -> %s in %.1f ms",
                entrypoint, method, name or "-", version if version is not None else "latest", signature or "-",
                images if images is not None else "-", code, elapsed * 1e3,
            )
        if self.metrics is not None:
            self.metrics.observe(entrypoint, method, name, code, elapsed)

    def batching_stats(self):
        """``{"model/version/signature": Batcher.stats()}`` of the batchers made so far."""
        stats = {}
        for servable in self.manager.servables():
            for key, batcher in list(servable.batchers.items()):
                stats[f"{servable.name}/{servable.version}/{key}"] = batcher.stats()
        return stats
