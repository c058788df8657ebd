"""The GAN family: DCGAN networks on images, MLP networks on 2-D points, and their presets."""

from keras_gen.presets import adam, class_count, compile_options, optimizer, register_family, register_presets
from keras_gen.presets.overrides import parameters


def _cosine_adam(learning_rate, beta_1, decay_epochs, alpha=0.01):
    """Adam whose learning rate follows a cosine from ``learning_rate`` down to ``alpha * learning_rate`` over
    ``decay_epochs`` epochs of the training data (then stays there): the late small steps let a 2-D generator
    sharpen its modes. The steps are counted when the model is built, from the data's size and the batch size
    (`keras_gen.presets.optimizer`), so the schedule spans the same epochs on any data."""
    schedule = {
        "module": "keras.optimizers.schedules",
        "class_name": "CosineDecay",
        "config": {"initial_learning_rate": learning_rate, "decay_epochs": decay_epochs, "alpha": alpha},
    }
    return {"class_name": "Adam", "config": {"learning_rate": schedule, "beta_1": beta_1, "beta_2": 0.999}}


def _mixture_optimizers(epochs, learning_rate=1e-3):
    """Both optimizers of the 2-D mixture presets: cosine decay over ``epochs`` epochs (the whole run)."""
    return {
        "d_optimizer": _cosine_adam(learning_rate, 0.5, epochs),
        "g_optimizer": _cosine_adam(learning_rate, 0.5, epochs),
    }


def _dcgan_preset(description, model=None, generator=None, discriminator=None, **overrides):
    preset = {
        "description": description,
        "family": "gan",
        "dataset": "mnist",
        "network": "dcgan",
        "epochs": 40,
        "batch_size": 64,
        "networks": {
            "generator": {"latent_dim": 100, "width": 64, **(generator or {})},
            "discriminator": {"width": 64, **(discriminator or {})},
        },
        "model": {"loss": "non_saturating", **(model or {})},
        "optimizers": {"d_optimizer": adam(2e-4, 0.5), "g_optimizer": adam(2e-4, 0.5)},
    }
    preset.update(overrides)
    return preset


_ACGAN_NETWORKS = {
    "generator": {"conditioning": "cbn"},
    "discriminator": {"conditioning": "projection", "classifier_head": True},
    "conditional": True,
}
"""cgan's networks with AC-GAN's class head on the discriminator: the AC-GAN presets' shared settings."""


def _mlp_preset(description, dataset, model=None, discriminator=None, **overrides):
    preset = {
        "description": description,
        "family": "gan",
        "dataset": dataset,
        "network": "mlp",
        "epochs": 20,
        "batch_size": 500,
        "networks": {
            "generator": {"latent_dim": 2, "hidden": [128, 128, 128]},
            "discriminator": {"hidden": [128, 128, 128], **(discriminator or {})},
        },
        "model": {"loss": "non_saturating", **(model or {})},
        "optimizers": {"d_optimizer": adam(1e-3, 0.5), "g_optimizer": adam(1e-3, 0.5)},
        "sample_count": 2500,
    }
    preset.update(overrides)
    return preset



register_presets({
    "dcgan": _dcgan_preset("DCGAN on the embedded MNIST digits: non-saturating loss, Adam(2e-4, 0.5)."),
    "minimax": _dcgan_preset(
        "DCGAN networks with the original saturating minimax generator loss log(1 - D(G(z))).",
        model={"loss": "minimax"},
    ),
    "cgan": _dcgan_preset(
        "Class-conditional DCGAN: conditional batch norm in G, projection discriminator.",
        generator={"conditioning": "cbn"},
        discriminator={"conditioning": "projection"},
        conditional=True,
    ),
    "acgan": _dcgan_preset(
        "AC-GAN (Odena et al. 2017): cgan's networks, the discriminator also classifying the digit. The generator "
        "is trained to make digits that classifier reads as the class asked for.",
        model={"classifier_weight": 1.0},
        **_ACGAN_NETWORKS,
    ),
    "acgan-r1-ema": _dcgan_preset(
        "AC-GAN with R1 and a weight-averaged generator: acgan with R1 (gamma 10) on the discriminator, Adam(4e-4, 0.5) "
        "for both networks and a generator that samples, saves and exports the moving average of its weights "
        "(use_ema, momentum 0.995), 30 epochs; what make demo trains (docs/evaluation.md#digit-quality).",
        model={"classifier_weight": 1.0, "r1_weight": 10.0},
        optimizers={
            "d_optimizer": adam(4e-4, 0.5),
            "g_optimizer": {"class_name": "Adam", "config": {
                **adam(4e-4, 0.5)["config"], "use_ema": True, "ema_momentum": 0.995}},
        },
        epochs=30,
        **_ACGAN_NETWORKS,
    ),
    "infogan": _dcgan_preset(
        "InfoGAN (Chen et al. 2016) on the DCGAN networks: a latent of 62 normal noise values, a 10-way categorical "
        "code 'digit' and 2 uniform codes 'style' on [-1, 1], which a Q head on the discriminator reads back "
        "(mutual-information weight 1).",
        generator={"latent_dim": 74},
        discriminator={"code_head": 12},
        model={
            "latent": {"parts": [
                {"name": "z", "shape": [62], "distribution": "normal"},
                {"name": "digit", "shape": [], "distribution": "categorical", "num_classes": 10},
                {"name": "style", "shape": [2], "distribution": "uniform", "low": -1.0, "high": 1.0},
            ]},
            "info_weight": 1.0,
            "info_codes": ["digit", "style"],
        },
    ),
    "wgan": _dcgan_preset(
        "WGAN with weight clipping (Arjovsky et al. 2017): 5 critic steps, RMSprop(5e-5), clip 0.01.",
        model={"loss": "wasserstein", "d_steps": 5, "clip_value": 0.01},
        discriminator={"normalization": None},
        optimizers={
            "d_optimizer": {"class_name": "RMSprop", "config": {"learning_rate": 5e-5}},
            "g_optimizer": {"class_name": "RMSprop", "config": {"learning_rate": 5e-5}},
        },
    ),
    "wgan-gp": _dcgan_preset(
        "WGAN-GP (Gulrajani et al. 2017): gradient penalty 10, 5 critic steps, layer-normalized critic.",
        model={"loss": "wasserstein", "d_steps": 5, "gradient_penalty_weight": 10.0},
        discriminator={"normalization": "layer"},
        optimizers={"d_optimizer": adam(1e-4, 0.5, 0.9), "g_optimizer": adam(1e-4, 0.5, 0.9)},
    ),
    "lsgan": _dcgan_preset("LSGAN (Mao et al. 2017): least-squares loss.", model={"loss": "least_squares"}),
    "hinge-sn": _dcgan_preset(
        "Hinge loss with a spectrally normalized discriminator (Miyato et al. 2018).",
        model={"loss": "hinge"},
        discriminator={"spectral_norm": True, "normalization": None},
    ),
    "ring2d": _mlp_preset(
        "MLP GAN on 8 Gaussians on the unit circle (sigma 0.01): non-saturating loss, 100 epochs, Adam(1e-3, 0.5) "
        "cosine-decayed to 1e-5 over the 100 epochs (10,000 steps of the 50,000 points).",
        "ring2d",
        epochs=100,
        optimizers=_mixture_optimizers(100),
    ),
    "grid2d": _mlp_preset(
        "MLP GAN on 25 Gaussians on a 5x5 grid (sigma 0.05): non-saturating loss with R1 (gamma 0.1) against "
        "dropped modes, wider networks (G and D 3 x 256), 150 epochs, Adam(1e-3, 0.5) cosine-decayed to 1e-5 over "
        "the 150 epochs (the last 50 sharpen the paths between modes; docs/evaluation.md).",
        "grid2d",
        model={"r1_weight": 0.1},
        networks={
            "generator": {"latent_dim": 2, "hidden": [256, 256, 256]},
            "discriminator": {"hidden": [256, 256, 256]},
        },
        epochs=150,
        optimizers=_mixture_optimizers(150),
    ),
    "pacgan-ring2d": _mlp_preset(
        "PacGAN2 (Lin et al. 2018) on the 2-D ring: the discriminator judges 2 samples at once (packing penalizes "
        "dropped modes); the ring2d schedule (100 epochs, Adam(1e-3, 0.5) cosine-decayed to 1e-5).",
        "ring2d",
        discriminator={"packing": 2},
        epochs=100,
        optimizers=_mixture_optimizers(100),
    ),
    "dcgan-stacked-mnist": _dcgan_preset(
        "DCGAN on stacked MNIST (three digits as the RGB channels, 1,000 modes), as in VEEGAN / PacGAN.",
        dataset="stacked_mnist",
        epochs=10,
    ),
    "r1-stacked-mnist": _dcgan_preset(
        "DCGAN on stacked MNIST with R1 (gamma 10, Mescheder et al. 2018) on the discriminator and Adam(4e-4, 0.5), "
        "30 epochs: the recipe a GPU sweep of losses, packing, width, schedules, weight averaging and R1 found (R1 "
        "is what draws the three channels' digits evenly; docs/experiments/stacked_mnist.md).",
        model={"r1_weight": 10.0},
        optimizers={"d_optimizer": adam(4e-4, 0.5), "g_optimizer": adam(4e-4, 0.5)},
        dataset="stacked_mnist",
        epochs=30,
    ),
    "r1-ema-stacked-mnist": _dcgan_preset(
        "r1-stacked-mnist whose generator samples, saves and exports the moving average of its weights "
        "(Adam use_ema, momentum 0.999: about the last 1,000 of its 781 steps per epoch; Yazici et al. 2019); "
        "its results over ten seeds are in docs/experiments/stacked_mnist.md.",
        model={"r1_weight": 10.0},
        optimizers={
            "d_optimizer": adam(4e-4, 0.5),
            "g_optimizer": {"class_name": "Adam", "config": {
                **adam(4e-4, 0.5)["config"], "use_ema": True, "ema_momentum": 0.999}},
        },
        dataset="stacked_mnist",
        epochs=30,
    ),
    "pacgan-stacked-mnist": _dcgan_preset(
        "PacDCGAN2 (Lin et al. 2018) on stacked MNIST: the DCGAN discriminator judges 2 images at once.",
        discriminator={"packing": 2},
        dataset="stacked_mnist",
        epochs=10,
    ),
})




_GAN_NETWORKS = ("dcgan", "mlp")


def _validate_gan(config):
    if config.network not in _GAN_NETWORKS:
        raise ValueError(f"Unknown GAN network {config.network!r}. Valid: {', '.join(_GAN_NETWORKS)}.")
    missing = {"d_optimizer", "g_optimizer"} - set(config.optimizers)
    if missing:
        raise ValueError(f"A GAN config needs optimizers {sorted(missing)}.")
    unknown = set(config.networks) - {"generator", "discriminator"}
    if unknown:
        raise ValueError(f"Unknown network role(s) {sorted(unknown)} for a GAN: use 'generator', 'discriminator'.")
    if config.network == "dcgan" and config.image_size is not None:
        size = config.image_size
        height, width = (size, size) if isinstance(size, int) else size
        problem = _dcgan_size_problem(height, width)
        if problem:
            raise ValueError(f"`image_size` {height}x{width} does not fit: {problem}.")


def _dcgan_size_problem(height, width):
    """Why the DCGAN networks cannot take ``height x width`` images (with a size that works), or None."""
    from keras_gen.networks.dcgan import resolution_plan

    side = max(8, min(height, width) // 2 * 2)  # even and >= 8: always a valid DCGAN side
    hint = f"pass image_size={side} (keras-gen train: --image-size {side}; --center-crop keeps the aspect ratio)"
    if height != width:
        return f"the DCGAN networks need square images, not {height}x{width} (height x width); {hint}"
    try:
        resolution_plan(height)
    except ValueError as exc:
        return f"{str(exc).rstrip('.')}; {hint}"
    return None


def _replicas():
    import tensorflow as tf

    return tf.distribute.get_strategy().num_replicas_in_sync


def _build_gan(config, info):
    from keras_gen import networks as nets
    from keras_gen.models import GAN

    num_classes = class_count(config, info, "GAN")
    shape = tuple(info["shape"])
    g_kwargs = dict(config.networks.get("generator", {}))
    d_kwargs = dict(config.networks.get("discriminator", {}))
    if config.network == "dcgan" and _replicas() > 1:
        # Per-replica batch statistics would make a distributed step differ from the single-device one.
        g_kwargs.setdefault("synchronized_batch_norm", True)
        d_kwargs.setdefault("synchronized_batch_norm", True)
    if config.network == "dcgan":
        if len(shape) != 3:
            raise ValueError(f"The DCGAN networks need images (H, W, C); dataset {config.dataset!r} has {shape}.")
        problem = _dcgan_size_problem(*shape[:2])
        if problem:
            raise ValueError(f"Dataset {config.dataset!r} does not fit: {problem}.")
        generator = nets.dcgan_generator(image_shape=shape, num_classes=num_classes, **g_kwargs)
        discriminator = nets.dcgan_discriminator(image_shape=shape, num_classes=num_classes, **d_kwargs)
    else:
        if len(shape) != 1:
            raise ValueError(f"The MLP networks need vectors (D,); dataset {config.dataset!r} has {shape}.")
        generator = nets.mlp_generator(output_dim=shape[0], num_classes=num_classes, **g_kwargs)
        discriminator = nets.mlp_discriminator(input_dim=shape[0], num_classes=num_classes, **d_kwargs)
    gan = GAN(generator, discriminator, num_classes=num_classes, seed=config.seed, **config.model)
    packing = gan.packing
    if config.batch_size % packing:
        raise ValueError(f"`batch_size` {config.batch_size} must be a multiple of the packing degree {packing}.")
    gan.compile(
        d_optimizer=optimizer(config, "d_optimizer", info, updates_per_step=gan.d_steps),
        g_optimizer=optimizer(config, "g_optimizer", info),
        **compile_options(config),
    )
    return gan


def _gan_arguments(config):
    from keras_gen import networks as nets
    from keras_gen.models import GAN

    generator, discriminator = {
        "dcgan": (nets.dcgan_generator, nets.dcgan_discriminator),
        "mlp": (nets.mlp_generator, nets.mlp_discriminator),
    }[config.network]
    return {
        "networks.generator": parameters(generator, ("image_shape", "output_dim", "num_classes", "name")),
        "networks.discriminator": parameters(discriminator, ("image_shape", "input_dim", "num_classes", "name")),
        "model": parameters(GAN, ("generator", "discriminator", "num_classes", "seed")),
    }


register_family("gan", _build_gan, _validate_gan, _gan_arguments)
