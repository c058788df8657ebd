"""A domain classifier for digit images: offline features (FID / KID / precision-recall) and class probabilities
(Inception Score, class histograms, stacked-MNIST mode counts) without InceptionV3 or any download.

The published image metrics use an ImageNet InceptionV3; on MNIST-like data a small CNN trained on the digits
themselves is the usual offline substitute (the "MNIST classifier" of VEEGAN, PacGAN and the stacked-MNIST
benchmark, Srivastava et al. 2017, https://arxiv.org/abs/1705.07761; Lin et al. 2018,
https://arxiv.org/abs/1712.04086). It is trained once on the embedded training split of `keras_gen.data`
(``"mnist"``: 4,500 digits 28x28x1; ``"digits"``: 1,617 8x8x1), deterministically (fixed seed, seeded
shuffling), saved next to a JSON of its metadata (held-out accuracy on the dataset's test split included), and
loaded from that file on every later call.

Network (``width`` = 32 by default)::

    (B, H, W, 1) in [-1, 1]
      -> Conv 3x3 (width) ReLU -> MaxPool 2 -> Conv 3x3 (2 width) ReLU -> MaxPool 2   # (B, H/4, W/4, 2 width)
      -> Flatten -> Dense(4 width) ReLU = features                                     # (B, 4 width)
      -> Dropout(0.3) -> Dense(10) softmax = probabilities                              # (B, 10)

Cache: ``$KERAS_GEN_CACHE`` if set, else ``~/.cache/keras_gen``; the default file is
``mnist_classifier.keras`` (with ``mnist_classifier.json``); non-default training arguments get a file of their
own (``mnist_classifier-<hash>.keras``), so a quick test classifier never replaces the default one.

Shipped: the default classifiers of ``mnist`` and ``digits`` come with the package, beside this module
(``mnist_classifier.weights.h5`` and its ``mnist_classifier.json``; `shipped_path`), so that a run scores its
digits without waiting for a training: `domain_classifier` loads the shipped file when the cache has none and the
training arguments are the defaults. They are what `train_domain_classifier` trains with those arguments, stored
in float16 (`DomainClassifier.save_float16`, with the accuracy of the float16 weights measured again; made by
`write_shipped_classifier`, docs/evaluation.md).

Example:

>>> from keras_gen.metrics import domain_classifier, fid_from_features
>>> classifier = domain_classifier("mnist")          # trains once (about a minute on 2 cores), then loads
>>> classifier.describe()["accuracy"]                 # held-out accuracy on the 500 test digits
>>> fid = fid_from_features(classifier.features(real_images), classifier.features(fake_images))
"""

import hashlib
import json
import numbers
import os
import sys
import time

import numpy as np

from keras_gen import checks

__all__ = [
    "DomainClassifier", "domain_classifier", "train_domain_classifier", "default_cache_dir", "shipped_path",
    "write_shipped_classifier",
]

CACHE_ENV = "KERAS_GEN_CACHE"
"""Environment variable naming the cache folder (default ``~/.cache/keras_gen``)."""

CLASSIFIER_DATASETS = ("mnist", "digits")

_DEFAULT_TRAINING = {"epochs": 8, "num_samples": None, "seed": 0, "batch_size": 64, "width": 32, "learning_rate": 1e-3}


def default_cache_dir():
    """The folder cached classifiers live in: ``$KERAS_GEN_CACHE``, else ``~/.cache/keras_gen``."""
    return os.path.expanduser(os.environ.get(CACHE_ENV) or os.path.join("~", ".cache", "keras_gen"))


def _check_dataset(dataset):
    if dataset not in CLASSIFIER_DATASETS:
        raise ValueError(
            f"The domain classifier is trained on a builtin digit dataset; valid: {', '.join(CLASSIFIER_DATASETS)}. "
            f"Received dataset={dataset!r}."
        )
    return dataset


def _training_args(epochs, num_samples, seed, batch_size, width, learning_rate):
    args = dict(epochs=epochs, num_samples=num_samples, seed=seed, batch_size=batch_size, width=width)
    for name, value in args.items():
        if name == "num_samples" and value is None:
            continue
        checks.integer(value, name, 0 if name == "seed" else 1)
    if not (isinstance(learning_rate, numbers.Real) and learning_rate > 0):
        raise ValueError(f"`learning_rate` must be a positive number; received learning_rate={learning_rate!r}.")
    args = {k: (None if v is None else int(v)) for k, v in args.items()}
    args["learning_rate"] = float(learning_rate)
    return args


def _default_path(dataset, training):
    stem = f"{dataset}_classifier"
    if training != _DEFAULT_TRAINING:
        digest = hashlib.sha1(json.dumps(training, sort_keys=True).encode()).hexdigest()[:10]
        stem = f"{stem}-{digest}"
    return os.path.join(default_cache_dir(), stem + ".keras")


_WEIGHTS_SUFFIX = ".weights.h5"
_SHIPPED_DIR = os.path.dirname(os.path.abspath(__file__))


def shipped_path(dataset):
    """The weights file of ``dataset``'s default classifier shipped with the package (its metadata beside it)."""
    return os.path.join(_SHIPPED_DIR, f"{_check_dataset(dataset)}_classifier{_WEIGHTS_SUFFIX}")


def _metadata_path(model_path):
    if model_path.endswith(_WEIGHTS_SUFFIX):  # name.weights.h5 -> name.json
        return model_path[: -len(_WEIGHTS_SUFFIX)] + ".json"
    return os.path.splitext(model_path)[0] + ".json"


def _build_network(input_shape, width, num_classes=10):
    import keras

    inputs = keras.Input(input_shape, name="images")  # (B, H, W, 1)
    x = keras.layers.Conv2D(width, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = keras.layers.MaxPooling2D(2, padding="same", name="pool1")(x)  # (B, H/2, W/2, width)
    x = keras.layers.Conv2D(2 * width, 3, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.MaxPooling2D(2, padding="same", name="pool2")(x)  # (B, H/4, W/4, 2 width)
    x = keras.layers.Flatten(name="flatten")(x)
    features = keras.layers.Dense(4 * width, activation="relu", name="features")(x)  # (B, 4 width)
    x = keras.layers.Dropout(0.3, name="dropout")(features)
    probabilities = keras.layers.Dense(num_classes, activation="softmax", name="probabilities")(x)  # (B, 10)
    return keras.Model(inputs, probabilities, name="domain_classifier")


class DomainClassifier:
    """A trained digit classifier, used as a feature extractor (penultimate layer) and a class predictor.

    Build one with `domain_classifier` (cached) or `train_domain_classifier` (not cached); `DomainClassifier.load`
    reads a saved one. Calling the object returns `features`, so it is an extractor for `fid_from_features`,
    `kernel_inception_distance` and `precision_recall` like `InceptionFeatureExtractor`.

    Args:
        model: the Keras classifier (softmax output, a Dense layer named ``"features"`` before it).
        metadata: a dict recorded with every result: ``name``, ``dataset``, ``path``, ``accuracy`` (held-out),
            ``num_test``, ``training`` (the arguments it was trained with), ``seconds``.
        batch_size: images per forward pass.

    Attributes:
        name: ``"<dataset>_classifier"``, recorded with results.
        feature_dim: size of a feature vector (4 width, 128 by default).
        input_shape: ``(H, W, 1)``.
    """

    def __init__(self, model, metadata, batch_size=256):
        import keras

        self.model = model
        self.metadata = dict(metadata)
        self.batch_size = int(batch_size)
        self._feature_model = keras.Model(model.inputs, model.get_layer("features").output)
        self.input_shape = tuple(int(s) for s in model.inputs[0].shape[1:])
        self.feature_dim = int(model.get_layer("features").output.shape[-1])
        self.num_classes = int(model.outputs[0].shape[-1])

    @property
    def name(self):
        return self.metadata.get("name", "domain_classifier")

    @property
    def path(self):
        return self.metadata.get("path")

    @property
    def accuracy(self):
        return self.metadata.get("accuracy")

    def describe(self):
        """What to record next to a result: ``name``, ``path``, ``accuracy``, ``dataset``, ``feature_dim`` ..."""
        return {
            "name": self.name,
            "path": self.path,
            "accuracy": self.accuracy,
            "dataset": self.metadata.get("dataset"),
            "num_test": self.metadata.get("num_test"),
            "feature_dim": self.feature_dim,
            "training": self.metadata.get("training"),
        }

    def _check_images(self, images):
        images = np.asarray(images)
        if images.ndim == len(self.input_shape) and self.input_shape[-1] == 1:
            images = images[..., None]  # (N, H, W) -> (N, H, W, 1)
        if images.ndim != len(self.input_shape) + 1 or tuple(images.shape[1:]) != self.input_shape:
            raise ValueError(
                f"{self.name} takes images of shape (N, {', '.join(map(str, self.input_shape))}) in [-1, 1]; "
                f"received shape {images.shape}. Classify each channel of a multi-channel image separately."
            )
        if not np.issubdtype(images.dtype, np.number) or np.iscomplexobj(images):
            raise TypeError(f"`images` must be a real numeric array; received dtype {images.dtype}.")
        if images.shape[0]:
            low, high = float(np.min(images)), float(np.max(images))
            if not (np.isfinite(low) and np.isfinite(high)) or low < -1.01 or high > 1.01:
                raise ValueError(
                    f"`images` must be in [-1, 1]; received values in [{low:.4g}, {high:.4g}]. Rescale uint8 "
                    "images with `x / 127.5 - 1` and [0, 1] images with `2 * x - 1`."
                )
        return np.clip(images.astype(np.float32), -1.0, 1.0)

    def _run(self, model, images, width):
        images = self._check_images(images)
        if images.shape[0] == 0:
            return np.zeros((0, width), dtype=np.float32)
        outputs = [
            np.asarray(model.predict_on_batch(images[start : start + self.batch_size]), dtype=np.float32)
            for start in range(0, images.shape[0], self.batch_size)
        ]
        return np.concatenate(outputs, axis=0)

    def features(self, images):
        """Penultimate-layer features: ``(N, H, W, 1)`` images in [-1, 1] -> float32 ``(N, feature_dim)``."""
        return self._run(self._feature_model, images, self.feature_dim)

    def probabilities(self, images):
        """Softmax class probabilities: ``(N, H, W, 1)`` images in [-1, 1] -> float32 ``(N, 10)``, rows sum to 1."""
        probabilities = self._run(self.model, images, self.num_classes).astype(np.float64)
        return probabilities / probabilities.sum(axis=1, keepdims=True)  # exact normalisation for float32 round-off

    def predict(self, images):
        """The predicted class of each image, int64 ``(N,)``."""
        return np.argmax(self.probabilities(images), axis=1)

    __call__ = features

    def save(self, path):
        """Writes the model (``.keras``) and its metadata (same name, ``.json``) atomically."""
        from keras_gen.files import atomic_write, write_json

        path = os.fspath(path)
        if not path.endswith(".keras"):
            raise ValueError(f"The classifier path must end in '.keras'; received {path!r}.")
        self.metadata["path"] = os.path.abspath(path)
        atomic_write(path, self.model.save, suffix=".keras")
        write_json(_metadata_path(path), self.metadata, sort_keys=True)
        return path

    def save_float16(self, path, same_predictions=False):
        """Writes the weights with float16 values (``NAME.weights.h5``, about half the size of float32) and the
        metadata (``NAME.json``), both atomically. The metadata's ``accuracy`` is measured again with the float16
        weights on the dataset's test split; ``float32_accuracy`` is this classifier's; ``float16_max_difference``
        is the largest difference of a class probability between the two there and ``float16_disagreements`` the
        number of test digits they read as different classes. With ``same_predictions``, a ValueError is raised
        (and nothing written) when that number is not 0. Returns ``path``."""
        import tempfile

        import h5py

        from keras_gen import data
        from keras_gen.files import atomic_write, write_json

        path = os.path.abspath(os.fspath(path))
        if not path.endswith(_WEIGHTS_SUFFIX):
            raise ValueError(f"The float16 weights file must end in '{_WEIGHTS_SUFFIX}'; received {path!r}.")
        dataset = _check_dataset(self.metadata.get("dataset"))
        with tempfile.TemporaryDirectory() as tmp:
            full = os.path.join(tmp, "float32" + _WEIGHTS_SUFFIX)
            network = _build_network(self.input_shape, self.metadata["training"]["width"], self.num_classes)
            network.set_weights(self.model.get_weights())
            network.save_weights(full)  # the network alone: a trained model's file also holds its optimizer's state

            def copy(group_in, group_out):  # the Keras weights file, float arrays stored as float16
                group_out.attrs.update(dict(group_in.attrs))
                for key, item in group_in.items():
                    if isinstance(item, h5py.Group):
                        copy(item, group_out.create_group(key))
                        continue
                    values = item[()]
                    options = {}
                    if getattr(values, "dtype", None) is not None and values.dtype.kind == "f":
                        values = values.astype(np.float16)
                        options = dict(compression="gzip", shuffle=True) if values.ndim else {}
                    group_out.create_dataset(key, data=values, **options).attrs.update(dict(item.attrs))

            def write(target):
                with h5py.File(full, "r") as source, h5py.File(target, "w") as out:
                    copy(source, out)

            staged = os.path.join(tmp, "float16" + _WEIGHTS_SUFFIX)
            write(staged)
            half = _build_network(self.input_shape, self.metadata["training"]["width"], self.num_classes)
            half.load_weights(staged)  # Keras casts the values back to float32
            x_test, y_test = data.load_arrays(dataset, "test")
            p32 = self.probabilities(x_test)
            p16 = DomainClassifier(half, self.metadata, batch_size=self.batch_size).probabilities(x_test)
            disagreements = int(np.sum(np.argmax(p16, axis=1) != np.argmax(p32, axis=1)))
            if same_predictions and disagreements:
                raise ValueError(f"The float16 weights read {disagreements} of the {len(y_test)} {dataset} test "
                                 f"digits as another class than the float32 ones: not written to {path}.")
            atomic_write(path, write, suffix=_WEIGHTS_SUFFIX)
        metadata = {
            **self.metadata,
            "path": None,  # where it is read from (`load` records it)
            "storage": "float16",
            "input_shape": list(self.input_shape),
            "accuracy": float(np.mean(np.argmax(p16, axis=1) == y_test)),
            "float32_accuracy": self.accuracy,
            "float16_max_difference": float(np.max(np.abs(p16 - p32))),
            "float16_disagreements": disagreements,
        }
        write_json(_metadata_path(path), metadata, sort_keys=True)
        return path

    @classmethod
    def load(cls, path, batch_size=256):
        """Reads a classifier written by `save` (``.keras``) or `save_float16` (``.weights.h5``);
        FileNotFoundError / ValueError say what is missing or broken."""
        import keras

        path = os.path.abspath(os.path.expanduser(os.fspath(path)))
        meta_path = _metadata_path(path)
        for required in (path, meta_path):
            if not os.path.isfile(required):
                raise FileNotFoundError(f"No domain classifier at {path!r}: {required} does not exist.")
        try:
            with open(meta_path) as f:
                metadata = json.load(f)
            if path.endswith(_WEIGHTS_SUFFIX):
                model = _build_network(tuple(metadata["input_shape"]), metadata["training"]["width"])
                model.load_weights(path)
            else:
                model = keras.models.load_model(path, compile=False)
        except Exception as exc:  # corrupt zip, h5 or JSON all mean the same here
            raise ValueError(f"Could not load the domain classifier {path!r} ({exc}); delete it to retrain.") from exc
        metadata["path"] = path
        return cls(model, metadata, batch_size=batch_size)

    def __repr__(self):
        accuracy = "?" if self.accuracy is None else f"{self.accuracy:.4f}"
        return f"{type(self).__name__}(name={self.name!r}, accuracy={accuracy}, path={self.path!r})"


def train_domain_classifier(
    dataset="mnist",
    *,
    epochs=_DEFAULT_TRAINING["epochs"],
    num_samples=None,
    seed=0,
    batch_size=64,
    width=32,
    learning_rate=1e-3,
    verbose=0,
):
    """Trains a `DomainClassifier` on the training split of a builtin digit dataset (not cached).

    Deterministic: `keras.utils.set_random_seed(seed)` (which also seeds Python, NumPy and TensorFlow globally)
    before the weights are created, and a seeded shuffle of the data, so two trainings with the same arguments
    give identical weights on the same machine. Cross-entropy, Adam(``learning_rate``).

    Args:
        dataset: ``"mnist"`` (28x28) or ``"digits"`` (8x8).
        epochs: passes over the training split.
        num_samples: train on a random subset of ``num_samples`` training digits (drawn with ``seed``; for
            tests); ``None`` for all.
        seed: the seed of the weights, dropout and shuffling.
        batch_size: training batch size.
        width: channels of the first convolution (the features have ``4 * width`` units).
        learning_rate: Adam's learning rate.
        verbose: Keras ``fit`` verbosity.

    Returns:
        A `DomainClassifier` whose metadata holds the held-out ``accuracy`` on the dataset's whole test split.
    """
    import keras
    import tensorflow as tf

    from keras_gen import data

    dataset = _check_dataset(dataset)
    training = _training_args(epochs, num_samples, seed, batch_size, width, learning_rate)
    start = time.perf_counter()
    x, y = data.load_arrays(dataset, "train")  # (N, H, W, 1), (N,)
    if training["num_samples"] is not None:
        if training["num_samples"] > len(x):
            raise ValueError(
                f"`num_samples`={training['num_samples']} is larger than the training split of {dataset!r} ({len(x)})."
            )
        keep = np.random.default_rng(training["seed"]).permutation(len(x))[: training["num_samples"]]
        x, y = x[np.sort(keep)], y[np.sort(keep)]  # a seeded random subset: the split is sorted by class
    x_test, y_test = data.load_arrays(dataset, "test")
    keras.utils.set_random_seed(training["seed"])
    model = _build_network(x.shape[1:], training["width"])
    model.compile(
        optimizer=keras.optimizers.Adam(training["learning_rate"]),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    train = (
        tf.data.Dataset.from_tensor_slices((x, y))
        .shuffle(len(x), seed=training["seed"], reshuffle_each_iteration=True)
        .batch(training["batch_size"])
    )
    model.fit(train, epochs=training["epochs"], verbose=verbose, shuffle=False)  # the dataset shuffles (seeded)
    probabilities = np.concatenate(
        [model.predict_on_batch(x_test[i : i + 256]) for i in range(0, len(x_test), 256)], axis=0
    )  # (N_test, 10)
    accuracy = float(np.mean(np.argmax(probabilities, axis=1) == y_test))
    metadata = {
        "name": f"{dataset}_classifier",
        "dataset": dataset,
        "path": None,
        "accuracy": accuracy,
        "num_test": int(len(y_test)),
        "num_train": int(len(y)),
        "training": training,
        "seconds": round(time.perf_counter() - start, 1),
    }
    return DomainClassifier(model, metadata)


def domain_classifier(
    dataset="mnist",
    *,
    path=None,
    epochs=_DEFAULT_TRAINING["epochs"],
    num_samples=None,
    seed=0,
    batch_size=64,
    width=32,
    learning_rate=1e-3,
    retrain=False,
    verbose=0,
):
    """The cached `DomainClassifier` of a digit dataset: loaded if its file exists, else the shipped one (default
    arguments), else trained once and saved.

    Args:
        dataset: ``"mnist"`` (28x28x1) or ``"digits"`` (8x8x1).
        path: the ``.keras`` file to load or write. Default: ``<cache>/<dataset>_classifier.keras`` for the default
            training arguments (``<cache>`` is ``$KERAS_GEN_CACHE`` or ``~/.cache/keras_gen``), and a file named
            after a hash of the arguments otherwise. An existing ``path`` is loaded as it is, whatever the
            training arguments say (its metadata records how it was trained). With no ``path``, the default
            arguments and no cached file, the classifier shipped with the package (`shipped_path`) is loaded.
        epochs, num_samples, seed, batch_size, width, learning_rate, verbose: see `train_domain_classifier`.
        retrain: train and overwrite even if the file exists.

    Returns:
        A `DomainClassifier`; ``describe()`` gives the name, path and held-out accuracy to record with results.
    """
    dataset = _check_dataset(dataset)
    training = _training_args(epochs, num_samples, seed, batch_size, width, learning_rate)
    default = path is None and training == _DEFAULT_TRAINING
    path = _default_path(dataset, training) if path is None else os.path.abspath(os.path.expanduser(os.fspath(path)))
    if not path.endswith(".keras"):
        raise ValueError(f"The classifier path must end in '.keras'; received {path!r}.")
    if not retrain and os.path.isfile(path) and os.path.isfile(_metadata_path(path)):
        return DomainClassifier.load(path)
    shipped = shipped_path(dataset)
    if default and not retrain and os.path.isfile(shipped) and os.path.isfile(_metadata_path(shipped)):
        return DomainClassifier.load(shipped)
    print(f"Training the {dataset} domain classifier once; it is cached at {path}", file=sys.stderr, flush=True)
    classifier = train_domain_classifier(dataset, verbose=verbose, **training)
    classifier.save(path)
    return classifier


def write_shipped_classifier(dataset="mnist", path=None, verbose=0):
    """Trains ``dataset``'s default classifier (`train_domain_classifier` with its default arguments) and writes it
    with float16 values (`DomainClassifier.save_float16`) to ``path``, by default the file the package ships
    (`shipped_path`). Refuses (ValueError, nothing written) when the float16 weights read any test digit as
    another class than the float32 ones. Returns the path."""
    classifier = train_domain_classifier(dataset, verbose=verbose)
    return classifier.save_float16(shipped_path(dataset) if path is None else path, same_predictions=True)
