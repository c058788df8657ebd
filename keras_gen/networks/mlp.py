"""Fully-connected generator and discriminator for low-dimensional data (the 2-D ring and grid mixtures)."""

import keras

from keras_gen.networks.layers import Pack, SpectralDense

__all__ = ["mlp_generator", "mlp_discriminator"]


def _check_hidden(hidden):
    hidden = tuple(int(h) for h in hidden)
    if not hidden or min(hidden) < 1:
        raise ValueError(f"`hidden` must be a non-empty sequence of positive layer sizes, got {hidden!r}.")
    return hidden


def mlp_generator(
    latent_dim=2,
    output_dim=2,
    hidden=(128, 128, 128),
    batch_norm=False,
    num_classes=None,
    name="generator",
):
    """``z -> [Dense, (BN), ReLU] * len(hidden) -> Dense(output_dim)`` with a linear output.

    Args:
        latent_dim: size of ``z``.
        output_dim: size of a sample.
        hidden: units of each hidden layer.
        batch_norm: batch normalization after each hidden Dense.
        num_classes: set for a conditional generator taking ``[z, label]`` (a one-hot label concatenated to z).
        name: model name.

    Returns:
        A functional `keras.Model` mapping ``z`` (``(B, latent_dim)``) to float32 samples ``(B, output_dim)``.
    """
    hidden = _check_hidden(hidden)
    z = keras.Input((latent_dim,), name="z")
    inputs, x = [z], z
    if num_classes is not None:
        label = keras.Input((), dtype="int32", name="label")
        inputs.append(label)
        embedded = keras.layers.Embedding(num_classes, num_classes, name="label_embedding")(label)
        x = keras.layers.Concatenate()([z, embedded])
    for i, units in enumerate(hidden):
        x = keras.layers.Dense(units, use_bias=not batch_norm, name=f"dense{i}")(x)
        if batch_norm:
            x = keras.layers.BatchNormalization(name=f"dense{i}_bn")(x)
        x = keras.layers.ReLU()(x)
    x = keras.layers.Dense(output_dim, name="to_sample")(x)
    samples = keras.layers.Activation("linear", dtype="float32", name="samples")(x)  # (B, output_dim)
    return keras.Model(inputs if len(inputs) > 1 else z, samples, name=name)


def mlp_discriminator(
    input_dim=2,
    hidden=(128, 128, 128),
    spectral_norm=False,
    packing=1,
    num_classes=None,
    name="discriminator",
):
    """``x -> (Pack) -> [Dense, LeakyReLU(0.2)] * len(hidden) -> Dense(1)`` logits.

    Args:
        input_dim: size of a sample.
        hidden: units of each hidden layer.
        spectral_norm: spectrally normalize each Dense (`SpectralDense`).
        packing: PacGAN degree ``m`` (the discriminator returns ``B / m`` logits for ``B`` samples).
        num_classes: set for a conditional discriminator taking ``[x, label]`` (one-hot label concatenated).
        name: model name.

    Returns:
        A functional `keras.Model` returning float32 logits ``(B / packing, 1)``.
    """
    hidden = _check_hidden(hidden)
    if num_classes is not None and packing != 1:
        raise ValueError("Packing (PacGAN) is not supported together with a conditional discriminator.")
    samples = keras.Input((input_dim,), name="samples")
    inputs, x = [samples], samples
    if num_classes is not None:
        label = keras.Input((), dtype="int32", name="label")
        inputs.append(label)
        x = keras.layers.Concatenate()(
            [samples, keras.layers.Embedding(num_classes, num_classes, name="label_embedding")(label)]
        )
    if packing != 1:
        x = Pack(packing, name="pack")(x)  # (B / m, m * input_dim)

    def dense(units, layer_name):
        return (SpectralDense if spectral_norm else keras.layers.Dense)(units, name=layer_name)

    for i, units in enumerate(hidden):
        x = keras.layers.LeakyReLU(0.2)(dense(units, f"dense{i}")(x))
    x = dense(1, "logits_dense")(x)
    logits = keras.layers.Activation("linear", dtype="float32", name="logits")(x)  # (B / m, 1)
    return keras.Model(inputs if len(inputs) > 1 else samples, logits, name=name)
