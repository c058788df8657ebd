"""VQ-VAE networks (van den Oord et al. 2017, https://arxiv.org/abs/1711.00937): a convolutional encoder and
decoder and the `VectorQuantizer` layer between them.

    x (B, H, W, C) -> encoder -> z_e (B, h, w, D) -> nearest code -> z_q (B, h, w, D) -> decoder -> (B, H, W, C)

with ``h = H / 2**num_downsamples``. The quantizer holds the codebook ``e`` of ``K`` vectors of dimension ``D``
and maps each position to its nearest code, ``k = argmin_j ||z_e - e_j||^2``. The straight-through gradient
and the codebook / commitment losses belong to `keras_gen.models.VQVAE` and `keras_gen.losses`.
"""

import keras
import numpy as np
from keras import ops

from keras_gen import checks

__all__ = ["VectorQuantizer", "codebook_perplexity", "straight_through", "vq_encoder", "vq_decoder"]


def straight_through(z_e, z_q):
    """The straight-through estimator of VQ-VAE: ``z_e + sg[z_q - z_e]``.

    Its value is ``z_q``; its gradient with respect to ``z_e`` is the identity, so the decoder's gradient at
    ``z_q`` is copied to the encoder output, and no gradient reaches the codebook through this path.
    """
    z_q = ops.cast(z_q, z_e.dtype)
    return z_e + ops.stop_gradient(z_q - z_e)


def codebook_perplexity(indices, num_codes):
    """Codebook usage: ``exp(H(p))`` with ``p_k`` the fraction of positions assigned to code ``k``.

    ``p = mean over positions of one_hot(indices)``; ``H(p) = -sum_k p_k log p_k`` (with ``0 log 0 = 0``). It is
    ``K`` when all ``K`` codes are used equally often and 1 when a single code is used. Under tf.distribute
    the usage is summed over the replicas, so every replica reports the global batch's perplexity.

    Args:
        indices: integer code indices of any shape.
        num_codes: ``K``.

    Returns:
        A float32 scalar in ``[1, K]``.
    """
    counts, _ = _over_replicas(_code_counts(indices, num_codes))  # usage over the global batch, not one replica's
    p = counts / ops.sum(counts)
    safe = ops.where(p > 0, p, ops.ones_like(p))
    entropy = -ops.sum(ops.where(p > 0, p * ops.log(safe), ops.zeros_like(p)))
    return ops.exp(entropy)


def _code_counts(indices, num_codes):
    """How many positions of ``indices`` (any shape) use each code: float32 ``(num_codes,)``."""
    flat = ops.reshape(ops.cast(indices, "int32"), (-1,))
    return ops.sum(ops.one_hot(flat, int(num_codes), dtype="float32"), axis=0)


def _over_replicas(total, rows=None):
    """Under tf.distribute with several replicas: ``total`` summed over the replicas and ``rows`` gathered from
    all of them along axis 0 (in replica order: the global batch's). Otherwise both unchanged."""
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return total, rows
    total = context.all_reduce(tf.distribute.ReduceOp.SUM, total)
    return total, (None if rows is None else context.all_gather(rows, axis=0))


@keras.saving.register_keras_serializable(package="keras_gen")
class VectorQuantizer(keras.layers.Layer):
    """Nearest-neighbour quantization against a learned codebook of ``num_codes`` vectors.

    ``k(z) = argmin_j ||z - e_j||^2`` per position, computed as ``||z||^2 - 2 z.e_j + ||e_j||^2`` in float32
    (the layer always computes in float32, also under mixed precision).

    It also keeps, per code, the number of consecutive `restart_dead_codes` calls (training steps) in which
    the code was not used, and can re-initialise codes idle for too long to encoder outputs of the current
    batch (the "dead code" remedy of Dhariwal et al. 2020, Jukebox, https://arxiv.org/abs/2005.00341, and
    Williams et al. 2020).

    Call it on ``z_e`` ``(B, ..., D)``; it returns ``(z_q, indices)``: the chosen codebook vectors ``(B, ..., D)``
    (float32, no straight-through: apply `straight_through` yourself) and their indices ``(B, ...)`` int32.

    Args:
        num_codes: codebook size ``K``.
        code_dim: vector dimension ``D``.
        codebook_initializer: initializer of the ``(K, D)`` codebook; default uniform with variance ``1 / D``.
    """

    def __init__(self, num_codes, code_dim, codebook_initializer=None, **kwargs):
        kwargs["dtype"] = "float32"  # distances and the codebook stay in float32
        super().__init__(**kwargs)
        for name, value in (("num_codes", num_codes), ("code_dim", code_dim)):
            checks.integer(value, name, 1)
        self.num_codes = int(num_codes)
        self.code_dim = int(code_dim)
        self.codebook_initializer = keras.initializers.get(
            codebook_initializer
            or keras.initializers.VarianceScaling(scale=1.0, mode="fan_out", distribution="uniform")
        )

    def build(self, input_shape=None):
        if input_shape is not None and input_shape[-1] is not None and input_shape[-1] != self.code_dim:
            raise ValueError(
                f"The quantizer holds {self.code_dim}-d codes but got inputs of shape {tuple(input_shape)}."
            )
        self.codebook = self.add_weight(
            name="codebook", shape=(self.num_codes, self.code_dim), initializer=self.codebook_initializer
        )
        self.idle_steps = self.add_weight(
            name="idle_steps", shape=(self.num_codes,), initializer="zeros", dtype="int32", trainable=False
        )
        self.built = True

    def nearest(self, z):
        """Indices of the nearest codes, ``(B, ..., D) -> (B, ...)`` int32."""
        z = ops.cast(z, "float32")
        flat = ops.reshape(z, (-1, self.code_dim))  # (N, D)
        codebook = ops.convert_to_tensor(self.codebook)
        distances = (
            ops.sum(ops.square(flat), axis=1, keepdims=True)
            - 2.0 * ops.matmul(flat, ops.transpose(codebook))
            + ops.sum(ops.square(codebook), axis=1)[None, :]
        )  # (N, K)
        indices = ops.cast(ops.argmin(distances, axis=1), "int32")  # (N,)
        return ops.reshape(indices, ops.shape(z)[:-1])

    def lookup(self, indices):
        """Codebook vectors of integer ``indices`` ``(B, ...)`` -> ``(B, ..., D)`` float32."""
        return ops.take(ops.convert_to_tensor(self.codebook), ops.cast(indices, "int32"), axis=0)

    def call(self, z_e):
        indices = self.nearest(z_e)  # (B, h, w)
        return self.lookup(indices), indices  # (B, h, w, D), (B, h, w)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape), tuple(input_shape[:-1])

    def restart_dead_codes(self, z_e, indices, min_idle_steps, seed):
        """Counts one step of usage and re-initialises codes unused for ``min_idle_steps`` consecutive steps.

        A dead code ``j`` gets the value ``z_e[r_j]`` of a position ``r_j`` drawn uniformly from the batch
        (with `keras_gen.rng`, so the draw is reproducible and identical with and without XLA); its idle
        count restarts at 0.

        Args:
            z_e: encoder outputs of the batch ``(B, ..., D)``.
            indices: their code indices ``(B, ...)``.
            min_idle_steps: idle steps after which a code is restarted (an int >= 1).
            seed: an int or `keras.random.SeedGenerator`.

        Returns:
            The number of codes restarted (float32 scalar).
        """
        from keras_gen import rng

        flat = ops.reshape(ops.stop_gradient(ops.cast(z_e, "float32")), (-1, self.code_dim))  # (N, D)
        # Usage and replacements over the global batch, so every replica makes the same update (the one a single
        # device makes): summed counts, and the positions of all replicas in the global batch's order.
        counts, flat = _over_replicas(_code_counts(indices, self.num_codes), flat)  # (K,), (N_global, D)
        idle = ops.where(counts > 0, ops.zeros_like(self.idle_steps), self.idle_steps + 1)  # (K,)
        dead = idle >= int(min_idle_steps)  # (K,)
        n = ops.shape(flat)[0]
        u = rng.uniform((self.num_codes,), seed, per_replica=False)  # (K,) in (0, 1), the same on every replica
        rows = ops.minimum(ops.cast(u * ops.cast(n, "float32"), "int32"), n - 1)  # (K,) in [0, N)
        replacement = ops.take(flat, rows, axis=0)  # (K, D)
        self.codebook.assign(ops.where(dead[:, None], replacement, self.codebook))
        self.idle_steps.assign(ops.where(dead, ops.zeros_like(idle), idle))
        return ops.sum(ops.cast(dead, "float32"))

    def get_config(self):
        config = super().get_config()
        config.pop("dtype", None)
        config.update(
            num_codes=self.num_codes,
            code_dim=self.code_dim,
            codebook_initializer=keras.initializers.serialize(self.codebook_initializer),
        )
        return config


def _check_image_shape(image_shape):
    shape = tuple(image_shape)
    if len(shape) != 3 or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1 for s in shape):
        raise ValueError(f"`image_shape` must be (H, W, C) with positive ints, got {tuple(image_shape)!r}.")
    return tuple(int(s) for s in shape)




def _residual_stack(x, width, num_residual, prefix):
    """The VQ-VAE residual blocks ``x + Conv1x1(ReLU(Conv3x3(ReLU(x))))``, then a ReLU."""
    for i in range(num_residual):
        h = keras.layers.Activation("relu", name=f"{prefix}res{i}_relu")(x)
        h = keras.layers.Conv2D(width, 3, padding="same", activation="relu", name=f"{prefix}res{i}_conv3")(h)
        h = keras.layers.Conv2D(width, 1, name=f"{prefix}res{i}_conv1")(h)
        x = keras.layers.Add(name=f"{prefix}res{i}_add")([x, h])
    return keras.layers.Activation("relu", name=f"{prefix}res_out")(x)


def vq_encoder(image_shape=(28, 28, 1), code_dim=16, width=32, num_downsamples=2, num_residual=1, name="vq_encoder"):
    """The VQ-VAE encoder: ``num_downsamples`` stride-2 4x4 convolutions, residual blocks, a 1x1 projection.

    ``(B, H, W, C) -> z_e (B, H / 2**n, W / 2**n, D)``; ``H`` and ``W`` must be divisible by ``2**n``.

    Args:
        image_shape: ``(H, W, C)``.
        code_dim: ``D``, the dimension of the codes.
        width: hidden channels.
        num_downsamples: stride-2 convolutions ``n``.
        num_residual: residual blocks after them.
        name: model name.
    """
    image_shape = _check_image_shape(image_shape)
    code_dim = checks.integer(code_dim, "code_dim", 1)
    width = checks.integer(width, "width", 1)
    num_downsamples = checks.integer(num_downsamples, "num_downsamples", 1)
    num_residual = checks.integer(num_residual, "num_residual", 0)
    factor = 2**num_downsamples
    if image_shape[0] % factor or image_shape[1] % factor:
        raise ValueError(
            f"Image sides {image_shape[:2]} must be divisible by 2**num_downsamples = {factor}; "
            "use fewer downsamples or resize the images."
        )
    images = keras.Input(image_shape, name="images")
    x = images
    for i in range(num_downsamples):
        x = keras.layers.Conv2D(width, 4, strides=2, padding="same", name=f"down{i}")(x)  # (B, H/2^(i+1), ., width)
        if i < num_downsamples - 1:
            x = keras.layers.Activation("relu", name=f"down{i}_relu")(x)
    x = _residual_stack(x, width, num_residual, prefix="")
    z_e = keras.layers.Conv2D(code_dim, 1, name="to_codes")(x)  # (B, h, w, D)
    return keras.Model(images, z_e, name=name)


def vq_decoder(code_shape=(7, 7, 16), channels=1, width=32, num_upsamples=2, num_residual=1, name="vq_decoder"):
    """The VQ-VAE decoder: a 3x3 convolution, residual blocks, ``num_upsamples`` stride-2 4x4 transposed ones.

    ``z_q (B, h, w, D) -> (B, h * 2**n, w * 2**n, C)``, a linear float32 output (the model decides what it
    means: the image itself under a Gaussian likelihood, Bernoulli logits under a Bernoulli one).

    Args:
        code_shape: ``(h, w, D)``.
        channels: image channels ``C``.
        width: hidden channels.
        num_upsamples: transposed convolutions ``n``.
        num_residual: residual blocks before them.
        name: model name.
    """
    code_shape = _check_image_shape(code_shape)
    channels = checks.integer(channels, "channels", 1)
    width = checks.integer(width, "width", 1)
    num_upsamples = checks.integer(num_upsamples, "num_upsamples", 1)
    num_residual = checks.integer(num_residual, "num_residual", 0)
    codes = keras.Input(code_shape, name="codes")
    x = keras.layers.Conv2D(width, 3, padding="same", name="from_codes")(codes)  # (B, h, w, width)
    x = _residual_stack(x, width, num_residual, prefix="")
    for i in range(num_upsamples - 1):
        x = keras.layers.Conv2DTranspose(width, 4, strides=2, padding="same", activation="relu", name=f"up{i}")(x)
    outputs = keras.layers.Conv2DTranspose(
        channels, 4, strides=2, padding="same", dtype="float32", name="outputs"
    )(x)  # (B, H, W, C)
    return keras.Model(codes, outputs, name=name)
