"""`LatentSpec`: the draws against `keras_gen.rng` and closed forms, the network input, the checks; and one model
whose prior is not a standard normal sampled the same way by Keras, the SavedModel, TFLite, ONNX and the server."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_gen import rng
from keras_gen.latent_spec import Condition, LatentPart, LatentSpec
from keras_gen.models import GAN
from keras_gen.networks import dcgan_discriminator, dcgan_generator


def _toy_spec():
    return LatentSpec([
        LatentPart("z", (3,), "uniform", low=-2.0, high=1.0),
        LatentPart("digit", (), "categorical", num_classes=4),
        LatentPart("style", (2,), "normal", loc=0.5, scale=3.0),
    ])


def _numpy(parts):
    return {k: np.asarray(v) for k, v in parts.items()}


# ------------------------------------------------------------------------------------------------- draws
def test_one_normal_part_is_the_draw_models_have_always_made():
    spec = LatentSpec.normal((5,))
    np.testing.assert_array_equal(np.asarray(spec.sample(4, 9)["z"]), np.asarray(rng.normal((4, 5), [9, 0])))
    np.testing.assert_array_equal(np.asarray(spec.sample_network_input(4, 9)), np.asarray(rng.normal((4, 5), [9, 0])))


def test_part_i_draws_with_seed_pair_seed_i():
    parts = _numpy(_toy_spec().sample(6, 11))
    u0 = np.asarray(rng.uniform((6, 3), [11, 0]))
    np.testing.assert_allclose(parts["z"], -2.0 + 3.0 * u0, rtol=0, atol=1e-6)
    u1 = np.asarray(rng.uniform((6,), [11, 1]))
    np.testing.assert_array_equal(parts["digit"], np.minimum(np.floor(u1 * 4), 3).astype("int32"))
    np.testing.assert_allclose(parts["style"], 0.5 + 3.0 * np.asarray(rng.normal((6, 2), [11, 2])), rtol=0, atol=1e-6)
    # A [2] seed tensor s draws part i with s + [0, i]: the in-graph `sample` signature's draw.
    pair = _numpy(_toy_spec().sample(6, tf.constant([11, 0], tf.int64)))
    for name in parts:
        np.testing.assert_array_equal(pair[name], parts[name])


def test_distributions_match_their_closed_forms():
    n = 200_000
    parts = _numpy(_toy_spec().sample(n, 0))
    z, digit, style = parts["z"], parts["digit"], parts["style"]
    assert z.dtype == np.float32 and z.min() > -2.0 and z.max() < 1.0
    # mean (low + high) / 2, variance (high - low)^2 / 12; 5 standard errors
    np.testing.assert_allclose(z.mean(axis=0), -0.5, atol=5 * 3.0 / np.sqrt(12 * n))
    np.testing.assert_allclose(z.var(axis=0), 0.75, rtol=0.02)
    assert digit.dtype == np.int32 and set(np.unique(digit)) == {0, 1, 2, 3}
    counts = np.bincount(digit, minlength=4)
    chi2 = float(((counts - n / 4) ** 2 / (n / 4)).sum())
    assert chi2 < 16.3, counts  # chi-square with 3 degrees of freedom: p = 0.001
    np.testing.assert_allclose(style.mean(axis=0), 0.5, atol=5 * 3.0 / np.sqrt(n))
    np.testing.assert_allclose(style.std(axis=0), 3.0, rtol=0.01)


def test_a_seed_generator_advances_once_per_part_and_xla_draws_the_same():
    spec = _toy_spec()
    generator = keras.random.SeedGenerator(3)
    before = np.asarray(generator.state)
    first = _numpy(spec.sample(4, generator))
    after_one = np.asarray(generator.state)
    second = _numpy(spec.sample(4, generator))
    assert not np.array_equal(first["z"], second["z"])
    replay = keras.random.SeedGenerator(3)
    np.testing.assert_array_equal(np.asarray(replay.state), before)
    np.testing.assert_array_equal(_numpy(spec.sample(4, replay))["style"], first["style"])
    np.testing.assert_array_equal(np.asarray(replay.state), after_one)
    compiled = tf.function(lambda: spec.sample(4, tf.constant([5, 0], tf.int64)), jit_compile=True)()
    eager = spec.sample(4, 5)
    for name in spec.names:
        np.testing.assert_array_equal(np.asarray(compiled[name]), np.asarray(eager[name]))


def test_network_input_concatenates_parts_one_hot():
    spec = _toy_spec()
    parts = _numpy(spec.sample(5, 1))
    expected = np.concatenate([parts["z"], np.eye(4, dtype="float32")[parts["digit"]], parts["style"]], axis=1)
    assert spec.network_shape == (9,)
    np.testing.assert_array_equal(np.asarray(spec.network_input(parts)), expected)
    assert LatentSpec.uniform((7, 7, 3)).network_shape == (7, 7, 3)  # a single part stays as it is


def test_round_trip_through_json_and_the_tensor_specs():
    spec = _toy_spec().with_conditions([Condition("label", "label", num_classes=10)])
    data = json.loads(json.dumps(spec.to_dict()))
    assert LatentSpec.from_dict(data) == spec
    specs = spec.tensor_specs()
    assert [(s.name, s.dtype.name, tuple(s.shape)) for s in specs] == [
        ("z", "float32", (None, 3)), ("digit", "int32", (None,)), ("style", "float32", (None, 2)),
        ("label", "int32", (None,))]
    assert spec.num_classes == 10


@pytest.mark.parametrize("make, message", [
    (lambda: LatentPart("Z", (3,)), "lower-case identifier"),
    (lambda: LatentPart("seed", (3,)), "reserved"),
    (lambda: LatentPart("z", (0,)), "positive integers"),
    (lambda: LatentPart("z", (3,), "cauchy"), "unknown distribution 'cauchy'"),
    (lambda: LatentPart("z", (3,), "uniform", low=1.0, high=1.0), "low < high"),
    (lambda: LatentPart("z", (3,), "normal", scale=0.0), "`scale` must be > 0"),
    (lambda: LatentPart("c", (), "categorical"), "`num_classes` must be an integer >= 2"),
    (lambda: LatentPart("z", (3,), "normal", low=0.0), "normal takes loc, scale, not low"),
    (lambda: LatentSpec([LatentPart("z", (3,)), LatentPart("z", (2,))]), "repeated: \\['z'\\]"),
    (lambda: LatentSpec([LatentPart("z", (4, 4)), LatentPart("c", (), "categorical", num_classes=2)]),
     "each part must be a vector"),
])
def test_bad_specs_are_refused_by_name(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("values, message", [
    ({"z": np.zeros((2, 3)), "digit": [0, 1]}, "missing \\['style'\\]"),
    ({"z": np.zeros((2, 3)), "digit": [0, 1], "style": np.zeros((2, 2)), "w": 1}, "unknown \\['w'\\]"),
    ({"z": np.zeros((2, 4)), "digit": [0, 1], "style": np.zeros((2, 2))}, "'z' must have shape \\(n, 3\\)"),
    ({"z": np.zeros((2, 3)), "digit": [0, 4], "style": np.zeros((2, 2))}, "'digit' must hold classes in \\[0, 4\\)"),
    ({"z": np.full((2, 3), np.nan), "digit": [0, 1], "style": np.zeros((2, 2))}, "'z' must hold finite numbers"),
    ({"z": np.zeros((2, 3)), "digit": [0, 1], "style": np.zeros((3, 2))}, "same number of samples"),
])
def test_given_parts_are_checked_by_name(values, message):
    with pytest.raises(ValueError, match=message):
        _toy_spec().check(values)


# ------------------------------------------------------------------------------------------------- the toy model
def _toy_gan():
    keras.utils.set_random_seed(4)
    generator = dcgan_generator(latent_dim=9, width=4, image_shape=(8, 8, 1))
    gan = GAN(generator, dcgan_discriminator(width=4, image_shape=(8, 8, 1)), latent=_toy_spec(), seed=2)
    gan.compile()
    return gan


def test_gan_with_a_spec_trains_saves_and_refuses_a_wrong_input_size(tmp_path):
    with pytest.raises(ValueError, match=r"gives the network inputs of shape \(9,\), but the generator takes \(7,\)"):
        GAN(dcgan_generator(latent_dim=7, width=4, image_shape=(8, 8, 1)),
            dcgan_discriminator(width=4, image_shape=(8, 8, 1)), latent=_toy_spec())
    gan = _toy_gan()
    assert gan.latent_spec == _toy_spec() and gan.operations == {"sample"}  # codes are no continuous latent space
    np.testing.assert_array_equal(np.asarray(gan.sample_latent(3, seed=8)),
                                  np.asarray(_toy_spec().sample_network_input(3, 8)))
    gan.fit(np.random.default_rng(0).uniform(-1, 1, (8, 8, 8, 1)).astype("float32"), batch_size=4, epochs=1, verbose=0)
    path = os.path.join(tmp_path, "toy.keras")
    gan.save(path)
    restored = keras.models.load_model(path)
    assert restored.latent_spec == gan.latent_spec
    np.testing.assert_array_equal(restored.generate(5, seed=1), gan.generate(5, seed=1))


def test_every_consumer_draws_the_same_samples_from_a_non_normal_prior(tmp_path):
    """Keras `generate`, the SavedModel's `sample`, TFLite and ONNX through `keras_gen.export.load`, and the
    server (SavedModel and ONNX backends, over gRPC) all return the same samples for a seed."""
    import keras_gen.export as kx
    from keras_gen.serving import ModelServer, SamplerClient

    gan = _toy_gan()
    result = kx.export_model(gan, tmp_path / "exports", "toy", formats="savedmodel,tflite,onnx", batch_sizes=(1, 3),
                             allow_untrained=True)
    assert LatentSpec.from_dict(result.manifest["model"]["latent"]) == gan.latent_spec
    n, seed = 6, 13
    expected = gan.generate(n, seed=seed)  # (6, 8, 8, 1)
    parts = _numpy(gan.latent_spec.sample(n, seed))
    cases = (({}, 1e-6), ({"session": True}, 1e-6), ({"format": "tflite"}, 1e-5), ({"format": "onnx"}, 1e-5))
    for kwargs, atol in cases:
        with kx.load(result.path, **kwargs) as sampler:
            assert sampler.latent_spec == gan.latent_spec and sampler.operations == {"sample"}
            np.testing.assert_allclose(sampler.sample(n, seed=seed), expected, atol=atol, rtol=0, err_msg=str(kwargs))
            np.testing.assert_allclose(sampler.generate(parts), expected, atol=max(atol, 1e-6), rtol=0)
    for backend in ("savedmodel", "onnx"):
        with ModelServer(tmp_path / "exports", grpc_port=0, rest_port=None, backend=backend) as server:
            with SamplerClient(f"127.0.0.1:{server.grpc_port}", model="toy", timeout=30) as client:
                images = client.sample(n, seed=seed, uint8=False)
                np.testing.assert_allclose(images, expected, atol=1e-5, rtol=0, err_msg=backend)
                request = {"n": np.array(n, "int32"), "seed": np.array(seed, "int64")}
                drawn = client.predict("sample", request).outputs
                for name, value in parts.items():
                    np.testing.assert_allclose(drawn[name], value, atol=1e-6, rtol=0, err_msg=f"{backend} {name}")
                refused = {"z": parts["z"], "digit": np.array([0, 1, 2, 3, 4, 0], "int32"), "style": parts["style"]}
                with pytest.raises(ValueError, match=r"input .digit. holds classes in \[0, 4\); got \[4\]"):
                    client.predict("generate", refused)
