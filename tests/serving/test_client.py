"""`SamplerClient` and `RestSamplerClient` against the local server: sampling, metadata, status, errors, retries."""

import grpc
import numpy as np
import pytest

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


class _Unavailable(grpc.RpcError):
    def code(self):
        return grpc.StatusCode.UNAVAILABLE

    def details(self):
        return "injected"


def test_client_retries_unavailable_only(server):
    with SamplerClient(server.grpc_address, model="dcgan", retries=2, retry_backoff=0.01) as client:
        real, calls = client._models.GetModelStatus, []

        def flaky(request, timeout):
            calls.append(timeout)
            if len(calls) <= 2:
                raise _Unavailable()
            return real(request, timeout=timeout)

        client._models.GetModelStatus = flaky
        assert client.status()[0]["state"] == "AVAILABLE"
        assert len(calls) == 3 and calls[0] == client.timeout
        calls.clear()
        client.retries = 1
        with pytest.raises(ServerUnavailableError):
            client.status()
        assert len(calls) == 2
    with SamplerClient(server.grpc_address, model="nope", retries=3) as client:
        calls = []
        real = client._models.GetModelStatus
        client._models.GetModelStatus = lambda request, timeout: calls.append(1) or real(request, timeout=timeout)
        with pytest.raises(RequestError):
            client.status()
        assert len(calls) == 1  # NOT_FOUND is not retried

