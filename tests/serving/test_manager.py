"""Versions: hot swaps without a failed request, models.config policies and labels, a version that cannot load."""

import os
import shutil
import threading
import time

import numpy as np

from keras_gen.serving import ModelServer, RestSamplerClient, SamplerClient
from tests.serving.helpers import _base, _keras, _z


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

