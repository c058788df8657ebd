"""Networks and layers: shapes, the recipes' structure, and each custom layer against a NumPy reference."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_gen import networks as nets
from keras_gen.networks.layers import ConditionalBatchNormalization, Pack, ProjectionHead, SpectralConv2D, SpectralDense


@pytest.mark.parametrize("side,start,steps", [(8, 4, 1), (28, 7, 2), (32, 4, 3), (64, 4, 4)])
def test_resolution_plan(side, start, steps):
    assert nets.resolution_plan(side) == (start, steps)
    assert start * 2**steps == side


@pytest.mark.parametrize("side", [9, 6, 4])
def test_resolution_plan_rejects_sizes_that_cannot_halve(side):
    with pytest.raises(ValueError, match=f"Image side {side} is not supported"):
        nets.resolution_plan(side)


@pytest.mark.parametrize("shape", [(28, 28, 1), (32, 32, 3), (8, 8, 1)])
def test_dcgan_shapes_and_ranges(shape):
    g = nets.dcgan_generator(latent_dim=16, image_shape=shape, width=8)
    d = nets.dcgan_discriminator(image_shape=shape, width=8)
    images = g(np.random.default_rng(0).normal(size=(3, 16)).astype("float32") * 10)
    assert tuple(images.shape) == (3,) + shape
    assert float(tf.reduce_max(tf.abs(images))) <= 1.0  # tanh output
    assert tuple(d(images).shape) == (3, 1)
    # The recipe: fractional-strided convolutions in G, strided ones in D, no pooling anywhere.
    kinds = {type(layer).__name__ for layer in g.layers + d.layers}
    assert "Conv2DTranspose" in kinds and "Conv2D" in kinds
    assert not any("Pooling" in k for k in kinds)
    # No batch norm on D's first layer: the first conv feeds a LeakyReLU directly.
    first_conv = next(layer for layer in d.layers if isinstance(layer, keras.layers.Conv2D))
    assert isinstance(first_conv._outbound_nodes[0].operation, keras.layers.LeakyReLU)


def test_output_layers_stay_float32_under_mixed_precision():
    keras.config.set_dtype_policy("mixed_float16")
    g = nets.dcgan_generator(latent_dim=8, image_shape=(8, 8, 1), width=4)
    d = nets.dcgan_discriminator(image_shape=(8, 8, 1), width=4)
    assert g.get_layer("project").compute_dtype == "float16"
    assert g(np.zeros((2, 8), "float32")).dtype == "float32"
    assert d(np.zeros((2, 8, 8, 1), "float32")).dtype == "float32"


def test_conditional_networks_take_labels():
    for conditioning in ("concat", "cbn"):
        g = nets.dcgan_generator(latent_dim=8, image_shape=(8, 8, 1), width=4, num_classes=3, conditioning=conditioning)
        assert [t.name for t in g.inputs] == ["z", "label"]
        out = g([np.zeros((2, 8), "float32"), np.array([0, 2], "int32")])
        assert tuple(out.shape) == (2, 8, 8, 1)
    for conditioning in ("projection", "concat"):
        d = nets.dcgan_discriminator(image_shape=(8, 8, 1), width=4, num_classes=3, conditioning=conditioning)
        assert tuple(d([np.zeros((2, 8, 8, 1), "float32"), np.array([1, 2], "int32")]).shape) == (2, 1)


def test_bad_network_arguments():
    with pytest.raises(ValueError, match="Unknown generator conditioning 'film'"):
        nets.dcgan_generator(num_classes=3, conditioning="film")
    with pytest.raises(ValueError, match="image_shape"):
        nets.dcgan_generator(image_shape=(28, 32, 1))
    with pytest.raises(ValueError, match="Unknown normalization 'group'"):
        nets.dcgan_discriminator(normalization="group")
    with pytest.raises(ValueError, match="Packing"):
        nets.dcgan_discriminator(num_classes=3, packing=2)
    with pytest.raises(ValueError, match="hidden"):
        nets.mlp_generator(hidden=[])


def test_conditional_batch_norm_uses_the_label_scale_and_offset():
    layer = ConditionalBatchNormalization(3, epsilon=1e-5)
    x = np.random.default_rng(1).normal(size=(6, 2, 2, 4)).astype("float32")
    labels = np.array([0, 1, 2, 0, 1, 2], "int32")
    layer([x, labels])
    gamma = np.random.default_rng(2).normal(size=(3, 4)).astype("float32")
    beta = np.random.default_rng(3).normal(size=(3, 4)).astype("float32")
    layer.gamma.assign(gamma)
    layer.beta.assign(beta)
    out = layer([x, labels], training=True).numpy()
    mean, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
    expected = (x - mean) / np.sqrt(var + 1e-5) * gamma[labels][:, None, None, :] + beta[labels][:, None, None, :]
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


def test_projection_head_is_the_inner_product_with_the_class_embedding():
    head = ProjectionHead(4)
    features = np.random.default_rng(4).normal(size=(5, 6)).astype("float32")
    labels = np.array([3, 0, 1, 3, 2], "int32")
    out = head([features, labels]).numpy()
    embeddings = head.embeddings.numpy()
    np.testing.assert_allclose(out[:, 0], np.sum(features * embeddings[labels], axis=1), rtol=1e-5)


@pytest.mark.parametrize("shape", [(8, 3), (8, 2, 2, 3)])
def test_pack_concatenates_consecutive_samples_on_the_last_axis(shape):
    x = np.arange(np.prod(shape), dtype="float32").reshape(shape)
    packed = Pack(4)(x).numpy()
    expected = np.stack([np.concatenate(list(x[i : i + 4]), axis=-1) for i in range(0, shape[0], 4)])
    np.testing.assert_array_equal(packed, expected)
    assert Pack(4).compute_output_shape((None,) + shape[1:]) == (None,) + shape[1:-1] + (shape[-1] * 4,)


def test_packed_mlp_discriminator_returns_one_logit_per_group():
    d = nets.mlp_discriminator(input_dim=2, hidden=[8], packing=4)
    assert tuple(d(np.zeros((12, 2), "float32")).shape) == (3, 1)


def _numpy_sigma(kernel):
    return np.linalg.svd(kernel.reshape(-1, kernel.shape[-1]), compute_uv=False)[0]


@pytest.mark.parametrize("layer_fn,input_shape", [
    (lambda: SpectralDense(5, power_iterations=1), (3, 7)),
    (lambda: SpectralConv2D(4, 3, padding="same", power_iterations=1), (2, 5, 5, 3)),
])
def test_spectral_norm_divides_by_the_largest_singular_value(layer_fn, input_shape):
    layer = layer_fn()
    x = np.random.default_rng(5).normal(size=input_shape).astype("float32")
    layer(x)
    for _ in range(50):  # power iteration converges on the persistent u
        layer(x, training=True)
    kernel = layer.kernel.numpy()
    normalized = layer.normalized_kernel(training=False).numpy()
    np.testing.assert_allclose(normalized, kernel / _numpy_sigma(kernel), rtol=1e-3)
    assert _numpy_sigma(normalized) == pytest.approx(1.0, rel=1e-3)
    # Reparameterization: the trainable kernel itself is never overwritten by a forward pass.
    np.testing.assert_array_equal(layer.kernel.numpy(), kernel)


def test_spectral_norm_gradient_flows_through_sigma():
    layer = SpectralDense(1)
    x = np.ones((1, 3), "float32")
    layer(x)
    with tf.GradientTape() as tape:
        y = tf.reduce_sum(layer(x, training=False))
    grad = tape.gradient(y, layer.kernel).numpy()
    # y = sum(w) / ||w|| for a single output unit (sigma = ||w||): d/dw = 1/||w|| - sum(w) w / ||w||^3.
    w = layer.kernel.numpy()[:, 0]
    norm = np.linalg.norm(w)
    expected = 1 / norm - w.sum() * w / norm**3
    # u is exact for a single unit after one iteration, so sigma = ||w||.
    np.testing.assert_allclose(grad[:, 0], expected, rtol=1e-4, atol=1e-6)
