"""Encoders and decoders of variational autoencoders: fully connected and convolutional.

Every encoder maps ``images`` (and ``label`` when ``num_classes`` is set) to two float32 outputs,
``z_mean`` and ``z_log_var``, both ``(B, latent_dim)``: the parameters of the diagonal Gaussian ``q(z|x[, y])``.
Every decoder maps ``z`` (and ``label``) to a float32 tensor ``(B, H, W, C)`` shaped like the images, whose
meaning the model chooses (`keras_gen.models.VAE`: Bernoulli logits or Gaussian means). The output layers run
in float32 under mixed precision.

Conditioning (conditional VAE, Sohn et al. 2015, https://papers.nips.cc/paper/5775): the label goes through
an `Embedding` of size ``num_classes`` (by default, initialized to one-hot codes) and is concatenated to the
flattened features in the encoder and to ``z`` in the decoder.
"""

import math

import keras

from keras_gen import checks

__all__ = ["mlp_encoder", "mlp_decoder", "conv_encoder", "conv_decoder"]


def _check_image_shape(image_shape):
    image_shape = tuple(image_shape)
    if len(image_shape) != 3 or any(isinstance(s, bool) or int(s) != s or s < 1 for s in image_shape):
        raise ValueError(f"`image_shape` must be (height, width, channels) of positive ints, got {image_shape!r}.")
    return tuple(int(s) for s in image_shape)




def _check_sizes(name, sizes, allow_empty=True):
    if isinstance(sizes, int):
        sizes = (sizes,)
    sizes = tuple(sizes)
    if (not sizes and not allow_empty) or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in sizes):
        kind = "sequence" if allow_empty else "non-empty sequence"
        raise ValueError(f"`{name}` must be a {kind} of positive ints, got {sizes!r}.")
    return sizes


def _label_input(num_classes, embedding_dim):
    """``(label input, its embedding (B, E))`` or ``(None, None)`` for an unconditional network."""
    if num_classes is None:
        return None, None
    checks.integer(num_classes, "num_classes", 1)
    label = keras.Input((), dtype="int32", name="label")
    dim = embedding_dim or num_classes
    # Keras' default embedding init (uniform +-0.05) starts the label ~20x weaker than a feature or a z unit, and
    # the network learns to ignore it; start from a one-hot code (or unit-variance rows) instead.
    init = keras.initializers.Identity() if dim == num_classes else keras.initializers.RandomNormal(stddev=1.0)
    embedded = keras.layers.Embedding(num_classes, dim, embeddings_initializer=init, name="label_embedding")(label)
    return label, embedded


def _gaussian_head(x, latent_dim):
    """Dense layers for ``mu`` and ``log sigma^2``, computed in float32."""
    mean = keras.layers.Dense(latent_dim, dtype="float32", name="z_mean")(x)  # (B, latent_dim)
    log_var = keras.layers.Dense(latent_dim, dtype="float32", name="z_log_var")(x)  # (B, latent_dim)
    return [mean, log_var]


def mlp_encoder(
    image_shape=(28, 28, 1),
    latent_dim=20,
    hidden=(400,),
    num_classes=None,
    embedding_dim=None,
    name="encoder",
):
    """The fully connected encoder of Kingma & Welling (2014, https://arxiv.org/abs/1312.6114):
    ``x -> flatten (784) -> [Dense, ReLU] * len(hidden) -> (Dense mu, Dense log sigma^2)``.

    Args:
        image_shape: ``(H, W, C)`` of the input images.
        latent_dim: size of ``z``.
        hidden: units of each hidden layer (the seeds' VAE: one layer of 400).
        num_classes: set for a conditional encoder ``q(z|x, y)`` taking ``[images, label]``.
        embedding_dim: size of the label embedding (default ``num_classes``).
        name: model name.

    Returns:
        A functional `keras.Model` returning ``[z_mean, z_log_var]``, each float32 ``(B, latent_dim)``.

    Example:
        >>> encoder = mlp_encoder((28, 28, 1), latent_dim=20)
        >>> [t.shape for t in encoder(keras.ops.zeros((2, 28, 28, 1)))]
        [TensorShape([2, 20]), TensorShape([2, 20])]
    """
    image_shape = _check_image_shape(image_shape)
    checks.integer(latent_dim, "latent_dim", 1)
    hidden = _check_sizes("hidden", hidden)
    images = keras.Input(image_shape, name="images")
    label, embedded = _label_input(num_classes, embedding_dim)
    x = keras.layers.Flatten(name="flatten")(images)  # (B, H * W * C)
    if label is not None:
        x = keras.layers.Concatenate(name="features_and_label")([x, embedded])
    for i, units in enumerate(hidden):
        x = keras.layers.Dense(units, activation="relu", name=f"dense{i}")(x)
    outputs = _gaussian_head(x, latent_dim)
    return keras.Model(images if label is None else [images, label], outputs, name=name)


def mlp_decoder(
    latent_dim=20,
    image_shape=(28, 28, 1),
    hidden=(400,),
    num_classes=None,
    embedding_dim=None,
    name="decoder",
):
    """The fully connected decoder: ``z -> [Dense, ReLU] * len(hidden) -> Dense(H * W * C) -> (H, W, C)``.

    Args:
        latent_dim: size of ``z``.
        image_shape: ``(H, W, C)`` of the output.
        hidden: units of each hidden layer.
        num_classes: set for a conditional decoder ``p(x|z, y)`` taking ``[z, label]``.
        embedding_dim: size of the label embedding (default ``num_classes``).
        name: model name.

    Returns:
        A functional `keras.Model` returning a linear float32 output ``(B, H, W, C)`` (logits or means).
    """
    image_shape = _check_image_shape(image_shape)
    checks.integer(latent_dim, "latent_dim", 1)
    hidden = _check_sizes("hidden", hidden)
    z = keras.Input((latent_dim,), name="z")
    label, embedded = _label_input(num_classes, embedding_dim)
    x = z if label is None else keras.layers.Concatenate(name="z_and_label")([z, embedded])
    for i, units in enumerate(hidden):
        x = keras.layers.Dense(units, activation="relu", name=f"dense{i}")(x)
    x = keras.layers.Dense(math.prod(image_shape), dtype="float32", name="to_pixels")(x)  # (B, H * W * C)
    outputs = keras.layers.Reshape(image_shape, dtype="float32", name="decoded")(x)  # (B, H, W, C)
    return keras.Model(z if label is None else [z, label], outputs, name=name)


def _check_downsampling(image_shape, widths):
    height, width, _ = image_shape
    factor = 2 ** len(widths)
    if height % factor or width % factor:
        raise ValueError(
            f"With {len(widths)} stride-2 stages the image sides must be multiples of {factor}; got "
            f"{height}x{width}. Use fewer `widths` (28x28 takes 2 stages, 8x8 up to 3)."
        )
    return height // factor, width // factor


def conv_encoder(
    image_shape=(28, 28, 1),
    latent_dim=16,
    widths=(32, 64),
    hidden=256,
    num_classes=None,
    embedding_dim=None,
    name="encoder",
):
    """A convolutional encoder: ``[Conv 4x4 stride 2, ReLU] * len(widths) -> flatten -> (Dense, ReLU)
    -> (Dense mu, Dense log sigma^2)``.

    Each stage halves the image side (28 -> 14 -> 7 with two stages; 8 -> 4 -> 2).

    Args:
        image_shape: ``(H, W, C)``; ``H`` and ``W`` must be multiples of ``2 ** len(widths)``.
        latent_dim: size of ``z``.
        widths: channels of each strided convolution.
        hidden: units of a Dense layer before the Gaussian head (``None`` or 0 for none).
        num_classes: set for a conditional encoder taking ``[images, label]``.
        embedding_dim: size of the label embedding (default ``num_classes``).
        name: model name.

    Returns:
        A functional `keras.Model` returning ``[z_mean, z_log_var]``, each float32 ``(B, latent_dim)``.
    """
    image_shape = _check_image_shape(image_shape)
    checks.integer(latent_dim, "latent_dim", 1)
    widths = _check_sizes("widths", widths, allow_empty=False)
    hidden = _check_sizes("hidden", hidden or ())
    _check_downsampling(image_shape, widths)
    images = keras.Input(image_shape, name="images")
    label, embedded = _label_input(num_classes, embedding_dim)
    x = images
    for i, filters in enumerate(widths):
        x = keras.layers.Conv2D(filters, 4, strides=2, padding="same", activation="relu", name=f"down{i}")(x)
        # (B, H / 2**(i+1), W / 2**(i+1), filters)
    x = keras.layers.Flatten(name="flatten")(x)  # (B, F)
    if label is not None:
        x = keras.layers.Concatenate(name="features_and_label")([x, embedded])
    for i, units in enumerate(hidden):
        x = keras.layers.Dense(units, activation="relu", name=f"dense{i}")(x)
    outputs = _gaussian_head(x, latent_dim)
    return keras.Model(images if label is None else [images, label], outputs, name=name)


def conv_decoder(
    latent_dim=16,
    image_shape=(28, 28, 1),
    widths=(32, 64),
    hidden=256,
    num_classes=None,
    embedding_dim=None,
    name="decoder",
):
    """A convolutional decoder mirroring `conv_encoder`: ``z -> (Dense, ReLU) -> Dense -> (h, w, widths[-1])
    -> [ConvTranspose 4x4 stride 2, ReLU] * (len(widths) - 1) -> ConvTranspose 4x4 stride 2 (C channels)``.

    Args:
        latent_dim: size of ``z``.
        image_shape: ``(H, W, C)`` of the output; ``H`` and ``W`` must be multiples of ``2 ** len(widths)``.
        widths: channels of the encoder's stages (the decoder uses them in reverse).
        hidden: units of a Dense layer after ``z`` (``None`` or 0 for none).
        num_classes: set for a conditional decoder taking ``[z, label]``.
        embedding_dim: size of the label embedding (default ``num_classes``).
        name: model name.

    Returns:
        A functional `keras.Model` returning a linear float32 output ``(B, H, W, C)`` (logits or means).
    """
    image_shape = _check_image_shape(image_shape)
    checks.integer(latent_dim, "latent_dim", 1)
    widths = _check_sizes("widths", widths, allow_empty=False)
    hidden = _check_sizes("hidden", hidden or ())
    start_h, start_w = _check_downsampling(image_shape, widths)
    z = keras.Input((latent_dim,), name="z")
    label, embedded = _label_input(num_classes, embedding_dim)
    x = z if label is None else keras.layers.Concatenate(name="z_and_label")([z, embedded])
    for i, units in enumerate(hidden):
        x = keras.layers.Dense(units, activation="relu", name=f"dense{i}")(x)
    x = keras.layers.Dense(start_h * start_w * widths[-1], activation="relu", name="project")(x)
    x = keras.layers.Reshape((start_h, start_w, widths[-1]), name="to_grid")(x)  # (B, h, w, widths[-1])
    for i, filters in enumerate(reversed(widths[:-1])):
        x = keras.layers.Conv2DTranspose(filters, 4, strides=2, padding="same", activation="relu", name=f"up{i}")(x)
        # (B, h * 2**(i+1), w * 2**(i+1), filters)
    outputs = keras.layers.Conv2DTranspose(
        image_shape[-1], 4, strides=2, padding="same", dtype="float32", name="decoded"
    )(x)  # (B, H, W, C)
    return keras.Model(z if label is None else [z, label], outputs, name=name)
