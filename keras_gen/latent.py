"""What a trained latent space is for: interpolation, vector arithmetic, traversals and editing, for GANs and VAEs.

One small interface covers both families: a model with ``latent_shape`` and ``generate_from_latent(z, labels)``
that offers the ``latent_space`` operation (`keras_gen.model_kind`: `GAN`, `VAE`; not the sampling noise of a
PixelCNN or VQ-VAE). Editing real images needs the ``encode`` operation as well:
``encode(images, labels) -> (mean, log_var)`` (`VAE`).

    pure latent maths (NumPy)          interpolate, attribute_vector, apply, arithmetic, group_mask, ink
    latents from a model or data       classify_samples (GAN or VAE samples + a classifier), encode_images (VAE)
    grids (a `LatentGrid` each)        interpolation_grid, shift_grid, arithmetic_grid, traverse, edit

The grids of a run folder (what ``keras-gen latent ACTION RUN`` draws) are `keras_gen.latent_grids`; the
pictures are drawn by `keras_gen.images.save_labelled_grid`.

Every grid function returns a `LatentGrid`: the decoded ``images`` ``(rows, cols, *sample_shape)``, the
``latents`` they came from, the ``labels`` used, and row / column titles; ``grid.save("x.png")`` writes it as a
labelled PNG, and a notebook shows it inline.

Example:

>>> import keras_gen
>>> from keras_gen import latent
>>> gan = keras_gen.load_run("runs/dcgan")
>>> latent.interpolation_grid(gan, anchors=5, steps=8, seed=0).save("interpolation.png")
>>> vae = keras_gen.load_run("runs/vae")
>>> x, y = keras_gen.load_arrays("mnist", "test")
>>> z = latent.encode_images(vae, x)                            # posterior means (500, 20)
>>> bold = latent.attribute_vector(z, latent.group_mask(y, 7, x, style="bold"), y == 7)
>>> latent.edit(vae, x[y == 1][:6], latent.along(bold, [1, 2])).save("bolder_ones.png")

The ideas are those of the DCGAN paper (Radford et al. 2016, https://arxiv.org/abs/1511.06434: interpolation
and averaged-``z`` arithmetic), of White 2016 (https://arxiv.org/abs/1609.04468: slerp, attribute vectors from
labelled encodings) and of β-VAE (Higgins et al. 2017, https://openreview.net/forum?id=Sy2fzU9gl: one latent
dimension at a time).
"""

import dataclasses
import io
import math
import numbers

import numpy as np

from keras_gen import checks, model_kind

__all__ = [
    "LABEL_MODES",
    "METHODS",
    "STYLES",
    "LatentGrid",
    "active_dims",
    "along",
    "apply",
    "arithmetic",
    "arithmetic_grid",
    "attribute_vector",
    "classify_samples",
    "edit",
    "encode_images",
    "group_mask",
    "ink",
    "interpolate",
    "interpolation_grid",
    "parse_group",
    "shift_grid",
    "traverse",
]

METHODS = ("slerp", "lerp")
"""Interpolation methods: spherical (great circle, norms interpolated linearly) and linear."""

LABEL_MODES = ("hold", "switch")
"""How a conditional model's label moves along an interpolation row: held at the start anchor's class, or
switched to the end anchor's class at the midpoint (``t >= 0.5``)."""

STYLES = ("bold", "thin")
"""Stroke-weight groups of `group_mask`: the heaviest or the lightest third of a class, by `ink`."""

_PARALLEL_EPS = 1e-12  # |v - (u.v) u| below this: u and v are (anti)parallel to float64 precision


# ------------------------------------------------------------------------------------------------ validation
def _as_float_array(name, value):
    try:
        array = np.asarray(value, dtype="float64")
    except (TypeError, ValueError) as exc:
        raise TypeError(f"`{name}` must be a numeric array, got {type(value).__name__}.") from exc
    if not np.all(np.isfinite(array)):
        raise ValueError(f"`{name}` holds non-finite values (NaN or inf).")
    return array


def _check_model(model):
    """A model with a continuous latent space: ``latent_shape``, ``generate_from_latent`` and the
    ``latent_space`` operation."""
    if not (hasattr(model, "generate_from_latent") and hasattr(model, "latent_shape")):
        raise TypeError(
            "Expected a keras_gen model with a latent space (`latent_shape` and `generate_from_latent`, e.g. a GAN "
            f"or a VAE), got {type(model).__name__}."
        )
    return model_kind.require(model, "latent_space", "A latent-space grid")


def _check_encoder(model):
    _check_model(model)
    model_kind.require(model, "encode", "Editing real images (use `shift_grid` on sampled latents instead)")
    return model


def _check_latents(model, z, name="z"):
    """``z`` as float32 ``(n, *latent_shape)``; a single latent gets a batch axis."""
    z = _as_float_array(name, z).astype("float32")
    shape = tuple(model.latent_shape)
    if z.shape == shape:
        z = z[None]
    if z.ndim != len(shape) + 1 or tuple(z.shape[1:]) != shape or z.shape[0] == 0:
        raise ValueError(f"`{name}` must have shape (n, {', '.join(map(str, shape))}) or {shape}, got {z.shape}.")
    return z


def _check_group(name, latents):
    latents = _as_float_array(name, latents)
    if latents.ndim < 2 or latents.shape[0] == 0:
        raise ValueError(f"`{name}` must be a non-empty batch of latents (n, ...), got shape {latents.shape}.")
    return latents


def _grid_labels(model, labels, rows, cols):
    """Labels of a ``rows x cols`` grid: None (unconditional), one int, one per row, or ``(rows, cols)``."""
    if getattr(model, "num_classes", None) is None:
        if labels is not None:
            raise ValueError(f"{type(model).__name__} is unconditional: `labels` must be None.")
        return None
    if labels is None:
        raise ValueError(
            f"This model is conditional (num_classes={model.num_classes}): pass `labels`, one class for the whole "
            f"grid, one per row ({rows}) or one per image ({rows}, {cols})."
        )
    labels = np.asarray(labels)
    if labels.ndim == 0:
        labels = np.full((rows, cols), labels)
    elif labels.shape == (rows,):
        labels = np.repeat(labels[:, None], cols, axis=1)
    elif labels.shape != (rows, cols):
        raise ValueError(
            f"`labels` must be one int, {rows} ints (one per row) or shape ({rows}, {cols}); got shape {labels.shape}."
        )
    flat = model.check_labels(labels.reshape(-1), rows * cols)
    return flat.reshape(rows, cols)


def _decode_grid(model, latents, labels, batch_size=256):
    """Decodes ``(rows, cols, *latent_shape)`` latents: images ``(rows, cols, *sample_shape)``."""
    rows, cols = latents.shape[:2]
    flat = latents.reshape((rows * cols,) + latents.shape[2:]).astype("float32")
    flat_labels = None if labels is None else labels.reshape(-1)
    images = model.generate_from_latent(flat, flat_labels, batch_size=batch_size)  # (rows*cols, *sample_shape)
    return images.reshape((rows, cols) + images.shape[1:])


# ------------------------------------------------------------------------------------------------ the result
@dataclasses.dataclass
class LatentGrid:
    """A grid of decoded latents with its titles: what every grid function of `keras_gen.latent` returns.

    Attributes:
        images: float32 ``(rows, cols, *sample_shape)``, images in [-1, 1] (or 2-D points).
        latents: float32 ``(rows, cols, *latent_shape)``, the latent of each image (the encoded latent for the
            "original" column of `edit`).
        labels: int32 ``(rows, cols)`` classes of a conditional model, else None.
        row_titles: one string per row.
        col_titles: one string per column.
        title: a title for the figure.
    """

    images: np.ndarray
    latents: np.ndarray
    labels: np.ndarray = None
    row_titles: list = None
    col_titles: list = None
    title: str = ""

    @property
    def shape(self):
        """``(rows, cols)``."""
        return tuple(self.images.shape[:2])

    def column(self, title):
        """The images of the column named ``title``: ``(rows, *sample_shape)``."""
        titles = list(self.col_titles or [])
        if title not in titles:
            raise KeyError(f"No column {title!r}; columns: {titles}.")
        return self.images[:, titles.index(title)]

    def figure(self, title=None, cell_inches=0.75):
        """A matplotlib `Figure` (no pyplot state) of the grid with its row and column titles."""
        from keras_gen.images import labelled_figure

        return labelled_figure(
            self.images, self.row_titles, self.col_titles, self.title if title is None else title, cell_inches
        )

    def save(self, path, title=None, labelled=True):
        """Writes the grid as a PNG (atomically) and returns the path.

        Args:
            path: the PNG file.
            title: overrides the grid's title.
            labelled: with row and column titles (matplotlib); False writes the bare image grid
                (`keras_gen.images.save_image_grid`, one image row per grid row).
        """
        from keras_gen.images import save_image_grid, save_labelled_grid

        if labelled or len(self.images.shape) == 3:
            return save_labelled_grid(
                self.images, path, self.row_titles, self.col_titles, self.title if title is None else title
            )
        rows, cols = self.shape
        return save_image_grid(self.images.reshape((rows * cols,) + self.images.shape[2:]), path, nrow=cols)

    def to_png(self, title=None):
        """The labelled grid as PNG bytes."""
        fig = self.figure(title)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        return buffer.getvalue()

    def _repr_png_(self):  # Jupyter shows a LatentGrid as its picture
        return self.to_png()

    def __repr__(self):
        rows, cols = self.shape
        return (
            f"LatentGrid({self.title!r}, {rows}x{cols}, images {tuple(self.images.shape)}, "
            f"latents {tuple(self.latents.shape)}, labels={'None' if self.labels is None else 'yes'})"
        )


# ------------------------------------------------------------------------------------------------ interpolation
def _slerp_directions(u, v, t):
    """Unit vectors along the great circle from unit ``u`` to unit ``v`` at fractions ``t``: ``(len(t), D)``.

    ``omega = 2 atan2(|u - v|, |u + v|)`` (accurate at every angle, unlike ``arccos(u.v)`` near 0 and pi);
    ``w`` = the unit tangent at ``u`` towards ``v``; ``dir(t) = cos(t omega) u + sin(t omega) w``.
    """
    omega = 2.0 * math.atan2(np.linalg.norm(u - v), np.linalg.norm(u + v))
    tangent = v - np.dot(u, v) * u
    norm = np.linalg.norm(tangent)
    if norm < _PARALLEL_EPS:
        if omega < math.pi / 2:  # parallel: the arc is a point
            return np.repeat(u[None], len(t), axis=0)
        # Antiparallel: every great circle through u passes through -u; take the one through the basis vector
        # least aligned with u (deterministic), made orthogonal to u.
        e = np.zeros_like(u)
        e[np.argmin(np.abs(u))] = 1.0
        tangent = e - np.dot(u, e) * u
        norm = np.linalg.norm(tangent)
    w = tangent / norm
    angles = t[:, None] * omega  # (T, 1)
    return np.cos(angles) * u[None] + np.sin(angles) * w[None]


def interpolate(a, b, steps, method="slerp"):
    """Latents from ``a`` to ``b``: ``steps`` points at ``t = 0, 1/(steps-1), ..., 1``.

    - ``"lerp"``: ``z(t) = (1 - t) a + t b``.
    - ``"slerp"`` (White 2016, https://arxiv.org/abs/1609.04468): the direction moves at constant speed along
      the great circle from ``a/|a|`` to ``b/|b|`` and the norm is interpolated linearly,

          z(t) = ((1 - t)|a| + t|b|) (cos(t W) a/|a| + sin(t W) w),   W = angle(a, b),

      ``w`` the unit vector orthogonal to ``a`` in the plane of ``a`` and ``b``, pointing towards ``b``. For
      endpoints of equal norm this is Shoemake's ``sin((1-t)W)/sin W a + sin(tW)/sin W b``, and every point keeps
      that norm: the path stays where a Gaussian prior puts its mass, while a lerp cuts through the low-norm
      interior (the midpoint of two independent d-dimensional Gaussian latents has norm ~ sqrt(d/2), not
      sqrt(d)). Nearly parallel endpoints give a path along their common direction; exactly antiparallel ones
      (every great circle joins them) use a fixed one; a zero endpoint has no direction, and the path is the lerp.

    The endpoints are returned exactly (``z(0) == a``, ``z(1) == b``, in float32).

    Args:
        a, b: two latents of the same shape (any shape; the geometry is that of the flattened vectors).
        steps: number of points, >= 2.
        method: ``"slerp"`` or ``"lerp"``.

    Returns:
        float32 ``(steps, *a.shape)``.

    Example:
        >>> path = interpolate(np.array([1.0, 0.0]), np.array([0.0, 1.0]), 3)
        >>> np.round(path[1], 4)   # on the unit circle, at 45 degrees
        array([0.7071, 0.7071], dtype=float32)
    """
    a = _as_float_array("a", a)
    b = _as_float_array("b", b)
    if a.shape != b.shape:
        raise ValueError(f"`a` and `b` must have the same shape, got {a.shape} and {b.shape}.")
    steps = checks.integer(steps, "steps", 2)
    checks.choice(method, "interpolation method", METHODS)
    t = np.linspace(0.0, 1.0, steps)  # (T,)
    a_flat, b_flat = a.reshape(-1), b.reshape(-1)  # (D,)
    norm_a, norm_b = np.linalg.norm(a_flat), np.linalg.norm(b_flat)
    if method == "lerp" or norm_a == 0.0 or norm_b == 0.0:
        path = (1.0 - t)[:, None] * a_flat[None] + t[:, None] * b_flat[None]  # (T, D)
    else:
        directions = _slerp_directions(a_flat / norm_a, b_flat / norm_b, t)  # (T, D)
        path = ((1.0 - t) * norm_a + t * norm_b)[:, None] * directions
    path = path.astype("float32").reshape((steps,) + a.shape)
    path[0] = a.astype("float32")
    path[-1] = b.astype("float32")
    return path


def interpolation_grid(
    model, anchors=4, steps=8, labels=None, label_mode="hold", method="slerp", seed=0, batch_size=256
):
    """Rows of interpolations through consecutive anchors: row ``r`` goes from anchor ``r`` to anchor ``r + 1``.

    So the last image of a row is the first of the next: ``k`` anchors give ``k - 1`` rows of ``steps`` images.

    Conditional models: the label is an integer input of the generator (an embedding or conditional batch norm
    inside the network), so it is not interpolated. With ``label_mode="hold"`` each row keeps the class of its
    start anchor (the latent's "style" morphs within one class); with ``"switch"`` the class changes to the end
    anchor's at the row's midpoint (``t >= 0.5``), showing the same latent under two classes.

    Args:
        model: a GAN or VAE (see the module docstring).
        anchors: an int ``k >= 2`` (draw ``k`` latents from the prior with ``seed``) or latents
            ``(k, *latent_shape)``, e.g. `encode_images` of real images.
        steps: images per row, >= 2.
        labels: conditional models only: one class per anchor (``k`` ints) or one int for all; default
            ``0, 1, 2, ...`` (cycling through the classes).
        label_mode: ``"hold"`` or ``"switch"``.
        method: ``"slerp"`` or ``"lerp"`` (see `interpolate`).
        seed: seed of the prior draw when ``anchors`` is an int.
        batch_size: latents per network call.

    Returns:
        A `LatentGrid` of ``(k - 1, steps)`` images.
    """
    _check_model(model)
    checks.choice(label_mode, "label mode", LABEL_MODES)
    steps = checks.integer(steps, "steps", 2)
    if isinstance(anchors, numbers.Integral) and not isinstance(anchors, bool):
        k = checks.integer(anchors, "anchors", 2)
        anchors = np.asarray(model.sample_latent(k, seed=seed))
    anchors = _check_latents(model, anchors, "anchors")  # (k, *latent_shape)
    k = anchors.shape[0]
    if k < 2:
        raise ValueError(f"An interpolation needs at least 2 anchors, got {k}.")
    rows = k - 1
    latents = np.stack([interpolate(anchors[r], anchors[r + 1], steps, method) for r in range(rows)])
    grid_labels = None
    if getattr(model, "num_classes", None) is not None:
        anchor_labels = model.check_labels(labels, k)  # (k,)
        t = np.linspace(0.0, 1.0, steps)
        end = anchor_labels[1:] if label_mode == "switch" else anchor_labels[:-1]
        grid_labels = np.where(t[None] >= 0.5, end[:, None], anchor_labels[:-1, None]).astype("int32")
    else:
        model.check_labels(labels, k)  # raises for labels on an unconditional model
    images = _decode_grid(model, latents, grid_labels, batch_size)
    if grid_labels is None:
        row_titles = [f"{r} → {r + 1}" for r in range(rows)]
    else:
        row_titles = [f"{r}→{r + 1} ({grid_labels[r, 0]}→{grid_labels[r, -1]})" for r in range(rows)]
    col_titles = [f"t={t:.2f}" for t in np.linspace(0.0, 1.0, steps)]
    return LatentGrid(images, latents, grid_labels, row_titles, col_titles, f"{method} between {k} anchors")


# ------------------------------------------------------------------------------------------------ groups and vectors
def ink(images):
    """Stroke weight of images in [-1, 1]: the mean pixel brightness ``mean((x + 1) / 2)`` per image, ``(n,)``.

    White digits on black (the package's MNIST): more ink = bolder strokes.
    """
    images = _as_float_array("images", images)
    if images.ndim < 2:
        raise ValueError(f"`images` must be a batch (n, ...), got shape {images.shape}.")
    return ((images.reshape(images.shape[0], -1) + 1.0) / 2.0).mean(axis=1)


def group_mask(labels, classes=None, images=None, style=None, fraction=1 / 3):
    """A boolean mask selecting a group: by class, and optionally the boldest or thinnest part of each class.

    The stroke-weight ranking is done within each class (a 0 holds more ink than a 1 of the same stroke), so
    ``"bold"`` minus ``"thin"`` is a stroke-weight direction rather than a mix of classes.

    Args:
        labels: ``(n,)`` integer classes (true labels, or a classifier's predictions on samples).
        classes: an int or several (the group is their union); None for every class.
        images: ``(n, ...)`` images in [-1, 1]; needed for ``style``.
        style: None, ``"bold"`` (in each class, the ``fraction`` with the most `ink`) or ``"thin"`` (the least).
        fraction: part of each class kept by ``style``, in (0, 1].

    Returns:
        bool ``(n,)``.

    Raises:
        ValueError: the group is empty (the message names it).
    """
    labels = np.asarray(labels).reshape(-1)
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"`labels` must be integers, got dtype {labels.dtype}.")
    mask = np.ones(labels.shape, bool) if classes is None else np.isin(labels, np.asarray(classes).reshape(-1))
    if style is not None:
        checks.choice(style, "style", STYLES)
        if images is None:
            raise ValueError(f"style={style!r} ranks the group by stroke weight: pass its `images`.")
        if len(images) != labels.shape[0]:
            raise ValueError(f"Got {len(images)} images for {labels.shape[0]} labels.")
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"`fraction` must be in (0, 1], got {fraction!r}.")
        weight = ink(images)
        chosen = np.zeros(labels.shape, bool)
        for label in np.unique(labels[mask]):
            members = np.flatnonzero(mask & (labels == label))
            keep = max(1, int(round(fraction * members.size)))
            order = members[np.argsort(weight[members], kind="stable")]  # thinnest first
            chosen[order[-keep:] if style == "bold" else order[:keep]] = True
        mask = chosen
    if not mask.any():
        raise ValueError(f"The group (classes={classes!r}, style={style!r}) is empty among {labels.shape[0]} labels.")
    return mask


def _predict(classify, images):
    """Class labels from a classifier: ``classify.predict(images)`` if it has one (`DomainClassifier`, a Keras
    model), else ``classify(images)``; probabilities / logits ``(n, K)`` are turned into labels by argmax."""
    if hasattr(classify, "predict"):
        out = classify.predict(images)
    elif callable(classify):
        out = classify(images)
    else:
        raise TypeError(f"`classify` must be callable or have a `predict` method, got {type(classify).__name__}.")
    out = np.asarray(out)
    if out.ndim == 2:
        out = np.argmax(out, axis=1)
    if out.shape != (len(images),):
        raise ValueError(f"`classify` must return one label (or one row of scores) per image; got shape {out.shape}.")
    if not np.issubdtype(out.dtype, np.integer):
        raise TypeError(f"`classify` returned {out.dtype} labels; expected integers or (n, K) scores.")
    return out.astype("int32")


def classify_samples(model, n, classify, labels=None, seed=0, batch_size=256):
    """Draws ``n`` latents from the prior, decodes them and labels the samples with a classifier.

    This is how attribute groups are found for a model without an encoder (a GAN): "the latents whose samples
    the classifier calls a 7".

    Args:
        model: a GAN or VAE.
        n: number of samples.
        classify: `keras_gen.metrics.classifier.DomainClassifier` (e.g. ``domain_classifier("mnist")``), or any
            callable ``images -> labels (n,)`` or ``-> scores (n, K)``.
        labels: a conditional model's classes for the samples (see `GenerativeModel.generate`).
        seed: seed of the latent draw.
        batch_size: latents per network call.

    Returns:
        ``(latents, images, predicted)``: float32 ``(n, *latent_shape)``, float32 ``(n, *sample_shape)``,
        int32 ``(n,)``.
    """
    _check_model(model)
    n = checks.integer(n, "n", 1)
    z = np.asarray(model.sample_latent(n, seed=seed), dtype="float32")
    images = model.generate_from_latent(z, model.check_labels(labels, n), batch_size=batch_size)
    return z, images, _predict(classify, images)


def encode_images(vae, images, labels=None, batch_size=256):
    """The posterior means ``E[z|x]`` of real images: float32 ``(n, latent_dim)`` (labels: a conditional VAE's
    classes of the images)."""
    _check_encoder(vae)
    mean, _ = _encode(vae, images, labels, batch_size)
    return mean


def _encode(vae, images, labels, batch_size):
    outputs = vae.encode(images, labels, batch_size=batch_size)
    if not (isinstance(outputs, tuple) and len(outputs) == 2):
        raise TypeError(f"{type(vae).__name__}.encode must return (mean, log_var); got {type(outputs).__name__}.")
    return np.asarray(outputs[0], "float32"), np.asarray(outputs[1], "float32")


def _mask_or_indices(name, selector, n):
    selector = np.asarray(selector)
    if selector.dtype == bool:
        if selector.shape != (n,):
            raise ValueError(f"`{name}` is a mask of shape {selector.shape} for {n} latents.")
        index = np.flatnonzero(selector)
    elif np.issubdtype(selector.dtype, np.integer):
        index = selector.reshape(-1)
        if index.size and (index.min() < -n or index.max() >= n):
            raise ValueError(f"`{name}` holds indices outside [0, {n}).")
    else:
        raise TypeError(f"`{name}` must be a boolean mask or integer indices, got dtype {selector.dtype}.")
    if index.size == 0:
        raise ValueError(f"The group `{name}` is empty: an attribute vector needs at least one latent on each side.")
    return index


def attribute_vector(latents, mask_a, mask_b=None):
    """The mean latent of group A minus the mean latent of group B: ``mean(z[A]) - mean(z[B])``.

    With many latents per group, what the groups share averages out and what separates them remains ("smiling"
    minus "not smiling"; here e.g. bold minus all 7s, or 9s minus 4s). Add it to a latent with `apply`.

    Args:
        latents: ``(n, *latent_shape)``: prior draws (see `classify_samples`) or encoded images (`encode_images`).
        mask_a: group A, a boolean mask ``(n,)`` or integer indices.
        mask_b: group B, likewise; default: every latent not in A.

    Returns:
        float32 ``latent_shape``.
    """
    latents = _check_group("latents", latents)
    n = latents.shape[0]
    index_a = _mask_or_indices("mask_a", mask_a, n)
    if mask_b is None:
        rest = np.ones(n, bool)
        rest[index_a] = False
        mask_b = rest
    index_b = _mask_or_indices("mask_b", mask_b, n)
    return (latents[index_a].mean(axis=0) - latents[index_b].mean(axis=0)).astype("float32")


def apply(z, vector, strength=1.0):
    """``z + strength * vector``.

    Args:
        z: a latent or a batch ``(n, *latent_shape)``.
        vector: ``latent_shape``, e.g. an `attribute_vector`.
        strength: a number, or a 1-D sequence of ``s`` numbers (then the result gets a leading axis of ``s``).

    Returns:
        float32, ``z.shape`` (or ``(s, *z.shape)``).
    """
    z = _as_float_array("z", z)
    vector = _as_float_array("vector", vector)
    if vector.ndim and z.shape[-vector.ndim :] != vector.shape:
        raise ValueError(f"`vector` of shape {vector.shape} does not match latents of shape {z.shape}.")
    strength = _as_float_array("strength", strength)
    if strength.ndim > 1:
        raise ValueError(f"`strength` must be a number or a 1-D sequence, got shape {strength.shape}.")
    if strength.ndim == 0:
        return (z + strength * vector).astype("float32")
    return (z[None] + strength.reshape((-1,) + (1,) * z.ndim) * vector).astype("float32")


def along(vector, strengths):
    """Edits for `edit`: ``{"+1.5": z -> z + 1.5 vector, ...}``, one per strength (in order)."""
    strengths = _as_float_array("strengths", strengths).reshape(-1)
    vector = _as_float_array("vector", vector)
    return {f"{s:+g}": (lambda z, s=float(s): apply(z, vector, s)) for s in strengths}


def _rescaled(vector, group):
    """``vector`` scaled to the mean norm of the latents in ``group`` (the prior's shell, for prior draws)."""
    norm = np.linalg.norm(vector.reshape(-1))
    target = np.linalg.norm(group.reshape(group.shape[0], -1), axis=1).mean()
    return vector if norm == 0.0 else vector * (target / norm)


def arithmetic(a, b, c, rescale=False):
    """The DCGAN paper's vector arithmetic on averaged latents: ``mean(A) - mean(B) + mean(C)``.

    "smiling woman - neutral woman + neutral man = smiling man" (Radford et al. 2016,
    https://arxiv.org/abs/1511.06434): single latents give unstable results, averages of a few per concept work.

    The mean of ``n`` independent prior draws has norm ~ sqrt(d / n), far inside the shell of radius ~ sqrt(d)
    where a Gaussian prior's samples lie, and a GAN decodes such points poorly (faint, generic images). With
    ``rescale=True`` the result is scaled to the mean norm of C's latents (White 2016, https://arxiv.org/abs/1609.04468,
    keeps latents on that shell for the same reason).

    Args:
        a, b, c: groups of latents, ``(n_a, *latent_shape)`` etc. (sizes may differ).
        rescale: scale the result to the mean norm of the latents of C.

    Returns:
        float32 ``latent_shape``.
    """
    a, b, c = (_check_group(name, g) for name, g in (("a", a), ("b", b), ("c", c)))
    if not a.shape[1:] == b.shape[1:] == c.shape[1:]:
        raise ValueError(f"The groups hold latents of different shapes: {a.shape[1:]}, {b.shape[1:]}, {c.shape[1:]}.")
    result = a.mean(axis=0) - b.mean(axis=0) + c.mean(axis=0)
    return (_rescaled(result, c) if rescale else result).astype("float32")


def arithmetic_grid(model, a, b, c, labels=None, examples=4, names=("A", "B", "C"), rescale=False, batch_size=256):
    """A picture of `arithmetic`: rows A, B, C and A − B + C; columns ``examples`` members and the mean.

    Row ``A − B + C`` shows the single-latent arithmetic ``a_i - b_i + c_i`` in its example columns and the
    averaged ``mean(A) - mean(B) + mean(C)`` in its last column, so the grid shows why the paper averages.

    Args:
        model: a GAN or VAE.
        a, b, c: groups of latents (each with at least ``examples`` latents).
        labels: a conditional model's classes: one int for the whole grid, one per row (4), or one per image
            ``(4, examples + 1)``; None for an unconditional model.
        examples: example columns.
        names: the groups' names, for the row titles.
        rescale: scale each mean (and the result) to the mean norm of its group's latents (see `arithmetic`;
            useful for a GAN's prior draws).
        batch_size: latents per network call.

    Returns:
        A `LatentGrid` of ``(4, examples + 1)`` images; its ``latents[3, -1]`` is
        ``arithmetic(a, b, c, rescale)``.
    """
    _check_model(model)
    examples = checks.integer(examples, "examples", 1)
    groups = [_check_latents(model, g, name) for name, g in zip("abc", (a, b, c))]
    for name, group in zip(names, groups):
        if group.shape[0] < examples:
            raise ValueError(f"Group {name} has {group.shape[0]} latents; the grid shows {examples} examples of each.")
    means = [_rescaled(g.mean(axis=0), g) if rescale else g.mean(axis=0) for g in groups]
    rows = [np.concatenate([g[:examples], m[None]]) for g, m in zip(groups, means)]
    single = groups[0][:examples] - groups[1][:examples] + groups[2][:examples]
    rows.append(np.concatenate([single, arithmetic(*groups, rescale=rescale)[None]]))
    latents = np.stack(rows).astype("float32")  # (4, examples + 1, *latent_shape)
    grid_labels = _grid_labels(model, labels, 4, examples + 1)
    images = _decode_grid(model, latents, grid_labels, batch_size)
    name_a, name_b, name_c = names
    row_titles = [name_a, f"− {name_b}", f"+ {name_c}", f"= {name_a} − {name_b} + {name_c}"]
    col_titles = [f"#{i + 1}" for i in range(examples)] + ["mean"]
    title = f"{name_a} − {name_b} + {name_c} (means of {', '.join(str(len(g)) for g in groups)} latents)"
    if rescale:
        title += ", rescaled"
    return LatentGrid(images, latents, grid_labels, row_titles, col_titles, title)


def shift_grid(model, z, vector, strengths, labels=None, batch_size=256):
    """Latents moved along a vector: row ``i`` shows ``z_i + s vector`` for each strength ``s``.

    Args:
        model: a GAN or VAE.
        z: latents ``(n, *latent_shape)`` (or one latent).
        vector: ``latent_shape``, e.g. an `attribute_vector`.
        strengths: 1-D sequence of strengths (include 0 to show the start).
        labels: a conditional model's classes: one int, or one per row.
        batch_size: latents per network call.

    Returns:
        A `LatentGrid` of ``(n, len(strengths))`` images.
    """
    _check_model(model)
    z = _check_latents(model, z)
    strengths = _as_float_array("strengths", strengths).reshape(-1)
    if strengths.size == 0:
        raise ValueError("`strengths` is empty.")
    latents = np.swapaxes(apply(z, vector, strengths), 0, 1)  # (n, s, *latent_shape)
    grid_labels = _grid_labels(model, labels, *latents.shape[:2])
    images = _decode_grid(model, latents, grid_labels, batch_size)
    return LatentGrid(
        images, latents, grid_labels, [f"z{i}" for i in range(len(z))], [f"{s:+g}" for s in strengths],
        "z + strength × vector",
    )


# ------------------------------------------------------------------------------------------------ traversal
def traverse(model, z, dims=None, values=None, labels=None, offset=False, batch_size=256):
    """Varies one latent dimension at a time: row ``r`` sets dimension ``dims[r]`` of ``z`` to each value.

    In a disentangled model (β-VAE) each row changes one factor of the image (stroke width, slant, ...) and
    nothing else; in an entangled one several change together. For a VAE, rank the dimensions with
    `active_dims`: dimensions whose posterior equals the prior (KL ~ 0) are unused and change nothing.

    Args:
        model: a GAN or VAE.
        z: one latent ``latent_shape`` (e.g. a prior draw, or the encoding of an image).
        dims: indices into the flattened latent; default: all of them.
        values: 1-D values to set (default ``linspace(-3, 3, 7)``: +-3 prior standard deviations).
        labels: a conditional model's class: one int.
        offset: add the values to ``z[dim]`` instead of setting it.
        batch_size: latents per network call.

    Returns:
        A `LatentGrid` of ``(len(dims), len(values))`` images; ``latents[r, c]`` differs from ``z`` only at
        ``dims[r]``.
    """
    _check_model(model)
    z = _check_latents(model, z)
    if z.shape[0] != 1:
        raise ValueError(f"`traverse` varies one latent; got {z.shape[0]}. Call it once per latent.")
    size = int(np.prod(model.latent_shape))
    dims = list(range(size)) if dims is None else list(np.asarray(dims).reshape(-1))
    for d in dims:
        if isinstance(d, (bool, np.bool_)) or not isinstance(d, numbers.Integral) or not 0 <= d < size:
            raise ValueError(f"`dims` must be integers in [0, {size}) (the flattened latent); got {d!r}.")
    if not dims:
        raise ValueError("`dims` is empty.")
    values = np.linspace(-3.0, 3.0, 7) if values is None else _as_float_array("values", values).reshape(-1)
    if values.size == 0:
        raise ValueError("`values` is empty.")
    flat = np.repeat(np.repeat(z.reshape(1, 1, size), len(dims), axis=0), values.size, axis=1)  # (R, C, size)
    for r, d in enumerate(dims):
        flat[r, :, d] = (flat[r, :, d] + values) if offset else values
    latents = flat.reshape((len(dims), values.size) + tuple(model.latent_shape)).astype("float32")
    grid_labels = _grid_labels(model, labels, len(dims), values.size)
    images = _decode_grid(model, latents, grid_labels, batch_size)
    sign = "+" if offset else ""
    return LatentGrid(
        images, latents, grid_labels, [f"z[{d}]" for d in dims], [f"{sign}{v:g}" for v in values],
        "one latent dimension at a time",
    )


def active_dims(vae, images, labels=None, batch_size=256):
    """The VAE's latent dimensions ranked by use: the mean over ``images`` of each dimension's KL term,

        KL_j = 1/2 (mu_j^2 + sigma_j^2 - log sigma_j^2 - 1),

    largest first. A dimension with KL ~ 0 is "collapsed" (posterior = prior, ignored by the decoder).

    Returns:
        ``(dims, kl)``: int ``(d,)`` ordered by decreasing KL, and float64 ``(d,)`` the KL of each dimension
        (in dimension order, nats).
    """
    _check_encoder(vae)
    mean, log_var = _encode(vae, images, labels, batch_size)  # (n, d) each
    mean, log_var = mean.astype("float64"), log_var.astype("float64")
    kl = 0.5 * (mean**2 + np.exp(log_var) - log_var - 1.0).mean(axis=0)  # (d,)
    return np.argsort(-kl, kind="stable"), kl


# ------------------------------------------------------------------------------------------------ editing
def edit(vae, images, edits=None, labels=None, new_labels=None, batch_size=256):
    """Edits real images in latent space: the seeds' five-step recipe.

    1. collect images with and without the attribute (or two classes);
    2. encode them: ``z = E[z|x]`` (`encode_images`);
    3. the attribute vector is the difference of the group means (`attribute_vector`);
    4. encode the image to edit and change its latent: ``z' = z + strength * vector`` (or any ``fn(z)``);
    5. decode ``z'``.

    This function does steps 4 and 5 for each edit and shows the original, its reconstruction
    (``decode(z)``: what the VAE can express at all) and each edited decoding side by side.

    Args:
        vae: a model with an encoder (``encode(images, labels) -> (mean, log_var)``, `decode`): a `VAE`.
        images: ``(n, *sample_shape)`` in [-1, 1].
        edits: a callable ``z (n, d) -> z' (n, d)``, or a dict ``{column title: callable}`` (e.g. `along`);
            None shows only the originals and reconstructions.
        labels: a conditional VAE's classes of the images (required for one).
        new_labels: a conditional VAE's classes to decode the edits with (default ``labels``): decoding the same
            ``z`` with another class keeps the style and changes the digit.
        batch_size: images per network call.

    Returns:
        A `LatentGrid` of ``(n, 2 + number of edits)`` images, columns ``"original"``, ``"reconstruction"`` and
        one per edit (``"edited"`` for a single callable); ``latents[:, 0]`` and ``latents[:, 1]`` are ``z``.
    """
    _check_encoder(vae)
    if edits is None:
        edits = {}
    elif callable(edits):
        edits = {"edited": edits}
    elif not isinstance(edits, dict) or not all(callable(fn) for fn in edits.values()):
        raise TypeError("`edits` must be a callable z -> z', a dict {title: callable}, or None.")
    images = _as_float_array("images", images).astype("float32")
    if images.ndim == len(vae.sample_shape):
        images = images[None]  # one image
    conditional = getattr(vae, "num_classes", None) is not None
    if new_labels is not None and not conditional:
        raise ValueError(f"{type(vae).__name__} is unconditional: `new_labels` must be None.")
    z, _ = _encode(vae, images, labels, batch_size)  # (n, d)
    n = z.shape[0]
    if conditional:
        labels = vae.check_labels(labels, n)
        new_labels = labels if new_labels is None else vae.check_labels(new_labels, n)
    columns = [z, z]
    for title, fn in edits.items():
        changed = np.asarray(fn(z.copy()), dtype="float32")
        if changed.shape != z.shape:
            raise ValueError(f"The edit {title!r} returned latents of shape {changed.shape}; expected {z.shape}.")
        columns.append(changed)
    latents = np.stack(columns, axis=1)  # (n, 2 + e, d)
    cols = latents.shape[1]
    grid_labels = None
    if conditional:
        grid_labels = np.repeat(new_labels[:, None], cols, axis=1)
        grid_labels[:, :2] = labels[:, None]
    decoded = _decode_grid(vae, latents[:, 1:], None if grid_labels is None else grid_labels[:, 1:], batch_size)
    grid_images = np.concatenate([images[:, None], decoded], axis=1)  # (n, cols, *sample_shape)
    return LatentGrid(
        grid_images, latents, grid_labels, [f"x{i}" for i in range(n)],
        ["original", "reconstruction", *edits], "encode → change → decode",
    )


# ------------------------------------------------------------------------------------------------ group specs
def parse_group(spec):
    """A group spec of the CLI: ``"7"``, ``"7:bold"``, ``"3,5:thin"``, ``":bold"`` (every class) or ``""`` (all).

    Returns:
        ``(classes or None, style or None)``, the arguments of `group_mask`.
    """
    if not isinstance(spec, str):
        raise TypeError(f"A group spec is a string such as '7', '7:bold' or ':thin', got {spec!r}.")
    text, _, style = spec.strip().partition(":")
    style = style.strip() or None
    if style is not None:
        checks.choice(style, "style", STYLES)
    try:
        classes = tuple(int(part) for part in text.split(",") if part.strip()) or None
    except ValueError as exc:
        raise ValueError(
            f"Bad group spec {spec!r}: expected comma-separated classes and an optional ':bold' or ':thin', "
            "e.g. '7', '7:bold', '3,5:thin', ':bold'."
        ) from exc
    return classes, style
