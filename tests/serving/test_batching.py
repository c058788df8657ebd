"""Server-side batching: the parameters file, and concurrent load answered row for row."""

import shutil
import threading

import numpy as np
import pytest

from keras_gen.serving import BatchingParameters, ModelServer, RequestError, SamplerClient
from keras_gen.serving.batching import Batcher
from keras_gen.serving.config import parse_text_proto
from tests.serving.helpers import _base, _http, _keras, _uint8, _z


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



def test_batching_takes_every_signature_as_tf_serving_does(exported, tmp_path):
    """TF Serving's BatchingSession batches every signature of a batched model: `sample` / `sample_uint8` (scalar
    `n`, `seed`) are refused with INVALID_ARGUMENT ("Batching Run() input tensors must have at least one
    dimension", tensorflow/serving#494) over gRPC and REST, and a request larger than `max_batch_size` is refused
    unless `enable_large_batch_splitting` is on; the `z` signatures batch."""
    models, paths = exported
    base = _base(tmp_path, paths, "a")
    seed_inputs = {"n": np.array(2, "int32"), "seed": np.array(0, "int64")}
    parameters = BatchingParameters(max_batch_size=4, batch_timeout_micros=0)
    with ModelServer(base, grpc_port=0, rest_port=0, poll_interval=0, batching=parameters) as srv:
        with SamplerClient(srv.grpc_address, model="dcgan", retries=0) as client:
            for signature in ("sample", "sample_uint8"):
                with pytest.raises(RequestError) as info:
                    client.predict(signature, seed_inputs)
                assert info.value.code == "INVALID_ARGUMENT", info.value
                assert "at least one dimension" in info.value.message and "'n'" in info.value.message
            with pytest.raises(RequestError) as info:
                client.sample(2, seed=0)  # what `keras-gen sample --server` sends
            assert info.value.code == "INVALID_ARGUMENT"
            z = _z(4, seed=20)
            np.testing.assert_allclose(client.generate(z, uint8=False), _keras(models["a"], z), atol=1e-5)
            with pytest.raises(RequestError) as info:
                client.generate(_z(5, seed=21), uint8=False)
            assert info.value.code == "INVALID_ARGUMENT"
            assert "Task size 5 is larger than maximum input batch size 4" in info.value.message
        status, answer = _http(f"{srv.rest_url}/v1/models/dcgan:predict", "POST",
                               {"signature_name": "sample_uint8", "inputs": {"n": 2, "seed": 0}})
        assert status == 400 and "at least one dimension" in answer["error"]
        assert srv.stats()["batching"]["dcgan/1/generate"]["tasks"] == 1
    splitting = BatchingParameters(max_batch_size=4, batch_timeout_micros=0, enable_large_batch_splitting=True)
    with ModelServer(base, grpc_port=0, rest_port=None, poll_interval=0, batching=splitting) as srv:
        with SamplerClient(srv.grpc_address, model="dcgan", retries=0) as client:
            z = _z(5, seed=21)
            np.testing.assert_allclose(client.generate(z, uint8=False), _keras(models["a"], z), atol=1e-5)


def test_per_model_batching_parameters(exported, tmp_path):
    """TF Serving's ``--enable_per_model_batching_parameters``: a version is batched only when its folder holds
    ``batching_params.pbtxt``, with that file's queue parameters (the server's file gives the batch threads); the
    other models keep `sample`. A malformed file fails that version's load, as TF Serving's does."""
    models, paths = exported
    base = _base(tmp_path, paths, "a", "c")
    (base / "cgan" / "1" / "batching_params.pbtxt").write_text(
        "max_batch_size { value: 2 }\nbatch_timeout_micros { value: 0 }\n")
    shutil.copytree(base / "cgan" / "1", base / "cgan" / "2")
    (base / "cgan" / "2" / "batching_params.pbtxt").write_text("max_batch_sise { value: 2 }\n")
    parameters = BatchingParameters(max_batch_size=64, num_batch_threads=1)
    with ModelServer(base, grpc_port=0, rest_port=None, poll_interval=0, batching=parameters,
                     per_model_batching=True) as srv:
        assert srv.models() == {"dcgan": [1], "cgan": [1]}
        with SamplerClient(srv.grpc_address, model="dcgan", retries=0) as client:
            pixels = client.sample(3, seed=4)
            assert np.abs(pixels.astype(int) - _uint8(models["a"].generate(3, seed=4)).astype(int)).max() <= 1
            z = _z(5, seed=22)  # more than cgan's 2, within the server file's 64: dcgan is not batched
            np.testing.assert_allclose(client.generate(z, uint8=False), _keras(models["a"], z), atol=1e-5)
        with SamplerClient(srv.grpc_address, model="cgan", retries=0) as client:
            z, labels = _z(2, seed=23), np.array([3, 5], "int32")
            np.testing.assert_allclose(client.generate(z, labels, uint8=False), _keras(models["c"], z, labels),
                                       atol=1e-5)
            with pytest.raises(RequestError, match="Task size 3 is larger than maximum input batch size 2"):
                client.generate(_z(3, seed=24), labels=1, uint8=False)
            with pytest.raises(RequestError, match="at least one dimension"):
                client.sample(2, seed=0, labels=1)
            status = client.status()
        batchers = srv.stats()["batching"]
        assert {key for key, stats in batchers.items() if stats["tasks"]} == {"cgan/1/generate"}
        assert not any(key.startswith("dcgan/") for key in batchers)
    assert [(s["version"], s["state"]) for s in status] == [(2, "END"), (1, "AVAILABLE")]
    assert "max_batch_sise" in status[0]["error_message"]


def test_batcher_checks_rows_as_tf_serving_does():
    """The batcher on a plain function: inputs of different 0th sizes are refused (INVALID_ARGUMENT), and outputs
    without the batch's rows along axis 0 fail with FAILED_PRECONDITION, TF Serving's codes, even for a request
    that runs alone; `enable_large_batch_splitting` reads and writes in TF Serving's text format."""
    parameters = BatchingParameters(max_batch_size=4, batch_timeout_micros=0)
    double = Batcher(lambda inputs: {"y": inputs["x"] * 2}, parameters)
    np.testing.assert_array_equal(double.submit({"x": np.arange(3.0)})["y"], [0.0, 2.0, 4.0])
    with pytest.raises(RequestError, match="equal 0th-dimension size") as info:
        double.submit({"x": np.zeros(2), "w": np.zeros(3)})
    assert info.value.code == "INVALID_ARGUMENT"
    for run, fragment in ((lambda inputs: {"y": inputs["x"][:1]}, "0th dimension does not equal"),
                          (lambda inputs: {"y": np.float32(inputs["x"].sum())}, "0 dimensions")):
        with pytest.raises(RequestError, match=fragment) as info:
            Batcher(run, parameters).submit({"x": np.zeros(2)})
        assert info.value.code == "FAILED_PRECONDITION"
    text = "max_batch_size { value: 4 }\nenable_large_batch_splitting { value: true }\n"
    splitting = BatchingParameters.from_text(text)
    assert splitting.enable_large_batch_splitting and BatchingParameters.from_text(splitting.to_text()) == splitting
    with pytest.raises(ValueError, match="true or false"):
        BatchingParameters.from_text("enable_large_batch_splitting { value: 1 }")
