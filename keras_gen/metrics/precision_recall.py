"""Improved precision and recall of a generative model, from k-nearest-neighbour balls in feature space.

Kynkäänniemi et al. 2019, "Improved Precision and Recall Metric for Assessing Generative Models",
https://arxiv.org/abs/1904.06991. Each set's manifold is approximated by the union of balls centred on its
points, the radius of each ball being the distance to the point's k-th nearest neighbour in its own set
(the point itself excluded):

    precision = fraction of fake points inside at least one real ball   (are the samples realistic?)
    recall    = fraction of real points inside at least one fake ball   (is the real data covered?)

Distances are computed block by block (`batch_size` x `batch_size` at a time), so 10k x 10k feature sets
never hold more than a few blocks of the distance matrix (8 MB each at the default size of 1000) in memory.

Example:

>>> real = np.random.normal(size=(500, 8))
>>> precision_recall(real, real + 100.0)
{'precision': 0.0, 'recall': 0.0}
"""


import numpy as np

from keras_gen import checks
from keras_gen.metrics.fid import _check_features

__all__ = ["precision_recall", "knn_radii"]


def _squared_distances(a, a_sq, b, b_sq):
    """Squared Euclidean distances between the rows of a (n, D) and b (m, D) as an (n, m) array."""
    return np.maximum(a_sq[:, None] - 2.0 * (a @ b.T) + b_sq[None, :], 0.0)  # (n, m)




def knn_radii(features, *, k=3, batch_size=1000):
    """Distance from each point to its k-th nearest neighbour in the same set, the point itself excluded.

    A duplicate of a point counts as a neighbour at distance 0 (only the point itself is excluded).

    Args:
        features: array of shape (N, D) with N > k.
        k: which neighbour, an integer >= 1.
        batch_size: rows and columns per block of the distance matrix.

    Returns:
        A float64 array of shape (N,).
    """
    features = _check_features(features)
    checks.integer(k, "k", 1)
    checks.integer(batch_size, "batch_size", 1)
    return np.sqrt(_knn_squared_radii(features, np.sum(features**2, axis=1), k, batch_size))


def _knn_squared_radii(x, x_sq, k, batch_size):
    n = x.shape[0]
    if k >= n:
        raise ValueError(f"`k` must be smaller than the number of samples ({n}); received k={k}.")
    radii = np.empty(n)
    for start in range(0, n, batch_size):
        rows = slice(start, min(start + batch_size, n))
        # The k+1 smallest squared distances of each row seen so far (self included, at distance 0).
        best = np.full((rows.stop - rows.start, 0), np.inf)
        for col_start in range(0, n, batch_size):
            cols = slice(col_start, min(col_start + batch_size, n))
            block = _squared_distances(x[rows], x_sq[rows], x[cols], x_sq[cols])  # (b_rows, b_cols)
            if rows == cols:
                # A point's distance to itself is exactly 0, whatever the round-off of the expansion above.
                np.fill_diagonal(block, 0.0)
            candidates = np.concatenate([best, block], axis=1)  # (b_rows, <= k + 1 + b_cols)
            keep = min(k + 1, candidates.shape[1])
            best = np.partition(candidates, keep - 1, axis=1)[:, :keep]  # (b_rows, keep)
        # Sorted with self first, index k is the k-th nearest other point.
        radii[rows] = np.partition(best, k, axis=1)[:, k]
    return radii


def precision_recall(real_features, fake_features, *, k=3, batch_size=1000):
    """Improved precision and recall (Kynkäänniemi et al. 2019) between real and generated features.

    Precision: the fraction of fake points within the k-NN radius of at least one real point
    (``||f - r_i|| <= radius_k(r_i)``). Recall: the fraction of real points within the k-NN radius of at least
    one fake point. Radii are distances to the k-th nearest neighbour in the same set, excluding the point itself.

    Args:
        real_features: array of shape (num_real, D), num_real > k.
        fake_features: array of shape (num_fake, D), num_fake > k.
        k: neighbourhood size, an integer >= 1 (the paper uses 3, with 50k VGG-16 features per set).
        batch_size: rows and columns per block of the distance matrices; memory is about
            8 * batch_size^2 bytes per block.

    Returns:
        `dict(precision=float, recall=float)`, both in [0, 1].

    Example:

    >>> x = np.random.normal(size=(100, 4))
    >>> precision_recall(x, x, k=3)
    {'precision': 1.0, 'recall': 1.0}
    """
    real = _check_features(real_features, "real_features")
    fake = _check_features(fake_features, "fake_features")
    if real.shape[1] != fake.shape[1]:
        raise ValueError(
            "`real_features` and `fake_features` must have the same feature dimension; received shapes "
            f"{real.shape} and {fake.shape}."
        )
    checks.integer(k, "k", 1)
    checks.integer(batch_size, "batch_size", 1)
    for name, n in (("real_features", real.shape[0]), ("fake_features", fake.shape[0])):
        if k >= n:
            raise ValueError(f"`k` must be smaller than the number of samples in `{name}` ({n}); received k={k}.")

    real_sq = np.sum(real**2, axis=1)  # (num_real,)
    fake_sq = np.sum(fake**2, axis=1)  # (num_fake,)
    real_radii = _knn_squared_radii(real, real_sq, k, batch_size)  # (num_real,), squared
    fake_radii = _knn_squared_radii(fake, fake_sq, k, batch_size)  # (num_fake,), squared

    fake_in_real = np.zeros(fake.shape[0], dtype=bool)  # precision numerators
    real_in_fake = np.zeros(real.shape[0], dtype=bool)  # recall numerators
    for start in range(0, real.shape[0], batch_size):
        rows = slice(start, min(start + batch_size, real.shape[0]))
        for col_start in range(0, fake.shape[0], batch_size):
            cols = slice(col_start, min(col_start + batch_size, fake.shape[0]))
            block = _squared_distances(real[rows], real_sq[rows], fake[cols], fake_sq[cols])  # (b_real, b_fake)
            fake_in_real[cols] |= np.any(block <= real_radii[rows, None], axis=0)
            real_in_fake[rows] |= np.any(block <= fake_radii[None, cols], axis=1)
    return dict(precision=float(fake_in_real.mean()), recall=float(real_in_fake.mean()))
