"""Likelihood of latent-variable models on held-out data: the ELBO, the importance-weighted bound, bits/dim.

For a VAE with encoder ``q(z|x)`` and decoder ``p(x|z)`` (any model with ``posterior``, ``log_likelihood`` and
``check_inputs``, as `keras_gen.models.VAE`):

    ELBO(x)    = E_q[log p(x|z)] - KL(q(z|x) || p(z))                       <= log p(x)
    L_k(x)     = E[log 1/k sum_i p(x|z_i) p(z_i) / q(z_i|x)],  z_i ~ q(z|x)  (Burda et al. 2016)
    ELBO = L_1 <= L_k <= L_{k+1} <= log p(x),   L_k -> log p(x) as k -> infinity

`iw_nll` reports ``-L_k`` (an upper bound on the negative log-likelihood), `elbo` the ELBO, both in nats per
image; `bits_per_dim` converts nats per image to bits per pixel.

Binarization: a Bernoulli decoder gives a probability only to binary images, so the [-1, 1] images are
binarized first, and the protocol is part of the number: ``"threshold"`` (pixel on when its intensity is above
0.5, a fixed data set) or ``"stochastic"`` (pixel on with probability equal to its intensity, drawn once from
``seed``, as in the "dynamically binarized" MNIST of Salakhutdinov & Murray 2008). Published MNIST NLLs differ by
about 2 nats between the two. Both functions say which one they used in their result's ``"binarization"``.
``binarize=None`` evaluates the images as they are: grey levels under a Bernoulli decoder are not a normalized
likelihood, and a Gaussian decoder gives a density on [-1, 1] pixel values (not comparable to discrete NLLs).
"""

import math

import numpy as np

from keras_gen import checks

__all__ = ["BINARIZATIONS", "binarize_images", "elbo", "iw_nll", "bits_per_dim"]

BINARIZATIONS = ("threshold", "stochastic", None)




def _check_seed(seed):
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"`seed` must be a non-negative integer, got {seed!r}.")
    return int(seed)


def binarize_images(images, method="threshold", seed=0):
    """Binarizes images in [-1, 1] to {-1, 1}.

    Args:
        images: a float array in [-1, 1].
        method: ``"threshold"`` (on where ``(x + 1) / 2 > 0.5``), ``"stochastic"`` (on with probability
            ``(x + 1) / 2``, drawn with NumPy's generator seeded by ``seed``) or ``None`` (unchanged).
        seed: seed of the stochastic binarization.

    Returns:
        A float32 array of the same shape.
    """
    if method not in BINARIZATIONS:
        raise ValueError(f"Unknown binarization {method!r}. Valid: {', '.join(map(repr, BINARIZATIONS))}.")
    images = np.asarray(images, dtype="float32")
    if method is None:
        return images
    intensity = (images + 1.0) / 2.0  # [0, 1]
    if method == "threshold":
        on = intensity > 0.5
    else:
        on = np.random.default_rng(_check_seed(seed)).random(images.shape) < intensity
    return np.where(on, 1.0, -1.0).astype("float32")


def _describe(model, method, seed):
    if method == "threshold":
        return "threshold: pixel on where intensity > 0.5 (fixed)"
    if method == "stochastic":
        return f"stochastic: pixel on with probability = intensity (drawn once, seed {seed})"
    if getattr(model, "likelihood", None) == "gaussian":
        return "none: Gaussian density of the [-1, 1] pixel values (not a discrete likelihood)"
    return "none: grey-level targets (not a normalized Bernoulli likelihood)"


def _prepare(model, images, labels, method, seed):
    if method not in BINARIZATIONS:
        raise ValueError(f"Unknown binarization {method!r}. Valid: {', '.join(map(repr, BINARIZATIONS))}.")
    seed = _check_seed(seed)
    images, labels = model.check_inputs(images, labels)
    return binarize_images(images, method, seed), labels, seed


def bits_per_dim(nll_nats, num_dims):
    """Nats per example to bits per dimension: ``nll / (num_dims * ln 2)``.

    Args:
        nll_nats: a negative log-likelihood (or bound) per example, in nats: a number or an array.
        num_dims: dimensions per example (784 for a 28x28x1 image).
    """
    scale = checks.integer(num_dims, "num_dims", 1) * math.log(2.0)
    if np.ndim(nll_nats):
        return np.asarray(nll_nats, dtype="float64") / scale
    return float(nll_nats) / scale


def _tile(tensor, times):
    """``(B, ...) -> (times * B, ...)``, the batch repeated ``times`` times (sample-major)."""
    from keras import ops

    repeated = ops.tile(ops.expand_dims(tensor, 0), [times] + [1] * len(tensor.shape))  # (times, B, ...)
    return ops.reshape(repeated, [-1] + list(tensor.shape[1:]))


def elbo(model, images, labels=None, *, binarize="threshold", seed=0, batch_size=256, samples=1):
    """The evidence lower bound of each image, in nats.

    ``ELBO(x) = E_{q(z|x)}[log p(x|z)] - KL(q(z|x) || N(0, I))``: the KL in closed form, the expectation averaged
    over ``samples`` reparameterized draws (NumPy's generator seeded by ``seed``, so the result does not depend
    on the model's own seed state). This is the β = 1 bound whatever the model's training ``beta``.

    Args:
        model: a `keras_gen.models.VAE` (or any model with ``check_inputs``, ``posterior``, ``log_likelihood``).
        images: ``(n, H, W, C)`` in [-1, 1] (use held-out data).
        labels: the images' labels, for a conditional model.
        binarize: ``"threshold"``, ``"stochastic"`` or ``None`` (see the module docstring).
        seed: seed of the stochastic binarization and of the draws of ``z``.
        batch_size: images per network call.
        samples: draws of ``z`` per image for the expectation.

    Returns:
        A dict: ``elbo``, ``reconstruction`` (``-E log p(x|z)``) and ``kl``, float64 ``(n,)``; ``mean_elbo``,
        ``nll_bound`` (``-mean_elbo``), ``bits_per_dim`` (of the bound), ``num_dims``, ``samples``,
        ``binarization`` (a sentence).

    Example:
        >>> result = elbo(vae, x_test, binarize="threshold")
        >>> result["nll_bound"], result["binarization"]  # doctest: +SKIP
    """
    from keras import ops

    from keras_gen.losses import gaussian_kl

    images, labels, seed = _prepare(model, images, labels, binarize, seed)
    batch_size = checks.integer(batch_size, "batch_size", 1)
    samples = checks.integer(samples, "samples", 1)
    noise = np.random.default_rng([seed, 1])
    reconstruction, kl = [], []
    for start in range(0, images.shape[0], batch_size):
        x = ops.convert_to_tensor(images[start : start + batch_size])
        y = None if labels is None else ops.convert_to_tensor(labels[start : start + batch_size])
        mean, log_var = model.posterior(x, y)  # (B, d) each
        kl.append(ops.convert_to_numpy(gaussian_kl(mean, log_var)).astype("float64"))
        b, d = mean.shape
        eps = noise.standard_normal((samples, b, d)).astype("float32").reshape(samples * b, d)
        z = _tile(mean, samples) + ops.exp(0.5 * _tile(log_var, samples)) * eps  # (S * B, d)
        log_px = model.log_likelihood(_tile(x, samples), z, None if y is None else _tile(y, samples))  # (S * B,)
        log_px = ops.convert_to_numpy(log_px).astype("float64").reshape(samples, b)
        reconstruction.append(-log_px.mean(axis=0))
    reconstruction, kl = np.concatenate(reconstruction), np.concatenate(kl)
    values = -(reconstruction + kl)
    num_dims = int(np.prod(images.shape[1:]))
    mean_elbo = float(values.mean())
    return {
        "elbo": values,
        "reconstruction": reconstruction,
        "kl": kl,
        "mean_elbo": mean_elbo,
        "nll_bound": -mean_elbo,
        "bits_per_dim": bits_per_dim(-mean_elbo, num_dims),
        "num_dims": num_dims,
        "samples": samples,
        "binarization": _describe(model, binarize, seed),
    }


def _logsumexp(values, axis):
    peak = np.max(values, axis=axis, keepdims=True)
    return np.squeeze(peak, axis=axis) + np.log(np.sum(np.exp(values - peak), axis=axis))


def iw_nll(model, images, labels=None, *, k=5000, chunk=500, batch_size=20, binarize="threshold", seed=0):
    """The importance-weighted bound on each image's negative log-likelihood, ``-L_k(x)``, in nats
    (Burda, Grosse & Salakhutdinov 2016, https://arxiv.org/abs/1509.00519).

    ``-L_k(x) = -log (1/k) sum_{i=1..k} exp(log p(x|z_i) + log p(z_i) - log q(z_i|x))``, ``z_i ~ q(z|x)``, with
    the exact diagonal-Gaussian log-densities (`keras_gen.losses.gaussian_log_likelihood`) and a float64
    log-sum-exp. ``-L_k`` is an upper bound on ``-log p(x)`` that tightens as ``k`` grows; ``k = 1`` is ``-ELBO``
    with a one-sample reconstruction term.

    Memory: the decoder runs on ``chunk * batch_size`` latents at a time (``chunk`` of the ``k`` samples for
    ``batch_size`` images), and only the ``(k, batch_size)`` log-weights are kept, so ``k = 5000`` fits easily.

    Args:
        model: a `keras_gen.models.VAE` (or any model with ``check_inputs``, ``posterior``, ``log_likelihood``).
        images: ``(n, H, W, C)`` in [-1, 1] (use held-out data).
        labels: the images' labels, for a conditional model.
        k: importance samples per image.
        chunk: samples per decoder call (per image).
        batch_size: images per decoder call.
        binarize: ``"threshold"``, ``"stochastic"`` or ``None`` (see the module docstring).
        seed: seed of the stochastic binarization and of the draws of ``z``.

    Returns:
        A dict: ``nll`` float64 ``(n,)``; ``mean_nll``, ``bits_per_dim`` (of the mean), ``num_dims``, ``k``,
        ``binarization`` (a sentence).
    """
    import tensorflow as tf
    from keras import ops

    from keras_gen.losses import gaussian_log_likelihood

    images, labels, seed = _prepare(model, images, labels, binarize, seed)
    k = checks.integer(k, "k", 1)
    chunk = min(checks.integer(chunk, "chunk", 1), k)
    batch_size = checks.integer(batch_size, "batch_size", 1)
    noise = np.random.default_rng([seed, 2])

    @tf.function(reduce_retracing=True)  # a graph is about twice as fast as eager calls here
    def log_weights_of(x, y, mean, log_var, eps):
        c = tf.shape(eps)[0] // tf.shape(mean)[0]
        mean_c, log_var_c = _tile(mean, c), _tile(log_var, c)  # (c * B, d)
        z = mean_c + ops.exp(0.5 * log_var_c) * eps
        log_px = model.log_likelihood(_tile(x, c), z, None if y is None else _tile(y, c))  # (c * B,)
        log_pz = gaussian_log_likelihood(z, ops.zeros_like(z), log_var=0.0)
        log_qz = gaussian_log_likelihood(z, mean_c, log_var=log_var_c)
        return log_px, log_pz - log_qz

    nll = []
    for start in range(0, images.shape[0], batch_size):
        x = ops.convert_to_tensor(images[start : start + batch_size])
        y = None if labels is None else ops.convert_to_tensor(labels[start : start + batch_size])
        mean, log_var = model.posterior(x, y)  # (B, d) each
        b, d = mean.shape
        log_weights = []
        for done in range(0, k, chunk):
            c = min(chunk, k - done)
            eps = noise.standard_normal((c * b, d)).astype("float32")  # sample-major: row i * b + j is image j
            log_px, log_ratio = log_weights_of(x, y, mean, log_var, ops.convert_to_tensor(eps))
            weights = ops.convert_to_numpy(log_px).astype("float64") + ops.convert_to_numpy(log_ratio).astype("float64")
            log_weights.append(weights.reshape(c, b))
        log_weights = np.concatenate(log_weights, axis=0)  # (k, B)
        nll.append(math.log(k) - _logsumexp(log_weights, axis=0))
    nll = np.concatenate(nll)
    num_dims = int(np.prod(images.shape[1:]))
    mean_nll = float(nll.mean())
    return {
        "nll": nll,
        "mean_nll": mean_nll,
        "bits_per_dim": bits_per_dim(mean_nll, num_dims),
        "num_dims": num_dims,
        "k": k,
        "binarization": _describe(model, binarize, seed),
    }
