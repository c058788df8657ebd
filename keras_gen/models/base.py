"""`GenerativeModel`: what every model of the package shares (seeded sampling, labels, saving the seed state)."""

import keras
import numpy as np
from keras import ops

from keras_gen import checks, model_kind
from keras_gen.latent_spec import Condition, LatentSpec

__all__ = [
    "GenerativeModel", "LOSS_SCALE_MODES", "apply_gradients", "check_count", "check_loss_scale", "num_replicas",
    "prepare_optimizer", "scaled_loss", "uses_float16",
]


def num_replicas():
    """Replicas of the current `tf.distribute` strategy (1 outside one): losses are divided by it before the
    gradients, which the optimizer sums over replicas."""
    import tensorflow as tf

    return tf.distribute.get_strategy().num_replicas_in_sync


def apply_gradients(optimizer, loss, tape, variables):
    """Gradients of ``loss`` on ``tape`` w.r.t. ``variables``, applied by ``optimizer`` once all of ``loss`` is
    computed.

    A loss can read a variable in a pass that no gradient of that variable needs: the R1 penalty reads the
    discriminator's biases, and through LeakyReLU its gradient w.r.t. a bias is zero. Only the traced graph's
    read-before-write order then kept the read ahead of the update, and in about 1 trace in 10 it did not (TF
    2.21, CPU; with Grappler's dependency optimizer off it always did): R1, and the kernel updates computed from
    it, used the updated biases. Making the update wait for the loss rules that out.
    """
    import tensorflow as tf

    grads = tape.gradient(loss, variables)
    with tf.control_dependencies([loss]):
        optimizer.apply_gradients(zip(grads, variables))


LOSS_SCALE_MODES = ("auto", True, False)
"""``compile(loss_scale=...)`` of every model: ``"auto"`` wraps an optimizer in a `LossScaleOptimizer` when one of
its networks computes in float16, ``True`` always, ``False`` never."""


def check_loss_scale(loss_scale):
    if loss_scale not in LOSS_SCALE_MODES:
        raise ValueError(f"`loss_scale` must be 'auto', True or False, got {loss_scale!r}.")
    return loss_scale


def prepare_optimizer(optimizer, networks, loss_scale="auto", learning_rate=1e-3, beta_1=0.9):
    """The optimizer a model's ``compile`` keeps for ``networks``.

    Args:
        optimizer: a name, config or instance; None gives ``Adam(learning_rate, beta_1)``.
        networks: the networks it updates (their dtype policies decide ``"auto"`` loss scaling).
        loss_scale: one of `LOSS_SCALE_MODES`. An optimizer that already is a `LossScaleOptimizer` (a restored
            one) stays as it is.
        learning_rate, beta_1: the default Adam's.
    """
    check_loss_scale(loss_scale)
    if optimizer is None:
        optimizer = keras.optimizers.Adam(learning_rate=learning_rate, beta_1=beta_1)
    optimizer = keras.optimizers.get(optimizer)
    scale = loss_scale is True or (loss_scale == "auto" and any(uses_float16(net) for net in networks))
    if scale and not isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def scaled_loss(optimizer, loss):
    """The loss to differentiate: divided by the replica count (the optimizer sums the replicas' gradients), and
    loss-scaled for a `LossScaleOptimizer`."""
    scaled = loss / num_replicas()
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        scaled = optimizer.scale_loss(scaled)
    return scaled


def uses_float16(network):
    """Whether any layer of ``network`` computes in float16 (then its optimizer needs loss scaling)."""
    return any(
        getattr(layer, "dtype_policy", None) is not None and layer.dtype_policy.compute_dtype == "float16"
        for layer in network._flatten_layers(include_self=True)
    )


def check_count(n):
    """A positive integer number of samples ``n``, or a ValueError naming the bad value."""
    return checks.integer(n, "n", 1)


def _shuffles_itself(x):
    """Whether Keras would ignore ``shuffle`` for ``x`` (a dataset or a generator: the data's own order)."""
    import types

    import tensorflow as tf

    return isinstance(x, (tf.data.Dataset, tf.distribute.DistributedDataset, types.GeneratorType))


class GenerativeModel(keras.Model):
    """Base class of the package's models: a latent space, optional classes, reproducible sampling.

    Subclasses set ``latent_dim`` (an int, or a shape tuple for spatial latents), ``sample_shape``,
    ``num_classes`` (or None) and implement ``decode_latent(z, labels)`` (inference-mode generation from
    latents, returning a tensor). They get:

    - ``seed_generator``: a `keras.random.SeedGenerator` whose state is saved with the model (Keras does not save
      it by itself), so a resumed run draws the same latents as an uninterrupted one;
    - `sample_latent`, `check_labels`, `generate`, `generate_from_latent`: the sampling interface the callbacks,
      CLI and exporters use.

    What the model is and offers is declared once: ``kind`` and ``operations`` (`keras_gen.model_kind`), and
    ``latent_spec`` (`keras_gen.latent_spec.LatentSpec`: the latent's parts, their distributions, and the label
    of a conditional model). Latents are one standard normal part ``z`` of ``latent_shape`` by default; a subclass
    with another prior overrides `latent_parts`. Export, serving and the latent tools read these instead of the
    class name.
    """

    _SEED_STATE_KEY = "seed_generator_state"

    kind = "latent"
    """A key of `keras_gen.model_kind.KINDS`."""

    @property
    def operations(self):
        """The operations this model offers (`keras_gen.model_kind.OPERATIONS`): its kind's, by default."""
        return model_kind.KINDS[self.kind].operations

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    # --------------------------------------------------------------- fitting
    _SHUFFLE_POSITION = 8  # fit(x, y, batch_size, epochs, verbose, callbacks, validation_split, ..., shuffle)

    def fit(self, *args, **kwargs):
        """`keras.Model.fit`. A `tf.data.Dataset` (or a Python generator) gets ``shuffle=False`` unless you pass
        ``shuffle`` yourself: Keras cannot shuffle them and ignores the flag, but its default ``True`` made every
        ``fit`` on the package's datasets warn that it was ignored. Arrays are shuffled as Keras always does."""
        x = args[0] if args else kwargs.get("x")
        if "shuffle" not in kwargs and len(args) <= self._SHUFFLE_POSITION and _shuffles_itself(x):
            kwargs["shuffle"] = False
        return super().fit(*args, **kwargs)

    # --------------------------------------------------------------- saving the seed state
    def save_own_variables(self, store):
        super().save_own_variables(store)
        store[self._SEED_STATE_KEY] = self.seed_generator.state

    def load_own_variables(self, store):
        keys = list(store.keys())
        if self._SEED_STATE_KEY in keys:
            self.seed_generator.state.assign(store[self._SEED_STATE_KEY])
        super().load_own_variables({k: store[k] for k in keys if k != self._SEED_STATE_KEY})

    # --------------------------------------------------------------- tf.distribute
    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Before fit, Keras averages one distributed data batch across replicas to trace a symbolic build. Under
        # MultiWorkerMirroredStrategy that collective fails on integer labels ("Attempt to convert a value
        # (PerReplica...)"). The package's models are built at construction and compile (networks, optimizers,
        # trackers), so there is nothing left to build there.
        import tensorflow as tf

        if isinstance(self.distribute_strategy, tf.distribute.MultiWorkerMirroredStrategy) and self.built:
            return
        return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    # --------------------------------------------------------------- batches
    @staticmethod
    def split_batch(data):
        """``images`` / ``(images,)`` / ``(images, labels[, weights])`` -> ``(images, labels or None)``, as given."""
        if isinstance(data, (tuple, list)):
            if not 1 <= len(data) <= 3:
                raise ValueError(f"Expected `images` or `(images, labels)` from the dataset, got {len(data)} items.")
            return data[0], (data[1] if len(data) > 1 else None)
        return data, None

    def unpack_batch(self, data):
        """A batch -> ``(images (B, ...) float32 of this model's sample shape, labels (B,) int32 or None)``.

        Labels are required by a conditional model and dropped by an unconditional one; clear errors name a
        wrong sample shape, missing labels, or a label count that differs from the batch.
        """
        images, labels = self.split_batch(data)
        images = ops.cast(images, "float32")
        name = type(self).__name__
        if tuple(images.shape[1:]) != self.sample_shape:
            what = "images" if len(self.sample_shape) == 3 else "samples"
            raise ValueError(
                f"The data has samples of shape {tuple(images.shape[1:])}, but this {name} makes "
                f"{self.sample_shape} and takes {what} of shape {self.sample_shape} only. Resize the data or build "
                "the networks for that shape."
            )
        if self.num_classes is None:
            return images, None
        if labels is None:
            raise ValueError(
                f"This {name} is conditional (num_classes={self.num_classes}): the data must be (images, labels)."
            )
        labels = ops.cast(ops.reshape(labels, (-1,)), "int32")
        batch = images.shape[0]
        if batch is not None and labels.shape[0] is not None and labels.shape[0] != batch:
            raise ValueError(f"Got {labels.shape[0]} labels for a batch of {batch} images: one label per image.")
        return images, labels

    # --------------------------------------------------------------- sampling
    @property
    def latent_shape(self):
        """The shape of one latent: ``(latent_dim,)`` or a spatial shape."""
        dim = self.latent_dim
        return tuple(dim) if isinstance(dim, (tuple, list)) else (int(dim),)

    def latent_parts(self):
        """The `LatentPart` s of this model's latent: one standard normal ``z`` of ``latent_shape`` by default."""
        return LatentSpec.normal(self.latent_shape).parts

    @property
    def latent_spec(self):
        """The model's inputs (`keras_gen.latent_spec.LatentSpec`): `latent_parts`, and a ``label`` condition
        when the model is conditional."""
        conditions = () if self.num_classes is None else (Condition("label", "label", num_classes=self.num_classes),)
        return LatentSpec(self.latent_parts(), conditions)

    def sample_latent(self, n, seed=None):
        """``n`` latents from the prior as the network takes them, shape ``(n, *latent_shape)``.

        The parts are drawn by `latent_spec` (`LatentSpec.sample`, then `LatentSpec.network_input`). With an
        integer ``seed`` the draw is deterministic (a one-part normal latent: `keras_gen.rng.normal` with seed
        ``[seed, 0]``), the same draw an exported ``sample(n, seed)`` signature makes, with or without XLA; with
        ``None`` it advances the model's own seed generator.
        """
        n = check_count(n)
        return self.latent_spec.sample_network_input(n, self.seed_generator if seed is None else int(seed))

    def check_labels(self, labels, n):
        """Validates labels for ``n`` samples (default: ``0, 1, ..., K-1, 0, 1, ...``); returns int32 ``(n,)``
        NumPy, or None for an unconditional model."""
        if self.num_classes is None:
            if labels is not None:
                raise ValueError(f"{type(self).__name__} is unconditional: `labels` must be None.")
            return None
        if labels is None:
            return (np.arange(n) % self.num_classes).astype("int32")
        labels = np.asarray(labels)
        if labels.ndim == 0:
            labels = np.full((n,), labels)
        labels = labels.reshape(-1)
        if labels.shape[0] != n:
            raise ValueError(f"Got {labels.shape[0]} labels for {n} samples: one label per sample.")
        if not np.issubdtype(labels.dtype, np.integer):
            raise TypeError(f"Labels must be integers, got dtype {labels.dtype}.")
        bad = labels[(labels < 0) | (labels >= self.num_classes)]
        if bad.size:
            raise ValueError(f"Labels must be in [0, {self.num_classes}); got {sorted(set(bad.tolist()))[:5]}.")
        return labels.astype("int32")

    def decode_latent(self, z, labels=None):
        """Inference-mode samples from latents (a tensor). Subclasses implement it."""
        raise NotImplementedError

    def inference_networks(self):
        """``{role: network}``: the networks `decode_latent` runs, whose weights an export holds. By default every
        functional network the model keeps as an attribute (a GAN's generator and discriminator alike); a model
        overrides it to leave out what sampling never runs."""
        return {name: value for name, value in vars(self).items()
                if isinstance(value, keras.Model) and getattr(value, "inputs", None)}

    def generate(self, n, labels=None, seed=None, batch_size=256):
        """Draws ``n`` samples.

        Args:
            n: number of samples.
            labels: class labels for a conditional model: an int (all the same class) or ``n`` ints; default
                cycles through the classes.
            seed: an int makes the result deterministic (see `sample_latent`).
            batch_size: samples per network call.

        Returns:
            A NumPy float32 array ``(n, *sample_shape)``; images are in [-1, 1].
        """
        labels = self.check_labels(labels, check_count(n))
        z = self.sample_latent(n, seed)
        return self.generate_from_latent(z, labels, batch_size=batch_size)

    def generate_from_latent(self, z, labels=None, batch_size=256):
        """Runs `decode_latent` in batches on given latents ``(n, *latent_shape)``; returns NumPy float32."""
        z = ops.convert_to_tensor(z)
        if tuple(z.shape[1:]) != self.latent_shape:
            expected = ", ".join(map(str, self.latent_shape))
            raise ValueError(f"`z` must have shape (n, {expected}), got {tuple(z.shape)}.")
        n = int(z.shape[0])
        labels = self.check_labels(labels, n)
        outputs = []
        for start in range(0, n, batch_size):
            chunk = z[start : start + batch_size]
            chunk_labels = None if labels is None else ops.convert_to_tensor(labels[start : start + batch_size])
            outputs.append(ops.convert_to_numpy(self.decode_latent(chunk, chunk_labels)))
        return np.concatenate(outputs, axis=0).astype("float32")
