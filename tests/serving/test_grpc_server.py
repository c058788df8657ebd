"""The gRPC front end: PredictionService and ModelService through TF Serving's own stubs, with requests built by
TensorFlow's ``tf.make_tensor_proto`` and answers compared with the Keras generator called directly."""

import os
from concurrent import futures

import grpc
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given
from hypothesis import strategies as st
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from tests.serving.helpers import (
    FUZZ,
    LATENT,
    MAX_IMAGES,
    MAX_REQUEST_BYTES,
    _SIGNATURES,
    _code,
    _keras,
    _base,
    _request,
    _uint8,
    _z,
    proc_status_kib,
    serve_process,
)


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



@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="reads the server's RSS from /proc")
def test_a_huge_announced_shape_costs_the_server_no_memory(exported, tmp_path):
    """The issue's request: ``z`` as ``TensorProto(dtype=DT_DOUBLE, tensor_shape=[134217728], double_val=[1.0])``,
    21 bytes that announce 1 GB, and two like it that get the dtype right (a wrong rank; 2**24 rows of the right
    shape, far beyond --max-images). 100 such requests, 32 at a time, over a real channel to a ``keras-gen serve``
    process: every answer is INVALID_ARGUMENT naming ``z``, and the server's peak RSS (``VmHWM``, reset just
    before) stays within 50 MB of its RSS before. The server runs under RLIMIT_DATA so that a regression fails
    requests here instead of exhausting the machine."""
    _, paths = exported
    base = _base(tmp_path, paths, "a")
    requests = []
    for dtype, shape, field in ((tf.float64, [134217728], "double_val"), (tf.float32, [134217728], "float_val"),
                                (tf.float32, [1 << 24, LATENT], "float_val")):
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "dcgan"
        z = request.inputs["z"]
        z.dtype = dtype.as_datatype_enum
        for size in shape:
            z.tensor_shape.dim.add(size=size)
        getattr(z, field).append(1.0)
        requests.append(request)
    assert requests[0].inputs["z"].ByteSize() == 21
    good = _request("dcgan", "generate", z=_z(1, seed=31))
    process, addresses = serve_process(base, "--no-rest", data_limit=3 << 30)
    try:
        with grpc.insecure_channel(addresses["gRPC"]) as channel:
            predict = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            with futures.ThreadPoolExecutor(32) as pool:
                # Every worker thread of the server started and used once before the baseline.
                assert set(pool.map(lambda _: _code(predict.Predict, good)[0], range(64))) == {"OK"}
                with open(f"/proc/{process.pid}/clear_refs", "w") as f:
                    f.write("5")  # resets VmHWM to the current RSS
                before = proc_status_kib(process.pid, "VmRSS")
                answers = list(pool.map(lambda i: _code(predict.Predict, requests[i % 3]), range(100)))
            peak = proc_status_kib(process.pid, "VmHWM")
            assert _code(predict.Predict, good)[0] == "OK"  # and the server still answers
    finally:
        process.terminate()
        process.wait(60)
        process.stdout.close()
    assert peak - before < 50 * 1024, f"peak RSS {peak} KiB: {(peak - before) / 1024:.0f} MB above {before} KiB before"
    assert {code for code, _ in answers} == {"INVALID_ARGUMENT"}, answers[:3]
    assert all("'z'" in details for _, details in answers), answers[:3]
