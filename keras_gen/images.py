"""Writing what people would rather look at than read: image grids and scatter plots as PNG files."""

import math
import os
import tempfile

import numpy as np

__all__ = ["to_uint8", "image_grid", "save_image_grid", "save_scatter", "save_loss_plot", "atomic_write"]


def _read_umask():
    mask = os.umask(0)  # the only way to read it sets it: read once, at import, before any thread writes files
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def atomic_write(path, write_fn, suffix=None):
    """Calls ``write_fn(tmp_path)`` and renames the result onto ``path``, so ``path`` is never half-written."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    suffix = suffix if suffix is not None else os.path.splitext(path)[1]
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=suffix)
    os.close(fd)
    try:
        write_fn(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the mode open() would
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def to_uint8(images, value_range=(-1.0, 1.0)):
    """Maps images from ``value_range`` to uint8 pixels (rounded, clipped)."""
    low, high = value_range
    images = (np.asarray(images, dtype="float32") - low) / (high - low)
    return np.clip(np.round(images * 255.0), 0, 255).astype("uint8")


def image_grid(images, nrow=None, padding=2, value_range=(-1.0, 1.0), pad_value=255):
    """Tiles ``(N, H, W, C)`` images into one ``(rows*(H+p)+p, cols*(W+p)+p, C)`` uint8 array.

    Args:
        images: a batch of images, ``C`` in {1, 3}.
        nrow: images per row (default: ``ceil(sqrt(N))``).
        padding: pixels between images.
        value_range: the range the images are in.
        pad_value: the padding's grey level.
    """
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"Expected images of shape (N, H, W, 1|3), got {images.shape}.")
    n, h, w, c = images.shape
    pixels = to_uint8(images, value_range)
    cols = nrow or int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(n / cols))
    grid = np.full((rows * (h + padding) + padding, cols * (w + padding) + padding, c), pad_value, dtype="uint8")
    for i in range(n):
        r, q = divmod(i, cols)
        top, left = padding + r * (h + padding), padding + q * (w + padding)
        grid[top : top + h, left : left + w] = pixels[i]
    return grid


def save_image_grid(images, path, nrow=None, value_range=(-1.0, 1.0), min_size=256):
    """Writes a grid of images as a PNG, upscaled (nearest neighbour) to at least ``min_size`` pixels wide."""
    from PIL import Image

    grid = image_grid(images, nrow=nrow, value_range=value_range)
    scale = max(1, int(math.ceil(min_size / grid.shape[1])))
    if scale > 1:
        grid = grid.repeat(scale, axis=0).repeat(scale, axis=1)
    image = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)
    return atomic_write(path, lambda tmp: image.save(tmp, format="PNG"))


def _figure(figsize):
    # A bare Figure with its own Agg canvas: no pyplot, so a notebook's inline backend is left alone.
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=100)
    return fig, fig.add_subplot()


def save_scatter(points, path, centers=None, title=None, limits=None):
    """Scatter plot of 2-D samples (and the true mode centres, if given) as a PNG."""
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"Expected 2-D points of shape (N, 2), got {points.shape}.")
    fig, ax = _figure((5, 5))
    ax.scatter(points[:, 0], points[:, 1], s=2, alpha=0.4, color="tab:blue", label="samples")
    if centers is not None:
        centers = np.asarray(centers)
        ax.scatter(centers[:, 0], centers[:, 1], s=40, marker="x", color="tab:red", label="modes")
        span = np.abs(centers).max() * 1.5 + 0.5
        limits = limits or (-span, span)
    if limits:
        ax.set_xlim(*limits)
        ax.set_ylim(*limits)
    ax.set_aspect("equal")
    ax.legend(loc="upper right", fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))


def save_loss_plot(history, path, title=None):
    """Plots each logged series of ``history`` (``{name: [value per epoch]}``) against the epoch, as a PNG."""
    fig, ax = _figure((7, 4))
    for name, values in sorted(history.items()):
        values = np.asarray(values, dtype="float64")
        if values.size:
            ax.plot(np.arange(1, values.size + 1), values, marker="." if values.size < 50 else None, label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
