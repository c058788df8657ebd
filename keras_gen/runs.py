"""Run folders: train a `RunConfig` into a folder that holds everything needed to reproduce and reuse it.

Layout of a run folder::

    RUN/config.json              the resolved RunConfig (rebuild the run from it)
    RUN/dataset.json             the dataset's shape, classes and value range
    RUN/model.keras              the final model (both optimizers included)
    RUN/checkpoints/last.keras   the last epoch with finite losses (written atomically)
    RUN/backup/epoch-NNNNNN/     the last committed epoch (weights, both optimizers, seed state, epoch count,
                                 history rows), written as one atomic step: `--resume` continues from here
    RUN/samples/epoch_NNN.png    a grid (or scatter plot) per epoch from fixed latents; latest.png
    RUN/reconstructions/...      models with `reconstruct` (VAEs): held-out images above their reconstructions
    RUN/history.csv, losses.png  logged losses per committed epoch (rebuilt from the commit), and their plot
    RUN/logs/                    TensorBoard: train/ (losses per epoch and every N steps, sample grids), the config
                                 as hparams, eval/ (what `evaluate_run` found); `tensorboard --logdir RUN/logs`

Everything that can be checked is checked before the folder is touched, and a run that fails before its first
epoch is committed leaves no folder behind. docs/training.md says how an epoch is committed and what resuming
guarantees.
"""

import contextlib
import dataclasses
import json
import os
import shutil
import sys
import time

from keras_gen.files import atomic_write, write_json
from keras_gen.presets import OwnData, RunConfig, build_model, run_dir_config

__all__ = [
    "train_run", "load_run", "load_source", "evaluate_run", "describe_run", "find_run_dir", "resolve_run_dir",
    "prepare_run_dir", "held_out_images", "RunResult",
]

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
    run_dir = _check_run_dir(run_dir, resume, overwrite)
    _make_run_dir(run_dir, resume, overwrite)
    return run_dir


def _trainable(run_dir):
    """``run_dir`` as a path, refusing a shipped model's folder (``pretrained:NAME``, or its path in the package):
    it looks like a run folder, but nothing may train into it."""
    folder, shipped = resolve_run_dir(run_dir)
    if shipped is not None:
        raise ValueError(
            f"{os.fspath(run_dir)} is the shipped model {shipped!r}: it is read only. Train into another --out (its "
            "config is its config.json: keras-gen train --config on it)."
        )
    return folder


def _check_run_dir(run_dir, resume, overwrite):
    """`prepare_run_dir`'s checks, touching nothing. Returns the absolute path."""
    run_dir = os.path.abspath(_trainable(run_dir))
    if resume and overwrite:
        raise ValueError("Choose one of `resume` and `overwrite`, not both.")
    if resume:
        run_dir_config(run_dir)  # raises a clear error if this is not a run folder
    elif os.path.isdir(run_dir) and os.listdir(run_dir):
        if not overwrite:
            raise FileExistsError(
                f"Run folder {run_dir} already exists and is not empty. Pass --resume to continue it, "
                "--overwrite to start again, or choose another --out."
            )
        if not os.path.isfile(os.path.join(run_dir, "config.json")):
            raise FileExistsError(
                f"Refusing to overwrite {run_dir}: it is not a keras-gen run folder (no config.json)."
            )
    return run_dir


def _make_run_dir(run_dir, resume, overwrite):
    """Makes the checked ``run_dir`` (deleting the run it overwrites). Returns the outermost folder this made,
    or None when the run folder existed (a resumed run, or an empty folder made beforehand)."""
    if resume:
        return None
    if overwrite and os.path.isdir(run_dir) and os.listdir(run_dir):
        shutil.rmtree(run_dir)
    made, parent = None, run_dir
    while not os.path.exists(parent):
        made, parent = parent, os.path.dirname(parent)
    os.makedirs(run_dir, exist_ok=True)
    return made


def _remove_failed_run(run_dir, made):
    """Undoes a new run that failed before its first commit: the folders it made go; a folder that existed
    before (empty then) is emptied."""
    if made is not None:
        shutil.rmtree(made, ignore_errors=True)
        return
    for name in os.listdir(run_dir):
        path = os.path.join(run_dir, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.remove(path)


def _check_batch_size(config, info):
    """Refuses a batch no epoch could take (more than the training examples: an epoch of no step) before
    anything is built or written. A packing discriminator (PacGAN) needs a multiple of its degree."""
    examples = (info.get("splits") or {}).get("train")
    if not examples or config.batch_size <= examples:
        return
    packing = int((config.networks.get("discriminator") or {}).get("packing") or 1)
    largest = examples // packing * packing
    name = info.get("name", config.dataset)
    problem = (
        f"`batch_size` {config.batch_size} is larger than the {examples} training examples of {name!r}: an epoch "
        "would take no step."
    )
    if largest == 0:
        raise ValueError(f"{problem} One step takes {packing} examples (the packing degree): use more data.")
    multiple = f" (a multiple of the packing degree {packing})" if packing > 1 else ""
    raise ValueError(f"{problem} Use a batch size of at most {largest}{multiple}: --batch-size {largest}.")


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


def train_run(config, run_dir, resume=False, overwrite=False, verbose=None, extra_callbacks=(), log_every=50,
              data=None):
    """Trains the model of ``config`` into ``run_dir`` (see the module docstring for the layout).

    Before the run folder is touched, the config, the dataset (an image folder's files), the batch size (no
    larger than the training split) and the model (built) are checked. Each finished epoch is committed as one
    step (`keras_gen.callbacks.RunBackup`); a resumed run continues from the last commit with the data order of
    the uninterrupted run. A new run that fails before its first commit (an error, Ctrl-C) removes what it
    made; a folder that existed before is never deleted (docs/training.md).

    Args:
        config: a `RunConfig`. With ``resume=True`` it may be ``None`` (the folder's own config is used) or the
            folder's config with a larger ``epochs``.
        run_dir: the run folder.
        resume: continue a run from its last commit (weights, both optimizers, seed state, epoch, history).
        overwrite: delete an existing run folder first (once the checks above have passed).
        verbose: Keras ``fit`` verbosity; default a progress bar on a terminal, a line per epoch otherwise.
        extra_callbacks: more Keras callbacks; what they add to an epoch's logs reaches history.csv.
        log_every: training steps between TensorBoard's batch summaries in ``RUN/logs/`` (None: epoch summaries
            only); see `keras_gen.callbacks.TensorBoard`.
        data: your own training data instead of ``config.dataset``: arrays ``x`` or ``(x, labels)``, or a `tf.data`
            pipeline of batches (`keras_gen.presets.OwnData`; docs/own_data.md). ``config.json`` then names it.

    Returns:
        A `RunResult`.

    Raises:
        ValueError: a bad config, dataset, batch size or model; FileExistsError / FileNotFoundError: a run folder
            that may not be written (or resumed).
    """
    import keras
    import tensorflow as tf

    from keras_gen import callbacks as cbs
    from keras_gen import data as data_lib
    from keras_gen import distribute

    run_dir = _trainable(run_dir)
    requested = RunConfig.load(os.path.join(run_dir, "config.json")) if resume and config is None else config
    if requested is None:
        raise ValueError("A config is needed to start a new run.")
    own = None if data is None else OwnData(data, requested)  # its config names the data, not the preset's
    config = config if own is None else own.config
    # The strategy comes first: MultiWorkerMirroredStrategy must exist before TensorFlow runs anything, and a
    # non-chief worker writes its own scratch folder.
    strategy = distribute.make_strategy(requested.strategy)
    run_dir = distribute.worker_run_dir(os.path.abspath(os.fspath(run_dir)), strategy)
    if resume and not os.path.exists(os.path.join(run_dir, "config.json")) and not distribute.is_chief(strategy):
        resume = False  # a worker that never wrote its scratch folder starts it; the chief's backup rules
    run_dir = _check_run_dir(run_dir, resume, overwrite)
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
    build_config = config
    if config.jit_compile:
        supported, reason = distribute.jit_supported(strategy)
        if not supported:
            print(f"keras-gen: {reason}.", file=sys.stderr)
            build_config = dataclasses.replace(config, jit_compile=False)

    info = own.info if own is not None else data_lib.dataset_info(
        config.dataset, data_dir=config.data_dir, image_size=config.image_size, channels=config.channels,
        center_crop=config.center_crop,
    )
    _check_batch_size(config, info)
    csv_path = os.path.join(run_dir, "history.csv")
    backup = cbs.RunBackup(os.path.join(run_dir, "backup"), history_path=csv_path)
    # The data order of each epoch is a function of (seed, epoch); ShuffleEpoch sets the dataset's epoch to
    # fit's, so a resumed run draws the orders the uninterrupted run drew.
    with tf.init_scope():
        epoch = tf.Variable(backup.committed_epoch() if resume else 0, dtype=tf.int64, trainable=False)
    dataset = own.batches(config.seed, epoch) if own is not None else data_lib.load_dataset(
        config.dataset, split="train", batch_size=config.batch_size, seed=config.seed, data_dir=config.data_dir,
        image_size=config.image_size, channels=config.channels, center_crop=config.center_crop, epoch=epoch,
    )
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    checkpoint = os.path.join(run_dir, CHECKPOINT_FILE)
    centers = data_lib.mixture_modes(config.dataset)[0] if info.get("kind") == "points" and own is None else None
    stop_on_nan = cbs.StopOnNaN(checkpoint=checkpoint)
    # Digit data: the digit quality every epoch (history.csv, TensorBoard) and under the sample grid.
    quality = cbs.DigitQualityMonitor.for_dataset(config.dataset, info, seed=config.seed) if own is None else None
    grids = os.path.join(run_dir, "samples")
    samples = (cbs.SampleGrid(grids, n=config.sample_count, seed=config.seed, centers=centers) if quality is None
               else cbs.QualityGrid(grids, quality, n=config.sample_count, seed=config.seed))
    hparams = cbs.flat_hparams({key: value for key, value in config.to_dict().items() if key != "description"})
    tensorboard = cbs.TensorBoard(os.path.join(run_dir, "logs"), update_freq=log_every or "epoch",
                                  images={"samples": samples}, hparams=hparams, backup=backup)
    callbacks = [
        cbs.ShuffleEpoch(epoch),
        stop_on_nan,
        *([quality] if quality is not None else []),  # before the commit, the logs and the grid that read it
        *extra_callbacks,  # before the commit: what they add to the epoch's logs is in its history row
        tensorboard,  # before the commit: an epoch's summaries are on the disk before it is committed
        backup,
        cbs.ModelCheckpoint(checkpoint),
        samples,
        cbs.LossPlot(csv_path, os.path.join(run_dir, "losses.png"), title=config.preset),
    ]
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2
    start = time.perf_counter()
    with dtype_policy(config.mixed_precision):
        with strategy.scope():
            model = build_model(build_config, info)
        alarm = overfitting_alarm(config, model, own)
        if alarm is not None:  # before the logs that record r_t and r_held: TensorBoard, the commit
            callbacks.insert(callbacks.index(tensorboard), alarm)
        if "reconstruct" in model.operations:
            images, labels = held_out_images(config) if own is None else own.examples()
            reconstructions = cbs.ReconstructionGrid(os.path.join(run_dir, "reconstructions"), images, labels)
            tensorboard.add_images("reconstructions", reconstructions)
            callbacks.append(reconstructions)
        # Every check has passed: only now is the run folder written.
        made = _make_run_dir(run_dir, resume, overwrite)
        try:
            if resume:
                for folder in ("", "checkpoints", "samples", "reconstructions"):
                    cbs._remove_partial_writes(os.path.join(run_dir, folder))
            config.save(config_path)
            cbs.write_point("run-config-written", 0)
            write_json(os.path.join(run_dir, "dataset.json"), info, sort_keys=True, default=str)
            cbs.write_point("run-dataset-written", 0)
            history = model.fit(dataset, epochs=config.epochs, callbacks=callbacks, verbose=verbose, shuffle=False)
        except BaseException:
            if not resume and backup.committed_epoch() == 0:
                _remove_failed_run(run_dir, made)
            raise
    seconds = time.perf_counter() - start
    model_path = os.path.join(run_dir, MODEL_FILE)
    if stop_on_nan.stopped_at is None:
        atomic_write(model_path, model.save, suffix=".keras")
    epochs_done = backup.committed_epoch()
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


def real_images(config, split, n):
    """Up to ``n`` real images of ``split`` of the config's dataset, drawn with its seed, and their labels (or None),
    as NumPy arrays; None when the dataset has no such split."""
    import numpy as np

    from keras_gen import data as data_lib

    try:
        dataset = data_lib.load_dataset(
            config.dataset, split=split, batch_size=n, seed=config.seed, drop_remainder=False,
            data_dir=config.data_dir, image_size=config.image_size, channels=config.channels,
            center_crop=config.center_crop,
        )
    except (ValueError, KeyError):
        return None
    batch = next(iter(dataset))
    images, labels = batch if isinstance(batch, tuple) else (batch, None)
    return np.asarray(images), None if labels is None else np.asarray(labels)


def held_out_images(config, n=32):
    """``n`` fixed real images (and labels, or None) for the reconstruction grid: from the dataset's test split,
    or from its training data when it has no test split."""
    for split in ("test", "train"):
        found = real_images(config, split, n)
        if found is not None:
            return found
    raise ValueError(f"Dataset {config.dataset!r} has no images to reconstruct.")


def overfitting_alarm(config, model, own=None, n=500):
    """The `DiscriminatorOverfittingAlarm` of a GAN run on images: ``n`` training images against ``n`` of the test
    split where the dataset has one. An image folder, or your own data, has none: ``r_t`` is then logged with
    `keras_gen.callbacks.DiscriminatorOverfittingAlarm.ALONE_THRESHOLD` (no alarm). None for models without a
    discriminator and for points."""
    from keras_gen import callbacks as cbs

    if getattr(model, "discriminator", None) is None or len(getattr(model, "sample_shape", ())) != 3:
        return None
    train = own.examples(n) if own is not None else real_images(config, "train", n)
    held = None if own is not None else real_images(config, "test", n)
    conditional = getattr(model, "num_classes", None) is not None

    def part(found):
        if found is None:
            return None
        return (found[0], found[1]) if conditional else found[0]

    held = part(held)
    threshold = (cbs.DiscriminatorOverfittingAlarm.DEFAULT_THRESHOLD if held is not None
                 else cbs.DiscriminatorOverfittingAlarm.ALONE_THRESHOLD)
    return cbs.DiscriminatorOverfittingAlarm(part(train), held_out=held, n=n, batch_size=config.batch_size,
                                             threshold=threshold, seed=config.seed)


def _safe_mode_refusal(exc):
    """What Keras' safe mode refused to load (e.g. "a `Lambda` layer whose `function` is a Python lambda"), or
    None when ``exc`` (or an exception it was raised from) is not such a refusal."""
    import re

    seen = set()
    while exc is not None and id(exc) not in seen:  # the exception and those it was raised from
        seen.add(id(exc))
        message = str(exc)
        if "safe_mode=False" in message and "disallowed by default" in message:
            found = re.search(r"Requested the (?:deserialization|loading) of (.+?)\. This carries", message)
            return found.group(1) if found else "code Keras does not load in safe mode"
        exc = exc.__cause__ or exc.__context__
    return None


def _load_keras_file(path, compile=True, safe_mode=True):
    """``keras.models.load_model(path)`` with errors a person can act on: a file that holds Python code Keras
    refuses in safe mode says so (and how to load a trusted file); anything else is a corrupt file.

    Raises:
        ValueError: naming ``path``.
    """
    import keras

    from keras_gen import models, networks  # noqa: F401  (registers the serializable classes)

    try:
        return keras.models.load_model(path, compile=compile, safe_mode=safe_mode)
    except Exception as exc:  # zip, h5 or config errors all mean the same to the user
        refused = _safe_mode_refusal(exc)
        if refused is not None:
            what = f"custom Python code ({refused})" if "lambda" in refused.lower() else refused
            raise ValueError(
                f"{path} holds {what}, which Keras does not load by default for safety. "
                f"If you trust the file, load it with keras.models.load_model({path!r}, safe_mode=False) (or "
                "keras_gen.load_run(run_dir, safe_mode=False) for a run folder)."
            ) from exc
        raise ValueError(f"Could not load {path}: the file is corrupt or incomplete ({exc}).") from exc


def load_run(run_dir, compile=True, safe_mode=True):
    """Loads the model of a run folder: ``model.keras``, or the last checkpoint of an unfinished run.

    Args:
        run_dir: the run folder, or ``pretrained:NAME`` for a model shipped with the package (`resolve_run_dir`;
            it is built from its config and loads its weight files, whatever ``compile`` and ``safe_mode`` say:
            `keras_gen.pretrained.from_preset`).
        compile: restore the optimizers and compile the model (needed to train it further).
        safe_mode: Keras' safe mode; ``False`` also loads Python code stored in the file (a ``Lambda`` layer's
            lambda), which can run anything: only for files you trust.

    Raises:
        FileNotFoundError: the folder is not a run folder or holds no model yet.
        ValueError: the model file is corrupt, or holds Python code that safe mode refuses (the message names
            the file and says which); ``config.json`` is not a valid config; an unknown pretrained NAME.
    """
    run_dir, pretrained = resolve_run_dir(run_dir)
    run_dir_config(run_dir)
    if pretrained is not None:
        from keras_gen.pretrained import load_model_dir

        return load_model_dir(run_dir)
    for name in (MODEL_FILE, CHECKPOINT_FILE):
        path = os.path.join(run_dir, name)
        if os.path.isfile(path):
            return _load_keras_file(path, compile=compile, safe_mode=safe_mode)
    raise FileNotFoundError(f"Run folder {run_dir} holds no model yet (no {MODEL_FILE} or {CHECKPOINT_FILE}).")


# ---------------------------------------------------------------------------------------------- sources and evaluation
def resolve_run_dir(run_dir):
    """The folder a run argument names, and the shipped model it is, if any: ``(folder, name or None)``.

    ``pretrained:NAME`` names a model shipped with the package (`keras_gen.pretrained`): its folder and ``NAME``.
    Any other argument is a path, returned as given, with the name of the shipped model whose folder it is (the
    folder holds ``pretrained.json``) or None. A name means the folder is read only (it may be inside the
    installed package): reports, exports and logs go to the caller's ``--out`` or the current directory, and
    `describe_run` gives no ``run_dir`` to write into.

    Raises:
        ValueError: an unknown pretrained NAME (the message lists the shipped ones).
    """
    from keras_gen import pretrained

    name = pretrained.parse(run_dir)
    if name is not None:
        return pretrained.model_dir(name), name
    run_dir = os.fspath(run_dir)
    return run_dir, pretrained.name_of(run_dir)


def find_run_dir(path):
    """The run folder holding ``path`` (the folder itself, or up to two levels above a file; a shipped model's
    folder for ``pretrained:NAME``), or None."""
    path, _ = resolve_run_dir(path)
    path = os.path.abspath(path)
    candidates = [path] if os.path.isdir(path) else []
    parent = os.path.dirname(path)
    candidates += [parent, os.path.dirname(parent)]
    for candidate in candidates:
        if os.path.isfile(os.path.join(candidate, "config.json")):
            return candidate
    return None


def describe_run(run_dir):
    """What a run folder says of its data: ``{"dataset", "dataset_info", "data_dir", "data_options", "run_dir"}``
    from ``config.json`` and ``dataset.json`` (``data_options``: the folder options it trained with, such as
    ``image_size``, for loading its comparison data the same way). For a shipped model (``pretrained:NAME`` or its
    folder, `resolve_run_dir`) ``"pretrained": NAME`` takes the place of ``"run_dir"``: nothing is to be written
    into its folder."""
    run_dir, pretrained = resolve_run_dir(run_dir)
    config = run_dir_config(run_dir)
    info_path = os.path.join(run_dir, "dataset.json")
    info = None
    if os.path.isfile(info_path):
        try:
            with open(info_path, encoding="utf-8") as f:
                info = json.load(f)
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"{info_path} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}. Delete it to "
                "read the dataset's description from the dataset itself."
            ) from exc
    options = {key: getattr(config, key, None) for key in ("image_size", "channels", "center_crop")}
    options = {key: value for key, value in options.items() if value not in (None, False)}
    where = {"run_dir": os.path.abspath(run_dir)} if pretrained is None else {"pretrained": pretrained}
    return {"dataset": config.dataset, "dataset_info": info, "data_dir": config.data_dir, "data_options": options,
            **where}


def load_source(path, safe_mode=True, open_artifact=None):
    """What a path holds to sample from: a run folder's model, a ``.keras`` model, or an exported artifact.

    Args:
        path: a run folder written by `train_run` (its ``model.keras`` or last checkpoint), ``pretrained:NAME`` (a
            model shipped with the package, or its folder: `resolve_run_dir`), a ``.keras`` file (inside a run
            folder, the folder's dataset is recorded), or, with ``open_artifact``, an exported artifact.
        safe_mode: Keras' safe mode for ``.keras`` files; ``False`` also loads Python code stored in the file (a
            ``Lambda`` layer's lambda), which can run anything: only for files you trust.
        open_artifact: opens an export (``keras_gen.export.load``; the command line passes it). The run side does not
            import the export package itself.

    Returns:
        ``(source, description)``: a model or a sampler, and ``{"path", "type": "run" | "pretrained" | "keras" |
        "export", ...}`` with what `describe_run` or the export's manifest say of its dataset. A shipped model's
        description has ``"pretrained": NAME`` and no ``"run_dir"`` (its folder is not to be written into).

    Raises:
        FileNotFoundError: nothing at ``path``, or a run folder without a model yet.
        ValueError: a path that is none of the above, a corrupt ``.keras`` file or one that holds Python code safe
            mode refuses, or a run folder whose ``config.json`` / ``dataset.json`` is not valid (each named).
    """
    path = os.path.expanduser(os.fspath(path))
    folder, pretrained = resolve_run_dir(path)
    if pretrained is not None:  # recorded as given: pretrained:NAME, or the folder's path
        description = {"path": path if folder != path else os.path.abspath(path), **describe_run(folder)}
        return load_run(folder, compile=False, safe_mode=safe_mode), {**description, "type": "pretrained"}
    path = os.path.abspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"Nothing at {path!r}: expected a run folder (with config.json), a .keras model or an exported artifact."
        )
    run_dir = find_run_dir(path)
    description = {"path": path, **(describe_run(run_dir) if run_dir is not None else {})}
    if os.path.isdir(path) and run_dir == path:
        return load_run(path, compile=False, safe_mode=safe_mode), {**description, "type": "run"}
    if os.path.isfile(path) and path.endswith(".keras"):
        return _load_keras_file(path, compile=False, safe_mode=safe_mode), {**description, "type": "keras"}
    if open_artifact is None:
        raise ValueError(
            f"{path} is not a run folder or a .keras file. Open an exported artifact with keras_gen.export.load(path) "
            "(`keras-gen evaluate` does)."
        )
    sampler = open_artifact(path)
    description.update(type="export", format=getattr(sampler, "format", None),
                       precision=getattr(sampler, "precision", None))
    # The manifest of an export names the run it came from: {"source": {"dataset", "dataset_info", "run_dir", ...}}.
    origin = (getattr(sampler, "manifest", None) or {}).get("source") or {}
    if origin.get("dataset") and "dataset" not in description:
        description.update(dataset=origin["dataset"], dataset_info=origin.get("dataset_info"))
    if origin.get("run_dir") and os.path.isfile(os.path.join(origin["run_dir"], "config.json")):
        description.setdefault("run_dir", origin["run_dir"])
    return sampler, description


def evaluate_run(path, metrics=None, *, safe_mode=True, open_artifact=None, tensorboard=True, **kwargs):
    """`keras_gen.metrics.evaluate` of what a path holds (`load_source`): a run folder, a ``.keras`` file or, with
    ``open_artifact``, an export, against the dataset it records (and its folder options). ``kwargs`` are
    `evaluate`'s (``n``, ``seed``, ``extractor``, ``dataset``, ...). What ``keras-gen evaluate`` runs.

    With ``tensorboard`` (the default), the numbers found for a run folder are also written as scalars to its
    TensorBoard logs, ``RUN/logs/eval``, at the run's last committed epoch (`keras_gen.callbacks.log_evaluation`),
    replacing an earlier evaluation's at that epoch."""
    from keras_gen.metrics.evaluate import evaluate

    source, description = load_source(path, safe_mode=safe_mode, open_artifact=open_artifact)
    report = evaluate(source, metrics, source_info=description, **kwargs)
    if tensorboard and description.get("type") == "run":
        import warnings

        import tensorflow as tf

        from keras_gen import callbacks as cbs

        run_dir = description["run_dir"]
        epochs = cbs.RunBackup(os.path.join(run_dir, "backup")).committed_epoch() or run_dir_config(run_dir).epochs
        try:
            cbs.log_evaluation(os.path.join(run_dir, "logs"), report, step=epochs - 1)
        except (OSError, tf.errors.OpError) as exc:  # the report is still returned: it is what took the time
            warnings.warn(f"The evaluation was not written to {run_dir}/logs/eval: {exc}", RuntimeWarning, stacklevel=2)
    return report
