"""`SamplerClient` and `RestSamplerClient` against the local server: sampling, metadata, status, errors, retries."""

import contextlib
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from keras_gen.serving import RequestError, RestSamplerClient, SamplerClient, ServerUnavailableError
from tests.serving.helpers import LATENT, _keras, _uint8, _z


def test_clients_sample_generate_metadata_status(exported, server):
    models, _ = exported
    z = _z(3, seed=6)
    with SamplerClient(server.grpc_address, model="dcgan", timeout=30) as grpc_client, \
            RestSamplerClient(server.rest_url, model="dcgan", timeout=30) as rest_client:
        for client in (grpc_client, rest_client):
            pixels = client.sample(5, seed=7)
            assert pixels.dtype == np.uint8 and pixels.shape == (5, 8, 8, 1)
            assert np.abs(pixels.astype(int) - _uint8(models["a"].generate(5, seed=7)).astype(int)).max() <= 1
            images, latents = client.sample(2, seed=1, uint8=False, return_z=True)
            np.testing.assert_allclose(images, models["a"].generate(2, seed=1), atol=1e-5)
            np.testing.assert_allclose(latents, models["a"].sample_latent(2, seed=1), atol=1e-6)
            np.testing.assert_allclose(client.generate(z, uint8=False), _keras(models["a"], z), atol=1e-5)
            assert client.metadata()["signatures"]["generate"]["inputs"]["z"] == {"dtype": "float32",
                                                                                  "shape": [None, LATENT]}
            assert client.status() == [{"version": 1, "state": "AVAILABLE", "error_code": "OK", "error_message": ""}]
            with pytest.raises(ValueError, match="unconditional"):
                client.sample(2, labels=1)
            with pytest.raises(ValueError, match="shape"):
                client.generate(np.zeros((2, LATENT + 1)))
    with SamplerClient(server.grpc_address, model="cgan") as client:
        with pytest.raises(ValueError, match="conditional"):
            client.sample(4, seed=0)
        pixels = client.sample(4, seed=0, labels=[0, 1, 2, 3])
        assert np.abs(pixels.astype(int) - _uint8(models["c"].generate(4, [0, 1, 2, 3], seed=0)).astype(int)).max() <= 1
    for client in (SamplerClient(server.grpc_address, model="nope"), RestSamplerClient(server.rest_url, model="nope")):
        with client, pytest.raises(RequestError) as info:
            client.status()
        assert info.value.code == "NOT_FOUND" and isinstance(info.value, ValueError)


def test_clients_raise_connection_errors_after_retries(unused_port):
    for client in (SamplerClient(f"127.0.0.1:{unused_port}", model="dcgan", timeout=2, retries=1, retry_backoff=0),
                   RestSamplerClient(f"127.0.0.1:{unused_port}", model="dcgan", timeout=2, retries=1,
                                     retry_backoff=0)):
        with client, pytest.raises(ServerUnavailableError) as info:
            client.status()
        assert isinstance(info.value, ConnectionError) and info.value.code == "UNAVAILABLE"


class _Flaky(model_service_pb2_grpc.ModelServiceServicer, prediction_service_pb2_grpc.PredictionServiceServicer):
    """A real gRPC server's ModelService and PredictionService that answer UNAVAILABLE ``failures`` times (as a
    draining server does: no headers, the status alone), then ``then``; it records each attempt's
    ``grpc-previous-rpc-attempts`` header, which only gRPC's own retries send."""

    def __init__(self, failures, then="OK"):
        self.failures, self.then, self.attempts = failures, then, []

    def _attempt(self, context):
        self.attempts.append(dict(context.invocation_metadata()).get("grpc-previous-rpc-attempts"))
        if len(self.attempts) <= self.failures:
            context.abort(grpc.StatusCode.UNAVAILABLE, "draining")
        if self.then != "OK":
            context.abort(getattr(grpc.StatusCode, self.then), f"answered {self.then}")

    def GetModelStatus(self, request, context):  # noqa: N802 - the gRPC method's name
        self._attempt(context)
        status = get_model_status_pb2.ModelVersionStatus(
            version=1, state=get_model_status_pb2.ModelVersionStatus.AVAILABLE)
        return get_model_status_pb2.GetModelStatusResponse(model_version_status=[status])

    def Predict(self, request, context):  # noqa: N802
        self._attempt(context)
        response = predict_pb2.PredictResponse()
        response.outputs["rows"].CopyFrom(tf.make_tensor_proto(np.int32(len(tf.make_ndarray(request.inputs["z"])))))
        return response


@contextlib.contextmanager
def _flaky_server(failures, then="OK"):
    from concurrent import futures

    service = _Flaky(failures, then)
    server = grpc.server(futures.ThreadPoolExecutor(2))
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(service, server)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(service, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}", service
    finally:
        server.stop(0)


@pytest.mark.parametrize("failures, retries, then, attempts, error", [
    (2, 2, "OK", [None, "1", "2"], None),  # retried exactly as often as the server refused, by gRPC itself
    (2, 1, "OK", [None, "1"], "UNAVAILABLE"),  # no more than `retries` times
    (1, 0, "OK", [None], "UNAVAILABLE"),
    (0, 3, "NOT_FOUND", [None], "NOT_FOUND"),  # other codes are not retried
    (1, 3, "INVALID_ARGUMENT", [None, "1"], "INVALID_ARGUMENT"),
])
def test_grpc_client_retries_unavailable_with_grpc_retry_policy(failures, retries, then, attempts, error):
    with _flaky_server(failures, then) as (address, service), \
            SamplerClient(address, model="m", retries=retries, retry_backoff=0.01, timeout=30) as client:
        if error is None:
            assert client.status()[0]["state"] == "AVAILABLE"
        else:
            with pytest.raises((ServerUnavailableError, RequestError)) as info:
                client.status()
            assert info.value.code == error
    assert service.attempts == attempts


def test_grpc_client_retries_large_requests_too():
    z = np.zeros((1024, 100), "float32")  # 400 KiB: over gRPC's default retry buffer of a call (256 KiB)
    with _flaky_server(failures=1) as (address, service), \
            SamplerClient(address, model="m", retries=1, retry_backoff=0.01) as client:
        assert int(client.predict("generate", {"z": z})["rows"]) == 1024
    assert service.attempts == [None, "1"]


def test_grpc_client_timeout_bounds_the_call_retries_included():
    with _flaky_server(failures=4) as (address, service), \
            SamplerClient(address, model="m", retries=4, retry_backoff=2.0, timeout=0.5) as client:
        started = time.monotonic()
        with pytest.raises(ServerUnavailableError) as info:
            client.status()
        elapsed = time.monotonic() - started
    assert info.value.code == "DEADLINE_EXCEEDED" and elapsed < 2.0 and len(service.attempts) == 1


def test_grpc_client_retries_are_within_grpc_limits():
    with pytest.raises(ValueError, match="at most 4"):
        SamplerClient("127.0.0.1:1", model="m", retries=5)
    assert RestSamplerClient("127.0.0.1:1", model="m", retries=5).retries == 5
