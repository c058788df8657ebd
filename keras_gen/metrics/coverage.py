"""Mode-coverage metrics for synthetic benchmarks: Gaussian-mixture grids/rings and stacked MNIST.

Gaussian mixtures follow VEEGAN (Srivastava et al. 2017, https://arxiv.org/abs/1705.07761) and PacGAN
(Lin et al. 2018, https://arxiv.org/abs/1712.04086): a generated sample is *high quality* when it lies within
`threshold` (3) standard deviations of its nearest mode; a mode is *captured* when it receives at least
`min_count` high-quality samples; the *reverse KL* is KL(q || p) between the distribution q of high-quality
samples over the modes and the true (uniform) mode distribution p.

Stacked MNIST (Metz et al. 2017; VEEGAN; PacGAN) stacks three MNIST digits as colour channels, giving
1000 modes; a pre-trained classifier labels each channel of each sample, and the metrics are the number of
distinct digit triples and KL(q || uniform over 1000).

Example:

>>> centers = np.array([[0.0, 0.0], [10.0, 0.0]])
>>> mode_coverage(np.array([[0.1, 0.0], [9.9, 0.0]]), centers, sigma=0.1)["modes"]
2
"""


import numpy as np

from keras_gen import checks

__all__ = ["mode_coverage", "stacked_mnist_modes"]


def _kl_to_uniform(counts):
    """KL(q || uniform) for the histogram `counts`, with 0 log 0 = 0; NaN when the histogram is empty."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    if total == 0:
        return float("nan")
    q = counts / total  # (K,)
    nonzero = q > 0
    return float(np.sum(q[nonzero] * np.log(q[nonzero] * counts.shape[0])))


def mode_coverage(samples, centers, sigma, *, threshold=3.0, min_count=1):
    """Modes captured, high-quality fraction and reverse KL of samples from a Gaussian-mixture benchmark.

    Each sample is assigned to its nearest centre (Euclidean); it is high quality when that distance is at most
    ``threshold * sigma`` of that centre. With q the histogram of high-quality samples over the K modes,
    normalised to sum to 1, ``reverse_kl = KL(q || uniform) = sum_k q_k log(K q_k)``, empty modes contributing
    0 (0 log 0 = 0). It is 0 when all modes are used equally and log(K / k) when k modes are used equally.

    Args:
        samples: generated points, shape (N, D) (D = 2 for the usual grid and ring benchmarks).
        centers: the mixture's means, shape (K, D).
        sigma: the mixture's standard deviation, a positive scalar or one per mode (shape (K,)).
        threshold: high-quality radius in standard deviations (3 in VEEGAN and PacGAN).
        min_count: high-quality samples a mode needs to count as captured, an integer >= 1.

    Returns:
        A dict with
            `modes`: number of modes with at least `min_count` high-quality samples (int),
            `num_modes`: K (int),
            `high_quality`: fraction of samples that are high quality (float),
            `reverse_kl`: KL(q || uniform) as above (float; NaN when no sample is high quality),
            `counts`: high-quality samples per mode (list of K ints).

    Example:

    >>> centers = np.stack(np.meshgrid(np.arange(-4, 5, 2), np.arange(-4, 5, 2)), -1).reshape(-1, 2)  # 5x5 grid
    >>> result = mode_coverage(centers[:5].repeat(10, axis=0), centers, sigma=0.05)
    >>> result["modes"], result["high_quality"]
    (5, 1.0)
    """
    samples = np.asarray(samples, dtype=np.float64)
    centers = np.asarray(centers, dtype=np.float64)
    if centers.ndim != 2 or centers.shape[0] < 1:
        raise ValueError(f"`centers` must have shape (num_modes, dim) with num_modes >= 1; received {centers.shape}.")
    if samples.ndim != 2 or samples.shape[1] != centers.shape[1]:
        raise ValueError(
            f"`samples` must have shape (num_samples, {centers.shape[1]}) to match `centers` {centers.shape}; "
            f"received {samples.shape}."
        )
    if samples.shape[0] < 1:
        raise ValueError(f"`samples` is empty; received shape {samples.shape}.")
    num_modes = centers.shape[0]
    sigma = np.asarray(sigma, dtype=np.float64)
    if sigma.shape not in ((), (num_modes,)) or not np.all(sigma > 0):
        raise ValueError(
            f"`sigma` must be a positive scalar or an array of {num_modes} positive values (one per mode); "
            f"received {sigma!r}."
        )
    if not threshold > 0:
        raise ValueError(f"`threshold` must be > 0; received threshold={threshold!r}.")
    checks.integer(min_count, "min_count", 1)

    distances = np.linalg.norm(samples[:, None, :] - centers[None, :, :], axis=-1)  # (N, K)
    nearest = np.argmin(distances, axis=1)  # (N,)
    radius = threshold * np.broadcast_to(sigma, (num_modes,))  # (K,)
    high_quality = distances[np.arange(samples.shape[0]), nearest] <= radius[nearest]  # (N,)
    counts = np.bincount(nearest[high_quality], minlength=num_modes)  # (K,)
    return dict(
        modes=int(np.sum(counts >= min_count)),
        num_modes=int(num_modes),
        high_quality=float(high_quality.mean()),
        reverse_kl=_kl_to_uniform(counts),
        counts=[int(c) for c in counts],
    )


def stacked_mnist_modes(predicted_digits):
    """Modes covered and KL to uniform on stacked MNIST, from the digit predicted for each channel.

    Args:
        predicted_digits: integer array of shape (N, 3), the classifier's digit (0-9) for each of the three
            stacked channels of each generated sample.

    Returns:
        `dict(modes=int, kl=float, channel_kl=[3 floats], channel_counts=[3 x 10 ints])`: the number of distinct
        digit triples (out of 1000), ``KL(q || uniform) = sum_t q_t log(1000 q_t)`` for the empirical
        distribution q of the triples, and per channel the KL of its digit histogram to uniform (over 10) and the
        histogram itself. ``kl`` = the sum of the channel KLs + the dependence between channels (their
        multi-information), so the channel KLs tell a generator that favours some digits (a shape it draws
        poorly, or one the classifier reads ambiguous strokes as) from one that couples the channels.

    Example:

    >>> stacked_mnist_modes(np.array([[0, 0, 0], [1, 2, 3], [1, 2, 3], [0, 0, 0]]))["modes"]
    2
    """
    digits = np.asarray(predicted_digits)
    if digits.ndim != 2 or digits.shape[1] != 3 or digits.shape[0] < 1:
        raise ValueError(
            f"`predicted_digits` must have shape (num_samples, 3), one digit per channel; received {digits.shape}."
        )
    if not np.issubdtype(digits.dtype, np.integer):
        raise TypeError(
            f"`predicted_digits` must be integer class labels (argmax of the classifier); received dtype "
            f"{digits.dtype}."
        )
    if digits.min() < 0 or digits.max() > 9:
        raise ValueError(
            f"`predicted_digits` must be digits in 0..9; received values in [{digits.min()}, {digits.max()}]."
        )
    digits = digits.astype(np.int64)  # uint8 labels would overflow below
    codes = digits[:, 0] * 100 + digits[:, 1] * 10 + digits[:, 2]  # (N,), one code per triple
    counts = np.bincount(codes, minlength=1000)  # (1000,)
    channel_counts = [np.bincount(digits[:, c], minlength=10) for c in range(3)]  # 3 x (10,)
    return dict(
        modes=int(np.count_nonzero(counts)),
        kl=_kl_to_uniform(counts),
        channel_kl=[_kl_to_uniform(c) for c in channel_counts],
        channel_counts=[[int(n) for n in c] for c in channel_counts],
    )
