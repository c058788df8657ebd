"""Writing what people would rather look at than read: image grids, labelled grids and scatter plots as PNG files."""

import math

import numpy as np

from keras_gen.files import atomic_write

__all__ = [
    "to_uint8", "image_grid", "save_image_grid", "add_caption", "save_scatter", "loss_figure", "save_loss_plot",
    "labelled_figure", "save_labelled_grid",
]


def to_uint8(images, value_range=(-1.0, 1.0)):
    """Maps images from ``value_range`` to uint8 pixels (rounded, clipped)."""
    low, high = value_range
    images = (np.asarray(images, dtype="float32") - low) / (high - low)
    return np.clip(np.round(images * 255.0), 0, 255).astype("uint8")


def full_rows(n, columns):
    """``n`` rounded up to a multiple of ``columns`` (None or 0: ``n`` as it is): a grid of that many images, one
    column per class of a conditional model, has no partly filled last row."""
    return -(-int(n) // columns) * columns if columns else int(n)


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


def _caption_lines(text, font, draw, width):
    """``text`` broken at spaces into lines no wider than ``width`` pixels (a longer word keeps a line of its own)."""
    lines, line = [], ""
    for word in text.split():
        candidate = f"{line} {word}" if line else word
        if line and draw.textlength(candidate, font=font) > width:
            lines.append(line)
            candidate = word
        line = candidate
    return lines + ([line] if line else [])


def add_caption(path, caption, font_size=None):
    """Rewrites the PNG at ``path`` with ``caption`` under it: a white strip with the text in dark grey, broken
    into lines that fit the image's width, and the text also in the PNG's ``Caption`` text chunk (what
    ``PIL.Image.open(path).text["Caption"]`` reads). Written atomically; returns ``path``.

    Args:
        path: a PNG file (e.g. from `save_image_grid`).
        caption: one line of text.
        font_size: pixels; default about 1/32 of the image's width, at least 11.
    """
    from PIL import Image, ImageDraw, ImageFont, PngImagePlugin

    if not isinstance(caption, str) or not caption.strip():
        raise ValueError(f"`caption` must be a non-empty string; received {caption!r}.")
    with Image.open(path) as source:
        image = source.convert("RGB") if source.mode not in ("L", "RGB") else source.copy()
    width, height = image.size
    size = int(font_size or max(11, width // 32))
    font = ImageFont.load_default(size=size)
    margin = max(2, size // 3)
    lines = _caption_lines(caption, font, ImageDraw.Draw(image), width - 2 * margin)
    line_height = size + size // 4
    strip = len(lines) * line_height + 2 * margin
    white = 255 if image.mode == "L" else (255, 255, 255)
    captioned = Image.new(image.mode, (width, height + strip), white)
    captioned.paste(image, (0, 0))
    draw = ImageDraw.Draw(captioned)
    for i, line in enumerate(lines):
        draw.text((margin, height + margin + i * line_height), line, fill=40 if image.mode == "L" else (40, 40, 40),
                  font=font)
    info = PngImagePlugin.PngInfo()
    info.add_text("Caption", caption)
    return atomic_write(path, lambda tmp: captioned.save(tmp, format="PNG", pnginfo=info))


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


def loss_figure(history, title=None):
    """A matplotlib `Figure` (no pyplot state) of the logged series of ``history`` (``{name: [value per epoch]}``)
    against the epoch, or None when no series has a finite value.

    Only series with at least one finite value are drawn (a ``val_`` column no epoch logged is left out, and a
    missing value is a gap). The losses (names with ``loss``) share one axis; the other logged values (a
    mode-collapse score, a gradient penalty) have their own below it. ``val_NAME`` is drawn dashed in the colour
    of ``NAME``.
    """
    series = {}
    for name, values in sorted(history.items()):
        values = np.asarray(values, dtype="float64")
        if np.isfinite(values).any():
            series[name] = values
    if not series:
        return None
    families = [
        ("loss", [n for n in series if "loss" in n]),
        ("value", [n for n in series if "loss" not in n]),
    ]
    families = [(label, names) for label, names in families if names]
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(7, 3 + 2 * len(families)), dpi=100, layout="constrained")
    axes = fig.subplots(len(families), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (label, names) in zip(axes, families):
        colours = {}
        for name in sorted(names, key=lambda n: (n.startswith("val_"), n)):  # a training curve before its val_
            values = series[name]
            epochs = np.arange(1, values.size + 1)
            trained = name[len("val_"):] if name.startswith("val_") else None
            style = {"linestyle": "--", "color": colours[trained]} if trained in colours else {}
            (line,) = ax.plot(epochs, values, marker="." if values.size < 50 else None, label=name, **style)
            colours[name] = line.get_color()
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[-1].set_xlabel("epoch")
    axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
    if title:
        fig.suptitle(title)
    return fig


def save_loss_plot(history, path, title=None):
    """Writes `loss_figure` of ``history`` (``{name: [value per epoch]}``) as a PNG. Returns ``path``, or None (and
    writes nothing) when no series has a finite value."""
    fig = loss_figure(history, title=title)
    if fig is None:
        return None
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))


def labelled_figure(images, row_titles=None, col_titles=None, title="", cell_inches=0.75):
    """A matplotlib `Figure` (no pyplot state) of a ``(rows, cols, H, W, C)`` grid of images in [-1, 1] (or
    ``(rows, cols, 2)`` points, one path per row) with row and column titles."""
    from matplotlib.figure import Figure

    images = np.asarray(images)
    rows, cols = images.shape[:2]
    points = images.ndim == 3  # (rows, cols, D): 2-D samples, drawn as one path per row
    if points and images.shape[-1] != 2:
        raise ValueError(f"Only images or 2-D points can be drawn; got samples of shape {images.shape[2:]}.")
    if points:
        fig = Figure(figsize=(5, 5), dpi=100, layout="constrained")
        ax = fig.subplots()
        for r in range(rows):
            label = row_titles[r] if row_titles else f"row {r}"
            ax.plot(images[r, :, 0], images[r, :, 1], marker="o", markersize=3, label=label)
        ax.set_aspect("equal")
        ax.legend(fontsize=7)
    else:
        left = 0.9 if row_titles else 0.1
        top = (0.35 if col_titles else 0.1) + (0.35 if title else 0.0)
        fig = Figure(figsize=(cols * cell_inches + left, rows * cell_inches + top), dpi=100, layout="constrained")
        axes = fig.subplots(rows, cols, squeeze=False)
        pixels = to_uint8(images)  # (rows, cols, H, W, C)
        for r in range(rows):
            for c in range(cols):
                ax = axes[r, c]
                image = pixels[r, c]
                if image.shape[-1] == 1:
                    ax.imshow(image[..., 0], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
                else:
                    ax.imshow(image, interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
                if r == 0 and col_titles:
                    ax.set_title(str(col_titles[c]), fontsize=8)
                if c == 0 and row_titles:
                    ax.set_ylabel(str(row_titles[r]), fontsize=8, rotation=0, ha="right", va="center")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def save_labelled_grid(images, path, row_titles=None, col_titles=None, title=""):
    """Writes ``(rows, cols, H, W, C)`` images in [-1, 1] as one PNG with row and column titles (matplotlib).

    Args:
        images: the grid's images (or ``(rows, cols, 2)`` points, drawn as one path per row).
        path: the PNG file, written atomically.
        row_titles: a string per row, shown at the left.
        col_titles: a string per column, shown on top.
        title: the figure's title.

    Returns:
        ``path``.
    """
    images = np.asarray(images)
    if images.ndim not in (3, 5):
        raise ValueError(
            f"Expected a grid (rows, cols, H, W, C) of images or (rows, cols, 2) points, got {images.shape}."
        )
    for name, titles, size in (("row_titles", row_titles, images.shape[0]),
                               ("col_titles", col_titles, images.shape[1])):
        if titles is not None and len(titles) != size:
            raise ValueError(f"`{name}` has {len(titles)} entries for {size} {name.split('_')[0]}s.")
    fig = labelled_figure(images, row_titles, col_titles, title)
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
