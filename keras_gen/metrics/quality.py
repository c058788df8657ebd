"""Digit quality: three numbers anyone can read off a run of a digit dataset, from the domain classifier.

    confident        share of generated digits the classifier reads with confidence >= 0.9 (its top class
                     probability), next to the same share for the real held-out digits (``real_confident``):
                     a legible digit is read confidently, a malformed stroke is not
    class_kl         KL(q || uniform) of the histogram q of the classes read (0 when every digit is drawn equally
                     often, log 10 = 2.30 when one digit is drawn every time)
    fid              FID under the classifier's features (`fid_from_features`)

The classifier is `domain_classifier` (``mnist`` 28x28, ``digits`` 8x8; stacked MNIST is read channel by channel:
each channel is one digit for the share and the histogram, and the FID takes the three channels' features side by
side, as `evaluate` does). `evaluate` reports these numbers as its ``quality`` metric, the training callback
`keras_gen.callbacks.DigitQualityMonitor` logs them every epoch, and a run's sample grid states them in its
caption (`format_quality`). docs/evaluation.md ("Digit quality") says how to read them.

Example:

>>> quality = DigitQuality("mnist")                  # the classifier and the 500 held-out digits, read once
>>> score = quality(gan.generate(1000, seed=0))      # {"confident": ..., "real_confident": ..., "class_kl": ...}
>>> format_quality(score, epoch=12)
'epoch 12: 94% confident digits (real 93%), class KL 0.03, FID 4.1'
"""

import numbers

import numpy as np

from keras_gen.metrics.coverage import _kl_to_uniform
from keras_gen.metrics.fid import fid_from_features

__all__ = [
    "CONFIDENCE",
    "QUALITY_DATASETS",
    "confident_share",
    "class_kl",
    "digit_probabilities",
    "quality_score",
    "format_quality",
    "DigitQuality",
]

CONFIDENCE = 0.9
"""The top class probability at which the classifier reads a digit confidently."""

QUALITY_DATASETS = ("mnist", "digits", "stacked_mnist")
"""The datasets whose samples have a digit quality (those the domain classifier reads)."""


def _check_probabilities(probabilities, name="probabilities"):
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 2 or probabilities.shape[1] < 2:
        raise ValueError(f"`{name}` must be class probabilities of shape (N, K), K >= 2; received shape "
                         f"{probabilities.shape}.")
    return probabilities


def _check_threshold(threshold):
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or not 0 < threshold <= 1:
        raise ValueError(f"`threshold` must be a probability in (0, 1]; received threshold={threshold!r}.")
    return float(threshold)


def confident_share(probabilities, threshold=CONFIDENCE):
    """The share of rows whose largest probability is at least ``threshold``.

    Args:
        probabilities: ``(N, K)`` class probabilities, one row per image.
        threshold: a probability in (0, 1].

    Returns:
        A float in [0, 1]; NaN for no rows.
    """
    probabilities = _check_probabilities(probabilities)
    threshold = _check_threshold(threshold)
    if probabilities.shape[0] == 0:
        return float("nan")
    return float(np.mean(probabilities.max(axis=1) >= threshold))


def class_kl(probabilities):
    """KL(q || uniform) of the histogram q of the classes read (each row's argmax), in nats.

    ``sum_k q_k log(K q_k)`` with 0 log 0 = 0: 0 when the K classes are read equally often, log(K / k) when k of
    them are, equally. NaN for no rows.
    """
    probabilities = _check_probabilities(probabilities)
    return _kl_to_uniform(np.bincount(np.argmax(probabilities, axis=1), minlength=probabilities.shape[1]))


def digit_probabilities(classifier, images):
    """Class probabilities of the digits in ``images``: ``(N, K)`` for one digit an image, and for stacked MNIST
    (a classifier with ``channel_probabilities``) the ``(C N, K)`` rows of every channel's digit, channel by
    channel."""
    if hasattr(classifier, "channel_probabilities"):
        return np.concatenate(classifier.channel_probabilities(images), axis=0)  # (C N, K)
    return classifier.probabilities(images)  # (N, K)


def quality_score(probabilities, *, real_probabilities=None, fid=None, threshold=CONFIDENCE):
    """The digit quality of samples from their class probabilities (and of the real digits, for comparison).

    Args:
        probabilities: ``(N, K)`` class probabilities of the generated digits (`digit_probabilities`).
        real_probabilities: the same of the real held-out digits, or None.
        fid: the FID of the samples under the classifier's features (computed by the caller, e.g. `evaluate`'s
            ``fid``), or None.
        threshold: the confidence threshold.

    Returns:
        A JSON-able dict: ``confident`` (`confident_share`), ``real_confident`` (None without real data),
        ``class_kl`` (`class_kl`), ``fid`` (None when not given), ``threshold`` and ``counts`` (digits read per
        class: they sum to the rows scored, three a sample for stacked MNIST).
    """
    probabilities = _check_probabilities(probabilities)
    threshold = _check_threshold(threshold)
    real = None
    if real_probabilities is not None:
        real = confident_share(_check_probabilities(real_probabilities, "real_probabilities"), threshold)
    counts = np.bincount(np.argmax(probabilities, axis=1), minlength=probabilities.shape[1])  # (K,)
    return {
        "confident": confident_share(probabilities, threshold),
        "real_confident": real,
        "class_kl": _kl_to_uniform(counts),
        "fid": None if fid is None else float(fid),
        "threshold": threshold,
        "counts": [int(c) for c in counts],
    }


def format_quality(score, epoch=None):
    """One line that states a `quality_score`: ``"epoch 12: 94% confident digits (real 93%), class KL 0.03, FID
    4.1"`` (the parts that are None left out)."""
    parts = [f"{100 * score['confident']:.0f}% confident digits"]
    if score.get("real_confident") is not None:
        parts[0] += f" (real {100 * score['real_confident']:.0f}%)"
    parts.append(f"class KL {score['class_kl']:.2f}")
    if score.get("fid") is not None:
        parts.append(f"FID {score['fid']:.3g}" if score["fid"] < 100 else f"FID {score['fid']:.0f}")
    line = ", ".join(parts)
    return line if epoch is None else f"epoch {int(epoch)}: {line}"


class DigitQuality:
    """The digit quality of samples of a digit dataset: a callable ``samples -> quality_score(...)`` that reads the
    classifier's view of the real held-out digits once.

    Args:
        dataset: ``"mnist"``, ``"digits"`` or ``"stacked_mnist"`` (`QUALITY_DATASETS`).
        classifier: a `DomainClassifier` of the dataset's digits; default `domain_classifier` of ``"mnist"`` (also
            for stacked MNIST, channel by channel) or ``"digits"``.
        real: the real images to compare with; default the dataset's test split.
        threshold: the confidence threshold.

    Attributes:
        real_confident: the share of real digits read confidently.
        extractor: what reads the images (the classifier, or its per-channel wrapper for stacked MNIST).
    """

    def __init__(self, dataset="mnist", classifier=None, real=None, threshold=CONFIDENCE):
        from keras_gen import data
        from keras_gen.metrics.evaluate import _make_extractor

        if dataset not in QUALITY_DATASETS:
            raise ValueError(f"Digit quality is defined for {', '.join(QUALITY_DATASETS)} (the digits the domain "
                             f"classifier reads); received dataset={dataset!r}.")
        self.dataset = dataset
        self.threshold = _check_threshold(threshold)
        info = data.dataset_info(dataset)
        self.extractor = _make_extractor("classifier", dataset, info, classifier, None, 500, False)
        self.real = np.asarray(data.load_arrays(dataset, "test")[0] if real is None else real, dtype=np.float32)
        if tuple(self.real.shape[1:]) != tuple(info["shape"]):
            raise ValueError(f"`real` must hold {dataset} images of shape (N, {', '.join(map(str, info['shape']))}); "
                             f"received shape {self.real.shape}.")
        self.shape = tuple(info["shape"])
        self._real_features = self.extractor.features(self.real)  # (M, F)
        self._real_probabilities = digit_probabilities(self.extractor, self.real)  # (C M, K)
        self.real_confident = confident_share(self._real_probabilities, self.threshold)

    def __call__(self, samples):
        """`quality_score` of ``samples`` (``(N, *shape)`` in [-1, 1]), with their FID against the real digits."""
        samples = np.asarray(samples, dtype=np.float32)
        if tuple(samples.shape[1:]) != self.shape:
            raise ValueError(f"{self.dataset} samples have shape (N, {', '.join(map(str, self.shape))}); received "
                             f"{samples.shape}.")
        fid = fid_from_features(self._real_features, self.extractor.features(samples))
        return quality_score(digit_probabilities(self.extractor, samples),
                             real_probabilities=self._real_probabilities, fid=fid, threshold=self.threshold)
