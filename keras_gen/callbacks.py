"""Callbacks around training: sample grids, atomic checkpoints, resumable backups, NaN stops, loss plots, and
TensorBoard logs that follow a run's commits (with its grids, its config and its evaluations).

The sampling callbacks work with any model of this package that has ``sample_latent(n, seed)``,
``generate_from_latent(z, labels)``, ``check_labels(labels, n)``, ``num_classes`` and ``sample_shape``.
"""

import csv
import io
import json
import math
import os
import re
import secrets
import shutil
import sys

import keras
import numpy as np

from keras_gen import checks
from keras_gen.files import atomic_write, write_json
from keras_gen.images import full_rows, save_image_grid, save_loss_plot, save_scatter

__all__ = [
    "SampleGrid",
    "ReconstructionGrid",
    "ModelCheckpoint",
    "BackupAndRestore",
    "RunBackup",
    "ShuffleEpoch",
    "StopOnNaN",
    "LossPlot",
    "ModeCollapseAlarm",
    "DiscriminatorOverfittingAlarm",
    "DigitQualityMonitor",
    "QualityGrid",
    "TensorBoard",
    "flat_hparams",
    "rewrite_events",
    "evaluation_scalars",
    "log_evaluation",
    "non_finite_logs",
]


def non_finite_logs(logs):
    """The names of the logged values that are NaN or infinite."""
    bad = []
    for name, value in (logs or {}).items():
        try:
            if not math.isfinite(float(value)):
                bad.append(name)
        except (TypeError, ValueError):
            continue
    return bad


class _EpochPNG(keras.callbacks.Callback):
    """Writes ``DIR/epoch_NNN.png`` every ``every`` epochs with finite losses (and after the last epoch), and
    copies the newest to ``DIR/latest.png``. Subclasses implement ``write(path) -> path or None``.

    ``observers`` are called as ``observer(epoch, path)`` after each PNG is written (`TensorBoard` logs it)."""

    def __init__(self, directory, every=1):
        super().__init__()
        if int(every) < 1:
            raise ValueError(f"`every` must be >= 1, got {every!r}.")
        self.directory = os.fspath(directory)
        self.every = int(every)
        self.observers = []
        self._last_epoch = None

    def write(self, path):
        raise NotImplementedError

    def on_epoch_end(self, epoch, logs=None):
        self._last_epoch = epoch
        if (epoch + 1) % self.every == 0 and not non_finite_logs(logs):
            self._write_epoch(epoch)

    def on_train_end(self, logs=None):
        if self._last_epoch is not None and (self._last_epoch + 1) % self.every:
            self._write_epoch(self._last_epoch)

    def _write_epoch(self, epoch):
        path = self.write(os.path.join(self.directory, f"epoch_{epoch + 1:03d}.png"))
        if not path:
            return
        with open(path, "rb") as src:
            data = src.read()

        def copy(tmp):
            with open(tmp, "wb") as dst:
                dst.write(data)

        atomic_write(os.path.join(self.directory, "latest.png"), copy)
        for observer in self.observers:
            observer(epoch, path)


class SampleGrid(_EpochPNG):
    """Writes ``DIR/epoch_NNN.png`` (and ``DIR/latest.png``) from a fixed batch of latents after each epoch.

    The latents (and labels, for a conditional model: class ``i % K`` in column ``i % K``) are drawn once from
    ``seed``, so successive grids show the same samples evolving. A conditional model's grid has one column per
    class and only full rows: ``n`` is rounded up to a multiple of its ``K`` classes (64 samples of 10 classes: 70).
    Image models get an image grid, 2-D point models a scatter plot (with the true mode centres when ``centers`` is
    given).

    Args:
        directory: where the PNGs go.
        n: samples per grid.
        seed: seed of the fixed latents.
        every: write every ``every`` epochs (and always after the last one).
        centers: optional ``(K, 2)`` mode centres drawn on scatter plots.
    """

    def __init__(self, directory, n=64, seed=0, every=1, centers=None):
        super().__init__(directory, every)
        self.n = int(n)
        self.seed = seed
        self.centers = centers
        self._z = None
        self._labels = None

    def on_train_begin(self, logs=None):
        n = full_rows(self.n, self.model.num_classes)
        self._z = self.model.sample_latent(n, seed=self.seed)
        self._labels = self.model.check_labels(None, n)

    def write(self, path):
        """Generates from the fixed latents and writes one PNG to ``path``."""
        samples = self.model.generate_from_latent(self._z, self._labels)
        if len(self.model.sample_shape) == 1:
            if self.model.sample_shape[0] != 2:
                return None
            return save_scatter(samples, path, centers=self.centers)
        nrow = self.model.num_classes if self.model.num_classes else None
        return save_image_grid(samples, path, nrow=nrow)


class ModelCheckpoint(keras.callbacks.Callback):
    """Saves the whole model (``.keras``, both optimizers included) after each epoch whose losses are finite.

    The file is written to a temporary name and renamed, so ``path`` always holds a complete, loadable model:
    an interrupted save or a NaN epoch leaves the last good checkpoint in place.
    """

    def __init__(self, path):
        super().__init__()
        path = os.fspath(path)
        if not path.endswith(".keras"):
            raise ValueError(f"The checkpoint path must end in '.keras', got {path!r}.")
        self.path = path

    def on_epoch_end(self, epoch, logs=None):
        if non_finite_logs(logs) or getattr(self.model, "_keras_gen_nan_stop", False):
            return
        atomic_write(self.path, self.model.save, suffix=".keras")


class BackupAndRestore(keras.callbacks.BackupAndRestore):
    """Keras's `BackupAndRestore` (weights, both optimizers' state and the epoch) with three changes: each file is
    written atomically (temporary name, then rename), the temporary files a killed write left behind are removed
    when training begins, and an epoch whose logged losses are not finite is not backed up, so resuming never
    starts from NaN weights. The backup is kept at the end of training (so a finished run can be resumed with
    more epochs) unless ``delete_checkpoint=True``.

    The weights and the epoch are two files written one after the other: a kill between them resumes with
    weights one epoch ahead of the epoch counter. `RunBackup` commits an epoch as one step; run folders use it.
    """

    def __init__(self, backup_dir, delete_checkpoint=False, **kwargs):
        super().__init__(backup_dir, delete_checkpoint=delete_checkpoint, **kwargs)
        self._skip = False

    def on_train_begin(self, logs=None):
        _remove_partial_writes(self.backup_dir)
        super().on_train_begin(logs)

    def on_epoch_end(self, epoch, logs=None):
        self._skip = bool(non_finite_logs(logs)) or getattr(self.model, "_keras_gen_nan_stop", False)
        super().on_epoch_end(epoch, logs)

    def _save_model(self):
        if self._skip:
            return
        os.makedirs(self.backup_dir, exist_ok=True)
        atomic_write(self._weights_path, lambda tmp: self.model.save_weights(tmp), suffix=".weights.h5")
        write_json(self._training_metadata_path, {"epoch": self._current_epoch, "batch": self._last_batch_seen})


EXIT_AT_ENV = "KERAS_GEN_EXIT_AT"
"""Kill tests' hook: ``POINT@N`` (a name of `WRITE_POINTS` and a number of finished epochs) ends the process at
once, as a kill would (`os._exit`, no cleanup), when the commit of epoch N (or the run, for the ``run-`` points)
reaches that point."""

WRITE_POINTS = (
    "run-config-written",  # train_run: config.json written, dataset.json not yet
    "run-dataset-written",  # train_run: dataset.json written, training not begun
    "backup-started",  # RunBackup: the commit's temporary folder made, empty
    "backup-weights-written",  # weights and optimizers written (and flushed) in it
    "backup-state-written",  # state.json (epoch, history rows) written: the folder is complete, not yet renamed
    "backup-renamed",  # renamed to epoch-N: the epoch is committed; history.csv not yet rewritten
    "backup-history-written",  # history.csv rewritten from the committed rows; older commits still there
    "backup-done",  # older commits removed
)
"""The points between the writes of a run, in order; a kill at any of them resumes at the last commit."""


def write_point(name, epochs):
    """Marks a point between two writes. Exits the process there when `EXIT_AT_ENV` names it (kill tests)."""
    if name not in WRITE_POINTS:
        raise ValueError(f"Unknown write point {name!r}. Valid: {', '.join(WRITE_POINTS)}.")
    if os.environ.get(EXIT_AT_ENV) == f"{name}@{epochs}":
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(86)


def _remove_partial_writes(directory):
    """Deletes the ``.tmp-*`` files and folders in ``directory``: what an interrupted atomic write left."""
    if not os.path.isdir(directory):
        return
    for name in os.listdir(directory):
        if name.startswith(".tmp-"):
            path = os.path.join(directory, name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.remove(path)


def _fsync(path, directory=False):
    """Flushes a file's (or a folder's entries') data to the disk."""
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _log_value(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


class RunBackup(keras.callbacks.Callback):
    """Commits every finished epoch as one atomic step, and resumes from the last commit.

    A commit is the folder ``BACKUP/epoch-NNNNNN`` (N epochs finished) holding ``model.weights.h5`` (the model's
    weights, both optimizers' variables and iteration counts, the seed generator's state) and ``state.json`` (N,
    and the logged row of every epoch so far). It is written as ``BACKUP/.tmp-epoch-NNNNNN-*``, flushed to the
    disk and renamed: the rename is atomic, so after a kill at any point the newest ``epoch-*`` folder is whole,
    and the run resumes exactly where that epoch left it. Then ``history_path`` (a CSV, one row per epoch, as
    `keras.callbacks.CSVLogger` writes it) is rewritten from the committed rows, so it always matches the
    weights, and the older commit is removed. An epoch whose logged values are not all finite is not committed.

    When training begins it removes what a killed commit left (``.tmp-*``), loads the newest commit into the
    model, makes `fit` start at the epoch after it, and rewrites ``history_path`` from its rows. A backup folder
    that Keras's `BackupAndRestore` wrote (``latest.weights.h5`` and ``training_metadata.json``) resumes too,
    its rows taken from ``history_path``; the first commit replaces it. See docs/training.md.

    Place it after the callbacks that add values to the epoch's logs, so that its rows hold them.

    Args:
        backup_dir: the folder of the commits.
        history_path: the CSV to keep in step with the commits, or None.
    """

    WEIGHTS = "model.weights.h5"
    STATE = "state.json"
    _COMMIT = re.compile(r"^epoch-(\d+)$")
    _LEGACY_WEIGHTS = "latest.weights.h5"
    _LEGACY_METADATA = "training_metadata.json"

    def __init__(self, backup_dir, history_path=None):
        super().__init__()
        self.backup_dir = os.fspath(backup_dir)
        self.history_path = None if history_path is None else os.fspath(history_path)
        self.restored_epoch = None
        self._rows = []

    # ------------------------------------------------------------------ reading
    def _commits(self):
        """``[(epochs, path)]`` of the committed folders, oldest first."""
        if not os.path.isdir(self.backup_dir):
            return []
        found = []
        for name in os.listdir(self.backup_dir):
            match = self._COMMIT.match(name)
            if match and os.path.isdir(os.path.join(self.backup_dir, name)):
                found.append((int(match.group(1)), os.path.join(self.backup_dir, name)))
        return sorted(found)

    def _legacy_epoch(self):
        """Epochs of a Keras `BackupAndRestore` backup, or None when there is none (or only its weights)."""
        metadata = os.path.join(self.backup_dir, self._LEGACY_METADATA)
        if not (os.path.isfile(metadata) and os.path.isfile(os.path.join(self.backup_dir, self._LEGACY_WEIGHTS))):
            return None
        with open(metadata) as f:
            return int(json.load(f)["epoch"])

    def committed_epoch(self):
        """How many epochs the newest commit holds (0 when none); reads only."""
        commits = self._commits()
        if commits:
            return commits[-1][0]
        return self._legacy_epoch() or 0

    def committed_weights(self):
        """The weights file of the newest commit (or of a `BackupAndRestore` backup), or None; reads only."""
        commits = self._commits()
        if commits:
            return os.path.join(commits[-1][1], self.WEIGHTS)
        legacy = os.path.join(self.backup_dir, self._LEGACY_WEIGHTS)
        return legacy if os.path.isfile(legacy) else None

    def _legacy_rows(self, epochs):
        """The rows of the epochs before ``epochs`` from a CSVLogger file, values as numbers where they are."""
        if self.history_path is None or not os.path.isfile(self.history_path):
            return []
        with open(self.history_path, newline="") as f:
            rows = []
            for row in csv.DictReader(f):
                try:
                    epoch = int(row["epoch"])
                except (KeyError, TypeError, ValueError):
                    continue
                if epoch < epochs:
                    rows.append({"epoch": epoch, **{k: _log_value(v) for k, v in row.items() if k != "epoch"}})
        return rows

    # ------------------------------------------------------------------ restoring
    def on_train_begin(self, logs=None):
        self.restore()

    def restore(self):
        """Removes what killed commits left, loads the newest commit into the model, makes `fit` start after it
        and rewrites ``history_path`` from it. Returns the number of epochs restored (0: nothing to restore)."""
        if not self.model.built:
            raise ValueError(
                f"RunBackup needs a built model (call it on a batch first); {self.model.name} is not built."
            )
        _remove_partial_writes(self.backup_dir)
        commits = self._commits()
        if commits:
            epochs, path = commits[-1]
            with open(os.path.join(path, self.STATE)) as f:
                state = json.load(f)
            self._load_weights(os.path.join(path, self.WEIGHTS))
            rows = state["history"]
        elif self._legacy_epoch() is not None:
            epochs = self._legacy_epoch()
            self._load_weights(os.path.join(self.backup_dir, self._LEGACY_WEIGHTS))
            rows = self._legacy_rows(epochs)
        else:
            epochs, rows = 0, []
        self._rows = rows
        if epochs:
            self.model._initial_epoch = epochs  # what Keras's BackupAndRestore sets: fit starts there
        self._write_history()
        self.restored_epoch = epochs
        return epochs

    def _load_weights(self, path):
        optimizer = self.model.optimizer
        if optimizer is not None and not optimizer.built:
            optimizer.build(self.model.trainable_variables)
        self.model.load_weights(path)

    def _write_history(self):
        if self.history_path is None:
            return
        if not self._rows:
            if os.path.isfile(self.history_path):  # rows of no committed epoch
                os.remove(self.history_path)
            return
        columns = sorted({key for row in self._rows for key in row} - {"epoch"})

        def write(tmp):
            with open(tmp, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=["epoch"] + columns, restval="NA")
                writer.writeheader()
                writer.writerows(self._rows)

        atomic_write(self.history_path, write)

    # ------------------------------------------------------------------ committing
    def on_epoch_end(self, epoch, logs=None):
        if non_finite_logs(logs) or getattr(self.model, "_keras_gen_nan_stop", False):
            return
        self.commit(epoch + 1, logs)

    def commit(self, epochs, logs=None):
        """Commits the model's state after ``epochs`` finished epochs, with ``logs`` as the last epoch's row."""
        row = {"epoch": epochs - 1, **{k: _log_value(v) for k, v in sorted((logs or {}).items())}}
        rows = [r for r in self._rows if r["epoch"] < epochs - 1] + [row]
        os.makedirs(self.backup_dir, exist_ok=True)
        name = f"epoch-{epochs:06d}"
        tmp = os.path.join(self.backup_dir, f".tmp-{name}-{secrets.token_hex(4)}")
        os.mkdir(tmp)
        write_point("backup-started", epochs)
        weights = os.path.join(tmp, self.WEIGHTS)
        self.model.save_weights(weights)
        _fsync(weights)
        write_point("backup-weights-written", epochs)
        state = os.path.join(tmp, self.STATE)
        with open(state, "w") as f:
            json.dump({"epoch": epochs, "history": rows}, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        _fsync(tmp, directory=True)
        write_point("backup-state-written", epochs)
        final = os.path.join(self.backup_dir, name)
        if os.path.exists(final):  # a commit of this epoch from an earlier pass: set it aside, removed below
            os.rename(final, os.path.join(self.backup_dir, f".tmp-old-{name}-{secrets.token_hex(4)}"))
        os.rename(tmp, final)
        _fsync(self.backup_dir, directory=True)
        self._rows = rows
        write_point("backup-renamed", epochs)
        self._write_history()
        write_point("backup-history-written", epochs)
        for other, path in self._commits():
            if other != epochs:
                shutil.rmtree(path)
        for legacy in (self._LEGACY_WEIGHTS, self._LEGACY_METADATA):
            if os.path.isfile(os.path.join(self.backup_dir, legacy)):
                os.remove(os.path.join(self.backup_dir, legacy))
        _remove_partial_writes(self.backup_dir)
        write_point("backup-done", epochs)


class ShuffleEpoch(keras.callbacks.Callback):
    """Sets the epoch counter of a dataset from `keras_gen.data.load_dataset` / `shuffled_batches` (a scalar
    int64 `tf.Variable` passed as their ``epoch``) to `fit`'s epoch when each epoch begins, so every epoch is
    drawn in its own order (that of its number) whatever else iterated the dataset before."""

    def __init__(self, variable):
        super().__init__()
        if getattr(variable, "dtype", None) != "int64" or len(getattr(variable, "shape", (None,))) != 0:
            raise ValueError(f"ShuffleEpoch needs a scalar int64 tf.Variable, got {variable!r}.")
        self.variable = variable

    def on_epoch_begin(self, epoch, logs=None):
        self.variable.assign(epoch)


class StopOnNaN(keras.callbacks.Callback):
    """Stops training at the first batch whose logged losses are NaN or infinite, and says what is kept.

    The checkpoint callbacks of this module then skip the broken epoch, so ``checkpoint`` (if given) still holds
    the last good model. ``stopped_at`` records ``(epoch, batch, names)`` of the stop.
    """

    def __init__(self, checkpoint=None, stream=None):
        super().__init__()
        self.checkpoint = checkpoint
        self.stream = stream
        self.stopped_at = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        bad = non_finite_logs(logs)
        if not bad or self.stopped_at is not None:
            return
        self.stopped_at = (self._epoch, batch, bad)
        self.model.stop_training = True
        self.model._keras_gen_nan_stop = True
        values = ", ".join(f"{name}={float(logs[name])}" for name in bad)
        if self.checkpoint and os.path.exists(self.checkpoint):
            kept = f"The last good checkpoint is kept: {self.checkpoint}"
        elif self.checkpoint:
            kept = "No checkpoint was written before this point."
        else:
            kept = "No checkpoint file was configured."
        message = (
            f"Training stopped: non-finite loss ({values}) at epoch {self._epoch + 1}, batch {batch + 1}. {kept}. "
            "Try a lower learning rate, a gradient penalty, or mixed precision off."
        )
        print(message, file=self.stream or sys.stderr, flush=True)

    def on_train_begin(self, logs=None):
        self.stopped_at = None
        self.model._keras_gen_nan_stop = False


class LossPlot(keras.callbacks.Callback):
    """At the end of training, plots the columns of a `keras.callbacks.CSVLogger` file (all epochs, resumed runs
    included) that hold a value as a PNG: losses on one axis, other logged values on another
    (`keras_gen.images.loss_figure`)."""

    def __init__(self, csv_path, path, title=None):
        super().__init__()
        self.csv_path = os.fspath(csv_path)
        self.path = os.fspath(path)
        self.title = title

    def on_train_end(self, logs=None):
        history = read_history(self.csv_path)
        if history:
            save_loss_plot(history, self.path, title=self.title)


def read_history(csv_path):
    """``{column: [float per epoch]}`` from a CSVLogger file (empty if missing); the epoch column is dropped."""
    if not os.path.exists(csv_path):
        return {}
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    columns = [c for c in (rows[0].keys() if rows else []) if c != "epoch"]
    history = {}
    for column in columns:
        values = []
        for row in rows:
            try:
                values.append(float(row[column]))
            except (TypeError, ValueError):
                values.append(np.nan)
        history[column] = values
    return history


class ReconstructionGrid(_EpochPNG):
    """Writes ``DIR/epoch_NNN.png`` (and ``DIR/latest.png``) after each epoch: fixed real images on the top
    rows, the model's reconstructions of them below, in the same positions.

    Works with any model that has ``reconstruct(images[, labels])`` returning images in [-1, 1] (VAEs,
    VQ-VAEs). Pass held-out images to see generalization rather than memorization.

    Args:
        directory: where the PNGs go.
        images: ``(n, H, W, C)`` real images in [-1, 1].
        labels: their labels, passed to ``reconstruct`` when the model is conditional and takes ``labels``.
        nrow: images per row (``n`` should be a multiple of it so originals and reconstructions line up).
        every: write every ``every`` epochs (and always after the last one).
    """

    def __init__(self, directory, images, labels=None, nrow=8, every=1):
        super().__init__(directory, every)
        images = np.asarray(images, dtype="float32")
        if images.ndim != 4 or images.shape[0] < 1:
            raise ValueError(f"`images` must be a non-empty batch (n, H, W, C), got shape {images.shape}.")
        if int(nrow) < 1:
            raise ValueError(f"`nrow` must be >= 1, got {nrow!r}.")
        self.images = images
        self.labels = None if labels is None else np.asarray(labels)
        self.nrow = int(nrow)

    def write(self, path):
        """Reconstructs the fixed images and writes the grid (originals above, reconstructions below)."""
        import inspect

        conditional = bool(getattr(self.model, "num_classes", None))
        takes_labels = "labels" in inspect.signature(self.model.reconstruct).parameters
        if conditional and takes_labels and self.labels is not None:
            reconstructions = self.model.reconstruct(self.images, labels=self.labels)
        else:
            reconstructions = self.model.reconstruct(self.images)
        rows = -(-self.images.shape[0] // self.nrow) * self.nrow  # pad the originals to whole rows
        originals = np.full((rows,) + self.images.shape[1:], -1.0, dtype="float32")
        originals[: self.images.shape[0]] = self.images
        grid = np.concatenate([originals, np.asarray(reconstructions, dtype="float32")], axis=0)
        return save_image_grid(grid, path, nrow=self.nrow)


class ModeCollapseAlarm(keras.callbacks.Callback):
    """Tracks how many modes a generator uses during training and warns when that falls (mode collapse).

    Every ``every`` epochs (and after the first) it draws ``n`` samples from fixed latents
    (``model.generate(n, seed=seed)``) and scores them with ``monitor``:

    - a digit classifier (anything with ``probabilities(images)``, e.g. `keras_gen.metrics.domain_classifier`):
      the entropy of the predicted-class histogram, ``H = -sum_k q_k log q_k`` in nats (log 10 = 2.30 when the
      ten digits are used equally, 0 when one digit is), logged as ``mode_entropy``;
    - a 2-D mixture name (``"ring2d"``, ``"grid2d"``): the number of modes with at least one high-quality sample
      (`keras_gen.metrics.mode_coverage`, VEEGAN / PacGAN), logged as ``modes_covered``;
    - any callable ``samples -> float`` (larger = more modes), logged as ``name``.

    The value is added to the epoch's ``logs`` (carried over on epochs it is not computed, so the column is never
    empty), so a `keras.callbacks.CSVLogger` placed *after* this callback records it. When the value falls more
    than ``drop`` below the best seen so far, it warns once (``warnings.warn`` and a printed line) until the value
    recovers; ``alarms`` lists ``(epoch, value, best)`` of every warning.

    Args:
        monitor: a classifier, a mixture name or a callable, as above.
        every: score every ``every`` epochs (>= 1).
        n: samples per score.
        drop: how far below its best the value may fall before the alarm; default 10 % of the best.
        seed: seed of the fixed latents.
        name: the log key (default ``mode_entropy`` / ``modes_covered`` / ``mode_score``).
        stream: where the line is printed (default stderr).

    Example:

    >>> alarm = ModeCollapseAlarm(keras_gen.metrics.domain_classifier("mnist"), n=1000, drop=0.3)
    >>> gan.fit(data, epochs=20, callbacks=[alarm, keras.callbacks.CSVLogger("history.csv")])
    """

    def __init__(self, monitor, every=1, n=1000, drop=None, seed=0, name=None, stream=None):
        super().__init__()
        checks.integer(every, "every", 1)
        checks.integer(n, "n", 1)
        if drop is not None and not (isinstance(drop, (int, float)) and drop > 0):
            raise ValueError(f"`drop` must be a positive number or None (10% of the best), got {drop!r}.")
        if isinstance(monitor, str):
            from keras_gen.data import mixture_modes  # raises a ValueError naming the valid mixtures
            from keras_gen.metrics.coverage import mode_coverage

            centers, sigma = mixture_modes(monitor)
            self._score = lambda samples: float(mode_coverage(samples, centers, sigma)["modes"])
            default_name = "modes_covered"
        elif hasattr(monitor, "probabilities"):
            self._score = lambda samples: _class_entropy(monitor.probabilities(samples))
            default_name = "mode_entropy"
        elif callable(monitor):
            self._score = lambda samples: float(monitor(samples))
            default_name = "mode_score"
        else:
            raise TypeError(
                "`monitor` must be a classifier with `probabilities(images)`, a mixture name ('ring2d', 'grid2d') "
                f"or a callable samples -> float; got {type(monitor).__name__}."
            )
        self.monitor = monitor
        self.every = every
        self.n = n
        self.drop = drop
        self.seed = seed
        self.name = name or default_name
        self.stream = stream
        self.history = []  # (epoch, value) of every score
        self.alarms = []  # (epoch, value, best) of every warning
        self.best = None
        self._alarmed = False
        self._last = None

    def on_train_begin(self, logs=None):
        self.history, self.alarms, self.best, self._alarmed, self._last = [], [], None, False, None

    def score(self):
        """The monitored value of the current model (``n`` samples from the fixed seed)."""
        return self._score(self.model.generate(self.n, seed=self.seed))

    def on_epoch_end(self, epoch, logs=None):
        if self._last is None or (epoch + 1) % self.every == 0:
            value = self.score()
            self.history.append((epoch, value))
            self._last = value
            self._check(epoch, value)
        if logs is not None:
            logs[self.name] = self._last

    def _check(self, epoch, value):
        import warnings

        if not math.isfinite(value):
            return
        if self.best is None or value > self.best:
            self.best = value
        allowed = self.drop if self.drop is not None else 0.1 * abs(self.best)
        if value < self.best - allowed:
            if not self._alarmed:
                self._alarmed = True
                self.alarms.append((epoch, value, self.best))
                message = (
                    f"Mode collapse? {self.name} fell to {value:.4g} at epoch {epoch + 1} from its best "
                    f"{self.best:.4g} "
                    f"(allowed drop {allowed:.4g}). Try packing (PacGAN), a gradient penalty or R1, a lower learning "
                    "rate, or the last checkpoint before the fall."
                )
                warnings.warn(message, RuntimeWarning, stacklevel=2)
                print(message, file=self.stream or sys.stderr, flush=True)
        else:
            self._alarmed = False


def _class_entropy(probabilities):
    """Entropy (nats) of the histogram of argmax classes of ``probabilities`` (N, K)."""
    probabilities = np.asarray(probabilities)
    counts = np.bincount(np.argmax(probabilities, axis=1), minlength=probabilities.shape[1])  # (K,)
    q = counts[counts > 0] / counts.sum()
    return float(-np.sum(q * np.log(q)))


# ---------------------------------------------------------------------------------------------------- TensorBoard
EVALUATION_SETTINGS = (
    "num_samples", "num_real", "num_modes", "subset_size", "k", "splits", "real_splits", "permutation_seed", "sigma",
    "threshold",
)
"""Numbers of an `evaluate` report's metrics that say how they were computed, not what they found: not logged."""


class TensorBoard(keras.callbacks.TensorBoard):
    """Keras's `TensorBoard` callback, for runs that resume, with the run's PNG grids and its configuration.

    Keras's callback writes ``LOG_DIR/train/`` (``epoch_NAME`` at step ``epoch``, counted from 0, for every value
    `fit` logs, and ``batch_NAME`` every ``update_freq`` batches) and ``LOG_DIR/validation/`` (the ``val_``
    values). This one changes four things:

    - Batch summaries are numbered by the training steps done since the run began (``epoch * steps_per_epoch +
      batch + 1``), not by the batch calls since `fit` began, so a resumed run continues the axis instead of
      starting it again at 0. With ``steps_per_execution`` > 1 a call is logged when it passes a multiple of
      ``update_freq``. A batch summary holds what `fit` logs after the batch (for this package's models, the
      running means of the epoch so far, as the progress bar shows them).
    - With ``backup`` (the run's `RunBackup`, placed *after* this callback) the logs follow its commits: each
      epoch's summaries are flushed to the disk when it ends, before it is committed, and when training begins
      the summaries of the epochs after the last commit are removed (an epoch that a kill or a NaN stop
      interrupted, which the resumed run trains again). No committed epoch is then missing or logged twice.
    - ``images``: ``{tag: callback}`` of `SampleGrid` / `ReconstructionGrid` callbacks. Each PNG they write is
      logged as it is (its bytes; nothing is rendered twice) as the image summary ``tag`` at step ``epoch`` in
      ``LOG_DIR/train/``.
    - ``hparams``: ``{name: value}`` (`flat_hparams` of a config), written for the hparams plugin to ``LOG_DIR``
      when training begins, replacing what an earlier training of the run wrote there. The plugin takes the
      scalar tags of ``LOG_DIR``'s subfolders as the session's metrics (``train``'s ``epoch_d_loss``, ``eval``'s
      ``fid``: `log_evaluation`) and shows the last value of each.

    The training graph is not written unless ``write_graph=True``. A training opens its log files (and writes its
    hparams) with its first summary, at its first logged step or at the end of its first epoch: one that fails
    before (a resumed run interrupted in its first steps) leaves the logs as they were.

    Args:
        log_dir: the folder of the logs (``RUN/logs`` in a run folder).
        update_freq: training steps between batch summaries, or ``"epoch"`` for epoch summaries only.
        images: ``{tag: callback}``, as above; more with `add_images`.
        hparams: ``{name: value}``, as above; values are numbers, strings or booleans.
        backup: the `RunBackup` whose commits the logs follow, or None.
        **kwargs: Keras's (``histogram_freq``, ``write_graph``, ``profile_batch``, ...).

    Example:

    >>> grid = SampleGrid("run/samples")
    >>> board = TensorBoard("run/logs", update_freq=50, images={"samples": grid}, hparams=flat_hparams(config))
    >>> gan.fit(data, epochs=10, callbacks=[board, grid])  # then: tensorboard --logdir run/logs
    """

    def __init__(self, log_dir, update_freq=50, images=None, hparams=None, backup=None, write_graph=False, **kwargs):
        if update_freq not in ("epoch", "batch"):
            checks.integer(update_freq, "update_freq", 1)
        super().__init__(log_dir=os.fspath(log_dir), update_freq=update_freq, write_graph=write_graph, **kwargs)
        self.images = {}
        for tag, callback in (images or {}).items():
            self.add_images(tag, callback)
        self.hparams = dict(hparams) if hparams else None
        self.backup = backup
        self._epoch = 0
        self._steps_done = 0
        self._logged = False
        self._training = False
        self._started = False
        self._context = None

    def add_images(self, tag, callback):
        """Logs every PNG ``callback`` (a `SampleGrid` or `ReconstructionGrid`) writes as the image ``tag``."""
        if not isinstance(callback, _EpochPNG):
            raise TypeError(
                f"`images` takes SampleGrid or ReconstructionGrid callbacks; {tag!r} is a {type(callback).__name__}."
            )
        self.images[tag] = callback
        callback.observers.append(lambda epoch, path: self._log_png(tag, epoch, path))

    # ------------------------------------------------------------------ training
    def _keras_batches(self):
        """Whether Keras's own batch hooks run: its steps-per-second timing and its profiling need them."""
        return self.write_steps_per_second or self._should_trace

    def on_train_begin(self, logs=None):
        self._training = True
        self._started = False
        self._context = None
        self._steps_done = 0
        if self.backup is not None:
            self._rewind(self.backup.committed_epoch())
        if self._keras_batches():
            self._start()
            super().on_train_begin(logs)
        # Else Keras's writer is opened with the first summary (`_start`): a training that fails before it writes
        # one (a resumed run interrupted in its first steps) leaves the logs as they were.
        self._global_train_batch = 0
        self._previous_epoch_iterations = 0

    def _start(self):
        """Once a training, before its first summary: the hparams session."""
        if not self._started:
            self._started = True
            if self.hparams:
                self._write_hparams()

    def on_train_end(self, logs=None):
        if self._keras_batches():
            super().on_train_end(logs)
        else:
            if self._context is not None:
                for context in reversed(self._context):
                    context.__exit__(None, None, None)
                self._context = None
            self._close_writers()
        self._training = False

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        super().on_epoch_begin(epoch, logs)

    def on_train_batch_begin(self, batch, logs=None):
        steps = (self.params or {}).get("steps")
        per_call = int(getattr(self.model, "steps_per_execution", 1) or 1)
        if steps:
            start = self._epoch * steps + batch  # training steps done before this call
            end = start + min(per_call, steps - batch)  # and after it
        else:  # an epoch of unknown length: counted from this fit's start
            start = self._steps_done
            end = start + per_call
        self._steps_done = end
        self._logged = self.update_freq != "epoch" and end // self.update_freq > start // self.update_freq
        if self._keras_batches():
            self._global_train_batch = end - 1  # Keras adds 1
            super().on_train_batch_begin(batch, logs)
            return
        # Keras leaves and enters the writer's context around every call, and leaving it flushes the writer (~0.25
        # ms a call on a CPU): here it is entered once, at the first logged call, and then only its step moves.
        self._global_train_batch = end
        if self._context is None and self._logged:
            self._start()
            self._context = self._writer_context(self._train_writer, end)
            for context in self._context:
                context.__enter__()
        elif self._context is not None:
            self.summary.experimental.set_step(end)

    def on_train_batch_end(self, batch, logs=None):
        # Keras calls tf.summary.scalar for every logged value after every call and lets `record_if` drop them
        # (~0.15 ms each on a CPU): the calls that are not logged skip it.
        if self._logged or self._should_write_train_graph or self._keras_batches():
            super().on_train_batch_end(batch, logs)

    def _writer_context(self, writer, step):
        # What is written while training (Keras's batch summaries, a train_step's own) is recorded on the calls
        # that pass a multiple of update_freq; Keras's `step % update_freq == 0` misses them when a call takes
        # several steps.
        return writer.as_default(step), self.summary.record_if(lambda: self._logged)

    def _push_writer(self, writer, step):
        if self.update_freq == "epoch" or writer is not self._writers.get("train"):
            return super()._push_writer(writer, step)
        context = self._writer_context(writer, step)
        self._prev_summary_state.append(context)
        for part in context:
            part.__enter__()

    def on_test_begin(self, logs=None):
        self._start()
        super().on_test_begin(logs)

    def on_epoch_end(self, epoch, logs=None):
        # Keras writes the epoch's summaries inside the last batch call's `record_if`: with an integer update_freq
        # they are lost unless that call is a logged one (tensorflow/tensorboard#4975).
        self._start()
        with self.summary.record_if(True):
            super().on_epoch_end(epoch, logs)
        for writer in self._writers.values():  # on the disk before the epoch is committed
            writer.flush()

    def _close_writers(self):
        super()._close_writers()
        self._writers = {}  # a PNG written after training (a grid's last epoch) opens a new writer

    # ------------------------------------------------------------------ what Keras does not log
    def _rewind(self, epochs):
        """Removes the summaries of the epochs from ``epochs`` on (counted from 0) from the training and validation
        logs, and what killed rewrites left. Batch summaries are kept when the epochs' length is unknown."""
        steps = (self.params or {}).get("steps")

        def keep(tag, step):
            if tag.startswith("epoch_") or tag in self.images:
                return step < epochs
            return not steps or step <= epochs * steps

        for folder in ("train", "validation"):
            directory = os.path.join(self.log_dir, folder)
            _remove_partial_writes(directory)
            rewrite_events(directory, keep)

    def _write_hparams(self):
        import tensorflow as tf
        from tensorboard.plugins.hparams import api as hparams_api

        os.makedirs(self.log_dir, exist_ok=True)
        _remove_partial_writes(self.log_dir)
        earlier = _event_files(self.log_dir)
        writer = tf.summary.create_file_writer(self.log_dir)
        with writer.as_default():
            hparams_api.hparams(self.hparams)
        writer.close()
        for path in earlier:
            os.remove(path)

    def _log_png(self, tag, epoch, path):
        import tensorflow as tf
        from PIL import Image
        from tensorboard.plugins.image import metadata

        with open(path, "rb") as f:
            data = f.read()
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
        writer = self._train_writer
        # The image plugin's tensor: [width, height, encoded image], as tf.summary.image writes it.
        tensor = tf.constant([str(width).encode(), str(height).encode(), data])
        with writer.as_default(), tf.summary.record_if(True):
            tf.summary.write(tag, tensor, step=epoch, metadata=metadata.create_summary_metadata(tag, ""))
        writer.flush()
        if not self._training:
            self._close_writers()


def flat_hparams(config, prefix=""):
    """``{dotted.name: value}`` of a nested config dict, as the hparams plugin takes it.

    ``{"networks": {"generator": {"width": 64}}}`` gives ``{"networks.generator.width": 64}``. Numbers, strings and
    booleans stay as they are, lists become their JSON text, and None (a default left unset) is left out.
    """
    flat = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flat_hparams(value, f"{name}."))
        elif value is None:
            continue
        elif isinstance(value, (bool, int, float, str)):
            flat[name] = value
        else:
            flat[name] = json.dumps(value, default=str)
    return flat


def _event_files(directory):
    """The TensorBoard event files directly in ``directory``, in the order TensorBoard reads them."""
    if not os.path.isdir(directory):
        return []
    return [os.path.join(directory, name) for name in sorted(os.listdir(directory)) if "tfevents" in name
            and not name.startswith(".")]


def rewrite_events(directory, keep):
    """Rewrites the event files in ``directory``, keeping the summary values for which ``keep(tag, step)`` is true.

    Events that hold no summary (a file's version record, a graph) are kept; a record cut short (a process killed
    while writing it) and what follows it are dropped. Each changed file is replaced atomically under its own name,
    so TensorBoard reads the files in the same order.

    Returns:
        The number of summary values dropped.
    """
    import tensorflow as tf

    dropped = 0
    for path in _event_files(directory):
        records, cut, dropped_here = [], False, 0
        try:
            for record in tf.data.TFRecordDataset(path):
                records.append(record.numpy())
        except tf.errors.DataLossError:
            cut = True
        kept = []
        for record in records:
            event = tf.compat.v1.Event.FromString(record)
            if event.HasField("summary"):
                values = [value for value in event.summary.value if keep(value.tag, event.step)]
                if len(values) < len(event.summary.value):
                    dropped_here += len(event.summary.value) - len(values)
                    if not values:
                        continue
                    del event.summary.value[:]
                    event.summary.value.extend(values)
                    record = event.SerializeToString()
            kept.append(record)
        dropped += dropped_here
        if cut or dropped_here:

            def write(tmp, kept=kept):
                with tf.io.TFRecordWriter(tmp) as writer:
                    for record in kept:
                        writer.write(record)

            atomic_write(path, write)
    return dropped


def evaluation_scalars(report):
    """``{tag: value}`` of the numbers an `evaluate` report found: a metric's ``value`` under the metric's name
    (``fid``), its other numbers as ``metric/name`` (``kid/mean``, ``coverage/modes``). The settings they were
    computed with (`EVALUATION_SETTINGS`), lists and undefined values (None) are left out."""
    scalars = {}
    for metric, values in report["metrics"].items():
        for key, value in values.items():
            if key in EVALUATION_SETTINGS or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            scalars[metric if key == "value" else f"{metric}/{key}"] = float(value)
    return scalars


def log_evaluation(log_dir, report, step):
    """Writes the numbers of an `evaluate` report (`evaluation_scalars`) as scalars at ``step`` (the epoch, counted
    from 0, as the training summaries are) to ``LOG_DIR/eval``. What an earlier evaluation wrote at that step for the
    report's metrics is removed first (a number it had and this one has not, such as an undefined KL, included).
    Returns ``{tag: value}`` written."""
    import tensorflow as tf

    scalars = evaluation_scalars(report)
    metrics = set(report["metrics"])
    directory = os.path.join(os.fspath(log_dir), "eval")
    _remove_partial_writes(directory)
    rewrite_events(directory, lambda tag, at: at != step or tag.split("/")[0] not in metrics)
    writer = tf.summary.create_file_writer(directory)
    with writer.as_default(), tf.summary.record_if(True):
        for tag, value in scalars.items():
            tf.summary.scalar(tag, value, step=step)
    writer.close()
    return scalars


# ---------------------------------------------------------------------------------------- discriminator overfitting
class DiscriminatorOverfittingAlarm(keras.callbacks.Callback):
    """Tracks whether a GAN's discriminator memorizes its training images, and warns when it does.

    On small data the discriminator learns its training images by heart: it calls them real and everything else
    fake, held-out real images included, and the generator is left chasing that lookup table (the samples stop
    improving or degrade while ``d_loss`` falls towards 0). The signal watched is the overfitting heuristic of ADA
    (Karras et al. 2020, https://arxiv.org/abs/2006.06676), the mean sign of the discriminator's logits on real
    training images, and the same on held-out real images (the diagnostic of the DiffAugment paper, Zhao et al.
    2020, https://arxiv.org/abs/2006.10738, Figure 1: the discriminator's verdicts on training and validation
    images part ways as it overfits)::

        r_t    = E_{x in training images}[sign D(x)]       in [-1, 1]; -> 1 as D memorizes them
        r_held = E_{x in held-out real images}[sign D(x)]  stays near r_t while D generalizes, falls as it overfits

    Every ``every`` epochs (and after the first) it scores ``n`` images of each set, fixed for the whole run, the
    way training shows them to the discriminator: in batches of ``batch_size`` in training mode (batch statistics;
    the discriminator's moving statistics and other state are put back afterwards) and, for a model built with
    ``augment``, through its augmentation, with draws fixed by ``seed`` and the same for both sets. The values go
    into the epoch's ``logs`` as ``r_t`` and ``r_held`` (carried over on epochs they are not computed), so a
    `keras.callbacks.CSVLogger` placed *after* this callback records them.

    The alarm: ``r_t >= threshold`` and, with held-out images, ``r_t - r_held >= gap`` (never with ``threshold=None``:
    the values are logged, nothing is judged). It warns once
    (``warnings.warn`` and a printed line, naming what to try) until the condition clears; ``alarms`` lists
    ``(epoch, r_t, r_held)`` of every warning. Without held-out images only ``r_t`` decides, which also rises on a
    healthy run whose discriminator is ahead for a while: hold out some images where you can.

    Args:
        images: the training images ``(N, H, W, C)`` (or ``(images, labels)`` for a conditional GAN).
        held_out: real images the model never trains on, in the same form, or None.
        every: score every ``every`` epochs (>= 1).
        n: images scored from each set (all of a smaller set): a fixed random subset drawn with ``seed``.
        batch_size: images per discriminator call (use the training batch size: batch statistics depend on it).
        threshold: the ``r_t`` from which the discriminator counts as sure of its training images, or None for no
            alarm.
        gap: how far ``r_held`` must fall below ``r_t`` (with held-out images).
        seed: seed of the subsets and of the augmentation's draws.
        stream: where the line is printed (default stderr).

    Example:

    >>> alarm = DiscriminatorOverfittingAlarm(x_train, held_out=x_test, batch_size=64)
    >>> gan.fit(data, epochs=50, callbacks=[alarm, keras.callbacks.CSVLogger("history.csv")])
    """

    DEFAULT_THRESHOLD = 0.8
    """``threshold`` with held-out images (the gap decides with it)."""
    ALONE_THRESHOLD = None
    """The ``threshold`` `keras-gen train` uses without held-out images (an image folder): none, ``r_t`` is only
    logged. ``r_t`` alone does not separate memorizing from winning: a healthy run on all 4,500 MNIST training digits
    read r_t 0.99 (and 0.96 on held-out digits) where memorized 500 read 0.97-1.00 (docs/small_data.md)."""

    def __init__(self, images, held_out=None, every=1, n=500, batch_size=64, threshold=DEFAULT_THRESHOLD, gap=0.3,
                 seed=0, stream=None):
        super().__init__()
        checks.integer(every, "every", 1)
        checks.integer(n, "n", 1)
        checks.integer(batch_size, "batch_size", 1)
        checks.integer(seed, "seed", 0)
        bounded = [("gap", gap, 0, 2)] + ([] if threshold is None else [("threshold", threshold, -1, 1)])
        for name, value, low, high in bounded:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low < value <= high:
                raise ValueError(f"`{name}` must be a number in ({low}, {high}], got {value!r}.")
        self.images = self._subset(images, "images", n, seed)
        self.held_out = None if held_out is None else self._subset(held_out, "held_out", n, seed + 1)
        if self.held_out is not None and self.held_out[0].shape[1:] != self.images[0].shape[1:]:
            raise ValueError(
                f"`held_out` images have shape {self.held_out[0].shape[1:]}, the training images "
                f"{self.images[0].shape[1:]}: they must be images of the same kind."
            )
        self.every = every
        self.n = n
        self.batch_size = batch_size
        self.threshold = None if threshold is None else float(threshold)
        self.gap = float(gap)
        self.seed = seed
        self.stream = stream
        self.history = []  # (epoch, r_t, r_held) of every score
        self.alarms = []  # (epoch, r_t, r_held) of every warning
        self._alarmed = False
        self._last = None

    @staticmethod
    def _subset(images, name, n, seed):
        """``(images, labels or None)`` as NumPy: ``n`` rows drawn with ``seed`` (all of them, shuffled, if fewer)."""
        labels = None
        if isinstance(images, tuple):
            if len(images) != 2:
                raise ValueError(f"`{name}` must be images or an (images, labels) pair, got a tuple of {len(images)}.")
            images, labels = images
        images = np.asarray(images, dtype=np.float32)
        if images.ndim != 4 or len(images) == 0:
            raise ValueError(f"`{name}` must be a non-empty batch of images (N, H, W, C), got shape {images.shape}.")
        rows = np.random.default_rng(seed).permutation(len(images))[:n]
        return images[rows], None if labels is None else np.asarray(labels, dtype=np.int32)[rows]

    def on_train_begin(self, logs=None):
        if not hasattr(self.model, "discriminator"):
            raise TypeError(
                f"DiscriminatorOverfittingAlarm watches a GAN's discriminator; {type(self.model).__name__} has none."
            )
        if (self.images[1] is None) != (getattr(self.model, "num_classes", None) is None):
            raise ValueError(
                "DiscriminatorOverfittingAlarm: a conditional GAN needs (images, labels) pairs, an unconditional one "
                "images only."
            )
        self.history, self.alarms, self._alarmed, self._last = [], [], False, None

    def _mean_sign(self, images, labels):
        """E[sign D(x)] over ``images`` as training shows them to D; D's non-trainable state is put back."""
        from keras_gen import augment as augment_lib

        gan = self.model
        discriminator = gan.discriminator
        state = [np.array(keras.ops.convert_to_numpy(v)) for v in discriminator.non_trainable_variables]
        policy = getattr(gan, "augment", None)
        signs = []
        # Whole batches only, as training shows them (a packed discriminator needs them), when there is one.
        stop = len(images) - len(images) % self.batch_size if len(images) >= self.batch_size else len(images)
        try:
            for i, start in enumerate(range(0, stop, self.batch_size)):
                batch = keras.ops.convert_to_tensor(images[start : start + self.batch_size])  # (b, H, W, C)
                if policy:
                    batch = augment_lib.diff_augment(batch, policy, seed=[self.seed, i])
                if labels is not None:
                    batch = [batch, keras.ops.convert_to_tensor(labels[start : start + self.batch_size])]
                logits = keras.ops.convert_to_numpy(gan.discriminate(batch, training=True))
                signs.append(np.sign(np.asarray(logits, dtype=np.float64)).reshape(-1))
        finally:
            for variable, value in zip(discriminator.non_trainable_variables, state):
                variable.assign(value)
        return float(np.mean(np.concatenate(signs)))

    def score(self):
        """``(r_t, r_held)`` of the current discriminator (``r_held`` None without held-out images)."""
        r_t = self._mean_sign(*self.images)
        r_held = None if self.held_out is None else self._mean_sign(*self.held_out)
        return r_t, r_held

    def on_epoch_end(self, epoch, logs=None):
        if self._last is None or (epoch + 1) % self.every == 0:
            r_t, r_held = self.score()
            self.history.append((epoch, r_t, r_held))
            self._last = (r_t, r_held)
            self._check(epoch, r_t, r_held, logs or {})
        if logs is not None:
            logs["r_t"] = self._last[0]
            if self.held_out is not None:
                logs["r_held"] = self._last[1]

    def overfitting(self, r_t, r_held):
        """Whether ``(r_t, r_held)`` raises the alarm."""
        if self.threshold is None:
            return False
        return r_t >= self.threshold and (r_held is None or r_t - r_held >= self.gap)

    def _check(self, epoch, r_t, r_held, logs):
        import warnings

        if not self.overfitting(r_t, r_held):
            self._alarmed = False
            return
        if self._alarmed:
            return
        self._alarmed = True
        self.alarms.append((epoch, r_t, r_held))
        held = "" if r_held is None else f" but {r_held:.2f} on held-out real images"
        d_loss = logs.get("d_loss")
        d_loss = "" if d_loss is None else f", d_loss {float(d_loss):.3g}"
        message = (
            f"The discriminator is overfitting its training images at epoch {epoch + 1}: r_t = E[sign D(x)] = "
            f"{r_t:.2f} on training images{held}{d_loss}. Try DiffAugment (GAN(augment='color,translation,cutout'); "
            "keras-gen train --set model.augment=color,translation,cutout), R1 (model.r1_weight=10), fewer "
            "discriminator steps (model.d_steps), a lower discriminator learning rate (d_lr), or more data "
            "(docs/small_data.md)."
        )
        warnings.warn(message, RuntimeWarning, stacklevel=2)
        print(message, file=self.stream or sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------------- digit quality
def _as_saved(model):
    """A context in which ``model`` samples as the run will save it: with the generator's weight average
    (``GAN.averaged_weights``) where the model keeps one, else as it is."""
    import contextlib

    keeps = getattr(model, "averaged_weights", None) is not None and getattr(model, "keeps_generator_average", False)
    return model.averaged_weights() if keeps else contextlib.nullcontext()


class DigitQualityMonitor(keras.callbacks.Callback):
    """Scores the generator's digits every ``every`` epochs (and after the last) and adds the score to the epoch's
    logs, so that history.csv and TensorBoard (``epoch_quality_confident``, ...) hold it.

    The score is `keras_gen.metrics.DigitQuality` of ``n`` samples from a fixed seed (``model.generate(n, seed)``)
    against the dataset's held-out digits (docs/evaluation.md, "Digit quality"):

    - ``quality_confident``: the share of samples the digit classifier reads with confidence >= 0.9;
    - ``quality_real_confident``: the same share of the real held-out digits (what a perfect generator scores);
    - ``quality_class_kl``: the KL of the histogram of the classes read to uniform (0: every digit equally often);
    - ``quality_fid``: the FID under the classifier's features (``n`` samples against the held-out digits: compare it
      within a run or between runs with the same ``n``; `evaluate` draws 5,000).

    Place it before the callbacks that read the logs (`TensorBoard`, `RunBackup`). Epochs it does not score log none
    of these values (history.csv: ``NA``). A model that keeps a moving average of its generator's weights
    (``GAN.averaged_weights``) is scored with the average: the generator the run saves. Only models that sample in
    one pass of a network over a continuous latent (operation ``latent_space``: GANs, VAEs) are scored; an
    autoregressive sampler (PixelCNN, a VQ-VAE's prior) would take longer than an epoch, and logs nothing. Samples
    that are not finite are not scored. `caption` states the latest score in one line (`QualityGrid` writes it
    under the sample grid).

    Args:
        quality: a `keras_gen.metrics.DigitQuality`, or the name of a digit dataset (``"mnist"``, ``"digits"``,
            ``"stacked_mnist"``) to build one for (its default classifier).
        every: score every ``every`` epochs (>= 1), and after the last epoch.
        n: samples per score.
        seed: seed of the samples' latents.

    Attributes:
        history: ``[(epoch, score)]`` of every score (epochs counted from 0).
        latest: the last ``(epoch, score)``, or None.

    Example:

    >>> monitor = DigitQualityMonitor("mnist", n=1000)
    >>> gan.fit(data, epochs=10, callbacks=[monitor, keras.callbacks.CSVLogger("history.csv")])
    >>> monitor.caption()
    'epoch 10: 94% confident digits (real 93%), class KL 0.03, FID 4.1'
    """

    DEFAULT_N = 1000
    LOGS = {
        "quality_confident": "confident",
        "quality_real_confident": "real_confident",
        "quality_class_kl": "class_kl",
        "quality_fid": "fid",
    }
    """The log key of each number of the score."""

    def __init__(self, quality, every=1, n=DEFAULT_N, seed=0):
        super().__init__()
        from keras_gen.metrics.quality import DigitQuality

        checks.integer(every, "every", 1)
        checks.integer(n, "n", 2)
        checks.integer(seed, "seed", 0)
        if isinstance(quality, str):
            quality = DigitQuality(quality)
        elif not isinstance(quality, DigitQuality):
            raise TypeError(f"`quality` must be a keras_gen.metrics.DigitQuality or a digit dataset's name; received "
                            f"{type(quality).__name__}.")
        self.quality = quality
        self.every = int(every)
        self.n = int(n)
        self.seed = int(seed)
        self.history = []
        self.latest = None
        self._active = False

    @classmethod
    def for_dataset(cls, dataset, info=None, **kwargs):
        """A monitor for a run of ``dataset`` whose examples have the shape ``info["shape"]``, or None when its
        samples have no digit quality (not a digit dataset, or resized or recoloured digits)."""
        from keras_gen import data
        from keras_gen.metrics.quality import QUALITY_DATASETS

        if dataset not in QUALITY_DATASETS:
            return None
        if info is not None and tuple(info.get("shape", ())) != tuple(data.dataset_info(dataset)["shape"]):
            return None
        return cls(dataset, **kwargs)

    def on_train_begin(self, logs=None):
        self.history, self.latest = [], None
        self._active = "latent_space" in getattr(self.model, "operations", ())

    def score(self):
        """The digit quality of the current model: ``n`` samples from the fixed seed (with the generator's weight
        average when the model keeps one), or None when they are not finite."""
        with _as_saved(self.model):
            samples = self.model.generate(self.n, seed=self.seed)
        if not np.all(np.isfinite(samples)):
            return None
        return self.quality(np.clip(samples, -1.0, 1.0))

    def on_epoch_end(self, epoch, logs=None):
        last = (self.params or {}).get("epochs") == epoch + 1
        if not self._active or ((epoch + 1) % self.every and not last):
            return
        score = self.score()
        if score is None:
            return
        self.latest = (epoch, score)
        self.history.append(self.latest)
        if logs is not None:
            logs.update({name: float(score[key]) for name, key in self.LOGS.items()})

    def caption(self):
        """``"epoch E: 94% confident digits (real 93%), class KL 0.03, FID 4.1"`` of the latest score (epochs
        counted from 1), or None before the first."""
        from keras_gen.metrics.quality import format_quality

        if self.latest is None:
            return None
        epoch, score = self.latest
        return format_quality(score, epoch=epoch + 1)


class QualityGrid(SampleGrid):
    """A `SampleGrid` with its monitor's digit quality under it: each PNG gets a caption strip stating the latest
    score of ``monitor`` (`DigitQualityMonitor.caption`; also in the PNG's ``Caption`` text chunk,
    `keras_gen.images.add_caption`). Place the monitor before this grid, so that an epoch's grid states that
    epoch's score.

    The grid is drawn from what the monitor scores: the generator's weight average when the model keeps one
    (``GAN.averaged_weights``), the generator the run saves.

    Args:
        directory: where the PNGs go.
        monitor: the `DigitQualityMonitor` whose score the caption states.
        n, seed, every: as for `SampleGrid`.
    """

    def __init__(self, directory, monitor, n=64, seed=0, every=1):
        super().__init__(directory, n=n, seed=seed, every=every)
        if not isinstance(monitor, DigitQualityMonitor):
            raise TypeError(f"`monitor` must be a DigitQualityMonitor; received {type(monitor).__name__}.")
        self.monitor = monitor

    def write(self, path):
        """Generates from the fixed latents, writes the grid to ``path`` and adds the caption under it."""
        from keras_gen.images import add_caption

        with _as_saved(self.model):
            path = super().write(path)
        caption = self.monitor.caption()
        if path and caption:
            add_caption(path, caption)
        return path
