"""Likelihood metrics: the ELBO and the importance-weighted bound against exact log-likelihoods (a linear-Gaussian
VAE, whose marginal is Gaussian, and a 1-D-latent Bernoulli VAE integrated by quadrature), the ordering
ELBO <= L_1 <= L_k <= log p(x) on a small trained VAE, binarization and bits/dim."""

import math

import keras
import numpy as np
import pytest
from scipy import special, stats

from keras_gen import data
from keras_gen.metrics import binarize_images, bits_per_dim, elbo, iw_nll
from keras_gen.models import VAE
from keras_gen.networks import mlp_decoder, mlp_encoder

SHAPE = (2, 2, 1)  # D = 4 pixels


def _linear_vae(likelihood, latent_dim, decoder_kernel, decoder_bias, encoder_kernel, encoder_bias, log_var, **kw):
    """A VAE with no hidden layers: x = z W^T + b (mean or logits), q(z|x) = N(x A + a, diag(exp(log_var)))."""
    encoder = mlp_encoder(SHAPE, latent_dim=latent_dim, hidden=[])
    decoder = mlp_decoder(latent_dim, SHAPE, hidden=[])
    encoder.get_layer("z_mean").set_weights([encoder_kernel, encoder_bias])
    encoder.get_layer("z_log_var").set_weights([np.zeros((4, latent_dim), "float32"), log_var])
    decoder.get_layer("to_pixels").set_weights([decoder_kernel, decoder_bias])
    return VAE(encoder, decoder, likelihood=likelihood, **kw)


@pytest.fixture(scope="module")
def linear_gaussian():
    """Model, data, exact log p(x), closed-form ELBO of a linear-Gaussian VAE (probabilistic PCA)."""
    rng = np.random.default_rng(0)
    sigma = 0.5
    w = rng.normal(size=(4, 2))  # x = W z + b + sigma * noise
    b = rng.normal(scale=0.3, size=4)
    # q: the exact posterior mean, but a diagonal covariance inflated 1.5 times (so the ELBO is loose).
    post_cov = np.linalg.inv(np.eye(2) + w.T @ w / sigma**2)
    gain = (post_cov @ w.T / sigma**2).T  # (4, 2): mean = (x - b) @ gain
    q_var = 1.5 * np.diag(post_cov)
    model = _linear_vae(
        "gaussian", 2, w.T.astype("float32"), b.astype("float32"), gain.astype("float32"),
        (-b @ gain).astype("float32"), np.log(q_var).astype("float32"), sigma=sigma,
    )
    x = (rng.normal(size=(6, 2)) @ w.T + b + sigma * rng.normal(size=(6, 4))).astype("float32")
    exact = stats.multivariate_normal(b, w @ w.T + sigma**2 * np.eye(4)).logpdf(x)
    m = (x - b) @ gain
    residual = x - (m @ w.T + b)
    expected_log_px = -0.5 * np.sum(np.log(2 * np.pi * sigma**2) + residual**2 / sigma**2, axis=1)
    expected_log_px -= np.trace(w @ np.diag(q_var) @ w.T) / (2 * sigma**2)
    kl = 0.5 * np.sum(q_var + m**2 - 1 - np.log(q_var), axis=1)
    return model, x.reshape(6, *SHAPE), exact, expected_log_px - kl


def test_elbo_matches_the_closed_form_of_a_linear_gaussian_vae(linear_gaussian):
    model, x, exact, closed_elbo = linear_gaussian
    result = elbo(model, x, binarize=None, samples=20_000)
    np.testing.assert_allclose(result["elbo"], closed_elbo, atol=0.05)
    assert np.all(closed_elbo < exact - 0.01)  # the bound is strictly loose with this q
    assert "Gaussian density" in result["binarization"]


def test_iw_bound_converges_to_the_exact_marginal_of_a_linear_gaussian_vae(linear_gaussian):
    model, x, exact, closed_elbo = linear_gaussian
    result = iw_nll(model, x, k=20_000, chunk=5_000, binarize=None)
    np.testing.assert_allclose(result["nll"], -exact, atol=0.02)
    assert result["k"] == 20_000 and result["num_dims"] == 4


def test_iw_bound_of_a_1d_bernoulli_vae_matches_quadrature():
    """log p(x) = log integral of prod_i Bernoulli(x_i; sigmoid(w_i z + b_i)) N(z; 0, 1) dz, on all 16 images."""
    w = np.array([2.0, -1.5, 1.0, 3.0])
    b = np.array([0.0, 0.5, -1.0, 0.3])
    model = _linear_vae(
        "bernoulli", 1, w[None].astype("float32"), b.astype("float32"),
        np.array([[0.3], [-0.2], [0.1], [0.4]], "float32"), np.zeros(1, "float32"), np.log([0.4]).astype("float32"),
    )
    patterns = np.array([[(i >> j) & 1 for j in range(4)] for i in range(16)], "float64")  # (16, 4) in {0, 1}
    z = np.linspace(-12, 12, 24_001)
    logits = z[:, None] * w + b  # (Z, 4)
    log_px_z = patterns @ special.log_expit(logits).T + (1 - patterns) @ special.log_expit(-logits).T  # (16, Z)
    exact = special.logsumexp(log_px_z + stats.norm.logpdf(z), axis=1) + np.log(z[1] - z[0])
    np.testing.assert_allclose(special.logsumexp(exact), 0.0, atol=1e-6)  # the 16 probabilities sum to 1
    images = (2 * patterns - 1).astype("float32").reshape(16, *SHAPE)
    result = iw_nll(model, images, k=20_000, chunk=5_000, batch_size=16)
    np.testing.assert_allclose(result["nll"], -exact, atol=0.02)
    assert "threshold" in result["binarization"]
    assert np.all(-elbo(model, images, samples=4_000)["elbo"] > -exact)  # the ELBO is below log p(x)


@pytest.fixture(scope="module")
def small_trained_vae():
    keras.utils.set_random_seed(0)
    x, _ = data.load_arrays("digits", "train")
    x = binarize_images(x[:512])
    model = VAE(mlp_encoder((8, 8, 1), latent_dim=4, hidden=[32]), mlp_decoder(4, (8, 8, 1), hidden=[32]), seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.fit(x, batch_size=32, epochs=4, verbose=0)
    x_test, _ = data.load_arrays("digits", "test")
    return model, x_test  # 180 held-out digits


def test_iw_bound_is_above_the_elbo_and_tightens_with_k(small_trained_vae):
    """E[L_1] = ELBO <= E[L_10] <= E[L_100] (Burda et al. 2016, theorem 1), averaged over seeds and images."""
    model, x = small_trained_vae
    seeds = range(4)
    neg_elbo = np.mean([elbo(model, x, seed=s)["nll_bound"] for s in seeds])
    nll = {k: np.mean([iw_nll(model, x, k=k, seed=s)["mean_nll"] for s in seeds]) for k in (1, 10, 100)}
    assert abs(nll[1] - neg_elbo) < 1.0, (nll[1], neg_elbo)  # two estimates of the same expectation
    assert neg_elbo > nll[10] + 0.1 and nll[1] > nll[10] + 0.1, (neg_elbo, nll)
    assert nll[10] > nll[100], nll


def test_iw_nll_does_not_depend_on_the_chunking(small_trained_vae):
    model, x = small_trained_vae
    small = iw_nll(model, x[:10], k=50, chunk=7, seed=3)["nll"]
    large = iw_nll(model, x[:10], k=50, chunk=50, seed=3)["nll"]
    np.testing.assert_allclose(small, large, rtol=1e-6)


def test_results_are_reproducible_and_state_the_binarization(small_trained_vae):
    model, x = small_trained_vae
    first = elbo(model, x[:20], binarize="stochastic", seed=5)
    model.generate(3)  # advancing the model's own seed generator changes nothing
    second = elbo(model, x[:20], binarize="stochastic", seed=5)
    np.testing.assert_array_equal(first["elbo"], second["elbo"])
    assert "stochastic" in first["binarization"] and "seed 5" in first["binarization"]
    assert np.isclose(first["bits_per_dim"], first["nll_bound"] / (64 * math.log(2)))


def test_binarize_images():
    x = np.array([-1.0, -0.2, 0.0, 0.01, 1.0], "float32")
    np.testing.assert_array_equal(binarize_images(x, "threshold"), [-1, -1, -1, 1, 1])
    np.testing.assert_array_equal(binarize_images(x, None), x)
    grey = np.full((200_000,), -0.4, "float32")  # intensity (x + 1) / 2 = 0.3
    on = binarize_images(grey, "stochastic", seed=1) > 0
    assert abs(on.mean() - 0.3) < 0.005
    once, again = binarize_images(grey, "stochastic", seed=1), binarize_images(grey, "stochastic", seed=1)
    np.testing.assert_array_equal(once, again)
    assert not np.array_equal(binarize_images(grey, "stochastic", seed=1), binarize_images(grey, "stochastic", seed=2))
    with pytest.raises(ValueError, match="Unknown binarization"):
        binarize_images(x, "otsu")


def test_bits_per_dim():
    assert bits_per_dim(784 * math.log(2), 784) == pytest.approx(1.0)
    np.testing.assert_allclose(bits_per_dim(np.array([0.0, 2 * math.log(2)]), 2), [0.0, 1.0])
    with pytest.raises(ValueError, match="num_dims"):
        bits_per_dim(1.0, 0)


def test_arguments_are_validated(small_trained_vae):
    model, x = small_trained_vae
    with pytest.raises(ValueError, match="`k`"):
        iw_nll(model, x, k=0)
    with pytest.raises(ValueError, match="Unknown binarization"):
        elbo(model, x, binarize="otsu")
    with pytest.raises(ValueError, match="seed"):
        elbo(model, x, seed=-1)
    with pytest.raises(ValueError, match="shape"):
        iw_nll(model, np.zeros((2, 28, 28, 1), "float32"), k=2)
    conditional = VAE(
        mlp_encoder((8, 8, 1), latent_dim=2, hidden=[8], num_classes=10),
        mlp_decoder(2, (8, 8, 1), hidden=[8], num_classes=10),
        num_classes=10,
    )
    with pytest.raises(ValueError, match="labels"):
        elbo(conditional, x)
    assert iw_nll(conditional, x[:4], np.arange(4), k=3)["nll"].shape == (4,)
