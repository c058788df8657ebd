"""Kernel Inception Distance (KID): the unbiased MMD^2 between feature sets under a polynomial kernel.

Bińkowski et al. 2018, "Demystifying MMD GANs", https://arxiv.org/abs/1801.01401. As in their code and in
torch-fidelity, the estimate is averaged over random subsets of equal size drawn from both sets:

    k(x, y) = (gamma <x, y> + coef0)^degree,   gamma = 1 / feature_dim by default
    MMD^2_u = 1/(m(m-1)) sum_{i!=j} k(x_i, x_j) + 1/(m(m-1)) sum_{i!=j} k(y_i, y_j) - 2/m^2 sum_{i,j} k(x_i, y_j)

Unlike FID, the estimator is unbiased, so it is meaningful for small sample sizes and can be slightly negative
when both sets come from one distribution.

The subsets are drawn at random, never as consecutive rows, so the estimate does not depend on the order of the
rows (a class-sorted split gives the same distribution of estimates as a shuffled one, and exactly the same
estimate when the subsets are as large as the sets).

Example:

>>> real, fake = np.random.normal(size=(300, 8)), np.random.normal(size=(300, 8))
>>> mean, std = kernel_inception_distance(real, fake, num_subsets=10, subset_size=100)   # mean about 0
"""


import numpy as np

from keras_gen import checks
from keras_gen.metrics.fid import _check_features

__all__ = ["kernel_inception_distance", "polynomial_kernel", "unbiased_mmd2"]


def polynomial_kernel(x, y, *, degree=3, gamma=None, coef0=1.0):
    """The polynomial kernel matrix ``K[i, j] = (gamma <x_i, y_j> + coef0)^degree``.

    Args:
        x: array of shape (n, D).
        y: array of shape (m, D).
        degree: integer power, >= 1.
        gamma: scale of the inner product; `None` means 1 / D.
        coef0: additive constant.

    Returns:
        A float64 array of shape (n, m).
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if gamma is None:
        gamma = 1.0 / x.shape[1]
    return (gamma * (x @ y.T) + coef0) ** degree  # (n, m)


def unbiased_mmd2(k_xx, k_yy, k_xy):
    """Unbiased MMD^2 from the three kernel matrices of two samples of equal size m >= 2.

    Diagonals of `k_xx` and `k_yy` (a point with itself) are left out; all m^2 cross terms are kept, as in
    Bińkowski et al. and torch-fidelity (``mmd_est="unbiased"``).

    Args:
        k_xx: (m, m) kernel matrix within the first sample.
        k_yy: (m, m) kernel matrix within the second sample.
        k_xy: (m, m) kernel matrix between them.

    Returns:
        The estimate, a float (may be slightly negative).
    """
    m = k_xx.shape[0]
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2.0 * k_xy.sum() / (m * m))


def kernel_inception_distance(
    real_features,
    fake_features,
    *,
    num_subsets=100,
    subset_size=1000,
    degree=3,
    gamma=None,
    coef0=1,
    seed=0,
):
    """KID: mean and standard deviation of the unbiased polynomial-kernel MMD^2 over random subsets.

    Each of the `num_subsets` rounds draws `subset_size` rows without replacement from each feature set
    (independently, with a `numpy.random.RandomState(seed)` as torch-fidelity does) and evaluates
    `unbiased_mmd2` with the kernel ``(gamma <x, y> + coef0)^degree``.

    Args:
        real_features: array of shape (num_real, D).
        fake_features: array of shape (num_fake, D).
        num_subsets: number of random subsets to average over, >= 1.
        subset_size: rows per subset, >= 2; clipped to min(num_real, num_fake), as in Bińkowski et al.'s code
            (torch-fidelity raises instead). Published KIDs use 1000.
        degree: kernel degree, integer >= 1 (3 in the paper).
        gamma: kernel scale; `None` means 1 / D.
        coef0: kernel offset (1 in the paper).
        seed: seed of the subset sampling, so results are reproducible.

    Returns:
        `(mean, std)` of the per-subset MMD^2 estimates, Python floats (std with ddof=0, as torch-fidelity).
        Published KIDs are often scaled by 1000.

    Example:

    >>> x = np.random.normal(size=(200, 4))
    >>> kernel_inception_distance(x, x + 3.0, num_subsets=5, subset_size=100)[0] > 0.1
    True
    """
    real_features = _check_features(real_features, "real_features")
    fake_features = _check_features(fake_features, "fake_features")
    if real_features.shape[1] != fake_features.shape[1]:
        raise ValueError(
            "`real_features` and `fake_features` must have the same feature dimension; received shapes "
            f"{real_features.shape} and {fake_features.shape}."
        )
    for name, value, minimum in (("num_subsets", num_subsets, 1), ("subset_size", subset_size, 2),
                                 ("degree", degree, 1)):
        checks.integer(value, name, minimum)
    if gamma is not None and not gamma > 0:
        raise ValueError(f"`gamma` must be > 0 or None (meaning 1 / feature_dim); received gamma={gamma!r}.")

    num_real, num_fake = real_features.shape[0], fake_features.shape[0]
    m = min(int(subset_size), num_real, num_fake)
    if gamma is None:
        gamma = 1.0 / real_features.shape[1]
    kernel = dict(degree=degree, gamma=gamma, coef0=coef0)

    rng = np.random.RandomState(seed)
    estimates = np.empty(num_subsets)
    for i in range(num_subsets):
        x = real_features[rng.choice(num_real, m, replace=False)]  # (m, D)
        y = fake_features[rng.choice(num_fake, m, replace=False)]  # (m, D)
        estimates[i] = unbiased_mmd2(
            polynomial_kernel(x, x, **kernel), polynomial_kernel(y, y, **kernel), polynomial_kernel(x, y, **kernel)
        )
    return float(estimates.mean()), float(estimates.std())
