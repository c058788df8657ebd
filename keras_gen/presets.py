"""Named presets and the run configuration they resolve to.

A preset is plain data: a dict of `RunConfig` fields. `get_config("dcgan", epochs=5)` returns a validated
`RunConfig`; `build_model(config)` turns it into a compiled model; the CLI writes the config as
``config.json`` in the run folder, so every run can be rebuilt from its folder (`RunConfig.load`).

Model families register a builder in `FAMILIES` (``"gan"`` here); other families add theirs.
"""

import copy
import dataclasses
import json
import os

from keras_gen.images import atomic_write

__all__ = ["PRESETS", "FAMILIES", "RunConfig", "get_config", "list_presets", "build_model", "register_family"]

def _adam(learning_rate, beta_1, beta_2=0.999):
    return {"class_name": "Adam", "config": {"learning_rate": learning_rate, "beta_1": beta_1, "beta_2": beta_2}}


def _cosine_adam(learning_rate, beta_1, decay_steps, alpha=0.01):
    """Adam whose learning rate follows a cosine from ``learning_rate`` down to ``alpha * learning_rate`` over
    ``decay_steps`` steps (then stays there): the late small steps let a 2-D generator sharpen its modes."""
    schedule = {
        "module": "keras.optimizers.schedules",
        "class_name": "CosineDecay",
        "config": {"initial_learning_rate": learning_rate, "decay_steps": decay_steps, "alpha": alpha},
    }
    return {"class_name": "Adam", "config": {"learning_rate": schedule, "beta_1": beta_1, "beta_2": 0.999}}


def _mixture_optimizers(epochs, learning_rate=1e-3, batch_size=500):
    """Both optimizers of the 2-D mixture presets: cosine decay over all the steps of ``epochs`` epochs of the
    50,000 training points."""
    steps = epochs * (50_000 // batch_size)
    return {
        "d_optimizer": _cosine_adam(learning_rate, 0.5, steps),
        "g_optimizer": _cosine_adam(learning_rate, 0.5, steps),
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
        "optimizers": {"d_optimizer": _adam(2e-4, 0.5), "g_optimizer": _adam(2e-4, 0.5)},
    }
    preset.update(overrides)
    return preset


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
        "optimizers": {"d_optimizer": _adam(1e-3, 0.5), "g_optimizer": _adam(1e-3, 0.5)},
        "sample_count": 2500,
    }
    preset.update(overrides)
    return preset


PRESETS = {
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
        optimizers={"d_optimizer": _adam(1e-4, 0.5, 0.9), "g_optimizer": _adam(1e-4, 0.5, 0.9)},
    ),
    "lsgan": _dcgan_preset("LSGAN (Mao et al. 2017): least-squares loss.", model={"loss": "least_squares"}),
    "hinge-sn": _dcgan_preset(
        "Hinge loss with a spectrally normalized discriminator (Miyato et al. 2018).",
        model={"loss": "hinge"},
        discriminator={"spectral_norm": True, "normalization": None},
    ),
    "ring2d": _mlp_preset(
        "MLP GAN on 8 Gaussians on the unit circle (sigma 0.01): non-saturating loss, 100 epochs, Adam(1e-3, 0.5) "
        "cosine-decayed to 1e-5 over the 10,000 steps.",
        "ring2d",
        epochs=100,
        optimizers=_mixture_optimizers(100),
    ),
    "grid2d": _mlp_preset(
        "MLP GAN on 25 Gaussians on a 5x5 grid (sigma 0.05): non-saturating loss with R1 (gamma 0.1) against "
        "dropped modes, wider networks (G and D 3 x 256), 150 epochs, Adam(1e-3, 0.5) cosine-decayed to 1e-5 over "
        "the 15,000 steps (the last 50 epochs sharpen the paths between modes; docs/evaluation.md).",
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
    "pacgan-grid2d": _mlp_preset(
        "PacGAN on the 2-D grid: the grid2d networks (G and D 3 x 256), 100 epochs of Adam(1e-3, 0.5) "
        "cosine-decayed to 1e-5, the discriminator judging 4 samples at once.",
        "grid2d",
        networks={
            "generator": {"latent_dim": 2, "hidden": [256, 256, 256]},
            "discriminator": {"hidden": [256, 256, 256], "packing": 4},
        },
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
        optimizers={"d_optimizer": _adam(4e-4, 0.5), "g_optimizer": _adam(4e-4, 0.5)},
        dataset="stacked_mnist",
        epochs=30,
    ),
    "r1-ema-stacked-mnist": _dcgan_preset(
        "r1-stacked-mnist whose generator samples, saves and exports the moving average of its weights "
        "(Adam use_ema, momentum 0.999: about the last 1,000 of its 781 steps per epoch; Yazici et al. 2019); "
        "its results over ten seeds are in docs/experiments/stacked_mnist.md.",
        model={"r1_weight": 10.0},
        optimizers={
            "d_optimizer": _adam(4e-4, 0.5),
            "g_optimizer": {"class_name": "Adam", "config": {
                **_adam(4e-4, 0.5)["config"], "use_ema": True, "ema_momentum": 0.999}},
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
}
"""Named presets: ``name -> dict of RunConfig fields``."""


@dataclasses.dataclass
class RunConfig:
    """Everything needed to rebuild a training run.

    Attributes:
        preset: the preset this config started from.
        description: one line about it.
        family: model family (``"gan"``; a key of `FAMILIES`).
        dataset: a `keras_gen.data.load_dataset` name.
        network: network builder (``"dcgan"`` or ``"mlp"`` for GANs).
        networks: keyword arguments of each network builder, by role.
        model: keyword arguments of the model class (e.g. GAN's ``loss``, ``d_steps``).
        optimizers: Keras optimizer configs (``{"class_name": ..., "config": ...}``) by compile argument name.
        epochs, batch_size, seed: the obvious.
        conditional: train a class-conditional model on the dataset's labels.
        jit_compile: compile the train step with XLA.
        steps_per_execution: train steps per call into the compiled graph (Keras' ``steps_per_execution``); more
            than 1 saves Python dispatch between steps (~1.05x with 8 for the DCGAN preset on 2 CPU cores,
            `benchmarks/train_throughput.py`); batch-level callbacks then run once per execution.
        mixed_precision: ``None``, ``"mixed_float16"`` or ``"mixed_bfloat16"``.
        strategy: ``"default"``, ``"mirrored"`` or ``"multiworker"`` (see `keras_gen.distribute`).
        deterministic: enable TensorFlow's op determinism (bit-identical runs for a seed, somewhat slower).
        data_dir: TFDS data directory, for TFDS datasets.
        sample_count: samples per grid (images) or scatter plot (points).
        image_size: ``[height, width]`` (an int means square) to resize the images to, or ``None`` for the
            dataset's own size (an image folder's must then be the same for every image; docs/data.md).
        channels: image folders: 1, 3 or 4 channels to convert every image to, or ``None`` to decide from the
            folder (1 if every image is grayscale, else 3).
        center_crop: image folders, with ``image_size``: crop to its aspect ratio before resizing (no stretching).
    """

    preset: str
    description: str = ""
    family: str = "gan"
    dataset: str = "mnist"
    network: str = "dcgan"
    networks: dict = dataclasses.field(default_factory=dict)
    model: dict = dataclasses.field(default_factory=dict)
    optimizers: dict = dataclasses.field(default_factory=dict)
    epochs: int = 10
    batch_size: int = 64
    seed: int = 0
    conditional: bool = False
    jit_compile: bool = False
    steps_per_execution: int = 1
    mixed_precision: str = None
    strategy: str = "default"
    deterministic: bool = False
    data_dir: str = None
    sample_count: int = 64

    def __post_init__(self):
        self.validate()

    def validate(self):
        """Raises ValueError naming the first invalid field."""
        if self.family not in FAMILIES:
            raise ValueError(f"Unknown model family {self.family!r}. Valid: {', '.join(sorted(FAMILIES))}.")
        for name in ("epochs", "batch_size", "sample_count", "steps_per_execution"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"`seed` must be an integer, got {self.seed!r}.")
        if self.mixed_precision not in (None, "mixed_float16", "mixed_bfloat16"):
            raise ValueError(
                f"`mixed_precision` must be None, 'mixed_float16' or 'mixed_bfloat16', got {self.mixed_precision!r}."
            )
        from keras_gen.distribute import STRATEGIES

        if self.strategy not in STRATEGIES:
            raise ValueError(f"Unknown strategy {self.strategy!r}. Valid: {', '.join(STRATEGIES)}.")
        for name in ("networks", "model", "optimizers"):
            if not isinstance(getattr(self, name), dict):
                raise ValueError(f"`{name}` must be a dict, got {type(getattr(self, name)).__name__}.")
        FAMILIES[self.family].validate(self)

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data):
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - fields)
        if unknown:
            raise ValueError(f"Unknown config field(s) {unknown}. Valid fields: {sorted(fields)}.")
        return cls(**copy.deepcopy(data))

    def save(self, path):
        """Writes the config as JSON (atomically)."""
        text = json.dumps(self.to_dict(), indent=2, sort_keys=True)

        def write(tmp):
            with open(tmp, "w") as f:
                f.write(text + "\n")

        return atomic_write(path, write)

    @classmethod
    def load(cls, path):
        """Reads a config written by `save` (e.g. a run folder's ``config.json``)."""
        with open(path) as f:
            return cls.from_dict(json.load(f))


class _Family:
    """A model family: how to validate its config fields and build its compiled model."""

    def __init__(self, build, validate=None):
        self.build = build
        self._validate = validate

    def validate(self, config):
        if self._validate is not None:
            self._validate(config)


FAMILIES = {}
"""Model families by name: ``name -> _Family(build, validate)``."""


def register_family(name, build, validate=None):
    """Registers a model family: ``build(config, info) -> compiled keras.Model`` and ``validate(config)``."""
    FAMILIES[name] = _Family(build, validate)


def list_presets():
    """``[(name, description), ...]`` for every preset, sorted by name."""
    return sorted((name, preset["description"]) for name, preset in PRESETS.items())


def get_config(preset, **overrides):
    """The validated `RunConfig` of a preset, with field overrides (``None`` values are ignored).

    Raises:
        ValueError: unknown preset (the message lists the valid ones) or invalid field.
    """
    if preset not in PRESETS:
        raise ValueError(f"Unknown preset {preset!r}. Valid presets: {', '.join(sorted(PRESETS))}.")
    data = copy.deepcopy(PRESETS[preset])
    data.update({k: v for k, v in overrides.items() if v is not None})
    return RunConfig.from_dict({"preset": preset, **data})


def build_model(config, info=None):
    """Builds and compiles the model a `RunConfig` describes.

    Args:
        config: a `RunConfig`.
        info: the dataset's `keras_gen.data.dataset_info` (looked up when omitted).
    """
    if info is None:
        from keras_gen.data import dataset_info

        info = dataset_info(config.dataset, data_dir=config.data_dir)
    return FAMILIES[config.family].build(config, info)


# ---------------------------------------------------------------------------------------------- the GAN family
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


def _replicas():
    import tensorflow as tf

    return tf.distribute.get_strategy().num_replicas_in_sync


def _build_gan(config, info):
    import keras

    from keras_gen import networks as nets
    from keras_gen.models import GAN

    num_classes = None
    if config.conditional:
        num_classes = info.get("num_classes")
        if not num_classes:
            raise ValueError(f"Dataset {config.dataset!r} has no labels: it cannot train a conditional GAN.")
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
        d_optimizer=keras.optimizers.get(copy.deepcopy(config.optimizers["d_optimizer"])),
        g_optimizer=keras.optimizers.get(copy.deepcopy(config.optimizers["g_optimizer"])),
        jit_compile=config.jit_compile,
        steps_per_execution=config.steps_per_execution,
    )
    return gan


register_family("gan", _build_gan, _validate_gan)


def run_dir_config(run_dir):
    """The `RunConfig` stored in a run folder; a clear error if the folder is not a run folder."""
    path = os.path.join(os.fspath(run_dir), "config.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{run_dir!r} is not a keras-gen run folder: {path} does not exist.")
    return RunConfig.load(path)


# ---------------------------------------------------------------------------------------------- the VAE family
_VAE_NETWORKS = ("vae-mlp", "vae-conv")
_VAE_MODEL_ARGS = ("likelihood", "beta", "sigma")


def _vae_preset(description, network, encoder, decoder=None, model=None, **overrides):
    preset = {
        "description": description,
        "family": "vae",
        "dataset": "mnist",
        "network": network,
        "epochs": 30,
        "batch_size": 64,
        "networks": {"encoder": dict(encoder), "decoder": dict(decoder or {})},
        "model": {"likelihood": "bernoulli", "beta": 1.0, **(model or {})},
        "optimizers": {"optimizer": _adam(1e-3, 0.9)},
    }
    preset.update(overrides)
    return preset


PRESETS.update(
    {
        "vae": _vae_preset(
            "VAE of Kingma & Welling (2014): fully connected 784-400-20, Bernoulli decoder, Adam(1e-3).",
            "vae-mlp",
            encoder={"latent_dim": 20, "hidden": [400]},
            decoder={"hidden": [400]},
        ),
        "conv-vae": _vae_preset(
            "Convolutional VAE: two stride-2 convs (16, 32), z of 16, Bernoulli decoder, Adam(1e-3).",
            "vae-conv",
            encoder={"latent_dim": 16, "widths": [16, 32], "hidden": 256},
            decoder={"widths": [16, 32], "hidden": 256},
            epochs=20,
        ),
        "beta-vae": _vae_preset(
            "beta-VAE (Higgins et al. 2017): the convolutional VAE with beta = 4 (more disentangled, blurrier).",
            "vae-conv",
            encoder={"latent_dim": 16, "widths": [16, 32], "hidden": 256},
            decoder={"widths": [16, 32], "hidden": 256},
            model={"beta": 4.0},
            epochs=20,
        ),
        "cvae": _vae_preset(
            "Conditional VAE (Sohn et al. 2015): the fully connected VAE with the digit class given to q and p.",
            "vae-mlp",
            encoder={"latent_dim": 20, "hidden": [400]},
            decoder={"hidden": [400]},
            conditional=True,
        ),
    }
)


def _validate_vae(config):
    if config.network not in _VAE_NETWORKS:
        raise ValueError(f"Unknown VAE network {config.network!r}. Valid: {', '.join(_VAE_NETWORKS)}.")
    if set(config.optimizers) != {"optimizer"}:
        raise ValueError(
            f"A VAE config needs exactly one optimizer, named 'optimizer'; got {sorted(config.optimizers)}.")
    unknown = set(config.networks) - {"encoder", "decoder"}
    if unknown:
        raise ValueError(f"Unknown network role(s) {sorted(unknown)} for a VAE: use 'encoder', 'decoder'.")
    for role in ("encoder", "decoder"):
        if not isinstance(config.networks.get(role, {}), dict):
            raise ValueError(f"`networks.{role}` must be a dict of builder arguments.")
    for key in ("latent_dim", "num_classes", "image_shape"):
        if key in config.networks.get("decoder", {}):
            raise ValueError(
                f"Set `{key}` of a VAE decoder through the config, not networks.decoder: latent_dim under "
                "networks.encoder, classes with `conditional`, the shape from the dataset."
            )
    if "num_classes" in config.networks.get("encoder", {}) or "image_shape" in config.networks.get("encoder", {}):
        raise ValueError(
            "Set classes with `conditional` and the image shape through the dataset, not networks.encoder.")
    bad = set(config.model) - set(_VAE_MODEL_ARGS)
    if bad:
        raise ValueError(
            f"Unknown VAE model argument(s) {sorted(bad)}. Valid: {', '.join(_VAE_MODEL_ARGS)} (classes come from "
            "`conditional`, the seed from `seed`)."
        )


def _build_vae(config, info):
    import keras

    from keras_gen import networks as nets
    from keras_gen.models import VAE

    num_classes = None
    if config.conditional:
        num_classes = info.get("num_classes")
        if not num_classes:
            raise ValueError(f"Dataset {config.dataset!r} has no labels: it cannot train a conditional VAE.")
    shape = tuple(info["shape"])
    if len(shape) != 3:
        raise ValueError(f"The VAE networks need images (H, W, C); dataset {config.dataset!r} has {shape}.")
    build_encoder, build_decoder = {
        "vae-mlp": (nets.mlp_encoder, nets.mlp_decoder),
        "vae-conv": (nets.conv_encoder, nets.conv_decoder),
    }[config.network]
    encoder = build_encoder(image_shape=shape, num_classes=num_classes, **config.networks.get("encoder", {}))
    latent_dim = int(encoder.outputs[0].shape[-1])
    decoder = build_decoder(
        latent_dim=latent_dim, image_shape=shape, num_classes=num_classes, **config.networks.get("decoder", {})
    )
    vae = VAE(encoder, decoder, num_classes=num_classes, seed=config.seed, **config.model)
    vae.compile(
        optimizer=keras.optimizers.get(copy.deepcopy(config.optimizers["optimizer"])),
        jit_compile=config.jit_compile,
        steps_per_execution=config.steps_per_execution,
    )
    return vae


register_family("vae", _build_vae, _validate_vae)


# ---------------------------------------------------------------------------------------- VQ-VAE and PixelCNN
_VQVAE_ROLES = ("encoder", "decoder", "quantizer", "prior")
_VQVAE_MODEL_ARGS = ("likelihood", "commitment_weight", "dead_code_steps", "train_prior")
_VQVAE_DERIVED = {
    "encoder": ("image_shape",),
    "decoder": ("code_shape", "channels", "num_upsamples"),
    "quantizer": ("code_dim",),
    "prior": ("input_shape", "num_levels", "num_classes"),
}
_PIXELCNN_DERIVED = ("input_shape", "num_classes")

PRESETS.update(
    {
        "vqvae": {
            "description": (
                "VQ-VAE (van den Oord et al. 2017): 7x7 codes from a 64-vector codebook (D=16), MSE, beta 0.25, "
                "dead-code restarts; its gated PixelCNN prior (128 wide, 8 blocks) is trained alongside on the codes."
            ),
            "family": "vqvae",
            "dataset": "mnist",
            "network": "vqvae",
            "epochs": 15,
            "batch_size": 64,
            "networks": {
                "encoder": {"code_dim": 16, "width": 32, "num_downsamples": 2, "num_residual": 1},
                "decoder": {"width": 32, "num_residual": 1},
                "quantizer": {"num_codes": 64},
                "prior": {"width": 128, "num_blocks": 8, "first_kernel_size": 7, "kernel_size": 3},
            },
            "model": {"likelihood": "gaussian", "commitment_weight": 0.25, "dead_code_steps": 20, "train_prior": True},
            "optimizers": {"optimizer": _adam(1e-3, 0.9), "prior_optimizer": _adam(1e-3, 0.9)},
        },
        "pixelcnn": {
            "description": (
                "Gated PixelCNN (van den Oord et al. 2016) on MNIST binarized at 0 (x >= 0 -> 1): exact likelihood, "
                "7x7 type-A then 3x3 type-B gated residual blocks."
            ),
            "family": "pixelcnn",
            "dataset": "mnist",
            "network": "pixelcnn",
            "epochs": 10,
            "batch_size": 64,
            "networks": {
                "pixel_cnn": {"num_levels": 2, "width": 32, "num_blocks": 5, "first_kernel_size": 7, "kernel_size": 3}
            },
            "model": {},
            "optimizers": {"optimizer": _adam(1e-3, 0.9)},
            "sample_count": 36,
        },
    }
)


def _check_builder_args(family, role, kwargs, derived):
    if not isinstance(kwargs, dict):
        raise ValueError(f"`networks.{role}` of a {family} config must be a dict of builder arguments.")
    bad = sorted(set(kwargs) & set(derived))
    if bad:
        raise ValueError(
            f"`networks.{role}` sets {bad}, which the {family} builder derives (from the dataset, `conditional` and "
            "the other networks); remove them."
        )


def _validate_vqvae(config):
    if config.network != "vqvae":
        raise ValueError(f"Unknown VQ-VAE network {config.network!r}. Valid: 'vqvae'.")
    if set(config.optimizers) != {"optimizer", "prior_optimizer"}:
        raise ValueError(
            f"A VQ-VAE config needs optimizers 'optimizer' and 'prior_optimizer'; got {sorted(config.optimizers)}."
        )
    unknown = set(config.networks) - set(_VQVAE_ROLES)
    if unknown:
        raise ValueError(f"Unknown network role(s) {sorted(unknown)} for a VQ-VAE: use {', '.join(_VQVAE_ROLES)}.")
    for role in _VQVAE_ROLES:
        _check_builder_args("VQ-VAE", role, config.networks.get(role, {}), _VQVAE_DERIVED[role])
    bad = set(config.model) - set(_VQVAE_MODEL_ARGS)
    if bad:
        raise ValueError(f"Unknown VQ-VAE model argument(s) {sorted(bad)}. Valid: {', '.join(_VQVAE_MODEL_ARGS)}.")


def _class_count(config, info, what):
    if not config.conditional:
        return None
    num_classes = info.get("num_classes")
    if not num_classes:
        raise ValueError(f"Dataset {config.dataset!r} has no labels: it cannot train a conditional {what}.")
    return num_classes


def _build_vqvae(config, info):
    import keras

    from keras_gen import networks as nets
    from keras_gen.models import VQVAE, PixelCNN

    shape = tuple(info["shape"])
    if len(shape) != 3:
        raise ValueError(f"The VQ-VAE networks need images (H, W, C); dataset {config.dataset!r} has {shape}.")
    num_classes = _class_count(config, info, "VQ-VAE prior")
    enc_kwargs = dict(config.networks.get("encoder", {}))
    encoder = nets.vq_encoder(image_shape=shape, **enc_kwargs)
    code_shape = tuple(int(s) for s in encoder.outputs[0].shape[1:])  # (h, w, D)
    decoder = nets.vq_decoder(
        code_shape=code_shape,
        channels=shape[-1],
        num_upsamples=enc_kwargs.get("num_downsamples", 2),
        **config.networks.get("decoder", {}),
    )
    quantizer = nets.VectorQuantizer(code_dim=code_shape[-1], name="quantizer", **config.networks.get("quantizer", {}))
    prior_net = nets.pixel_cnn(
        code_shape[:2], num_levels=quantizer.num_codes, num_classes=num_classes, name="prior_pixel_cnn",
        **config.networks.get("prior", {}),
    )
    prior = PixelCNN(prior_net, num_classes=num_classes, seed=config.seed, name="prior")
    model = VQVAE(encoder, decoder, quantizer, prior=prior, seed=config.seed, **config.model)
    model.compile(
        optimizer=keras.optimizers.get(copy.deepcopy(config.optimizers["optimizer"])),
        prior_optimizer=keras.optimizers.get(copy.deepcopy(config.optimizers["prior_optimizer"])),
        jit_compile=config.jit_compile,
        steps_per_execution=config.steps_per_execution,
    )
    return model


def _validate_pixelcnn(config):
    if config.network != "pixelcnn":
        raise ValueError(f"Unknown PixelCNN network {config.network!r}. Valid: 'pixelcnn'.")
    if set(config.optimizers) != {"optimizer"}:
        raise ValueError(
            f"A PixelCNN config needs exactly one optimizer, named 'optimizer'; got {sorted(config.optimizers)}."
        )
    unknown = set(config.networks) - {"pixel_cnn"}
    if unknown:
        raise ValueError(f"Unknown network role(s) {sorted(unknown)} for a PixelCNN: use 'pixel_cnn'.")
    _check_builder_args("PixelCNN", "pixel_cnn", config.networks.get("pixel_cnn", {}), _PIXELCNN_DERIVED)
    if config.model:
        raise ValueError(
            f"A PixelCNN takes no model arguments (classes come from `conditional`, the seed from `seed`); "
            f"got {sorted(config.model)}."
        )


def _build_pixelcnn(config, info):
    import keras

    from keras_gen import networks as nets
    from keras_gen.models import PixelCNN

    shape = tuple(info["shape"])
    if len(shape) != 3 or shape[-1] != 1:
        raise ValueError(
            f"A PixelCNN here models one value per pixel: it needs (H, W, 1) images; dataset {config.dataset!r} "
            f"has {shape}."
        )
    num_classes = _class_count(config, info, "PixelCNN")
    network = nets.pixel_cnn(shape[:2], num_classes=num_classes, **config.networks.get("pixel_cnn", {}))
    model = PixelCNN(network, num_classes=num_classes, seed=config.seed)
    model.compile(
        optimizer=keras.optimizers.get(copy.deepcopy(config.optimizers["optimizer"])),
        jit_compile=config.jit_compile,
        steps_per_execution=config.steps_per_execution,
    )
    return model


register_family("vqvae", _build_vqvae, _validate_vqvae)
register_family("pixelcnn", _build_pixelcnn, _validate_pixelcnn)
