"""Feature extractors: the first stage of FID, KID and precision/recall (images -> feature vectors).

An extractor is any callable `images -> np.ndarray of shape (N, feature_dim)` with a `name` recorded next to
results for provenance. Two are provided:

- `identity_extractor`: flattens its input; for tests and for low-dimensional toy data.
- `InceptionFeatureExtractor`: the 2048-d average-pool features of Keras' InceptionV3 (the "pool3" layer FID
  and KID are defined on).

TensorFlow / Keras are imported only when an `InceptionFeatureExtractor` is built, so importing this module is
cheap.

Note: Keras' ImageNet InceptionV3 weights are not the 2015 TF-slim graph that TTUR / pytorch-fid /
torch-fidelity use, and the resizing differs slightly, so FIDs computed with it are comparable with each other
but not with published numbers.
"""

import os

import numpy as np

from keras_gen import checks

__all__ = ["identity_extractor", "InceptionFeatureExtractor", "INCEPTION_V3_NOTOP_WEIGHTS"]

# The file `keras.applications.InceptionV3(include_top=False, weights="imagenet")` downloads into the cache.
INCEPTION_V3_NOTOP_WEIGHTS = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"


def identity_extractor(x):
    """Flattens each sample into a feature vector: `x` of shape (N, ...) -> (N, prod(...)).

    Args:
        x: array-like with a leading batch axis.

    Returns:
        `np.asarray(x).reshape(N, -1)`.

    Example:

    >>> identity_extractor(np.zeros((5, 8, 8, 1))).shape
    (5, 64)
    """
    x = np.asarray(x)
    if x.ndim < 1:
        raise ValueError(f"`x` needs a leading batch axis; received a scalar of shape {x.shape}.")
    return x.reshape(x.shape[0], -1)


identity_extractor.name = "identity"


def _keras_cache_candidates():
    """Where `keras.utils.get_file` would have cached the InceptionV3 no-top weights, in lookup order."""
    homes = []
    if os.environ.get("KERAS_HOME"):
        homes.append(os.environ["KERAS_HOME"])
    homes.append(os.path.join(os.path.expanduser("~"), ".keras"))
    homes.append(os.path.join("/tmp", ".keras"))  # get_file's fallback when the home is not writable
    paths = []
    for home in homes:
        path = os.path.join(os.path.expanduser(home), "models", INCEPTION_V3_NOTOP_WEIGHTS)
        if path not in paths:
            paths.append(path)
    return paths


class InceptionFeatureExtractor:
    """2048-d InceptionV3 pool features of images in [-1, 1], for FID / KID / precision-recall.

    Builds `keras.applications.InceptionV3(include_top=False, pooling="avg", weights=None,
    input_shape=(299, 299, 3))` and loads weights from, in order: the `weights` path if given; else the Keras
    cache (``$KERAS_HOME/models``, ``~/.keras/models`` or ``/tmp/.keras/models``, file
    `INCEPTION_V3_NOTOP_WEIGHTS`); else, only when `allow_download=True`, Keras downloads the ImageNet weights.
    Nothing is downloaded by default: a missing file raises a `FileNotFoundError` that says where it looked.

    Images of any size with 1 or 3 channels (channels last; (N, H, W) is read as grayscale) are resized
    bilinearly to 299x299, grayscale is repeated to 3 channels, and the network runs in batches of
    `batch_size` with a tqdm progress bar when there is more than one batch. Inputs must already be in [-1, 1]
    (InceptionV3's own input range, i.e. `x / 127.5 - 1` for uint8 images, and the range of a tanh generator).

    Note: FIDs from these (Keras ImageNet) weights are comparable with each other, not with published FIDs,
    which use the TF-slim 2015 Inception graph of TTUR / pytorch-fid.

    Args:
        weights: `None` (the Keras cache; "imagenet" means the same) or the path of a weights file for this
            architecture (`.weights.h5` from `save_weights`, or the legacy Keras-applications `.h5`).
        allow_download: let Keras download the ImageNet weights when `weights` is None and they are not cached.
        batch_size: images per forward pass, an integer >= 1.
        progress: show a tqdm progress bar when there is more than one batch.

    Attributes:
        name: "inception_v3_pool3", recorded with results for provenance.
        feature_dim: 2048.
        weights_path: the file the weights were loaded from ("imagenet" when they were downloaded).
        model: the Keras model.

    Example:

    >>> extractor = InceptionFeatureExtractor(weights="/data/inception_v3_notop.weights.h5")
    >>> features = extractor(images)            # (N, 2048)
    >>> fid = fid_from_features(extractor(real_images), features)
    """

    name = "inception_v3_pool3"
    feature_dim = 2048
    image_size = 299

    def __init__(self, weights=None, allow_download=False, batch_size=64, progress=True):
        checks.integer(batch_size, "batch_size", 1)
        if weights is not None and not isinstance(weights, (str, os.PathLike)):
            raise TypeError(
                f"`weights` must be None or the path of a weights file; received {type(weights).__name__}."
            )
        self.weights = weights
        self.allow_download = bool(allow_download)
        self.batch_size = int(batch_size)
        self.progress = bool(progress)
        self.weights_path = self._resolve_weights()

        import keras  # Lazy: building the extractor is the first point that needs TensorFlow / Keras.

        shape = (self.image_size, self.image_size, 3)
        if self.weights_path == "imagenet":
            self.model = keras.applications.InceptionV3(
                include_top=False, pooling="avg", weights="imagenet", input_shape=shape
            )
        else:
            self.model = keras.applications.InceptionV3(
                include_top=False, pooling="avg", weights=None, input_shape=shape
            )
            self.model.load_weights(self.weights_path)

    def _resolve_weights(self):
        if self.weights is not None and os.fspath(self.weights) != "imagenet":
            path = os.path.expanduser(os.fspath(self.weights))
            if not os.path.isfile(path):
                raise FileNotFoundError(
                    f"InceptionV3 weights file not found: {path!r}. Pass the path of an existing file saved with "
                    "`InceptionV3(include_top=False, pooling='avg', weights=None).save_weights(...)` or the Keras "
                    f"`{INCEPTION_V3_NOTOP_WEIGHTS}`, or weights=None to use the Keras cache."
                )
            return path
        candidates = _keras_cache_candidates()
        for path in candidates:
            if os.path.isfile(path):
                return path
        if self.allow_download:
            return "imagenet"
        raise FileNotFoundError(
            "No InceptionV3 weights available and allow_download=False. Looked for the Keras cache file at: "
            + ", ".join(repr(p) for p in candidates)
            + ". Either pass weights=<path to a weights file>, copy "
            f"{INCEPTION_V3_NOTOP_WEIGHTS} (from https://storage.googleapis.com/tensorflow/keras-applications/"
            "inception_v3/) into one of those folders, or pass allow_download=True on a machine with internet."
        )

    def __call__(self, images):
        """Features of a batch of images.

        Args:
            images: array of shape (N, H, W, C) with C in {1, 3}, or (N, H, W), values in [-1, 1].

        Returns:
            A float32 array of shape (N, 2048).
        """
        from keras import ops
        from tqdm.auto import tqdm

        images = np.asarray(images)
        if images.ndim == 3:
            images = images[..., None]  # (N, H, W) -> (N, H, W, 1)
        if images.ndim != 4 or images.shape[-1] not in (1, 3):
            raise ValueError(
                "`images` must have shape (N, H, W, C) with C = 1 or 3 (channels last), or (N, H, W); "
                f"received shape {images.shape}."
            )
        if images.shape[0] == 0:
            return np.zeros((0, self.feature_dim), dtype=np.float32)
        if not np.issubdtype(images.dtype, np.number) or np.iscomplexobj(images):
            raise TypeError(f"`images` must be a real numeric array; received dtype {images.dtype}.")
        low, high = float(np.min(images)), float(np.max(images))
        if not (np.isfinite(low) and np.isfinite(high)) or low < -1.0 - 1e-3 or high > 1.0 + 1e-3:
            raise ValueError(
                f"`images` must be in [-1, 1]; received values in [{low:.4g}, {high:.4g}]. Rescale uint8 images "
                "with `x / 127.5 - 1` and [0, 1] images with `2 * x - 1`, and clip generator outputs."
            )

        size = (self.image_size, self.image_size)
        num_batches = -(-images.shape[0] // self.batch_size)
        features = []
        for start in tqdm(
            range(0, images.shape[0], self.batch_size),
            total=num_batches,
            disable=not self.progress or num_batches <= 1,
            desc=f"{self.name} features",
            unit="batch",
        ):
            batch = images[start : start + self.batch_size].astype(np.float32)  # (B, H, W, C)
            if batch.shape[1:3] != size:
                batch = ops.image.resize(batch, size, interpolation="bilinear", data_format="channels_last")
            if batch.shape[-1] == 1:
                batch = ops.repeat(batch, 3, axis=-1)  # (B, 299, 299, 1) -> (B, 299, 299, 3)
            features.append(np.asarray(self.model.predict_on_batch(batch), dtype=np.float32))  # (B, 2048)
        return np.concatenate(features, axis=0)  # (N, 2048)

    def __repr__(self):
        return f"{type(self).__name__}(weights={self.weights_path!r}, batch_size={self.batch_size})"
