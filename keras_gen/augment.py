"""Differentiable augmentation (DiffAugment, Zhao et al. 2020, https://arxiv.org/abs/2006.10738) for GANs on small data.

A discriminator trained on a few hundred images memorizes them: it scores the training images as real and
everything else, held-out real images included, as fake, and the generator is left chasing a lookup table. The
remedy of the paper is to show the discriminator only randomly transformed images, real and generated alike, in
every discriminator *and* generator update. The transformations are differentiable, so the generator's gradient
flows back through them, and the generator never learns to produce transformed images (the transformation is
applied after it, not learned from the data):

    L_D = d_loss(D(T(x)), D(T(G(z))))        T drawn afresh for each batch and each use
    L_G = g_loss(D(T(G(z))))

Policies (the paper's reference code, ``DiffAugment_tf.py`` of https://github.com/mit-han-lab/data-efficient-gans,
for images in [-1, 1], ``(B, H, W, C)``):

    "color"         brightness  x + (u - 1/2)                              u ~ U(0, 1) per image
                    saturation  (x - mean_C x) * 2u + mean_C x             the channel mean per pixel (C = 1: identity)
                    contrast    (x - mean_HWC x) * (u + 1/2) + mean_HWC x  the mean over the whole image
    "translation"   shift by t_y, t_x in {-s, ..., s}, s = round(H / 8) (W / 8), zeros shifted in
    "cutout"        zero a round(H / 2) x round(W / 2) square whose centre is uniform over the image (and
                    one row / column past it, as in the reference), clipped at the borders

Every draw of a call comes from one `keras_gen.rng.uniform` of shape ``(B, k)``, so augmentations give the same
numbers with and without XLA and, under `tf.distribute`, each replica uses its slice of one global draw: a
distributed step augments exactly as one device does on the global batch. The functions below take those
uniform numbers as arguments (``u``), which is what makes each of them a closed form a test can check.

Example:

>>> from keras_gen import augment
>>> seen_by_d = augment.diff_augment(images, "color,translation,cutout", seed=0)   # (B, H, W, C)
>>> gan = keras_gen.models.GAN(generator, discriminator, augment="translation,cutout")
"""

from keras import ops

from keras_gen import rng

__all__ = [
    "POLICIES", "parse_policy", "policy_string", "check_images", "draws", "diff_augment",
    "brightness", "saturation", "contrast", "translation", "cutout",
]

TRANSLATION_RATIO = 0.125
"""The largest shift, as a fraction of the image side (the paper's 1/8)."""

CUTOUT_RATIO = 0.5
"""The side of the cut-out square, as a fraction of the image side (the paper's 1/2)."""


def _side(length, ratio):
    """``round(length * ratio)`` with halves rounded up, as the reference's ``int(length * ratio + 0.5)``."""
    return int(length * ratio + 0.5)


def _static_image_shape(images):
    shape = tuple(images.shape)
    if len(shape) != 4 or any(s is None for s in shape[1:]):
        raise ValueError(
            f"DiffAugment works on images of shape (B, H, W, C) with known H, W, C; got shape {shape}."
        )
    return shape[1], shape[2], shape[3]


def brightness(images, u):
    """``x + (u - 1/2)``: a brightness offset in (-1/2, 1/2) per image.

    Args:
        images: ``(B, H, W, C)``.
        u: ``(B,)`` uniform numbers in (0, 1).
    """
    u = ops.reshape(ops.cast(u, images.dtype), (-1, 1, 1, 1))  # (B, 1, 1, 1)
    return images + (u - 0.5)


def saturation(images, u):
    """``(x - m) * 2u + m`` with ``m`` the mean over the channels of each pixel: a saturation factor in (0, 2).
    An image with one channel is its own channel mean, so it comes back unchanged.

    Args:
        images: ``(B, H, W, C)``.
        u: ``(B,)`` uniform numbers in (0, 1).
    """
    u = ops.reshape(ops.cast(u, images.dtype), (-1, 1, 1, 1))
    mean = ops.mean(images, axis=3, keepdims=True)  # (B, H, W, 1)
    return (images - mean) * (2.0 * u) + mean


def contrast(images, u):
    """``(x - m) * (u + 1/2) + m`` with ``m`` the mean of each image: a contrast factor in (1/2, 3/2).

    Args:
        images: ``(B, H, W, C)``.
        u: ``(B,)`` uniform numbers in (0, 1).
    """
    u = ops.reshape(ops.cast(u, images.dtype), (-1, 1, 1, 1))
    mean = ops.mean(images, axis=(1, 2, 3), keepdims=True)  # (B, 1, 1, 1)
    return (images - mean) * (u + 0.5) + mean


def _integers(u, count):
    """``floor(u * count)``: uniform integers in ``{0, ..., count - 1}`` from ``u`` in (0, 1), as int32."""
    return ops.cast(ops.floor(ops.cast(u, "float32") * float(count)), "int32")


def translation(images, u, ratio=TRANSLATION_RATIO):
    """Shifts each image by ``(t_y, t_x)`` pixels, ``t = floor(u (2s + 1)) - s`` in ``{-s, ..., s}`` with
    ``s = round(side * ratio)`` per axis; pixels shifted in are 0: ``out[i, j] = x[i - t_y, j - t_x]`` where that
    lies inside the image, else 0.

    Args:
        images: ``(B, H, W, C)``.
        u: ``(B, 2)`` uniform numbers in (0, 1): column 0 draws ``t_y``, column 1 ``t_x``.
        ratio: the largest shift as a fraction of the side.

    Returns:
        ``(B, H, W, C)``.
    """
    import tensorflow as tf

    height, width, _ = _static_image_shape(images)
    out = images
    for axis, length, column in ((1, height, 0), (2, width, 1)):
        s = _side(length, ratio)
        shift = _integers(u[:, column], 2 * s + 1) - s  # (B,) in {-s, ..., s}
        source = ops.arange(length, dtype="int32")[None, :] - shift[:, None]  # (B, L): the row (column) read
        inside = ops.logical_and(source >= 0, source < length)
        out = tf.gather(out, ops.clip(source, 0, length - 1), axis=axis, batch_dims=1)  # (B, H, W, C)
        mask = ops.cast(inside, out.dtype)  # (B, L)
        out = out * (ops.reshape(mask, (-1, length, 1, 1)) if axis == 1 else ops.reshape(mask, (-1, 1, length, 1)))
    return out


def cutout(images, u, ratio=CUTOUT_RATIO):
    """Zeroes a ``c_h x c_w`` square of each image, ``c = round(side * ratio)``: rows ``y - c_h // 2`` to
    ``y - c_h // 2 + c_h - 1`` (columns likewise), with centre ``y = floor(u (H + 1 - c_h % 2))`` in
    ``{0, ..., H - c_h % 2}``, clipped at the borders (a square centred near an edge zeroes less than ``c_h x
    c_w`` pixels, as in the reference code).

    Args:
        images: ``(B, H, W, C)``.
        u: ``(B, 2)`` uniform numbers in (0, 1): column 0 draws the centre row, column 1 the centre column.
        ratio: the side of the square as a fraction of the image side.

    Returns:
        ``(B, H, W, C)``.
    """
    height, width, _ = _static_image_shape(images)
    inside = []
    for length, column in ((height, 0), (width, 1)):
        c = _side(length, ratio)
        start = _integers(u[:, column], length + 1 - c % 2) - c // 2  # (B,)
        index = ops.arange(length, dtype="int32")[None, :]  # (1, L)
        inside.append(ops.logical_and(index >= start[:, None], index < (start + c)[:, None]))  # (B, L)
    square = ops.logical_and(inside[0][:, :, None], inside[1][:, None, :])  # (B, H, W)
    keep = 1.0 - ops.cast(square, images.dtype)
    return images * keep[..., None]


_FUNCTIONS = {"brightness": brightness, "saturation": saturation, "contrast": contrast,
              "translation": translation, "cutout": cutout}
_DRAWS = {"brightness": 1, "saturation": 1, "contrast": 1, "translation": 2, "cutout": 2}

POLICIES = {
    "color": ("brightness", "saturation", "contrast"),
    "translation": ("translation",),
    "cutout": ("cutout",),
}
"""Policy name -> the transformations it applies, in order (the paper's ``AUGMENT_FNS``)."""


def parse_policy(policy):
    """A policy as a tuple of names of `POLICIES`, in the order given.

    Args:
        policy: ``"color,translation,cutout"`` (comma-separated, spaces ignored), a list or tuple of names, or
            None / ``""`` / ``[]`` for no augmentation.

    Returns:
        A tuple of policy names (empty for none).

    Raises:
        TypeError: not a string, list, tuple or None.
        ValueError: an unknown or repeated name.
    """
    if policy is None:
        return ()
    if isinstance(policy, str):
        names = [name.strip() for name in policy.split(",")]
        names = [] if names == [""] else names
    elif isinstance(policy, (list, tuple)) and all(isinstance(name, str) for name in policy):
        names = [name.strip() for name in policy]
    else:
        raise TypeError(
            "`augment` must be a comma-separated string such as 'color,translation,cutout', a list of policy "
            f"names, or None; got {policy!r}."
        )
    for name in names:
        if name not in POLICIES:
            raise ValueError(
                f"Unknown augmentation policy {name!r} in {policy!r}. Valid: {', '.join(map(repr, POLICIES))} "
                "(comma-separated, e.g. 'color,translation,cutout')."
            )
    if len(set(names)) != len(names):
        raise ValueError(f"Augmentation policy {policy!r} names a policy twice.")
    return tuple(names)


def policy_string(policy):
    """The canonical form of a policy, as configs store it: ``"color,translation,cutout"``, or None for none."""
    names = parse_policy(policy)
    return ",".join(names) if names else None


def _steps(policy):
    return [step for name in parse_policy(policy) for step in POLICIES[name]]


def draws(policy):
    """How many uniform numbers per image one `diff_augment` call with ``policy`` draws."""
    return sum(_DRAWS[step] for step in _steps(policy))


def diff_augment(images, policy, seed):
    """Applies the transformations of ``policy`` to every image, each image with its own random draws.

    Args:
        images: ``(B, H, W, C)`` float images (in [-1, 1] for the paper's magnitudes).
        policy: what `parse_policy` takes.
        seed: an int, an int ``[2]`` tensor, or a `keras.random.SeedGenerator` (advanced once per call): the
            draws are one `keras_gen.rng.uniform` of shape ``(B, draws(policy))`` with it.

    Returns:
        ``(B, H, W, C)``, differentiable with respect to ``images``. With an empty policy, ``images`` unchanged
        and no draw taken.
    """
    steps = _steps(policy)
    if not steps:
        return images
    images = ops.convert_to_tensor(images)
    _static_image_shape(images)
    u = rng.uniform((ops.shape(images)[0], draws(policy)), seed)  # (B, k): every draw of this call
    column = 0
    for step in steps:
        count = _DRAWS[step]
        values = u[:, column] if count == 1 else u[:, column : column + count]
        images = _FUNCTIONS[step](images, values)
        column += count
    return images


def check_images(shape, policy):
    """Raises a ValueError when samples of ``shape`` (without the batch axis) cannot be augmented by ``policy``."""
    if parse_policy(policy) and len(shape) != 3:
        raise ValueError(
            f"`augment`={policy_string(policy)!r} transforms images (H, W, C), but the samples have shape "
            f"{tuple(shape)}; use augment=None for data that is not images."
        )

