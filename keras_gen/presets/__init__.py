"""Named presets, the run configuration they resolve to, and the registry of model families.

A preset is plain data: a dict of `RunConfig` fields. `get_config("dcgan", epochs=5)` returns a validated
`RunConfig`; `build_model(config)` turns it into a compiled model; the CLI writes the config as
``config.json`` in the run folder, so every run can be rebuilt from its folder (`RunConfig.load`).
`apply_overrides(config, {"networks.generator.width": 32})` changes any field by its path in ``config.json``
(``keras-gen train --set``), and `build_model(config, data=x)` builds a preset's model for your own arrays or
`tf.data` pipeline (`OwnData`; docs/own_data.md).

Schedules follow the data: a learning-rate schedule in a preset gives its lengths in epochs (``decay_epochs``),
and `optimizer` turns them into steps from the size of the data the model trains on and the batch size.

One registry, filled by the families beside it (as keras-hub keeps each model's presets with the model): each
module of this package registers a family's builder and validator (`register_family`) and its presets
(`register_presets`):

    presets/gan.py        family "gan": DCGAN and MLP GANs (dcgan, cgan, wgan, ..., ring2d, stacked MNIST)
    presets/vae.py        family "vae": vae, conv-vae, beta-vae, cvae
    presets/vq_vae.py     families "vqvae" and "pixelcnn": vqvae, pixelcnn
"""

import copy
import dataclasses
import json
import os

from keras_gen import checks
from keras_gen.files import write_json

__all__ = [
    "PRESETS", "REMOVED_PRESETS", "removed_preset", "FAMILIES", "RunConfig", "get_config", "list_presets",
    "build_model", "register_family", "register_presets", "run_dir_config", "adam", "class_count", "compile_options",
    "optimizer", "steps_per_epoch", "apply_overrides", "parse_assignment", "check_arguments", "OwnData",
]

PRESETS = {}
"""Named presets: ``name -> dict of RunConfig fields`` (filled by the family modules)."""


def adam(learning_rate, beta_1, beta_2=0.999):
    """A Keras ``Adam`` optimizer config (what presets store)."""
    return {"class_name": "Adam", "config": {"learning_rate": learning_rate, "beta_1": beta_1, "beta_2": beta_2}}



@dataclasses.dataclass
class RunConfig:
    """Everything needed to rebuild a training run.

    Attributes:
        preset: the preset this config started from.
        description: one line about it.
        family: model family (``"gan"``; a key of `FAMILIES`).
        dataset: a `keras_gen.data.load_dataset` name; for a run on your own data (`OwnData`), what the data was,
            e.g. ``"arrays (5000, 28, 28, 1)"`` or ``"tf.data (None, 28, 28, 1)"``.
        network: network builder (``"dcgan"`` or ``"mlp"`` for GANs).
        networks: keyword arguments of each network builder, by role.
        model: keyword arguments of the model class (e.g. GAN's ``loss``, ``d_steps``).
        optimizers: Keras optimizer configs (``{"class_name": ..., "config": ...}``) by compile argument name. A
            learning-rate schedule in them may give a length in epochs: any ``X_epochs`` key of its config (e.g.
            ``decay_epochs`` of a ``CosineDecay``) becomes ``X_steps`` when the model is built, from the number of
            steps an epoch of the training data takes (`steps_per_epoch`).
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
    image_size: list = None
    channels: int = None
    center_crop: bool = False

    def __post_init__(self):
        self.validate()
        if self.image_size is not None:  # one spelling, as JSON stores it: [height, width]
            size = self.image_size
            self.image_size = [size, size] if isinstance(size, int) else [int(s) for s in size]

    def validate(self):
        """Raises ValueError naming the first invalid field."""
        if self.family not in FAMILIES:
            raise ValueError(f"Unknown model family {self.family!r}. Valid: {', '.join(sorted(FAMILIES))}.")
        for name in ("epochs", "batch_size", "sample_count", "steps_per_execution"):
            checks.integer(getattr(self, name), name, 1)
        checks.integer(self.seed, "seed")
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
        size = self.image_size
        sizes = [size, size] if isinstance(size, int) else size
        if size is not None and not (
            isinstance(sizes, (list, tuple)) and len(sizes) == 2
            and all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in sizes)
        ):
            raise ValueError(f"`image_size` must be None, a positive int or [height, width], got {size!r}.")
        if isinstance(self.channels, bool) or self.channels not in (None, 1, 3, 4):
            raise ValueError(f"`channels` must be None (decided from the data), 1, 3 or 4, got {self.channels!r}.")
        if not isinstance(self.center_crop, bool):
            raise ValueError(f"`center_crop` must be True or False, got {self.center_crop!r}.")
        if self.center_crop and size is None:
            raise ValueError("`center_crop` needs `image_size`: the size whose aspect ratio to crop to.")
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
        return write_json(path, self.to_dict(), sort_keys=True)

    @classmethod
    def load(cls, path):
        """Reads a config written by `save` (e.g. a run folder's ``config.json``).

        Raises:
            FileNotFoundError: no file at ``path``.
            ValueError: the file is not JSON, not a JSON object, or not a valid config; the message names the file
                (and, for JSON errors, the line and column).
        """
        path = os.fspath(path)
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except UnicodeDecodeError as exc:
            raise ValueError(f"{path} is not valid JSON: not UTF-8 text ({exc.reason} at byte {exc.start}).") from exc
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}. A run's config.json "
                "is written by keras-gen; restore it, or rebuild it with `keras_gen.presets.get_config(...).save`."
            ) from exc
        if not isinstance(data, dict):
            kinds = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
            raise ValueError(
                f"{path} must hold a JSON object of RunConfig fields; it holds {kinds.get(type(data), 'a number')}."
            )
        try:
            return cls.from_dict(data)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{path} is not a valid run config: {exc}") from exc


class _Family:
    """A model family: how to validate its config fields, which keyword arguments its networks and model take, and
    how to build its compiled model."""

    def __init__(self, build, validate=None, arguments=None):
        self.build = build
        self._validate = validate
        self._arguments = arguments

    def validate(self, config):
        if self._validate is not None:
            self._validate(config)

    def arguments(self, config):
        """``{"networks.ROLE": names, "model": names}``: the keys each of those dicts of ``config`` may hold, or
        ``{}`` when the family does not say (then they are checked only when the model is built)."""
        return {} if self._arguments is None else self._arguments(config)


FAMILIES = {}
"""Model families by name: ``name -> _Family(build, validate)``."""


def register_family(name, build, validate=None, arguments=None):
    """Registers a model family: ``build(config, info) -> compiled keras.Model``, ``validate(config)`` and, optionally,
    ``arguments(config) -> {"networks.ROLE": names, "model": names}`` (the keys `check_arguments` accepts there)."""
    FAMILIES[name] = _Family(build, validate, arguments)


def register_presets(presets):
    """Adds named presets (``name -> dict of RunConfig fields``); a name already taken is refused."""
    taken = sorted(set(presets) & set(PRESETS))
    if taken:
        raise ValueError(f"Preset name(s) {taken} are taken.")
    PRESETS.update(presets)


def steps_per_epoch(config, info):
    """The train steps of one epoch of the data ``info`` describes at ``config.batch_size``: its ``"batches"``
    (a `tf.data` pipeline's, `OwnData`) or ``train examples // batch_size`` (the last partial batch is dropped, as
    `keras_gen.runs.train_run` does); None when the size of the data is not known."""
    if info.get("batches"):
        return int(info["batches"])
    examples = (info.get("splits") or {}).get("train")
    return examples // config.batch_size if examples else None


def _schedule_in_steps(value, steps, where):
    """``value`` (an optimizer config or a part of it) with every ``X_epochs`` key of a Keras object config
    (``{"class_name", "config"}``) replaced by ``X_steps = round(X_epochs * steps)``."""
    if isinstance(value, list):
        return [_schedule_in_steps(item, steps, where) for item in value]
    if not isinstance(value, dict):
        return value
    resolved = {}
    for key, item in value.items():
        if key.endswith("_epochs"):
            if steps is None:
                raise ValueError(
                    f"{where} gives `{key}`={item!r} in epochs, but how many steps an epoch takes is unknown (the "
                    "data's size is unknown): give the schedule in steps (`" + key[: -len("_epochs")] + "_steps`), "
                    "or data whose size is known (a tf.data pipeline: "
                    "`dataset.apply(tf.data.experimental.assert_cardinality(batches))`)."
                )
            resolved[key[: -len("_epochs")] + "_steps"] = max(1, round(item * steps))
        else:
            resolved[key] = _schedule_in_steps(item, steps, where)
    return resolved


def optimizer(config, name, info=None, updates_per_step=1):
    """A fresh Keras optimizer from ``config.optimizers[name]`` (the config keeps its own copy).

    A schedule length given in epochs (``decay_epochs``, ...) becomes steps: ``epochs * steps_per_epoch(config,
    info) * updates_per_step``, rounded.

    Args:
        config: a `RunConfig`.
        name: the optimizer's name in ``config.optimizers`` (``"g_optimizer"``).
        info: the training data's `keras_gen.data.dataset_info` (or `OwnData.info`); needed only for a schedule
            in epochs.
        updates_per_step: how many times the optimizer updates per train step (a GAN's ``d_steps`` for the
            discriminator's).
    """
    import keras

    steps = steps_per_epoch(config, info) if info is not None else None
    steps = None if steps is None else steps * updates_per_step
    resolved = _schedule_in_steps(copy.deepcopy(config.optimizers[name]), steps, f"optimizers.{name}")
    return keras.optimizers.get(resolved)


def compile_options(config):
    """The ``compile`` arguments every family passes from its config: ``jit_compile``, ``steps_per_execution``."""
    return {"jit_compile": config.jit_compile, "steps_per_execution": config.steps_per_execution}


def class_count(config, info, what):
    """The classes a conditional model of ``config`` learns (the dataset's), or None for an unconditional one;
    a ValueError when the dataset has no labels."""
    if not config.conditional:
        return None
    num_classes = info.get("num_classes")
    if not num_classes:
        raise ValueError(f"Dataset {config.dataset!r} has no labels: it cannot train a conditional {what}.")
    return num_classes


def list_presets():
    """``[(name, description), ...]`` for every preset, sorted by name."""
    return sorted((name, preset["description"]) for name, preset in PRESETS.items())


REMOVED_PRESETS = {
    "pacgan-grid2d": "packing without R1 drew 23 % high-quality samples on the 2-D grid over 10 seeds, short of the "
    "grid's goal of 95 %. Train `grid2d` (R1), which meets it; docs/evaluation.md (\"Mode coverage\").",
}
"""Presets that were removed, with why and what to train instead (`get_config` says so for their names). A run
folder made from one still loads, resumes and exports: its ``config.json`` holds every field."""


def removed_preset(preset):
    """What to say of ``preset`` when it is a removed preset (and no preset of that name was registered since):
    ``"The preset 'NAME' was removed: why, and what to train instead"``; otherwise None."""
    if preset in REMOVED_PRESETS and preset not in PRESETS:
        return f"The preset {preset!r} was removed: {REMOVED_PRESETS[preset]}"
    return None


def get_config(preset, **overrides):
    """The validated `RunConfig` of a preset, with field overrides (``None`` values are ignored).

    Raises:
        ValueError: unknown preset (the message lists the valid ones) or invalid field.
    """
    if message := removed_preset(preset):
        raise ValueError(message)
    if preset not in PRESETS:
        raise ValueError(f"Unknown preset {preset!r}. Valid presets: {', '.join(sorted(PRESETS))}.")
    data = copy.deepcopy(PRESETS[preset])
    data.update({k: v for k, v in overrides.items() if v is not None})
    return RunConfig.from_dict({"preset": preset, **data})


def build_model(config, info=None, data=None):
    """Builds and compiles the model a `RunConfig` describes, for its dataset or for your own data.

    Args:
        config: a `RunConfig`.
        info: the dataset's `keras_gen.data.dataset_info` (looked up when omitted).
        data: your own training data instead of ``config.dataset``: NumPy arrays ``x`` or ``(x, labels)``, or a
            `tf.data` pipeline of batches (see `OwnData`; docs/own_data.md). The model fits its shape and classes,
            and schedules in epochs are sized for it.

    Raises:
        ValueError: a key of ``config.networks`` / ``config.model`` / ``config.optimizers`` that its builder does
            not take (`check_arguments`), data that does not fit, or both ``info`` and ``data``.

    Example:
        >>> x = np.random.default_rng(0).normal(size=(5000, 2)).astype("float32")   # your own 2-D points
        >>> gan = build_model(get_config("ring2d"), data=x)   # its cosine decay spans 100 epochs of 5000 points
    """
    if data is not None:
        if info is not None:
            raise ValueError("Give `data` (your own data) or `info` (a named dataset's description), not both.")
        own = OwnData(data, config)
        config, info = own.config, own.info
    check_arguments(config)
    if info is None:
        from keras_gen.data import dataset_info

        info = dataset_info(
            config.dataset, data_dir=config.data_dir, image_size=config.image_size, channels=config.channels,
            center_crop=config.center_crop,
        )
    return FAMILIES[config.family].build(config, info)



def run_dir_config(run_dir):
    """The `RunConfig` stored in a run folder (or ``pretrained:NAME``, a model shipped with the package:
    `keras_gen.runs.resolve_run_dir`); a clear error if the folder is not a run folder."""
    from keras_gen.runs import resolve_run_dir

    run_dir, _ = resolve_run_dir(run_dir)
    path = os.path.join(run_dir, "config.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{run_dir!r} is not a keras-gen run folder: {path} does not exist.")
    return RunConfig.load(path)


# The families register themselves and their presets on import.
from keras_gen.presets import gan, vae, vq_vae  # noqa: E402, F401
from keras_gen.presets.overrides import apply_overrides, check_arguments, parse_assignment  # noqa: E402
from keras_gen.presets.own_data import OwnData  # noqa: E402
