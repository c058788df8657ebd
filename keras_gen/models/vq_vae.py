"""`VQVAE`: a vector-quantized autoencoder with a PixelCNN prior over its discrete codes."""

import copy

import keras
import numpy as np
from keras import ops

from keras_gen import losses as losses_lib
from keras_gen.latent_spec import LatentSpec
from keras_gen.models.base import GenerativeModel, apply_gradients, check_count, prepare_optimizer, scaled_loss
from keras_gen.models.pixel_cnn import PixelCNN
from keras_gen.networks.vq_vae import VectorQuantizer, codebook_perplexity, straight_through

__all__ = ["VQVAE"]

LIKELIHOODS = ("gaussian", "bernoulli")


@keras.saving.register_keras_serializable(package="keras_gen")
class VQVAE(GenerativeModel):
    """VQ-VAE (van den Oord et al. 2017, https://arxiv.org/abs/1711.00937) with a `PixelCNN` prior over its codes.

    Autoencoder (one `train_step`, one optimizer for encoder, decoder and codebook)::

        z_e = E(x)                                   # (B, h, w, D)
        k   = argmin_j ||z_e - e_j||^2               # (B, h, w) code indices
        z_q = e_k;  x_hat = G(z_e + sg[z_q - z_e])   # straight-through: dL/dz_e := dL/dz_q
        L   = rec(x, x_hat) + mean (sg[z_e] - e_k)^2 + beta * mean (z_e - sg[e_k])^2

    ``rec`` is the mean squared error (``likelihood="gaussian"``, images in [-1, 1], the decoder output is the
    image) or the Bernoulli cross-entropy of the images **binarized at 0** (``likelihood="bernoulli"``: target
    1 where ``x >= 0``; the decoder output is the logit, images are ``2 sigmoid - 1``). Logged: ``loss``,
    ``reconstruction``, ``vq`` (codebook + beta commitment, the two VQ terms of ``L``), ``perplexity`` (codebook
    usage ``exp H(p)``, `keras_gen.networks.codebook_perplexity`) and, with a prior, ``prior_nll`` (nats per
    code position).

    **Dead codes.** With ``dead_code_steps = N`` (default 20), a code that no position of the batch chose for
    ``N`` consecutive training steps is re-initialised to the encoder output of a random position of the
    current batch (`VectorQuantizer.restart_dead_codes`, drawn with the model's seed generator, so runs are
    reproducible). ``None`` disables it.

    **Prior, and how it is trained.** ``prior`` is a separate `PixelCNN` over the ``h x w`` code maps with
    ``K`` levels (optionally class-conditional). It never sends gradients into the autoencoder. Two ways to
    train it, both with ``prior_optimizer``:

    1. *Alongside* (``train_prior=True``, the default, used by the ``vqvae`` preset): every `train_step`, after
       the autoencoder update, makes one prior update on the batch's code maps ``k`` (a constant for the
       prior). One ``fit`` then trains both, the per-epoch sample grids show the prior learning, and the run
       folder's ``model.keras`` holds both. As the codes settle, this becomes the paper's second stage.
    2. *Two-stage* (the paper's procedure): train with ``train_prior=False``, then call
       `fit_prior(dataset, epochs)`, which fits the prior on the codes of the frozen autoencoder. `fit_prior`
       can also fine-tune a prior trained alongside.

    **Latent.** `GenerativeModel` samples a latent and decodes it; here the latent is the prior's sampling
    noise: uniform ``(h, w, K)`` (see `PixelCNN.sample_latent`). `decode_latent(u)` runs the prior's compiled
    sampling loop with that noise to get a code map, then decodes it. So ``generate(n, seed=s)`` is
    deterministic and a fixed latent (the sample-grid callback's) follows the prior as it trains. The integer
    code maps themselves are available through `sample_codes` and `decode_codes`.

    **Likelihood.** With the deterministic encoder ``q(z|x) = 1[z = k(x)]`` the ELBO is
    ``log p(x | k(x)) + log p(k(x))`` (the KL of a point mass from the prior is ``-log p(k(x))``), a lower bound
    on ``log p(x) = log sum_z p(z) p(x|z)`` (it keeps one term of the sum). `elbo` returns its two terms; it is a
    probability of discrete data only with ``likelihood="bernoulli"`` on binarized images.

    Args:
        encoder: ``images (B, H, W, C) -> z_e (B, h, w, D)`` (`keras_gen.networks.vq_encoder`).
        decoder: ``(B, h, w, D) -> (B, H, W, C)`` (`keras_gen.networks.vq_decoder`).
        quantizer: a `keras_gen.networks.VectorQuantizer` with ``code_dim = D``.
        prior: a `PixelCNN` over ``(h, w)`` maps with ``num_levels = K``, or ``None`` (then the model can
            encode, decode and reconstruct, but not generate).
        likelihood: ``"gaussian"`` (MSE) or ``"bernoulli"`` (binarized at 0).
        commitment_weight: beta (0.25 in the paper).
        dead_code_steps: restart codes unused for this many consecutive steps; ``None`` disables it.
        train_prior: update the prior in every `train_step` (see above).
        seed: seed of the model's `SeedGenerator` (dead-code restarts, latents).

    Example:
        >>> from keras_gen import networks as nets
        >>> vq = VQVAE(nets.vq_encoder((28, 28, 1), code_dim=16), nets.vq_decoder((7, 7, 16)),
        ...            nets.VectorQuantizer(64, 16),
        ...            prior=PixelCNN(nets.pixel_cnn((7, 7), num_levels=64)), seed=0)
        >>> vq.compile(optimizer=keras.optimizers.Adam(1e-3), prior_optimizer=keras.optimizers.Adam(1e-3))
        >>> vq.fit(mnist, epochs=5)  # doctest: +SKIP
        >>> codes = vq.encode(images)            # (n, 7, 7) int32
        >>> samples = vq.generate(16, seed=0)    # codes from the prior, decoded: (16, 28, 28, 1) in [-1, 1]
    """

    def __init__(
        self,
        encoder,
        decoder,
        quantizer,
        prior=None,
        likelihood="gaussian",
        commitment_weight=0.25,
        dead_code_steps=20,
        train_prior=True,
        seed=None,
        **kwargs,
    ):
        super().__init__(seed=seed, **kwargs)
        for role, net in (("encoder", encoder), ("decoder", decoder)):
            if not isinstance(net, keras.Model):
                raise TypeError(f"`{role}` must be a keras.Model, got {type(net).__name__}.")
        if not isinstance(quantizer, VectorQuantizer):
            raise TypeError(
                f"`quantizer` must be a keras_gen.networks.VectorQuantizer, got {type(quantizer).__name__}."
            )
        if prior is not None and not isinstance(prior, PixelCNN):
            raise TypeError(f"`prior` must be a keras_gen.models.PixelCNN or None, got {type(prior).__name__}.")
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"Unknown likelihood {likelihood!r}. Valid: {', '.join(LIKELIHOODS)}.")
        if float(commitment_weight) < 0:
            raise ValueError(f"`commitment_weight` must be >= 0, got {commitment_weight!r}.")
        if dead_code_steps is not None and (
            isinstance(dead_code_steps, bool)
            or not isinstance(dead_code_steps, (int, np.integer))
            or dead_code_steps < 0
        ):
            raise ValueError(
                f"`dead_code_steps` must be a positive integer, or None/0 to disable; got {dead_code_steps!r}."
            )

        image_shape = tuple(int(s) for s in encoder.inputs[0].shape[1:])
        code_shape = tuple(encoder.outputs[0].shape[1:])
        if len(code_shape) != 3 or None in code_shape:
            raise ValueError(f"The encoder must output code maps (h, w, D); it outputs {code_shape}.")
        code_shape = tuple(int(s) for s in code_shape)
        if code_shape[-1] != quantizer.code_dim:
            raise ValueError(
                f"The encoder outputs {code_shape[-1]}-d vectors but the codebook holds {quantizer.code_dim}-d codes."
            )
        if tuple(decoder.inputs[0].shape[1:]) != code_shape:
            raise ValueError(f"The decoder takes {tuple(decoder.inputs[0].shape[1:])}, the encoder makes {code_shape}.")
        if tuple(decoder.outputs[0].shape[1:]) != image_shape:
            raise ValueError(
                f"The decoder makes {tuple(decoder.outputs[0].shape[1:])}, but the encoder takes images {image_shape}."
            )
        if prior is not None and (prior.image_size != code_shape[:2] or prior.num_levels != quantizer.num_codes):
            raise ValueError(
                f"The prior models {prior.image_size} maps with {prior.num_levels} levels; the codes are "
                f"{code_shape[:2]} maps of {quantizer.num_codes} codes."
            )
        if not quantizer.built:
            quantizer.build((None,) + code_shape)

        self.encoder = encoder
        self.decoder = decoder
        self.quantizer = quantizer
        self.prior = prior
        self.likelihood = likelihood
        self.commitment_weight = float(commitment_weight)
        self.dead_code_steps = int(dead_code_steps) if dead_code_steps else None
        self.train_prior = bool(train_prior)
        self.num_codes = quantizer.num_codes
        self.code_shape = code_shape
        self.sample_shape = image_shape
        self.num_classes = None if prior is None else prior.num_classes
        self.latent_dim = None if prior is None else prior.latent_shape
        self.vq_optimizer = None
        self.prior_optimizer = None

        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction")
        self.vq_tracker = keras.metrics.Mean(name="vq")
        self.perplexity_tracker = keras.metrics.Mean(name="perplexity")
        self.prior_tracker = keras.metrics.Mean(name="prior_nll") if prior is not None else None
        self._prior_stage_steps = {}
        self.built = True

    # ------------------------------------------------------------------ compile / serialization
    def compile(self, optimizer=None, prior_optimizer=None, loss_scale="auto", **kwargs):
        """Configures training.

        Args:
            optimizer: the autoencoder's optimizer (encoder, decoder and codebook); default ``Adam(1e-3)``.
            prior_optimizer: the prior's optimizer (ignored without a prior); default ``Adam(1e-3)``.
            loss_scale: ``"auto"`` wraps an optimizer in a `LossScaleOptimizer` when its networks compute in
                float16; ``True`` always, ``False`` never.
            **kwargs: passed to `keras.Model.compile` (``jit_compile``, ``steps_per_execution``,
                ``run_eagerly``); ``loss`` and ``metrics`` are not accepted.
        """
        for key in ("loss", "metrics"):
            if key in kwargs:
                raise TypeError(f"VQVAE.compile() takes no `{key}`: the model owns its losses and metrics.")
        vq_optimizer = prepare_optimizer(optimizer, [self.encoder, self.decoder], loss_scale)
        prior_opt = None
        if self.prior is not None:
            prior_opt = prepare_optimizer(prior_optimizer, [self.prior.network], loss_scale)
            if prior_opt is vq_optimizer:
                raise ValueError("`optimizer` and `prior_optimizer` must be two different optimizer instances.")
        super().compile(optimizer=None, **kwargs)
        self.vq_optimizer = vq_optimizer
        self.prior_optimizer = prior_opt
        self.vq_optimizer.build(self._vq_variables())
        if prior_opt is not None:
            self.prior_optimizer.build(self.prior.network.trainable_variables)

    def get_compile_config(self):
        if self.vq_optimizer is None:
            return None
        config = {"optimizer": keras.saving.serialize_keras_object(self.vq_optimizer)}
        if self.prior_optimizer is not None:
            config["prior_optimizer"] = keras.saving.serialize_keras_object(self.prior_optimizer)
        return config

    def compile_from_config(self, config):
        prior_optimizer = config.get("prior_optimizer")
        self.compile(
            optimizer=keras.saving.deserialize_keras_object(config["optimizer"]),
            prior_optimizer=None if prior_optimizer is None else keras.saving.deserialize_keras_object(prior_optimizer),
            loss_scale=False,  # a saved LossScaleOptimizer comes back as one
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            encoder=keras.layers.serialize(self.encoder),
            decoder=keras.layers.serialize(self.decoder),
            quantizer=keras.layers.serialize(self.quantizer),
            prior=None if self.prior is None else keras.layers.serialize(self.prior),
            likelihood=self.likelihood,
            commitment_weight=self.commitment_weight,
            dead_code_steps=self.dead_code_steps,
            train_prior=self.train_prior,
            seed=self.seed,
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = copy.deepcopy(config)
        for key in ("encoder", "decoder", "quantizer"):
            config[key] = keras.layers.deserialize(config[key])
        if config.get("prior") is not None:
            config["prior"] = keras.layers.deserialize(config["prior"])
        return cls(**config)

    # ------------------------------------------------------------------ the autoencoder
    def _vq_variables(self):
        return (
            self.encoder.trainable_variables + self.decoder.trainable_variables + self.quantizer.trainable_variables
        )

    def _unpack(self, data):
        """A batch -> (images (B, H, W, C) float32, labels (B,) int32 or None); see `unpack_batch`."""
        return self.unpack_batch(data)

    def _reconstruction_loss(self, images, outputs):
        outputs = ops.cast(outputs, "float32")
        if self.likelihood == "gaussian":
            return ops.mean(ops.square(images - outputs))
        targets = ops.cast(images >= 0, "float32")  # binarized at 0
        return ops.mean(targets * ops.softplus(-outputs) + (1.0 - targets) * ops.softplus(outputs))

    def _to_images(self, outputs):
        outputs = ops.cast(outputs, "float32")
        if self.likelihood == "gaussian":
            return ops.clip(outputs, -1.0, 1.0)
        return 2.0 * ops.sigmoid(outputs) - 1.0

    def _forward(self, images, training):
        z_e = ops.cast(self.encoder(images, training=training), "float32")  # (B, h, w, D)
        z_q, indices = self.quantizer(z_e)  # (B, h, w, D), (B, h, w)
        outputs = self.decoder(straight_through(z_e, z_q), training=training)  # (B, H, W, C)
        return z_e, z_q, indices, outputs

    def _vq_losses(self, images, training):
        z_e, z_q, indices, outputs = self._forward(images, training)
        reconstruction = self._reconstruction_loss(images, outputs)
        vq = losses_lib.vq_codebook_loss(z_e, z_q) + self.commitment_weight * losses_lib.vq_commitment_loss(z_e, z_q)
        logs = {
            "loss": reconstruction + vq,
            "reconstruction": reconstruction,
            "vq": vq,
            "perplexity": codebook_perplexity(indices, self.num_codes),
        }
        return logs, z_e, indices

    def _vq_step(self, images):
        import tensorflow as tf

        with tf.GradientTape() as tape:
            logs, z_e, indices = self._vq_losses(images, training=True)
            scaled = scaled_loss(self.vq_optimizer, logs["loss"])
        apply_gradients(self.vq_optimizer, scaled, tape, self._vq_variables())
        if self.dead_code_steps:
            self.quantizer.restart_dead_codes(z_e, indices, self.dead_code_steps, self.seed_generator)
        return logs, indices

    # ------------------------------------------------------------------ the prior
    def _prior_step(self, codes, labels):
        """One prior update on code maps ``(B, h, w)``; returns the mean NLL in nats per code position."""
        import tensorflow as tf

        codes = ops.stop_gradient(codes)
        with tf.GradientTape() as tape:
            nll = self.prior.nll_of_levels(codes, labels, training=True)  # (B,)
            loss = ops.mean(nll) / float(self.code_shape[0] * self.code_shape[1])
            scaled = scaled_loss(self.prior_optimizer, loss)
        apply_gradients(self.prior_optimizer, scaled, tape, self.prior.network.trainable_variables)
        return loss

    def _codes(self, images):
        """Code indices ``(B, h, w)`` int32 of images, in inference mode (a tensor)."""
        return self.quantizer.nearest(self.encoder(images, training=False))

    def _check_compiled(self):
        if self.vq_optimizer is None:
            raise RuntimeError("Call `vqvae.compile(optimizer=..., prior_optimizer=...)` before training.")

    def _check_prior(self):
        if self.prior is None:
            raise RuntimeError("This VQ-VAE has no prior: build it with `prior=PixelCNN(...)` to sample or fit one.")

    # ------------------------------------------------------------------ training
    @property
    def metrics(self):
        trackers = [self.loss_tracker, self.reconstruction_tracker, self.vq_tracker, self.perplexity_tracker]
        return trackers + ([self.prior_tracker] if self.prior_tracker is not None else [])

    def call(self, inputs, training=False):
        """Reconstructions ``(B, H, W, C)`` in [-1, 1] of images."""
        images = inputs[0] if isinstance(inputs, (list, tuple)) else inputs
        return self._to_images(self._forward(ops.cast(images, "float32"), training)[3])

    def train_step(self, data):
        self._check_compiled()
        images, labels = self._unpack(data)
        logs, indices = self._vq_step(images)
        if self.prior is not None and self.train_prior:
            logs["prior_nll"] = self._prior_step(indices, labels)
        return self._update_trackers(logs)

    def test_step(self, data):
        images, labels = self._unpack(data)
        logs, _, indices = self._vq_losses(images, training=False)
        if self.prior is not None:
            nll = self.prior.nll_of_levels(indices, labels, training=False)
            logs["prior_nll"] = ops.mean(nll) / float(self.code_shape[0] * self.code_shape[1])
        return self._update_trackers(logs)

    def _update_trackers(self, logs):
        for tracker in self.metrics:
            if tracker.name in logs:
                tracker.update_state(logs[tracker.name])
        return {m.name: m.result() for m in self.metrics}

    def training_phases(self):
        """The update phases of one `train_step`: ``[(name, run(data), variables)]``.

        ``"vq_vae"`` updates the encoder, decoder and codebook (gradient step, then dead-code restarts);
        ``"prior"`` (with a prior and ``train_prior``) updates the prior on the codes of the batch.
        """
        self._check_compiled()

        def vq_phase(data):
            images, _ = self._unpack(data)
            return self._vq_step(images)[0]

        phases = [("vq_vae", vq_phase, self._vq_variables())]
        if self.prior is not None and self.train_prior:

            def prior_phase(data):
                images, labels = self._unpack(data)
                return self._prior_step(self._codes(images), labels)

            phases.append(("prior", prior_phase, self.prior.network.trainable_variables))
        return phases

    def fit_prior(self, data, epochs=1, batch_size=64, verbose=1):
        """The second stage of van den Oord et al.: fits the prior on the codes of the frozen autoencoder.

        Each batch is encoded (inference mode, no update of the autoencoder), then the prior makes one
        ``prior_optimizer`` step on ``-log p(codes | labels) / (h w)``.

        Args:
            data: a `tf.data.Dataset` of ``images`` or ``(images, labels)`` batches, or arrays ``images`` /
                a tuple ``(images, labels)`` (then batched by ``batch_size``).
            epochs: passes over the data.
            batch_size: batch size for array data.
            verbose: print one line per epoch when true.

        Returns:
            ``{"prior_nll": [mean nats per code position, one per epoch]}``.
        """
        import tensorflow as tf

        self._check_prior()
        self._check_compiled()
        epochs = check_count(epochs)
        if not isinstance(data, tf.data.Dataset):
            data = tf.data.Dataset.from_tensor_slices(data).batch(int(batch_size))
        conditional = self.num_classes is not None
        if conditional not in self._prior_stage_steps:

            def step(images, labels=None):
                return self._prior_step(self._codes(images), labels)

            self._prior_stage_steps[conditional] = tf.function(step, reduce_retracing=True)
        step = self._prior_stage_steps[conditional]
        history = {"prior_nll": []}
        for epoch in range(epochs):
            total, count = 0.0, 0
            for batch in data:
                images, labels = self._unpack(batch)
                loss = step(images) if labels is None else step(images, labels)
                size = int(images.shape[0])
                total += float(loss) * size
                count += size
            history["prior_nll"].append(total / max(count, 1))
            if verbose:
                nll = history["prior_nll"][-1]
                print(f"prior epoch {epoch + 1}/{epochs}: prior_nll {nll:.4f} nats per code", flush=True)
        return history

    # ------------------------------------------------------------------ encode / decode
    def encode(self, images, batch_size=256):
        """Code indices of images ``(n, H, W, C)`` in [-1, 1]: NumPy int32 ``(n, h, w)``."""
        images = np.asarray(images, dtype="float32")
        if images.shape[1:] != self.sample_shape:
            expected = ", ".join(map(str, self.sample_shape))
            raise ValueError(f"`images` must have shape (n, {expected}), got {images.shape}.")
        check_count(int(images.shape[0]))
        out = [ops.convert_to_numpy(self._codes(images[s : s + batch_size])) for s in range(0, len(images), batch_size)]
        return np.concatenate(out).astype("int32")

    def _decode_codes_tensor(self, codes):
        z_q = self.quantizer.lookup(codes)  # (B, h, w, D)
        return self._to_images(self.decoder(z_q, training=False))

    def decode_codes(self, codes, batch_size=256):
        """Images ``(n, H, W, C)`` float32 in [-1, 1] decoded from integer code maps ``(n, h, w)``."""
        codes = np.asarray(codes)
        if codes.shape[1:] != self.code_shape[:2] or not np.issubdtype(codes.dtype, np.integer):
            raise ValueError(
                f"`codes` must be integer maps (n, {self.code_shape[0]}, {self.code_shape[1]}), "
                f"got {codes.dtype} {codes.shape}."
            )
        check_count(int(codes.shape[0]))
        if codes.size and (codes.min() < 0 or codes.max() >= self.num_codes):
            raise ValueError(f"Codes must be in [0, {self.num_codes}); got values in [{codes.min()}, {codes.max()}].")
        out = [
            ops.convert_to_numpy(self._decode_codes_tensor(codes[s : s + batch_size]))
            for s in range(0, len(codes), batch_size)
        ]
        return np.concatenate(out).astype("float32")

    def reconstruct(self, images, batch_size=256):
        """``decode_codes(encode(images))``: NumPy float32 ``(n, H, W, C)`` in [-1, 1]."""
        return self.decode_codes(self.encode(images, batch_size=batch_size), batch_size=batch_size)

    def elbo(self, images, labels=None, batch_size=256):
        """The two terms of the lower bound ``log p(x) >= log p(x | k(x)) + log p(k(x))`` per sample (nats).

        Needs ``likelihood="bernoulli"`` (the reconstruction term is then the log-probability of the images
        binarized at 0) and a prior.

        Returns:
            ``(log_p_x_given_codes, log_p_codes)``: two NumPy float64 ``(n,)`` arrays; their sum is the bound.
        """
        self._check_prior()
        if self.likelihood != "bernoulli":
            raise ValueError(
                "`elbo` gives a likelihood of binarized images, which needs likelihood='bernoulli'; a Gaussian "
                "(MSE) decoder defines a density of continuous images instead."
            )
        codes = self.encode(images, batch_size=batch_size)
        log_p_codes = self.prior.log_prob(codes, labels, batch_size=batch_size)
        images = np.asarray(images, dtype="float32")
        rec = []
        for s in range(0, len(images), batch_size):
            logits = self.decoder(self.quantizer.lookup(codes[s : s + batch_size]), training=False)
            targets = ops.cast(images[s : s + batch_size] >= 0, "float32")
            rec.append(ops.convert_to_numpy(losses_lib.bernoulli_log_likelihood(targets, ops.cast(logits, "float32"))))
        return np.concatenate(rec).astype("float64"), log_p_codes

    # ------------------------------------------------------------------ sampling
    @property
    def operations(self):
        """Encoding and reconstruction, and sampling when it has a prior."""
        return frozenset({"encode", "reconstruct"} | ({"sample"} if self.prior is not None else set()))

    def latent_parts(self):
        """The prior's sampling noise ``(h, w, K)``, uniform in (0, 1) (see the class docstring); none without a
        prior."""
        return () if self.prior is None else LatentSpec.uniform(self.latent_shape).parts

    def sample_latent(self, n, seed=None):
        """The prior's sampling noise ``(n, h, w, K)``, uniform in (0, 1) (see the class docstring)."""
        self._check_prior()
        return super().sample_latent(n, seed)

    def decode_latent(self, z, labels=None):
        """Codes sampled by the prior with the noise ``z``, decoded: images ``(B, H, W, C)`` in [-1, 1]."""
        self._check_prior()
        return self._decode_codes_tensor(self.prior.sample_levels(z, labels))

    def sample_codes(self, n, labels=None, seed=None):
        """``n`` code maps from the prior: NumPy int32 ``(n, h, w)`` (deterministic for an integer ``seed``)."""
        self._check_prior()
        labels = self.check_labels(labels, check_count(n))
        z = self.sample_latent(n, seed)
        labels = None if labels is None else ops.convert_to_tensor(labels)
        return ops.convert_to_numpy(self.prior.sample_levels(z, labels)).astype("int32")
