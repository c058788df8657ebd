"""Layers the networks share: conditional batch normalization, the projection head, PacGAN packing."""

import keras
from keras import ops

__all__ = ["ConditionalBatchNormalization", "ProjectionHead", "Pack"]


@keras.saving.register_keras_serializable(package="keras_gen")
class ConditionalBatchNormalization(keras.layers.Layer):
    """Batch normalization whose scale and offset are chosen by a class label (de Vries et al. 2017;
    Miyato & Koyama 2018, https://arxiv.org/abs/1802.05637).

    ``y = gamma[label] * (x - mean) / sqrt(var + eps) + beta[label]``: the statistics are shared by all classes
    (a `BatchNormalization` without its own scale and offset), ``gamma`` and ``beta`` are one vector per class,
    initialised to ones and zeros so an untrained layer is plain batch normalization.

    Call it on ``[x, labels]`` with ``x`` of shape ``(B, ..., C)`` and integer ``labels`` of shape ``(B,)``.

    Args:
        num_classes: number of classes.
        momentum: moving-average momentum of the shared statistics.
        epsilon: added to the variance.
    """

    def __init__(self, num_classes, momentum=0.99, epsilon=1e-3, **kwargs):
        super().__init__(**kwargs)
        if int(num_classes) < 1:
            raise ValueError(f"`num_classes` must be a positive integer, got {num_classes!r}.")
        self.num_classes = int(num_classes)
        self.momentum = momentum
        self.epsilon = epsilon
        self.batch_norm = keras.layers.BatchNormalization(
            momentum=momentum, epsilon=epsilon, center=False, scale=False, dtype=self.dtype_policy, name="bn"
        )

    def build(self, input_shape):
        x_shape, _ = input_shape
        channels = x_shape[-1]
        self.batch_norm.build(x_shape)
        self.gamma = self.add_weight(
            name="gamma", shape=(self.num_classes, channels), initializer="ones", trainable=True
        )
        self.beta = self.add_weight(
            name="beta", shape=(self.num_classes, channels), initializer="zeros", trainable=True
        )

    def call(self, inputs, training=None):
        x, labels = inputs
        labels = ops.cast(ops.reshape(labels, (-1,)), "int32")
        normalized = self.batch_norm(x, training=training)
        # (B, C) -> (B, 1, ..., 1, C) to broadcast over the spatial axes.
        shape = (-1,) + (1,) * (len(x.shape) - 2) + (x.shape[-1],)
        gamma = ops.reshape(ops.take(ops.cast(self.gamma, normalized.dtype), labels, axis=0), shape)
        beta = ops.reshape(ops.take(ops.cast(self.beta, normalized.dtype), labels, axis=0), shape)
        return normalized * gamma + beta

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        config = super().get_config()
        config.update(num_classes=self.num_classes, momentum=self.momentum, epsilon=self.epsilon)
        return config


@keras.saving.register_keras_serializable(package="keras_gen")
class ProjectionHead(keras.layers.Layer):
    """The class term of a projection discriminator (Miyato & Koyama 2018, https://arxiv.org/abs/1802.05637).

    ``logits = psi(phi(x)) + <embed(y), phi(x)>``: this layer returns ``<embed(y), phi(x)>`` of shape ``(B, 1)``
    from ``[features (B, F), labels (B,)]``; the unconditional ``psi`` is an ordinary `Dense(1)` beside it.
    """

    def __init__(self, num_classes, **kwargs):
        super().__init__(**kwargs)
        if int(num_classes) < 1:
            raise ValueError(f"`num_classes` must be a positive integer, got {num_classes!r}.")
        self.num_classes = int(num_classes)

    def build(self, input_shape):
        features_shape, _ = input_shape
        self.embeddings = self.add_weight(
            name="embeddings",
            shape=(self.num_classes, features_shape[-1]),
            initializer=keras.initializers.GlorotUniform(),
            trainable=True,
        )

    def call(self, inputs):
        features, labels = inputs
        labels = ops.cast(ops.reshape(labels, (-1,)), "int32")
        embedded = ops.take(ops.cast(self.embeddings, features.dtype), labels, axis=0)  # (B, F)
        return ops.sum(embedded * features, axis=-1, keepdims=True)  # (B, 1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], 1)

    def get_config(self):
        config = super().get_config()
        config.update(num_classes=self.num_classes)
        return config


@keras.saving.register_keras_serializable(package="keras_gen")
class Pack(keras.layers.Layer):
    """PacGAN packing (Lin et al. 2018, https://arxiv.org/abs/1712.04086): ``m`` consecutive samples become one.

    ``(B, ..., C) -> (B / m, ..., m * C)``: the samples are concatenated along the last axis, so the
    discriminator judges ``m`` samples jointly and sees the lack of diversity of a collapsed generator. The batch
    size must be a multiple of ``m`` (the GAN model checks it).
    """

    def __init__(self, packing, **kwargs):
        super().__init__(**kwargs)
        if int(packing) < 1:
            raise ValueError(f"`packing` must be an integer >= 1, got {packing!r}.")
        self.packing = int(packing)

    def call(self, x):
        if self.packing == 1:
            return x
        m = self.packing
        inner = tuple(x.shape[1:])  # (..., C)
        grouped = ops.reshape(x, (-1, m) + inner)  # (B/m, m, ..., C)
        rank = len(inner) + 2
        # Move the group axis next to the channels: (B/m, ..., m, C), then merge them.
        perm = (0,) + tuple(range(2, rank - 1)) + (1, rank - 1)
        grouped = ops.transpose(grouped, perm)
        return ops.reshape(grouped, (-1,) + inner[:-1] + (m * inner[-1],))

    def compute_output_shape(self, input_shape):
        batch = None if input_shape[0] is None else input_shape[0] // self.packing
        return (batch,) + tuple(input_shape[1:-1]) + (input_shape[-1] * self.packing,)

    def get_config(self):
        config = super().get_config()
        config.update(packing=self.packing)
        return config
