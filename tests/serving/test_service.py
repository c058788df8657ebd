"""`PredictionCore`'s request validation, seen through both front ends and called directly."""

import numpy as np
import pytest
import tensorflow as tf

from keras_gen.serving import RequestError
from keras_gen.serving.backends import Signature, TensorSpec
from keras_gen.serving.service import PredictionCore
from tests.serving.helpers import LATENT, _code, _http, _request, _z

_NON_FINITE = {"NaN": np.nan, "+inf": np.inf, "-inf": -np.inf}


@pytest.mark.parametrize("value", list(_NON_FINITE))
def test_non_finite_latents_are_refused_over_grpc(stubs, value):
    """A NaN or infinite latent would come back as a NaN image (all-zero pixels): INVALID_ARGUMENT naming `z`,
    for every signature that takes it."""
    predict, _ = stubs
    z = _z(3, seed=30)
    z[1, 2] = _NON_FINITE[value]
    for signature in ("serving_default", "generate", "generate_uint8"):
        code, details = _code(predict.Predict, _request("dcgan", signature, z=z))
        assert code == "INVALID_ARGUMENT", (signature, details)
        assert "'z'" in details and "[1, 2]" in details and "finite" in details
    labels = np.array([0, 1, 2], "int32")
    code, details = _code(predict.Predict, _request("cgan", "generate", z=z, label=labels))
    assert code == "INVALID_ARGUMENT" and "'z'" in details


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e39"])
def test_non_finite_latents_are_refused_over_rest(server, value):
    """JSON's NaN / Infinity (which Python's and TF Serving's parsers take) and a number beyond float32's range:
    HTTP 400 naming `z`."""
    row = ", ".join(["0.5"] * (LATENT - 1) + [value])
    body = ('{"signature_name": "generate", "instances": [[%s], [%s]]}' % (", ".join(["0.1"] * LATENT), row)).encode()
    status, answer = _http(f"{server.rest_url}/v1/models/dcgan:predict", "POST", body)
    assert status == 400, answer
    assert "'z'" in answer["error"] and f"[1, {LATENT - 1}]" in answer["error"]


def test_finite_extremes_still_pass(stubs):
    predict, _ = stubs
    z = np.full((2, LATENT), np.finfo("float32").max, "float32")
    z[1] = np.finfo("float32").tiny
    assert _code(predict.Predict, _request("dcgan", "generate", z=z))[0] == "OK"


def test_check_inputs_refuses_non_finite_float_inputs_by_name():
    """Any float input, not only `z`: the `images` of a reconstruct-style signature too; integer inputs are not
    concerned."""
    signature = Signature(
        "reconstruct",
        {"images": TensorSpec(np.dtype("float32"), (None, 4, 4, 1)), "label": TensorSpec(np.dtype("int32"), (None,))},
        {"images": TensorSpec(np.dtype("float32"), (None, 4, 4, 1))},
    )
    images = np.zeros((2, 4, 4, 1), "float32")
    labels = np.array([1, 2], "int32")
    assert set(PredictionCore.check_inputs(signature, {"images": images, "label": labels})) == {"images", "label"}
    images[1, 3, 0, 0] = np.nan
    with pytest.raises(RequestError) as info:
        PredictionCore.check_inputs(signature, {"images": images, "label": labels})
    assert info.value.code == "INVALID_ARGUMENT"
    assert "'images'" in info.value.message and "[1, 3, 0, 0]" in info.value.message
    half = Signature("generate", {"z": TensorSpec(np.dtype("float16"), (None, 2))}, {})
    with pytest.raises(RequestError, match="'z'"):
        PredictionCore.check_inputs(half, {"z": np.array([[1.0, -np.inf]], "float16")})
    np.testing.assert_array_equal(
        PredictionCore.check_inputs(half, {"z": tf.constant([[1.0, 2.0]], tf.float16).numpy()})["z"], [[1.0, 2.0]])
