"""Adversarial losses and regularizers, as plain functions in `keras.ops`.

Every adversarial loss comes as a pair, ``<name>_generator_loss(fake_logits)`` and
``<name>_discriminator_loss(real_logits, fake_logits)``. Both take raw discriminator outputs (logits, no
sigmoid) of any rank, so patch discriminators work unchanged, and reduce them with a mean over every element.

Conventions, with D(x) = sigmoid(logits) where a probability is meant:

| name             | discriminator minimises                         | generator minimises          |
|------------------|-------------------------------------------------|------------------------------|
| `minimax`        | -E log D(x) - E log(1 - D(G(z)))                | E log(1 - D(G(z)))            |
| `non_saturating` | same as minimax                                 | -E log D(G(z))                |
| `least_squares`  | 1/2 E (D(x) - 1)^2 + 1/2 E D(G(z))^2 (on logits) | 1/2 E (D(G(z)) - 1)^2         |
| `hinge`          | E relu(1 - D(x)) + E relu(1 + D(G(z)))          | -E D(G(z))                   |
| `wasserstein`    | E D(G(z)) - E D(x)                              | -E D(G(z))                   |

The log-sigmoid terms are computed with softplus: log D = -softplus(-l), log(1 - D) = -softplus(l), which is
exact and never takes the log of 0.

The penalties (`gradient_penalty`, `r1_penalty`) need a gradient of the discriminator with respect to its input,
which `keras.ops` cannot express; they use `tf.GradientTape` and so run on the TensorFlow backend (the one
the GAN training step uses).
"""

import keras
from keras import ops

from keras_gen import rng

__all__ = [
    "LOSSES",
    "get_loss_pair",
    "minimax_generator_loss",
    "minimax_discriminator_loss",
    "non_saturating_generator_loss",
    "non_saturating_discriminator_loss",
    "least_squares_generator_loss",
    "least_squares_discriminator_loss",
    "hinge_generator_loss",
    "hinge_discriminator_loss",
    "wasserstein_generator_loss",
    "wasserstein_discriminator_loss",
    "classifier_loss",
    "continuous_code_loss",
    "interpolate",
    "gradient_penalty",
    "r1_penalty",
    "gaussian_kl",
    "bernoulli_log_likelihood",
    "gaussian_log_likelihood",
    "vq_codebook_loss",
    "vq_commitment_loss",
]

_PACKAGE = "keras_gen"


def _register(fn):
    return keras.saving.register_keras_serializable(package=_PACKAGE)(fn)


@_register
def minimax_discriminator_loss(real_logits, fake_logits):
    """Cross-entropy of the original GAN (Goodfellow et al. 2014, https://arxiv.org/abs/1406.2661).

    ``-E[log D(x)] - E[log(1 - D(G(z)))] = E[softplus(-real)] + E[softplus(fake)]``.

    Args:
        real_logits: discriminator logits on real data, any shape.
        fake_logits: discriminator logits on generated data, any shape.

    Returns:
        A scalar tensor.
    """
    return ops.mean(ops.softplus(-real_logits)) + ops.mean(ops.softplus(fake_logits))


@_register
def minimax_generator_loss(fake_logits):
    """The saturating generator loss of the original minimax game: ``E[log(1 - D(G(z)))] = -E[softplus(fake)]``.

    Its gradient vanishes when D confidently rejects the samples (early training); prefer
    `non_saturating_generator_loss` in practice.
    """
    return -ops.mean(ops.softplus(fake_logits))


non_saturating_discriminator_loss = minimax_discriminator_loss


@_register
def non_saturating_generator_loss(fake_logits):
    """The non-saturating generator loss: ``-E[log D(G(z))] = E[softplus(-fake)]``."""
    return ops.mean(ops.softplus(-fake_logits))


@_register
def least_squares_discriminator_loss(real_logits, fake_logits):
    """LSGAN (Mao et al. 2017, https://arxiv.org/abs/1611.04076) with the 0-1 coding (a=0, b=1):
    ``1/2 E[(D(x) - 1)^2] + 1/2 E[D(G(z))^2]`` on the raw outputs."""
    return 0.5 * ops.mean(ops.square(real_logits - 1.0)) + 0.5 * ops.mean(ops.square(fake_logits))


@_register
def least_squares_generator_loss(fake_logits):
    """LSGAN generator loss (c=1): ``1/2 E[(D(G(z)) - 1)^2]``."""
    return 0.5 * ops.mean(ops.square(fake_logits - 1.0))


@_register
def hinge_discriminator_loss(real_logits, fake_logits):
    """Hinge loss (Lim & Ye 2017; Miyato et al. 2018): ``E[relu(1 - D(x))] + E[relu(1 + D(G(z)))]``."""
    return ops.mean(ops.relu(1.0 - real_logits)) + ops.mean(ops.relu(1.0 + fake_logits))


@_register
def hinge_generator_loss(fake_logits):
    """Hinge generator loss: ``-E[D(G(z))]``."""
    return -ops.mean(fake_logits)


@_register
def wasserstein_discriminator_loss(real_logits, fake_logits):
    """WGAN critic loss (Arjovsky et al. 2017, https://arxiv.org/abs/1701.07875): ``E[D(G(z))] - E[D(x)]``.

    Needs a Lipschitz constraint: weight clipping, a `gradient_penalty`, or spectral normalization.
    """
    return ops.mean(fake_logits) - ops.mean(real_logits)


@_register
def wasserstein_generator_loss(fake_logits):
    """WGAN generator loss: ``-E[D(G(z))]``."""
    return -ops.mean(fake_logits)


LOSSES = {
    "minimax": (minimax_generator_loss, minimax_discriminator_loss),
    "non_saturating": (non_saturating_generator_loss, non_saturating_discriminator_loss),
    "least_squares": (least_squares_generator_loss, least_squares_discriminator_loss),
    "hinge": (hinge_generator_loss, hinge_discriminator_loss),
    "wasserstein": (wasserstein_generator_loss, wasserstein_discriminator_loss),
}
"""Loss pairs by name: ``name -> (generator_loss, discriminator_loss)``."""


def get_loss_pair(loss):
    """Resolves a loss name, or validates a ``(generator_loss, discriminator_loss)`` pair of callables.

    Args:
        loss: one of the names in `LOSSES` (``-`` and ``_`` are interchangeable), or a pair of callables
            ``(generator_loss(fake_logits), discriminator_loss(real_logits, fake_logits))``.

    Returns:
        ``(generator_loss, discriminator_loss)``.
    """
    if isinstance(loss, str):
        key = loss.replace("-", "_").lower()
        if key not in LOSSES:
            raise ValueError(f"Unknown GAN loss {loss!r}. Valid names: {', '.join(sorted(LOSSES))}.")
        return LOSSES[key]
    if isinstance(loss, (tuple, list)) and len(loss) == 2 and all(callable(f) for f in loss):
        return tuple(loss)
    raise TypeError(
        "`loss` must be a name from keras_gen.losses.LOSSES or a pair of callables "
        f"(generator_loss, discriminator_loss); got {loss!r}."
    )


def classifier_loss(class_logits, labels):
    """Cross-entropy of an auxiliary classifier, ``-E log softmax(class_logits)[label]`` (AC-GAN, Odena et al. 2017,
    https://arxiv.org/abs/1610.09585): the discriminator minimises it on real images, the generator on its own
    samples with the labels they were drawn for.

    Args:
        class_logits: ``(B, num_classes)`` logits.
        labels: ``(B,)`` integer classes.
    """
    labels = ops.cast(labels, "int32")
    return ops.mean(ops.sparse_categorical_crossentropy(labels, ops.cast(class_logits, "float32"), from_logits=True))


def continuous_code_loss(predicted, codes):
    """InfoGAN's loss for continuous codes (Chen et al. 2016, https://arxiv.org/abs/1606.03657): the negative
    log-likelihood of the drawn codes under a unit-variance Gaussian centred on the prediction, without its constant,
    ``E_batch sum_dims (predicted - codes)^2 / 2`` (the fixed-variance factored Gaussian of the paper's code).

    Args:
        predicted: ``(B, ...)`` the auxiliary head's means.
        codes: the drawn codes, same shape.
    """
    difference = ops.cast(predicted, "float32") - ops.cast(codes, "float32")
    return 0.5 * ops.mean(_sum_per_sample(ops.square(difference)))


def interpolate(real, fake, seed):
    """Random points on the segments between real and generated samples (WGAN-GP, Gulrajani et al. 2017).

    ``x_hat = alpha * real + (1 - alpha) * fake`` with ``alpha ~ Uniform[0, 1]`` drawn once per sample, i.e. of
    shape ``(B, 1, ..., 1)`` broadcasting over every other axis.
    """
    real = ops.convert_to_tensor(real)
    fake = ops.cast(fake, real.dtype)
    shape = (ops.shape(real)[0],) + (1,) * (len(real.shape) - 1)
    alpha = rng.uniform(shape, seed, dtype=real.dtype)
    return alpha * real + (1.0 - alpha) * fake


def _input_gradients(discriminator, inputs, extra_inputs=None, training=True, loss_scale=None):
    """Gradient of sum(D(inputs)) w.r.t. inputs, per sample; ``extra_inputs`` (labels) are passed along.

    Under mixed float16 the backward pass through the discriminator runs in float16, where small input
    gradients underflow; with ``loss_scale`` the sum is multiplied by it before the gradient and the result
    divided by it after, in float32, as the optimizer does for the weights (tensorflow#48662).
    """
    import tensorflow as tf

    inputs = tf.convert_to_tensor(inputs)
    scale = tf.constant(1.0) if loss_scale is None else tf.cast(loss_scale, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        call_inputs = inputs if extra_inputs is None else [inputs, extra_inputs]
        logits = tf.cast(discriminator(call_inputs, training=training), tf.float32)
        total = tf.reduce_sum(logits) * scale
    grads = tape.gradient(total, inputs)
    return tf.cast(grads, tf.float32) / scale


def _squared_norm_per_sample(grads):
    # (B, ...) -> (B,)
    axes = list(range(1, len(grads.shape)))
    return ops.sum(ops.square(grads), axis=axes)


def gradient_penalty(
    discriminator, real, fake, labels=None, seed=0, target=1.0, eps=1e-12, training=True, loss_scale=None
):
    """Two-sided gradient penalty of WGAN-GP: ``E[(||grad_x D(x_hat)||_2 - target)^2]``.

    ``x_hat`` is drawn by `interpolate` (alpha uniform per sample). The norm is ``sqrt(sum(g^2) + eps)`` so the
    penalty's own gradient stays finite where g = 0. For a linear critic ``D(x) = <w, x> + b`` the penalty is
    exactly ``(||w|| - 1)^2``.

    The gradient is taken of the sum of the critic's outputs, so a patch critic's gradient adds over its
    patches. A discriminator that packs samples (PacGAN) mixes samples, which is fine: the penalty is still on
    its input gradient.

    Args:
        discriminator: a callable ``D(x)`` (or ``D([x, labels])`` when ``labels`` is given).
        real: real samples, ``(B, ...)``.
        fake: generated samples, same shape.
        labels: optional conditioning labels passed to D.
        seed: an int or `keras.random.SeedGenerator` for alpha.
        target: the norm the penalty pulls towards (1 in WGAN-GP).
        eps: added under the square root.
        training: passed to the discriminator.
        loss_scale: the mixed-precision loss scale, applied to the inner gradient (see `_input_gradients`).

    Returns:
        A float32 scalar.
    """
    x_hat = interpolate(real, fake, seed=seed)
    grads = _input_gradients(discriminator, x_hat, labels, training=training, loss_scale=loss_scale)
    norms = ops.sqrt(_squared_norm_per_sample(grads) + eps)
    return ops.mean(ops.square(norms - target))


def r1_penalty(discriminator, real, labels=None, training=True, loss_scale=None):
    """R1 penalty (Mescheder et al. 2018, https://arxiv.org/abs/1801.04406): ``E[||grad_x D(x)||^2]`` on real data.

    The regularizer added to the discriminator loss is ``gamma / 2 * r1_penalty(...)``; `keras_gen.models.GAN`
    applies the ``gamma / 2`` from its ``r1_weight=gamma``.
    """
    grads = _input_gradients(discriminator, real, labels, training=training, loss_scale=loss_scale)
    return ops.mean(_squared_norm_per_sample(grads))


# ---------------------------------------------------------------------------------------------- VAE terms
_LOG_2PI = 1.8378770664093453  # log(2 pi)


def _sum_per_sample(values):
    """``(B, ...) -> (B,)``: the sum over every axis but the first (a rank-1 input is returned as is)."""
    axes = tuple(range(1, len(values.shape)))
    return ops.sum(values, axis=axes) if axes else values


def gaussian_kl(mean, log_var):
    """KL divergence of a diagonal Gaussian from the standard normal, in closed form, per sample (nats).

    ``KL(N(mu, diag(sigma^2)) || N(0, I)) = 1/2 sum_j (sigma_j^2 + mu_j^2 - 1 - log sigma_j^2)``
    (Kingma & Welling 2014, appendix B, https://arxiv.org/abs/1312.6114).

    Args:
        mean: ``mu``, shape ``(B, ...)``.
        log_var: ``log sigma^2``, the same shape.

    Returns:
        ``(B,)``: the divergence of each sample, summed over all its latent dimensions.
    """
    mean = ops.convert_to_tensor(mean)
    log_var = ops.convert_to_tensor(log_var)
    return 0.5 * _sum_per_sample(ops.exp(log_var) + ops.square(mean) - 1.0 - log_var)


def bernoulli_log_likelihood(x, logits):
    """``log p(x | logits)`` of independent Bernoulli pixels, per sample, summed over pixels (nats).

    ``log p = sum_i [x_i log sigmoid(l_i) + (1 - x_i) log(1 - sigmoid(l_i))]
            = -sum_i [x_i softplus(-l_i) + (1 - x_i) softplus(l_i)]``,
    computed with softplus so it never takes the log of 0.

    Targets are in [0, 1]. For binary targets this is the exact log-probability; for grey-level targets
    (e.g. images ``(x + 1) / 2`` mapped from [-1, 1]) it is the usual cross-entropy used to train VAEs on
    non-binarized images, which is *not* a normalized likelihood (the continuous Bernoulli of Loaiza-Ganem &
    Cunningham 2019, https://arxiv.org/abs/1907.06845, adds the missing normalizer): binarize the data before
    reporting it as a likelihood.

    Args:
        x: targets in [0, 1], shape ``(B, ...)``.
        logits: Bernoulli logits, the same shape.

    Returns:
        ``(B,)`` log-likelihoods.
    """
    logits = ops.convert_to_tensor(logits)
    x = ops.cast(ops.convert_to_tensor(x), logits.dtype)
    return -_sum_per_sample(x * ops.softplus(-logits) + (1.0 - x) * ops.softplus(logits))


def gaussian_log_likelihood(x, mean, log_var=None, *, sigma=None):
    """``log N(x; mean, diag(sigma^2))`` per sample, summed over all non-batch axes (nats).

    ``log p = -1/2 sum_i [log(2 pi) + log sigma_i^2 + (x_i - mu_i)^2 / sigma_i^2]``.

    Exactly one of ``log_var`` (a tensor broadcastable to ``x``, or a number) and ``sigma`` (a fixed positive
    standard deviation) is given. Also the log-density of a reparameterized latent under ``q(z|x)`` or the
    prior (``mean=0, log_var=0``).

    Args:
        x: observations, shape ``(B, ...)``.
        mean: the Gaussian means, the same shape.
        log_var: ``log sigma^2``.
        sigma: a fixed standard deviation (> 0), instead of ``log_var``.

    Returns:
        ``(B,)`` log-likelihoods (densities: they can be positive).
    """
    if (log_var is None) == (sigma is None):
        raise ValueError("Pass exactly one of `log_var` and `sigma` to gaussian_log_likelihood.")
    x = ops.convert_to_tensor(x)
    mean = ops.cast(ops.convert_to_tensor(mean), x.dtype)
    if sigma is not None:
        if isinstance(sigma, (int, float)) and not sigma > 0:
            raise ValueError(f"`sigma` must be > 0, got {sigma!r}.")
        log_var = 2.0 * ops.log(ops.cast(sigma, x.dtype))
    log_var = ops.cast(ops.convert_to_tensor(log_var), x.dtype)
    squared = ops.square(x - mean) * ops.exp(-log_var)
    return -0.5 * _sum_per_sample(_LOG_2PI + log_var + squared)  # squared has the full (B, ...) shape


# ---------------------------------------------------------------------------------------------- VQ-VAE terms
def vq_codebook_loss(z_e, z_q):
    """The codebook term of VQ-VAE (van den Oord et al. 2017, https://arxiv.org/abs/1711.00937):
    ``mean (sg[z_e] - e)^2``.

    It pulls the chosen codebook vectors ``e = z_q`` towards the (frozen) encoder outputs and gives the encoder
    no gradient. The mean is over every element (batch, positions and the D code dimensions, as in Sonnet's
    ``VectorQuantizer``), i.e. the paper's ``||sg[z_e] - e||^2`` per position divided by ``D``.

    Args:
        z_e: encoder outputs ``(B, ..., D)``.
        z_q: the codebook vectors chosen for them (no straight-through), the same shape.

    Returns:
        A float32 scalar.
    """
    z_q = ops.cast(z_q, "float32")
    return ops.mean(ops.square(ops.stop_gradient(ops.cast(z_e, "float32")) - z_q))


def vq_commitment_loss(z_e, z_q):
    """The commitment term of VQ-VAE: ``mean (z_e - sg[e])^2`` (weighted by beta = 0.25 in the paper).

    It keeps the encoder outputs close to their (frozen) codes and gives the codebook no gradient. Same
    reduction as `vq_codebook_loss`.
    """
    z_e = ops.cast(z_e, "float32")
    return ops.mean(ops.square(z_e - ops.stop_gradient(ops.cast(z_q, "float32"))))
