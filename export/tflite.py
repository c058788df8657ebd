"""TFLite (LiteRT) writer and runner.

One ``.tflite`` file per precision, each holding the adapter's non-random endpoints as named signatures (the
phone draws ``z`` itself: an in-graph sampler would need stateless random ops, which LiteRT lacks, and an
in-graph ``tf.random.normal`` repeats its first draw in every fresh interpreter, see docs/export.md):

=================  =============================================================================================
precision          what it is
=================  =============================================================================================
``fp32``           float weights and activations (parity 1e-4)
``fp16``           float16 weights, float compute (half the size; parity 1e-2)
``int8``           full-integer: int8 weights and activations calibrated on latents from the prior (a quarter of
                   the size), float ``z`` in and float images out; only the ``generate`` signature (the uint8
                   conversion does not survive integer-only quantization); parity as PSNR >= 30 dB
``dynamic_int8``   int8 weights, float activations ("dynamic range"); ~25x slower here, so only on request
=================  =============================================================================================
"""

import os
import re
import warnings

__all__ = ["PRECISIONS", "write_tflite", "TFLiteRunner", "tflite_endpoints"]

PRECISIONS = ("fp32", "fp16", "int8", "dynamic_int8")


def tflite_endpoints(adapter, precision):
    """The endpoints a TFLite file of ``precision`` holds: the non-random ones; for ``int8`` those marked
    `Endpoint.int8`; for ``fp16`` and ``dynamic_int8`` those marked `Endpoint.fp16`."""
    endpoints = [e for e in adapter.endpoints() if not e.random]
    if precision == "int8":
        endpoints = [e for e in endpoints if e.int8]
    elif precision in ("fp16", "dynamic_int8"):
        endpoints = [e for e in endpoints if e.fp16]
    return endpoints


def _mobile_savedmodel(adapter, endpoints, path):
    """A plain `tf.Module` SavedModel of the endpoints, the converter's input. The module tracks the networks'
    variables itself: a Module that only closes over a Keras 3 model converts to NaNs (docs/export.md)."""
    import tensorflow as tf

    module = tf.Module()
    module.tf_variables = [v.value for net in adapter.networks.values() for v in net.weights]
    signatures = {}
    for endpoint in endpoints:
        fn = tf.function(endpoint.build(False), input_signature=list(endpoint.inputs), autograph=False)
        setattr(module, endpoint.name, fn)
        signatures[endpoint.name] = fn.get_concrete_function()
    tf.saved_model.save(module, path, signatures=signatures)


def write_tflite(adapter, path, precision="fp32", work_dir=None, representative_count=128):
    """Converts the adapter's non-random endpoints into one ``.tflite`` file.

    Args:
        adapter: a `ModelAdapter`.
        path: the ``.tflite`` file to write.
        precision: one of `PRECISIONS`.
        work_dir: a scratch folder (default: next to ``path``); the intermediate SavedModel is deleted.
        representative_count: latents used to calibrate ``int8``.

    Returns:
        The names of the signatures written.

    Raises:
        ValueError: unknown precision, or the model holds an operation LiteRT cannot express (named).
    """
    import shutil
    import tempfile

    import tensorflow as tf

    if precision not in PRECISIONS:
        raise ValueError(f"Unknown TFLite precision {precision!r}. Valid: {', '.join(PRECISIONS)}.")
    endpoints = tflite_endpoints(adapter, precision)
    if not endpoints:
        from keras_gen.export.errors import UnsupportedModelError

        raise UnsupportedModelError(
            f"No endpoint of this {adapter.model_class} can go into a TFLite {precision} file (its sampling picks by "
            "argmax, which reduced precision changes); leave out that quantization."
        )
    work = tempfile.mkdtemp(prefix=".tflite-", dir=work_dir or os.path.dirname(os.path.abspath(path)))
    try:
        saved = os.path.join(work, "mobile")
        _mobile_savedmodel(adapter, endpoints, saved)
        names = [e.name for e in endpoints]
        converter = tf.lite.TFLiteConverter.from_saved_model(saved, signature_keys=names)
        if precision == "fp16":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
        elif precision == "dynamic_int8":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        elif precision == "int8":
            batches = {e.name: adapter.representative_inputs(e, count=representative_count) for e in endpoints}

            def representative():
                for i in range(len(batches[names[0]])):
                    for name in names:
                        yield name, batches[name][i]

            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = representative
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        try:
            with warnings.catch_warnings():  # the calibrator uses the deprecated tf.lite.Interpreter
                warnings.simplefilter("ignore")
                content = converter.convert()
        except Exception as exc:  # ConverterError and friends: say which ops, not the MLIR dump
            raise _unsupported(exc, precision) from exc
    finally:
        shutil.rmtree(work, ignore_errors=True)
    with open(path, "wb") as f:
        f.write(content)
    return names


def _unsupported(exc, precision):
    from keras_gen.export.errors import UnsupportedModelError

    text = str(exc)
    ops = sorted(set(re.findall(r"'(tf\.\w+)' op is neither a custom op nor a flex op", text)))
    ops += sorted(set(re.findall(r"'(tfl?\.\w+)' op (?:is not supported|quantization is not supported)", text)))
    if ops:
        detail = f"operations LiteRT cannot express: {', '.join(ops)}"
    else:
        detail = text.strip().splitlines()[0][:300] if text.strip() else type(exc).__name__
    return UnsupportedModelError(f"TFLite ({precision}) cannot convert this model: {detail}.")


def _details(details):
    return {
        name: {
            "dtype": detail["dtype"].__name__,
            "shape": [None if d < 0 else int(d) for d in detail["shape_signature"]],
        }
        for name, detail in sorted(details.items())
    }


class TFLiteRunner:
    """Runs the signatures of a ``.tflite`` file with the LiteRT interpreter (``ai_edge_litert``).

    Args:
        path: the ``.tflite`` file.
        num_threads: interpreter threads.
    """

    format = "tflite"

    def __init__(self, path, num_threads=2):
        from ai_edge_litert.interpreter import Interpreter

        from keras_gen.files import cpp_logs_hidden, stderr_discarded

        self.path = os.fspath(path)
        self.interpreter = Interpreter(model_path=self.path, num_threads=num_threads)
        # The first allocation applies LiteRT's default XNNPACK delegate, which logs "INFO: Created TensorFlow Lite
        # XNNPACK delegate for CPU." once a process: kept out of the way with TensorFlow's informational lines.
        with stderr_discarded(cpp_logs_hidden()):
            self.interpreter.allocate_tensors()
        self._signatures = self.interpreter.get_signature_list()
        self._runners = {}

    @property
    def endpoints(self):
        return sorted(self._signatures)

    def _runner(self, endpoint):
        if endpoint not in self._signatures:
            raise ValueError(f"{self.path} has no signature {endpoint!r}; it has {', '.join(self.endpoints)}.")
        if endpoint not in self._runners:
            self._runners[endpoint] = self.interpreter.get_signature_runner(endpoint)
        return self._runners[endpoint]

    def signature(self, endpoint):
        runner = self._runner(endpoint)
        return {"inputs": _details(runner.get_input_details()), "outputs": _details(runner.get_output_details())}

    def __call__(self, endpoint, inputs):
        import numpy as np

        runner = self._runner(endpoint)
        details = runner.get_input_details()
        feed = {name: np.asarray(inputs[name], dtype=detail["dtype"]) for name, detail in details.items()}
        # The runner resizes its tensors when the batch changes; copy the outputs out of its buffers.
        return {name: np.array(value) for name, value in runner(**feed).items()}

    def close(self):
        self._runners.clear()
        self.interpreter = None
