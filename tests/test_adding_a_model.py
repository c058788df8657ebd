"""docs/architecture.md's "Adding a model", checked: the toy GMMN (tests/toy_model.py) declares its model, its
family and its preset and nothing else, and gets the shared harness, a run folder, the command line, export with
parity, `keras_gen.export.load` and the server without a line of its own in any of them."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_gen import cli, presets
from keras_gen.runs import load_run, train_run
from tests import test_case, toy_model


@pytest.fixture(scope="module")
def registered():
    unregister = toy_model.register()
    yield
    unregister()


def tiny_config(**overrides):
    networks = {"generator": {"latent_dim": 2, "hidden": [16, 16]}}
    return presets.get_config("gmmn-ring2d", networks=networks, batch_size=8, **overrides)


def _batch():
    x = np.random.default_rng(0).normal(size=(8, 2)).astype("float32")
    return tf.constant(x)


def test_mmd_matches_its_closed_form():
    x, y = np.zeros((1, 2), "float32"), np.array([[3.0, 4.0]], "float32")  # |x - y| = 5
    expected = 2.0 - 2.0 * np.exp(-25.0 / (2 * 2.0**2))
    np.testing.assert_allclose(float(toy_model.mmd(x, y, bandwidths=(2.0,))), expected, rtol=1e-6)
    z = np.random.default_rng(1).normal(size=(16, 3)).astype("float32")
    np.testing.assert_allclose(float(toy_model.mmd(z, z)), 0.0, atol=1e-6)


def test_the_shared_harness_runs_on_the_toy(registered, tmp_path):
    def build(jit_compile=False):
        return presets.build_model(tiny_config(jit_compile=jit_compile))

    model = build()
    assert model.kind == "latent" and model.operations == {"sample", "latent_space"}
    test_case.run_serialization_test(model)
    test_case.run_saving_test(model, _batch(), tmp_path)
    test_case.run_phase_test(build(), _batch())
    test_case.run_jit_test(build, _batch())
    data = tf.data.Dataset.from_tensor_slices(np.random.default_rng(2).normal(size=(32, 2)).astype("float32"))
    test_case.run_resume_test(build, data.batch(8, drop_remainder=True), tmp_path / "resume")


@pytest.fixture(scope="module")
def toy_run(registered, tmp_path_factory):
    keras.utils.set_random_seed(0)
    run = tmp_path_factory.mktemp("runs") / "gmmn"
    train_run(tiny_config(epochs=2), run, verbose=0)
    return run


def test_the_toy_trains_samples_and_is_evaluated_from_the_command_line(toy_run, tmp_path, capsys):
    assert cli.main(["sample", str(toy_run), "--n", "16", "--out", str(tmp_path / "s.png")]) == 0
    assert (tmp_path / "s.png").stat().st_size > 0
    assert cli.main(["latent", "interpolate", str(toy_run), "--out", str(tmp_path / "i.png"), "--rows", "2",
                     "--steps", "3"]) == 0
    assert cli.main(["evaluate", str(toy_run), "--metrics", "coverage", "--n", "200", "--no-progress",
                     "--out", str(tmp_path / "eval.json")]) == 0
    assert "modes covered" in capsys.readouterr().out
    # What it does not offer is refused by name, not by a traceback.
    assert cli.main(["latent", "edit", str(toy_run), "--out", str(tmp_path / "e.png")]) == 2
    err = capsys.readouterr().err
    assert "needs a model that encodes images" in err and "GMMN" in err and "Traceback" not in err


def test_the_toy_exports_and_serves_with_no_adapter_of_its_own(toy_run, tmp_path):
    import keras_gen.export as kx
    from keras_gen.serving import ModelServer, SamplerClient

    model = load_run(toy_run, compile=False)
    result = kx.export_run(toy_run, base_dir=tmp_path / "exports", formats="savedmodel,tflite,onnx",
                           batch_sizes=(1, 5))
    assert result.manifest["model"]["family"] == "latent" and result.manifest["model"]["class"] == "GMMN"
    expected = model.generate(9, seed=4)  # (9, 2)
    for format in ("savedmodel", "tflite", "onnx"):
        with kx.load(result.path, format=format) as sampler:
            np.testing.assert_allclose(sampler.sample(9, seed=4), expected, atol=1e-5, rtol=0, err_msg=format)
    with ModelServer(tmp_path / "exports", grpc_port=0, rest_port=None, backend="onnx") as server:
        with SamplerClient(f"127.0.0.1:{server.grpc_port}", model="gmmn", timeout=30) as client:
            np.testing.assert_allclose(client.sample(9, seed=4, uint8=False), expected, atol=1e-5, rtol=0)
