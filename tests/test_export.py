"""keras_gen.export: SavedModel / TFLite / ONNX artifacts against Keras, at tiny sizes.

The exporter checks its own artifacts; these tests do not trust that report. They reload every artifact with
the plain runtime APIs (`tf.saved_model.load`, a TF1 session, ``saved_model_cli``, the LiteRT interpreter, ONNX
Runtime) and compare with the Keras networks called directly, with the uint8 pixels and PSNR computed here in
NumPy. Batch-norm statistics and the conditional scales/offsets are randomised first, so a dropped label or a
folded-away normalisation would show.
"""

import functools
import importlib.metadata
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_gen.export as kx
from keras_gen import presets
from keras_gen.export import parity as parity_lib
from tests.helpers import randomize_normalization
from tests.test_models import tiny_config

BATCHES = (1, 7, 64)
TOL = {"fp32": 1e-4, "fp16": 1e-2}


# ---------------------------------------------------------------------------------------------- helpers
def _build(name, **overrides):
    model = presets.build_model(tiny_config(name, **overrides))
    return randomize_normalization(model)


def _uint8(images):
    """Independent NumPy reference of the uint8 mapping of [-1, 1] images."""
    return np.clip(np.round((images.astype("float64") + 1.0) / 2.0 * 255.0), 0, 255).astype("uint8")


def _psnr(a, b, peak=2.0):
    mse = np.mean((a.astype("float64") - b.astype("float64")) ** 2)
    return np.inf if mse == 0 else 10 * np.log10(peak**2 / mse)


def _keras(model, z, labels=None):
    net = model.generator
    return np.asarray(net(z if labels is None else [z, labels], training=False))


def _inputs(model, batch, seed):
    generator = np.random.default_rng(seed)
    z = generator.standard_normal((batch, model.latent_dim)).astype("float32")
    labels = None
    if model.num_classes:
        labels = generator.integers(0, model.num_classes, batch).astype("int32")
    return z, labels


def _feed(z, labels):
    return {"z": z} if labels is None else {"z": z, "label": labels}


def _export(model, tmp_path_factory, name, **kwargs):
    base = tmp_path_factory.mktemp(f"export-{name}")
    return kx.export_model(model, base, name, allow_untrained=True, **kwargs)


@pytest.fixture(scope="module")
def uncond(tmp_path_factory):
    keras.utils.set_random_seed(1)
    model = _build("dcgan")
    return model, _export(model, tmp_path_factory, "dcgan", quantize="fp16,int8")


@pytest.fixture(scope="module")
def cond(tmp_path_factory):
    keras.utils.set_random_seed(2)
    model = _build("cgan")  # conditional batch norm in the generator
    return model, _export(model, tmp_path_factory, "cgan", quantize="fp16,int8")


@functools.lru_cache(maxsize=None)
def _interpreter(path):
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_path=path, num_threads=2)


def _run_tflite(path, signature, feed):
    runner = _interpreter(path).get_signature_runner(signature)
    return {k: np.array(v) for k, v in runner(**feed).items()}


@functools.lru_cache(maxsize=None)
def _onnx_session(path):
    import onnxruntime as ort

    return ort.InferenceSession(path, providers=["CPUExecutionProvider"])


def _run_onnx(path, feed):
    session = _onnx_session(path)
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feed)))


# ---------------------------------------------------------------------------------------------- parity
@pytest.mark.parametrize("which", ["uncond", "cond"])
def test_every_artifact_matches_keras(which, request):
    """All formats at batch 1, 7, 64: fp32 <= 1e-4, fp16 <= 1e-2, int8 PSNR >= 30 dB, uint8 within 1 level."""
    model, result = request.getfixturevalue(which)
    path = result.path
    saved = tf.saved_model.load(path)
    for i, batch in enumerate(BATCHES):
        z, labels = _inputs(model, batch, seed=10 + i)
        expected = _keras(model, z, labels)
        feed = _feed(z, labels)
        tf_feed = {k: tf.constant(v) for k, v in feed.items()}
        # SavedModel (TF2 loader): float and uint8 signatures, and serving_default.
        got = saved.signatures["generate"](**tf_feed)["images"].numpy()
        np.testing.assert_allclose(got, expected, atol=TOL["fp32"])
        np.testing.assert_allclose(saved.signatures["serving_default"](**tf_feed)["images"].numpy(), got, atol=0)
        pixels = saved.signatures["generate_uint8"](**tf_feed)["images"].numpy()
        assert pixels.dtype == np.uint8
        assert np.abs(pixels.astype(int) - _uint8(expected).astype(int)).max() <= 1
        # TFLite, three precisions.
        for precision in ("fp32", "fp16"):
            file = os.path.join(path, "tflite", f"model_{precision}.tflite")
            out = _run_tflite(file, "generate", feed)["images"]
            assert out.shape == expected.shape
            np.testing.assert_allclose(out, expected, atol=TOL[precision])
            pixels = _run_tflite(file, "generate_uint8", feed)["images"]
            assert pixels.dtype == np.uint8
            levels = 1 if precision == "fp32" else 2
            assert np.abs(pixels.astype(int) - _uint8(expected).astype(int)).max() <= levels
        int8 = _run_tflite(os.path.join(path, "tflite", "model_int8.tflite"), "generate", feed)["images"]
        assert int8.shape == expected.shape
        assert _psnr(int8, expected) >= 30.0
        # ONNX Runtime.
        out = _run_onnx(os.path.join(path, "onnx", "generate.onnx"), feed)
        assert list(out) == ["images"]
        np.testing.assert_allclose(out["images"], expected, atol=TOL["fp32"])
        pixels = _run_onnx(os.path.join(path, "onnx", "generate_uint8.onnx"), feed)["images"]
        assert pixels.dtype == np.uint8
        assert np.abs(pixels.astype(int) - _uint8(expected).astype(int)).max() <= 1


def test_conditional_labels_reach_every_format(cond):
    """The same z with two different labels gives different images in every format (the label is not dropped)."""
    model, result = cond
    z, _ = _inputs(model, 4, seed=3)
    a, b = np.zeros(4, "int32"), np.full(4, 5, "int32")
    assert np.abs(_keras(model, z, a) - _keras(model, z, b)).max() > 1e-2
    for kwargs in ({}, {"format": "tflite"}, {"format": "onnx"}):
        with kx.load(result.path, **kwargs) as sampler:
            got_a, got_b = sampler.generate(z, a), sampler.generate(z, b)
        np.testing.assert_allclose(got_a, _keras(model, z, a), atol=1e-4)
        np.testing.assert_allclose(got_b, _keras(model, z, b), atol=1e-4)


def test_embedding_conditioned_generator_exports(tmp_path):
    """The concat conditioning (Embedding -> GATHER) converts to all three formats as well."""
    keras.utils.set_random_seed(3)
    networks = {"generator": {"latent_dim": 8, "width": 8, "conditioning": "concat"},
                "discriminator": {"width": 8, "conditioning": "projection"}}
    model = randomize_normalization(presets.build_model(presets.get_config(
        "cgan", dataset="digits", networks=networks, batch_size=8)))
    result = kx.export_model(model, tmp_path, "concat", allow_untrained=True, batch_sizes=(1, 7))
    z, labels = _inputs(model, 7, seed=4)
    expected = _keras(model, z, labels)
    for kwargs in ({}, {"format": "tflite"}, {"format": "onnx"}):
        with kx.load(result.path, **kwargs) as sampler:
            np.testing.assert_allclose(sampler.generate(z, labels), expected, atol=1e-4)


def test_signatures_names_dtypes_and_dynamic_batch(cond):
    model, result = cond
    saved = tf.saved_model.load(result.path)
    assert {"serving_default", "generate", "generate_uint8", "sample", "sample_uint8"} <= set(saved.signatures)
    generate = saved.signatures["generate"]
    inputs = generate.structured_input_signature[1]
    assert inputs["z"].dtype == tf.float32 and inputs["z"].shape.as_list() == [None, model.latent_dim]
    assert inputs["label"].dtype == tf.int32 and inputs["label"].shape.as_list() == [None]
    assert generate.structured_outputs["images"].shape.as_list() == [None, 8, 8, 1]
    sample = saved.signatures["sample"]
    assert {k: v.dtype for k, v in sample.structured_input_signature[1].items()} == {
        "n": tf.int32, "seed": tf.int64, "label": tf.int32}
    assert set(sample.structured_outputs) == {"images", "z"}
    assert saved.signatures["sample_uint8"].structured_outputs["images"].dtype == tf.uint8
    # TFLite: named signatures, no random ones; the int8 file holds `generate` only.
    from ai_edge_litert.interpreter import Interpreter

    tflite = Interpreter(model_path=os.path.join(result.path, "tflite", "model_fp32.tflite"))
    assert tflite.get_signature_list() == {
        "generate": {"inputs": ["label", "z"], "outputs": ["images"]},
        "generate_uint8": {"inputs": ["label", "z"], "outputs": ["images"]},
    }
    int8 = Interpreter(model_path=os.path.join(result.path, "tflite", "model_int8.tflite"))
    assert list(int8.get_signature_list()) == ["generate"]
    # ONNX: the same names, a symbolic batch axis, opset <= 18, no random endpoint.
    import onnx

    assert sorted(os.listdir(os.path.join(result.path, "onnx"))) == ["generate.onnx", "generate_uint8.onnx"]
    proto = onnx.load(os.path.join(result.path, "onnx", "generate.onnx"))
    assert [i.name for i in proto.graph.input] == ["z", "label"]
    assert [o.name for o in proto.graph.output] == ["images"]
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert proto.graph.input[1].type.tensor_type.elem_type == onnx.TensorProto.INT32
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) <= 18


# ---------------------------------------------------------------------------------------------- sampling
@pytest.mark.parametrize("which", ["uncond", "cond"])
def test_sample_signature_reproduces_generate_exactly(which, request):
    model, result = request.getfixturevalue(which)
    saved = tf.saved_model.load(result.path)
    for n, seed in ((1, 0), (7, 3), (64, 12345)):
        expected = model.generate(n, seed=seed)
        feed = {"n": tf.constant(n, tf.int32), "seed": tf.constant(seed, tf.int64)}
        if model.num_classes:
            feed["label"] = tf.constant(np.arange(n) % model.num_classes, tf.int32)  # generate's default labels
        out = saved.signatures["sample"](**feed)
        np.testing.assert_array_equal(out["z"].numpy(), np.asarray(model.sample_latent(n, seed)))
        np.testing.assert_array_equal(out["images"].numpy(), expected)
        pixels = saved.signatures["sample_uint8"](**feed)["images"].numpy()
        assert np.abs(pixels.astype(int) - _uint8(expected).astype(int)).max() <= 1
    if model.num_classes:
        labels = np.full(5, 7, "int32")
        out = saved.signatures["sample"](n=tf.constant(5), seed=tf.constant(9, tf.int64), label=tf.constant(labels))
        np.testing.assert_array_equal(out["images"].numpy(), model.generate(5, labels=7, seed=9))
        with pytest.raises(tf.errors.InvalidArgumentError, match="labels must be < 10"):
            saved.signatures["sample"](n=tf.constant(2), seed=tf.constant(0, tf.int64), label=tf.constant([0, 10]))
        with pytest.raises(tf.errors.InvalidArgumentError, match="one label per sample"):
            saved.signatures["sample"](n=tf.constant(3), seed=tf.constant(0, tf.int64), label=tf.constant([0, 1]))


@pytest.mark.parametrize("which", ["uncond", "cond"])
def test_load_gives_one_sampler_for_every_format(which, request):
    model, result = request.getfixturevalue(which)
    n, seed = 7, 21
    labels = None if model.num_classes is None else [3, 1, 4, 1, 5, 9, 2]
    expected = model.generate(n, labels=labels, seed=seed)
    z = np.asarray(model.sample_latent(n, seed))
    cases = [
        (result.path, {}, 0.0),  # the SavedModel draws z in its graph: exact
        (result.path, {"session": True}, 0.0),
        (result.path, {"format": "tflite"}, 1e-4),
        (os.path.join(result.path, "tflite", "model_fp16.tflite"), {}, 1e-2),
        (result.path, {"format": "onnx"}, 1e-4),
        (os.path.join(result.path, "onnx", "generate.onnx"), {}, 1e-4),
        (os.path.dirname(result.path), {}, 0.0),  # the model folder: its latest version
    ]
    for path, kwargs, atol in cases:
        with kx.load(path, **kwargs) as sampler:
            assert sampler.latent_shape == (model.latent_dim,) and sampler.num_classes == model.num_classes
            np.testing.assert_allclose(sampler.sample(n, seed=seed, labels=labels), expected, atol=atol, rtol=0)
            np.testing.assert_allclose(sampler.generate(z, labels=labels), expected, atol=max(atol, 1e-6), rtol=0)
            pixels = sampler.sample(n, seed=seed, labels=labels, uint8=True)
            assert pixels.dtype == np.uint8 and pixels.shape == expected.shape
            assert np.abs(pixels.astype(int) - _uint8(expected).astype(int)).max() <= (1 if atol <= 1e-4 else 2)
    with kx.load(result.path, format="tflite", precision="int8") as sampler:
        assert _psnr(sampler.sample(64, seed=1, labels=None if labels is None else 2),
                     model.generate(64, labels=None if labels is None else 2, seed=1)) >= 30.0
        assert sampler.sample(3, seed=1, uint8=True).dtype == np.uint8  # converted here: no uint8 signature
    with kx.load(result.path, format="onnx") as sampler:
        if model.num_classes is None:
            with pytest.raises(ValueError, match="unconditional"):
                sampler.sample(2, seed=0, labels=[0, 1])
        else:
            with pytest.raises(ValueError, match=r"Labels must be in \[0, 10\)"):
                sampler.sample(2, seed=0, labels=[0, 10])
        with pytest.raises(ValueError, match="Latent part 'z' must have shape"):
            sampler.generate(np.zeros((2, model.latent_dim + 1)))


def test_session_style_loading_and_saved_model_cli(uncond, tmp_path):
    """TF1-session loading (feeds and fetches by tensor name) and the ``saved_model_cli run`` tool itself."""
    model, result = uncond
    from keras_gen.export.savedmodel import SessionRunner

    runner = SessionRunner(result.path)
    z, _ = _inputs(model, 7, seed=5)
    np.testing.assert_allclose(runner("generate", {"z": z})["images"], _keras(model, z), atol=1e-4)
    np.testing.assert_array_equal(runner("sample", {"n": 7, "seed": 4})["images"], model.generate(7, seed=4))
    runner.close()
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    out = tmp_path / "cli"
    subprocess.run(
        [cli, "run", "--dir", result.path, "--tag_set", "serve", "--signature_def", "sample",
         "--input_exprs", "n=3;seed=7", "--outdir", str(out)],
        check=True, capture_output=True, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    np.testing.assert_array_equal(np.load(out / "images.npy"), model.generate(3, seed=7))
    np.testing.assert_array_equal(np.load(out / "z.npy"), np.asarray(model.sample_latent(3, 7)))


# ---------------------------------------------------------------------------------------------- manifest
def test_manifest_describes_what_was_written(cond):
    model, result = cond
    with open(os.path.join(result.path, "manifest.json")) as f:
        manifest = json.load(f)
    assert manifest == json.loads(json.dumps(result.manifest))
    assert manifest["name"] == "cgan" and manifest["version"] == 1
    assert manifest["versions"] == {"keras_gen": importlib.metadata.version("keras-gen"), "tensorflow": tf.__version__,
                                    "keras": keras.__version__}
    assert manifest["model"] == {
        "kind": "latent", "operations": ["latent_space", "sample"], "family": "gan", "class": "GAN",
        "networks": ["generator"],
        "latent": {"parts": [{"name": "z", "shape": [8], "distribution": "normal", "loc": 0.0, "scale": 1.0}],
                   "conditions": [{"name": "label", "kind": "label", "num_classes": 10}]},
        "latent_shape": [8], "latent_dim": 8, "num_classes": 10, "sample_shape": [8, 8, 1], "value_range": [-1.0, 1.0],
        "output": "images"}
    kinds = [(a["format"], a["precision"]) for a in manifest["artifacts"]]
    assert kinds == [("savedmodel", "fp32"), ("tflite", "fp32"), ("tflite", "fp16"), ("tflite", "int8"),
                     ("onnx", "fp32")]
    for artifact in manifest["artifacts"]:
        for file, size in artifact["files"].items():
            assert os.path.getsize(os.path.join(result.path, file)) == size
        assert artifact["size_bytes"] == sum(artifact["files"].values())
        parity = artifact["parity"]
        assert parity["passed"] and parity["batch_sizes"] == list(BATCHES)
        assert set(parity["endpoints"]) == set(artifact["signatures"])
        for by_batch in parity["endpoints"].values():
            assert sorted(by_batch, key=int) == [str(b) for b in BATCHES]
    saved = manifest["artifacts"][0]
    assert saved["signatures"]["generate"]["inputs"] == {
        "label": {"dtype": "int32", "shape": [None]}, "z": {"dtype": "float32", "shape": [None, 8]}}
    assert saved["signatures"]["generate_uint8"]["outputs"] == {"images": {"dtype": "uint8", "shape": [None, 8, 8, 1]}}
    assert saved["aliases"] == {"serving_default": "generate"}
    assert saved["session_parity"]["passed"]
    int8 = manifest["artifacts"][3]
    assert int8["parity"]["tolerance"] == {"min_psnr_db": 30.0}
    assert all(m["images"]["psnr_db"] >= 30 for m in int8["parity"]["endpoints"]["generate"].values())
    # Weights are stored once (a Keras SavedModel can store them twice): the variables file is about the size of
    # the generator's float32 weights, not double.
    weights = sum(int(np.prod(w.shape)) * 4 for w in model.generator.weights)
    assert saved["files"]["variables/variables.data-00000-of-00001"] < 1.5 * weights


def test_points_model_has_no_uint8_endpoints(tmp_path):
    keras.utils.set_random_seed(4)
    model = _build("ring2d")
    result = kx.export_model(model, tmp_path, "ring", allow_untrained=True, batch_sizes=(1, 7))
    assert result.manifest["model"]["output"] == "samples"
    saved = tf.saved_model.load(result.path)
    assert "generate_uint8" not in saved.signatures
    np.testing.assert_array_equal(saved.signatures["sample"](n=tf.constant(5), seed=tf.constant(2, tf.int64))[
        "samples"].numpy(), model.generate(5, seed=2))
    for kwargs in ({"format": "tflite"}, {"format": "onnx"}):
        with kx.load(result.path, **kwargs) as sampler:
            np.testing.assert_allclose(sampler.sample(5, seed=2), model.generate(5, seed=2), atol=1e-5)
            with pytest.raises(ValueError, match="uint8 output is for images"):
                sampler.sample(2, seed=0, uint8=True)


# ---------------------------------------------------------------------------------------------- VAE
@pytest.fixture(scope="module")
def cvae(tmp_path_factory):
    keras.utils.set_random_seed(5)
    model = presets.build_model(tiny_config("cvae"))
    return model, _export(model, tmp_path_factory, "cvae", quantize="int8")


def test_vae_encode_decode_reconstruct_in_every_format(cvae):
    model, result = cvae
    saved = tf.saved_model.load(result.path)
    assert {"encode", "decode", "reconstruct", "reconstruct_uint8", "generate", "sample"} <= set(saved.signatures)
    x = model.generate(7, seed=3)  # images in [-1, 1] of the right shape
    labels = np.arange(7) % model.num_classes
    mean, log_var = model.encode(x, labels)
    recon = model.reconstruct(x, labels)
    for kwargs, atol in (({}, 0.0), ({"session": True}, 0.0), ({"format": "tflite"}, 1e-4), ({"format": "onnx"}, 1e-4)):
        with kx.load(result.path, **kwargs) as sampler:
            got_mean, got_log_var = sampler.encode(x, labels)
            np.testing.assert_allclose(got_mean, mean, atol=max(atol, 1e-5))
            np.testing.assert_allclose(got_log_var, log_var, atol=max(atol, 1e-5))
            np.testing.assert_allclose(sampler.reconstruct(x, labels), recon, atol=max(atol, 1e-5))
            pixels = sampler.reconstruct(x, labels, uint8=True)
            assert pixels.dtype == np.uint8 and np.abs(pixels.astype(int) - _uint8(recon).astype(int)).max() <= 1
            np.testing.assert_allclose(sampler.decode(np.asarray(mean), labels), model.decode(mean, labels),
                                       atol=max(atol, 1e-5))
            np.testing.assert_allclose(sampler.sample(7, seed=3), x, atol=atol, rtol=0)
            with pytest.raises(ValueError, match="conditional"):
                sampler.encode(x)
    with kx.load(result.path, format="tflite", precision="int8") as sampler:
        assert sampler.endpoints == ["generate"]
        assert _psnr(sampler.sample(64, seed=0), model.generate(64, seed=0)) >= 30.0
    assert result.manifest["model"]["family"] == "vae"
    assert result.manifest["model"]["operations"] == ["encode", "latent_space", "reconstruct", "sample"]
    assert result.manifest["model"]["networks"] == ["decoder", "encoder"]


@pytest.fixture(scope="module")
def vqvae(tmp_path_factory):
    keras.utils.set_random_seed(7)
    model = presets.build_model(tiny_config("vqvae"))
    return model, _export(model, tmp_path_factory, "vqvae", quantize="int8", batch_sizes=(1, 7))


def test_vqvae_decoder_codes_and_prior_sampling(vqvae):
    """The VQ-VAE decoder (codes -> images) in every format; the prior's sampling loop in SavedModel and TFLite."""
    model, result = vqvae
    assert result.manifest["model"]["family"] == "vqvae" and result.manifest["model"]["kind"] == "latent"
    assert result.manifest["model"]["latent"]["parts"] == [
        {"name": "z", "shape": [*model.code_shape[:2], model.num_codes], "distribution": "uniform", "low": 0.0,
         "high": 1.0}]
    h, w = model.code_shape[:2]
    x = model.generate(7, seed=2)
    codes_in = {b: np.random.default_rng(b).integers(0, model.num_codes, (b, h, w)).astype("int32") for b in BATCHES}
    for kwargs in ({}, {"session": True}, {"format": "tflite"}, {"format": "onnx"}):
        with kx.load(result.path, **kwargs) as sampler:
            for batch, codes in codes_in.items():
                np.testing.assert_allclose(sampler.decode_codes(codes), model.decode_codes(codes), atol=1e-4)
                pixels = sampler.decode_codes(codes, uint8=True)
                assert np.abs(pixels.astype(int) - _uint8(model.decode_codes(codes)).astype(int)).max() <= 1
            np.testing.assert_array_equal(sampler.encode(x), model.encode(x))
            np.testing.assert_allclose(sampler.reconstruct(x), model.reconstruct(x), atol=1e-4)
            if kwargs.get("format") == "onnx":  # tf2onnx cannot convert the PixelCNN sampling loop
                with pytest.raises(ValueError, match="sampling loop"):
                    sampler.sample(2, seed=0)
            else:
                atol = 0.0 if kwargs.get("format") is None else 1e-4
                np.testing.assert_allclose(sampler.sample(7, seed=2), x, atol=atol, rtol=0)
    with kx.load(result.path, format="tflite", precision="int8") as sampler:
        assert sampler.endpoints == ["decode_codes"]
        codes = codes_in[64]
        assert _psnr(sampler.decode_codes(codes), model.decode_codes(codes)) >= 30.0


def test_sampling_loops_are_refused_where_they_cannot_go(tmp_path):
    """A PixelCNN's sampling loop has no ONNX conversion and picks by argmax (no int8/fp16): refused up front."""
    model = presets.build_model(tiny_config("pixelcnn"))
    base = tmp_path / "base"
    with pytest.raises(kx.UnsupportedModelError, match="ONNX cannot express any endpoint of this PixelCNN"):
        kx.export_model(model, base, "pixelcnn", allow_untrained=True)
    with pytest.raises(kx.UnsupportedModelError, match="TFLite int8"):
        kx.export_model(model, base, "pixelcnn", formats="tflite", quantize="int8", allow_untrained=True)
    assert not base.exists()


# ---------------------------------------------------------------------------------------------- bad input
def _noise_generator():
    """A generator whose layer draws stateless noise in the graph: fine for a SavedModel, inexpressible in
    TFLite (no such op) and ONNX (tf2onnx leaves the TF op in the graph)."""

    class Noise(keras.layers.Layer):
        def call(self, x):
            return x + 0.01 * tf.random.stateless_normal(tf.shape(x), seed=[1, 2])

    z = keras.Input((4,), name="z")
    x = keras.layers.Reshape((8, 8, 1))(keras.layers.Dense(64)(z))
    return keras.Model(z, keras.layers.Activation("tanh")(Noise()(x)))


def _listing(root):
    return sorted(os.path.relpath(os.path.join(d, n), root) for d, dirs, files in os.walk(root) for n in dirs + files)


def test_bad_input_is_refused_and_leaves_nothing(uncond, tmp_path):
    model, _ = uncond
    base = tmp_path / "base"
    cases = [
        (dict(formats="savedmodel,pytorch"), ValueError, "Unknown export format"),
        (dict(formats=""), ValueError, "Unknown export format"),
        (dict(quantize="int4"), ValueError, "Unknown quantization"),
        (dict(formats="onnx", quantize="int8"), ValueError, "applies to TFLite"),
        (dict(version=0), ValueError, "positive integer"),
        (dict(opset=19), ValueError, "opset"),
        (dict(batch_sizes=(0,)), ValueError, "batch_sizes"),
    ]
    for kwargs, error, message in cases:
        with pytest.raises(error, match=message):
            kx.export_model(model, base, "m", allow_untrained=True, **kwargs)
    with pytest.raises(ValueError, match="not valid"):
        kx.export_model(model, base, "../escape", allow_untrained=True)
    # A model that never trained is refused unless asked for.
    with pytest.raises(ValueError, match="never been trained"):
        kx.export_model(model, base, "m")
    # An unbuilt network.
    with pytest.raises(ValueError, match="not built"):
        kx.export_model(keras.Sequential([keras.layers.Dense(4)]), base, "m")
    with pytest.raises(TypeError, match="Expected a keras_gen model"):
        kx.export_model("generator.keras", base, "m")
    # A missing run folder.
    with pytest.raises(FileNotFoundError, match="does not exist"):
        kx.export_run(tmp_path / "no-such-run")
    assert not base.exists()
    # Layers a format cannot express: a clear error naming the ops, and no folder left (not even the new BASE).
    noisy = _noise_generator()
    with pytest.raises(kx.UnsupportedModelError, match="StatelessRandom"):
        kx.export_model(noisy, base, "noisy", formats="savedmodel,tflite", batch_sizes=(2,))
    assert not base.exists()
    with pytest.raises(kx.UnsupportedModelError, match="ONNX cannot express .*StatelessRandomNormalV2"):
        kx.export_model(noisy, base, "noisy", formats="onnx", batch_sizes=(2,))
    assert not base.exists()


def test_existing_version_is_never_overwritten(uncond, monkeypatch):
    model, result = uncond
    base = os.path.dirname(os.path.dirname(result.path))
    before = _listing(base)
    stamp = os.path.getmtime(os.path.join(result.path, "manifest.json"))
    with pytest.raises(FileExistsError, match="never overwritten"):
        kx.export_model(model, base, "dcgan", version=1, formats="savedmodel", allow_untrained=True)
    assert kx.next_version(base, "dcgan") == 2
    # A failing export next to an existing version removes its staging folder and leaves version 1 alone.
    monkeypatch.setitem(parity_lib.TOLERANCES, "fp32", {"max_error": -1.0, "max_level_error": -1})
    with pytest.raises(kx.ParityError, match="does not reproduce the Keras outputs"):
        kx.export_model(model, base, "dcgan", formats="savedmodel", allow_untrained=True, batch_sizes=(2,))
    assert _listing(base) == before
    assert os.path.getmtime(os.path.join(result.path, "manifest.json")) == stamp


# ---------------------------------------------------------------------------------------------- CLI
def test_cli_export_of_a_trained_run(tmp_path, capsys):
    from keras_gen.runs import train_run

    run = tmp_path / "run"
    train_run(tiny_config("dcgan", epochs=1), run, verbose=0)
    base = tmp_path / "exports"
    command = [os.path.join(os.path.dirname(sys.executable), "keras-gen"), "export", str(run),
               "--formats", "savedmodel,tflite,onnx", "--quantize", "fp16", "--out", str(base), "--name", "digits"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Exported digits version 1" in done.stdout
    version = base / "digits" / "1"
    manifest = kx.read_manifest(version)
    assert manifest["source"]["preset"] == "dcgan" and manifest["source"]["dataset"] == "digits"
    assert [(a["format"], a["precision"]) for a in manifest["artifacts"]] == [
        ("savedmodel", "fp32"), ("tflite", "fp32"), ("tflite", "fp16"), ("onnx", "fp32")]
    from keras_gen.runs import load_run

    trained = load_run(run, compile=False)
    with kx.load(version, format="onnx") as sampler:
        np.testing.assert_allclose(sampler.sample(5, seed=1), trained.generate(5, seed=1), atol=1e-4)
    # The same version again is refused, cleanly, and the folder is left as it was (in process: same CLI code).
    from keras_gen.cli import main

    before = _listing(base)
    assert main(command[1:] + ["--version", "1"]) == 2
    err = capsys.readouterr().err
    assert "keras-gen export: error:" in err and "already exists" in err
    assert _listing(base) == before


def test_cli_export_errors_in_process(tmp_path, capsys):
    from keras_gen.cli import main

    assert main(["export", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "run").mkdir()
    assert main(["export", str(tmp_path / "run"), "--formats", "caffe"]) == 2
    assert "Unknown export format" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- slow matrix
@pytest.mark.slow
@pytest.mark.parametrize("name", ["conv-vae", "vae"])
def test_vae_presets_full_matrix(name, tmp_path):
    keras.utils.set_random_seed(6)
    model = presets.build_model(tiny_config(name))
    result = kx.export_model(model, tmp_path, "vae", quantize="fp16,int8", allow_untrained=True)
    x = model.generate(64, seed=0)
    for kwargs, atol in (({"format": "tflite"}, 1e-4), ({"format": "tflite", "precision": "fp16"}, 1e-2),
                         ({"format": "onnx"}, 1e-4)):
        with kx.load(result.path, **kwargs) as sampler:
            for batch in BATCHES:
                np.testing.assert_allclose(sampler.reconstruct(x[:batch]), model.reconstruct(x[:batch]), atol=atol)
                np.testing.assert_allclose(sampler.sample(batch, seed=batch), model.generate(batch, seed=batch),
                                           atol=atol)


@pytest.mark.slow
def test_int8_every_batch_and_dynamic_range(cond, tmp_path):
    model, _ = cond
    result = kx.export_model(model, tmp_path, "cgan", formats="tflite", quantize="int8,dynamic_int8",
                             allow_untrained=True)
    for precision in ("int8", "dynamic_int8"):
        file = os.path.join(result.path, "tflite", f"model_{precision}.tflite")
        for i, batch in enumerate(BATCHES):
            z, labels = _inputs(model, batch, seed=20 + i)
            assert _psnr(_run_tflite(file, "generate", _feed(z, labels))["images"], _keras(model, z, labels)) >= 30


def test_onnx_runner_makes_one_session_per_endpoint_under_concurrent_first_use(uncond):
    """The server's threads can ask for a session at the same moment: all must share one."""
    import threading

    from keras_gen.export.onnx import ONNXRunner

    _, result = uncond
    runner = ONNXRunner(os.path.join(result.path, "onnx"))
    gate = threading.Barrier(8)
    sessions = []

    def first_use():
        gate.wait()
        sessions.append(runner.session("generate"))

    threads = [threading.Thread(target=first_use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(sessions) == 8 and len({id(s) for s in sessions}) == 1


def test_the_tflite_runner_keeps_litert_quiet_with_tensorflows_log_level(uncond):
    """LiteRT logs "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." when it first runs a model: hidden as
    TensorFlow's informational lines are (``TF_CPP_MIN_LOG_LEVEL`` set, as `keras-gen` sets it), shown at level 0."""
    _, result = uncond
    script = ("import sys, numpy as np\nfrom keras_gen.export.tflite import TFLiteRunner\n"
              "runner = TFLiteRunner(sys.argv[1])\n"
              "print(runner('generate', {'z': np.zeros((1, 8), np.float32)})['images'].shape)\n")
    file = os.path.join(result.path, "tflite", "model_fp32.tflite")
    outputs = {}
    for level in ("3", "0"):
        result = subprocess.run([sys.executable, "-c", script, file], capture_output=True, text=True, timeout=300,
                                env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": level})
        assert result.returncode == 0, result.stderr
        outputs[level] = result
    assert "XNNPACK" not in outputs["3"].stderr and "(1, " in outputs["3"].stdout
    assert "XNNPACK delegate" in outputs["0"].stderr
