"""`PixelCNN`: an autoregressive model of categorical pixels with an exact likelihood, trained with `model.fit`."""

import copy

import keras
import numpy as np
from keras import ops

from keras_gen.latent_spec import LatentSpec
from keras_gen.models.base import GenerativeModel, apply_gradients, check_count, prepare_optimizer, scaled_loss
from keras_gen.networks.pixel_cnn import GatedActivation, MaskedConv2D

__all__ = ["PixelCNN"]

_LOG_2 = float(np.log(2.0))


@keras.saving.register_keras_serializable(package="keras_gen")
class PixelCNN(GenerativeModel):
    """PixelCNN (van den Oord et al. 2016, https://arxiv.org/abs/1601.06759; gated and class-conditional:
    https://arxiv.org/abs/1606.05328) over ``H x W`` maps of pixels with ``L`` categorical values.

    The likelihood is exact: ``log p(x | y) = sum_i log softmax(f(x_<i, y))_i[x_i]`` in nats, and training
    minimises its negative per pixel (softmax cross-entropy), ``loss = -log p(x | y) / (H W)``.

    **Data.** A batch is ``x``, ``(x,)`` or ``(x, labels)``, where ``x`` is either

    - integer level maps ``(B, H, W)`` or ``(B, H, W, 1)`` with values in ``[0, L)`` (e.g. VQ-VAE codes), or
    - float images ``(B, H, W, 1)`` in [-1, 1], quantized into ``L`` equal bins:
      ``level = clip(floor((x + 1) / 2 * L), 0, L - 1)``. With ``L = 2`` this **binarizes at 0**: a pixel is 1
      when ``x >= 0`` (an MNIST grey level >= 128 of 255), else 0. With ``L = 256`` it recovers 8-bit levels.

    Generated images map level ``l`` back to ``2 l / (L - 1) - 1``: with ``L = 2``, 0 -> -1 and 1 -> 1.

    **Sampling** is a compiled loop (`tf.function` around a `tf.while_loop`) that runs the network once per
    pixel in raster order (on the band of rows that pixel can see, `receptive_rows`, which gives the same
    logits as the whole image) and writes one pixel per step by the Gumbel-max trick,
    ``x_i = argmax_l (logits_i[l] + g_i[l])`` with ``g = -log(-log u)``. The uniform noise ``u`` of shape
    ``(H, W, L)`` is this model's **latent**: `sample_latent` draws it with `keras_gen.rng` (so
    ``generate(n, seed=s)`` is deterministic), and `decode_latent(u)` is the deterministic sampling loop.

    Args:
        network: a `keras_gen.networks.pixel_cnn` model: one-hot ``(B, H, W, L)`` (and ``label``) -> logits
            ``(B, H, W, L)``.
        num_classes: classes of a conditional network (which then takes a ``label`` input); ``None`` otherwise.
        seed: seed of the model's `SeedGenerator`.

    Example:
        >>> from keras_gen.networks import pixel_cnn
        >>> model = PixelCNN(pixel_cnn((28, 28), num_levels=2, width=32, num_blocks=4), seed=0)
        >>> model.compile(optimizer=keras.optimizers.Adam(1e-3))
        >>> model.fit(mnist_images, epochs=5)  # doctest: +SKIP   (binarized at 0 on the fly)
        >>> model.log_prob(test_images)        # (n,) exact log-likelihoods in nats
        >>> images = model.generate(16, seed=0)  # (16, 28, 28, 1) in {-1, 1}
    """

    def __init__(self, network, num_classes=None, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        if not isinstance(network, keras.Model):
            raise TypeError(f"`network` must be a keras.Model, got {type(network).__name__}.")
        expected_inputs = 1 if num_classes is None else 2
        if len(network.inputs) != expected_inputs:
            raise ValueError(
                f"The network takes {len(network.inputs)} input(s), but a PixelCNN with num_classes={num_classes!r} "
                f"needs {expected_inputs} (one-hot pixels{'' if num_classes is None else ', label'})."
            )
        in_shape = tuple(network.inputs[0].shape[1:])
        out_shape = tuple(network.outputs[0].shape[1:])
        if len(in_shape) != 3 or in_shape != out_shape or None in in_shape:
            raise ValueError(
                f"The network must map one-hot maps (H, W, L) to logits of the same shape; got {in_shape} -> "
                f"{out_shape}."
            )
        self.network = network
        self.num_classes = None if num_classes is None else int(num_classes)
        self.image_size = (int(in_shape[0]), int(in_shape[1]))
        self.num_levels = int(in_shape[2])
        self.latent_dim = (self.image_size[0], self.image_size[1], self.num_levels)
        self.sample_shape = (self.image_size[0], self.image_size[1], 1)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.nll_tracker = keras.metrics.Mean(name="nll")
        self._samplers = {}
        self.built = True

    # ------------------------------------------------------------------ compile / serialization
    def compile(self, optimizer=None, loss_scale="auto", **kwargs):
        """Configures training.

        Args:
            optimizer: name, config or instance; default ``Adam(1e-3)``.
            loss_scale: ``"auto"`` wraps the optimizer in a `LossScaleOptimizer` when the network computes in
                float16; ``True`` always, ``False`` never.
            **kwargs: passed to `keras.Model.compile` (``jit_compile``, ``steps_per_execution``,
                ``run_eagerly``); ``loss`` and ``metrics`` are not accepted (the model owns them).
        """
        for key in ("loss", "metrics"):
            if key in kwargs:
                raise TypeError(f"PixelCNN.compile() takes no `{key}`: the model owns its loss and metrics.")
        optimizer = prepare_optimizer(optimizer, [self.network], loss_scale)
        super().compile(optimizer=optimizer, auto_scale_loss=False, **kwargs)
        self.optimizer.build(self.network.trainable_variables)

    def get_compile_config(self):
        if getattr(self, "optimizer", None) is None:
            return None
        return {"optimizer": keras.saving.serialize_keras_object(self.optimizer)}

    def compile_from_config(self, config):
        self.compile(optimizer=keras.saving.deserialize_keras_object(config["optimizer"]), loss_scale=False)

    def get_config(self):
        config = super().get_config()
        config.update(network=keras.layers.serialize(self.network), num_classes=self.num_classes, seed=self.seed)
        return config

    @classmethod
    def from_config(cls, config):
        config = copy.deepcopy(config)
        config["network"] = keras.layers.deserialize(config["network"])
        return cls(**config)

    # ------------------------------------------------------------------ data
    def to_levels(self, x):
        """Pixel values -> integer levels ``(B, H, W)`` int32 (see the class docstring for the binarization)."""
        x = ops.convert_to_tensor(x)
        if len(x.shape) == 4:
            if x.shape[-1] != 1:
                raise ValueError(f"PixelCNN models one value per pixel; got {x.shape[-1]} channels ({tuple(x.shape)}).")
            x = x[..., 0]
        if len(x.shape) != 3 or tuple(x.shape[1:]) != self.image_size:
            raise ValueError(
                f"Expected maps (B, {self.image_size[0]}, {self.image_size[1]}) or images "
                f"(B, {self.image_size[0]}, {self.image_size[1]}, 1); got {tuple(x.shape)}."
            )
        if "int" in str(x.dtype):
            return ops.cast(x, "int32")
        levels = ops.floor((ops.cast(x, "float32") + 1.0) * (0.5 * self.num_levels))
        return ops.cast(ops.clip(levels, 0, self.num_levels - 1), "int32")

    def levels_to_images(self, levels):
        """Integer levels ``(B, H, W)`` -> images ``(B, H, W, 1)`` float32 in [-1, 1]: ``2 l / (L - 1) - 1``."""
        levels = ops.cast(levels, "float32")
        return (levels * (2.0 / (self.num_levels - 1)) - 1.0)[..., None]

    def _unpack(self, data):
        """A batch -> (levels (B, H, W) int32, labels (B,) int32 or None)."""
        labels = None
        if isinstance(data, (tuple, list)):
            if not 1 <= len(data) <= 3:
                raise ValueError(f"Expected `x` or `(x, labels)` from the dataset, got {len(data)} items.")
            x = data[0]
            labels = data[1] if len(data) > 1 else None
        else:
            x = data
        return self.to_levels(x), self._labels(labels, required=True)

    def _labels(self, labels, required=False):
        if self.num_classes is None:
            return None
        if labels is None:
            if required:
                raise ValueError(f"This PixelCNN is conditional (num_classes={self.num_classes}): pass labels.")
            return None
        return ops.cast(ops.reshape(labels, (-1,)), "int32")

    # ------------------------------------------------------------------ likelihood
    def logits(self, levels, labels=None, training=False):
        """The network's logits ``(B, H, W, L)`` float32 on integer levels ``(B, H, W)``."""
        one_hot = ops.one_hot(ops.cast(levels, "int32"), self.num_levels, dtype="float32")  # (B, H, W, L)
        inputs = one_hot if self.num_classes is None else [one_hot, labels]
        return ops.cast(self.network(inputs, training=training), "float32")

    def nll_of_levels(self, levels, labels=None, training=False):
        """``-log p(levels | labels)`` per sample in nats, ``(B,)`` float32 (a tensor; differentiable)."""
        logits = self.logits(levels, labels, training=training)  # (B, H, W, L)
        log_probs = logits - ops.logsumexp(logits, axis=-1, keepdims=True)
        picked = ops.sum(log_probs * ops.one_hot(ops.cast(levels, "int32"), self.num_levels, dtype="float32"), axis=-1)
        return -ops.sum(picked, axis=(1, 2))  # (B,)

    def log_prob(self, x, labels=None, batch_size=256):
        """Exact ``log p(x | labels)`` per sample in nats.

        Args:
            x: float images ``(n, H, W, 1)`` in [-1, 1] (quantized as in the class docstring) or integer level
                maps ``(n, H, W)``.
            labels: ``(n,)`` ints for a conditional model.
            batch_size: samples per network call.

        Returns:
            NumPy float64 ``(n,)``. Bits per dimension: ``-log_prob / (H * W * log 2)``.
        """
        x = np.asarray(x)
        n = check_count(int(x.shape[0]))
        if self.num_classes is not None:
            if labels is None:
                raise ValueError(f"This PixelCNN is conditional (num_classes={self.num_classes}): pass labels.")
            labels = self.check_labels(labels, n)
        elif labels is not None:
            raise ValueError("This PixelCNN is unconditional: `labels` must be None.")
        out = []
        for start in range(0, n, batch_size):
            levels = self.to_levels(x[start : start + batch_size])
            chunk = None if labels is None else ops.convert_to_tensor(labels[start : start + batch_size])
            out.append(-ops.convert_to_numpy(self.nll_of_levels(levels, chunk)).astype("float64"))
        return np.concatenate(out)

    # ------------------------------------------------------------------ training
    @property
    def metrics(self):
        return [self.loss_tracker, self.nll_tracker]

    def call(self, inputs, training=False):
        """Logits ``(B, H, W, L)`` of ``x`` (or ``[x, labels]``), ``x`` as in the class docstring."""
        x, labels = (inputs[0], inputs[1]) if isinstance(inputs, (list, tuple)) else (inputs, None)
        return self.logits(self.to_levels(x), self._labels(labels, required=True), training=training)

    def _check_compiled(self):
        if getattr(self, "optimizer", None) is None:
            raise RuntimeError("Call `model.compile(optimizer=...)` before training.")

    def _step(self, levels, labels):
        import tensorflow as tf

        with tf.GradientTape() as tape:
            nll = self.nll_of_levels(levels, labels, training=True)  # (B,)
            loss = ops.mean(nll) / float(self.image_size[0] * self.image_size[1])
            scaled = scaled_loss(self.optimizer, loss)
        apply_gradients(self.optimizer, scaled, tape, self.network.trainable_variables)
        return loss, nll

    def train_step(self, data):
        self._check_compiled()
        levels, labels = self._unpack(data)
        loss, nll = self._step(levels, labels)
        return self._update_trackers(loss, nll)

    def test_step(self, data):
        levels, labels = self._unpack(data)
        nll = self.nll_of_levels(levels, labels, training=False)
        loss = ops.mean(nll) / float(self.image_size[0] * self.image_size[1])
        return self._update_trackers(loss, nll)

    def _update_trackers(self, loss, nll):
        self.loss_tracker.update_state(loss)
        self.nll_tracker.update_state(ops.mean(nll))
        return {m.name: m.result() for m in self.metrics}

    def training_phases(self):
        """One phase: the network's update. ``[(name, run(data), variables)]`` (see `GAN.training_phases`)."""
        self._check_compiled()

        def phase(data):
            levels, labels = self._unpack(data)
            return self._step(levels, labels)

        return [("pixel_cnn", phase, self.network.trainable_variables)]

    # ------------------------------------------------------------------ sampling
    def latent_parts(self):
        """Uniform noise ``(H, W, L)`` in (0, 1): the Gumbel-max noise of `sample_levels`, drawn by
        `sample_latent` (`keras_gen.rng.uniform` with seed ``[seed, 0]`` for an integer seed)."""
        return LatentSpec.uniform(self.latent_shape).parts

    def receptive_rows(self):
        """How many rows above a pixel its logits can see: the sum of ``k // 2`` over the masked convolutions.

        ``None`` when the network holds a layer that is not known to be pointwise or masked (then sampling
        runs the network on whole images).
        """
        pointwise = (keras.layers.InputLayer, keras.layers.Add, keras.layers.Activation, keras.layers.Embedding,
                     GatedActivation)
        rows = 0
        for layer in self.network._flatten_layers(include_self=False):
            if isinstance(layer, MaskedConv2D):
                rows += layer.kernel_size[0] // 2
            elif isinstance(layer, keras.layers.Conv2D) and tuple(layer.kernel_size) == (1, 1):
                continue
            elif not isinstance(layer, pointwise):
                return None
        return rows

    def _sampler(self, conditional):
        """The compiled sampling loop (built once per conditioning)."""
        import tensorflow as tf

        if conditional in self._samplers:
            return self._samplers[conditional]
        height, width = self.image_size
        size = height * width
        # The logits of row r depend only on rows r - R .. r (R = receptive_rows), so each step runs the network
        # on a band of R + 1 rows that ends at r (or starts at the top): exactly the logits of the whole image
        # at row r (the band's top padding lies outside row r's receptive field, rows below are masked), at a
        # fraction of the cost. `network.call` skips the input-shape check of the full-image network.
        rows = self.receptive_rows()
        band = height if rows is None else min(height, rows + 1)

        def band_logits(levels, top, labels):
            one_hot = tf.one_hot(levels[:, top : top + band], self.num_levels, dtype=tf.float32)  # (B, band, W, L)
            inputs = one_hot if labels is None else [one_hot, labels]
            if band == height:
                return tf.cast(self.network(inputs, training=False), tf.float32)
            return tf.cast(self.network.call(inputs, training=False), tf.float32)  # (B, band, W, L)

        def sample(noise, labels=None):
            # keras_gen.rng.uniform rounds its largest values to exactly 1.0 in float32 (p = 2**-24 per value),
            # where the Gumbel noise would be +inf: keep u below 1.
            u = tf.minimum(tf.cast(noise, tf.float32), 1.0 - 2.0**-24)
            gumbel = -tf.math.log(-tf.math.log(u))  # (B, H, W, L)
            levels = tf.zeros(tf.shape(noise)[:3], tf.int32)  # (B, H, W), filled in raster order

            def body(i, levels, labels=labels):  # labels bound here: autograph loses the closure
                row, col = i // width, i % width
                top = tf.maximum(row - (band - 1), 0)
                logits = band_logits(levels, top, labels)  # (B, band, W, L)
                choice = tf.argmax(
                    logits[:, row - top, col, :] + gumbel[:, row, col, :], axis=-1, output_type=tf.int32
                )
                here = tf.reshape(tf.one_hot(i, size, dtype=tf.int32), (1, height, width))  # 1 at pixel i
                return i + 1, levels + here * choice[:, None, None]  # pixel i was 0 until now

            _, levels = tf.while_loop(lambda i, _: i < size, body, (tf.constant(0), levels), parallel_iterations=1)
            return levels

        spec = [tf.TensorSpec((None, height, width, self.num_levels), tf.float32)]
        if conditional:
            spec.append(tf.TensorSpec((None,), tf.int32))
        self._samplers[conditional] = tf.function(sample, input_signature=spec)
        return self._samplers[conditional]

    def sample_levels(self, noise, labels=None):
        """Runs the compiled sampling loop on noise ``(B, H, W, L)``: integer levels ``(B, H, W)`` (a tensor).

        ``x_i = argmax_l(logits_i(x_<i)[l] - log(-log u_i[l]))``, pixel by pixel in raster order: a draw from
        ``p(x | labels)`` when ``u`` is uniform.
        """
        noise = ops.cast(ops.convert_to_tensor(noise), "float32")
        if tuple(noise.shape[1:]) != self.latent_shape:
            expected = ", ".join(map(str, self.latent_shape))
            raise ValueError(f"`noise` must have shape (n, {expected}), got {tuple(noise.shape)}.")
        if self.num_classes is None:
            return self._sampler(False)(noise)
        if labels is None:
            raise ValueError(f"This PixelCNN is conditional (num_classes={self.num_classes}): pass labels.")
        return self._sampler(True)(noise, ops.cast(ops.reshape(labels, (-1,)), "int32"))

    def decode_latent(self, z, labels=None):
        """Images ``(B, H, W, 1)`` in [-1, 1] sampled with the Gumbel-max noise ``z`` (see `sample_levels`)."""
        return self.levels_to_images(self.sample_levels(z, labels))
