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


def _normalized_critic(normalization, dtype="float64"):
    """Conv -> normalization -> LeakyReLU -> Dense: a small discriminator with a layer the penalties differentiate
    through twice."""
    from keras_gen.networks.layers import BatchNormalization, LayerNormalization

    images = keras.Input((6, 6, 2), dtype=dtype)
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same", dtype=dtype, name="conv")(images)  # (B, 3, 3, 4)
    if normalization == "batch":
        x = BatchNormalization(dtype=dtype, name="norm")(x)
    elif normalization == "keras_batch":
        x = keras.layers.BatchNormalization(dtype=dtype, name="norm")(x)
    else:
        x = LayerNormalization(axis=[1, 2, 3], dtype=dtype, name="norm")(x)
    x = keras.layers.LeakyReLU(0.2, dtype=dtype)(x)
    logits = keras.layers.Dense(1, dtype=dtype, name="logits")(keras.layers.Flatten(dtype=dtype)(x))
    critic = keras.Model(images, logits)
    rng = np.random.default_rng(1)
    for weight in critic.trainable_weights:  # random biases, gamma and beta too: nothing sits at a special value
        weight.assign(rng.normal(size=weight.shape) * (0.5 if "kernel" in weight.path else 0.3))
    return critic


def _penalty_gradient(critic, penalty, real, fake):
    """(d penalty / d conv kernel, d penalty / d conv bias) by the penalty's own double backward."""
    conv = critic.get_layer("conv")
    with tf.GradientTape() as tape:
        if penalty == "r1":
            value = losses.r1_penalty(critic, real)
        else:
            value = losses.gradient_penalty(critic, real, fake, seed=3)
    kernel_grad, bias_grad = tape.gradient(value, [conv.kernel, conv.bias])
    return kernel_grad.numpy(), bias_grad.numpy()


def _penalty_by_first_derivatives(critic, penalty, real, fake):
    """The penalty in float64 from a first-order input gradient only (exact with any normalization layer)."""
    x = tf.constant(real) if penalty == "r1" else losses.interpolate(real, fake, seed=3)
    with tf.GradientTape() as tape:
        tape.watch(x)
        total = tf.reduce_sum(critic(x, training=True))
    norms = tf.sqrt(tf.reduce_sum(tf.square(tape.gradient(total, x)), axis=[1, 2, 3]))  # (B,)
    return float(tf.reduce_mean(norms**2 if penalty == "r1" else (norms - 1.0) ** 2))


@pytest.mark.parametrize("penalty", ["r1", "gp"])
@pytest.mark.parametrize("normalization", ["batch", "layer"])
def test_penalty_gradients_through_normalization_match_finite_differences(normalization, penalty):
    # The penalties differentiate the critic's input gradient with respect to its weights. Keras' own
    # normalization layers compute their statistics on TensorFlow with tf.nn.moments, whose stop_gradient makes
    # that second derivative wrong for every weight before them; keras_gen's layers must make it exact.
    critic = _normalized_critic(normalization)
    rng = np.random.default_rng(2)
    real = rng.normal(size=(5, 6, 6, 2))
    fake = rng.normal(size=(5, 6, 6, 2))
    kernel_grad, bias_grad = _penalty_gradient(critic, penalty, real, fake)
    kernel = critic.get_layer("conv").kernel
    original = kernel.numpy()
    h = 1e-5
    for index in [(0, 0, 0, 0), (1, 2, 1, 3), (2, 1, 0, 2), (1, 1, 1, 1)]:
        shifted = []
        for sign in (1.0, -1.0):
            weights = original.copy()
            weights[index] += sign * h
            kernel.assign(weights)
            shifted.append(_penalty_by_first_derivatives(critic, penalty, real, fake))
        kernel.assign(original)
        numeric = (shifted[0] - shifted[1]) / (2 * h)
        np.testing.assert_allclose(kernel_grad[index], numeric, rtol=1e-4, atol=1e-6 * np.abs(kernel_grad).max())
    if normalization == "batch" and penalty == "r1":
        # Batch normalization in training mode cancels a per-channel bias before it, so the critic, its input
        # gradient and R1 do not depend on that bias at all.
        assert np.abs(bias_grad).max() < 1e-9 * np.abs(kernel_grad).max()


def test_keras_batch_normalization_still_gets_the_second_derivative_wrong():
    # Why keras_gen.networks.layers.BatchNormalization exists. When this fails, Keras (or tf.nn.moments) computes
    # the second derivative exactly and the discriminators can go back to keras.layers.BatchNormalization.
    critic = _normalized_critic("keras_batch")
    real = np.random.default_rng(2).normal(size=(5, 6, 6, 2))
    kernel_grad, bias_grad = _penalty_gradient(critic, "r1", real, None)
    assert np.abs(bias_grad).max() > 1e-3 * np.abs(kernel_grad).max()  # should be 0 (see the test above)


def test_twice_differentiable_normalization_matches_keras_forward():
    # Same outputs, moving statistics and first derivatives as the Keras layers (only the second derivative differs).
    from keras_gen.networks.layers import BatchNormalization, LayerNormalization

    x = np.random.default_rng(3).normal(size=(8, 3, 3, 4)).astype("float32") * 2 + 1
    for ours, theirs in ((BatchNormalization(momentum=0.9), keras.layers.BatchNormalization(momentum=0.9)),
                         (LayerNormalization(axis=[1, 2, 3]), keras.layers.LayerNormalization(axis=[1, 2, 3]))):
        ours.build(x.shape)
        theirs.build(x.shape)
        for a, b in zip(ours.weights, theirs.weights):
            a.assign(np.random.default_rng(4).normal(size=a.shape) * 0.3 + (1.0 if "variance" in a.path else 0.0))
            b.assign(a.numpy())
        inputs = tf.constant(x)
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(inputs)
            y_ours, y_theirs = ours(inputs, training=True), theirs(inputs, training=True)
            weights = tf.constant(np.random.default_rng(5).normal(size=x.shape).astype("float32"))
            loss_ours, loss_theirs = tf.reduce_sum(y_ours * weights), tf.reduce_sum(y_theirs * weights)
        np.testing.assert_allclose(y_ours.numpy(), y_theirs.numpy(), atol=1e-5)
        np.testing.assert_allclose(tape.gradient(loss_ours, inputs).numpy(), tape.gradient(loss_theirs, inputs).numpy(),
                                   atol=1e-5)
        for a, b in zip(ours.weights, theirs.weights):
            np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6, err_msg=a.path)
        assert type(keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(ours))) is type(ours)


def test_classifier_loss_is_the_mean_cross_entropy_of_the_true_class():
    logits = RNG.normal(size=(5, 4)).astype("float32") * 3
    labels = np.array([0, 3, 1, 1, 2], dtype="int32")
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    expected = -np.mean(log_softmax[np.arange(5), labels])
    assert float(losses.classifier_loss(logits, labels)) == pytest.approx(expected, rel=1e-6)
    # Uniform logits: log(num_classes), whatever the labels.
    assert float(losses.classifier_loss(np.zeros((3, 10), "float32"), [1, 5, 9])) == pytest.approx(np.log(10), rel=1e-6)


def test_continuous_code_loss_is_half_the_squared_error_summed_over_a_samples_codes():
    predicted = RNG.normal(size=(4, 3)).astype("float32")
    codes = RNG.uniform(-1, 1, size=(4, 3)).astype("float32")
    expected = np.mean(0.5 * np.sum((predicted - codes) ** 2, axis=1))
    assert float(losses.continuous_code_loss(predicted, codes)) == pytest.approx(expected, rel=1e-6)
    # The Gaussian NLL with unit variance, less its constant: exact at the mean, for any batch size.
    assert float(losses.continuous_code_loss(codes[:1], codes[:1])) == 0.0
