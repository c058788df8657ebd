"""A preset on your own data: NumPy arrays or a `tf.data` pipeline in place of a dataset name.

    own = OwnData(x, config)          # x: (N, H, W, C) images in [-1, 1], or (N, D) points; or (x, labels)
    own.config.dataset                # "arrays (N, H, W, C)": what the run folder records as its data
    own.info                          # as keras_gen.data.dataset_info describes a named dataset
    own.batches(seed=0)               # the batches train_run fits on

`keras_gen.presets.build_model(config, data=...)` and `keras_gen.runs.train_run(config, run_dir, data=...)` take
the data itself and use this; docs/own_data.md shows both.
"""

import dataclasses

__all__ = ["OwnData"]

_IMAGE_RANGE = (-1.0, 1.0)
_RANGE_SLACK = 1e-3  # float rounding of x / 127.5 - 1


def _kind(shape, what):
    """``"image"`` for (H, W, C) examples, ``"points"`` for (D,); a ValueError that says what to do otherwise."""
    if len(shape) == 3:
        return "image"
    if len(shape) == 1:
        return "points"
    hint = " Add a channel axis: x[..., None]." if len(shape) == 2 else ""
    raise ValueError(
        f"{what} must be images (H, W, C) or points (D,) per example, got examples of shape {tuple(shape)}.{hint}"
    )


class OwnData:
    """Training data given as arrays or a `tf.data` pipeline instead of ``config.dataset``.

    Arrays are split into examples along their first axis, shuffled each epoch from ``config.seed`` and the epoch
    (as a named dataset is; `keras_gen.data.shuffled_batches`) and cut into batches of ``config.batch_size``
    (the last partial batch is dropped). A `tf.data` pipeline is used as Keras ``fit`` uses one: it yields the
    batches, in the order it makes them; its first batch gives the batch size.

    Args:
        data: ``x`` or ``(x, labels)``: float images ``(N, H, W, C)`` in [-1, 1] (``x / 127.5 - 1`` for uint8
            pixels) or points ``(N, D)``, and integer labels ``(N,)`` from 0; or a `tf.data.Dataset` of batches
            ``images`` or ``(images, labels)``. A conditional preset needs labels (for a pipeline, they are read
            once to count the classes), and a pipeline whose length tf.data does not know is read once to count
            its batches (``dataset.apply(tf.data.experimental.assert_cardinality(n))`` says it instead).
        config: the `RunConfig` to train (its ``batch_size``, ``seed`` and ``conditional`` are read).

    Attributes:
        config: ``config`` with ``dataset`` naming the data (``"arrays (N, H, W, C)"``, ``"tf.data (None, H, W,
            C)"``) and, for a pipeline, ``batch_size`` its batch size.
        info: the data described as `keras_gen.data.dataset_info` describes a named dataset (``"shape"``,
            ``"kind"``, ``"num_classes"``, ``"splits"``; a pipeline's ``"batches"`` per epoch).

    Raises:
        ValueError: data of another kind or shape, images outside [-1, 1], labels that are not class indices, an
            endless pipeline, or a config that names data options (``image_size``, ``channels``, ``center_crop``,
            ``data_dir``: they apply to named datasets).
    """

    def __init__(self, data, config):
        options = {name: getattr(config, name) for name in ("image_size", "channels", "data_dir")}
        options["center_crop"] = config.center_crop or None
        given = sorted(name for name, value in options.items() if value is not None)
        if given:
            raise ValueError(
                f"`{'`, `'.join(given)}` apply to named datasets, not to your own data: prepare the arrays or the "
                "pipeline at the size and channels to train on, and leave them unset."
            )
        import tensorflow as tf

        self._pipeline = data if isinstance(data, tf.data.Dataset) else None
        if self._pipeline is not None:
            name, batch_size, info = self._describe_pipeline(data, config)
        else:
            name, batch_size, info = self._describe_arrays(data, config)
        self.config = dataclasses.replace(config, dataset=name, batch_size=batch_size)
        self.info = {"name": name, **info}

    # --------------------------------------------------------------------------------------------------- arrays
    def _describe_arrays(self, data, config):
        import numpy as np

        if isinstance(data, (tuple, list)):
            if len(data) != 2:
                raise ValueError(f"Give your data as x or (x, labels), got a sequence of {len(data)} items.")
            x, labels = data
        else:
            x, labels = data, None
        x = np.asarray(x)
        if x.dtype.kind not in "fiu" or x.ndim < 2 or len(x) == 0:
            raise ValueError(
                f"x must be a numeric array of examples (N, H, W, C) or (N, D), got {x.dtype} of shape {x.shape}."
            )
        kind = _kind(x.shape[1:], "x")
        x = x.astype("float32", copy=False)
        if not np.all(np.isfinite(x)):
            raise ValueError("x holds NaN or infinite values.")
        if kind == "image":
            low, high = float(x.min()), float(x.max())
            if low < _IMAGE_RANGE[0] - _RANGE_SLACK or high > _IMAGE_RANGE[1] + _RANGE_SLACK:
                raise ValueError(
                    f"Images must be scaled to [-1, 1] (the generators' tanh range), got values in [{low:g}, "
                    f"{high:g}]; for pixels in 0..255 use x / 127.5 - 1."
                )
        num_classes = None
        if labels is not None:
            labels = np.asarray(labels)
            if labels.shape != (len(x),) or labels.dtype.kind not in "iu" or labels.min() < 0:
                raise ValueError(
                    f"labels must be class indices: integers >= 0 of shape ({len(x)},), one per example; got "
                    f"{labels.dtype} of shape {labels.shape}."
                )
            labels = labels.astype("int32")
            num_classes = int(labels.max()) + 1
        self._arrays = (x, labels)
        info = {
            "source": "arrays", "kind": kind, "shape": tuple(int(s) for s in x.shape[1:]), "num_classes": num_classes,
            "class_names": None, "value_range": _IMAGE_RANGE if kind == "image" else None,
            "splits": {"train": len(x)},
        }
        return f"arrays {tuple(x.shape)}", config.batch_size, info

    # ------------------------------------------------------------------------------------------------ tf.data
    def _describe_pipeline(self, dataset, config):
        import tensorflow as tf

        spec = dataset.element_spec
        parts = spec if isinstance(spec, tuple) else (spec,)
        if len(parts) not in (1, 2) or not all(isinstance(part, tf.TensorSpec) for part in parts):
            raise ValueError(
                f"A tf.data pipeline must yield batches of images or (images, labels), got elements {spec}."
            )
        images = parts[0]
        if images.shape.rank is None or images.shape.rank < 2 or not images.shape[1:].is_fully_defined():
            raise ValueError(
                f"A tf.data pipeline must yield batches with a known example shape, (B, H, W, C) or (B, D), got "
                f"{images.shape}."
            )
        if not images.dtype.is_floating:
            raise ValueError(f"A tf.data pipeline's images must be floats in [-1, 1], got {images.dtype.name}.")
        shape = tuple(int(s) for s in images.shape[1:])
        try:
            kind = _kind(shape, "A tf.data pipeline's batches")
        except ValueError as exc:
            raise ValueError(
                f"{exc} A pipeline yields batches, as for Keras fit: add .batch({config.batch_size})."
            ) from None
        batches = int(dataset.cardinality())
        if batches == tf.data.INFINITE_CARDINALITY:
            raise ValueError("The tf.data pipeline repeats forever: an epoch must end. Remove its .repeat().")
        has_labels = len(parts) == 2
        num_classes = None
        if batches == tf.data.UNKNOWN_CARDINALITY or (has_labels and config.conditional):
            batches, num_classes = self._scan(dataset, has_labels)
        if batches == 0:
            raise ValueError("The tf.data pipeline yields no batch.")
        first = next(iter(dataset.take(1)))
        batch_size = int((first[0] if has_labels else first).shape[0])
        info = {
            "source": "tf.data", "kind": kind, "shape": shape, "num_classes": num_classes, "class_names": None,
            "value_range": _IMAGE_RANGE if kind == "image" else None, "splits": {"train": None},
            "batches": batches,
        }
        return f"tf.data {tuple(images.shape.as_list())}", batch_size, info

    @staticmethod
    def _scan(dataset, has_labels):
        """One pass over the pipeline: ``(batches, classes or None)``."""
        import numpy as np

        batches, top = 0, -1
        for batch in dataset:
            batches += 1
            if has_labels:
                top = max(top, int(np.max(batch[1].numpy(), initial=-1)))
        return batches, (top + 1 if top >= 0 else None)

    # ------------------------------------------------------------------------------------------------ batches
    def batches(self, seed=None, epoch=0):
        """The training batches: the pipeline itself, or the arrays shuffled per epoch from ``seed`` (default
        ``config.seed``) and ``epoch`` (an int or the scalar int64 `tf.Variable` `keras_gen.runs.train_run` keeps)."""
        import tensorflow as tf

        from keras_gen.data import shuffled_batches

        if self._pipeline is not None:
            return self._pipeline
        x, labels = self._arrays
        examples = tf.data.Dataset.from_tensor_slices(x if labels is None else (x, labels))
        seed = self.config.seed if seed is None else seed
        batches = shuffled_batches(
            examples, self.config.batch_size, seed=seed, epoch=epoch, num_examples=len(x)
        )  # (B, ...)
        return batches.prefetch(tf.data.AUTOTUNE)

    def examples(self, n=32):
        """The first ``n`` examples (fewer if the data has fewer) and their labels (or None), as NumPy arrays: the
        fixed real images a run's reconstruction grid shows."""
        import numpy as np

        if self._pipeline is None:
            x, labels = self._arrays
            return x[:n], None if labels is None else labels[:n]
        images, labels = [], []
        for batch in self._pipeline:
            parts = batch if isinstance(batch, tuple) else (batch,)
            images.append(parts[0].numpy())
            if len(parts) == 2:
                labels.append(parts[1].numpy())
            if sum(len(b) for b in images) >= n:
                break
        images = np.concatenate(images)[:n]
        return images, (np.concatenate(labels)[:n] if labels else None)
