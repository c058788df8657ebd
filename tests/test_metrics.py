"""Tests for keras_gen.metrics: every expected value is a closed form, a constructed answer, or an independent
reference written here (NumPy / SciPy loops), never the library's own output."""

import itertools
import math
import os
import warnings

import numpy as np
import pytest
import scipy.linalg
import scipy.stats

from keras_gen.metrics import (
    InceptionFeatureExtractor,
    feature_statistics,
    fid_from_features,
    frechet_distance,
    identity_extractor,
    inception_score,
    kernel_inception_distance,
    knn_radii,
    mode_coverage,
    precision_recall,
    stacked_mnist_modes,
)
from keras_gen.metrics import extractors as extractors_module


def _reference_fid(x, y):
    """FID written out directly: hand-rolled unbiased covariances and scipy.linalg.sqrtm."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    mu1, mu2 = x.mean(0), y.mean(0)
    s1 = (x - mu1).T @ (x - mu1) / (len(x) - 1)
    s2 = (y - mu2).T @ (y - mu2) / (len(y) - 1)
    root = np.real(scipy.linalg.sqrtm(s1 @ s2))
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(root))


# ----------------------------------------------------------------------------------------------------------- FID


def test_identity_extractor_flattens():
    x = np.arange(2 * 4 * 4 * 3).reshape(2, 4, 4, 3)
    np.testing.assert_array_equal(identity_extractor(x), x.reshape(2, 48))
    assert identity_extractor.name == "identity"


def test_feature_statistics_matches_hand_computation():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 5)).astype(np.float32)
    mu, sigma = feature_statistics(x)
    assert mu.dtype == np.float64 and sigma.dtype == np.float64
    x64 = x.astype(np.float64)
    centered = x64 - x64.sum(0) / 40
    np.testing.assert_allclose(mu, x64.sum(0) / 40, rtol=1e-12)
    np.testing.assert_allclose(sigma, centered.T @ centered / 39, rtol=1e-10)
    # One feature dimension still gives a (1, 1) covariance.
    assert feature_statistics(x[:, :1])[1].shape == (1, 1)


def test_fid_matches_independent_sqrtm_reference():
    rng = np.random.default_rng(1)
    real = rng.normal(size=(300, 8)) @ rng.normal(size=(8, 8))
    fake = rng.normal(0.3, 1.5, size=(200, 8)) @ rng.normal(size=(8, 8))
    expected = _reference_fid(real, fake)
    identity = identity_extractor
    np.testing.assert_allclose(fid_from_features(identity(real), identity(fake)), expected, rtol=1e-8)


def test_frechet_distance_closed_form_for_diagonal_gaussians():
    rng = np.random.default_rng(2)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    s1, s2 = rng.uniform(0.1, 3.0, size=6), rng.uniform(0.1, 3.0, size=6)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    np.testing.assert_allclose(frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)), expected, rtol=1e-10)


def test_fid_from_samples_approaches_closed_form():
    rng = np.random.default_rng(3)
    s1, s2 = np.array([1.0, 4.0, 0.25]), np.array([2.0, 1.0, 1.0])
    mu2 = np.array([1.0, -1.0, 0.5])
    x = rng.normal(size=(40000, 3)) * np.sqrt(s1)
    y = mu2 + rng.normal(size=(40000, 3)) * np.sqrt(s2)
    expected = np.sum(mu2**2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    np.testing.assert_allclose(fid_from_features(x, y), expected, rtol=0.03)


@pytest.mark.parametrize("scale", [1.0, 100.0])
def test_fid_of_a_set_with_itself_is_zero(scale):
    x = np.random.default_rng(4).normal(size=(500, 32)) * scale
    trace = np.trace(np.cov(x, rowvar=False))
    assert abs(fid_from_features(x, x)) < 1e-6 * trace


def test_fid_is_symmetric_and_order_independent():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(120, 10)), rng.normal(0.5, 2.0, size=(90, 10))
    forward = fid_from_features(x, y)
    np.testing.assert_allclose(fid_from_features(y, x), forward, rtol=1e-8)
    np.testing.assert_allclose(fid_from_features(x[::-1], rng.permutation(y)), forward, rtol=1e-8)


def test_fid_rank_deficient_covariances_are_finite():
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(10, 32)), rng.normal(0.2, size=(12, 32))  # fewer samples than dimensions
    value = fid_from_features(x, y)
    assert math.isfinite(value) and value > 0
    np.testing.assert_allclose(value, _reference_fid(x, y), rtol=1e-6)
    assert abs(fid_from_features(x, x)) < 1e-6 * np.trace(np.cov(x, rowvar=False))


def test_frechet_distance_of_a_singular_product_is_exact_and_quiet():
    # sigma1 @ sigma2 = diag(1, 4, 0) is singular, and SciPy warns, but its root diag(1, 2, 0) is exact; the closed
    # form for diagonal Gaussians is sum((sqrt(s1) - sqrt(s2))^2) = 0 + 1 + 1, with no eps added.
    s1, s2 = np.array([1.0, 4.0, 0.0]), np.array([1.0, 1.0, 1.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # SciPy's LinAlgWarning must not reach the user
        value = frechet_distance(np.zeros(3), np.diag(s1), np.zeros(3), np.diag(s2))
    assert value == pytest.approx(2.0, abs=1e-12)


@pytest.mark.parametrize("bad_root", [np.inf, 0.0], ids=["not_finite", "not_a_root"])
def test_frechet_distance_adds_eps_when_sqrtm_fails(monkeypatch, bad_root):
    rng = np.random.default_rng(7)
    mu1, mu2 = rng.normal(size=4), rng.normal(size=4)
    a, b = rng.normal(size=(4, 4)), rng.normal(size=(4, 4))
    s1, s2 = a @ a.T, b @ b.T
    real_sqrtm, calls = scipy.linalg.sqrtm, []

    def flaky_sqrtm(matrix, *args, **kwargs):  # the first call fails as it can on a singular product
        calls.append(matrix)
        return np.full_like(matrix, bad_root) if len(calls) == 1 else real_sqrtm(matrix, *args, **kwargs)

    monkeypatch.setattr(scipy.linalg, "sqrtm", flaky_sqrtm)
    eps = 1e-2
    value = frechet_distance(mu1, s1, mu2, s2, eps=eps)
    assert len(calls) == 2
    np.testing.assert_allclose(calls[1], (s1 + eps * np.eye(4)) @ (s2 + eps * np.eye(4)), rtol=1e-12)
    root = np.real(real_sqrtm((s1 + eps * np.eye(4)) @ (s2 + eps * np.eye(4))))
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(root)
    np.testing.assert_allclose(value, expected, rtol=1e-10)


def test_fid_of_rank_one_covariances_matches_the_closed_form():
    # Constant images (every pixel of an image alike, +-1): both covariances are rank one along the same direction,
    # so FID = ||mu1 - mu2||^2 + (sqrt(a) - sqrt(b))^2 with a, b their eigenvalues. SciPy 1.17's sqrtm returns a
    # root of this singular product whose diagonal is imaginary at the 1e5 scale; the eps offset gives the real root
    # (biased by the offset: 2e-5 of the value here).
    x = np.repeat(np.array([1.0] * 7 + [-1.0] * 13)[:, None], 64, axis=1)
    y = np.repeat(np.array([1.0] * 10 + [-1.0] * 10)[:, None], 64, axis=1)
    a, b = 64 * np.var(x[:, 0], ddof=1), 64 * np.var(y[:, 0], ddof=1)
    expected = 64 * (x[:, 0].mean() - y[:, 0].mean()) ** 2 + (np.sqrt(a) - np.sqrt(b)) ** 2
    np.testing.assert_allclose(fid_from_features(x, y), expected, rtol=1e-4)


def test_frechet_distance_raises_on_large_imaginary_component():
    # sqrtm(diag(-1, 1)) = diag(i, 1): not a covariance, so the imaginary part is not round-off.
    with pytest.raises(ValueError, match="imaginary"):
        frechet_distance(np.zeros(2), np.diag([-1.0, 1.0]), np.zeros(2), np.eye(2))


def test_fid_validates_shapes():
    x = np.zeros((10, 4))
    with pytest.raises(ValueError, match=r"\(10,\)"):
        fid_from_features(np.zeros(10), x)
    with pytest.raises(ValueError, match=r"\(10, 4\).*\(10, 5\)"):
        fid_from_features(x, np.zeros((10, 5)))
    with pytest.raises(ValueError, match=r"at least 2 samples.*\(1, 4\)"):
        fid_from_features(np.zeros((1, 4)), x)
    with pytest.raises(ValueError, match=r"sigma2.*\(3, 3\)"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.eye(3))
    with pytest.raises(ValueError, match="mu1"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(2))


# ----------------------------------------------------------------------------------------------------------- KID


def _brute_force_mmd2(x, y, degree, gamma, coef0):
    """Unbiased MMD^2 with the polynomial kernel, by explicit double loops over pairs."""
    def k(a, b):
        return (gamma * float(np.dot(a, b)) + coef0) ** degree

    m = len(x)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


@pytest.mark.parametrize("degree,gamma,coef0", [(3, None, 1), (2, 0.5, 0.0)])
def test_kid_single_full_subset_equals_brute_force_mmd(degree, gamma, coef0):
    rng = np.random.default_rng(8)
    x, y = rng.normal(size=(25, 4)), rng.normal(0.3, size=(25, 4))
    expected = _brute_force_mmd2(x, y, degree, 1 / 4 if gamma is None else gamma, coef0)
    for subset_size in (25, 1000):  # 1000 is clipped to the 25 samples available
        mean, std = kernel_inception_distance(
            x, y, num_subsets=1, subset_size=subset_size, degree=degree, gamma=gamma, coef0=coef0
        )
        np.testing.assert_allclose(mean, expected, rtol=1e-10)
        assert std == 0.0


def test_kid_near_zero_for_one_distribution_and_positive_for_shifted():
    rng = np.random.default_rng(9)
    x, y = rng.normal(size=(1000, 16)), rng.normal(size=(1000, 16))
    mean, std = kernel_inception_distance(x, y, num_subsets=20, subset_size=200)
    assert abs(mean) < 1e-3 or abs(mean) < 2 * std
    shifted_mean, shifted_std = kernel_inception_distance(x, y + 0.5, num_subsets=20, subset_size=200)
    assert shifted_mean > 0.1 and shifted_mean > 5 * shifted_std


def test_kid_is_reproducible_and_validates():
    rng = np.random.default_rng(10)
    x, y = rng.normal(size=(60, 3)), rng.normal(size=(50, 3))
    first = kernel_inception_distance(x, y, num_subsets=5, subset_size=20, seed=3)
    assert kernel_inception_distance(x, y, num_subsets=5, subset_size=20, seed=3) == first
    with pytest.raises(ValueError, match="num_subsets"):
        kernel_inception_distance(x, y, num_subsets=0)
    with pytest.raises(ValueError, match="subset_size"):
        kernel_inception_distance(x, y, subset_size=1)
    with pytest.raises(ValueError, match=r"\(50, 4\)"):
        kernel_inception_distance(x, np.zeros((50, 4)))


def test_kid_does_not_depend_on_the_order_of_the_rows():
    rng = np.random.default_rng(20)
    centers = np.array([[0.0] * 4, [6.0] * 4])  # two clusters, rows sorted by cluster like a class-sorted split
    x = _clusters(rng, centers, 200)
    y = _clusters(rng, centers, 200)
    x_perm, y_perm = x[rng.permutation(400)], y[rng.permutation(400)]
    # Subsets as large as the sets hold every row: the estimate is the same whatever the order.
    full = kernel_inception_distance(x, y, num_subsets=2, subset_size=400)
    np.testing.assert_allclose(full[0], kernel_inception_distance(x_perm, y_perm, num_subsets=1, subset_size=400)[0],
                               rtol=1e-9, atol=1e-12)
    assert full[1] < 1e-9  # both subsets are the whole sets: only round-off differs
    # Random subsets of 50: the same distribution of estimates, so the means agree within their standard errors.
    # Consecutive subsets of sorted rows would compare one cluster with the other (KID far above 1).
    sorted_mean, sorted_std = kernel_inception_distance(x, y, num_subsets=200, subset_size=50)
    perm_mean, perm_std = kernel_inception_distance(x_perm, y_perm, num_subsets=200, subset_size=50)
    assert abs(sorted_mean - perm_mean) < 4 * math.sqrt((sorted_std**2 + perm_std**2) / 200)
    assert abs(sorted_mean) < 4 * sorted_std / math.sqrt(200)
    assert kernel_inception_distance(x[:200], y[200:], num_subsets=1, subset_size=200)[0] > 1.0


# ------------------------------------------------------------------------------------------------ Inception Score


def test_inception_score_is_one_for_identical_predictions():
    p = np.random.default_rng(11).dirichlet(np.ones(7))
    mean, std = inception_score(np.tile(p, (50, 1)), splits=5)
    np.testing.assert_allclose(mean, 1.0, rtol=1e-12)
    assert std < 1e-12


@pytest.mark.parametrize("num_classes", [2, 10])
def test_inception_score_is_num_classes_for_balanced_one_hot(num_classes):
    probabilities = np.eye(num_classes)[np.arange(20 * num_classes) % num_classes]
    np.testing.assert_allclose(inception_score(probabilities, splits=1)[0], num_classes, rtol=1e-12)
    # Consecutive chunks (seed=None) of rows that cycle through the classes: each chunk uses every class equally.
    mean, std = inception_score(probabilities, splits=4, seed=None)
    np.testing.assert_allclose(mean, num_classes, rtol=1e-12)
    assert std < 1e-9


def _reference_chunk_scores(probabilities):
    """IS of each of 4 chunks of 103 rows, with scipy's KL divergence."""
    scores = []
    # Chunk boundaries floor(i * 103 / 4) = 0, 25, 51, 77, 103, as in the reference code and torch-fidelity.
    for chunk in (probabilities[0:25], probabilities[25:51], probabilities[51:77], probabilities[77:103]):
        marginal = chunk.mean(axis=0)
        scores.append(np.exp(np.mean([scipy.stats.entropy(row, marginal) for row in chunk])))
    return scores


def test_inception_score_matches_reference_with_scipy_entropy():
    rng = np.random.default_rng(12)
    probabilities = rng.dirichlet(np.full(6, 0.3), size=103)
    # seed=None: consecutive chunks, as in Salimans et al.'s code.
    scores = _reference_chunk_scores(probabilities)
    mean, std = inception_score(probabilities, splits=4, seed=None)
    np.testing.assert_allclose(mean, np.mean(scores), rtol=1e-10)
    np.testing.assert_allclose(std, np.std(scores), rtol=1e-8)
    # A seed: the chunks of the rows permuted by numpy.random.RandomState(seed), as torch-fidelity does.
    scores = _reference_chunk_scores(probabilities[np.random.RandomState(7).permutation(103)])
    mean, std = inception_score(probabilities, splits=4, seed=7)
    np.testing.assert_allclose(mean, np.mean(scores), rtol=1e-10)
    np.testing.assert_allclose(std, np.std(scores), rtol=1e-8)


def _confident_predictions(num_samples, num_classes, eps):
    """Rows with 1 - eps on their class and eps / (K - 1) elsewhere, classes used equally, sorted by class."""
    labels = np.sort(np.arange(num_samples) % num_classes)  # (N,): 0, 0, ..., 1, 1, ...
    probabilities = np.full((num_samples, num_classes), eps / (num_classes - 1))
    probabilities[np.arange(num_samples), labels] = 1 - eps
    return probabilities


def test_inception_score_of_class_sorted_rows_equals_shuffled_and_closed_form():
    num_classes, eps = 10, 0.05
    probabilities = _confident_predictions(2000, num_classes, eps)  # sorted by class, like a test split
    # Closed form: the marginal is uniform and every row has the same entropy H, so IS = exp(log K - H).
    row_entropy = -(1 - eps) * math.log(1 - eps) - eps * math.log(eps / (num_classes - 1))
    expected = math.exp(math.log(num_classes) - row_entropy)
    np.testing.assert_allclose(inception_score(probabilities, splits=1)[0], expected, rtol=1e-12)
    sorted_mean, sorted_std = inception_score(probabilities, splits=10)
    shuffled = probabilities[np.random.default_rng(0).permutation(2000)]
    shuffled_mean, shuffled_std = inception_score(shuffled, splits=10)
    # Chunks of 200 rows see a slightly uneven marginal: a few percent below the closed form, never one class.
    np.testing.assert_allclose(sorted_mean, expected, rtol=0.03)
    np.testing.assert_allclose(sorted_mean, shuffled_mean, rtol=0.01)
    assert 0 < sorted_std < 0.02 * expected and 0 < shuffled_std < 0.02 * expected
    # The permutation is seeded: reproducible, and another seed gives other chunks.
    assert inception_score(probabilities, splits=10) == (sorted_mean, sorted_std)
    assert inception_score(probabilities, splits=10, seed=1) != (sorted_mean, sorted_std)
    # seed=None keeps the order: each consecutive chunk holds a single class.
    np.testing.assert_allclose(inception_score(probabilities, splits=10, seed=None)[0], 1.0, rtol=1e-12)


def test_inception_score_validates():
    good = np.full((10, 4), 0.25)
    with pytest.raises(ValueError, match="sum to 1"):
        inception_score(np.ones((10, 4)))
    with pytest.raises(ValueError, match="non-negative"):
        inception_score(np.array([[1.5, -0.5]] * 10))
    with pytest.raises(ValueError, match="2-D"):
        inception_score(np.full(4, 0.25))
    for splits in (0, 11, 2.5):
        with pytest.raises(ValueError, match="splits"):
            inception_score(good, splits=splits)
    for seed in (-1, 2**32, 2.5, "0", True):
        with pytest.raises(ValueError, match="seed"):
            inception_score(good, seed=seed)


# ---------------------------------------------------------------------------------------------- precision/recall


def _clusters(rng, centers, per_cluster, scale=1.0):
    return np.concatenate([c + scale * rng.normal(size=(per_cluster, len(c))) for c in centers])


def test_precision_recall_identical_sets():
    x = np.random.default_rng(13).normal(size=(200, 5))
    assert precision_recall(x, x, k=3) == dict(precision=1.0, recall=1.0)


def test_precision_recall_far_away_fakes():
    x = np.random.default_rng(14).normal(size=(200, 5))
    result = precision_recall(x, x + 1000.0, k=3)
    assert result["precision"] == 0.0 and result["recall"] == 0.0


def test_precision_recall_fakes_covering_half_the_clusters():
    rng = np.random.default_rng(15)
    centers = 100.0 * np.eye(4)  # four clusters, 141 apart, spread 1
    real = _clusters(rng, centers, 50)
    # Exactly the real points of the first two clusters: realistic (precision 1), half the data (recall 1/2).
    assert precision_recall(real, real[:100], k=3, batch_size=64) == dict(precision=1.0, recall=0.5)
    # Fresh samples from the first two clusters: approximately the same.
    result = precision_recall(real, _clusters(rng, centers[:2], 100), k=3, batch_size=64)
    assert result["precision"] > 0.9
    assert 0.4 < result["recall"] <= 0.5


def _brute_force_precision_recall(real, fake, k):
    def radii(points):
        d = np.linalg.norm(points[:, None] - points[None], axis=-1)
        return np.array([np.sort(np.delete(d[i], i))[k - 1] for i in range(len(points))])

    real_r, fake_r = radii(real), radii(fake)
    precision = np.mean([any(np.linalg.norm(f - r) <= rr for r, rr in zip(real, real_r)) for f in fake])
    recall = np.mean([any(np.linalg.norm(r - f) <= fr for f, fr in zip(fake, fake_r)) for r in real])
    return real_r, precision, recall


@pytest.mark.parametrize("batch_size", [1, 4, 1000])
def test_precision_recall_matches_brute_force_on_tiny_sets(batch_size):
    rng = np.random.default_rng(16)
    real, fake = rng.normal(size=(13, 3)), rng.normal(0.7, 1.3, size=(9, 3))
    real_radii, precision, recall = _brute_force_precision_recall(real, fake, k=2)
    assert 0 < precision < 1 and 0 < recall < 1  # a non-trivial case
    np.testing.assert_allclose(knn_radii(real, k=2, batch_size=batch_size), real_radii, rtol=1e-9)
    result = precision_recall(real, fake, k=2, batch_size=batch_size)
    assert result == dict(precision=pytest.approx(precision), recall=pytest.approx(recall))


def test_precision_recall_validates():
    x = np.zeros((5, 2))
    with pytest.raises(ValueError, match="smaller than the number of samples"):
        precision_recall(x, np.ones((3, 2)), k=3)
    with pytest.raises(ValueError, match="`k`"):
        precision_recall(x, x, k=0)
    with pytest.raises(ValueError, match="batch_size"):
        precision_recall(x, x, batch_size=0)


@pytest.mark.parametrize("batch_size", [7, 1000])
def test_precision_recall_does_not_depend_on_the_order_of_the_rows(batch_size):
    rng = np.random.default_rng(21)
    centers = 10.0 * np.eye(3)
    real = _clusters(rng, centers, 40)  # sorted by cluster
    fake = _clusters(rng, centers[:2], 30, scale=1.5)  # two of the three clusters, wider
    expected = precision_recall(real, fake, k=3, batch_size=batch_size)
    assert 0 < expected["precision"] < 1 and 0 < expected["recall"] < 1  # a non-trivial case
    for seed in range(3):
        order = np.random.default_rng(seed)
        shuffled = precision_recall(
            real[order.permutation(len(real))], fake[order.permutation(len(fake))], k=3, batch_size=batch_size
        )
        assert shuffled == expected  # sets of points: exactly the same fractions


# --------------------------------------------------------------------------------------------------- mode coverage


def _grid(size=5, spacing=2.0):
    coords = spacing * (np.arange(size) - (size - 1) / 2)
    return np.array(list(itertools.product(coords, coords)))  # (size^2, 2)


def test_mode_coverage_counts_chosen_modes():
    centers, sigma = _grid(), 0.05
    rng = np.random.default_rng(17)
    chosen = [0, 7, 24]
    offsets = rng.uniform(-1, 1, size=(30, 2)) * sigma  # at most sqrt(2) sigma < 3 sigma from the mode
    good = centers[np.repeat(chosen, 10)] + offsets
    bad = centers[:5] + np.array([1.0, 1.0])  # halfway between modes, far beyond 3 sigma
    result = mode_coverage(np.concatenate([good, bad]), centers, sigma)
    assert result["modes"] == 3 and result["num_modes"] == 25
    assert result["high_quality"] == pytest.approx(30 / 35)
    assert result["reverse_kl"] == pytest.approx(math.log(25 / 3))
    assert result["counts"] == [10 if i in chosen else 0 for i in range(25)]


def test_mode_coverage_uniform_over_all_modes_has_zero_reverse_kl():
    centers = _grid()
    result = mode_coverage(np.repeat(centers, 4, axis=0), centers, 0.1)
    assert result["modes"] == 25 and result["high_quality"] == 1.0
    assert result["reverse_kl"] == pytest.approx(0.0, abs=1e-12)


def test_mode_coverage_min_count_uneven_use_and_no_high_quality_samples():
    centers = np.array([[0.0, 0.0], [10.0, 0.0]])
    samples = np.array([[0.0, 0.0]] * 3 + [[10.0, 0.1]])
    result = mode_coverage(samples, centers, [0.1, 0.1], min_count=2)
    assert result["modes"] == 1 and result["counts"] == [3, 1]
    assert result["reverse_kl"] == pytest.approx(0.75 * math.log(1.5) + 0.25 * math.log(0.5))
    nothing = mode_coverage(np.array([[5.0, 5.0]]), centers, 0.1)
    assert nothing["modes"] == 0 and nothing["high_quality"] == 0.0 and math.isnan(nothing["reverse_kl"])


def test_mode_coverage_validates():
    with pytest.raises(ValueError, match="samples"):
        mode_coverage(np.zeros((4, 3)), _grid(), 0.1)
    with pytest.raises(ValueError, match="sigma"):
        mode_coverage(np.zeros((4, 2)), _grid(), -1.0)
    with pytest.raises(ValueError, match="min_count"):
        mode_coverage(np.zeros((4, 2)), _grid(), 0.1, min_count=0)


def test_stacked_mnist_modes_from_constructed_triples():
    all_triples = np.array(list(itertools.product(range(10), repeat=3)), dtype=np.uint8)
    result = stacked_mnist_modes(all_triples)
    assert result["modes"] == 1000 and result["kl"] == pytest.approx(0.0, abs=1e-12)
    assert result["channel_kl"] == pytest.approx([0.0, 0.0, 0.0], abs=1e-12)
    assert result["channel_counts"] == [[100] * 10] * 3
    ten = np.repeat(all_triples[::100], 5, axis=0)  # (d, 0, 0) for d in 0..9, 5 times each
    result = stacked_mnist_modes(ten)
    assert result["modes"] == 10 and result["kl"] == pytest.approx(math.log(100))
    # Channel 0 uniform; channels 1 and 2 always 0: KL log 10 each, and they add up to the triples' KL here
    # (the channels are independent).
    assert result["channel_kl"] == pytest.approx([0.0, math.log(10), math.log(10)], abs=1e-12)
    assert result["channel_counts"] == [[5] * 10, [50] + [0] * 9, [50] + [0] * 9]
    first = np.repeat(np.arange(10), [2, 1, 1, 1, 1, 1, 1, 1, 1, 0])  # (10,)
    skewed = np.stack([first, np.zeros(10, int), np.zeros(10, int)], 1)
    q = np.array([2, 1, 1, 1, 1, 1, 1, 1, 1]) / 10  # channel 0's histogram (digit 9 never drawn)
    assert stacked_mnist_modes(skewed)["channel_kl"][0] == pytest.approx(float(np.sum(q * np.log(10 * q))))
    with pytest.raises(ValueError, match=r"\(4, 2\)"):
        stacked_mnist_modes(np.zeros((4, 2), dtype=int))
    with pytest.raises(ValueError, match="0..9"):
        stacked_mnist_modes(np.array([[0, 10, 1]]))
    with pytest.raises(TypeError, match="integer"):
        stacked_mnist_modes(np.zeros((4, 3)))


def test_mode_coverage_and_stacked_mnist_modes_do_not_depend_on_the_order_of_the_samples():
    centers, sigma = _grid(), 0.05
    rng = np.random.default_rng(22)
    modes = np.repeat([0, 3, 3, 11, 24], 7)  # sorted by mode, one mode used twice as often
    samples = np.concatenate([centers[modes] + rng.normal(scale=sigma, size=(35, 2)), centers[:3] + 1.0])
    triples = np.sort(rng.integers(0, 10, size=(60, 3)), axis=0)
    expected, expected_triples = mode_coverage(samples, centers, sigma), stacked_mnist_modes(triples)
    for seed in range(3):
        order = np.random.default_rng(seed)
        assert mode_coverage(samples[order.permutation(len(samples))], centers, sigma) == expected
        assert stacked_mnist_modes(triples[order.permutation(len(triples))]) == expected_triples


# ---------------------------------------------------------------------------------------- Inception extractor


def test_inception_extractor_missing_weights_raise_without_download(tmp_path, monkeypatch):
    import keras

    def no_download(*args, **kwargs):
        raise AssertionError("the extractor tried to download weights")

    monkeypatch.setattr(keras.utils, "get_file", no_download)
    missing = tmp_path / "nope.weights.h5"
    with pytest.raises(FileNotFoundError, match="nope.weights.h5"):
        InceptionFeatureExtractor(weights=str(missing))

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    if any(os.path.exists(p) for p in extractors_module._keras_cache_candidates()):
        pytest.skip("InceptionV3 weights are cached in /tmp/.keras on this machine")
    with pytest.raises(FileNotFoundError, match="keras_home.*allow_download=True") as error:
        InceptionFeatureExtractor()
    assert "weights=" in str(error.value)


def test_inception_extractor_loads_local_weights_and_extracts(tmp_path, monkeypatch):
    import keras
    import tensorflow as tf

    reference = keras.applications.InceptionV3(
        include_top=False, pooling="avg", weights=None, input_shape=(299, 299, 3)
    )
    weights_path = tmp_path / "inception.weights.h5"
    reference.save_weights(str(weights_path))

    extractor = InceptionFeatureExtractor(weights=str(weights_path), batch_size=64)
    assert extractor.name == "inception_v3_pool3"
    for loaded, saved in zip(extractor.model.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_array_equal(loaded, saved)

    rng = np.random.default_rng(18)
    gray = rng.uniform(-1, 1, size=(3, 28, 28, 1)).astype(np.float32)
    rgb = rng.uniform(-1, 1, size=(2, 32, 32, 3)).astype(np.float32)

    def expected(images):  # independent preprocessing: tf.image.resize, then the original model
        images = np.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images
        return reference.predict_on_batch(tf.image.resize(images, (299, 299), method="bilinear"))

    rgb_features = extractor(rgb)
    assert rgb_features.shape == (2, 2048)
    scale = np.abs(expected(rgb)).max()
    np.testing.assert_allclose(rgb_features, expected(rgb), atol=1e-4 * scale)

    gray_features = extractor(gray)
    assert gray_features.shape == (3, 2048)
    np.testing.assert_allclose(gray_features, expected(gray), atol=1e-4 * scale)
    np.testing.assert_allclose(extractor(gray[..., 0]), gray_features, atol=1e-6 * scale)  # (N, H, W) input

    extractor.batch_size = 2  # two batches, one of them partial: same features
    np.testing.assert_allclose(extractor(gray), gray_features, atol=1e-4 * scale)

    # The preprocessing stage on its own, exactly: swap the network for one that returns its input.
    extractor.model = keras.Sequential([keras.Input((299, 299, 3)), keras.layers.Identity()])
    resized_gray = tf.image.resize(np.repeat(gray, 3, axis=-1), (299, 299), method="bilinear").numpy()
    np.testing.assert_allclose(extractor(gray), resized_gray, atol=1e-6)
    np.testing.assert_allclose(extractor(rgb), tf.image.resize(rgb, (299, 299)).numpy(), atol=1e-6)

    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        extractor(rgb * 127.5 + 127.5)
    with pytest.raises(ValueError, match="C = 1 or 3"):
        extractor(np.zeros((2, 8, 8, 2)))

    # The legacy Keras-applications .h5 file in the Keras cache is found when no path is given.
    cache = tmp_path / "keras_home" / "models"
    cache.mkdir(parents=True)
    reference.save(str(cache / extractors_module.INCEPTION_V3_NOTOP_WEIGHTS))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    cached = InceptionFeatureExtractor()
    assert cached.weights_path == str(cache / extractors_module.INCEPTION_V3_NOTOP_WEIGHTS)
    np.testing.assert_allclose(cached(rgb), rgb_features, atol=1e-6 * scale)
