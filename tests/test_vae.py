"""VAE: its loss terms against closed forms and NumPy/SciPy, the reparameterization gradient, conditioning,
shapes and errors, a short training run, the reconstruction grid. The shared harness (save/load, phases, XLA,
mixed precision, resume) runs on the VAE presets in tests/test_models.py."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from scipy import stats

from keras_gen import callbacks, data, losses, presets
from keras_gen.models import VAE
from keras_gen.networks import conv_decoder, conv_encoder, mlp_decoder, mlp_encoder
from keras_gen.runs import dtype_policy


def tiny_vae(num_classes=None, kind="mlp", latent_dim=4, image_shape=(8, 8, 1), **kwargs):
    if kind == "mlp":
        encoder = mlp_encoder(image_shape, latent_dim=latent_dim, hidden=[16], num_classes=num_classes)
        decoder = mlp_decoder(latent_dim, image_shape, hidden=[16], num_classes=num_classes)
    else:
        encoder = conv_encoder(image_shape, latent_dim=latent_dim, widths=[4, 8], hidden=16, num_classes=num_classes)
        decoder = conv_decoder(latent_dim, image_shape, widths=[4, 8], hidden=16, num_classes=num_classes)
    vae = VAE(encoder, decoder, num_classes=num_classes, seed=0, **kwargs)
    vae.compile(optimizer=keras.optimizers.Adam(1e-2))
    return vae


def digits(n=64):
    x, y = data.load_arrays("digits", "train")
    return x[:n], y[:n]


# ------------------------------------------------------------------------------------------- the loss terms
def test_gaussian_kl_matches_monte_carlo():
    rng = np.random.default_rng(0)
    mean = rng.normal(size=(3, 4)).astype("float32")
    log_var = rng.normal(scale=0.5, size=(3, 4)).astype("float32")
    closed = keras.ops.convert_to_numpy(losses.gaussian_kl(mean, log_var))
    assert closed.shape == (3,)
    # KL = E_q[log q(z) - log p(z)], estimated with 400,000 draws per row.
    std = np.exp(0.5 * log_var)
    z = mean + std * rng.normal(size=(400_000, 3, 4))
    log_q = stats.norm.logpdf(z, loc=mean, scale=std).sum(-1)
    log_p = stats.norm.logpdf(z).sum(-1)
    np.testing.assert_allclose(closed, (log_q - log_p).mean(0), atol=0.02)


def test_gaussian_kl_is_zero_at_the_prior_and_sums_over_dims():
    zeros = np.zeros((2, 5), "float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(losses.gaussian_kl(zeros, zeros)), [0.0, 0.0])
    # One dimension with mu = 1, sigma = 1: KL = 1/2 * mu^2 = 0.5, per dimension.
    ones = np.ones((1, 3, 2), "float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(losses.gaussian_kl(ones, 0 * ones)), [3.0], rtol=1e-6)


def test_bernoulli_log_likelihood_matches_scipy():
    rng = np.random.default_rng(1)
    logits = rng.normal(scale=3, size=(4, 3, 3, 1)).astype("float32")
    x = (rng.random(logits.shape) < 0.5).astype("float32")
    p = 1 / (1 + np.exp(-logits.astype("float64")))
    expected = stats.bernoulli.logpmf(x, p).reshape(4, -1).sum(1)
    actual = keras.ops.convert_to_numpy(losses.bernoulli_log_likelihood(x, logits))
    np.testing.assert_allclose(actual, expected, rtol=1e-5)
    # Saturated logits stay exact and finite: log sigmoid(-60) = -60 (to 1e-26).
    saturated = np.array([[60.0, -60.0, 60.0, -60.0]], "float32")
    on = np.array([[0.0, 1.0, 1.0, 0.0]], "float32")
    actual = keras.ops.convert_to_numpy(losses.bernoulli_log_likelihood(on, saturated))
    np.testing.assert_allclose(actual, [-120.0], rtol=1e-6)
    # Grey-level targets: the cross-entropy x log p + (1 - x) log(1 - p).
    t = rng.random(logits.shape).astype("float32")
    logits = np.clip(logits, -10, 10)
    p = 1 / (1 + np.exp(-logits.astype("float64")))
    expected = (t * np.log(p) + (1 - t) * np.log1p(-p)).reshape(4, -1).sum(1)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(losses.bernoulli_log_likelihood(t, logits)), expected,
                               rtol=1e-5)


def test_gaussian_log_likelihood_matches_scipy():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3, 2, 2, 1)).astype("float32")
    mean = rng.normal(size=x.shape).astype("float32")
    log_var = rng.normal(scale=0.3, size=x.shape).astype("float32")
    expected = stats.norm.logpdf(x, mean, np.exp(0.5 * log_var)).reshape(3, -1).sum(1)
    actual = keras.ops.convert_to_numpy(losses.gaussian_log_likelihood(x, mean, log_var))
    np.testing.assert_allclose(actual, expected, rtol=1e-5)
    expected = stats.norm.logpdf(x, mean, 0.3).reshape(3, -1).sum(1)
    actual = keras.ops.convert_to_numpy(losses.gaussian_log_likelihood(x, mean, sigma=0.3))
    np.testing.assert_allclose(actual, expected, rtol=1e-5)
    with pytest.raises(ValueError, match="exactly one"):
        losses.gaussian_log_likelihood(x, mean)
    with pytest.raises(ValueError, match="exactly one"):
        losses.gaussian_log_likelihood(x, mean, log_var, sigma=1.0)
    with pytest.raises(ValueError, match="sigma"):
        losses.gaussian_log_likelihood(x, mean, sigma=0.0)


# ------------------------------------------------------------------------------------------- the model
def _set_constant_posterior(vae, mean_bias, log_var_bias):
    """Makes q(z|x) = N(mean_bias, exp(log_var_bias)) for every x (zero kernels)."""
    for layer_name, bias in (("z_mean", mean_bias), ("z_log_var", log_var_bias)):
        layer = vae.encoder.get_layer(layer_name)
        kernel, _ = layer.get_weights()
        layer.set_weights([np.zeros_like(kernel), np.asarray(bias, "float32")])


def test_loss_terms_match_closed_forms():
    """kl = the NumPy KL of the posterior; reconstruction = -log p(x|z) when the decoder ignores z;
    loss = reconstruction + beta * kl."""
    vae = tiny_vae(beta=2.5)
    mean, log_var = np.array([0.5, -1.0, 0.0, 2.0]), np.array([0.0, -1.0, 0.5, 0.2])
    _set_constant_posterior(vae, mean, log_var)
    out = vae.decoder.get_layer("to_pixels")
    kernel, bias = out.get_weights()
    bias = np.random.default_rng(0).normal(size=bias.shape).astype("float32")
    out.set_weights([np.zeros_like(kernel), bias])  # logits = bias, whatever z
    x, _ = digits(8)
    logs = vae.test_on_batch(x, return_dict=True)
    kl = 0.5 * np.sum(np.exp(log_var) + mean**2 - 1 - log_var)
    p = 1 / (1 + np.exp(-bias.astype("float64")))
    t = ((x + 1) / 2).reshape(8, -1)
    reconstruction = -np.mean(np.sum(t * np.log(p) + (1 - t) * np.log1p(-p), axis=1))
    np.testing.assert_allclose(logs["kl"], kl, rtol=1e-5)
    np.testing.assert_allclose(logs["reconstruction"], reconstruction, rtol=1e-5)
    np.testing.assert_allclose(logs["loss"], reconstruction + 2.5 * kl, rtol=1e-5)


def test_reparameterization_passes_reconstruction_gradients_to_the_encoder():
    vae = tiny_vae(beta=0.0)  # loss = reconstruction only: the encoder is reached only through z
    x, _ = digits(8)
    with tf.GradientTape() as tape:
        loss = vae.compute_loss(x=tf.constant(x))
    grads = tape.gradient(loss, vae.encoder.trainable_variables)
    by_name = {v.path: g for v, g in zip(vae.encoder.trainable_variables, grads)}
    for name in ("z_mean/kernel", "z_log_var/kernel", "dense0/kernel"):
        grad = next(g for path, g in by_name.items() if path.endswith(name))
        assert grad is not None and np.abs(keras.ops.convert_to_numpy(grad)).sum() > 0, name


def test_training_reduces_the_loss():
    x, _ = digits(256)
    vae = tiny_vae()
    before = vae.evaluate(x, batch_size=256, verbose=0, return_dict=True)["loss"]
    vae.fit(x, batch_size=32, epochs=8, verbose=0)
    after = vae.evaluate(x, batch_size=256, verbose=0, return_dict=True)["loss"]
    # Untrained: about 64 ln 2 = 44 nats; a few hundred steps take it well below.
    assert after < before - 8, (before, after)


def test_encode_decode_reconstruct_shapes_and_ranges():
    vae = tiny_vae(kind="conv")
    x, _ = digits(5)
    mean, log_var = vae.encode(x, batch_size=2)
    assert mean.shape == log_var.shape == (5, 4) and mean.dtype == np.float32
    one_mean, _ = vae.encode(x[0])  # a single image is a batch of one
    np.testing.assert_allclose(one_mean, mean[:1], atol=1e-6)
    recon = vae.reconstruct(x, batch_size=3)
    assert recon.shape == (5, 8, 8, 1) and recon.min() >= -1 and recon.max() <= 1
    np.testing.assert_allclose(recon, vae.decode(mean), atol=1e-6)  # reconstruction decodes the posterior mean
    np.testing.assert_allclose(keras.ops.convert_to_numpy(vae(x)), recon, atol=1e-6)
    assert vae.generate(3, seed=1).shape == (3, 8, 8, 1)
    np.testing.assert_array_equal(vae.generate(3, seed=1), vae.generate(3, seed=1))


def test_bernoulli_decodes_to_twice_the_sigmoid_minus_one_and_gaussian_clips():
    vae = tiny_vae()
    out = vae.decoder.get_layer("to_pixels")
    kernel, bias = out.get_weights()
    bias = np.linspace(-3, 3, bias.size).astype("float32")
    out.set_weights([np.zeros_like(kernel), bias])
    images = vae.decode(np.zeros((2, 4), "float32"))
    np.testing.assert_allclose(images[0].reshape(-1), 2 / (1 + np.exp(-bias)) - 1, atol=1e-6)

    gaussian = tiny_vae(likelihood="gaussian", sigma=0.2)
    gaussian.decoder.get_layer("to_pixels").set_weights([np.zeros_like(kernel), bias])
    np.testing.assert_allclose(gaussian.decode(np.zeros((1, 4), "float32"))[0].reshape(-1), np.clip(bias, -1, 1))


def test_gaussian_reconstruction_term_is_the_gaussian_nll():
    vae = tiny_vae(likelihood="gaussian", sigma=0.5)
    _set_constant_posterior(vae, np.zeros(4), np.full(4, -30.0))  # z = 0 almost surely
    out = vae.decoder.get_layer("to_pixels")
    kernel, bias = out.get_weights()
    out.set_weights([np.zeros_like(kernel), np.full_like(bias, 0.25)])
    x, _ = digits(4)
    logs = vae.test_on_batch(x, return_dict=True)
    expected = -stats.norm.logpdf(x, 0.25, 0.5).reshape(4, -1).sum(1).mean()
    np.testing.assert_allclose(logs["reconstruction"], expected, rtol=1e-5)


def test_a_concatenated_encoder_output_is_split_into_mean_and_log_var():
    images = keras.Input((8, 8, 1))
    both = keras.layers.Dense(6, dtype="float32")(keras.layers.Flatten()(images))  # (B, 2 * 3)
    encoder = keras.Model(images, both)
    vae = VAE(encoder, mlp_decoder(3, (8, 8, 1), hidden=[8]))
    x, _ = digits(2)
    mean, log_var = vae.encode(x)
    full = keras.ops.convert_to_numpy(encoder(x))
    np.testing.assert_allclose(mean, full[:, :3], atol=1e-6)
    np.testing.assert_allclose(log_var, full[:, 3:], atol=1e-6)


def test_conditional_vae_needs_valid_labels():
    vae = tiny_vae(num_classes=10)
    x, y = digits(8)
    logs = vae.train_on_batch(x, y, return_dict=True)
    assert np.isfinite(logs["loss"])
    with pytest.raises(ValueError, match="conditional.*labels"):
        vae.train_on_batch(x)
    with pytest.raises(ValueError, match="conditional.*labels"):
        vae.encode(x)
    with pytest.raises(ValueError, match=r"Labels must be in \[0, 10\)"):
        vae.reconstruct(x, np.full(8, 10))
    with pytest.raises(ValueError, match="Got 3 labels for 8"):
        vae.reconstruct(x, [1, 2, 3])
    with pytest.raises(TypeError, match="integers"):
        vae.encode(x, np.full(8, 1.5))
    assert vae.reconstruct(x, y).shape == (8, 8, 8, 1)
    assert vae.reconstruct(x, 3).shape == (8, 8, 8, 1)  # one class for all
    with pytest.raises(ValueError, match="unconditional"):
        tiny_vae().encode(x, y)


def test_conditional_decoder_uses_the_label():
    vae = tiny_vae(num_classes=10)
    x, y = digits(64)
    vae.fit(x, y, batch_size=32, epochs=5, verbose=0)
    z = np.zeros((2, 4), "float32")
    assert np.abs(vae.decode(z, [0, 1])[0] - vae.decode(z, [0, 1])[1]).max() > 1e-3


def test_bad_shapes_and_arguments_get_clear_errors():
    encoder, decoder = mlp_encoder((8, 8, 1), latent_dim=4, hidden=[8]), mlp_decoder(4, (8, 8, 1), hidden=[8])
    with pytest.raises(ValueError, match="decoder takes z of shape"):
        VAE(encoder, mlp_decoder(5, (8, 8, 1), hidden=[8]))
    with pytest.raises(ValueError, match="shaped like the encoder's input"):
        VAE(encoder, mlp_decoder(4, (7, 7, 1), hidden=[8]))
    with pytest.raises(ValueError, match="needs 2"):
        VAE(encoder, decoder, num_classes=3)
    with pytest.raises(ValueError, match="likelihood"):
        VAE(encoder, decoder, likelihood="poisson")
    with pytest.raises(ValueError, match="beta"):
        VAE(encoder, decoder, beta=-1.0)
    with pytest.raises(ValueError, match="sigma"):
        VAE(encoder, decoder, likelihood="gaussian", sigma=0)
    with pytest.raises(TypeError, match="keras.Model"):
        VAE(encoder, lambda z: z)
    images = keras.Input((8, 8, 1))
    with pytest.raises(ValueError, match=r"\[z_mean, z_log_var\]"):
        VAE(keras.Model(images, keras.layers.Dense(5)(keras.layers.Flatten()(images))), decoder)

    vae = tiny_vae()
    with pytest.raises(ValueError, match=r"shape \(n, 8, 8, 1\)"):
        vae.encode(np.zeros((2, 7, 7, 1), "float32"))
    with pytest.raises(ValueError, match="takes images of shape"):
        vae.train_on_batch(np.zeros((2, 7, 7, 1), "float32"))
    with pytest.raises(ValueError, match="z` must have shape"):
        vae.decode(np.zeros((2, 3), "float32"))
    with pytest.raises(ValueError, match="batch_size"):
        vae.reconstruct(np.zeros((2, 8, 8, 1), "float32"), batch_size=0)
    with pytest.raises(TypeError, match="no `loss`"):
        vae.compile(optimizer="adam", loss="mse")


def test_networks_fit_28_and_8_pixels_and_reject_odd_sizes():
    for side in (28, 8):
        encoder = conv_encoder((side, side, 1), latent_dim=3, widths=[4, 8], hidden=8)
        decoder = conv_decoder(3, (side, side, 1), widths=[4, 8], hidden=None)
        assert [tuple(o.shape) for o in encoder.outputs] == [(None, 3), (None, 3)]
        assert tuple(decoder.outputs[0].shape) == (None, side, side, 1)
    with pytest.raises(ValueError, match="multiples of 4"):
        conv_encoder((10, 10, 1), widths=[4, 8])
    with pytest.raises(ValueError, match="hidden"):
        mlp_encoder((8, 8, 1), hidden=[0])
    with pytest.raises(ValueError, match="image_shape"):
        mlp_decoder(2, (8, 8))


def test_outputs_stay_float32_under_mixed_precision():
    with dtype_policy("mixed_float16"):
        vae = tiny_vae(kind="conv", num_classes=10)
    assert isinstance(vae.optimizer, keras.optimizers.LossScaleOptimizer)
    assert [o.dtype for o in vae.encoder.outputs] == ["float32", "float32"]
    assert vae.decoder.outputs[0].dtype == "float32"
    x, y = digits(8)
    assert np.isfinite(vae.train_on_batch(x, y, return_dict=True)["loss"])
    assert vae.reconstruct(x, y).dtype == np.float32


# ------------------------------------------------------------------------------------------- runs
def test_reconstruction_grid_puts_originals_above_reconstructions(tmp_path):
    vae = tiny_vae()
    x, _ = digits(6)
    grid = callbacks.ReconstructionGrid(tmp_path / "recon", x, nrow=4)
    grid.set_model(vae)
    grid.on_epoch_end(0, {"loss": 1.0})
    path = tmp_path / "recon" / "epoch_001.png"
    assert path.exists() and (tmp_path / "recon" / "latest.png").exists()
    image = np.asarray(Image.open(path))
    # 2 rows of originals (6 padded to 8) + 2 rows of reconstructions, 4 columns; 10-pixel cells upscaled.
    scale = image.shape[1] // (4 * 10 + 2)
    assert image.shape[:2] == (scale * (4 * 10 + 2), scale * (4 * 10 + 2))
    with pytest.raises(ValueError, match="non-empty batch"):
        callbacks.ReconstructionGrid(tmp_path, x[0])


def test_train_run_writes_samples_and_reconstructions(tmp_path):
    from tests.test_models import tiny_config

    config = tiny_config("cvae", epochs=1)
    from keras_gen.runs import load_run, train_run

    result = train_run(config, tmp_path / "run", verbose=0)
    for folder in ("samples", "reconstructions"):
        assert os.path.exists(os.path.join(result.run_dir, folder, "latest.png")), folder
    model = load_run(result.run_dir)
    assert isinstance(model, VAE) and model.num_classes == 10


def test_presets_validate_their_fields():
    with pytest.raises(ValueError, match="exactly one optimizer"):
        presets.get_config("vae", optimizers={"d_optimizer": {}, "g_optimizer": {}})
    with pytest.raises(ValueError, match="latent_dim"):
        presets.get_config("vae", networks={"encoder": {}, "decoder": {"latent_dim": 3}})
    with pytest.raises(ValueError, match="Unknown VAE model argument"):
        presets.get_config("vae", model={"num_classes": 3})
    with pytest.raises(ValueError, match="Unknown VAE network"):
        presets.get_config("vae", network="dcgan")
    assert presets.get_config("beta-vae").model["beta"] == 4.0
    assert presets.get_config("cvae").conditional


def test_conditional_label_embedding_starts_as_a_one_hot_code():
    """The label must start as strong as the features it is concatenated to (the default uniform(+-0.05) init
    made the CVAE ignore it): a one-hot code by default, unit-variance rows for another size."""
    from keras_gen.networks import mlp_encoder

    encoder = mlp_encoder(image_shape=(8, 8, 1), latent_dim=2, num_classes=10)
    table = encoder.get_layer("label_embedding").embeddings.numpy()
    np.testing.assert_array_equal(table, np.eye(10, dtype="float32"))
    wide = mlp_encoder(image_shape=(8, 8, 1), latent_dim=2, num_classes=10, embedding_dim=64)
    assert 0.8 < wide.get_layer("label_embedding").embeddings.numpy().std() < 1.2
