"""`VAE`: a variational autoencoder (plain, β-VAE, conditional) trained on the negative ELBO with `model.fit`."""

import copy
import math

import keras
import numpy as np
from keras import ops

from keras_gen import checks, rng
from keras_gen import losses as losses_lib
from keras_gen.models.base import GenerativeModel, apply_gradients, prepare_optimizer, scaled_loss

__all__ = ["VAE", "LIKELIHOODS"]

LIKELIHOODS = ("bernoulli", "gaussian")
"""The decoder's observation models: Bernoulli logits or Gaussian means with a fixed ``sigma``."""


@keras.saving.register_keras_serializable(package="keras_gen")
class VAE(GenerativeModel):
    """A variational autoencoder (Kingma & Welling 2014, https://arxiv.org/abs/1312.6114), optionally a β-VAE
    (Higgins et al. 2017, https://openreview.net/forum?id=Sy2fzU9gl) or a conditional VAE (Sohn et al. 2015,
    https://papers.nips.cc/paper/5775).

    The encoder gives ``q(z|x[, y]) = N(mu, diag(sigma^2))``; ``z = mu + sigma * eps`` with ``eps ~ N(0, I)``
    (the reparameterization trick, so the reconstruction term's gradient reaches the encoder); the decoder gives
    ``p(x|z[, y])``. Training minimises, per sample and averaged over the batch,

        loss = -E_q[log p(x|z)] + beta * KL(q(z|x) || N(0, I))            # = -ELBO when beta = 1

    with the KL in closed form (`keras_gen.losses.gaussian_kl`) and the expectation estimated with one ``z``.
    Logged: ``loss``, ``reconstruction`` (the first term) and ``kl`` (unweighted), all in nats per sample.

    Likelihoods, for images in [-1, 1] (the package's convention):

    - ``"bernoulli"``: the decoder outputs logits; the targets are the pixels mapped to [0, 1], ``(x + 1) / 2``.
      On grey-level images this is the usual cross-entropy, not a normalized likelihood ("continuous
      Bernoulli"-style targets); on binarized images (``x`` in {-1, 1}) it is the exact Bernoulli likelihood,
      which is what `keras_gen.metrics.elbo` / `iw_nll` evaluate. Decoded images are ``2 sigmoid(logits) - 1``.
    - ``"gaussian"``: the decoder outputs means in [-1, 1] pixel units and ``p(x|z) = N(mean, sigma^2 I)`` with
      the fixed ``sigma``. Decoded images are the means clipped to [-1, 1].

    Data is ``images`` or ``(images, labels)``; with ``num_classes`` the model is conditional: the encoder takes
    ``[images, label]``, the decoder ``[z, label]``, and the labels are required.

    The objective lives in `compute_loss` (the Keras habit for VAEs); `train_step` only routes the labels,
    which Keras's default step would pass as targets ``y``, and applies one optimizer to all the weights. Use the
    standard ``compile(optimizer=...)`` (default ``Adam(1e-3)``); under ``mixed_float16`` the optimizer is
    wrapped in a `keras.optimizers.LossScaleOptimizer`.

    Args:
        encoder: a Keras model mapping ``images`` (or ``[images, label]``) to ``[z_mean, z_log_var]`` (two
            outputs of shape ``(B, d)``) or to one output ``(B, 2 d)``, their concatenation.
        decoder: a Keras model mapping ``z`` (or ``[z, label]``) to a tensor shaped like the images: logits
            (Bernoulli) or means (Gaussian).
        likelihood: ``"bernoulli"`` or ``"gaussian"``.
        beta: weight of the KL term (1: the ELBO; > 1: a β-VAE).
        sigma: the fixed standard deviation of the Gaussian likelihood, in [-1, 1] pixel units (Gaussian only).
        num_classes: number of classes of a conditional VAE; ``None`` for an unconditional one.
        seed: seed of the model's `SeedGenerator` (the ``eps`` of training steps).

    Example:
        >>> from keras_gen.networks import mlp_encoder, mlp_decoder
        >>> vae = VAE(mlp_encoder((28, 28, 1), latent_dim=20), mlp_decoder(20, (28, 28, 1)), seed=0)
        >>> vae.compile(optimizer=keras.optimizers.Adam(1e-3))
        >>> vae.fit(images_dataset, epochs=10)  # doctest: +SKIP
        >>> samples = vae.generate(16, seed=0)  # (16, 28, 28, 1) in [-1, 1]
        >>> mean, log_var = vae.encode(images)  # (n, 20) each
        >>> recon = vae.reconstruct(images)  # (n, 28, 28, 1)
    """

    def __init__(
        self,
        encoder,
        decoder,
        likelihood="bernoulli",
        beta=1.0,
        sigma=0.1,
        num_classes=None,
        seed=None,
        **kwargs,
    ):
        super().__init__(seed=seed, **kwargs)
        if not isinstance(encoder, keras.Model) or not isinstance(decoder, keras.Model):
            raise TypeError(
                "`encoder` and `decoder` must be keras.Model instances; got "
                f"{type(encoder).__name__} and {type(decoder).__name__}."
            )
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"Unknown likelihood {likelihood!r}. Valid: {', '.join(map(repr, LIKELIHOODS))}.")
        if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not math.isfinite(beta) or beta < 0:
            raise ValueError(f"`beta` must be a finite number >= 0, got {beta!r}.")
        if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not math.isfinite(sigma) or sigma <= 0:
            raise ValueError(f"`sigma` must be a finite number > 0, got {sigma!r}.")
        if num_classes is not None and (isinstance(num_classes, bool) or int(num_classes) != num_classes
                                        or num_classes < 1):
            raise ValueError(f"`num_classes` must be a positive integer or None, got {num_classes!r}.")
        expected = 1 if num_classes is None else 2
        for role, net, first in (("encoder", encoder, "images"), ("decoder", decoder, "z")):
            if len(net.inputs) != expected:
                raise ValueError(
                    f"The {role} takes {len(net.inputs)} input(s), but a VAE with num_classes={num_classes!r} "
                    f"needs {expected} ({first}{'' if num_classes is None else ', label'})."
                )
        self.latent_dim = self._check_encoder_outputs(encoder)
        decoder_z = tuple(decoder.inputs[0].shape[1:])
        if decoder_z != (self.latent_dim,):
            raise ValueError(
                f"The encoder gives latents of size {self.latent_dim}, but the decoder takes z of shape {decoder_z}."
            )
        image_shape = tuple(encoder.inputs[0].shape[1:])
        decoded_shape = tuple(decoder.outputs[0].shape[1:]) if len(decoder.outputs) == 1 else None
        if decoded_shape != image_shape:
            raise ValueError(
                f"The decoder must output one tensor shaped like the encoder's input images {image_shape}; "
                f"it outputs {[tuple(o.shape[1:]) for o in decoder.outputs]}."
            )
        if any(s is None for s in image_shape):
            raise ValueError(f"The encoder's input shape must be fully known, got {image_shape}.")
        self.encoder = encoder
        self.decoder = decoder
        self.likelihood = likelihood
        self.beta = float(beta)
        self.sigma = float(sigma)
        self.num_classes = None if num_classes is None else int(num_classes)
        self.sample_shape = tuple(int(s) for s in image_shape)

        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction")
        self.kl_tracker = keras.metrics.Mean(name="kl")
        # The networks are functional (built on construction); the VAE itself owns no weights.
        self.built = True

    @staticmethod
    def _check_encoder_outputs(encoder):
        shapes = [tuple(o.shape[1:]) for o in encoder.outputs]
        if len(shapes) == 2 and shapes[0] == shapes[1] and len(shapes[0]) == 1 and shapes[0][0]:
            return int(shapes[0][0])
        if len(shapes) == 1 and len(shapes[0]) == 1 and shapes[0][0] and shapes[0][0] % 2 == 0:
            return int(shapes[0][0]) // 2
        raise ValueError(
            "The encoder must output [z_mean, z_log_var] (two tensors (B, d)) or their concatenation (B, 2 d); "
            f"it outputs shapes {shapes}."
        )

    # ------------------------------------------------------------------ compile / serialization
    def compile(self, optimizer=None, loss_scale="auto", **kwargs):
        """Configures training with one optimizer for the encoder and decoder together.

        Args:
            optimizer: name, config or instance; default ``Adam(1e-3)``.
            loss_scale: ``"auto"`` wraps the optimizer in a `LossScaleOptimizer` when a network computes in
                float16 (under ``mixed_float16``); ``True`` always, ``False`` never (as for every model here).
            **kwargs: passed to `keras.Model.compile` (``jit_compile``, ``steps_per_execution``,
                ``run_eagerly``). ``loss`` and ``metrics`` are not accepted: the VAE owns its objective.
        """
        for key in ("loss", "metrics", "weighted_metrics", "loss_weights"):
            if kwargs.get(key) is not None:
                raise TypeError(f"VAE.compile() takes no `{key}`: the objective is the (beta-weighted) negative ELBO.")
            kwargs.pop(key, None)
        kwargs.pop("auto_scale_loss", None)  # the loss is scaled here (`scaled_loss`), not by Keras
        optimizer = prepare_optimizer(optimizer, [self.encoder, self.decoder], loss_scale)
        super().compile(optimizer=optimizer, auto_scale_loss=False, **kwargs)
        # Build the optimizer now: resuming and load_weights need its variables before fit.
        self.optimizer.build(self.trainable_variables)

    def compile_from_config(self, config):
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)

    def get_config(self):
        config = super().get_config()
        config.update(
            encoder=keras.layers.serialize(self.encoder),
            decoder=keras.layers.serialize(self.decoder),
            likelihood=self.likelihood,
            beta=self.beta,
            sigma=self.sigma,
            num_classes=self.num_classes,
            seed=self.seed,
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = copy.deepcopy(config)  # deserialization consumes the nested dicts
        config["encoder"] = keras.layers.deserialize(config["encoder"])
        config["decoder"] = keras.layers.deserialize(config["decoder"])
        return cls(**config)

    @property
    def operations(self):
        """Sampling and a continuous latent space, and encoding / reconstructing images."""
        return super().operations | {"latent_space", "encode", "reconstruct"}

    # ------------------------------------------------------------------ the networks, as tensors
    def _inputs(self, x, labels):
        return x if labels is None else [x, labels]

    def posterior(self, images, labels=None, training=False):
        """``(mean, log_var)`` of ``q(z|x[, y])`` as float32 tensors ``(B, latent_dim)`` (tensors in, no checks)."""
        outputs = self.encoder(self._inputs(images, labels), training=training)
        if isinstance(outputs, (list, tuple)):
            mean, log_var = outputs
        else:
            mean, log_var = outputs[:, : self.latent_dim], outputs[:, self.latent_dim :]
        return ops.cast(mean, "float32"), ops.cast(log_var, "float32")

    def reparameterize(self, mean, log_var, seed=None):
        """``z = mean + exp(log_var / 2) * eps``, ``eps ~ N(0, I)`` drawn with `keras_gen.rng.normal` from
        ``seed`` (default: the model's seed generator, advanced by one)."""
        eps = rng.normal(ops.shape(mean), self.seed_generator if seed is None else seed)
        return mean + ops.exp(0.5 * log_var) * eps

    def log_likelihood(self, images, z, labels=None, training=False):
        """``log p(x|z[, y])`` per sample, in nats: a float32 tensor ``(B,)`` (tensors in, no checks).

        Bernoulli: the targets are ``(images + 1) / 2``; exact for binarized images in {-1, 1}.
        Gaussian: ``N(images; decoder mean, sigma^2 I)``, a density in [-1, 1] pixel units.
        """
        decoded = ops.cast(self.decoder(self._inputs(z, labels), training=training), "float32")
        images = ops.cast(images, "float32")
        if self.likelihood == "bernoulli":
            return losses_lib.bernoulli_log_likelihood((images + 1.0) / 2.0, decoded)
        return losses_lib.gaussian_log_likelihood(images, decoded, sigma=self.sigma)

    def decode_latent(self, z, labels=None):
        """Images in [-1, 1] from latents (inference mode): ``2 sigmoid(logits) - 1`` (Bernoulli, the mean of
        p(x|z) mapped back) or the clipped means (Gaussian)."""
        decoded = ops.cast(self.decoder(self._inputs(z, labels), training=False), "float32")
        if self.likelihood == "bernoulli":
            return 2.0 * ops.sigmoid(decoded) - 1.0
        return ops.clip(decoded, -1.0, 1.0)

    def call(self, inputs, training=False):
        """Reconstructs ``images`` (or ``[images, labels]``) from the posterior mean: images in [-1, 1]."""
        images, labels = (inputs[0], inputs[1]) if isinstance(inputs, (list, tuple)) else (inputs, None)
        mean, _ = self.posterior(images, labels, training=training)
        return self.decode_latent(mean, labels)

    # ------------------------------------------------------------------ training
    @property
    def metrics(self):
        return [self.loss_tracker, self.reconstruction_tracker, self.kl_tracker]

    def elbo_terms(self, images, labels=None, training=False, seed=None):
        """One-sample estimates of the ELBO's terms, per sample: ``(reconstruction, kl)``, float32 ``(B,)``.

        ``reconstruction = -log p(x|z)`` with ``z ~ q(z|x)`` reparameterized; ``kl = KL(q(z|x) || N(0, I))`` in
        closed form. ``ELBO = -(reconstruction + kl)``. Tensors in, no checks.
        """
        mean, log_var = self.posterior(images, labels, training=training)  # (B, d) each
        z = self.reparameterize(mean, log_var, seed=seed)  # (B, d)
        reconstruction = -self.log_likelihood(images, z, labels, training=training)  # (B,)
        kl = losses_lib.gaussian_kl(mean, log_var)  # (B,)
        return reconstruction, kl

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The batch mean of ``-log p(x|z) + beta * KL``; updates the ``loss``, ``reconstruction`` and ``kl``
        trackers (the Keras `compute_loss` convention).

        Args:
            x: images ``(B, *sample_shape)``.
            y: labels ``(B,)`` for a conditional VAE (ignored by an unconditional one).
            y_pred: unused (the VAE runs its own forward pass, it needs a fresh ``z``).
            sample_weight: unused.
            training: passed to the networks.
        """
        del y_pred, sample_weight
        images, labels = self.unpack_batch((x, y))
        reconstruction, kl = self.elbo_terms(images, labels, training=training)
        reconstruction, kl = ops.mean(reconstruction), ops.mean(kl)
        loss = reconstruction + self.beta * kl
        self.loss_tracker.update_state(loss)
        self.reconstruction_tracker.update_state(reconstruction)
        self.kl_tracker.update_state(kl)
        return loss

    def _unpack(self, data):
        """``images`` / ``(images,)`` / ``(images, labels[, weights])`` -> ``(images, labels)``."""
        return self.split_batch(data)

    def _elbo_step(self, data):
        import tensorflow as tf

        images, labels = self._unpack(data)
        with tf.GradientTape() as tape:
            loss = self._compute_loss(x=images, y=labels, training=True)
            scaled = scaled_loss(self.optimizer, loss)
        apply_gradients(self.optimizer, scaled, tape, self.trainable_variables)
        return {m.name: m.result() for m in self.metrics}

    def _check_compiled(self):
        if getattr(self, "optimizer", None) is None:
            raise RuntimeError("Call `vae.compile(optimizer=...)` before training.")

    def train_step(self, data):
        """One optimizer step on the batch's loss (`compute_loss`), for encoder and decoder together."""
        self._check_compiled()
        return self._elbo_step(data)

    def test_step(self, data):
        """The loss and its terms on a batch (a fresh ``z`` per sample), without updates."""
        images, labels = self._unpack(data)
        self._compute_loss(x=images, y=labels, training=False)
        return {m.name: m.result() for m in self.metrics}

    def training_phases(self):
        """The update phases of one `train_step`, for inspection and tests: a single ``"elbo"`` phase.

        Returns:
            ``[("elbo", run(data), variables)]``: ``run`` makes one optimizer step on a batch, changing the
            encoder's and the decoder's trainable variables.
        """
        self._check_compiled()
        return [("elbo", self._elbo_step, self.trainable_variables)]

    # ------------------------------------------------------------------ NumPy interface
    def _check_numpy_images(self, images):
        images = np.asarray(images)
        if images.ndim == len(self.sample_shape):
            images = images[None]
        if images.ndim != len(self.sample_shape) + 1 or tuple(images.shape[1:]) != self.sample_shape:
            raise ValueError(
                f"Expected images of shape (n, {', '.join(map(str, self.sample_shape))}), got {images.shape}."
            )
        if not np.issubdtype(images.dtype, np.number):
            raise TypeError(f"Images must be numeric (floats in [-1, 1]), got dtype {images.dtype}.")
        if images.shape[0] == 0:
            raise ValueError("Got no images (a batch of size 0).")
        return images.astype("float32")

    def check_inputs(self, images, labels=None):
        """Validates images ``(n, *sample_shape)`` (or one image) and labels for them: ``(images float32,
        labels int32 or None)`` as NumPy. A conditional VAE needs the labels of the images."""
        images = self._check_numpy_images(images)
        if self.num_classes is not None and labels is None:
            raise ValueError(
                f"This VAE is conditional (num_classes={self.num_classes}): pass the images' `labels`."
            )
        return images, self.check_labels(labels, images.shape[0])

    def _batched(self, fn, images, labels, batch_size):
        batch_size = checks.integer(batch_size, "batch_size", 1)
        outputs = []
        for start in range(0, images.shape[0], batch_size):
            x = ops.convert_to_tensor(images[start : start + batch_size])
            y = None if labels is None else ops.convert_to_tensor(labels[start : start + batch_size])
            outputs.append(tuple(np.asarray(ops.convert_to_numpy(t)) for t in fn(x, y)))
        return tuple(np.concatenate(parts, axis=0).astype("float32") for parts in zip(*outputs))

    def encode(self, images, labels=None, batch_size=256):
        """The posterior ``q(z|x[, y])``: NumPy ``(mean, log_var)``, each float32 ``(n, latent_dim)``.

        Args:
            images: ``(n, *sample_shape)`` in [-1, 1].
            labels: the images' classes (required for a conditional VAE): an int or ``n`` ints.
            batch_size: images per network call.
        """
        images, labels = self.check_inputs(images, labels)
        return self._batched(lambda x, y: self.posterior(x, y), images, labels, batch_size)

    def decode(self, z, labels=None, batch_size=256):
        """Images in [-1, 1] (NumPy float32 ``(n, *sample_shape)``) from latents ``(n, latent_dim)``; labels as in
        `generate` (default: cycling through the classes). Same as `generate_from_latent`."""
        return self.generate_from_latent(z, labels, batch_size=checks.integer(batch_size, "batch_size", 1))

    def reconstruct(self, images, labels=None, batch_size=256):
        """Decodes the posterior mean of each image: NumPy float32 ``(n, *sample_shape)`` in [-1, 1].

        Args:
            images: ``(n, *sample_shape)`` in [-1, 1].
            labels: the images' classes (required for a conditional VAE).
            batch_size: images per network call.
        """
        images, labels = self.check_inputs(images, labels)

        def run(x, y):
            mean, _ = self.posterior(x, y)
            return (self.decode_latent(mean, y),)

        return self._batched(run, images, labels, batch_size)[0]
