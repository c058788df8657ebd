"""Fréchet Inception Distance (FID) as two stages: feature statistics, then the Fréchet distance between them.

Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash Equilibrium",
https://arxiv.org/abs/1706.08500. The numerics follow the reference implementations (TTUR, pytorch-fid):

    FID = ||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2))

Features come from any extractor (`keras_gen.metrics.InceptionFeatureExtractor` for the usual FID,
`identity_extractor` for tests and toy data); this module is pure NumPy / SciPy.

Example:

>>> real, fake = np.random.normal(size=(500, 8)), np.random.normal(1.0, size=(500, 8))
>>> mu1, sigma1 = feature_statistics(real)
>>> mu2, sigma2 = feature_statistics(fake)
>>> fid = frechet_distance(mu1, sigma1, mu2, sigma2)   # about 8 (= ||1||^2 over 8 dims)
"""

import warnings

import numpy as np

__all__ = ["feature_statistics", "frechet_distance", "fid_from_features"]


def _check_features(features, name="features"):
    """Returns `features` as a float64 (N, D) array with N >= 2, or raises a ValueError naming the bad shape."""
    features = np.asarray(features)
    if features.ndim != 2:
        raise ValueError(
            f"`{name}` must be a 2-D array of shape (num_samples, feature_dim); received shape {features.shape}. "
            "Flatten images first (e.g. with `identity_extractor`) or pass extractor output."
        )
    if features.shape[0] < 2:
        raise ValueError(
            f"`{name}` needs at least 2 samples to estimate a covariance; received shape {features.shape}."
        )
    if features.shape[1] < 1:
        raise ValueError(f"`{name}` has no feature dimensions; received shape {features.shape}.")
    if not np.issubdtype(features.dtype, np.number) or np.iscomplexobj(features):
        raise TypeError(f"`{name}` must be a real numeric array; received dtype {features.dtype}.")
    features = features.astype(np.float64, copy=False)
    if not np.all(np.isfinite(features)):
        raise ValueError(f"`{name}` contains NaN or infinite values.")
    return features


def feature_statistics(features):
    """Mean and covariance of a set of feature vectors: the statistics stage of FID.

    Args:
        features: array of shape (num_samples, feature_dim), num_samples >= 2.

    Returns:
        `(mu, sigma)`: float64 arrays of shapes (feature_dim,) and (feature_dim, feature_dim), with
        `sigma = np.cov(features, rowvar=False)` (unbiased, ddof=1), as in the reference implementations.

    Example:

    >>> mu, sigma = feature_statistics(np.random.normal(size=(100, 4)))
    >>> mu.shape, sigma.shape
    ((4,), (4, 4))
    """
    features = _check_features(features)
    mu = features.mean(axis=0)  # (D,)
    sigma = np.atleast_2d(np.cov(features, rowvar=False, ddof=1))  # (D, D), also for D == 1
    return mu, sigma


def _is_accurate_root(root, matrix, rtol=1e-6):
    """True when `root` is finite and `root @ root` equals `matrix` to `rtol` of its largest entry."""
    if not np.all(np.isfinite(root)):
        return False
    scale = max(float(np.max(np.abs(matrix))), np.finfo(np.float64).tiny)
    return float(np.max(np.abs(root @ root - matrix))) <= rtol * scale


def _imaginary_part(root):
    """None when ``root`` is real up to round-off (its diagonal's imaginary parts within 1e-3, relative to the
    largest real diagonal entry when that is above 1); else ``(largest imaginary entry, tolerance)``."""
    if not np.iscomplexobj(root):
        return None
    diagonal = np.diagonal(root)
    tolerance = 1e-3 * max(1.0, float(np.max(np.abs(diagonal.real))))
    if np.allclose(diagonal.imag, 0.0, atol=tolerance):
        return None
    return float(np.max(np.abs(root.imag))), tolerance


def frechet_distance(mu1, sigma1, mu2, sigma2, eps=1e-6):
    """Fréchet (2-Wasserstein) distance between two Gaussians N(mu1, sigma1) and N(mu2, sigma2).

    ``d^2 = ||mu1 - mu2||^2 + Tr(sigma1) + Tr(sigma2) - 2 Tr((sigma1 sigma2)^(1/2))``, with the matrix square root
    from `scipy.linalg.sqrtm`. As in pytorch-fid / TTUR: if the product is singular so that the square root is
    not finite, `eps * I` is added to both covariances and the root is recomputed. Here the same is done when the
    root is finite but not a root (its square off by more than 1e-6 of the product's largest entry) or has a large
    imaginary part, and SciPy's warning on a singular product is not passed on: such products (dead features,
    fewer samples than dimensions) often have an exact root, which is then used as it is. A small imaginary part
    left by round-off is dropped, and a large one that the offset does not remove raises (the covariances are
    then not positive semi-definite).
    The "large" threshold is 1e-3 on the diagonal, relative to the largest real diagonal entry when that is
    above 1 (the reference uses an absolute 1e-3, which mis-fires on features of large scale).

    Args:
        mu1: mean of the first Gaussian, shape (D,).
        sigma1: covariance of the first Gaussian, shape (D, D).
        mu2: mean of the second Gaussian, shape (D,).
        sigma2: covariance of the second Gaussian, shape (D, D).
        eps: diagonal offset used when the product of the covariances is singular; must be > 0.

    Returns:
        The squared Fréchet distance, a Python float (this squared value is what is called FID).

    Raises:
        ValueError: shapes that do not match, or a matrix square root with a large imaginary component.

    Example:

    >>> frechet_distance(np.zeros(2), np.eye(2), np.ones(2), np.eye(2))
    2.0
    """
    mu1 = np.atleast_1d(np.asarray(mu1, dtype=np.float64))
    mu2 = np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    if mu1.ndim != 1 or mu1.shape != mu2.shape:
        raise ValueError(
            f"`mu1` and `mu2` must be vectors of the same length; received shapes {mu1.shape} and {mu2.shape}."
        )
    dim = mu1.shape[0]
    for name, sigma in (("sigma1", sigma1), ("sigma2", sigma2)):
        if sigma.shape != (dim, dim):
            raise ValueError(
                f"`{name}` must have shape {(dim, dim)} to match the means; received shape {sigma.shape}."
            )
    if not eps > 0:
        raise ValueError(f"`eps` must be > 0; received eps={eps}.")

    from scipy import linalg  # SciPy's linalg is imported on first use, to keep `import keras_gen` light.

    diff = mu1 - mu2  # (D,)
    product = sigma1 @ sigma2  # (D, D)
    with warnings.catch_warnings():
        # SciPy warns on every singular product (fewer samples than dimensions), often with an exact root; the
        # root is checked below instead, as pytorch-fid's `disp=False` leaves it to the caller.
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(product)  # (D, D), possibly complex
    if not _is_accurate_root(covmean, product) or _imaginary_part(covmean) is not None:
        # Singular product whose root is not finite, not a root, or complex beyond round-off (SciPy >= 1.16 can
        # return such a root of a rank-deficient product; its imaginary parts cancel in its square but not always on
        # its diagonal): regularise as the reference implementation does.
        offset = np.eye(dim) * eps
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
        if not np.all(np.isfinite(covmean)):
            raise ValueError(
                f"The matrix square root of sigma1 @ sigma2 is not finite even with eps={eps} added to the "
                "diagonals; try a larger `eps` or check the covariances for NaN/inf."
            )
    imaginary = _imaginary_part(covmean)
    if imaginary is not None:
        largest, tolerance = imaginary
        raise ValueError(
            f"The matrix square root of sigma1 @ sigma2 has a large imaginary component ({largest:.3g}, "
            f"tolerance {tolerance:.3g}); the covariances are probably not positive semi-definite."
        )
    covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def fid_from_features(real_features, fake_features, eps=1e-6):
    """FID between two sets of features: `frechet_distance(*feature_statistics(real), *feature_statistics(fake))`.

    Args:
        real_features: array of shape (num_real, feature_dim), num_real >= 2.
        fake_features: array of shape (num_fake, feature_dim), num_fake >= 2.
        eps: see `frechet_distance`.

    Returns:
        The FID, a Python float. It is symmetric in its two arguments and 0 for identical feature sets.

    Example:

    >>> x = np.random.normal(size=(200, 16))
    >>> round(fid_from_features(x, x), 6)
    0.0
    """
    real_features = _check_features(real_features, "real_features")
    fake_features = _check_features(fake_features, "fake_features")
    if real_features.shape[1] != fake_features.shape[1]:
        raise ValueError(
            "`real_features` and `fake_features` must have the same feature dimension; received shapes "
            f"{real_features.shape} and {fake_features.shape}."
        )
    mu1, sigma1 = feature_statistics(real_features)
    mu2, sigma2 = feature_statistics(fake_features)
    return frechet_distance(mu1, sigma1, mu2, sigma2, eps=eps)
