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


def _dcgan_preset(description, model=None, generator=None, discriminator=None, **overrides):
    preset = {
        "description": description,
        "family": "gan",
        "dataset": "mnist",
        "network": "dcgan",
        "epochs": 30,
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
    "ring2d": _mlp_preset("MLP GAN on 8 Gaussians on the unit circle (sigma 0.01).", "ring2d"),
    "grid2d": _mlp_preset("MLP GAN on 25 Gaussians on a 5x5 grid (sigma 0.05).", "grid2d"),
    "pacgan-ring2d": _mlp_preset(
        "PacGAN (Lin et al. 2018) on the 2-D ring: the discriminator judges 4 samples at once.",
        "ring2d",
        discriminator={"packing": 4},
    ),
    "pacgan-grid2d": _mlp_preset(
        "PacGAN on the 2-D grid: the discriminator judges 4 samples at once.",
        "grid2d",
        discriminator={"packing": 4},
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
        mixed_precision: ``None``, ``"mixed_float16"`` or ``"mixed_bfloat16"``.
        data_dir: TFDS data directory, for TFDS datasets.
        sample_count: samples per grid (images) or scatter plot (points).
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
    mixed_precision: str = None
    data_dir: str = None
    sample_count: int = 64

    def __post_init__(self):
        self.validate()

    def validate(self):
        """Raises ValueError naming the first invalid field."""
        if self.family not in FAMILIES:
            raise ValueError(f"Unknown model family {self.family!r}. Valid: {', '.join(sorted(FAMILIES))}.")
        for name in ("epochs", "batch_size", "sample_count"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"`seed` must be an integer, got {self.seed!r}.")
        if self.mixed_precision not in (None, "mixed_float16", "mixed_bfloat16"):
            raise ValueError(
                f"`mixed_precision` must be None, 'mixed_float16' or 'mixed_bfloat16', got {self.mixed_precision!r}."
            )
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
    )
    return gan


register_family("gan", _build_gan, _validate_gan)


def run_dir_config(run_dir):
    """The `RunConfig` stored in a run folder; a clear error if the folder is not a run folder."""
    path = os.path.join(os.fspath(run_dir), "config.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{run_dir!r} is not a keras-gen run folder: {path} does not exist.")
    return RunConfig.load(path)
