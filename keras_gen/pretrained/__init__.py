"""Trained models shipped with keras-gen: sample, evaluate and export them without training.

    >>> gan = keras_gen.from_preset("dcgan-mnist")
    >>> images = gan.generate(16, seed=0)                     # (16, 28, 28, 1) in [-1, 1]

Everywhere a run folder is accepted, ``pretrained:NAME`` is too (`keras_gen.runs.resolve_run_dir`):
``keras-gen sample pretrained:dcgan-mnist --out grid.png``, ``keras-gen export pretrained:dcgan-mnist --out
exports``, ``keras_gen.load_run("pretrained:vae-mnist")``. Nothing is ever written into a shipped model's folder
(it may be inside the installed package): what a command writes goes to ``--out`` or the current directory.

Each model is a folder beside this file that reads like a run folder::

    NAME/config.json         the RunConfig it was trained with (the networks are rebuilt from it)
    NAME/dataset.json        the dataset's shape, classes and value range
    NAME/pretrained.json     the record: the weight file of each network, the optimizer steps it trained, the
                             commands that made the folder and their wall time
    NAME/ROLE.weights.h5     the weights of the networks sampling needs (a GAN's generator; a VAE's encoder and
                             decoder): Keras weight files whose values are stored in float16
    NAME/README.md           the model card: what it is, how it was trained, its evaluation
    NAME/eval.json           what ``keras-gen evaluate pretrained:NAME`` wrote, with default settings
    NAME/samples.npy         ``generate(16, seed=0)`` of the loaded model: what the tests compare a load with

A loaded model is the preset's model with those weights: the networks that are not shipped (a GAN's
discriminator) and the optimizers are freshly initialized, and ``model.trained_steps`` says how many optimizer
steps the shipped weights took (the exporter reads it). `scripts/train_pretrained.py` makes the folders;
docs/pretrained.md lists the models and their numbers.
"""

import json
import os

__all__ = ["PREFIX", "RECORD", "from_preset", "list_pretrained", "load_model_dir", "model_dir", "name_of", "parse"]

PREFIX = "pretrained:"
"""How a run argument names a shipped model: ``pretrained:NAME``."""

RECORD = "pretrained.json"
"""The file that makes a folder a shipped model's."""

_ROOT = os.path.dirname(os.path.abspath(__file__))


def list_pretrained():
    """The names of the shipped models, sorted."""
    return sorted(
        name for name in os.listdir(_ROOT)
        if not name.startswith((".", "_")) and os.path.isfile(os.path.join(_ROOT, name, RECORD))
    )


def parse(run_dir):
    """``"pretrained:NAME"`` -> ``"NAME"``; anything else (a path) -> None."""
    if isinstance(run_dir, str) and run_dir.startswith(PREFIX):
        return run_dir[len(PREFIX):]
    return None


def model_dir(name):
    """The folder of the shipped model ``name`` (``"dcgan-mnist"`` or ``"pretrained:dcgan-mnist"``).

    Raises:
        ValueError: no model of that name is shipped (the message lists the shipped ones).
    """
    if not isinstance(name, str):
        raise TypeError(f"A pretrained model's name is a string such as 'dcgan-mnist', got {type(name).__name__}.")
    name = parse(name) or name
    shipped = list_pretrained()
    if name not in shipped:
        raise ValueError(
            f"No pretrained model named {name!r}. Shipped: {', '.join(shipped) or 'none'} (docs/pretrained.md). "
            f"To train a preset instead: keras-gen train PRESET."
        )
    return os.path.join(_ROOT, name)


def _read_record(folder):
    path = os.path.join(folder, RECORD)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.") from exc


def name_of(path):
    """The name of the shipped model whose folder ``path`` is (it holds a `RECORD`), or None for any other path."""
    folder = os.fspath(path)
    if not os.path.isfile(os.path.join(folder, RECORD)):
        return None
    return _read_record(folder).get("name") or os.path.basename(os.path.abspath(folder))


def load_model_dir(folder):
    """Builds the model of a shipped model's folder (its ``config.json`` and ``dataset.json``) and loads the
    weights its record lists; ``trained_steps`` is set from the record.

    Raises:
        FileNotFoundError: a file the folder should hold is missing (named).
        ValueError: a record or config that is not valid, or a weight file that does not fit its network.
    """
    from keras_gen.presets import RunConfig, build_model

    folder = os.fspath(folder)
    for required in (RECORD, "config.json", "dataset.json"):
        if not os.path.isfile(os.path.join(folder, required)):
            raise FileNotFoundError(f"{folder} is not a complete pretrained model: {required} is missing.")
    record = _read_record(folder)
    config = RunConfig.load(os.path.join(folder, "config.json"))
    with open(os.path.join(folder, "dataset.json"), encoding="utf-8") as f:
        info = json.load(f)
    model = build_model(config, info)
    for role, filename in record["weights"].items():
        network = getattr(model, role, None)
        if network is None:
            raise ValueError(f"{folder}/{RECORD} lists weights of a {role!r}, which a {type(model).__name__} lacks.")
        path = os.path.join(folder, filename)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{folder} is not a complete pretrained model: {filename} is missing.")
        try:
            network.load_weights(path)  # float16 values; each variable keeps its float32 dtype
        except Exception as exc:  # a weight file of other shapes or a corrupt one mean the same here
            raise ValueError(f"Could not load {path} into the {role} of {config.preset!r}: {exc}") from exc
    model.trained_steps = int(record["trained_steps"])
    return model


def from_preset(name):
    """A model shipped with keras-gen, ready to ``generate`` (and to export, evaluate, encode for a VAE).

    Args:
        name: a shipped model's name (`list_pretrained`: ``"dcgan-mnist"``, ``"cgan-mnist"``, ``"acgan-mnist"``,
            ``"vae-mnist"``); ``"pretrained:NAME"`` works too.

    Returns:
        The preset's compiled model (`keras_gen.GAN`, `keras_gen.VAE`) with the shipped weights; its
        ``trained_steps`` is the number of optimizer steps they took. Networks that are not shipped (a GAN's
        discriminator) and the optimizers start fresh.

    Raises:
        ValueError: an unknown name (the message lists the shipped ones).

    Example:
        >>> vae = keras_gen.from_preset("vae-mnist")
        >>> z = vae.encode(images)                          # and vae.reconstruct(images), vae.generate(16, seed=0)
    """
    return load_model_dir(model_dir(name))
