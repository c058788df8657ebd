"""``TensorProto`` <-> NumPy, and NumPy <-> TF Serving's REST JSON, with errors for people.

The proto conversions follow TensorFlow's own (``Tensor::FromProto``): the bytes of ``tensor_content`` in
row-major, little-endian order, or else the typed ``*_val`` field, where fewer values than elements repeat the
last one and no values at all mean zeros. They are written here rather than taken from ``tf.make_ndarray`` so a
malformed proto gives an INVALID_ARGUMENT naming what is wrong, so the header (`proto_header`) can be checked
against a signature before any value is decoded (a proto of a few bytes that announces a huge shape costs the
server nothing), and so the client does not need TensorFlow's Python ops.
"""

import numpy as np

from keras_gen.serving.errors import RequestError

__all__ = [
    "DTYPES",
    "dtype_enum",
    "dtype_name",
    "to_tensor_proto",
    "proto_header",
    "from_tensor_proto",
    "json_to_array",
    "array_to_json",
]

# DataType enum value -> (NumPy dtype, the *_val field that holds it, TF name)
_TYPES = {
    1: (np.dtype("float32"), "float_val", "DT_FLOAT"),
    2: (np.dtype("float64"), "double_val", "DT_DOUBLE"),
    3: (np.dtype("int32"), "int_val", "DT_INT32"),
    4: (np.dtype("uint8"), "int_val", "DT_UINT8"),
    5: (np.dtype("int16"), "int_val", "DT_INT16"),
    6: (np.dtype("int8"), "int_val", "DT_INT8"),
    9: (np.dtype("int64"), "int64_val", "DT_INT64"),
    10: (np.dtype("bool"), "bool_val", "DT_BOOL"),
    17: (np.dtype("uint16"), "int_val", "DT_UINT16"),
    19: (np.dtype("float16"), "half_val", "DT_HALF"),
    22: (np.dtype("uint32"), "uint32_val", "DT_UINT32"),
    23: (np.dtype("uint64"), "uint64_val", "DT_UINT64"),
}
DTYPES = {dtype.name: enum for enum, (dtype, _, _) in _TYPES.items()}
"""``{NumPy dtype name: DataType enum}`` of the dtypes these conversions handle."""

MAX_ELEMENTS = 1 << 27
"""The most elements one decoded tensor may have (512 MB of float32) unless the caller sets a smaller limit."""


def dtype_enum(dtype):
    """TensorFlow's ``DataType`` number of a NumPy dtype."""
    dtype = np.dtype(dtype)
    if dtype.name not in DTYPES:
        raise TypeError(f"dtype {dtype} has no TensorProto conversion here. Valid: {', '.join(DTYPES)}.")
    return DTYPES[dtype.name]


def dtype_name(enum):
    """``"DT_FLOAT"`` for 1, ...; ``"DT_<number>"`` for an enum these conversions do not handle."""
    return _TYPES[enum][2] if enum in _TYPES else f"DT_{enum}"


def to_tensor_proto(array, dtype=None, out=None):
    """A NumPy array (or anything `np.asarray` takes) as a ``TensorProto`` with ``tensor_content``.

    Args:
        array: the values.
        dtype: convert to this dtype first.
        out: an (empty) ``TensorProto`` to fill in place, e.g. ``response.outputs["images"]``.
    """
    array = np.asarray(array, dtype=dtype)
    enum = dtype_enum(array.dtype)
    little = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
    if out is None:
        from tensorflow.core.framework import tensor_pb2

        out = tensor_pb2.TensorProto()
    out.dtype = enum
    for d in array.shape:
        out.tensor_shape.dim.add(size=d)
    out.tensor_content = little.tobytes()
    return out


def proto_header(proto, name="tensor"):
    """The dtype and shape a ``TensorProto`` announces, read from its header alone (nothing is decoded or
    allocated), so a request can be checked against its signature before its values are expanded.

    Returns:
        ``(NumPy dtype, shape tuple)``.

    Raises:
        RequestError: INVALID_ARGUMENT for an unsupported dtype, an unknown rank or a negative dimension.
    """
    if proto.dtype not in _TYPES:
        raise RequestError(
            "INVALID_ARGUMENT",
            f"input {name!r} has dtype {dtype_name(proto.dtype)}, which this server does not take "
            f"(it takes {', '.join(t[2] for t in _TYPES.values())}).",
        )
    if proto.tensor_shape.unknown_rank:
        raise RequestError("INVALID_ARGUMENT", f"input {name!r} has an unknown rank: give its shape.")
    shape = tuple(int(d.size) for d in proto.tensor_shape.dim)
    if any(d < 0 for d in shape):
        raise RequestError("INVALID_ARGUMENT", f"input {name!r} has a negative dimension in its shape {list(shape)}.")
    return _TYPES[proto.dtype][0], shape


def from_tensor_proto(proto, name="tensor", max_elements=MAX_ELEMENTS):
    """A ``TensorProto`` as a NumPy array.

    The element count is checked against ``max_elements`` from the header, before anything is allocated: a server
    should first check the header against the signature (`proto_header`) and pass the most elements the
    signature and its limits allow.

    Args:
        proto: the ``TensorProto``.
        name: what to call it in error messages (the input's name).
        max_elements: refuse tensors with more elements than this.

    Raises:
        RequestError: INVALID_ARGUMENT for an unsupported dtype, an unknown or negative shape, a byte count that
            does not match the shape, more values than elements, or too many elements.
    """
    dtype, shape = proto_header(proto, name)
    field = _TYPES[proto.dtype][1]
    count = 1
    for d in shape:
        count *= d
        if count > max_elements:
            break
    if count > max_elements:
        raise RequestError(
            "INVALID_ARGUMENT",
            f"input {name!r} of shape {list(shape)} has more than {max_elements} elements, the most this server "
            "decodes.",
        )
    if proto.tensor_content:
        expected = count * dtype.itemsize
        if len(proto.tensor_content) != expected:
            raise RequestError(
                "INVALID_ARGUMENT",
                f"input {name!r}: tensor_content holds {len(proto.tensor_content)} bytes, but shape {list(shape)} of "
                f"{dtype.name} needs {expected}.",
            )
        return np.frombuffer(proto.tensor_content, dtype=dtype.newbyteorder("<")).astype(dtype).reshape(shape)
    values = getattr(proto, field)
    n = len(values)
    if n > count:
        raise RequestError(
            "INVALID_ARGUMENT", f"input {name!r}: {n} values in {field} for shape {list(shape)} ({count} elements)."
        )
    if field == "half_val":
        flat = np.asarray(values, dtype=np.int64).astype(np.uint16).view(np.float16)
    else:
        try:
            flat = np.asarray(values, dtype=dtype) if n else np.zeros(0, dtype)
        except OverflowError as exc:
            raise RequestError("INVALID_ARGUMENT", f"input {name!r}: a value does not fit {dtype.name}.") from exc
        if field == "int_val" and n and dtype != np.int32:
            wide = np.asarray(values, dtype=np.int64)
            info = np.iinfo(dtype)
            if wide.min() < info.min or wide.max() > info.max:
                raise RequestError("INVALID_ARGUMENT", f"input {name!r}: a value does not fit {dtype.name}.")
    if n == count:
        return flat.reshape(shape)
    if not n:
        return np.zeros(shape, dtype)
    out = np.empty(count, dtype)  # fewer values than elements: the last one repeats (as in Tensor::FromProto)
    out[:n] = flat
    out[n:] = flat[-1]
    return out.reshape(shape)


# ---------------------------------------------------------------------------------------------------- JSON
def json_to_array(value, dtype, name="tensor"):
    """A JSON value (a number, or nested lists of numbers) as an array of ``dtype``.

    Integers go into float inputs; float inputs take ``NaN`` / ``Infinity`` here (`PredictionCore.check_inputs`
    then refuses non-finite inputs, naming them); integer inputs take only whole numbers within their dtype's
    range; booleans only boolean inputs.

    Raises:
        RequestError: INVALID_ARGUMENT naming the input and what was wrong (ragged lists, strings, objects,
            fractions for an integer input, values out of range).
    """
    dtype = np.dtype(dtype)
    if isinstance(value, (dict, str)) or value is None:
        raise RequestError(
            "INVALID_ARGUMENT", f"input {name!r} must be a number or (nested) lists of numbers, got {_describe(value)}."
        )
    try:
        raw = np.asarray(value)
    except (ValueError, RecursionError, TypeError) as exc:
        raise RequestError(
            "INVALID_ARGUMENT", f"input {name!r} is not a rectangular array of numbers (ragged or too deep lists)."
        ) from exc
    if raw.dtype == object or raw.dtype.kind in "USV":
        raise RequestError(
            "INVALID_ARGUMENT", f"input {name!r} holds values that are not numbers (or integers too large)."
        )
    if raw.size == 0 and raw.dtype == np.float64:
        raw = raw.astype(dtype)
    if dtype.kind == "b":
        if raw.dtype.kind != "b":
            raise RequestError("INVALID_ARGUMENT", f"input {name!r} must hold true/false values.")
        return raw.astype(dtype)
    if raw.dtype.kind == "b":
        raise RequestError("INVALID_ARGUMENT", f"input {name!r} must hold numbers ({dtype.name}), not true/false.")
    if dtype.kind == "f":
        with np.errstate(over="ignore"):
            return raw.astype(dtype)
    # integer input
    if raw.dtype.kind == "f":
        if not np.all(np.isfinite(raw)) or not np.all(raw == np.round(raw)):
            raise RequestError("INVALID_ARGUMENT", f"input {name!r} must hold whole numbers ({dtype.name}).")
        raw = raw.astype(np.int64) if np.all(np.abs(raw) < 2**62) else raw
    info = np.iinfo(dtype)
    if raw.size and (raw.min() < info.min or raw.max() > info.max):
        raise RequestError("INVALID_ARGUMENT", f"input {name!r} has values outside the range of {dtype.name}.")
    return raw.astype(dtype)


def array_to_json(array):
    """A NumPy array as JSON-ready nested lists (a scalar as a number)."""
    array = np.asarray(array)
    return array.tolist()


def _describe(value):
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, str):
        return "a string"
    return type(value).__name__
