"""What the gRPC and REST front ends share: request validation, limits, batching, metadata and status.

`PredictionCore.predict` does what TF Serving's ``RunPredict`` does, in this order, each failure with TF
Serving's status code:

1. find the model version (NOT_FOUND; INVALID_ARGUMENT for an unknown version label);
2. find the signature, ``serving_default`` when none is named (FAILED_PRECONDITION);
3. check the input names, dtypes and shapes against the signature (INVALID_ARGUMENT, naming the input);
4. check the limits: at least one and at most ``max_images`` images per request, labels within the model's
   classes and one per sample (INVALID_ARGUMENT);
5. run the signature, through the signature's `Batcher` when batching is on and every input has a batch axis;
6. keep the outputs ``output_filter`` names (INVALID_ARGUMENT for an unknown or repeated one).
"""

import dataclasses
import logging
import time

import numpy as np

from keras_gen.serving.errors import RequestError, from_exception

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
        batching: `BatchingParameters`, or None for no server-side batching.
        metrics: a `Metrics` (or None).
    """

    def __init__(self, manager, max_images=1024, batching=None, metrics=None):
        if isinstance(max_images, bool) or not isinstance(max_images, (int, np.integer)) or max_images < 1:
            raise ValueError(f"`max_images` must be a positive integer, got {max_images!r}.")
        self.manager = manager
        self.max_images = int(max_images)
        self.batching = batching
        self.metrics = metrics

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
            if callable(inputs):  # the REST front end converts JSON with the signature's dtypes
                inputs = inputs(signature)
            inputs = self.check_inputs(signature, inputs or {})
            count = self.check_limits(servable, signature, inputs)
            fetch = self.check_output_filter(signature, output_filter)
            try:
                if self.batching is not None and signature.batchable:
                    outputs = servable.batcher(signature_name, self.batching).submit(inputs, count)
                else:
                    outputs = servable.run(signature_name, inputs)
            except Exception as exc:  # noqa: BLE001 - every failure becomes a status code
                raise from_exception(exc) from exc
            outputs = {key: np.asarray(outputs[key]) for key in fetch}
            return PredictResult(outputs, name, servable.version, signature_name)

    @staticmethod
    def check_inputs(signature, inputs):
        """Input names, dtypes and shapes against the signature; returns the inputs (NumPy arrays)."""
        expected, sent = set(signature.inputs), set(inputs)
        if expected != sent:
            extra, missing = sorted(sent - expected), sorted(expected - sent)
            raise RequestError(
                "INVALID_ARGUMENT",
                f"input size does not match signature {signature.name!r}: {len(sent)}!={len(expected)} "
                f"len({{{','.join(sorted(sent))}}}) != len({{{','.join(sorted(expected))}}}). Sent extra: "
                f"{{{','.join(extra)}}}. Missing but required: {{{','.join(missing)}}}.",
            )
        checked = {}
        batch = {}
        for key, spec in signature.inputs.items():
            value = np.asarray(inputs[key])
            if value.dtype != spec.dtype:
                raise RequestError(
                    "INVALID_ARGUMENT",
                    f"input {key!r} of signature {signature.name!r} must be {spec.dtype.name}, got {value.dtype.name}.",
                )
            if value.ndim != len(spec.shape) or any(d is not None and d != s for d, s in zip(spec.shape, value.shape)):
                raise RequestError(
                    "INVALID_ARGUMENT",
                    f"input {key!r} of signature {signature.name!r} must have shape {spec.describe()} (-1: any size), "
                    f"got {list(value.shape)}.",
                )
            if spec.batched:
                batch[key] = value.shape[0]
            checked[key] = value
        if len(set(batch.values())) > 1:
            sizes = ", ".join(f"{k}: {v}" for k, v in sorted(batch.items()))
            raise RequestError("INVALID_ARGUMENT", f"inputs must have the same batch size (axis 0), got {sizes}.")
        return checked

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
