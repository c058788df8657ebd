"""ONNX writer (tf2onnx) and runner (ONNX Runtime).

ONNX models have one graph each, so every non-random endpoint becomes its own file, ``<endpoint>.onnx``, with
the SavedModel's input and output names (``z``, ``label`` -> ``images``) and a dynamic batch axis named
``batch``. The random ``sample`` endpoint is not converted: tf2onnx writes its stateless random ops into a file
ONNX Runtime then refuses (docs/export.md); ONNX callers draw ``z`` and call ``generate`` (`keras_gen.export.load`
does it for them, with the same draw as the SavedModel).
"""

import os
import threading

import numpy as np

__all__ = ["DEFAULT_OPSET", "MAX_OPSET", "write_onnx", "ONNXRunner", "onnx_endpoints"]

DEFAULT_OPSET = 17
MAX_OPSET = 18
"""tf2onnx 1.17 converts to opsets up to 18."""


def onnx_endpoints(adapter):
    """The endpoints written as ONNX files (not the random ones, nor those marked ``onnx=False``)."""
    return [e for e in adapter.endpoints() if not e.random and e.onnx]


def check_opset(opset):
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)) or not 9 <= int(opset) <= MAX_OPSET:
        raise ValueError(f"`opset` must be an integer from 9 to {MAX_OPSET} (tf2onnx 1.17), got {opset!r}.")
    return int(opset)


def write_onnx(adapter, directory, opset=DEFAULT_OPSET):
    """Converts each non-random endpoint of ``adapter`` into ``directory/<endpoint>.onnx``.

    Returns:
        ``{endpoint name: file path}``.

    Raises:
        ValueError: a bad opset, or the model holds an operation ONNX cannot express (named).
    """
    import logging

    import tensorflow as tf
    import tf2onnx

    from keras_gen.export.errors import UnsupportedModelError

    opset = check_opset(opset)
    if not onnx_endpoints(adapter):
        raise UnsupportedModelError(
            f"ONNX cannot express any endpoint of this {adapter.model_class}: tf2onnx cannot convert its sampling "
            "loop. Export it as SavedModel or TFLite."
        )
    os.makedirs(directory, exist_ok=True)
    written = {}
    tf2onnx_logger = logging.getLogger("tf2onnx")
    level = tf2onnx_logger.level
    tf2onnx_logger.setLevel(logging.ERROR)
    try:
        for endpoint in onnx_endpoints(adapter):
            specs = list(endpoint.inputs)
            fn = tf.function(endpoint.build(False), input_signature=specs, autograph=False)
            proto, _ = tf2onnx.convert.from_function(fn, input_signature=specs, opset=opset)
            _check_supported(proto, endpoint.name)
            _rename_outputs(proto, endpoint.outputs)
            _name_batch_axis(proto)
            path = os.path.join(directory, f"{endpoint.name}.onnx")
            with open(path, "wb") as f:
                f.write(proto.SerializeToString())
            written[endpoint.name] = path
    finally:
        tf2onnx_logger.setLevel(level)
    return written


def _check_supported(proto, name):
    """tf2onnx leaves the TensorFlow ops it cannot convert in the graph (and writes a file ONNX Runtime then
    refuses): fail here, naming them."""
    import onnx

    from keras_gen.export.errors import UnsupportedModelError

    unknown = sorted(
        {node.op_type for node in proto.graph.node if not onnx.defs.has(node.op_type, node.domain or "")}
    )
    if unknown:
        raise UnsupportedModelError(
            f"ONNX cannot express the {name!r} endpoint of this model: TensorFlow operations without an ONNX "
            f"conversion: {', '.join(unknown)}."
        )


def _rename_outputs(proto, names):
    """Outputs normally come out named after the returned dict's keys; otherwise rename them (TensorFlow
    flattens a dict output in sorted key order)."""
    outputs = list(proto.graph.output)
    if {o.name for o in outputs} == set(names) or len(outputs) != len(names):
        return
    mapping = {o.name: name for o, name in zip(outputs, sorted(names))}
    for node in proto.graph.node:
        node.output[:] = [mapping.get(o, o) for o in node.output]
        node.input[:] = [mapping.get(i, i) for i in node.input]
    for output in outputs:
        output.name = mapping[output.name]


def _name_batch_axis(proto):
    for value in list(proto.graph.input) + list(proto.graph.output):
        dims = value.type.tensor_type.shape.dim
        if len(dims) and not dims[0].HasField("dim_value"):
            dims[0].dim_param = "batch"


_ONNX_TYPES = {
    "tensor(float)": "float32",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(uint8)": "uint8",
    "tensor(float16)": "float16",
}


class ONNXRunner:
    """Runs ``<endpoint>.onnx`` files of one folder with ONNX Runtime (sessions made on first use).

    Args:
        directory: the folder of ``.onnx`` files (or one of the files).
        providers: ONNX Runtime execution providers; default CUDA when ``onnxruntime-gpu`` has it, else CPU.
        intra_op_num_threads: threads per session (0: ONNX Runtime's default).
    """

    format = "onnx"

    def __init__(self, directory, providers=None, intra_op_num_threads=0):
        import onnxruntime as ort

        directory = os.fspath(directory)
        if os.path.isfile(directory):
            directory = os.path.dirname(os.path.abspath(directory))
        self.path = directory
        self._files = {
            name[: -len(".onnx")]: os.path.join(directory, name)
            for name in sorted(os.listdir(directory))
            if name.endswith(".onnx")
        }
        if not self._files:
            raise FileNotFoundError(f"No .onnx files in {directory}.")
        if providers is None:
            available = ort.get_available_providers()
            providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        self.providers = list(providers)
        self.intra_op_num_threads = int(intra_op_num_threads)
        self._sessions = {}
        self._lock = threading.Lock()  # concurrent first requests (the server's threads) make one session

    @property
    def endpoints(self):
        return sorted(self._files)

    def session(self, endpoint):
        import onnxruntime as ort

        if endpoint not in self._files:
            raise ValueError(f"{self.path} has no {endpoint}.onnx; it has {', '.join(self.endpoints)}.")
        session = self._sessions.get(endpoint)
        if session is not None:
            return session
        with self._lock:
            if endpoint not in self._sessions:
                options = ort.SessionOptions()
                options.intra_op_num_threads = self.intra_op_num_threads
                options.log_severity_level = 3
                self._sessions[endpoint] = ort.InferenceSession(
                    self._files[endpoint], sess_options=options, providers=self.providers
                )
            return self._sessions[endpoint]

    def signature(self, endpoint):
        session = self.session(endpoint)

        def describe(args):
            return {
                a.name: {
                    "dtype": _ONNX_TYPES.get(a.type, a.type),
                    "shape": [d if isinstance(d, int) else None for d in a.shape],
                }
                for a in sorted(args, key=lambda a: a.name)
            }

        return {"inputs": describe(session.get_inputs()), "outputs": describe(session.get_outputs())}

    def __call__(self, endpoint, inputs):
        session = self.session(endpoint)
        feed = {
            a.name: np.asarray(inputs[a.name], dtype=_ONNX_TYPES.get(a.type, None)) for a in session.get_inputs()
        }
        names = [o.name for o in session.get_outputs()]
        return dict(zip(names, session.run(names, feed)))

    def close(self):
        with self._lock:
            self._sessions.clear()
