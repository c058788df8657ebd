"""`LatentSpec`: a model's inputs, defined once: the latent's parts and the conditioning inputs beside them.

A latent is one or more named **parts**, each with a per-sample shape and a distribution; a model may also take
**conditions** (a class label, an image) that are given, not drawn. The spec is the one definition that every
consumer reads:

=========================================  ==========================================================
who                                        what it asks of the spec
=========================================  ==========================================================
the model (`GenerativeModel.latent_spec`)  `sample` while training and in ``generate(n, seed)``
export (``keras_gen.export``)              the ``generate`` inputs (`tensor_specs`), the in-graph ``sample``
``keras_gen.export.load`` and the server   the same draw for TFLite / ONNX, which cannot hold it (`from_dict`)
``manifest.json``                          `to_dict`
=========================================  ==========================================================

Distributions (`DISTRIBUTIONS`), drawn with `keras_gen.rng` so the numbers are the same with and without XLA, in
Keras and in an exported SavedModel:

- ``normal(loc=0, scale=1)``: ``loc + scale * rng.normal``; float32.
- ``uniform(low=0, high=1)``: ``low + (high - low) * rng.uniform``, in the open interval; float32.
- ``categorical(num_classes=K)``: ``min(floor(K * rng.uniform), K - 1)``, equally likely classes; int32. The
  network sees it one-hot.

Seeds: with an integer ``seed``, part ``i`` is drawn with the seed pair ``[seed, i]`` (part 0 with ``[seed, 0]``,
the draw single-latent models have always made); with a ``[2]`` seed tensor ``s``, with ``s + [0, i]``; with a
`keras.random.SeedGenerator`, each part advances it once.

The network takes one tensor (`network_input`): a single continuous part as it is, otherwise every part flattened
and concatenated in order, categorical parts one-hot.

Example:
    >>> spec = LatentSpec([LatentPart("z", (62,)), LatentPart("digit", (), "categorical", num_classes=10),
    ...                    LatentPart("style", (2,), "uniform", low=-1.0, high=1.0)])
    >>> parts = spec.sample(16, seed=0)          # {"z": (16, 62), "digit": (16,) int32, "style": (16, 2)}
    >>> z = spec.network_input(parts)            # (16, 74): z, one-hot digit, style
"""

import dataclasses
import math
import numbers

import numpy as np

__all__ = ["DISTRIBUTIONS", "CONDITION_KINDS", "LatentPart", "Condition", "LatentSpec"]

DISTRIBUTIONS = {
    "normal": {"loc": 0.0, "scale": 1.0},
    "uniform": {"low": 0.0, "high": 1.0},
    "categorical": {"num_classes": None},
}
"""``{distribution: {parameter: default}}`` (None: required)."""

CONDITION_KINDS = ("label", "image")
"""What a model may be conditioned on: a class label (int32 ``(B,)``) or an image (float32 ``(B, H, W, C)``)."""

_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789_")
_RESERVED = ("n", "seed")  # the `sample` signature's own inputs


def _check_name(name, what):
    if not isinstance(name, str) or not name or not set(name) <= _NAME_CHARS or name[0].isdigit():
        raise ValueError(
            f"The {what} name must be a non-empty lower-case identifier (a-z, 0-9, _), got {name!r}: it names an "
            "input of the exported signatures."
        )
    if name in _RESERVED:
        raise ValueError(f"The {what} name {name!r} is reserved for the `sample` signature's inputs {_RESERVED}.")
    return name


def _check_shape(shape, what):
    if isinstance(shape, numbers.Integral) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)) or any(
        isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 1 for d in shape
    ):
        raise ValueError(f"The shape of {what} must be positive integers (a tuple), got {shape!r}.")
    return tuple(int(d) for d in shape)


def _check_number(value, what):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, got {value!r}.")
    return float(value)


@dataclasses.dataclass(frozen=True)
class LatentPart:
    """One named part of a latent.

    Attributes:
        name: the part's name (the input name of the exported ``generate`` signature).
        shape: the shape of one sample's part (``()`` for one class per sample).
        distribution: a key of `DISTRIBUTIONS`.
        params: the distribution's parameters (defaults filled in), e.g. ``{"low": -1.0, "high": 1.0}``.
    """

    name: str
    shape: tuple = ()
    distribution: str = "normal"
    params: dict = dataclasses.field(default_factory=dict)

    def __init__(self, name, shape=(), distribution="normal", **params):
        name = _check_name(name, "latent part")
        if distribution not in DISTRIBUTIONS:
            raise ValueError(
                f"Latent part {name!r}: unknown distribution {distribution!r}. Valid: {', '.join(DISTRIBUTIONS)}."
            )
        defaults = DISTRIBUTIONS[distribution]
        unknown = sorted(set(params) - set(defaults))
        if unknown:
            raise ValueError(
                f"Latent part {name!r}: {distribution} takes {', '.join(defaults)}, not {', '.join(unknown)}."
            )
        values = {**defaults, **params}
        if distribution == "categorical":
            k = values["num_classes"]
            if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 2:
                raise ValueError(f"Latent part {name!r}: `num_classes` must be an integer >= 2, got {k!r}.")
            values["num_classes"] = int(k)
        else:
            values = {key: _check_number(v, f"Latent part {name!r}: `{key}`") for key, v in values.items()}
        if distribution == "normal" and values["scale"] <= 0:
            raise ValueError(f"Latent part {name!r}: `scale` must be > 0, got {values['scale']!r}.")
        if distribution == "uniform" and not values["low"] < values["high"]:
            raise ValueError(f"Latent part {name!r}: needs low < high, got {values['low']!r}, {values['high']!r}.")
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "shape", _check_shape(shape, f"latent part {name!r}"))
        object.__setattr__(self, "distribution", distribution)
        object.__setattr__(self, "params", values)

    @property
    def categorical(self):
        return self.distribution == "categorical"

    @property
    def dtype(self):
        """``"int32"`` for a categorical part, else ``"float32"``."""
        return "int32" if self.categorical else "float32"

    @property
    def size(self):
        """Width of this part in the network input: its elements (categorical: one-hot, times the classes)."""
        elements = math.prod(self.shape)
        return elements * self.params["num_classes"] if self.categorical else elements

    def describe(self):
        args = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.params.items())
        return f"{self.name} {self.distribution}({args}) {list(self.shape)}"

    def to_dict(self):
        return {"name": self.name, "shape": list(self.shape), "distribution": self.distribution, **self.params}

    # --------------------------------------------------------------------------- drawing (TensorFlow)
    def draw(self, n, seed):
        """``n`` draws, ``(n, *shape)``, with `keras_gen.rng` (``seed``: int, ``[2]`` tensor or SeedGenerator)."""
        from keras_gen import rng

        shape = (n,) + self.shape
        if self.distribution == "normal":
            value = rng.normal(shape, seed)
            loc, scale = self.params["loc"], self.params["scale"]
            return value if (loc, scale) == (0.0, 1.0) else loc + scale * value
        u = rng.uniform(shape, seed)
        if self.distribution == "uniform":
            low, high = self.params["low"], self.params["high"]
            return u if (low, high) == (0.0, 1.0) else low + (high - low) * u
        import tensorflow as tf

        k = self.params["num_classes"]
        return tf.minimum(tf.cast(tf.floor(u * k), tf.int32), k - 1)

    def example(self, n, generator):
        """``n`` valid NumPy values from a `numpy.random.Generator` (parity checks, calibration)."""
        shape = (n,) + self.shape
        if self.distribution == "normal":
            return (self.params["loc"] + self.params["scale"] * generator.standard_normal(shape)).astype("float32")
        if self.distribution == "uniform":
            low, high = self.params["low"], self.params["high"]
            eps = 1e-6 * (high - low)
            return generator.uniform(low + eps, high - eps, shape).astype("float32")
        return generator.integers(0, self.params["num_classes"], size=shape).astype("int32")


@dataclasses.dataclass(frozen=True)
class Condition:
    """An input the model is given, not drawn: a class ``"label"`` or an ``"image"``.

    Attributes:
        name: the input name (``"label"``, ``"images"``).
        kind: ``"label"`` or ``"image"``.
        num_classes: classes of a label.
        shape: per-sample shape of an image ``(H, W, C)``.
        value_range: ``(low, high)`` of an image's values.
    """

    name: str
    kind: str
    num_classes: int = None
    shape: tuple = None
    value_range: tuple = None

    def __post_init__(self):
        _check_name(self.name, "condition")
        if self.kind not in CONDITION_KINDS:
            raise ValueError(
                f"Condition {self.name!r}: unknown kind {self.kind!r}. Valid: {', '.join(CONDITION_KINDS)}."
            )
        if self.kind == "label":
            k = self.num_classes
            if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
                raise ValueError(f"Condition {self.name!r}: a label needs `num_classes` >= 1, got {k!r}.")
            object.__setattr__(self, "num_classes", int(k))
        else:
            object.__setattr__(self, "shape", _check_shape(self.shape, f"condition {self.name!r}"))
            low, high = self.value_range or (-1.0, 1.0)
            if not _check_number(low, "`value_range`") < _check_number(high, "`value_range`"):
                raise ValueError(f"Condition {self.name!r}: `value_range` needs low < high, got {self.value_range!r}.")
            object.__setattr__(self, "value_range", (float(low), float(high)))

    @property
    def dtype(self):
        return "int32" if self.kind == "label" else "float32"

    @property
    def sample_shape(self):
        """Per-sample shape: ``()`` for a label."""
        return () if self.kind == "label" else self.shape

    def to_dict(self):
        out = {"name": self.name, "kind": self.kind}
        if self.kind == "label":
            out["num_classes"] = self.num_classes
        else:
            out.update(shape=list(self.shape), value_range=list(self.value_range))
        return out


class LatentSpec:
    """A model's latent parts and conditions (see the module docstring).

    Args:
        parts: `LatentPart` s (or their `to_dict` dicts), in network-input order; may be empty for a model that
            draws nothing (a translator).
        conditions: `Condition` s (or dicts).
    """

    def __init__(self, parts=(), conditions=()):
        self.parts = tuple(p if isinstance(p, LatentPart) else _part_from_dict(p) for p in parts)
        self.conditions = tuple(c if isinstance(c, Condition) else Condition(**_condition_args(c)) for c in conditions)
        names = [p.name for p in self.parts] + [c.name for c in self.conditions]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"Latent parts and conditions need distinct names; repeated: {repeated}.")
        if len(self.parts) > 1:
            for part in self.parts:
                if not part.categorical and len(part.shape) > 1:
                    raise ValueError(
                        f"Latent part {part.name!r} has shape {part.shape}: a latent of several parts concatenates "
                        "them as vectors, so each part must be a vector or a scalar."
                    )

    # --------------------------------------------------------------------------- constructors
    @classmethod
    def normal(cls, shape, name="z", conditions=()):
        """A single standard normal part: the prior of most GANs and VAEs."""
        return cls([LatentPart(name, shape, "normal")], conditions)

    @classmethod
    def uniform(cls, shape, low=0.0, high=1.0, name="z", conditions=()):
        """A single uniform part (e.g. the Gumbel-max noise of PixelCNN sampling, on (0, 1))."""
        return cls([LatentPart(name, shape, "uniform", low=low, high=high)], conditions)

    @classmethod
    def from_dict(cls, data):
        """The spec of `to_dict` (a manifest's ``model.latent``)."""
        if isinstance(data, LatentSpec):
            return data
        if not isinstance(data, dict) or not isinstance(data.get("parts", []), list):
            raise ValueError(f"A latent spec is a dict with a 'parts' list, got {data!r}.")
        return cls(data.get("parts", ()), data.get("conditions", ()))

    def to_dict(self):
        return {"parts": [p.to_dict() for p in self.parts], "conditions": [c.to_dict() for c in self.conditions]}

    def with_conditions(self, conditions):
        """The same parts with other conditions."""
        return LatentSpec(self.parts, conditions)

    def __eq__(self, other):
        return isinstance(other, LatentSpec) and self.to_dict() == other.to_dict()

    def __hash__(self):
        return hash(repr(self.to_dict()))

    def __repr__(self):
        parts = "; ".join(p.describe() for p in self.parts) or "no parts"
        conditions = ", ".join(c.name for c in self.conditions)
        return f"LatentSpec({parts}{'; given ' + conditions if conditions else ''})"

    # --------------------------------------------------------------------------- what it is
    @property
    def names(self):
        """The parts' names, in order."""
        return tuple(p.name for p in self.parts)

    def part(self, name):
        for p in self.parts:
            if p.name == name:
                return p
        raise KeyError(f"No latent part {name!r}; the parts are {list(self.names)}.")

    def condition(self, kind):
        """The condition of ``kind`` (``"label"`` / ``"image"``), or None."""
        return next((c for c in self.conditions if c.kind == kind), None)

    @property
    def num_classes(self):
        """Classes of the label condition, or None."""
        label = self.condition("label")
        return None if label is None else label.num_classes

    @property
    def single(self):
        """One continuous part, which is the network input as it is."""
        return len(self.parts) == 1 and not self.parts[0].categorical

    @property
    def network_shape(self):
        """Per-sample shape of `network_input`."""
        if not self.parts:
            return None
        if self.single:
            return self.parts[0].shape
        return (sum(p.size for p in self.parts),)

    # --------------------------------------------------------------------------- drawing
    def _part_seed(self, seed, index):
        import keras

        if isinstance(seed, keras.random.SeedGenerator):
            return seed  # advanced once per part
        if isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
            return [int(seed), index]
        from keras_gen import rng

        pair = rng.seed_tensor(seed)
        return pair if index == 0 else pair + np.array([0, index], dtype="int64")

    def sample(self, n, seed):
        """``{part name: (n, *shape)}`` tensors drawn from each part's distribution (see the module docstring).

        Args:
            n: the number of samples (an int or a scalar tensor).
            seed: an int, an int64 ``[2]`` tensor or a `keras.random.SeedGenerator`.
        """
        return {part.name: part.draw(n, self._part_seed(seed, i)) for i, part in enumerate(self.parts)}

    def network_input(self, parts):
        """The tensor the network takes: a single continuous part as it is, else the parts flattened, one-hot
        where categorical, and concatenated in order: ``(B, *network_shape)`` float32."""
        import tensorflow as tf

        missing = [name for name in self.names if name not in parts]
        if missing:
            raise ValueError(f"Missing latent part(s) {missing}; the parts are {list(self.names)}.")
        if self.single:
            return tf.cast(parts[self.parts[0].name], tf.float32)
        pieces = []
        for part in self.parts:
            value = parts[part.name]
            if part.categorical:
                value = tf.one_hot(tf.cast(value, tf.int32), part.params["num_classes"], dtype=tf.float32)
            batch = tf.shape(value)[0]
            pieces.append(tf.reshape(tf.cast(value, tf.float32), tf.stack([batch, part.size])))  # (B, size)
        return tf.concat(pieces, axis=-1)  # (B, sum of sizes)

    def sample_network_input(self, n, seed):
        """`network_input` of a fresh `sample`."""
        return self.network_input(self.sample(n, seed))

    def example(self, n, generator):
        """Valid NumPy values of every part for ``n`` samples, from a `numpy.random.Generator`."""
        return {part.name: part.example(n, generator) for part in self.parts}

    # --------------------------------------------------------------------------- signatures and checks
    def tensor_specs(self):
        """``tf.TensorSpec`` s of the parts, batch ``None`` first, named after the parts (then the label, if any):
        the inputs of an exported ``generate``."""
        import tensorflow as tf

        specs = [tf.TensorSpec((None,) + p.shape, p.dtype, name=p.name) for p in self.parts]
        label = self.condition("label")
        if label is not None:
            specs.append(tf.TensorSpec((None,), tf.int32, name=label.name))
        return tuple(specs)

    def check(self, values, n=None):
        """Validates given latent parts as NumPy: ``values`` is a dict of parts (or, for a one-part latent, an array).

        Returns ``{name: array}`` with float32 / int32 arrays of one common batch size. Raises a ValueError naming
        the part for a missing or unknown part, a wrong shape, a non-finite value or a class out of range.
        """
        if not isinstance(values, dict):
            if len(self.parts) != 1:
                raise ValueError(f"This latent has parts {list(self.names)}: pass a dict of them.")
            values = {self.parts[0].name: values}
        unknown = sorted(set(values) - set(self.names))
        missing = [name for name in self.names if name not in values]
        if unknown or missing:
            raise ValueError(
                f"Latent parts must be exactly {list(self.names)}; "
                + (f"missing {missing}" if missing else "")
                + ("; " if missing and unknown else "")
                + (f"unknown {unknown}" if unknown else "")
                + "."
            )
        out = {}
        for part in self.parts:
            value = np.asarray(values[part.name])
            if value.shape == part.shape:
                value = value[None]
            expected = ", ".join(["n"] + [str(d) for d in part.shape])
            if value.ndim != len(part.shape) + 1 or tuple(value.shape[1:]) != part.shape or not len(value):
                raise ValueError(f"Latent part {part.name!r} must have shape ({expected}), got {value.shape}.")
            if part.categorical:
                if not (np.issubdtype(value.dtype, np.integer) or (np.issubdtype(value.dtype, np.floating)
                                                                   and np.all(value == np.round(value)))):
                    raise ValueError(f"Latent part {part.name!r} holds class indices: integers, got {value.dtype}.")
                k = part.params["num_classes"]
                if value.size and (value.min() < 0 or value.max() >= k):
                    raise ValueError(f"Latent part {part.name!r} must hold classes in [0, {k}).")
                value = value.astype("int32")
            else:
                if not np.issubdtype(value.dtype, np.number) or not np.all(np.isfinite(value)):
                    raise ValueError(f"Latent part {part.name!r} must hold finite numbers.")
                value = value.astype("float32")
            out[part.name] = value
        sizes = {name: len(v) for name, v in out.items()}
        if len(set(sizes.values())) > 1:
            raise ValueError(f"Latent parts must have the same number of samples, got {sizes}.")
        if n is not None and sizes and next(iter(sizes.values())) != n:
            raise ValueError(f"Expected latent parts for {n} samples, got {sizes}.")
        return out


def _part_from_dict(data):
    if not isinstance(data, dict) or "name" not in data:
        raise ValueError(f"A latent part is a dict with a 'name', got {data!r}.")
    data = dict(data)
    return LatentPart(data.pop("name"), tuple(data.pop("shape", ())), data.pop("distribution", "normal"), **data)


def _condition_args(data):
    if not isinstance(data, dict) or "name" not in data or "kind" not in data:
        raise ValueError(f"A condition is a dict with a 'name' and a 'kind', got {data!r}.")
    data = dict(data)
    for key in ("shape", "value_range"):
        if data.get(key) is not None:
            data[key] = tuple(data[key])
    return data
