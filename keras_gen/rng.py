"""Random draws that give the same numbers with and without XLA, in Keras and in exported SavedModels.

TensorFlow's stateless Philox generator produces the same raw bits under XLA and in its own kernels, but the
two turn those bits into floats differently (a ``stateless_normal`` with one seed differs by up to ~3 between
``jit_compile=True`` and ``False``). Here the floats are made from the raw bits by hand, so a GAN's latents,
and hence its losses, do not depend on whether the step is compiled, and an exported ``sample(n, seed)``
signature reproduces `GAN.generate(n, seed=seed)` exactly.
"""

import math

import keras

__all__ = ["uniform", "normal", "seed_tensor"]

# Under tf.distribute each replica sees a slice of the global batch. Draws whose first axis is the batch are
# taken for the whole global batch (every replica computes the same numbers from the same seed) and sliced, so a
# distributed step uses exactly the numbers one device would use on the global batch.

_TWO_POW_MINUS_23 = 1.0 / (1 << 23)


def seed_tensor(seed):
    """An int, a shape-``[2]`` tensor or a `keras.random.SeedGenerator` (advanced by one) -> int64 ``[2]``."""
    import tensorflow as tf

    if isinstance(seed, keras.random.SeedGenerator):
        seed = seed.next()
    elif isinstance(seed, int):
        seed = [seed, 0]
    return tf.cast(tf.reshape(seed, (2,)), tf.int64)


def _replica_slice(draw, shape, seed, per_replica=True):
    import tensorflow as tf

    if not per_replica:
        return draw(shape, seed)
    context = tf.distribute.get_replica_context()
    replicas = context.num_replicas_in_sync if context is not None else 1
    if replicas == 1:
        return draw(shape, seed)
    local = shape[0]
    full = draw((local * replicas,) + tuple(shape[1:]), seed)  # (global batch, ...)
    start = tf.cast(context.replica_id_in_sync_group, tf.int32) * tf.cast(local, tf.int32)
    return full[start : start + local]


def uniform(shape, seed, dtype="float32", per_replica=True):
    """Uniform floats in the open interval (0, 1): 23 random bits per value, offset by half a step.

    Args:
        shape: output shape (ints or scalar tensors).
        seed: an int, an int ``[2]`` tensor, or a `keras.random.SeedGenerator`.
        dtype: output dtype.
        per_replica: under tf.distribute, the first axis is the replica's slice of the global batch (each
            replica gets its part of one global draw). False: every replica gets the same whole draw (for
            values that are not per sample, such as a choice per codebook entry).
    """
    return _replica_slice(lambda s, sd: _uniform(s, sd, dtype), tuple(shape), seed_tensor(seed), per_replica)


def _uniform(shape, seed, dtype):
    import tensorflow as tf

    bits = tf.random.stateless_uniform(
        shape, seed=seed_tensor(seed), minval=None, maxval=None, dtype=tf.uint32, alg="philox"
    )
    # 23 bits, so the largest value, 1 - 2**-24, is exact in float32 (with 24 bits it would round up to 1.0).
    values = (tf.cast(tf.bitwise.right_shift(bits, 9), tf.float32) + 0.5) * _TWO_POW_MINUS_23
    return tf.cast(values, dtype)


def normal(shape, seed, dtype="float32"):
    """Standard normal floats by the Box-Muller transform of two uniform draws."""
    return _replica_slice(lambda s, sd: _normal(s, sd, dtype), tuple(shape), seed_tensor(seed))


def _normal(shape, seed, dtype):
    import tensorflow as tf

    pair = _uniform(tf.concat([[2], tf.cast(shape, tf.int32)], axis=0), seed, "float32")  # (2, *shape)
    radius = tf.sqrt(-2.0 * tf.math.log(pair[0]))
    return tf.cast(radius * tf.cos((2.0 * math.pi) * pair[1]), dtype)
