"""The adversarial losses and penalties against values computed by hand in NumPy."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_gen import losses


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


REAL = np.array([[2.0], [-1.0], [0.5], [3.0]], dtype="float32")
FAKE = np.array([[-2.5], [0.3], [1.0], [-0.1]], dtype="float32")
# Patch-shaped logits (B, H, W, 1) as a PatchGAN discriminator returns.
RNG = np.random.default_rng(0)
REAL_PATCH = RNG.normal(size=(3, 4, 4, 1)).astype("float32") * 2
FAKE_PATCH = RNG.normal(size=(3, 4, 4, 1)).astype("float32") * 2


def numpy_reference(name, real, fake):
    """(generator loss, discriminator loss) written from the formulas, on probabilities where they apply."""
    d_real, d_fake = _sigmoid(real), _sigmoid(fake)
    if name == "minimax":
        return np.mean(np.log(1 - d_fake)), -np.mean(np.log(d_real)) - np.mean(np.log(1 - d_fake))
    if name == "non_saturating":
        return -np.mean(np.log(d_fake)), -np.mean(np.log(d_real)) - np.mean(np.log(1 - d_fake))
    if name == "least_squares":
        return 0.5 * np.mean((fake - 1) ** 2), 0.5 * np.mean((real - 1) ** 2) + 0.5 * np.mean(fake**2)
    if name == "hinge":
        return -np.mean(fake), np.mean(np.maximum(0, 1 - real)) + np.mean(np.maximum(0, 1 + fake))
    if name == "wasserstein":
        return -np.mean(fake), np.mean(fake) - np.mean(real)
    raise KeyError(name)


@pytest.mark.parametrize("name", sorted(losses.LOSSES))
@pytest.mark.parametrize("shape", ["vector", "patch"])
def test_loss_pairs_match_numpy(name, shape):
    real, fake = (REAL, FAKE) if shape == "vector" else (REAL_PATCH, FAKE_PATCH)
    g_fn, d_fn = losses.get_loss_pair(name)
    expected_g, expected_d = numpy_reference(name, real.astype("float64"), fake.astype("float64"))
    np.testing.assert_allclose(float(g_fn(fake)), expected_g, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(float(d_fn(real, fake)), expected_d, rtol=1e-5, atol=1e-6)


def test_softplus_forms_are_stable_for_confident_logits():
    # log(1 - sigmoid(40)) underflows in float32 if computed naively; the softplus form is exact: -40.
    g, d = losses.get_loss_pair("minimax")
    np.testing.assert_allclose(float(g(np.array([[40.0]], "float32"))), -40.0, rtol=1e-6)
    assert np.isfinite(float(d(np.array([[-50.0]], "float32"), np.array([[50.0]], "float32"))))


def test_hand_computed_values():
    # One real logit 0 and one fake logit 0: D = 1/2 everywhere.
    zero = np.zeros((1, 1), "float32")
    assert float(losses.non_saturating_generator_loss(zero)) == pytest.approx(np.log(2.0))
    assert float(losses.minimax_discriminator_loss(zero, zero)) == pytest.approx(2 * np.log(2.0))
    assert float(losses.hinge_discriminator_loss(zero, zero)) == pytest.approx(2.0)
    assert float(losses.least_squares_discriminator_loss(zero, zero)) == pytest.approx(0.5)


def test_loss_names_and_pairs():
    assert losses.get_loss_pair("least-squares") is losses.LOSSES["least_squares"]
    pair = (losses.hinge_generator_loss, losses.hinge_discriminator_loss)
    assert losses.get_loss_pair(pair) == pair
    with pytest.raises(ValueError, match="Unknown GAN loss 'wgan'.*hinge"):
        losses.get_loss_pair("wgan")
    with pytest.raises(TypeError, match="pair of callables"):
        losses.get_loss_pair(42)


def _linear_critic(w, b=0.3):
    """D(x) = <w, x> + b on flattened inputs; its input gradient is w everywhere."""
    w = tf.constant(w.reshape(-1), tf.float32)

    def critic(x, training=None):
        flat = tf.reshape(tf.cast(x, tf.float32), (tf.shape(x)[0], -1))
        return tf.reduce_sum(flat * w, axis=1, keepdims=True) + b

    return critic


@pytest.mark.parametrize("scale", [0.2, 1.0, 3.0])
def test_gradient_penalty_of_a_linear_critic_is_exact(scale):
    w = RNG.normal(size=(4, 4, 2)).astype("float32")
    w *= scale / np.linalg.norm(w)
    real = RNG.normal(size=(5, 4, 4, 2)).astype("float32")
    fake = RNG.normal(size=(5, 4, 4, 2)).astype("float32")
    gp = float(losses.gradient_penalty(_linear_critic(w), real, fake, seed=3))
    np.testing.assert_allclose(gp, (np.linalg.norm(w) - 1.0) ** 2, rtol=1e-4, atol=1e-6)


def test_gradient_penalty_is_finite_at_zero_gradient():
    # A constant critic has g = 0: sqrt(0 + eps) keeps the penalty (and its gradient) finite.
    critic_var = tf.Variable(np.zeros((2 * 2,), "float32"))

    def critic(x, training=None):
        return tf.reduce_sum(tf.reshape(x, (tf.shape(x)[0], -1)) * critic_var, axis=1, keepdims=True)

    x = np.ones((2, 2, 2, 1), "float32")
    with tf.GradientTape() as tape:
        gp = losses.gradient_penalty(critic, x, -x, seed=0)
    grad = tape.gradient(gp, critic_var)
    assert float(gp) == pytest.approx(1.0, abs=1e-5)
    assert np.all(np.isfinite(grad.numpy()))


def test_interpolation_alpha_is_uniform_per_sample():
    real = np.ones((2000, 3, 3, 1), "float32")
    fake = np.zeros_like(real)
    x_hat = losses.interpolate(real, fake, seed=5).numpy()
    alpha = x_hat[:, 0, 0, 0]
    # One alpha per sample, broadcast over every pixel.
    np.testing.assert_allclose(x_hat, np.broadcast_to(alpha[:, None, None, None], x_hat.shape))
    assert 0.0 < alpha.min() and alpha.max() < 1.0
    # Uniform[0, 1]: mean 1/2, variance 1/12 (loose, 2000 draws).
    assert abs(alpha.mean() - 0.5) < 0.03 and abs(alpha.var() - 1 / 12) < 0.01
    # The same seed gives the same points; another seed other points.
    np.testing.assert_array_equal(losses.interpolate(real, fake, seed=5).numpy(), x_hat)
    assert not np.array_equal(losses.interpolate(real, fake, seed=6).numpy(), x_hat)


def test_r1_penalty_of_a_linear_critic():
    w = RNG.normal(size=(3, 3, 1)).astype("float32")
    real = RNG.normal(size=(4, 3, 3, 1)).astype("float32")
    r1 = float(losses.r1_penalty(_linear_critic(w), real))
    np.testing.assert_allclose(r1, np.sum(w**2), rtol=1e-5)


def test_penalties_with_labels_use_the_conditional_critic():
    # D([x, y]) = <w_y, x>: the gradient for sample i is w_{y_i}.
    w = RNG.normal(size=(3, 4)).astype("float32")
    table = tf.constant(w)

    def critic(inputs, training=None):
        x, y = inputs
        return tf.reduce_sum(x * tf.gather(table, y), axis=1, keepdims=True)

    x = RNG.normal(size=(3, 4)).astype("float32")
    y = np.array([0, 2, 2], "int32")
    expected = np.mean(np.sum(w[y] ** 2, axis=1))
    np.testing.assert_allclose(float(losses.r1_penalty(critic, x, labels=y)), expected, rtol=1e-5)
    expected_gp = np.mean((np.linalg.norm(w[y], axis=1) - 1) ** 2)
    np.testing.assert_allclose(float(losses.gradient_penalty(critic, x, -x, labels=y, seed=1)), expected_gp, rtol=1e-4)


def test_losses_are_registered_for_serialization():
    fn = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(losses.hinge_generator_loss))
    assert fn is losses.hinge_generator_loss
