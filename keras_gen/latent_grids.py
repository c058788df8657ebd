"""The latent-space grids of a trained run folder: what ``keras-gen latent ACTION RUN`` draws.

`grid_for_run` loads the run's model (`keras_gen.runs.load_run`) and its dataset's held-out images, checks that the
model offers what the action needs (`keras_gen.model_kind`: a continuous ``latent_space``; ``encode`` for edits and
``--source data``), and calls the latent tools of `keras_gen.latent`.
"""

import inspect

import numpy as np

from keras_gen import checks, model_kind
from keras_gen.latent import (
    active_dims,
    along,
    arithmetic_grid,
    attribute_vector,
    classify_samples,
    edit,
    encode_images,
    group_mask,
    interpolation_grid,
    parse_group,
    traverse,
)
from keras_gen.presets import run_dir_config
from keras_gen.runs import held_out_images, load_run

__all__ = ["ACTIONS", "SOURCES", "grid_for_run"]

ACTIONS = ("interpolate", "arithmetic", "traverse", "edit")
"""The grids `grid_for_run` (and ``keras-gen latent ACTION``) draws."""

SOURCES = ("prior", "data")
"""Where the latents of `grid_for_run`'s interpolations and traversals come from: prior draws, or encoded
test images (models with an encoder)."""


def _real_data(config):
    """Test images and labels of a run's dataset (a fixed batch of held-out images for non-builtin ones)."""
    from keras_gen import data

    try:
        x, y = data.load_arrays(config.dataset, "test")
    except ValueError:
        x, y = held_out_images(config, n=512)
    if x.ndim != 4:
        raise ValueError(f"Dataset {config.dataset!r} holds no images (shape {x.shape[1:]}): nothing to encode.")
    return np.asarray(x, "float32"), None if y is None else np.asarray(y).astype("int32")


def _require_encoder(model):
    return model_kind.require(model, "encode", "An edit or `--source data`")


def _has_encoder(model):
    return "encode" in model_kind.operations_of(model)


def _labelled_latents(model, config, seed, num_samples, classify):
    """``(latents, images, labels)`` to form groups from: encoded test images (a VAE), samples with their
    conditioning labels (a conditional GAN), or samples labelled by a classifier (an unconditional GAN)."""
    if _has_encoder(model):
        x, y = _real_data(config)
        if y is None:
            raise ValueError(f"Dataset {config.dataset!r} has no labels to form groups from.")
        conditional = getattr(model, "num_classes", None) is not None
        return encode_images(model, x, y if conditional else None), x, y
    if getattr(model, "num_classes", None) is not None:
        y = model.check_labels(None, num_samples)
        z = np.asarray(model.sample_latent(num_samples, seed=seed), "float32")
        return z, model.generate_from_latent(z, y), y
    if classify is None:
        from keras_gen.metrics.classifier import CLASSIFIER_DATASETS, domain_classifier

        if config.dataset not in CLASSIFIER_DATASETS:
            raise ValueError(
                f"Groups of an unconditional GAN's samples come from a classifier; the package has one for "
                f"{', '.join(CLASSIFIER_DATASETS)}, not {config.dataset!r}. Use the Python API with your own "
                "`classify` (keras_gen.latent.classify_samples)."
            )
        classify = domain_classifier(config.dataset)
    return classify_samples(model, num_samples, classify, seed=seed)


def _group(spec, latents, images, labels, role):
    classes, style = parse_group(spec)
    try:
        mask = group_mask(labels, classes, images, style)
    except ValueError as exc:
        raise ValueError(f"Group {role}={spec!r}: {exc}") from exc
    return np.flatnonzero(mask)


def _common_label(labels, index):
    values, counts = np.unique(labels[index], return_counts=True)
    return int(values[np.argmax(counts)])


def _run_interpolate(model, config, seed, rows=4, steps=8, method="slerp", labels=None, label_mode="hold",
                     source="prior"):
    checks.choice(source, "source", SOURCES)
    k = checks.integer(rows, "rows", 1) + 1
    if source == "prior":
        return interpolation_grid(model, k, steps, labels=labels, label_mode=label_mode, method=method, seed=seed)
    _require_encoder(model)
    if labels is not None:
        raise ValueError("With source='data' the anchors' labels are those of the images; drop `labels`.")
    x, y = _real_data(config)
    pick = np.random.default_rng(seed).choice(len(x), size=min(k, len(x)), replace=False)
    conditional = getattr(model, "num_classes", None) is not None
    y = y[pick] if conditional else None
    anchors = encode_images(model, x[pick], y)
    return interpolation_grid(model, anchors, steps, labels=y, label_mode=label_mode, method=method)


def _run_arithmetic(model, config, seed, a="7:bold", b="7", c="1", examples=4, num_samples=2000, classify=None,
                    rescale=None):
    latents, images, labels = _labelled_latents(model, config, seed, num_samples, classify)
    index = [_group(spec, latents, images, labels, role) for role, spec in (("a", a), ("b", b), ("c", c))]
    examples = min(checks.integer(examples, "examples", 1), *(len(i) for i in index))
    grid_labels = None
    if getattr(model, "num_classes", None) is not None:
        rows = [np.append(labels[i[:examples]], _common_label(labels, i)) for i in index]
        grid_labels = np.stack(rows + [rows[2]])  # the result takes C's classes
    if rescale is None:
        rescale = not _has_encoder(model)  # prior draws: keep the means on the prior's shell
    return arithmetic_grid(model, *(latents[i] for i in index), labels=grid_labels, examples=examples,
                           names=(a, b, c), rescale=rescale)


def _run_traverse(model, config, seed, dims=None, values=None, steps=7, labels=None, source="prior", index=0):
    checks.choice(source, "source", SOURCES)
    steps = checks.integer(steps, "steps", 2)
    values = np.linspace(-3.0, 3.0, steps) if values is None else values
    label = labels
    if source == "data":
        _require_encoder(model)
        x, y = _real_data(config)
        index = checks.integer(index, "index", 0)
        if index >= len(x):
            raise ValueError(f"`index` {index} is out of range: the test split has {len(x)} images.")
        conditional = getattr(model, "num_classes", None) is not None
        label = int(y[index]) if conditional else None
        z = encode_images(model, x[index : index + 1], None if label is None else [label])[0]
    else:
        z = np.asarray(model.sample_latent(1, seed=seed), "float32")[0]
        if label is None and getattr(model, "num_classes", None) is not None:
            label = 0
    if dims is None:
        size = int(np.prod(model.latent_shape))
        if _has_encoder(model):
            x, y = _real_data(config)
            conditional = getattr(model, "num_classes", None) is not None
            dims = active_dims(model, x, y if conditional else None)[0][: min(8, size)]
        else:
            dims = range(min(8, size))
    grid = traverse(model, z, dims, values, labels=label)
    grid.title += f" (z from the {source})"
    return grid


def _run_edit(model, config, seed, images=":thin", from_group=":thin", to_group=":bold", strengths=(0.5, 1.0, 1.5),
              count=6):
    _require_encoder(model)
    x, y = _real_data(config)
    conditional = getattr(model, "num_classes", None) is not None
    z = encode_images(model, x, y if conditional else None)
    source = _group(from_group, z, x, y, "from")
    target = _group(to_group, z, x, y, "to")
    vector = attribute_vector(z, target, source)
    chosen = _group(images, z, x, y, "images")
    chosen = np.random.default_rng(seed).permutation(chosen)[: checks.integer(count, "count", 1)]
    new_labels = None
    to_classes = parse_group(to_group)[0]
    if conditional and to_classes is not None and len(to_classes) == 1:
        new_labels = to_classes[0]  # a conditional VAE keeps the class in the label, not in z
    grid = edit(model, x[chosen], along(vector, strengths), labels=y[chosen] if conditional else None,
                new_labels=new_labels)
    grid.title = f"images {images!r} + strength × (mean z[{to_group!r}] − mean z[{from_group!r}])"
    return grid


_RUNNERS = {"interpolate": _run_interpolate, "arithmetic": _run_arithmetic, "traverse": _run_traverse,
            "edit": _run_edit}


def grid_for_run(run, action, seed=0, **options):
    """The latent-space grid ``action`` of a trained run folder (what ``keras-gen latent ACTION`` draws).

    Actions and their options (all optional):

    - ``"interpolate"``: ``rows`` (4), ``steps`` (8), ``method`` ("slerp"), ``labels`` (per anchor, conditional
      models), ``label_mode`` ("hold"), ``source`` ("prior", or "data": encoded test images, VAEs).
    - ``"arithmetic"``: group specs ``a``, ``b``, ``c`` (`parse_group`; default "7:bold" − "7" + "1": a bold 1),
      ``examples`` (4), ``num_samples`` (2000 GAN samples), ``classify`` (default: the package's domain
      classifier of the dataset, for an unconditional GAN), ``rescale`` (default: True for a GAN's prior draws,
      False for a VAE's encodings). A VAE's groups are its encoded test images, a conditional GAN's are
      samples with their labels.
    - ``"traverse"``: ``dims`` (default: a VAE's 8 most active, else the first 8), ``values`` (default
      ``linspace(-3, 3, steps)``), ``steps`` (7), ``labels`` (one class), ``source`` ("prior" or "data"),
      ``index`` (the test image, with "data").
    - ``"edit"`` (VAEs): ``images`` (group spec of the test images to edit, ":thin"), ``from_group`` (":thin"),
      ``to_group`` (":bold"), ``strengths`` ((0.5, 1, 1.5)), ``count`` (6). The vector is
      ``mean z[to] - mean z[from]``; a conditional VAE decodes with the ``to`` class when it names one.

    Args:
        run: a run folder written by `keras_gen.train_run` / ``keras-gen train``.
        action: one of `ACTIONS`.
        seed: seed of every random choice (prior draws, which images).
        **options: the action's options above.

    Returns:
        A `LatentGrid`.
    """
    checks.choice(action, "latent action", ACTIONS)
    runner = _RUNNERS[action]
    valid = [p for p in inspect.signature(runner).parameters if p not in ("model", "config", "seed")]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(f"Unknown option(s) {unknown} for `{action}`. Valid: {', '.join(valid)}.")
    config = run_dir_config(run)
    model = model_kind.require(load_run(run, compile=False), "latent_space", f"`keras-gen latent {action}`")
    return runner(model, config, seed, **options)
