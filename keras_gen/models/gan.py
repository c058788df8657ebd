"""`GAN`: a generator and a discriminator trained against each other with `model.fit`."""

import contextlib
import copy

import keras
from keras import ops

from keras_gen import augment as augment_lib
from keras_gen import checks
from keras_gen import losses as losses_lib
from keras_gen.latent_spec import LatentSpec
from keras_gen.models.base import GenerativeModel, apply_gradients, prepare_optimizer, scaled_loss
from keras_gen.networks.layers import Pack

__all__ = ["GAN"]


def _multi_worker():
    import tensorflow as tf

    return isinstance(tf.distribute.get_strategy(), tf.distribute.MultiWorkerMirroredStrategy)


def _uses_ema(optimizer):
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        optimizer = optimizer.inner_optimizer
    return bool(getattr(optimizer, "use_ema", False))


class _FinalizeAverages(keras.callbacks.Callback):
    """First callback of `GAN.fit`: the optimizers' weight averages go in place before the others' on_train_end
    (sample grids and saves then see the averaged generator)."""

    def on_train_end(self, logs=None):
        self.model.finalize_averages()


def _statistics_restorer(layers):
    """A function that puts back the moving mean and variance the batch normalizations ``layers`` hold now."""
    saved = [(ops.convert_to_numpy(layer.moving_mean), ops.convert_to_numpy(layer.moving_variance)) for layer in layers]

    def restore():
        for layer, (mean, variance) in zip(layers, saved):
            layer.moving_mean.assign(mean)
            layer.moving_variance.assign(variance)

    return restore


def _packing_of(discriminator):
    packs = [layer.packing for layer in discriminator._flatten_layers() if isinstance(layer, Pack)]
    return max(packs, default=1)


def _warn_stock_normalization(discriminator):
    """Warns when a penalty would differentiate twice through Keras' own normalization layers on TensorFlow."""
    import warnings

    stock = (keras.layers.BatchNormalization, keras.layers.LayerNormalization)
    names = [
        layer.name
        for layer in discriminator._flatten_layers(include_self=False)
        if type(layer) in stock and not getattr(layer, "synchronized", False)
        and not getattr(layer, "rms_scaling", False)
    ]
    if names and keras.backend.backend() == "tensorflow":
        warnings.warn(
            f"The discriminator normalizes with Keras' own layers ({', '.join(names)}): on TensorFlow their "
            "statistics come from tf.nn.moments, whose stop_gradient makes the second derivative that R1 and the "
            "gradient penalty take wrong for every weight before them (tensorflow#24508). Use "
            "keras_gen.networks.BatchNormalization / LayerNormalization (drop-in, same weights and outputs).",
            RuntimeWarning,
            stacklevel=3,
        )


def _check_auxiliary_head(discriminator, num_classes, classifier_weight, codes):
    """ValueError unless the discriminator has a second output exactly when the model reads one: class logits of
    shape ``(B, num_classes)`` with ``classifier_weight`` (AC-GAN), code outputs as wide as the ``codes`` (the
    latent parts Q predicts; one-hot width for a categorical one) with ``info_weight`` (InfoGAN)."""
    heads = len(discriminator.outputs)
    shape = tuple(discriminator.outputs[1].shape[1:]) if heads == 2 else None
    if classifier_weight and codes:
        raise ValueError("A GAN reads one auxiliary head: `classifier_weight` (AC-GAN) or `info_weight` (InfoGAN).")
    if not classifier_weight and not codes:
        if heads != 1:
            raise ValueError(
                f"The discriminator has {heads} outputs; a GAN uses one (logits), or two (logits, class logits) with "
                "classifier_weight > 0 (AC-GAN), or (logits, code outputs) with info_weight > 0 (InfoGAN)."
            )
        return
    if classifier_weight:
        if num_classes is None:
            raise ValueError("`classifier_weight` (AC-GAN) needs a conditional GAN: set num_classes.")
        argument, width = f"`classifier_weight={classifier_weight!r}`", int(num_classes)
        what, fix = "class logits", "classifier_head=True"
    else:
        argument, width = "`info_weight`", sum(part.size for part in codes)
        what, fix = f"outputs for the codes {[part.name for part in codes]}", f"code_head={width}"
    if heads != 2 or shape != (width,):
        second = "" if shape is None else ", the second of shape " + str((None, *shape)).replace("None", "B")
        raise ValueError(
            f"{argument} needs a discriminator with two outputs, logits and {what} of shape (B, {width}) "
            f"(dcgan_discriminator(..., {fix})); it has {heads} output(s){second}."
        )


@keras.saving.register_keras_serializable(package="keras_gen")
class GAN(GenerativeModel):
    """A generative adversarial network (Goodfellow et al. 2014, https://arxiv.org/abs/1406.2661).

    Each `train_step` does ``d_steps`` discriminator updates, then one generator update:

        for k in 1..d_steps:                      # fresh z each time, the same real batch
            L_D = d_loss(D(T(x)), D(T'(G(z)))) + lambda_gp * GP + gamma / 2 * R1
            theta_D -= grad L_D                   # then clip theta_D to [-c, c] if clip_value
        L_G = g_loss(D(T''(G(z))))
        theta_G -= grad L_G

    With ``classifier_weight`` lambda_c (AC-GAN, Odena et al. 2017, https://arxiv.org/abs/1610.09585), the
    discriminator has a second output, class logits C(x) read from the image alone (``classifier_head=True`` in
    `keras_gen.networks.dcgan_discriminator`), and both players add a cross-entropy
    (`keras_gen.losses.classifier_loss`): L_D += lambda_c * CE(C(T(x)), y) on the real batch, L_G += lambda_c *
    CE(C(T''(G(z, y))), y) on the samples. The classifier learns from real images only, so the generator is
    pulled towards what real digits of its class look like rather than towards whatever the classifier learns to
    tell apart among its own samples.

    With ``info_weight`` lambda_I (InfoGAN, Chen et al. 2016, https://arxiv.org/abs/1606.03657), the latent has code
    parts c beside the noise (``latent``; the parts named in ``info_codes``), the discriminator's second output Q
    reads them back from the image (``code_head`` in `dcgan_discriminator`), and both players add the negative
    log-likelihood of the drawn codes under Q (a lower bound of the mutual information I(c; G(z, c)) up to a
    constant): L_D += lambda_I * L_I(Q(T'(G(z, c))), c) and L_G += lambda_I * L_I(Q(T''(G(z, c))), c), with L_I the
    cross-entropy of a categorical code and the unit-variance Gaussian NLL of a continuous one
    (`keras_gen.losses.continuous_code_loss`).

    ``T``, ``T'``, ``T''`` are the identity unless ``augment`` names a DiffAugment policy (Zhao et al. 2020,
    https://arxiv.org/abs/2006.10738; `keras_gen.augment`): then each is a fresh draw of its random, differentiable
    transformations, independent for the real and the generated batch, and the generator's gradient flows through
    ``T''``. The penalties look at what the discriminator sees: R1 at ``T(x)`` and the gradient penalty between
    ``T(x)`` and ``T'(G(z))`` (docs/small_data.md says why).

    The loss is a name from `keras_gen.losses.LOSSES` (``"minimax"``, ``"non_saturating"``, ``"least_squares"``,
    ``"hinge"``, ``"wasserstein"``) or a pair of callables ``(generator_loss, discriminator_loss)``.

    Data is ``images`` or ``(images, labels)``; with ``num_classes`` set the model is conditional (Mirza &
    Osindero 2014): the generator takes ``[z, label]``, the discriminator ``[images, label]``, and the labels of
    the real batch are used for the generated one too. Unconditional models ignore labels in the data.

    Randomness (z, the gradient-penalty interpolation) comes from a `keras.random.SeedGenerator` owned by the
    model, so a run with a fixed ``seed`` is reproducible.

    Mixed precision: when either network computes in float16, `compile` wraps each optimizer in a
    `keras.optimizers.LossScaleOptimizer` and the losses are scaled before the gradients are taken. Under
    `tf.distribute`, losses are divided by the number of replicas before the gradients (which the optimizer
    sums over replicas), so an update equals the single-device one on the same global batch.

    Args:
        generator: a Keras model mapping ``z`` (or ``[z, label]``) to samples.
        discriminator: a Keras model mapping samples (or ``[samples, label]``) to logits of any shape; with
            ``classifier_weight``, to ``[logits, class_logits]``; with ``info_weight``, to ``[logits, code_outputs]``.
        num_classes: number of classes for a conditional GAN; ``None`` for an unconditional one.
        loss: a loss name or a ``(generator_loss, discriminator_loss)`` pair.
        d_steps: discriminator updates per generator update (``n_critic`` in WGAN, ``k`` in Goodfellow et al.).
        gradient_penalty_weight: lambda of the WGAN-GP gradient penalty (0 disables it).
        r1_weight: gamma of the R1 penalty on real data (0 disables it); ``gamma / 2 * R1`` is added.
        r1_interval: lazy R1 (StyleGAN2, Karras et al. 2020, https://arxiv.org/abs/1912.04958): the penalty is
            computed on every ``r1_interval``-th discriminator update only (the 1st, the ``r1_interval + 1``-th,
            ...), weighted by ``r1_interval`` so that its average pull stays the same; a skipped update saves
            the penalty's extra forward and double backward pass (``benchmarks/r1_cost.py`` measures what that
            buys; docs/numerics.md). The ``r1`` log averages the updates that computed it. 1 (the default)
            computes it on every update.
        clip_value: clip the discriminator's weights to ``[-clip_value, clip_value]`` after each update (the
            original WGAN); ``None`` disables it.
        latent: the prior of ``z``, a `keras_gen.latent_spec.LatentSpec` (or its `to_dict`) whose network input
            has the generator's input shape; ``None`` (the default) is one standard normal part ``z``. Its parts are
            drawn in training and sampling and recorded in exports.
        augment: a DiffAugment policy for small data: ``"color,translation,cutout"`` (any of the three,
            comma-separated, or a list of them; `keras_gen.augment.POLICIES`), applied to the real and the generated
            images before the discriminator in every update (and in `test_step`); ``None`` (the default) for none.
            Images only (samples ``(H, W, C)``); docs/small_data.md says when it helps.
        standing_statistics: when `fit` (or `finalize_averages`) puts the generator optimizer's ``use_ema``
            average in place, recompute the generator's batch-norm statistics for it over this many batches of
            fresh latents (`recompute_generator_statistics`); the moving statistics training kept belong to the
            live weights. 0 (the default) keeps them.
        classifier_weight: lambda_c of the AC-GAN class loss (0, the default, for none); needs ``num_classes`` and a
            discriminator whose second output is ``(B, num_classes)`` class logits.
        info_weight: lambda_I of InfoGAN's mutual-information term (0, the default, for none); needs ``info_codes``
            and a discriminator whose second output is as wide as those codes in the network input (one-hot width
            for a categorical code).
        info_codes: the names of the ``latent`` parts Q predicts, in the order of the code head's outputs.
        seed: seed of the model's `SeedGenerator`.

    Example:
        >>> from keras_gen.networks import dcgan_generator, dcgan_discriminator
        >>> gan = GAN(dcgan_generator(latent_dim=64, width=32), dcgan_discriminator(width=32), seed=0)
        >>> gan.compile(d_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5),
        ...             g_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5))
        >>> gan.fit(images_dataset, epochs=5)  # doctest: +SKIP
        >>> images = gan.generate(16, seed=0)  # (16, 28, 28, 1) in [-1, 1]
    """

    def __init__(
        self,
        generator,
        discriminator,
        num_classes=None,
        loss="non_saturating",
        d_steps=1,
        gradient_penalty_weight=0.0,
        r1_weight=0.0,
        r1_interval=1,
        clip_value=None,
        latent=None,
        augment=None,
        standing_statistics=0,
        classifier_weight=0.0,
        info_weight=0.0,
        info_codes=None,
        seed=None,
        **kwargs,
    ):
        super().__init__(seed=seed, **kwargs)
        if not isinstance(generator, keras.Model) or not isinstance(discriminator, keras.Model):
            raise TypeError(
                "`generator` and `discriminator` must be keras.Model instances; got "
                f"{type(generator).__name__} and {type(discriminator).__name__}."
            )
        checks.integer(d_steps, "d_steps", 1)
        for arg, value in (
            ("gradient_penalty_weight", gradient_penalty_weight),
            ("r1_weight", r1_weight),
            ("classifier_weight", classifier_weight),
            ("info_weight", info_weight),
        ):
            if float(value) < 0:
                raise ValueError(f"`{arg}` must be >= 0, got {value!r}.")
        checks.integer(r1_interval, "r1_interval", 1)
        if clip_value is not None and float(clip_value) <= 0:
            raise ValueError(f"`clip_value` must be > 0 or None, got {clip_value!r}.")
        checks.integer(standing_statistics, "standing_statistics", 0)
        expected_inputs = 1 if num_classes is None else 2
        for role, net in (("generator", generator), ("discriminator", discriminator)):
            if len(net.inputs) != expected_inputs:
                raise ValueError(
                    f"The {role} takes {len(net.inputs)} input(s), but a GAN with num_classes={num_classes!r} "
                    f"needs {expected_inputs} ({'z' if role == 'generator' else 'samples'}"
                    f"{'' if num_classes is None else ', label'})."
                )
        if tuple(generator.outputs[0].shape[1:]) != tuple(discriminator.inputs[0].shape[1:]):
            raise ValueError(
                f"The generator makes samples of shape {tuple(generator.outputs[0].shape[1:])}, but the "
                f"discriminator takes {tuple(discriminator.inputs[0].shape[1:])}."
            )
        self.generator = generator
        self.discriminator = discriminator
        self.num_classes = None if num_classes is None else int(num_classes)
        self.classifier_weight = float(classifier_weight)
        # `self.loss` belongs to keras.Model.compile; the adversarial loss is `gan_loss`.
        self.gan_loss = loss
        self.generator_loss_fn, self.discriminator_loss_fn = losses_lib.get_loss_pair(loss)
        self.d_steps = int(d_steps)
        self.gradient_penalty_weight = float(gradient_penalty_weight)
        self.r1_weight = float(r1_weight)
        self.r1_interval = int(r1_interval)
        self.clip_value = None if clip_value is None else float(clip_value)
        self.standing_statistics = int(standing_statistics)
        self.latent_dim = int(generator.inputs[0].shape[-1])
        self.latent = None if latent is None else LatentSpec.from_dict(latent)
        if self.latent is not None:
            if self.latent.conditions:
                raise ValueError("`latent` holds the drawn parts only; the label comes from `num_classes`.")
            if self.latent.network_shape != (self.latent_dim,):
                raise ValueError(
                    f"The latent {self.latent} gives the network inputs of shape {self.latent.network_shape}, but the "
                    f"generator takes ({self.latent_dim},)."
                )
        self.info_weight = float(info_weight)
        self.info_codes = None if info_codes is None else tuple(info_codes)
        self.code_parts = self._code_parts()
        _check_auxiliary_head(discriminator, self.num_classes, self.classifier_weight, self.code_parts)
        self.sample_shape = tuple(int(s) for s in generator.outputs[0].shape[1:])
        augment_lib.check_images(self.sample_shape, augment)
        self.augment = augment_lib.policy_string(augment)  # canonical "color,translation,cutout", or None
        self.packing = _packing_of(discriminator)
        if self.gradient_penalty_weight or self.r1_weight:
            _warn_stock_normalization(discriminator)
        self.d_optimizer = None
        self.g_optimizer = None

        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self.gp_tracker = keras.metrics.Mean(name="gp") if self.gradient_penalty_weight else None
        self.r1_tracker = keras.metrics.Mean(name="r1") if self.r1_weight else None
        self.d_class_tracker = keras.metrics.Mean(name="d_class") if self.classifier_weight else None
        self.g_class_tracker = keras.metrics.Mean(name="g_class") if self.classifier_weight else None
        self.d_info_tracker = keras.metrics.Mean(name="d_info") if self.info_weight else None
        self.g_info_tracker = keras.metrics.Mean(name="g_info") if self.info_weight else None
        # The networks are functional (built on construction); the GAN itself owns no weights.
        self.built = True

    # ------------------------------------------------------------------ compile / serialization
    def compile(self, d_optimizer=None, g_optimizer=None, loss_scale="auto", **kwargs):
        """Configures training with one optimizer per network.

        Args:
            d_optimizer: the discriminator's optimizer (name, config or instance). Default:
                ``Adam(2e-4, beta_1=0.5)`` (DCGAN).
            g_optimizer: the generator's optimizer. Same default.
            loss_scale: ``"auto"`` wraps each optimizer in a `LossScaleOptimizer` when a network computes in
                float16; ``True`` always, ``False`` never.
            **kwargs: passed to `keras.Model.compile` (``jit_compile``, ``steps_per_execution``,
                ``run_eagerly``). ``optimizer``, ``loss`` and ``metrics`` are not accepted: the GAN owns them.
        """
        for key in ("optimizer", "loss", "metrics"):
            if key in kwargs:
                raise TypeError(
                    f"GAN.compile() takes no `{key}`: pass `d_optimizer=` and `g_optimizer=`; the losses are "
                    "chosen with GAN(loss=...)."
                )
        if d_optimizer is not None and d_optimizer is g_optimizer:
            raise ValueError("`d_optimizer` and `g_optimizer` must be two different optimizer instances.")
        # One network in float16 scales both losses: the generator's gradients flow through the discriminator.
        networks = [self.generator, self.discriminator]
        d_optimizer = prepare_optimizer(d_optimizer, networks, loss_scale, learning_rate=2e-4, beta_1=0.5)
        g_optimizer = prepare_optimizer(g_optimizer, networks, loss_scale, learning_rate=2e-4, beta_1=0.5)
        super().compile(optimizer=None, **kwargs)
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer
        # Build the optimizers now: resuming, load_weights and tf.distribute need their variables before fit.
        self.d_optimizer.build(self.discriminator.trainable_variables)
        self.g_optimizer.build(self.generator.trainable_variables)

    def get_compile_config(self):
        if self.d_optimizer is None:
            return None
        return {
            "d_optimizer": keras.saving.serialize_keras_object(self.d_optimizer),
            "g_optimizer": keras.saving.serialize_keras_object(self.g_optimizer),
        }

    def compile_from_config(self, config):
        self.compile(
            d_optimizer=keras.saving.deserialize_keras_object(config["d_optimizer"]),
            g_optimizer=keras.saving.deserialize_keras_object(config["g_optimizer"]),
            loss_scale=False,  # a saved LossScaleOptimizer comes back as one
        )

    def get_config(self):
        config = super().get_config()
        loss = self.gan_loss
        if not isinstance(loss, str):
            loss = [keras.saving.serialize_keras_object(fn) for fn in loss]
        config.update(
            generator=keras.layers.serialize(self.generator),
            discriminator=keras.layers.serialize(self.discriminator),
            num_classes=self.num_classes,
            loss=loss,
            d_steps=self.d_steps,
            gradient_penalty_weight=self.gradient_penalty_weight,
            r1_weight=self.r1_weight,
            r1_interval=self.r1_interval,
            clip_value=self.clip_value,
            latent=None if self.latent is None else self.latent.to_dict(),
            augment=self.augment,
            standing_statistics=self.standing_statistics,
            classifier_weight=self.classifier_weight,
            info_weight=self.info_weight,
            info_codes=None if self.info_codes is None else list(self.info_codes),
            seed=self.seed,
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = copy.deepcopy(config)  # deserialization consumes the nested dicts
        config["generator"] = keras.layers.deserialize(config["generator"])
        config["discriminator"] = keras.layers.deserialize(config["discriminator"])
        if isinstance(config.get("loss"), list):
            config["loss"] = tuple(keras.saving.deserialize_keras_object(fn) for fn in config["loss"])
        return cls(**config)

    # ------------------------------------------------------------------ training
    def fit(self, *args, **kwargs):
        """`keras.Model.fit`; at the end, an optimizer built with ``use_ema=True`` puts the moving averages of its
        network's weights in place, before the callbacks' ``on_train_end`` (as `fit` does for ``model.optimizer``).

        With ``g_optimizer=Adam(..., use_ema=True, ema_momentum=0.999)`` the generator that samples, saves and
        exports after training is the average of its last ~1,000 updates (Yazici et al. 2019,
        https://arxiv.org/abs/1806.04498, report better scores with it; preset ``r1-ema-stacked-mnist`` uses it,
        docs/experiments/stacked_mnist.md compares the two). Fitting again continues from the averaged weights, as
        with any Keras optimizer's ``use_ema``.
        """
        if len(args) > 5:  # callbacks passed by position (x, y, batch_size, epochs, verbose, callbacks, ...)
            args = list(args)
            args[5] = [_FinalizeAverages(), *(args[5] or [])]
        else:
            kwargs["callbacks"] = [_FinalizeAverages(), *(kwargs.get("callbacks") or [])]
        return super().fit(*args, **kwargs)

    @property
    def keeps_generator_average(self):
        """Whether the generator's optimizer keeps a moving average of its weights (``use_ema=True``, seen through
        mixed precision's ``LossScaleOptimizer``): the weights `fit` puts in place at the end and
        `averaged_weights` runs on."""
        return self.g_optimizer is not None and _uses_ema(self.g_optimizer)

    def _averaged(self):
        """(optimizer, network) pairs whose optimizer keeps weight averages (``use_ema=True``) and has stepped."""
        pairs = ((self.d_optimizer, self.discriminator), (self.g_optimizer, self.generator))
        return [(optimizer, network) for optimizer, network in pairs
                if optimizer is not None and _uses_ema(optimizer) and int(ops.convert_to_numpy(optimizer.iterations))]

    def finalize_averages(self):
        """Overwrites each network's trainable weights with its optimizer's moving averages (``use_ema=True``
        optimizers that have taken a step; others are left alone), then, with ``standing_statistics``, gives an
        averaged generator batch-norm statistics of its own. `fit` calls it at the end of training."""
        averaged = self._averaged()
        for optimizer, network in averaged:
            optimizer.finalize_variable_values(network.trainable_variables)
        if self.standing_statistics and any(network is self.generator for _, network in averaged):
            self.recompute_generator_statistics(batches=self.standing_statistics)

    @contextlib.contextmanager
    def averaged_weights(self):
        """A context in which the networks run on their optimizers' moving averages; the live weights come back on
        exit, exception or not. For scoring or sampling the averaged generator in the middle of training (a
        callback's ``on_epoch_end``) without changing what the next step trains::

            with gan.averaged_weights():
                grid = gan.generate(64, seed=0)

        Networks whose optimizer has no ``use_ema`` (or has taken no step yet) keep their weights.
        """
        swapped = []
        try:
            for optimizer, network in self._averaged():
                variables = network.trainable_variables
                swapped.append((variables, [ops.convert_to_numpy(v) for v in variables]))
                optimizer.finalize_variable_values(variables)
            yield self
        finally:
            for variables, live in swapped:
                for variable, value in zip(variables, live):
                    variable.assign(value)

    def recompute_generator_statistics(self, batches=100, batch_size=256, seed=0):
        """Sets the moving mean and variance of every batch normalization in the generator to their averages over
        ``batches`` batches of fresh latents run through it in training mode ("standing statistics", Brock et al.
        2019, https://arxiv.org/abs/1809.11096).

        The moving statistics belong to the weights that trained. Weights put in place afterwards, such as the
        average a ``use_ema`` optimizer keeps, get statistics of other weights (docs/numerics.md shows when that
        matters). Call it after `fit` or inside `averaged_weights` (it leaves the new statistics in place in both
        cases; `restoring_generator_statistics` puts the old ones back), or build the GAN with
        ``standing_statistics=batches`` and `fit` calls it once it has put the average in place.

        Args:
            batches: batches to average over (their mean batch statistics become the moving ones).
            batch_size: latents per batch.
            seed: batch ``i`` draws its latents with seed ``seed + i`` (deterministic); labels cycle over the
                classes of a conditional generator.

        Returns:
            The number of batch-normalization layers updated (0 for a generator without any).
        """
        for name, value, minimum in (("batches", batches, 1), ("batch_size", batch_size, 2), ("seed", seed, 0)):
            checks.integer(value, name, minimum)
        layers = self._generator_batch_norms()
        momenta, restore = [layer.momentum for layer in layers], _statistics_restorer(layers)
        labels = self.check_labels(None, batch_size)
        labels = None if labels is None else ops.convert_to_tensor(labels)
        try:
            for layer in layers:
                layer.moving_mean.assign(ops.zeros_like(layer.moving_mean))
                layer.moving_variance.assign(ops.zeros_like(layer.moving_variance))
            for i in range(batches):
                for layer in layers:
                    layer.momentum = i / (i + 1)  # moving <- (i moving + batch) / (i + 1): the mean of batches 0..i
                self.generator(self._inputs(self.sample_latent(batch_size, seed=seed + i), labels), training=True)
        except BaseException:
            restore()  # interrupted: the old statistics come back
            raise
        finally:
            for layer, momentum in zip(layers, momenta):
                layer.momentum = momentum
        return len(layers)

    def _generator_batch_norms(self):
        """The generator's batch normalizations (nested ones too)."""
        return [layer for layer in self.generator._flatten_layers()
                if isinstance(layer, keras.layers.BatchNormalization)]

    @property
    def metrics(self):
        trackers = (
            self.d_loss_tracker, self.g_loss_tracker, self.gp_tracker, self.r1_tracker,
            self.d_class_tracker, self.g_class_tracker, self.d_info_tracker, self.g_info_tracker,
        )
        return [t for t in trackers if t]

    def call(self, inputs, training=False):
        """Runs the generator: ``z`` (or ``[z, labels]``) -> samples."""
        return self.generator(inputs, training=training)

    def _unpack(self, data):
        """`unpack_batch`, plus the packing check: the batch must split into groups of ``packing`` samples."""
        images, labels = self.unpack_batch(data)
        batch = images.shape[0]
        if self.packing > 1 and batch is not None and batch % self.packing:
            raise ValueError(
                f"The discriminator packs {self.packing} samples, but the batch size {batch} is not a multiple of "
                "it. Use a batch size divisible by the packing degree (and drop_remainder=True)."
            )
        return images, labels

    def _inputs(self, x, labels):
        return x if labels is None else [x, labels]

    def _judge(self, inputs, training):
        """``(logits, auxiliary outputs)`` of the discriminator on ``inputs``, both float32: AC-GAN's class logits or
        InfoGAN's code outputs, None without an auxiliary head."""
        outputs = self.discriminator(inputs, training=training)
        if self.classifier_weight or self.info_weight:
            return ops.cast(outputs[0], "float32"), ops.cast(outputs[1], "float32")
        return ops.cast(outputs, "float32"), None

    def _code_parts(self):
        """The latent parts InfoGAN's Q predicts (``info_codes``), checked against ``info_weight`` and the latent."""
        if not self.info_weight:
            if self.info_codes:
                raise ValueError(f"`info_codes={list(self.info_codes)}` needs `info_weight` > 0 (InfoGAN).")
            return ()
        if not self.info_codes:
            raise ValueError(
                "`info_weight` (InfoGAN) needs `info_codes`: the names of the latent parts the discriminator's code "
                "head predicts, e.g. ['digit', 'style']."
            )
        if self.latent is None:
            raise ValueError("`info_codes` name parts of `latent`: give the latent with its code parts.")
        unknown = [name for name in self.info_codes if name not in self.latent.names]
        if unknown:
            raise ValueError(f"`info_codes` {unknown} are not parts of the latent {list(self.latent.names)}.")
        return tuple(self.latent.part(name) for name in self.info_codes)

    def _info_loss(self, code_outputs, parts):
        """InfoGAN's mutual-information term: the code head's negative log-likelihood of the drawn codes, summed
        over the codes (`classifier_loss` per categorical element, `continuous_code_loss` for the others)."""
        total, start = 0.0, 0
        for part in self.code_parts:
            piece = code_outputs[:, start : start + part.size]  # (B, size)
            start += part.size
            value = parts[part.name]
            if part.categorical:
                classes = part.params["num_classes"]
                elements = part.size // classes
                loss = elements * losses_lib.classifier_loss(
                    ops.reshape(piece, (-1, classes)), ops.reshape(value, (-1,)))
            else:
                loss = losses_lib.continuous_code_loss(piece, ops.reshape(value, (-1, part.size)))
            total = total + loss
        return total

    def discriminate(self, inputs, training=False):
        """The discriminator's adversarial logits on ``inputs`` (samples, or ``[samples, labels]``), without an
        auxiliary head's outputs: what the losses, the penalties and the overfitting alarm read."""
        return self._judge(inputs, training)[0]

    @staticmethod
    def _loss_scale(optimizer):
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            return optimizer.dynamic_scale
        return None

    def _augment(self, images):
        """DiffAugment with the model's policy and a fresh draw from its seed (the images unchanged, and nothing
        drawn, without ``augment``)."""
        if self.augment is None:
            return images
        return augment_lib.diff_augment(images, self.augment, self.seed_generator)

    def _draw(self, batch_size):
        """``(parts, z)``: fresh latent parts from the model's seed and the network input they make."""
        parts = self.latent_spec.sample(batch_size, self.seed_generator)
        return parts, self.latent_spec.network_input(parts)

    def _discriminator_step(self, real, labels, batch_size):
        import tensorflow as tf

        parts, z = self._draw(batch_size)
        fake = ops.stop_gradient(self.generator(self._inputs(z, labels), training=True))
        # What D sees: each batch augmented with its own draw; the penalties below are taken on these too.
        real = self._augment(real)
        fake = self._augment(fake)
        logs = {}
        with tf.GradientTape() as tape:
            real_logits, real_aux = self._judge(self._inputs(real, labels), training=True)
            fake_logits, fake_aux = self._judge(self._inputs(fake, labels), training=True)
            d_loss = self.discriminator_loss_fn(real_logits, fake_logits)
            total = d_loss
            if self.info_weight:
                logs["d_info"] = self._info_loss(fake_aux, parts)
                total = total + self.info_weight * logs["d_info"]
            if self.classifier_weight:
                d_class = losses_lib.classifier_loss(real_aux, labels)
                total = total + self.classifier_weight * d_class
                logs["d_class"] = d_class
            loss_scale = self._loss_scale(self.d_optimizer)
            if self.gradient_penalty_weight:
                gp = losses_lib.gradient_penalty(
                    self.discriminate, real, fake, labels, seed=self.seed_generator, loss_scale=loss_scale
                )
                total = total + self.gradient_penalty_weight * gp
                logs["gp"] = gp
            if self.r1_weight:
                r1, due = self._r1(real, labels, loss_scale)
                total = total + 0.5 * self.r1_weight * self.r1_interval * r1
                logs["r1"], logs["r1_due"] = r1, due
            scaled = scaled_loss(self.d_optimizer, total)
        apply_gradients(self.d_optimizer, scaled, tape, self.discriminator.trainable_variables)
        if self.clip_value is not None:
            for variable in self.discriminator.trainable_variables:
                variable.assign(ops.clip(variable, -self.clip_value, self.clip_value))
        logs["d_loss"] = d_loss
        return logs

    def _r1(self, real, labels, loss_scale):
        """(R1 penalty, 1.0) on an update that computes it; (0.0, 0.0) on one that lazy R1 skips."""
        if self.r1_interval == 1:
            return losses_lib.r1_penalty(self.discriminate, real, labels, loss_scale=loss_scale), 1.0
        due = ops.equal(ops.mod(self.d_optimizer.iterations, self.r1_interval), 0)
        r1 = ops.cond(
            due,
            lambda: ops.cast(losses_lib.r1_penalty(self.discriminate, real, labels, loss_scale=loss_scale), "float32"),
            lambda: ops.zeros((), "float32"),
        )
        return r1, ops.cast(due, "float32")

    def _generator_step(self, labels, batch_size):
        import tensorflow as tf

        parts, z = self._draw(batch_size)
        with tf.GradientTape() as tape:
            fake = self._augment(self.generator(self._inputs(z, labels), training=True))
            fake_logits, fake_aux = self._judge(self._inputs(fake, labels), training=True)
            g_loss = self.generator_loss_fn(fake_logits)
            total = g_loss
            logs = {"g_loss": g_loss}
            if self.classifier_weight:
                logs["g_class"] = losses_lib.classifier_loss(fake_aux, labels)
                total = total + self.classifier_weight * logs["g_class"]
            if self.info_weight:
                logs["g_info"] = self._info_loss(fake_aux, parts)
                total = total + self.info_weight * logs["g_info"]
            scaled = scaled_loss(self.g_optimizer, total)
        apply_gradients(self.g_optimizer, scaled, tape, self.generator.trainable_variables)
        return logs

    def _check_compiled(self):
        if self.d_optimizer is None or self.g_optimizer is None:
            raise RuntimeError("Call `gan.compile(d_optimizer=..., g_optimizer=...)` before training.")

    def train_step(self, data):
        self._check_compiled()
        real, labels = self._unpack(data)
        batch_size = ops.shape(real)[0]
        for _ in range(self.d_steps):
            d_logs = self._discriminator_step(real, labels, batch_size)
        g_logs = self._generator_step(labels, batch_size)
        return self._update_trackers(d_logs, g_logs)

    def training_phases(self):
        """The update phases of one `train_step`, for inspection and tests.

        Returns:
            ``[(name, run(data), variables)]``: running ``run`` on a batch performs that phase's update, which
            must change only ``variables`` among the trainable ones.
        """
        self._check_compiled()

        def discriminator_phase(data):
            real, labels = self._unpack(data)
            return self._discriminator_step(real, labels, ops.shape(real)[0])

        def generator_phase(data):
            real, labels = self._unpack(data)
            return self._generator_step(labels, ops.shape(real)[0])

        return [
            ("discriminator", discriminator_phase, self.discriminator.trainable_variables),
            ("generator", generator_phase, self.generator.trainable_variables),
        ]

    def test_step(self, data):
        """Both losses on a batch, without updates (penalties are not evaluated), on what the discriminator sees in
        training (augmented images with ``augment``)."""
        real, labels = self._unpack(data)
        batch_size = ops.shape(real)[0]
        parts, z = self._draw(batch_size)
        fake = self.generator(self._inputs(z, labels), training=False)
        real, fake = self._augment(real), self._augment(fake)
        real_logits, real_aux = self._judge(self._inputs(real, labels), training=False)
        fake_logits, fake_aux = self._judge(self._inputs(fake, labels), training=False)
        d_logs = {"d_loss": self.discriminator_loss_fn(real_logits, fake_logits)}
        g_logs = {"g_loss": self.generator_loss_fn(fake_logits)}
        if self.classifier_weight:
            d_logs["d_class"] = losses_lib.classifier_loss(real_aux, labels)
            g_logs["g_class"] = losses_lib.classifier_loss(fake_aux, labels)
        if self.info_weight:
            d_logs["d_info"] = g_logs["g_info"] = self._info_loss(fake_aux, parts)
        return self._update_trackers(d_logs, g_logs)

    def _update_trackers(self, d_logs, g_logs):
        self.d_loss_tracker.update_state(d_logs["d_loss"])
        self.g_loss_tracker.update_state(g_logs["g_loss"])
        if self.classifier_weight:
            self.d_class_tracker.update_state(d_logs["d_class"])
            self.g_class_tracker.update_state(g_logs["g_class"])
        if self.info_weight:
            self.d_info_tracker.update_state(d_logs["d_info"])
            self.g_info_tracker.update_state(g_logs["g_info"])
        if self.gp_tracker is not None and "gp" in d_logs:
            self.gp_tracker.update_state(d_logs["gp"])
        if self.r1_tracker is not None and "r1" in d_logs:
            self.r1_tracker.update_state(d_logs["r1"], sample_weight=d_logs["r1_due"])
        logs = {m.name: m.result() for m in self.metrics}
        if _multi_worker():
            # MultiWorkerMirroredStrategy cannot reduce scalar logs (tensorflow#72388): shape [1] works.
            logs = {name: ops.reshape(value, (1,)) for name, value in logs.items()}
        return logs

    @contextlib.contextmanager
    def restoring_generator_statistics(self):
        """A context on whose exit, exception or not, the generator's batch normalizations hold again the moving
        mean and variance they held on entry. For a look at the averaged generator with statistics of its own in
        the middle of training without changing the ones training keeps::

            with gan.averaged_weights(), gan.restoring_generator_statistics():
                gan.recompute_generator_statistics()
                grid = gan.generate(64, seed=0)

        Yields:
            The number of batch normalizations whose statistics come back (0 for a generator without any: nothing
            to recompute).
        """
        layers = self._generator_batch_norms()
        restore = _statistics_restorer(layers)
        try:
            yield len(layers)
        finally:
            restore()

    # ------------------------------------------------------------------ sampling
    def latent_parts(self):
        """The parts of ``z``: ``latent``'s, or one standard normal ``z`` of the generator's input size."""
        return super().latent_parts() if self.latent is None else self.latent.parts

    @property
    def operations(self):
        """Sampling, and a continuous latent space for the latent tools when ``z`` is one continuous part."""
        return super().operations | ({"latent_space"} if self.latent_spec.single else set())

    def decode_latent(self, z, labels=None):
        """The generator in inference mode on ``z`` (and labels)."""
        return self.generator(self._inputs(z, labels), training=False)
