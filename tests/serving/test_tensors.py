"""``TensorProto`` and JSON conversions, against TensorFlow's own."""

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given
from hypothesis import strategies as st
from tensorflow.core.framework import tensor_pb2

from keras_gen.serving import RequestError
from keras_gen.serving.tensors import from_tensor_proto, json_to_array, to_tensor_proto
from tests.serving.helpers import FUZZ


_DTYPES = st.sampled_from(["float32", "float64", "int32", "int64", "uint8", "int8", "int16", "bool", "float16"])


@FUZZ
@given(dtype=_DTYPES, shape=st.lists(st.integers(0, 4), max_size=3), seed=st.integers(0, 2**16))
def test_tensor_proto_round_trips_agree_with_tensorflow(dtype, shape, seed):
    values = np.random.default_rng(seed).normal(0, 50, shape)
    array = (values > 0) if dtype == "bool" else values.astype(dtype)
    np.testing.assert_array_equal(tf.make_ndarray(to_tensor_proto(array)), array)  # ours -> TensorFlow
    decoded = from_tensor_proto(tf.make_tensor_proto(array))  # TensorFlow -> ours
    assert decoded.dtype == array.dtype and decoded.shape == array.shape
    np.testing.assert_array_equal(decoded, array)


def test_tensor_proto_value_fields_follow_tensorflow():
    proto = tf.make_tensor_proto(np.zeros((2, 3), "float32"))
    proto.ClearField("tensor_content")
    proto.float_val.extend([1.5, 2.5])  # fewer values than elements: the last one repeats
    np.testing.assert_array_equal(from_tensor_proto(proto), tf.make_ndarray(proto))
    proto.ClearField("float_val")
    np.testing.assert_array_equal(from_tensor_proto(proto), np.zeros((2, 3), "float32"))
    proto.float_val.extend(range(7))
    with pytest.raises(RequestError, match="7 values"):
        from_tensor_proto(proto)
    half = tf.make_tensor_proto(np.array([0.5, -2.0], "float16"))
    half.ClearField("tensor_content")
    half.half_val.extend(np.array([0.5, -2.0], "float16").view("uint16").tolist())
    np.testing.assert_array_equal(from_tensor_proto(half), np.array([0.5, -2.0], "float16"))
    short = tensor_pb2.TensorProto(dtype=1, tensor_shape=proto.tensor_shape, tensor_content=b"\0" * 5)
    with pytest.raises(RequestError, match="needs 24"):
        from_tensor_proto(short)


def test_json_to_array_rules():
    np.testing.assert_array_equal(json_to_array([[1, 2.5]], "float32"), np.array([[1, 2.5]], "float32"))
    assert json_to_array(3.0, "int64") == 3
    for value, dtype, fragment in (([[1], [1, 2]], "float32", "rectangular"), ("a", "float32", "number"),
                                   ([1.5], "int32", "whole"), ([2**40], "int32", "range"), ([True], "float32", "true"),
                                   ([{"b64": "AA=="}], "float32", "not numbers")):
        with pytest.raises(RequestError, match=fragment):
            json_to_array(value, dtype)

