"""VQ-VAE: quantization against NumPy, the straight-through gradient, which terms move what, perplexity,
dead-code restarts, the prior (trained alongside and in two stages), encode/decode and the likelihood bound."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_gen import losses
from keras_gen.models import VQVAE, PixelCNN
from keras_gen.networks import VectorQuantizer, codebook_perplexity, pixel_cnn, straight_through, vq_decoder, vq_encoder

SIDE, CODE_DIM, NUM_CODES = 8, 3, 6


def _images(n=8, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, size=(n, SIDE, SIDE, 1)).astype("float32")


def _vqvae(prior=True, num_classes=None, **kwargs):
    encoder = vq_encoder((SIDE, SIDE, 1), code_dim=CODE_DIM, width=8, num_downsamples=1, num_residual=1)
    decoder = vq_decoder((SIDE // 2, SIDE // 2, CODE_DIM), channels=1, width=8, num_upsamples=1, num_residual=1)
    quantizer = VectorQuantizer(NUM_CODES, CODE_DIM)
    prior_model = None
    if prior:
        net = pixel_cnn((SIDE // 2, SIDE // 2), num_levels=NUM_CODES, width=8, num_blocks=1, first_kernel_size=3,
                        num_classes=num_classes)
        prior_model = PixelCNN(net, num_classes=num_classes, seed=1)
    return VQVAE(encoder, decoder, quantizer, prior=prior_model, seed=0, **kwargs)


def _numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


# ---------------------------------------------------------------------------------------------- quantization
def test_nearest_neighbour_matches_numpy_argmin():
    quantizer = VectorQuantizer(7, 3)
    quantizer.build((None, 4, 4, 3))
    codebook = np.random.default_rng(0).normal(size=(7, 3)).astype("float32")
    quantizer.codebook.assign(codebook)
    z = np.random.default_rng(1).normal(size=(2, 4, 4, 3)).astype("float32")
    z_q, indices = quantizer(z)
    distances = ((z[..., None, :] - codebook) ** 2).sum(axis=-1)  # (2, 4, 4, 7), by broadcasting
    np.testing.assert_array_equal(_numpy(indices), distances.argmin(axis=-1))
    np.testing.assert_allclose(_numpy(z_q), codebook[distances.argmin(axis=-1)], rtol=0, atol=0)


def test_perplexity_closed_forms():
    k = 8
    assert float(codebook_perplexity(np.tile(np.arange(k), 5), k)) == pytest.approx(k, rel=1e-6)
    assert float(codebook_perplexity(np.full((4, 3, 3), 5), k)) == pytest.approx(1.0, abs=1e-6)
    # p = (1/2, 1/4, 1/4): H = 1.5 log 2, so the perplexity is 2 ** 1.5.
    assert float(codebook_perplexity(np.array([0, 0, 1, 2]), k)) == pytest.approx(2**1.5, rel=1e-6)


# ---------------------------------------------------------------------------------------------- gradients
def test_straight_through_copies_the_decoder_gradient_to_the_encoder():
    z_e = tf.constant(np.random.default_rng(0).normal(size=(2, 3, 3, 4)), tf.float32)
    z_q = tf.constant(np.random.default_rng(1).normal(size=(2, 3, 3, 4)), tf.float32)
    a = np.random.default_rng(2).normal(size=(4,)).astype("float32")
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([z_e, z_q])
        z = straight_through(z_e, z_q)
        f = tf.reduce_sum(a * z**2)  # a "decoder loss" with gradient 2 a z
    np.testing.assert_allclose(_numpy(z), _numpy(z_q), atol=1e-6)  # forward value: z_q
    np.testing.assert_allclose(_numpy(tape.gradient(f, z_e)), 2 * a * _numpy(z_q), rtol=1e-5)  # evaluated at z_q
    assert tape.gradient(f, z_q) is None  # nothing reaches the codebook through this path


def test_reconstruction_gradient_reaches_the_encoder_but_not_the_codebook():
    model = _vqvae(prior=False)
    images = _images()
    with tf.GradientTape() as tape:
        _, _, _, outputs = model._forward(tf.constant(images), training=True)
        rec = model._reconstruction_loss(tf.constant(images), outputs)
    variables = model.encoder.trainable_variables + [model.quantizer.codebook]
    grads = tape.gradient(rec, variables)
    encoder_grads, codebook_grad = grads[:-1], grads[-1]
    assert all(g is not None and np.any(_numpy(g) != 0) for g in encoder_grads)
    assert codebook_grad is None or not np.any(_numpy(codebook_grad))


def test_codebook_term_moves_only_the_codebook_and_commitment_only_the_encoder():
    model = _vqvae(prior=False)
    x = tf.constant(_images())
    encoder_vars = model.encoder.trainable_variables
    codebook = model.quantizer.codebook
    with tf.GradientTape(persistent=True) as tape:
        z_e = model.encoder(x)
        z_q, indices = model.quantizer(z_e)
        codebook_term = losses.vq_codebook_loss(z_e, z_q)
        commitment_term = losses.vq_commitment_loss(z_e, z_q)
    z_e_np, idx, e = _numpy(z_e), _numpy(indices), _numpy(codebook)
    count = z_e_np.size
    # Both values are mean (z_e - e_k)^2; the codebook gradient is sum over positions of 2 (e_k - z_e) / count.
    expected_value = np.mean((z_e_np - e[idx]) ** 2)
    assert float(codebook_term) == pytest.approx(expected_value, rel=1e-5)
    assert float(commitment_term) == pytest.approx(expected_value, rel=1e-5)
    expected_grad = np.zeros_like(e)
    np.add.at(expected_grad, idx.reshape(-1), 2 * (e[idx] - z_e_np).reshape(-1, CODE_DIM) / count)
    np.testing.assert_allclose(_numpy(tape.gradient(codebook_term, codebook)), expected_grad, rtol=1e-4, atol=1e-7)
    assert all(g is None or not np.any(_numpy(g)) for g in tape.gradient(codebook_term, encoder_vars))
    commit_grads = tape.gradient(commitment_term, encoder_vars)
    assert all(g is not None for g in commit_grads) and any(np.any(_numpy(g)) for g in commit_grads)
    commit_codebook = tape.gradient(commitment_term, codebook)
    assert commit_codebook is None or not np.any(_numpy(commit_codebook))


# ---------------------------------------------------------------------------------------------- dead codes
def _with_dead_code_zero(model, images):
    """Codes 1..K-1 become encoder outputs of the batch (each then used by its own position); code 0 moves far
    from every encoder output, so no position chooses it."""
    z_e = _numpy(model.encoder(images)).reshape(-1, CODE_DIM)
    codebook = np.concatenate([np.full((1, CODE_DIM), 1e3, "float32"), z_e[: NUM_CODES - 1]])
    model.quantizer.codebook.assign(codebook)


@pytest.mark.parametrize("dead_code_steps", [3, None])
def test_dead_codes_are_restarted_to_encoder_outputs(dead_code_steps):
    model = _vqvae(prior=False, dead_code_steps=dead_code_steps)
    model.compile(optimizer=keras.optimizers.SGD(0.0))  # no gradient moves: only restarts change the codebook
    images = _images()
    _with_dead_code_zero(model, images)
    z_e = _numpy(model.encoder(images)).reshape(-1, CODE_DIM)
    for step in range(3):
        before = _numpy(model.quantizer.codebook).copy()
        model.train_on_batch(images)
        after = _numpy(model.quantizer.codebook)
        np.testing.assert_array_equal(after[1:], before[1:])  # live codes are left alone
        if step < 2 or dead_code_steps is None:
            np.testing.assert_array_equal(after[0], before[0])  # not dead for long enough (or disabled)
    revived = _numpy(model.quantizer.codebook)[0]
    if dead_code_steps is None:
        assert revived[0] == 1e3
        return
    # Code 0 now equals the encoder output of one position of the batch, and that position uses it.
    assert np.min(np.abs(z_e - revived).max(axis=1)) == 0
    assert np.any(model.encode(images) == 0)
    assert int(_numpy(model.quantizer.idle_steps)[0]) == 0


def test_dead_code_restarts_are_reproducible():
    codebooks = []
    for _ in range(2):
        keras.utils.set_random_seed(0)  # same initial weights; the restart draws come from the model's seed
        model = _vqvae(prior=False, dead_code_steps=1)
        model.compile(optimizer=keras.optimizers.SGD(0.0))
        _with_dead_code_zero(model, _images())
        model.train_on_batch(_images())
        codebooks.append(_numpy(model.quantizer.codebook))
    np.testing.assert_array_equal(codebooks[0], codebooks[1])


# ---------------------------------------------------------------------------------------------- the model
def test_encode_decode_reconstruct_are_consistent():
    model = _vqvae(prior=False)
    images = _images(5)
    codes = model.encode(images, batch_size=2)
    assert codes.shape == (5, SIDE // 2, SIDE // 2) and codes.dtype == np.int32
    z_e = _numpy(model.encoder(images))
    codebook = _numpy(model.quantizer.codebook)
    np.testing.assert_array_equal(codes, ((z_e[..., None, :] - codebook) ** 2).sum(-1).argmin(-1))
    decoded = model.decode_codes(codes)
    expected = np.clip(_numpy(model.decoder(codebook[codes])), -1, 1)  # Gaussian likelihood: the output, clipped
    np.testing.assert_allclose(decoded, expected, atol=1e-6)
    np.testing.assert_allclose(model.reconstruct(images), decoded, atol=1e-6)
    with pytest.raises(ValueError, match="Codes must be in"):
        model.decode_codes(np.full((1, SIDE // 2, SIDE // 2), NUM_CODES))


def test_train_step_logs_and_trains_prior_alongside():
    model = _vqvae()
    model.compile(optimizer=keras.optimizers.Adam(1e-3), prior_optimizer=keras.optimizers.Adam(1e-3))
    logs = model.train_on_batch(_images(), return_dict=True)
    assert set(logs) == {"loss", "reconstruction", "vq", "perplexity", "prior_nll"}
    assert logs["loss"] == pytest.approx(logs["reconstruction"] + logs["vq"], rel=1e-5)
    assert 1.0 <= logs["perplexity"] <= NUM_CODES
    assert int(model.vq_optimizer.iterations) == int(model.prior_optimizer.iterations) == 1


def test_generate_samples_codes_from_the_prior_and_decodes_them():
    model = _vqvae()
    images = model.generate(4, seed=3)
    assert images.shape == (4, SIDE, SIDE, 1) and images.dtype == np.float32
    assert images.min() >= -1 and images.max() <= 1
    np.testing.assert_array_equal(images, model.generate(4, seed=3))
    codes = model.sample_codes(4, seed=3)
    np.testing.assert_allclose(images, model.decode_codes(codes), atol=1e-6)
    no_prior = _vqvae(prior=False)
    with pytest.raises(RuntimeError, match="no prior"):
        no_prior.generate(2)


def test_two_stage_prior_training_and_saving(tmp_path):
    model = _vqvae(train_prior=False)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), prior_optimizer=keras.optimizers.Adam(1e-2))
    images = _images(32)
    prior_before = [_numpy(v) for v in model.prior.network.trainable_variables]
    model.fit(images, batch_size=8, epochs=1, verbose=0)
    assert all(np.array_equal(a, _numpy(b)) for a, b in zip(prior_before, model.prior.network.trainable_variables))
    assert "prior" not in [name for name, _, _ in model.training_phases()]
    autoencoder = [_numpy(v) for v in model._vq_variables()]
    history = model.fit_prior(images, epochs=4, batch_size=8, verbose=0)
    assert all(np.array_equal(a, _numpy(b)) for a, b in zip(autoencoder, model._vq_variables()))
    assert history["prior_nll"][-1] < history["prior_nll"][0]
    assert int(model.prior_optimizer.iterations) == 16
    # The .keras file holds the prior, its optimizer state and both optimizers.
    path = os.path.join(tmp_path, "vq.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    assert int(restored.prior_optimizer.iterations) == 16
    for a, b in zip(model.prior_optimizer.variables, restored.prior_optimizer.variables):
        np.testing.assert_array_equal(_numpy(a), _numpy(b))
    np.testing.assert_array_equal(restored.generate(3, seed=1), model.generate(3, seed=1))


def test_conditional_prior_uses_labels():
    model = _vqvae(num_classes=3)
    model.compile()
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1], "int32")
    logs = model.train_on_batch(_images(), labels, return_dict=True)
    assert np.isfinite(logs["prior_nll"])
    assert model.num_classes == 3
    assert model.generate(3, labels=[2, 1, 0], seed=0).shape == (3, SIDE, SIDE, 1)
    with pytest.raises(ValueError, match="conditional"):
        model.train_on_batch(_images())


def test_elbo_terms_with_a_bernoulli_decoder():
    model = _vqvae(likelihood="bernoulli")
    images = _images(5)
    log_px_given_z, log_pz = model.elbo(images, batch_size=2)
    codes = model.encode(images)
    logits = _numpy(model.decoder(_numpy(model.quantizer.codebook)[codes])).astype("float64")
    targets = (images >= 0).astype("float64")  # binarized at 0
    log_sigmoid = -np.logaddexp(0, -logits)
    log_one_minus = -np.logaddexp(0, logits)
    expected = (targets * log_sigmoid + (1 - targets) * log_one_minus).sum(axis=(1, 2, 3))
    np.testing.assert_allclose(log_px_given_z, expected, rtol=1e-5)
    np.testing.assert_allclose(log_pz, model.prior.log_prob(codes), rtol=1e-6)
    assert np.all(log_px_given_z + log_pz < 0)
    with pytest.raises(ValueError, match="bernoulli"):
        _vqvae().elbo(images)


def test_invalid_arguments_are_named():
    encoder = vq_encoder((SIDE, SIDE, 1), code_dim=CODE_DIM, width=8, num_downsamples=1)
    decoder = vq_decoder((SIDE // 2, SIDE // 2, CODE_DIM), width=8, num_upsamples=1)
    with pytest.raises(ValueError, match="codebook holds"):
        VQVAE(encoder, decoder, VectorQuantizer(4, CODE_DIM + 1))
    wrong_prior = PixelCNN(pixel_cnn((SIDE // 2, SIDE // 2), num_levels=NUM_CODES + 1, width=4, num_blocks=0))
    with pytest.raises(ValueError, match="levels"):
        VQVAE(encoder, decoder, VectorQuantizer(NUM_CODES, CODE_DIM), prior=wrong_prior)
    with pytest.raises(ValueError, match="likelihood"):
        VQVAE(encoder, decoder, VectorQuantizer(NUM_CODES, CODE_DIM), likelihood="poisson")
    with pytest.raises(ValueError, match="divisible"):
        vq_encoder((10, 10, 1), num_downsamples=2)
