"""DCGAN generator and discriminator (Radford et al. 2015, https://arxiv.org/abs/1511.06434).

The recipe: no pooling (strided convolutions in D, fractional-strided in G), batch normalization in both
(not on D's input layer nor G's output), ReLU in G with a tanh output, LeakyReLU(0.2) in D.

Both builders return functional `keras.Model`s, built on construction, with named inputs: the generator takes
``z`` (and ``label`` when conditional) and returns images in [-1, 1]; the discriminator takes ``images`` (and
``label``) and returns logits of shape ``(B, 1)`` (``(B / packing, 1)`` when packing).

Square images whose side halves at least once to an integer of at least 4 are supported (8, 16, 28, 30, 32,
64, ...): the networks go through ``side / 2**k`` with ``k`` as large as keeps that size an integer >= 4.
"""

import keras

from keras_gen import checks
from keras_gen.networks.layers import (
    BatchNormalization,
    ConditionalBatchNormalization,
    LayerNormalization,
    Pack,
    ProjectionHead,
    SpectralConv2D,
    SpectralDense,
)

__all__ = ["dcgan_generator", "dcgan_discriminator", "resolution_plan"]

GENERATOR_CONDITIONING = ("concat", "cbn")
DISCRIMINATOR_CONDITIONING = ("projection", "concat")
NORMALIZATIONS = ("batch", "layer", None)


def resolution_plan(side):
    """``(start, steps)`` with ``side == start * 2**steps``, ``start >= 4`` and ``steps`` as large as possible.

    >>> resolution_plan(28), resolution_plan(32), resolution_plan(8)
    ((7, 2), (4, 3), (4, 1))
    """
    side = int(side)
    start, steps = side, 0
    while start % 2 == 0 and start // 2 >= 4:
        start //= 2
        steps += 1
    if steps == 0:
        raise ValueError(
            f"Image side {side} is not supported: it must halve at least once to an integer of at least 4 "
            "(e.g. 8, 16, 28, 32, 64)."
        )
    return start, steps


def _check_image_shape(image_shape):
    if len(image_shape) != 3 or image_shape[0] != image_shape[1] or min(image_shape) < 1:
        raise ValueError(f"`image_shape` must be (side, side, channels), got {tuple(image_shape)!r}.")
    return tuple(int(s) for s in image_shape)




def dcgan_generator(
    latent_dim=100,
    image_shape=(28, 28, 1),
    width=64,
    num_classes=None,
    conditioning="concat",
    embedding_dim=None,
    synchronized_batch_norm=False,
    name="generator",
):
    """The DCGAN generator: ``z -> Dense -> (start, start, C) -> [ConvTranspose s2, BN, ReLU] * k -> tanh``.

    Args:
        latent_dim: size of ``z``.
        image_shape: ``(side, side, channels)`` of the output.
        width: channels of the last hidden layer; earlier layers double it at each lower resolution.
        num_classes: set for a conditional generator, which takes ``[z, label]``.
        conditioning: how the label enters: ``"concat"`` (an embedding concatenated to ``z``, Mirza & Osindero
            2014) or ``"cbn"`` (conditional batch normalization: a scale and offset per class in every BN).
        embedding_dim: size of the label embedding for ``"concat"`` (default: ``num_classes``).
        synchronized_batch_norm: batch statistics over the global batch under `tf.distribute` (set by
            `keras_gen.presets.build_model` when there are several replicas).
        name: model name.

    Returns:
        A functional `keras.Model` mapping ``z`` (or ``[z, label]``) to images ``(B, side, side, channels)`` in
        [-1, 1] (the tanh runs in float32 under mixed precision).

    Example:
        >>> g = dcgan_generator(latent_dim=64, image_shape=(28, 28, 1), width=32)
        >>> g(keras.random.normal((2, 64))).shape
        TensorShape([2, 28, 28, 1])
    """
    side, _, channels = _check_image_shape(image_shape)
    start, steps = resolution_plan(side)
    if num_classes is not None:
        checks.choice(conditioning, "generator conditioning", GENERATOR_CONDITIONING)
    z = keras.Input((latent_dim,), name="z")
    inputs = [z]
    label = None
    x = z
    if num_classes is not None:
        label = keras.Input((), dtype="int32", name="label")
        inputs.append(label)
        if conditioning == "concat":
            embedded = keras.layers.Embedding(num_classes, embedding_dim or num_classes, name="label_embedding")(
                label
            )
            x = keras.layers.Concatenate(name="z_and_label")([z, embedded])

    def normalize(h, layer_name):
        if label is not None and conditioning == "cbn":
            return ConditionalBatchNormalization(num_classes, synchronized=synchronized_batch_norm, name=layer_name)(
                [h, label]
            )
        return keras.layers.BatchNormalization(synchronized=synchronized_batch_norm, name=layer_name)(h)

    filters = width * 2 ** (steps - 1)
    x = keras.layers.Dense(start * start * filters, use_bias=False, name="project")(x)
    x = keras.layers.Reshape((start, start, filters))(x)  # (B, start, start, F)
    x = normalize(x, "project_bn")
    x = keras.layers.ReLU()(x)
    for i in range(steps - 1):
        filters //= 2
        x = keras.layers.Conv2DTranspose(filters, 4, strides=2, padding="same", use_bias=False, name=f"up{i}")(x)
        x = normalize(x, f"up{i}_bn")  # (B, start * 2**(i+1), ..., F)
        x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2DTranspose(channels, 4, strides=2, padding="same", name="to_image")(x)
    images = keras.layers.Activation("tanh", dtype="float32", name="images")(x)  # (B, side, side, C)
    return keras.Model(inputs if len(inputs) > 1 else z, images, name=name)


def dcgan_discriminator(
    image_shape=(28, 28, 1),
    width=64,
    num_classes=None,
    conditioning="projection",
    spectral_norm=False,
    normalization="batch",
    packing=1,
    dropout=0.0,
    synchronized_batch_norm=False,
    classifier_head=False,
    code_head=0,
    name="discriminator",
):
    """The DCGAN discriminator: ``[Conv s2, (norm), LeakyReLU(0.2)] * k -> Flatten -> Dense(1)`` logits.

    Args:
        image_shape: ``(side, side, channels)`` of the input images.
        width: channels of the first convolution; each following one doubles it.
        num_classes: set for a conditional discriminator, which takes ``[images, label]``.
        conditioning: ``"projection"`` (Miyato & Koyama 2018: ``psi(phi(x)) + <embed(y), phi(x)>``) or ``"concat"``
            (the label embedded as one extra image channel).
        spectral_norm: spectrally normalize every convolution and dense layer (`SpectralConv2D`, `SpectralDense`)
            (Miyato et al. 2018). Batch normalization is then usually dropped: pass ``normalization=None``.
        normalization: ``"batch"``, ``"layer"`` (use with a gradient penalty, which is per-sample) or ``None``.
            Never applied to the first layer.
        packing: PacGAN degree ``m``: the discriminator judges ``m`` samples at once and returns ``B / m`` logits.
        dropout: dropout rate after each LeakyReLU (0 to disable).
        synchronized_batch_norm: batch statistics over the global batch under `tf.distribute`.
        classifier_head: add the auxiliary classifier of AC-GAN (Odena et al. 2017,
            https://arxiv.org/abs/1610.09585): a second output, ``Dense(num_classes)`` class logits read from the
            image features ``phi(x)`` alone (never from the label), which a `keras_gen.models.GAN` with
            ``classifier_weight`` trains on real images and the generator's samples are pushed towards. Needs
            ``num_classes`` and ``"projection"`` conditioning (with ``"concat"`` the features see the label).
        code_head: InfoGAN's Q (Chen et al. 2016, https://arxiv.org/abs/1606.03657): a second output of this many
            units read from the image features, sharing every layer before them with the discriminator, which a
            `keras_gen.models.GAN` with ``info_weight`` reads as its latent codes' logits (categorical) and means
            (continuous), in the latent's order. 0 (the default) for none; not with ``classifier_head``.
        name: model name.

    Returns:
        A functional `keras.Model` returning float32 logits of shape ``(B / packing, 1)``; with
        ``classifier_head``, ``[logits (B, 1), class_logits (B, num_classes)]``; with ``code_head``,
        ``[logits (B, 1), code_outputs (B, code_head)]``.
    """
    side, _, channels = _check_image_shape(image_shape)
    _, steps = resolution_plan(side)
    checks.choice(normalization, "normalization", NORMALIZATIONS)
    if num_classes is not None:
        checks.choice(conditioning, "discriminator conditioning", DISCRIMINATOR_CONDITIONING)
        if packing != 1:
            raise ValueError("Packing (PacGAN) is not supported together with a conditional discriminator.")
    if classifier_head and (num_classes is None or conditioning != "projection"):
        raise ValueError(
            "`classifier_head=True` needs a conditional discriminator with projection conditioning (num_classes set, "
            f"conditioning='projection'); got num_classes={num_classes!r}, conditioning={conditioning!r}: with "
            "'concat' the features it classifies already hold the label."
        )
    checks.integer(code_head, "code_head", 0)
    if code_head and classifier_head:
        raise ValueError("A discriminator has one auxiliary head: `classifier_head` (AC-GAN) or `code_head` (InfoGAN).")
    if code_head and packing != 1:
        raise ValueError("`code_head` reads one sample's features: it does not go with packing (PacGAN).")
    images = keras.Input((side, side, channels), name="images")
    inputs = [images]
    label = None
    x = images
    if num_classes is not None:
        label = keras.Input((), dtype="int32", name="label")
        inputs.append(label)
        if conditioning == "concat":
            plane = keras.layers.Embedding(num_classes, side * side, name="label_plane")(label)
            plane = keras.layers.Reshape((side, side, 1))(plane)
            x = keras.layers.Concatenate(name="images_and_label")([x, plane])  # (B, side, side, C + 1)
    if packing != 1:
        x = Pack(packing, name="pack")(x)  # (B / m, side, side, m * C)

    filters = width
    for i in range(steps):
        conv = SpectralConv2D if spectral_norm else keras.layers.Conv2D
        x = conv(filters, 4, strides=2, padding="same", name=f"down{i}")(x)  # (B, side / 2**(i+1), ..., filters)
        if i > 0 and normalization == "batch":
            x = BatchNormalization(synchronized=synchronized_batch_norm, name=f"down{i}_bn")(x)
        elif i > 0 and normalization == "layer":
            x = LayerNormalization(axis=[1, 2, 3], name=f"down{i}_ln")(x)
        x = keras.layers.LeakyReLU(0.2)(x)
        if dropout:
            x = keras.layers.Dropout(dropout)(x)
        filters *= 2
    features = keras.layers.Flatten(name="features")(x)  # (B, F)
    logits = (SpectralDense if spectral_norm else keras.layers.Dense)(1, name="logits_dense")(features)
    if label is not None and conditioning == "projection":
        projection = ProjectionHead(num_classes, name="projection")([features, label])
        logits = keras.layers.Add()([logits, projection])
    logits = keras.layers.Activation("linear", dtype="float32", name="logits")(logits)  # (B, 1), float32
    outputs = logits
    if classifier_head or code_head:  # one auxiliary head on phi(x): AC-GAN's classifier or InfoGAN's Q
        units, layer, output = (num_classes, "classifier", "class_logits") if classifier_head else (
            code_head, "code_head", "code_outputs")
        aux = (SpectralDense if spectral_norm else keras.layers.Dense)(units, name=layer)(features)
        aux = keras.layers.Activation("linear", dtype="float32", name=output)(aux)
        outputs = [logits, aux]  # (B, 1), (B, units)
    return keras.Model(inputs if len(inputs) > 1 else images, outputs, name=name)
