"""PixelCNN: masks checked through gradients, the exact likelihood against NumPy, known entropies, sampling."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_gen.models import PixelCNN
from keras_gen.networks import MaskedConv2D, causal_mask, pixel_cnn


def _dependency(jacobian, height, width):
    """``(H*W, H*W)`` matrix: entry [i, j] is sum |d out(pixel i) / d in(pixel j)| (raster indices)."""
    jac = np.abs(np.asarray(jacobian))  # (1, H, W, C_out, 1, H, W, C_in)
    jac = jac[0, :, :, :, 0].sum(axis=(2, 5))  # (H, W, H, W)
    return jac.reshape(height * width, height * width)


def test_causal_mask_by_hand():
    expected_a = np.array(
        [[1, 1, 1, 1, 1], [1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]], dtype="float32"
    )
    expected_b = expected_a.copy()
    expected_b[2, 2] = 1
    np.testing.assert_array_equal(causal_mask(5, "A"), expected_a)
    np.testing.assert_array_equal(causal_mask(5, "B"), expected_b)
    with pytest.raises(ValueError, match="odd"):
        causal_mask(4, "A")
    with pytest.raises(ValueError, match="mask_type"):
        causal_mask(3, "C")


@pytest.mark.parametrize("mask_type", ["A", "B"])
def test_masked_conv_output_depends_only_on_earlier_pixels(mask_type):
    height = width = 5
    layer = MaskedConv2D(3, 5, mask_type=mask_type, kernel_initializer="random_normal", bias_initializer="ones")
    x = tf.random.stateless_normal((1, height, width, 2), seed=[1, 2])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
    dep = _dependency(tape.jacobian(y, x), height, width)
    n = height * width
    later = np.triu(np.ones((n, n), bool), k=0 if mask_type == "A" else 1)  # j >= i (A) or j > i (B)
    assert np.all(dep[later] == 0), "output depends on a pixel at or after it"
    # And it does see what it may: the left neighbour, the pixel above, and (type B) itself.
    i = 2 * width + 2
    assert dep[i, i - 1] > 0 and dep[i, i - width] > 0
    assert (dep[i, i] > 0) == (mask_type == "B")


def test_pixel_cnn_network_is_causal_through_all_blocks():
    height, width, levels = 5, 4, 3
    net = pixel_cnn((height, width), num_levels=levels, width=6, num_blocks=2, first_kernel_size=3, kernel_size=3)
    for w in net.weights:  # non-trivial weights everywhere, biases included
        w.assign(tf.random.stateless_normal(w.shape, seed=[len(w.path), 7]) * 0.5)
    x = tf.one_hot(tf.random.stateless_uniform((1, height, width), [3, 4], maxval=levels, dtype=tf.int32), levels)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = net(x)
    dep = _dependency(tape.jacobian(y, x), height, width)
    n = height * width
    assert np.all(dep[np.triu(np.ones((n, n), bool))] == 0), "logits at pixel i depend on pixel j >= i"
    # The last pixel sees every earlier pixel within its receptive field (no accidental over-masking).
    assert np.all(dep[n - 1, n - 1 - width : n - 1] > 0)


def test_log_prob_equals_numpy_log_softmax():
    height, width, levels = 4, 5, 3
    net = pixel_cnn((height, width), num_levels=levels, width=6, num_blocks=1, num_classes=2)
    model = PixelCNN(net, num_classes=2, seed=0)
    rng = np.random.default_rng(0)
    x = rng.integers(0, levels, size=(6, height, width)).astype("int32")
    y = np.array([0, 1, 1, 0, 1, 0], "int32")
    logits = np.asarray(net([np.eye(levels, dtype="float32")[x], y]), dtype="float64")  # (6, H, W, L)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    expected = np.take_along_axis(log_softmax, x[..., None], axis=-1).sum(axis=(1, 2, 3))
    np.testing.assert_allclose(model.log_prob(x, y, batch_size=4), expected, rtol=1e-5, atol=1e-5)


def test_images_are_binarized_at_zero_and_mapped_back():
    model = PixelCNN(pixel_cnn((2, 3), num_levels=2, width=4, num_blocks=0))
    images = np.array([[[-1.0, -0.01, 0.0], [0.004, 0.5, 1.0]]], "float32")[..., None]  # (1, 2, 3, 1)
    levels = keras.ops.convert_to_numpy(model.to_levels(images))
    np.testing.assert_array_equal(levels, [[[0, 0, 1], [1, 1, 1]]])
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model.levels_to_images(levels))[..., 0], 2 * levels - 1)
    # log_prob of float images equals log_prob of the levels they binarize to.
    np.testing.assert_allclose(model.log_prob(images), model.log_prob(levels), rtol=1e-6)


def test_bernoulli_pixels_reach_their_entropy():
    """i.i.d. Bernoulli(p) pixels: the best model has NLL = H(p) nats per pixel; sampling matches p."""
    p, side = 0.3, 6
    rng = np.random.default_rng(1)
    train = (rng.random((2048, side, side)) < p).astype("int32")
    test = (rng.random((1024, side, side)) < p).astype("int32")
    keras.utils.set_random_seed(0)
    model = PixelCNN(pixel_cnn((side, side), num_levels=2, width=8, num_blocks=1, first_kernel_size=3), seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.fit(train, batch_size=128, epochs=8, verbose=0)
    nll_per_pixel = -model.log_prob(test).mean() / side**2
    entropy = -(p * np.log(p) + (1 - p) * np.log(1 - p))  # 0.6109 nats
    true_nll = -(test * np.log(p) + (1 - test) * np.log(1 - p)).mean()  # the true model on the same pixels
    assert abs(nll_per_pixel - entropy) < 0.02, (nll_per_pixel, entropy)
    assert abs(nll_per_pixel - true_nll) < 0.01, (nll_per_pixel, true_nll)
    samples = model.generate(64, seed=0)  # (64, 6, 6, 1) in {-1, 1}
    assert set(np.unique(samples)) <= {-1.0, 1.0}
    assert abs((samples > 0).mean() - p) < 0.05  # 2304 pixels: std 0.0095


def test_sampling_loop_reproduces_deterministic_images_per_class():
    """Class 0 is always a checkerboard, class 1 its inverse: the compiled loop must write every pixel at its
    own place, so the samples are exactly those images."""
    side = 6
    board = (np.indices((side, side)).sum(axis=0) % 2).astype("int32")
    x = np.stack([board, 1 - board] * 32)
    y = np.array([0, 1] * 32, "int32")
    keras.utils.set_random_seed(0)
    model = PixelCNN(pixel_cnn((side, side), num_levels=2, width=8, num_blocks=1, num_classes=2), num_classes=2)
    model.compile(optimizer=keras.optimizers.Adam(2e-2))
    model.fit(x, y, batch_size=16, epochs=20, verbose=0)
    samples = model.generate(8, labels=[0, 1, 0, 1, 1, 0, 1, 0], seed=3)
    for sample, label in zip(samples, [0, 1, 0, 1, 1, 0, 1, 0]):
        np.testing.assert_array_equal(sample[..., 0], 2 * (board if label == 0 else 1 - board) - 1)


@pytest.mark.parametrize("num_classes", [None, 2])
def test_compiled_sampler_equals_a_python_loop_over_the_whole_image(num_classes):
    """The compiled loop runs the network on bands of rows; a plain loop over full images must agree."""
    height, width, levels = 7, 4, 3
    net = pixel_cnn((height, width), num_levels=levels, width=6, num_blocks=1, first_kernel_size=3,
                    num_classes=num_classes)
    for w in net.weights:
        w.assign(tf.random.stateless_normal(w.shape, seed=[len(w.path), 1]))
    model = PixelCNN(net, num_classes=num_classes)
    assert model.receptive_rows() == 2  # 3x3 type A + one 3x3 type B: a band of 3 of the 7 rows
    noise = keras.ops.convert_to_numpy(model.sample_latent(16, seed=4))  # (16, H, W, L)
    labels = None if num_classes is None else np.arange(16, dtype="int32") % 2
    expected = np.zeros((16, height, width), "int32")
    gumbel = -np.log(-np.log(noise))
    for i in range(height * width):
        row, col = divmod(i, width)
        one_hot = np.eye(levels, dtype="float32")[expected]
        logits = np.asarray(net(one_hot if labels is None else [one_hot, labels]))
        expected[:, row, col] = np.argmax(logits[:, row, col] + gumbel[:, row, col], axis=-1)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model.sample_levels(noise, labels)), expected)


def test_generate_is_deterministic_for_a_seed():
    model = PixelCNN(pixel_cnn((4, 4), num_levels=3, width=4, num_blocks=1), seed=5)
    np.testing.assert_array_equal(model.generate(3, seed=2), model.generate(3, seed=2))
    first, second = model.generate(8), model.generate(8)  # the seed generator advances
    assert not np.array_equal(first, second)
    assert model.generate(2, seed=0).dtype == np.float32
    assert set(np.unique(model.generate(16, seed=1))) <= {-1.0, 0.0, 1.0}  # 3 levels -> -1, 0, 1


def test_invalid_arguments_are_named():
    with pytest.raises(ValueError, match="odd"):
        pixel_cnn((4, 4), num_levels=2, kernel_size=4)
    with pytest.raises(ValueError, match="num_levels"):
        pixel_cnn((4, 4), num_levels=1)
    with pytest.raises(ValueError, match="strides"):
        MaskedConv2D(4, 3, strides=2)
    net = pixel_cnn((4, 4), num_levels=2, width=4, num_blocks=1, num_classes=3)
    with pytest.raises(ValueError, match="num_classes"):
        PixelCNN(net)  # a conditional network needs num_classes
    model = PixelCNN(net, num_classes=3)
    with pytest.raises(ValueError, match="conditional"):
        model.log_prob(np.zeros((2, 4, 4), "int32"))
    with pytest.raises(ValueError, match="Expected maps"):
        model.log_prob(np.zeros((2, 5, 5), "int32"), labels=[0, 1])
