"""Fixtures of the serving tests: the exported test models and one server over them (session scope: several test
files share them, and building them is what costs)."""

import grpc
import keras
import pytest
from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

import keras_gen.export as kx
from keras_gen import presets
from keras_gen.serving import ModelServer
from tests.helpers import randomize_normalization
from tests.serving.helpers import MAX_IMAGES, MAX_REQUEST_BYTES, _base
from tests.test_models import tiny_config


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """Three tiny exports (SavedModel + ONNX): two versions of an unconditional DCGAN and a conditional GAN."""
    store = tmp_path_factory.mktemp("exports")
    models, paths = {}, {}
    for key, (preset, name, version, seed) in {
        "a": ("dcgan", "dcgan", 1, 1), "b": ("dcgan", "dcgan", 2, 2), "c": ("cgan", "cgan", 1, 3),
    }.items():
        keras.utils.set_random_seed(seed)
        model = randomize_normalization(presets.build_model(tiny_config(preset)), seed)
        result = kx.export_model(model, store / key, name, version=version, formats="savedmodel,onnx",
                                 allow_untrained=True, batch_sizes=(1, 2))
        models[key], paths[key] = model, result.path
    return models, paths


@pytest.fixture(scope="session")
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


@pytest.fixture(scope="session")
def stubs(server):
    channel = grpc.insecure_channel(server.grpc_address)
    try:
        yield (prediction_service_pb2_grpc.PredictionServiceStub(channel),
               model_service_pb2_grpc.ModelServiceStub(channel))
    finally:
        channel.close()


@pytest.fixture
def unused_port():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]

