"""Inception Score (IS) from class probabilities.

Salimans et al. 2016, "Improved Techniques for Training GANs", https://arxiv.org/abs/1606.03498:

    IS = exp( E_x KL( p(y|x) || p(y) ) ),   p(y) = E_x p(y|x)

computed separately on `splits` chunks of the samples, reporting the mean and standard deviation over chunks. It
ranges from 1 (every sample gets the same prediction) to the number of classes K (confident predictions, all
classes used equally).

The chunks are cut from a seeded permutation of the rows (``numpy.random.RandomState(seed).permutation``, as
torch-fidelity does), so the score does not depend on the order of the samples. Salimans et al.'s code takes
consecutive chunks (``seed=None`` here), which is right only for rows in random order: a dataset split sorted by
class puts one or two classes in each chunk, whose IS is then close to 1 whatever the classifier.

Example:

>>> probabilities = np.eye(10)[np.arange(1000) % 10]   # 10 classes, one-hot, equally used
>>> mean, std = inception_score(probabilities, splits=1)   # mean = 10 up to round-off, std = 0
"""

import numbers

import numpy as np

__all__ = ["inception_score"]


def inception_score(probabilities, *, splits=10, seed=0):
    """Inception Score of a set of class-probability vectors.

    Args:
        probabilities: array of shape (num_samples, num_classes), non-negative rows summing to 1 (softmax outputs
            of a classifier, not logits).
        splits: number of chunks the samples are cut into (sizes differ by at most one, no sample dropped); an
            integer between 1 and num_samples. The reference uses 10 chunks of 5000 samples.
        seed: seed of the permutation the chunks are cut from, an integer in [0, 2**32); `None` cuts consecutive
            chunks in the given order (only right for rows in random order).

    Returns:
        `(mean, std)` of the per-chunk scores, Python floats (std with ddof=0).

    Raises:
        ValueError: a non-2-D array, negative or non-finite values, rows that do not sum to 1, or a bad `splits`
            or `seed`.
    """
    probabilities = np.asarray(probabilities)
    if probabilities.ndim != 2:
        raise ValueError(
            "`probabilities` must be a 2-D array of shape (num_samples, num_classes); received shape "
            f"{probabilities.shape}."
        )
    num_samples = probabilities.shape[0]
    if num_samples < 1 or probabilities.shape[1] < 1:
        raise ValueError(f"`probabilities` is empty; received shape {probabilities.shape}.")
    probabilities = probabilities.astype(np.float64)
    if not np.all(np.isfinite(probabilities)) or np.any(probabilities < 0):
        raise ValueError(
            "`probabilities` must be finite and non-negative (softmax outputs, not logits); received values in "
            f"[{np.nanmin(probabilities):.3g}, {np.nanmax(probabilities):.3g}]."
        )
    row_sums = probabilities.sum(axis=1)
    if not np.allclose(row_sums, 1.0, rtol=0.0, atol=1e-3):
        worst = int(np.argmax(np.abs(row_sums - 1.0)))
        raise ValueError(
            "Each row of `probabilities` must sum to 1 (apply a softmax to logits first); row "
            f"{worst} sums to {row_sums[worst]:.6g}."
        )
    if not isinstance(splits, numbers.Integral) or isinstance(splits, bool) or not 1 <= splits <= num_samples:
        raise ValueError(
            f"`splits` must be an integer between 1 and the number of samples ({num_samples}); "
            f"received splits={splits!r}."
        )
    if seed is not None and (
        not isinstance(seed, numbers.Integral) or isinstance(seed, bool) or not 0 <= seed < 2**32
    ):
        raise ValueError(f"`seed` must be an integer in [0, 2**32) or None; received seed={seed!r}.")

    if seed is not None:
        probabilities = probabilities[np.random.RandomState(seed).permutation(num_samples)]  # (N, K), rows shuffled
    scores = []
    for i in range(splits):
        chunk = probabilities[i * num_samples // splits : (i + 1) * num_samples // splits]  # (n_i, K)
        marginal = chunk.mean(axis=0, keepdims=True)  # (1, K): p(y) over the chunk
        # KL(p(y|x) || p(y)) with 0 log 0 = 0: terms with p(y|x) = 0 vanish, and p(y|x) > 0 implies p(y) > 0.
        ratio = np.divide(chunk, marginal, out=np.ones_like(chunk), where=chunk > 0)
        kl = np.sum(chunk * np.log(ratio), axis=1)  # (n_i,)
        scores.append(np.exp(kl.mean()))
    scores = np.asarray(scores)
    return float(scores.mean()), float(scores.std())
