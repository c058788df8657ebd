"""The ONNX Runtime backend behind the same protocol."""

import numpy as np
import pytest

from keras_gen.serving import ModelServer, RequestError, SamplerClient
from tests.serving.helpers import _base, _keras, _z


def test_onnx_backend(exported, tmp_path):
    models, paths = exported
    base = _base(tmp_path, paths, "a", "c")
    with ModelServer(base, grpc_port=0, rest_port=None, backend="onnx", poll_interval=0) as srv:
        with SamplerClient(srv.grpc_address, model="cgan") as client:
            assert {"generate", "generate_uint8", "sample", "sample_uint8", "serving_default"} == set(
                client.signatures())
            labels = np.array([3, 1, 4], "int32")
            # sample: z drawn with keras_gen.rng.normal as model.generate draws it, then the ONNX generate graph.
            np.testing.assert_allclose(client.sample(3, seed=9, labels=labels, uint8=False),
                                       models["c"].generate(3, labels, seed=9), atol=1e-4)
            z = _z(4, seed=8)
            np.testing.assert_allclose(client.generate(z, labels=2, uint8=False),
                                       _keras(models["c"], z, np.full(4, 2, "int32")), atol=1e-4)
            with pytest.raises(RequestError) as info:
                client.generate(z, labels=[0, 1, 2, 11])  # no in-graph check in ONNX: the server checks
            assert info.value.code == "INVALID_ARGUMENT"
            with pytest.raises(RequestError) as info:
                client.predict("sample_uint9", {})
            assert info.value.code == "FAILED_PRECONDITION"

