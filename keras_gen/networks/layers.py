"""Layers the networks share: normalization that penalties can differentiate twice, conditional batch
normalization, the projection head, PacGAN packing, spectral normalization."""

import keras
from keras import ops

from keras_gen import checks

__all__ = [
    "BatchNormalization",
    "LayerNormalization",
    "ConditionalBatchNormalization",
    "ProjectionHead",
    "Pack",
    "SpectralDense",
    "SpectralConv2D",
]


def moments(x, axes, keepdims=False):
    """Mean and (biased) variance of ``x`` over ``axes``, in at least float32, twice differentiable.

    `keras.ops.moments` on TensorFlow is `tf.nn.moments`, which takes the variance around
    ``stop_gradient(mean)``. That leaves first derivatives exact (the variance's derivative with respect to the
    mean is zero) but drops terms of the second derivative, the one R1 and gradient penalties take through a
    discriminator: the penalty's gradient with respect to every weight before the normalization comes out wrong
    (by 1-6 % on the DCGAN discriminator's convolutions, and not zero for the bias a batch normalization cancels;
    tensorflow#24508). Here the variance is taken around the mean itself.
    """
    x = ops.cast(x, keras.backend.result_type(x.dtype, "float32"))
    mean = ops.mean(x, axis=axes, keepdims=True)
    variance = ops.mean(ops.square(x - mean), axis=axes, keepdims=True)
    if not keepdims:
        mean, variance = ops.squeeze(mean, axis=axes), ops.squeeze(variance, axis=axes)
    return mean, variance


@keras.saving.register_keras_serializable(package="keras_gen")
class BatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` whose batch statistics are twice differentiable (`moments`).

    The discriminators use it: an R1 or gradient penalty differentiates the discriminator's input gradient with
    respect to its weights, and through Keras' own layer on TensorFlow that second derivative is wrong. Outputs,
    first derivatives, moving statistics and saved weights are those of the Keras layer. Synchronized statistics
    (`synchronized=True`, computed as ``E[x^2] - E[x]^2``) and masked inputs are left to it: they are exact.
    """

    def _moments(self, inputs, mask):
        if mask is not None or self.synchronized:
            return super()._moments(inputs, mask)
        return moments(inputs, self._reduction_axes)


@keras.saving.register_keras_serializable(package="keras_gen")
class LayerNormalization(keras.layers.LayerNormalization):
    """`keras.layers.LayerNormalization` whose statistics are twice differentiable (`moments`): the critic of
    WGAN-GP normalizes its layers per sample, and the gradient penalty differentiates through them twice."""

    def call(self, inputs):
        if self.rms_scaling:
            return super().call(inputs)
        x = ops.cast(inputs, keras.backend.result_type(inputs.dtype, "float32"))
        axes = [a % len(x.shape) for a in self.axis]
        broadcast = [1] * len(x.shape)
        for a in axes:
            broadcast[a] = x.shape[a]
        mean, variance = moments(x, axes, keepdims=True)
        outputs = (x - mean) * ops.rsqrt(variance + self.epsilon)
        if self.gamma is not None:
            outputs = outputs * ops.reshape(ops.cast(self.gamma, x.dtype), broadcast)
        if self.beta is not None:
            outputs = outputs + ops.reshape(ops.cast(self.beta, x.dtype), broadcast)
        return ops.cast(outputs, self.compute_dtype)


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
        synchronized: compute the statistics over the global batch under `tf.distribute`.
    """

    def __init__(self, num_classes, momentum=0.99, epsilon=1e-3, synchronized=False, **kwargs):
        super().__init__(**kwargs)
        checks.integer(num_classes, "num_classes", 1)
        self.num_classes = int(num_classes)
        self.momentum = momentum
        self.epsilon = epsilon
        self.synchronized = bool(synchronized)
        self.batch_norm = BatchNormalization(
            momentum=momentum,
            epsilon=epsilon,
            center=False,
            scale=False,
            synchronized=self.synchronized,
            dtype=self.dtype_policy,
            name="bn",
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
        config.update(
            num_classes=self.num_classes,
            momentum=self.momentum,
            epsilon=self.epsilon,
            synchronized=self.synchronized,
        )
        return config


@keras.saving.register_keras_serializable(package="keras_gen")
class ProjectionHead(keras.layers.Layer):
    """The class term of a projection discriminator (Miyato & Koyama 2018, https://arxiv.org/abs/1802.05637).

    ``logits = psi(phi(x)) + <embed(y), phi(x)>``: this layer returns ``<embed(y), phi(x)>`` of shape ``(B, 1)``
    from ``[features (B, F), labels (B,)]``; the unconditional ``psi`` is an ordinary `Dense(1)` beside it.
    """

    def __init__(self, num_classes, **kwargs):
        super().__init__(**kwargs)
        checks.integer(num_classes, "num_classes", 1)
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
        checks.integer(packing, "packing", 1)
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


def _l2_normalize(x, eps=1e-12):
    return x / ops.sqrt(ops.sum(ops.square(x)) + eps)


class _SpectralNormMixin:
    """Spectral normalization as a reparameterization (Miyato et al. 2018, https://arxiv.org/abs/1802.05957).

    The layer keeps its raw ``kernel`` as the trainable variable and uses ``kernel / sigma(kernel)`` in the forward
    pass, with sigma estimated by power iteration on a persistent vector ``u`` (updated in training mode only,
    not trainable). Gradients flow through the division, as in the paper and PyTorch's ``spectral_norm``.

    (`keras.layers.SpectralNormalization` instead overwrites the trainable kernel with ``kernel / sigma`` on every
    training call: gradients skip the normalization, and calling the discriminator in the generator's phase
    changes the discriminator's trainable weights.)
    """

    def _build_spectral_norm(self):
        self.u = self.add_weight(
            name="sn_u",
            shape=(1, self.kernel.shape[-1]),
            initializer=keras.initializers.RandomNormal(stddev=1.0),
            trainable=False,
        )

    def normalized_kernel(self, training=None):
        kernel = ops.cast(self.kernel, "float32")
        matrix = ops.reshape(kernel, (-1, kernel.shape[-1]))  # (fan_in, units)
        u = ops.cast(self.u, "float32")  # (1, units)
        for _ in range(self.power_iterations):
            v = _l2_normalize(ops.matmul(u, ops.transpose(matrix)))  # (1, fan_in)
            u = _l2_normalize(ops.matmul(v, matrix))  # (1, units)
        u = ops.stop_gradient(u)
        v = ops.stop_gradient(v)
        sigma = ops.sum(ops.matmul(v, matrix) * u)
        if training:
            self.u.assign(ops.cast(u, self.u.dtype))
        return ops.cast(kernel / sigma, self.compute_dtype)

    # Dense and Conv save a fixed list of variables (kernel, bias) for their quantization modes; these layers are
    # not quantizable and save every variable they own, ``u`` included.
    def save_own_variables(self, store):
        keras.layers.Layer.save_own_variables(self, store)

    def load_own_variables(self, store):
        keras.layers.Layer.load_own_variables(self, store)

    def _spectral_config(self, config):
        config.update(power_iterations=self.power_iterations)
        return config


@keras.saving.register_keras_serializable(package="keras_gen")
class SpectralDense(_SpectralNormMixin, keras.layers.Dense):
    """`keras.layers.Dense` with a spectrally normalized kernel (see `_SpectralNormMixin`)."""

    def __init__(self, units, power_iterations=1, **kwargs):
        super().__init__(units, **kwargs)
        if int(power_iterations) < 1:
            raise ValueError(f"`power_iterations` must be >= 1, got {power_iterations!r}.")
        self.power_iterations = int(power_iterations)

    def build(self, input_shape):
        super().build(input_shape)
        self._build_spectral_norm()

    def call(self, inputs, training=None):
        x = ops.matmul(inputs, self.normalized_kernel(training))
        if self.bias is not None:
            x = ops.add(x, self.bias)
        return self.activation(x) if self.activation is not None else x

    def get_config(self):
        return self._spectral_config(super().get_config())


@keras.saving.register_keras_serializable(package="keras_gen")
class SpectralConv2D(_SpectralNormMixin, keras.layers.Conv2D):
    """`keras.layers.Conv2D` with a spectrally normalized kernel (see `_SpectralNormMixin`)."""

    def __init__(self, filters, kernel_size, power_iterations=1, **kwargs):
        super().__init__(filters, kernel_size, **kwargs)
        if int(power_iterations) < 1:
            raise ValueError(f"`power_iterations` must be >= 1, got {power_iterations!r}.")
        self.power_iterations = int(power_iterations)

    def build(self, input_shape):
        super().build(input_shape)
        self._build_spectral_norm()

    def call(self, inputs, training=None):
        outputs = self.convolution_op(inputs, self.normalized_kernel(training))
        if self.use_bias:
            if self.data_format == "channels_last":
                bias_shape = (1,) * (self.rank + 1) + (self.filters,)
            else:
                bias_shape = (1, self.filters) + (1,) * self.rank
            outputs = ops.add(outputs, ops.reshape(self.bias, bias_shape))
        return self.activation(outputs) if self.activation is not None else outputs

    def get_config(self):
        return self._spectral_config(super().get_config())
