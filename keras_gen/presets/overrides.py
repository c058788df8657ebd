"""Changing a `RunConfig` by the paths of its fields in ``config.json``: what ``keras-gen train --set KEY=VALUE``
does, with errors that name the key and list the valid ones at its level.

    config = apply_overrides(get_config("dcgan"), {"networks.generator.width": 32, "g_lr": 1e-4})

Keys:

    epochs, batch_size, seed, ...               a field of `RunConfig`
    networks.generator.width, model.r1_weight,  a path in ``config.json``; a network's or the model's keyword
    optimizers.g_optimizer.config.beta_1        arguments may be added where the builder takes them

Shortcuts, for what is set most:

    generator.width                             ``networks.ROLE.KEY``, for a network role of the config
    loss, r1_weight, beta, ...                  ``model.KEY``, a keyword argument of the family's model
    lr / g_lr / d_lr                            the learning rate of every optimizer / the generator's / the
                                                discriminator's; of a schedule, its ``initial_learning_rate`` (the
                                                schedule keeps its shape)
"""

import collections.abc
import dataclasses
import difflib
import inspect
import json

from keras_gen.presets import FAMILIES, RunConfig

__all__ = ["apply_overrides", "check_arguments", "parse_assignment", "parameters", "LEARNING_RATE_SHORTCUTS"]

LEARNING_RATE_SHORTCUTS = {"lr": None, "g_lr": "g_optimizer", "d_lr": "d_optimizer"}
"""``shortcut -> the optimizer whose learning rate it sets`` (None: every optimizer)."""

_GROUPS = ("networks", "model", "optimizers")  # the fields whose keys are free-form (checked by `check_arguments`)
_OPTIMIZER_KEYS = ("class_name", "config", "module", "registered_name")  # a Keras object config


def _fields():
    return [field.name for field in dataclasses.fields(RunConfig)]


def _unknown(key, where, valid, what="key"):
    """The ValueError of an unknown key: it names the key and its level, lists the valid keys and suggests one."""
    valid = list(valid)
    close = difflib.get_close_matches(str(key), valid, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return ValueError(f"Unknown {what} {key!r} {where}; valid: {', '.join(valid) or 'none'}.{hint}")


def parameters(builder, derived=()):
    """The keyword arguments a config may give ``builder`` (a function or a class): its named parameters, less
    ``derived`` (what the family's builder sets itself: from the data, the other networks, the role's name)."""
    skip = {"self", *derived}
    return tuple(
        name for name, parameter in inspect.signature(builder).parameters.items()
        if name not in skip and parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
    )


def parse_assignment(text):
    """``"KEY=VALUE"`` -> ``(KEY, value)``, the value read as JSON (``3``, ``1e-4``, ``true``, ``null``, ``[16, 16]``,
    ``{"class_name": ...}``) or else kept as a string (``hinge``).

    Raises:
        ValueError: no ``=`` or no key.
    """
    key, sep, raw = str(text).partition("=")
    key = key.strip()
    if not sep or not key:
        raise ValueError(f"Expected KEY=VALUE (e.g. epochs=3 or networks.generator.width=64), got {text!r}.")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return key, value


def _learning_rate_paths(shortcut, data):
    """The paths a learning-rate shortcut sets: each chosen optimizer's ``learning_rate``, or its schedule's
    ``initial_learning_rate``."""
    names = [LEARNING_RATE_SHORTCUTS[shortcut]] if LEARNING_RATE_SHORTCUTS[shortcut] else list(data["optimizers"])
    missing = [name for name in names if name not in data["optimizers"]]
    if missing or not names:
        raise ValueError(
            f"{shortcut!r} sets the learning rate of optimizers.{missing[0] if missing else '...'}, which this "
            f"{data['family']} config does not have; its optimizers: {', '.join(data['optimizers']) or 'none'} "
            "(use 'lr' for all of them)."
        )
    paths = []
    for name in names:
        rate = (data["optimizers"][name].get("config") or {}).get("learning_rate")
        schedule = isinstance(rate, dict) and "initial_learning_rate" in (rate.get("config") or {})
        tail = ("learning_rate", "config", "initial_learning_rate") if schedule else ("learning_rate",)
        paths.append(("optimizers", name, "config", *tail))
    return paths


def _paths(key, data):
    """The paths in the config's dict that ``key`` (a path or a shortcut) sets."""
    fields = _fields()
    parts = tuple(key.split("."))
    if any(not part for part in parts):
        raise ValueError(f"Key {key!r} has an empty part; write a path as in config.json: networks.generator.width.")
    head = parts[0]
    if head in fields:
        return [parts]
    if len(parts) == 1 and head in LEARNING_RATE_SHORTCUTS:
        return _learning_rate_paths(head, data)
    if len(parts) > 1 and head in data["networks"]:
        return [("networks", *parts)]
    family = FAMILIES.get(data["family"])
    allowed = family.arguments(RunConfig.from_dict(data)) if family else {}
    roles = [where.split(".", 1)[1] for where in allowed if where.startswith("networks.")]
    if len(parts) > 1 and head in roles:
        return [("networks", *parts)]
    model_arguments = list(allowed.get("model", ())) + [k for k in data["model"] if k not in allowed.get("model", ())]
    if len(parts) == 1 and head in model_arguments:
        return [("model", head)]
    roles = sorted(set(roles) | set(data["networks"]))
    if len(parts) > 1:
        raise _unknown(head, f"in {key!r}", [*fields, *roles])
    raise _unknown(
        key, "(not a config field, a learning-rate shortcut or a model argument)",
        [*fields, *LEARNING_RATE_SHORTCUTS, *model_arguments],
    )


def _set(data, path, value):
    node = data
    for depth, part in enumerate(path[:-1]):
        if part not in node and path[0] in _GROUPS:
            node[part] = {}  # a network role, an optimizer's config: checked when the config is validated
        child = node.get(part)
        if not isinstance(child, dict):
            raise ValueError(
                f"Cannot set {'.'.join(path)!r}: {'.'.join(path[: depth + 1])} is {child!r}, not a group of keys."
            )
        node = child
    node[path[-1]] = value


def apply_overrides(config, overrides):
    """A new `RunConfig`: ``config`` with each key set to its value (in order), then validated.

    Args:
        config: a `RunConfig` (left unchanged).
        overrides: ``{key: value}``, or a sequence of ``"KEY=VALUE"`` strings (``keras-gen train --set``; the
            value read as JSON, see `parse_assignment`) or ``(key, value)`` pairs. A key is a path as in
            ``config.json`` or a shortcut (the module docstring lists them).

    Returns:
        The new `RunConfig`.

    Raises:
        ValueError: an unknown key (the message names it and lists the valid keys at its level), a path through
            a value that is not a group of keys, or a config that is not valid afterwards.
    """
    if isinstance(overrides, collections.abc.Mapping):
        items = list(overrides.items())
    else:
        items = [parse_assignment(item) if isinstance(item, str) else tuple(item) for item in overrides]
    data = config.to_dict()
    for key, value in items:
        for path in _paths(key, data):
            _set(data, path, value)
    result = RunConfig.from_dict(data)
    check_arguments(result)
    return result


def _keras_classes(module, base):
    return {
        name: value for name, value in vars(module).items()
        if isinstance(value, type) and issubclass(value, base) and value is not base
    }


def _check_schedule(spec, where):
    import keras

    schedules = _keras_classes(keras.optimizers.schedules, keras.optimizers.schedules.LearningRateSchedule)
    unknown = [key for key in spec if key not in _OPTIMIZER_KEYS]
    if unknown:
        raise _unknown(unknown[0], f"under {where}", _OPTIMIZER_KEYS)
    cls = schedules.get(spec.get("class_name"))
    if cls is None:
        raise _unknown(spec.get("class_name"), f"at {where}.class_name", sorted(schedules), "learning-rate schedule")
    names = parameters(cls)
    valid = [*names, *(name[: -len("_steps")] + "_epochs" for name in names if name.endswith("_steps"))]
    for key in spec.get("config") or {}:
        if key not in valid:
            raise _unknown(key, f"under {where}.config", valid)


def _check_optimizer(spec, where):
    import keras

    if not isinstance(spec, dict):
        raise ValueError(f"{where} must be a Keras optimizer config {{'class_name': ..., 'config': {{...}}}}, got "
                         f"{spec!r}.")
    unknown = [key for key in spec if key not in _OPTIMIZER_KEYS]
    if unknown:
        raise _unknown(unknown[0], f"under {where}", _OPTIMIZER_KEYS)
    optimizers = _keras_classes(keras.optimizers, keras.optimizers.Optimizer)
    cls = optimizers.get(spec.get("class_name"))
    if cls is None:
        raise _unknown(spec.get("class_name"), f"at {where}.class_name", sorted(optimizers), "optimizer class")
    config = spec.get("config") or {}
    if not isinstance(config, dict):
        raise ValueError(f"{where}.config must be a dict of {cls.__name__} arguments, got {config!r}.")
    valid = parameters(cls)
    for key, value in config.items():
        if key not in valid:
            raise _unknown(key, f"under {where}.config", valid)
        if isinstance(value, dict):
            _check_schedule(value, f"{where}.config.{key}")


def check_arguments(config):
    """Checks every key of ``config.networks``, ``config.model`` and ``config.optimizers`` against what its builder
    takes (the family's `arguments`, Keras' optimizers and schedules), before anything is built.

    Raises:
        ValueError: ``"Unknown key 'widht' under networks.generator; valid: latent_dim, width, ..."``.
    """
    allowed = FAMILIES[config.family].arguments(config)
    for where, valid in allowed.items():
        section, _, role = where.partition(".")
        given = (config.networks.get(role) or {}) if role else getattr(config, section)
        for key in given:
            if key not in valid:
                raise _unknown(key, f"under {where}", valid)
    for name, spec in config.optimizers.items():
        _check_optimizer(spec, f"optimizers.{name}")
