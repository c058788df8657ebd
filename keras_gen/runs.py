"""Run folders: train a `RunConfig` into a folder that holds everything needed to reproduce and reuse it.

Layout of a run folder::

    RUN/config.json              the resolved RunConfig (rebuild the run from it)
    RUN/dataset.json             the dataset's shape, classes and value range
    RUN/model.keras              the final model (both optimizers included)
    RUN/checkpoints/last.keras   the last epoch with finite losses (written atomically)
    RUN/backup/                  BackupAndRestore state: `--resume` continues from here
    RUN/samples/epoch_NNN.png    a grid (or scatter plot) per epoch from fixed latents; latest.png
    RUN/reconstructions/...      models with `reconstruct` (VAEs): held-out images above their reconstructions
    RUN/history.csv, losses.png  logged losses per epoch, and their plot
"""

import contextlib
import dataclasses
import json
import os
import shutil
import sys
import time

from keras_gen.images import atomic_write
from keras_gen.presets import RunConfig, build_model, run_dir_config

__all__ = ["train_run", "load_run", "prepare_run_dir", "held_out_images", "RunResult"]

MODEL_FILE = "model.keras"
CHECKPOINT_FILE = os.path.join("checkpoints", "last.keras")


class RunResult(dict):
    """What `train_run` did: ``run_dir``, ``model``, ``history`` (this call's epochs), ``epochs_done``,
    ``seconds``, ``stopped_on_nan`` and the paths written. A dict, so it prints and serializes plainly."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError as exc:
            raise AttributeError(name) from exc


def prepare_run_dir(run_dir, resume=False, overwrite=False):
    """Checks what may be done with ``run_dir`` and makes it ready.

    A folder that exists and is not empty is never overwritten silently: it needs ``resume=True`` (continue a
    run) or ``overwrite=True`` (start again; only a keras-gen run folder, one with a ``config.json``, is
    deleted). Returns the absolute path.
    """
    run_dir = os.path.abspath(os.fspath(run_dir))
    if resume and overwrite:
        raise ValueError("Choose one of `resume` and `overwrite`, not both.")
    exists = os.path.isdir(run_dir) and bool(os.listdir(run_dir))
    if resume:
        run_dir_config(run_dir)  # raises a clear error if this is not a run folder
        return run_dir
    if exists:
        if not overwrite:
            raise FileExistsError(
                f"Run folder {run_dir} already exists and is not empty. Pass --resume to continue it, "
                "--overwrite to start again, or choose another --out."
            )
        if not os.path.isfile(os.path.join(run_dir, "config.json")):
            raise FileExistsError(
                f"Refusing to overwrite {run_dir}: it is not a keras-gen run folder (no config.json)."
            )
        shutil.rmtree(run_dir)
    os.makedirs(run_dir, exist_ok=True)
    return run_dir


@contextlib.contextmanager
def dtype_policy(name):
    """Sets the global Keras dtype policy (e.g. ``"mixed_float16"``) for the block, then restores it."""
    import keras

    previous = keras.config.dtype_policy()
    if name:
        keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _write_json(path, data):
    text = json.dumps(data, indent=2, sort_keys=True, default=str) + "\n"

    def write(tmp):
        with open(tmp, "w") as f:
            f.write(text)

    atomic_write(path, write)


def train_run(config, run_dir, resume=False, overwrite=False, verbose=None, extra_callbacks=()):
    """Trains the model of ``config`` into ``run_dir`` (see the module docstring for the layout).

    Args:
        config: a `RunConfig`. With ``resume=True`` it may be ``None`` (the folder's own config is used) or the
            folder's config with a larger ``epochs``.
        run_dir: the run folder.
        resume: continue a run from its last backup (weights, both optimizers, epoch).
        overwrite: delete an existing run folder first.
        verbose: Keras ``fit`` verbosity; default a progress bar on a terminal, a line per epoch otherwise.
        extra_callbacks: more Keras callbacks.

    Returns:
        A `RunResult`.
    """
    import keras

    from keras_gen import callbacks as cbs
    from keras_gen import data as data_lib
    from keras_gen import distribute

    requested = RunConfig.load(os.path.join(run_dir, "config.json")) if resume and config is None else config
    if requested is None:
        raise ValueError("A config is needed to start a new run.")
    # The strategy comes first: MultiWorkerMirroredStrategy must exist before TensorFlow runs anything, and a
    # non-chief worker writes its own scratch folder.
    strategy = distribute.make_strategy(requested.strategy)
    run_dir = distribute.worker_run_dir(os.path.abspath(os.fspath(run_dir)), strategy)
    if resume and not os.path.exists(os.path.join(run_dir, "config.json")) and not distribute.is_chief(strategy):
        resume = False  # a worker that never wrote its scratch folder starts it; the chief's backup rules
    run_dir = prepare_run_dir(run_dir, resume=resume, overwrite=overwrite)
    config_path = os.path.join(run_dir, "config.json")
    if resume:
        stored = RunConfig.load(config_path)
        if config is not None:
            changed = {k for k, v in config.to_dict().items() if k != "epochs" and stored.to_dict()[k] != v}
            if changed:
                raise ValueError(
                    f"--resume continues the stored config; only `epochs` may change, but {sorted(changed)} differ."
                )
            stored.epochs = config.epochs
        config = stored
    config.validate()
    config.save(config_path)
    build_config = config
    if config.jit_compile:
        supported, reason = distribute.jit_supported(strategy)
        if not supported:
            print(f"keras-gen: {reason}.", file=sys.stderr)
            build_config = dataclasses.replace(config, jit_compile=False)

    info = data_lib.dataset_info(config.dataset, data_dir=config.data_dir)
    _write_json(os.path.join(run_dir, "dataset.json"), info)
    dataset = data_lib.load_dataset(
        config.dataset, split="train", batch_size=config.batch_size, seed=config.seed, data_dir=config.data_dir
    )
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    checkpoint = os.path.join(run_dir, CHECKPOINT_FILE)
    csv_path = os.path.join(run_dir, "history.csv")
    centers = data_lib.mixture_modes(config.dataset)[0] if info.get("kind") == "points" else None
    stop_on_nan = cbs.StopOnNaN(checkpoint=checkpoint)
    callbacks = [
        stop_on_nan,
        cbs.BackupAndRestore(os.path.join(run_dir, "backup")),
        *extra_callbacks,  # before the loggers: what they add to the epoch's logs reaches history.csv
        cbs.ModelCheckpoint(checkpoint),
        cbs.SampleGrid(os.path.join(run_dir, "samples"), n=config.sample_count, seed=config.seed, centers=centers),
        keras.callbacks.CSVLogger(csv_path, append=resume),
        cbs.LossPlot(csv_path, os.path.join(run_dir, "losses.png"), title=config.preset),
    ]
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2
    start = time.perf_counter()
    with dtype_policy(config.mixed_precision):
        with strategy.scope():
            model = build_model(build_config, info)
        if "reconstruct" in model.operations:
            images, labels = held_out_images(config)
            callbacks.append(cbs.ReconstructionGrid(os.path.join(run_dir, "reconstructions"), images, labels))
        history = model.fit(dataset, epochs=config.epochs, callbacks=callbacks, verbose=verbose, shuffle=False)
    seconds = time.perf_counter() - start
    model_path = os.path.join(run_dir, MODEL_FILE)
    if stop_on_nan.stopped_at is None:
        atomic_write(model_path, model.save, suffix=".keras")
    epochs_done = _epochs_done(run_dir)
    return RunResult(
        run_dir=run_dir,
        model=model,
        history=history.history,
        epochs_done=epochs_done,
        seconds=seconds,
        stopped_on_nan=stop_on_nan.stopped_at is not None,
        model_path=model_path if stop_on_nan.stopped_at is None else None,
        samples=os.path.join(run_dir, "samples", "latest.png"),
    )


def held_out_images(config, n=32):
    """``n`` fixed real images (and labels, or None) for the reconstruction grid: from the dataset's test split,
    or from its training data when it has no test split."""
    import numpy as np

    from keras_gen import data as data_lib

    for split in ("test", "train"):
        try:
            dataset = data_lib.load_dataset(
                config.dataset, split=split, batch_size=n, seed=config.seed, drop_remainder=False,
                data_dir=config.data_dir,
            )
        except (ValueError, KeyError):
            continue
        batch = next(iter(dataset))
        images, labels = batch if isinstance(batch, tuple) else (batch, None)
        return np.asarray(images), None if labels is None else np.asarray(labels)
    raise ValueError(f"Dataset {config.dataset!r} has no images to reconstruct.")


def _epochs_done(run_dir):
    path = os.path.join(run_dir, "backup", "training_metadata.json")
    if not os.path.exists(path):
        return 0
    with open(path) as f:
        return int(json.load(f)["epoch"])


def load_run(run_dir, compile=True):
    """Loads the model of a run folder: ``model.keras``, or the last checkpoint of an unfinished run.

    Raises:
        FileNotFoundError: the folder is not a run folder or holds no model yet.
        ValueError: the model file is corrupt (the message names it).
    """
    import keras

    import keras_gen  # noqa: F401  (registers the serializable classes)

    run_dir = os.fspath(run_dir)
    run_dir_config(run_dir)
    for name in (MODEL_FILE, CHECKPOINT_FILE):
        path = os.path.join(run_dir, name)
        if os.path.isfile(path):
            try:
                return keras.models.load_model(path, compile=compile)
            except Exception as exc:  # zip, h5 or config errors all mean the same to the user
                raise ValueError(f"Could not load {path}: the file is corrupt or incomplete ({exc}).") from exc
    raise FileNotFoundError(f"Run folder {run_dir} holds no model yet (no {MODEL_FILE} or {CHECKPOINT_FILE}).")
