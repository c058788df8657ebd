"""TF Serving's configuration files: the shipped deployment files and models.config written and read."""

import os
import pathlib
import re
import shutil
import subprocess
import time

import numpy as np
import pytest
import tensorflow as tf

from keras_gen.serving import BatchingParameters, ModelServer, RequestError, SamplerClient, deployment_file
from keras_gen.serving.config import models_config_text, read_model_config, read_monitoring_config
from tests.serving.helpers import _http, _uint8, read_compose
from tests.test_models import tiny_config


def test_deployment_files_parse():
    sources = read_model_config(deployment_file("models.config"), base="/unused")
    assert [(s.name, s.base_path, s.policy, s.num_versions) for s in sources] == [("demo", "/models/demo", "latest", 1)]
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



REPO = pathlib.Path(__file__).resolve().parents[2]
SERVING = pathlib.Path(deployment_file("docker-compose.yml")).parent
_TF_SERVING_ONLY = {"model_config_file_poll_wait_seconds"}  # the local server reads models.config once


def _local_server_kwargs(command, mounts, exports, tmp_path):
    """`ModelServer` arguments for TF Serving's command-line flags, with the container's paths replaced by the
    files mounted on them (and ``/models`` by the export base path)."""
    kwargs, enable_batching = {}, False
    for flag in command:
        name, _, value = flag.removeprefix("--").partition("=")
        if name == "model_config_file":
            text = mounts[value].read_text()
            assert re.findall(r'base_path: "(/models/[^"]+)"', text), "base paths live under the /models mount"
            (tmp_path / "models.config").write_text(text.replace('base_path: "/models/', f'base_path: "{exports}/'))
            kwargs["model_config_file"] = tmp_path / "models.config"
        elif name == "file_system_poll_wait_seconds":
            kwargs["poll_interval"] = float(value)
        elif name == "enable_batching":
            enable_batching = value == "true"
        elif name == "batching_parameters_file":
            kwargs["batching"] = mounts[value]
        elif name == "enable_per_model_batching_parameters":
            kwargs["per_model_batching"] = value == "true"
        elif name == "monitoring_config_file":
            kwargs["monitoring_config_file"] = mounts[value]
        else:
            assert name in _TF_SERVING_ONLY, f"docker-compose.yml passes --{name}: give it a local equivalent here"
    assert enable_batching or "batching" not in kwargs, "TF Serving refuses a batching file without --enable_batching"
    if not enable_batching:
        kwargs.pop("per_model_batching", None)
    return kwargs


def _healthcheck(script, port):
    """Runs the compose healthcheck (``$$`` is compose's escaped ``$``) against ``port`` with bash alone: no PATH,
    so any program other than bash's builtins would fail, as curl would in the image."""
    script = script.replace("$$", "$").replace("/dev/tcp/127.0.0.1/8501", f"/dev/tcp/127.0.0.1/{port}")
    done = subprocess.run([shutil.which("bash"), "-c", script], env={"PATH": "/nonexistent"}, capture_output=True,
                          text=True, timeout=30)
    return done.returncode


def test_shipped_configuration_serves_the_demo_export_as_tf_serving_would(tmp_path, capsys):
    """`make demo`'s run (runs/demo), exported by `keras-gen export runs/demo --out exports`, served with the
    shipped models.config, batching.config, monitoring.config and the compose command's flags: `demo` is served,
    `keras-gen sample --server` works (per-model batching: no batching_params.pbtxt, no batching), the
    healthcheck passes only once `demo` is AVAILABLE, the image's TensorFlow is not older than the exporter's; a
    version that carries the shipped batching.config as batching_params.pbtxt batches its `z` signatures and
    refuses `sample`, as TF Serving's batching session does."""
    from keras_gen import cli
    from keras_gen.runs import load_run, train_run

    compose = read_compose(SERVING / "docker-compose.yml")
    service = compose["services"]["tfserving"]
    image, _, tag = service["image"].partition(":")
    assert image == "tensorflow/serving"
    default = re.fullmatch(r"\$\{TF_SERVING_VERSION:-(\d+)\.(\d+)\.(\d+)\}", tag)
    assert default, tag
    assert tuple(map(int, default.groups()[:2])) >= tuple(map(int, tf.__version__.split(".")[:2])), (
        f"TF Serving {tag} is older than the TensorFlow {tf.__version__} that writes the export")
    mounts, export_mount = {}, None
    for volume in service["volumes"]:
        source, target = re.fullmatch(r"(.+?):(/[^:]*)(?::ro)?", volume).groups()
        if target == "/models":
            export_mount = source
        else:
            mounts[target] = (SERVING / source).resolve()
    assert export_mount == "${EXPORT_BASE:-../exports}" and (SERVING / "../exports").resolve() == REPO / "exports"

    demo_out = re.search(r"^DEMO_OUT \?= (\S+)$", (REPO / "Makefile").read_text(), re.M).group(1)
    run = tmp_path / demo_out
    train_run(tiny_config("dcgan", epochs=1), run, verbose=0)
    exports = tmp_path / "exports"
    kwargs = _local_server_kwargs(service["command"], mounts, exports, tmp_path)
    config_names = [s.name for s in read_model_config(kwargs["model_config_file"])]
    test = service["healthcheck"]["test"]
    assert test[:3] == ["CMD", "bash", "-c"] and len(test) == 4
    with ModelServer(None, grpc_port=0, rest_port=0, **kwargs) as srv:  # started before the export exists
        assert _healthcheck(test[3], srv.rest_port) != 0
        assert cli.main(["export", str(run), "--out", str(exports), "--formats", "savedmodel"]) == 0
        name = re.search(r"^Exported (\S+) version 1 to ", capsys.readouterr().out, re.M).group(1)
        assert config_names == [name] == ["demo"]
        deadline = time.monotonic() + 60
        while srv.models().get(name) != [1] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _healthcheck(test[3], srv.rest_port) == 0
        assert f"/v1/models/{name} " in test[3]
        trained = load_run(run, compile=False)
        out = tmp_path / "grid.png"
        assert cli.main(["sample", "--server", srv.grpc_address, "--model", name, "--n", "4", "--seed", "3",
                         "--out", str(out)]) == 0
        with SamplerClient(srv.grpc_address, model=name, retries=0) as client:
            expected = _uint8(np.asarray(trained.generate(4, seed=3))).astype(int)
            assert np.abs(client.sample(4, seed=3).astype(int) - expected).max() <= 1
            assert srv.stats()["batching"] == {}
            # Opting one version into batching, as serving/README.md says: the shipped file as batching_params.pbtxt.
            shutil.copytree(exports / name / "1", tmp_path / "staging")
            shutil.copy(SERVING / "batching.config", tmp_path / "staging" / "batching_params.pbtxt")
            os.rename(tmp_path / "staging", exports / name / "2")
            while srv.models().get(name) != [2] and time.monotonic() < deadline + 60:
                time.sleep(0.2)
            with pytest.raises(RequestError) as info:
                client.sample(4, seed=3)
            assert info.value.code == "INVALID_ARGUMENT" and "at least one dimension" in info.value.message
            z = np.random.default_rng(0).standard_normal((3, trained.latent_dim)).astype("float32")
            np.testing.assert_allclose(client.generate(z, uint8=False),
                                       np.asarray(trained.generator(z, training=False)), atol=1e-5)
        assert {key for key, stats in srv.stats()["batching"].items() if stats["tasks"]} == {f"{name}/2/generate"}
        assert _healthcheck(test[3], srv.rest_port) == 0
        status, text = _http(f"{srv.rest_url}{read_monitoring_config(mounts['/config/monitoring.config'])}", raw=True)
        assert status == 200 and f'model_name="{name}"' in text
    assert _healthcheck(test[3], srv.rest_port) != 0  # stopped
    for guide in (SERVING / "README.md", SERVING / "docker-compose.yml"):
        text = guide.read_text()
        assert f"keras-gen export {demo_out} --out exports" in text and f"--model {name}" in text, guide
