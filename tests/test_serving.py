"""keras_gen.serving: the TF-Serving-protocol server and clients, over real sockets on loopback.

The server is checked from the outside: requests are built with TensorFlow's own ``tf.make_tensor_proto`` and
sent with TF Serving's ``PredictionServiceStub`` / ``ModelServiceStub`` or raw HTTP, and answers are compared with
the Keras generator called directly (and NumPy's uint8 mapping), not with anything the server computed. Every
server, thread and process a test starts is stopped by the same test or fixture.
"""

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import grpc
import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tensorflow.core.framework import tensor_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

import keras_gen.export as kx
from keras_gen import presets
from keras_gen.serving import (
    BatchingParameters,
    ModelServer,
    RequestError,
    RestSamplerClient,
    SamplerClient,
    ServerUnavailableError,
    deployment_file,
)
from keras_gen.serving.config import models_config_text, parse_text_proto, read_model_config, read_monitoring_config
from keras_gen.serving.tensors import from_tensor_proto, json_to_array, to_tensor_proto
from tests.test_models import tiny_config

LATENT = 8
MAX_IMAGES = 64
MAX_REQUEST_BYTES = 256 << 10
FUZZ = settings(max_examples=50, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


# ---------------------------------------------------------------------------------------------- fixtures
def _randomize_normalization(model, seed):
    """Batch-norm statistics and (conditional) scales away from identity, so a dropped label would show."""
    generator = np.random.default_rng(seed)
    for weight in model.generator.weights:
        leaf = weight.path.rsplit("/", 1)[-1]
        if leaf in ("gamma", "moving_variance"):
            weight.assign(generator.uniform(0.5, 1.5, weight.shape).astype("float32"))
        elif leaf in ("beta", "moving_mean"):
            weight.assign(generator.uniform(-0.3, 0.3, weight.shape).astype("float32"))
    return model


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Three tiny exports (SavedModel + ONNX): two versions of an unconditional DCGAN and a conditional GAN."""
    store = tmp_path_factory.mktemp("exports")
    models, paths = {}, {}
    for key, (preset, name, version, seed) in {
        "a": ("dcgan", "dcgan", 1, 1), "b": ("dcgan", "dcgan", 2, 2), "c": ("cgan", "cgan", 1, 3),
    }.items():
        keras.utils.set_random_seed(seed)
        model = _randomize_normalization(presets.build_model(tiny_config(preset)), seed)
        result = kx.export_model(model, store / key, name, version=version, formats="savedmodel,onnx",
                                 allow_untrained=True, batch_sizes=(1, 2))
        models[key], paths[key] = model, result.path
    return models, paths


def _base(tmp_path, paths, *keys):
    """A fresh base path holding copies of the given exports."""
    base = tmp_path / "base"
    for key in keys:
        source = paths[key]
        target = base / os.path.basename(os.path.dirname(source)) / os.path.basename(source)
        shutil.copytree(source, target)
    return base


@pytest.fixture(scope="module")
def server(exported, tmp_path_factory):
    _, paths = exported
    base = _base(tmp_path_factory.mktemp("served"), paths, "a", "c")
    srv = ModelServer(base, grpc_port=0, rest_port=0, poll_interval=0, max_images=MAX_IMAGES,
                      max_request_bytes=MAX_REQUEST_BYTES, monitoring=True)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop(grace=1)


@pytest.fixture(scope="module")
def stubs(server):
    channel = grpc.insecure_channel(server.grpc_address)
    try:
        yield (prediction_service_pb2_grpc.PredictionServiceStub(channel),
               model_service_pb2_grpc.ModelServiceStub(channel))
    finally:
        channel.close()


def _keras(model, z, labels=None):
    return np.asarray(model.generator(z if labels is None else [z, labels], training=False))


def _uint8(images):
    """NumPy reference of the uint8 mapping of [-1, 1] images."""
    return np.clip(np.round((images.astype("float64") + 1.0) / 2.0 * 255.0), 0, 255).astype("uint8")


def _z(batch, seed):
    return np.random.default_rng(seed).standard_normal((batch, LATENT)).astype("float32")


def _request(name, signature="", version=None, **inputs):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    if signature:
        request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = version
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    return request


def _code(call, *args):
    try:
        call(*args, timeout=30)
    except grpc.RpcError as exc:
        return exc.code().name, exc.details()
    return "OK", ""


def _http(url, method="GET", body=None, headers=None, raw=False):
    """``(status, parsed JSON or text)`` of one HTTP request."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        if body is not None and not isinstance(body, bytes):
            body = json.dumps(body).encode()
        connection.request(method, parts.path, body=body, headers=headers or {})
        response = connection.getresponse()
        data = response.read()
    finally:
        connection.close()
    if raw:
        return response.status, data.decode()
    return response.status, json.loads(data)


# ---------------------------------------------------------------------------------------------- gRPC
def test_grpc_predict_matches_keras(exported, stubs):
    models, _ = exported
    predict, _ = stubs
    z = _z(5, seed=0)
    expected = _keras(models["a"], z)
    response = predict.Predict(_request("dcgan", "generate", z=z), timeout=30)
    assert response.model_spec.name == "dcgan" and response.model_spec.version.value == 1
    assert response.model_spec.signature_name == "generate"
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["images"]), expected, atol=1e-5)
    # No signature name: serving_default (= generate).
    default = predict.Predict(_request("dcgan", z=z), timeout=30)
    assert default.model_spec.signature_name == "serving_default"
    np.testing.assert_allclose(tf.make_ndarray(default.outputs["images"]), expected, atol=1e-5)
    pixels = tf.make_ndarray(predict.Predict(_request("dcgan", "generate_uint8", z=z), timeout=30).outputs["images"])
    assert pixels.dtype == np.uint8
    assert np.abs(pixels.astype(int) - _uint8(expected).astype(int)).max() <= 1
    # sample(n, seed) == model.generate(n, seed=seed): the latents are drawn in the graph.
    sample = predict.Predict(_request("dcgan", "sample", n=np.int32(6), seed=np.int64(3)), timeout=30)
    np.testing.assert_allclose(tf.make_ndarray(sample.outputs["images"]), models["a"].generate(6, seed=3), atol=1e-5)
    np.testing.assert_allclose(tf.make_ndarray(sample.outputs["z"]), models["a"].sample_latent(6, seed=3), atol=1e-6)
    # output_filter keeps only the named outputs.
    request = _request("dcgan", "sample", n=np.int32(2), seed=np.int64(0))
    request.output_filter.append("z")
    assert set(predict.Predict(request, timeout=30).outputs) == {"z"}


def test_grpc_conditional_labels(exported, stubs):
    models, _ = exported
    predict, _ = stubs
    z = _z(4, seed=1)
    for labels in (np.zeros(4, "int32"), np.array([9, 3, 3, 0], "int32")):
        got = tf.make_ndarray(predict.Predict(_request("cgan", "generate", z=z, label=labels), timeout=30)
                              .outputs["images"])
        np.testing.assert_allclose(got, _keras(models["c"], z, labels), atol=1e-5)
    labels = np.array([1, 2, 3], "int32")
    sample = predict.Predict(_request("cgan", "sample", n=np.int32(3), seed=np.int64(5), label=labels), timeout=30)
    np.testing.assert_allclose(tf.make_ndarray(sample.outputs["images"]), models["c"].generate(3, labels, seed=5),
                               atol=1e-5)


def test_grpc_metadata_and_status(stubs):
    predict, model_service = stubs
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "cgan"
    response = predict.GetModelMetadata(request, timeout=30)
    assert response.model_spec.name == "cgan" and response.model_spec.version.value == 1
    signature_defs = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signature_defs)
    defs = signature_defs.signature_def
    assert {"serving_default", "generate", "generate_uint8", "sample", "sample_uint8"} <= set(defs)
    z = defs["generate"].inputs["z"]
    assert z.dtype == tf.float32.as_datatype_enum and [d.size for d in z.tensor_shape.dim] == [-1, LATENT]
    assert defs["generate"].inputs["label"].dtype == tf.int32.as_datatype_enum
    assert defs["generate_uint8"].outputs["images"].dtype == tf.uint8.as_datatype_enum
    assert {k: v.dtype for k, v in defs["sample"].inputs.items()} == {
        "n": tf.int32.as_datatype_enum, "seed": tf.int64.as_datatype_enum, "label": tf.int32.as_datatype_enum}
    assert defs["generate"].method_name == "tensorflow/serving/predict"

    status_request = get_model_status_pb2.GetModelStatusRequest()
    status_request.model_spec.name = "dcgan"
    statuses = model_service.GetModelStatus(status_request, timeout=30).model_version_status
    assert [(s.version, get_model_status_pb2.ModelVersionStatus.State.Name(s.state), s.status.error_code)
            for s in statuses] == [(1, "AVAILABLE", 0)]
    status_request.model_spec.version.value = 7
    assert _code(model_service.GetModelStatus, status_request)[0] == "NOT_FOUND"


def _status_cases():
    z = _z(2, seed=2)
    big = np.zeros((MAX_REQUEST_BYTES // (4 * LATENT) + 64, LATENT), "float32")  # a request over the byte limit
    return {
        "unknown model": (_request("nope", z=z), "NOT_FOUND", "nope"),
        "unknown version": (_request("dcgan", version=9, z=z), "NOT_FOUND", "9"),
        "unknown signature": (_request("dcgan", "encode", z=z), "FAILED_PRECONDITION", "encode"),
        "unknown input": (_request("dcgan", w=z), "INVALID_ARGUMENT", "w"),
        "missing input": (_request("cgan", "generate", z=z), "INVALID_ARGUMENT", "label"),
        "wrong dtype": (_request("dcgan", z=z.astype("float64")), "INVALID_ARGUMENT", "float32"),
        "wrong shape": (_request("dcgan", z=np.zeros((2, LATENT + 1), "float32")), "INVALID_ARGUMENT", "shape"),
        "scalar z": (_request("dcgan", z=np.float32(1)), "INVALID_ARGUMENT", "shape"),
        "empty batch": (_request("dcgan", z=np.zeros((0, LATENT), "float32")), "INVALID_ARGUMENT", "at least 1"),
        "too many images": (_request("dcgan", "sample", n=np.int32(MAX_IMAGES + 1), seed=np.int64(0)),
                            "INVALID_ARGUMENT", f"at most {MAX_IMAGES}"),
        "n = 0": (_request("dcgan", "sample", n=np.int32(0), seed=np.int64(0)), "INVALID_ARGUMENT", "at least 1"),
        "label out of range": (_request("cgan", "generate", z=z, label=np.array([0, 10], "int32")),
                               "INVALID_ARGUMENT", "[0, 10)"),
        "labels per sample": (_request("cgan", "sample", n=np.int32(3), seed=np.int64(0),
                                       label=np.array([0, 1], "int32")), "INVALID_ARGUMENT", "one label per sample"),
        "batch sizes differ": (_request("cgan", "generate", z=z, label=np.array([1, 2, 3], "int32")),
                               "INVALID_ARGUMENT", "same batch size"),
        "request too large": (_request("dcgan", z=big), "RESOURCE_EXHAUSTED", ""),
    }


@pytest.mark.parametrize("case", list(_status_cases()))
def test_grpc_status_codes(stubs, case):
    predict, _ = stubs
    request, expected, fragment = _status_cases()[case]
    code, details = _code(predict.Predict, request)
    assert code == expected, details
    assert fragment in details


def test_grpc_unimplemented_and_bad_metadata_requests(stubs):
    predict, model_service = stubs
    for call, request in ((predict.Classify, classification_pb2.ClassificationRequest()),
                          (predict.Regress, regression_pb2.RegressionRequest()),
                          (predict.MultiInference, inference_pb2.MultiInferenceRequest())):
        assert _code(call, request)[0] == "UNIMPLEMENTED"
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = "dcgan"
    assert _code(predict.GetModelMetadata, request)[0] == "INVALID_ARGUMENT"  # no metadata_field
    request.metadata_field.append("graph_def")
    assert _code(predict.GetModelMetadata, request)[0] == "INVALID_ARGUMENT"
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "dcgan"
    request.model_spec.version_label = "stable"  # no labels configured
    assert _code(predict.GetModelMetadata, request)[0] == "INVALID_ARGUMENT"


# ---------------------------------------------------------------------------------------------- REST
def test_rest_row_and_columnar_formats(exported, server):
    models, _ = exported
    url = f"{server.rest_url}/v1/models"
    z = _z(3, seed=4)
    expected = _keras(models["a"], z)
    # Row format, one input: instances are the z rows; predictions one image each.
    status, answer = _http(f"{url}/dcgan:predict", "POST", {"instances": z.tolist()})
    assert status == 200
    np.testing.assert_allclose(np.asarray(answer["predictions"], "float32"), expected, atol=1e-5)
    # Row format, two inputs: one object per instance.
    labels = [4, 0, 7]
    body = {"signature_name": "generate", "instances": [{"z": row, "label": c} for row, c in zip(z.tolist(), labels)]}
    status, answer = _http(f"{url}/cgan/versions/1:predict", "POST", body)
    assert status == 200
    np.testing.assert_allclose(np.asarray(answer["predictions"], "float32"),
                               _keras(models["c"], z, np.array(labels, "int32")), atol=1e-5)
    # Columnar, single input given bare; single output answered bare.
    status, answer = _http(f"{url}/dcgan:predict", "POST", {"signature_name": "generate_uint8", "inputs": z.tolist()})
    assert status == 200
    assert np.abs(np.asarray(answer["outputs"]) - _uint8(expected).astype(int)).max() <= 1
    # Columnar with scalars (the only way to send n and seed); several outputs answered as an object.
    body = {"signature_name": "sample", "inputs": {"n": 4, "seed": 11}}
    status, answer = _http(f"{url}/dcgan:predict", "POST", body)
    assert status == 200 and set(answer["outputs"]) == {"images", "z"}
    np.testing.assert_allclose(np.asarray(answer["outputs"]["images"], "float32"), models["a"].generate(4, seed=11),
                               atol=1e-5)
    # Row format of a signature with several outputs: one object per example.
    body = {"signature_name": "generate", "instances": [{"z": row, "label": 1} for row in z.tolist()]}
    status, answer = _http(f"{url}/cgan:predict", "POST", body)
    assert status == 200 and len(answer["predictions"]) == 3


def test_rest_status_metadata_and_metrics(server):
    url = f"{server.rest_url}/v1/models"
    status, answer = _http(f"{url}/dcgan")
    assert status == 200
    assert answer == {"model_version_status": [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]}
    assert _http(f"{url}/dcgan/versions/1")[0] == 200
    status, answer = _http(f"{url}/cgan/metadata")
    assert status == 200
    assert answer["model_spec"] == {"name": "cgan", "signature_name": "", "version": "1"}
    generate = answer["metadata"]["signature_def"]["signature_def"]["generate"]
    assert generate["inputs"]["z"]["dtype"] == "DT_FLOAT"
    assert [int(d["size"]) for d in generate["inputs"]["z"]["tensor_shape"]["dim"]] == [-1, LATENT]
    assert generate["method_name"] == "tensorflow/serving/predict"
    status, text = _http(f"{server.rest_url}/monitoring/prometheus/metrics", raw=True)
    assert status == 200 and ":tensorflow:serving:request_count{" in text and 'model_name="cgan"' in text


def _rest_cases():
    z = _z(2, seed=5).tolist()
    return {
        "unknown model": ("POST", "/v1/models/nope:predict", {"instances": z}, 404, "nope"),
        "unknown version": ("POST", "/v1/models/dcgan/versions/3:predict", {"instances": z}, 404, "3"),
        "unknown model status": ("GET", "/v1/models/nope", None, 404, "nope"),
        "unknown signature": ("POST", "/v1/models/dcgan:predict", {"signature_name": "x", "instances": z}, 400,
                              "not found"),
        "malformed JSON": ("POST", "/v1/models/dcgan:predict", b"{instances: [1,", 400, "JSON"),
        "not an object": ("POST", "/v1/models/dcgan:predict", [1, 2], 400, "object"),
        "neither key": ("POST", "/v1/models/dcgan:predict", {"signature_name": "generate"}, 400, "instances"),
        "both keys": ("POST", "/v1/models/dcgan:predict", {"instances": z, "inputs": z}, 400, "both"),
        "scalars in rows": ("POST", "/v1/models/dcgan:predict",
                            {"signature_name": "sample", "instances": [{"n": 1, "seed": 0}]}, 400, "columnar"),
        "ragged": ("POST", "/v1/models/dcgan:predict", {"instances": [[1.0] * LATENT, [1.0]]}, 400, "rectangular"),
        "strings": ("POST", "/v1/models/dcgan:predict", {"inputs": {"z": [["a"] * LATENT]}}, 400, "numbers"),
        "fraction for int": ("POST", "/v1/models/dcgan:predict",
                             {"signature_name": "sample", "inputs": {"n": 1.5, "seed": 0}}, 400, "whole"),
        "too many images": ("POST", "/v1/models/dcgan:predict",
                            {"signature_name": "sample", "inputs": {"n": MAX_IMAGES + 1, "seed": 0}}, 400,
                            f"at most {MAX_IMAGES}"),
        "classify": ("POST", "/v1/models/dcgan:classify", {"examples": []}, 501, "not implemented"),
        "malformed path": ("GET", "/v1/modelz/dcgan", None, 400, "Malformed request"),
        "other path": ("GET", "/index.html", None, 404, "Not found"),
        "body too large": ("POST", "/v1/models/dcgan:predict", b"[" + b"0," * MAX_REQUEST_BYTES + b"0]", 413,
                           "at most"),
    }


@pytest.mark.parametrize("case", list(_rest_cases()))
def test_rest_errors(server, case):
    method, path, body, expected, fragment = _rest_cases()[case]
    status, answer = _http(f"{server.rest_url}{path}", method, body)
    assert status == expected, answer
    assert set(answer) == {"error"} and fragment in answer["error"]


def test_rest_chunked_body_is_refused(server):
    status, answer = _http(f"{server.rest_url}/v1/models/dcgan:predict", "POST", b"{}",
                           headers={"Transfer-Encoding": "chunked"})
    assert status == 411 and "Content-Length" in answer["error"]


# ---------------------------------------------------------------------------------------------- clients
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


@pytest.fixture
def unused_port():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------------------------------------- ONNX backend
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


# ---------------------------------------------------------------------------------------------- versions
def test_new_version_replaces_the_old_without_failing_a_request(exported, tmp_path):
    """v2 is copied in while gRPC and REST clients keep sampling: no request fails, answers switch to v2 once,
    v1 is unloaded and each answer equals the Keras output of the version that gave it."""
    models, paths = exported
    base = _base(tmp_path, paths, "a")
    staging = tmp_path / "staging"
    shutil.copytree(paths["b"], staging / "2")
    z = _z(2, seed=10)
    expected = {1: _keras(models["a"], z), 2: _keras(models["b"], z)}
    assert np.abs(expected[1] - expected[2]).max() > 1e-2
    seen = {"grpc": [], "rest": []}
    errors = []
    stop = threading.Event()

    def grpc_loop(client):
        while not stop.is_set():
            try:
                answer = client.predict("generate", {"z": z})
                seen["grpc"].append((answer.version, answer["images"]))
            except Exception as exc:  # noqa: BLE001 - collected and asserted on
                errors.append(exc)

    def rest_loop(client):
        while not stop.is_set():
            try:
                seen["rest"].append(client.generate(z, uint8=False))
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)

    srv = ModelServer(base, grpc_port=0, rest_port=0, poll_interval=0.1)
    srv.start()
    threads = []
    try:
        grpc_client = SamplerClient(srv.grpc_address, model="dcgan", retries=0)
        rest_client = RestSamplerClient(srv.rest_url, model="dcgan", retries=0)
        threads = [threading.Thread(target=grpc_loop, args=(grpc_client,)),
                   threading.Thread(target=rest_loop, args=(rest_client,))]
        for thread in threads:
            thread.start()
        time.sleep(0.5)
        os.rename(staging / "2", base / "dcgan" / "2")  # atomic, as the exporter's staging folder
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            statuses = {s["version"]: s["state"] for s in grpc_client.status()}
            if statuses.get(1) == "END" and sum(v == 2 for v, _ in seen["grpc"][-20:]) == 20:
                break
            time.sleep(0.1)
        time.sleep(0.3)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
        statuses = grpc_client.status()
        grpc_client.close()
        rest_client.close()
        srv.stop(grace=1)
    assert not errors, errors[:3]
    assert statuses == [
        {"version": 2, "state": "AVAILABLE", "error_code": "OK", "error_message": ""},
        {"version": 1, "state": "END", "error_code": "OK", "error_message": ""},
    ]
    versions = [v for v, _ in seen["grpc"]]
    assert versions[0] == 1 and versions[-1] == 2 and versions == sorted(versions)
    for version, images in seen["grpc"]:
        np.testing.assert_allclose(images, expected[version], atol=1e-5)
    rest_versions = [min(expected, key=lambda v: np.abs(images - expected[v]).max()) for images in seen["rest"]]
    assert rest_versions[0] == 1 and rest_versions[-1] == 2 and rest_versions == sorted(rest_versions)
    for version, images in zip(rest_versions, seen["rest"]):
        np.testing.assert_allclose(images, expected[version], atol=1e-5)


def test_model_config_versions_labels_and_a_broken_version(exported, tmp_path):
    """models.config with two specific versions and a label; a version that cannot load is reported in the status
    and does not take the model down."""
    models, paths = exported
    base = _base(tmp_path, paths, "a", "b", "c")
    config = tmp_path / "models.config"
    config.write_text(
        'model_config_list {\n'
        '  config { name: "dcgan" base_path: "dcgan" model_platform: "tensorflow"\n'
        '           model_version_policy { specific { versions: 1 versions: 2 } }\n'
        '           version_labels { key: "stable" value: 1 } version_labels { key: "canary" value: 2 } }\n'
        '  config { name: "cgan" base_path: "cgan" }\n'
        '}\n'
    )
    (base / "cgan" / "4").mkdir()
    (base / "cgan" / "4" / "saved_model.pb").write_bytes(b"not a SavedModel")
    z = _z(2, seed=12)
    with ModelServer(base, model_config_file=config, grpc_port=0, rest_port=0, poll_interval=0) as srv:
        assert srv.models() == {"dcgan": [1, 2], "cgan": [1]}
        for version, label, key in ((None, None, "b"), (1, None, "a"), (2, None, "b"), (None, "stable", "a"),
                                    (None, "canary", "b")):
            with SamplerClient(srv.grpc_address, model="dcgan", version=version, version_label=label) as client:
                np.testing.assert_allclose(client.generate(z, uint8=False), _keras(models[key], z), atol=1e-5)
        with RestSamplerClient(srv.rest_url, model="dcgan", version_label="stable") as client:
            np.testing.assert_allclose(client.generate(z, uint8=False), _keras(models["a"], z), atol=1e-5)
        with SamplerClient(srv.grpc_address, model="cgan") as client:
            statuses = client.status()
            assert client.sample(2, seed=0, labels=1).shape == (2, 8, 8, 1)  # version 1 still serves
        assert [(s["version"], s["state"]) for s in statuses] == [(4, "END"), (1, "AVAILABLE")]
        assert statuses[0]["error_code"] != "OK" and statuses[0]["error_message"]


# ---------------------------------------------------------------------------------------------- load, batching
def _hammer(address, model, clients, requests, z_all, expected):
    """``clients`` threads, each sending ``requests`` generate calls of 1-2 latents; returns the errors."""
    errors, mismatches = [], []

    def work(index):
        with SamplerClient(address, model=model, retries=0, timeout=60) as client:
            for i in range(requests):
                row = (index * requests + i) % (len(z_all) - 1)
                size = 1 + (i % 2)
                try:
                    images = client.predict("generate", {"z": z_all[row:row + size]})["images"]
                except Exception as exc:  # noqa: BLE001 - collected and asserted on
                    errors.append(exc)
                    continue
                if images.shape[0] != size or np.abs(images - expected[row:row + size]).max() > 1e-5:
                    mismatches.append(row)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    return errors, mismatches


@pytest.mark.parametrize("batching", [True, False])
def test_concurrent_load_answers_every_request_correctly(exported, tmp_path, batching):
    """16 clients x 100 requests of 1 or 2 latents each, batching on and off: no error, and every answer equals
    the Keras output for its own latents (a batch that mixed up its requests' rows would show)."""
    models, paths = exported
    base = _base(tmp_path, paths, "a")
    z_all = _z(65, seed=13)
    expected = _keras(models["a"], z_all)
    parameters = BatchingParameters(max_batch_size=16, batch_timeout_micros=3000) if batching else None
    with ModelServer(base, grpc_port=0, rest_port=None, poll_interval=0, batching=parameters) as srv:
        errors, mismatches = _hammer(srv.grpc_address, "dcgan", 16, 100, z_all, expected)
        stats = srv.stats()
    assert not errors, errors[:3]
    assert not mismatches
    assert stats["requests"] >= 16 * 100 and stats["errors"] == 0
    if batching:
        batcher = stats["batching"]["dcgan/1/generate"]
        assert batcher["tasks"] == 16 * 100
        assert batcher["batches"] < batcher["tasks"] and 1 < batcher["largest"] <= 16
    else:
        assert stats["batching"] == {}


def test_stop_lets_requests_in_flight_finish(exported, tmp_path):
    models, paths = exported
    base = _base(tmp_path, paths, "a")
    z = _z(1, seed=15)
    parameters = BatchingParameters(max_batch_size=8, batch_timeout_micros=700_000)  # the request waits 0.7 s
    srv = ModelServer(base, grpc_port=0, rest_port=None, poll_interval=0, batching=parameters)
    srv.start()
    result = {}
    client = SamplerClient(srv.grpc_address, model="dcgan", retries=0)
    try:
        thread = threading.Thread(target=lambda: result.update(images=client.generate(z, uint8=False)))
        thread.start()
        time.sleep(0.3)  # the request is waiting in its batch
        srv.stop(grace=5)
        thread.join(10)
        np.testing.assert_allclose(result["images"], _keras(models["a"], z), atol=1e-5)
        with pytest.raises(ServerUnavailableError):
            client.generate(z)
    finally:
        client.close()
        srv.stop(grace=0)


# ---------------------------------------------------------------------------------------------- fuzzing
_SIGNATURES = st.sampled_from(["", "serving_default", "generate", "generate_uint8", "sample", "sample_uint8", "x"])
_INPUT_NAMES = st.sampled_from(["z", "label", "n", "seed", "images", "w"])


@st.composite
def _tensor(draw):
    dtype = draw(st.sampled_from([1, 2, 3, 4, 6, 7, 9, 10, 19, 0, 99]))
    dims = draw(st.lists(st.one_of(st.integers(-2, 9), st.integers(0, 2**40)), max_size=3))
    payload = draw(st.sampled_from(["content", "float_val", "int_val", "int64_val", "none"]))
    return dtype, dims, payload, draw(st.binary(max_size=300)), draw(st.lists(st.integers(-2**31, 2**31 - 1),
                                                                             max_size=20))


@st.composite
def _predict_requests(draw):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = draw(st.sampled_from(["dcgan", "cgan", "", "nope"]))
    request.model_spec.signature_name = draw(_SIGNATURES)
    if draw(st.booleans()):
        request.model_spec.version.value = draw(st.integers(-2, 3))
    for name in draw(st.lists(_INPUT_NAMES, max_size=3, unique=True)):
        dtype, dims, payload, content, values = draw(_tensor())
        tensor = request.inputs[name]
        tensor.dtype = dtype
        for d in dims:
            tensor.tensor_shape.dim.add(size=d)
        if payload == "content":
            tensor.tensor_content = content
        elif payload == "float_val":
            tensor.float_val.extend(float(v) / 7 for v in values)
        elif payload == "int_val":
            tensor.int_val.extend(values)
        elif payload == "int64_val":
            tensor.int64_val.extend(values)
    for name in draw(st.lists(st.sampled_from(["images", "z", "q"]), max_size=2)):
        request.output_filter.append(name)
    return request


@FUZZ
@given(request=_predict_requests())
def test_malformed_protos_get_error_codes(stubs, request):
    predict, _ = stubs
    code, details = _code(predict.Predict, request)
    assert code in ("OK", "INVALID_ARGUMENT", "NOT_FOUND", "FAILED_PRECONDITION", "RESOURCE_EXHAUSTED"), details


@FUZZ
@given(data=st.binary(max_size=200))
def test_undecodable_grpc_bytes_leave_the_server_up(server, stubs, data):
    with grpc.insecure_channel(server.grpc_address) as channel:
        call = channel.unary_unary("/tensorflow.serving.PredictionService/Predict")
        try:
            call(data, timeout=30)
        except grpc.RpcError as exc:  # gRPC itself answers INTERNAL to bytes that are not a PredictRequest
            code, details = exc.code().name, exc.details()
            assert code in ("INTERNAL", "INVALID_ARGUMENT", "NOT_FOUND", "FAILED_PRECONDITION"), details
            assert code != "INTERNAL" or "deserializing" in details
    predict, _ = stubs
    assert _code(predict.Predict, _request("dcgan", z=_z(1, seed=0)))[0] == "OK"


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=3),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["z", "label", "n", "seed", "b64", "x"]), children, max_size=3),
    max_leaves=12,
)


@st.composite
def _json_bodies(draw):
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=100))
    body = {}
    for key in draw(st.lists(st.sampled_from(["instances", "inputs", "signature_name", "other"]), max_size=3,
                             unique=True)):
        body[key] = draw(_SIGNATURES if key == "signature_name" and draw(st.booleans()) else _JSON)
    return json.dumps(body).encode()


@FUZZ
@given(body=_json_bodies(), model=st.sampled_from(["dcgan", "cgan", "nope"]))
def test_malformed_json_gets_error_codes(server, body, model):
    status, answer = _http(f"{server.rest_url}/v1/models/{model}:predict", "POST", body)
    assert status in (200, 400, 404), answer
    if status != 200:
        assert set(answer) == {"error"} and answer["error"]


def test_server_still_answers_after_fuzzing(server, stubs):
    predict, _ = stubs
    assert _code(predict.Predict, _request("dcgan", z=_z(2, seed=0)))[0] == "OK"
    assert _http(f"{server.rest_url}/v1/models/dcgan")[0] == 200


# ---------------------------------------------------------------------------------------------- conversions
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


# ---------------------------------------------------------------------------------------------- config files
def test_deployment_files_parse():
    sources = read_model_config(deployment_file("models.config"), base="/unused")
    assert [(s.name, s.base_path, s.policy, s.num_versions) for s in sources] == [
        ("dcgan", "/models/dcgan", "latest", 1), ("cgan", "/models/cgan", "latest", 1)]
    assert BatchingParameters.from_file(deployment_file("batching.config")) == BatchingParameters(
        max_batch_size=64, batch_timeout_micros=2000, max_enqueued_batches=100, num_batch_threads=1)
    assert read_monitoring_config(deployment_file("monitoring.config")) == "/monitoring/prometheus/metrics"
    compose = open(deployment_file("docker-compose.yml")).read()
    for fragment in ("image: tensorflow/serving", '"127.0.0.1:8500:8500"', '"127.0.0.1:8501:8501"', ":/models:ro",
                     "--model_config_file=/config/models.config", "--batching_parameters_file=/config/batching.config",
                     "--monitoring_config_file=/config/monitoring.config", "--enable_batching=true"):
        assert fragment in compose, fragment
    assert "keras-gen serve" in open(deployment_file("README.md")).read()


def test_models_config_text_parses_with_tf_serving_proto(tmp_path):
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    from keras_gen.serving import ModelSource

    sources = [ModelSource("a", "a"), ModelSource("b", "b", policy="specific", versions=(1, 3), labels={"s": 3})]
    text = models_config_text(sources, root="/models")
    config = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    b = config.model_config_list.config[1]
    assert b.base_path == "/models/b" and list(b.model_version_policy.specific.versions) == [1, 3]
    assert dict(b.version_labels) == {"s": 3}
    path = tmp_path / "models.config"
    path.write_text(text)
    assert read_model_config(path, base="/x")[1] == ModelSource("b", "/models/b", policy="specific", versions=(1, 3),
                                                               labels={"s": 3})


def test_batching_parameters_text_and_validation():
    text = "max_batch_size { value: 8 }\nbatch_timeout_micros { value: 0 }  # no wait\nallowed_batch_sizes: 4\n" \
           "allowed_batch_sizes: 8\npad_variable_length_inputs: true\n"
    parameters = BatchingParameters.from_text(text)
    assert parameters == BatchingParameters(max_batch_size=8, batch_timeout_micros=0, allowed_batch_sizes=(4, 8))
    assert BatchingParameters.from_text(parameters.to_text()) == parameters
    assert parse_text_proto('a { b: "x" c: [1, 2] } d: true') == {"a": [{"b": ["x"], "c": [1, 2]}], "d": [True]}
    with pytest.raises(ValueError, match="Unknown batching parameter"):
        BatchingParameters.from_text("max_batch_sise { value: 8 }")
    with pytest.raises(ValueError, match="ending with max_batch_size"):
        BatchingParameters(max_batch_size=8, allowed_batch_sizes=(4,))
    with pytest.raises(ValueError, match="max_batch_size"):
        BatchingParameters(max_batch_size=0)


def test_server_arguments_are_validated(tmp_path):
    with pytest.raises(FileNotFoundError):
        ModelServer(tmp_path / "missing")
    with pytest.raises(ValueError, match="backend"):
        ModelServer(tmp_path, backend="tflite")
    with pytest.raises(ValueError, match="grpc_port"):
        ModelServer(tmp_path, grpc_port=70000)
    with pytest.raises(ValueError, match="tls_key"):
        ModelServer(tmp_path, tls_cert="cert.pem")
    with pytest.raises(ValueError, match="nothing would be served"):
        ModelServer(tmp_path, grpc_port=None, rest_port=None)
    with pytest.raises(ValueError, match="max_images"):
        ModelServer(tmp_path, max_images=0)
    with pytest.raises(ValueError, match="model"):
        SamplerClient("127.0.0.1:1", model="")
    with pytest.raises(ValueError, match="URL path"):
        ModelServer(tmp_path, monitoring="metrics")
    with pytest.raises(FileNotFoundError):
        ModelServer(tmp_path, monitoring_config_file=tmp_path / "monitoring.config")
    (tmp_path / "monitoring.config").write_text('prometheus_config { enable: true path: "/m" }')
    assert ModelServer(tmp_path, monitoring_config_file=tmp_path / "monitoring.config").metrics_path == "/m"


def test_a_busy_port_is_a_clear_error(server, tmp_path):
    with pytest.raises(OSError, match="Cannot listen"):
        ModelServer(tmp_path, grpc_port=server.grpc_port, rest_port=None).start()
    with pytest.raises(OSError, match="Cannot listen"):
        ModelServer(tmp_path, grpc_port=None, rest_port=server.rest_port).start()


# ---------------------------------------------------------------------------------------------- TLS
def _self_signed(tmp_path):
    """A certificate for localhost / 127.0.0.1: with the `cryptography` package, else the openssl command."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    try:
        import datetime

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        if shutil.which("openssl") is None:
            pytest.skip("neither the cryptography package nor the openssl command is here to make a certificate")
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
             "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
            check=True, capture_output=True, timeout=60,
        )
        return cert, key
    import ipaddress

    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(private.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(private, hashes.SHA256())
    )
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return cert, key


def test_tls_on_both_ports(exported, tmp_path):
    models, paths = exported
    cert, key = _self_signed(tmp_path)
    base = _base(tmp_path, paths, "a")
    with ModelServer(base, grpc_port=0, rest_port=0, poll_interval=0, tls_cert=cert, tls_key=key) as srv:
        assert srv.rest_url.startswith("https://")
        expected = _uint8(models["a"].generate(3, seed=2)).astype(int)
        with SamplerClient(srv.grpc_address, model="dcgan", root_certificates=str(cert)) as client:
            assert np.abs(client.sample(3, seed=2).astype(int) - expected).max() <= 1
        with RestSamplerClient(srv.rest_url, model="dcgan", ca_file=str(cert)) as client:
            assert np.abs(client.sample(3, seed=2).astype(int) - expected).max() <= 1
        with SamplerClient(srv.grpc_address, model="dcgan", retries=0, timeout=5) as plain:
            with pytest.raises(ServerUnavailableError):
                plain.status()
        with RestSamplerClient(srv.rest_url, model="dcgan", retries=0, timeout=5) as untrusted:  # no CA given
            with pytest.raises(ServerUnavailableError, match="CERTIFICATE"):
                untrusted.status()


# ---------------------------------------------------------------------------------------------- the command
def test_keras_gen_serve_and_sample_commands(exported, tmp_path, capsys):
    """``keras-gen serve`` as a process: sample from it with ``keras-gen sample --server`` (gRPC and REST), then
    SIGTERM stops it cleanly."""
    from PIL import Image

    from keras_gen import cli
    from keras_gen.images import image_grid

    models, paths = exported
    base = _base(tmp_path, paths, "a", "c")
    script = shutil.which("keras-gen", path=os.path.dirname(sys.executable))
    command = [script] if script else [sys.executable, "-m", "keras_gen.cli"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen(
        command + ["serve", str(base), "--grpc-port", "0", "--rest-port", "0", "--poll-seconds", "0",
                   "--log-level", "debug", "--tensorflow-intra-op-parallelism", "1",
                   "--tensorflow-inter-op-parallelism", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        lines = []
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not any(line.startswith("Stop with") for line in lines):
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line.strip())
        assert any(line.startswith("Stop with") for line in lines), (lines, process.stderr.read()[-3000:])
        assert "TensorFlow threads: intra-op 1, inter-op 2" in lines  # as TensorFlow reports them after setting
        grpc_address = next(line.split()[1] for line in lines if line.startswith("gRPC:"))
        rest_url = next(line.split()[1] for line in lines if line.startswith("REST:")).split("/v1/")[0]
        expected = image_grid(models["a"].generate(9, seed=4)).astype(int)
        for extra, server in (([], grpc_address), (["--rest"], rest_url)):
            out = tmp_path / f"grid{len(extra)}.png"
            code = cli.main(["sample", "--server", server, "--model", "dcgan", "--n", "9", "--seed", "4",
                             "--out", str(out)] + extra)
            assert code == 0
            grid = np.asarray(Image.open(out)).astype(int)
            scale = grid.shape[0] // expected.shape[0]
            assert np.abs(grid[::scale, ::scale] - expected[..., 0]).max() <= 1
        capsys.readouterr()
        assert cli.main(["sample", "--server", grpc_address, "--model", "cgan", "--out", str(out)]) == 2
        assert "conditional" in capsys.readouterr().err
        assert cli.main(["sample", "--server", grpc_address, "--model", "gan", "--out", str(out)]) == 2
        assert "NOT_FOUND" in capsys.readouterr().err
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
        stderr = process.stderr.read()
        assert "Server stopped" in stderr and "Traceback" not in stderr
        assert "gRPC Predict model=dcgan" in stderr and "REST predict model=dcgan" in stderr  # debug request lines
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)
        process.stdout.close()
        process.stderr.close()


def test_sample_command_errors_are_clean(capsys, tmp_path, unused_port):
    from keras_gen import cli

    with pytest.raises(SystemExit):
        cli.main(["serve", str(tmp_path), "--tensorflow-intra-op-parallelism", "-1"])
    assert "thread count >= 0" in capsys.readouterr().err

    out = str(tmp_path / "g.png")
    assert cli.main(["sample", "--out", out]) == 2
    assert "--server" in capsys.readouterr().err
    assert cli.main(["sample", "--server", f"127.0.0.1:{unused_port}", "--out", out]) == 2
    assert "--model" in capsys.readouterr().err
    assert cli.main(["sample", "--server", f"127.0.0.1:{unused_port}", "--model", "m", "--retries", "0",
                     "--timeout", "2", "--out", out]) == 2
    err = capsys.readouterr().err
    assert "UNAVAILABLE" in err and "Traceback" not in err
