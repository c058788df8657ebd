"""Run folders: an epoch's end commits as one step, a resumed run continues the run it resumes (shuffled data
included), a batch that no epoch could take is refused, and a run that fails before its first epoch leaves
nothing behind (docs/training.md)."""

import collections
import csv
import json
import os
import pathlib
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_gen import callbacks as cbs
from keras_gen import data, presets
from keras_gen.runs import train_run

REPO = pathlib.Path(__file__).resolve().parents[1]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def small_config(**overrides):
    """The DCGAN preset at width 4 on the 8x8 digits, batch 64: 25 steps an epoch."""
    networks = {role: dict(kwargs) for role, kwargs in presets.PRESETS["dcgan"]["networks"].items()}
    networks["generator"].update(latent_dim=8, width=4)
    networks["discriminator"].update(width=4)
    settings = {"dataset": "digits", "networks": networks, "batch_size": 64, "seed": 5, **overrides}
    return presets.get_config("dcgan", **settings)


def write_folder(root, n, size=8, classes=None):
    """``n`` random ``size`` x ``size`` grayscale PNGs, in ``classes`` subfolders (round robin) or flat."""
    rng = np.random.default_rng(0)
    for i in range(n):
        folder = pathlib.Path(root) / classes[i % len(classes)] if classes else pathlib.Path(root)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8)).save(folder / f"{i:03d}.png")
    return str(root)


def run_cli(*args, timeout=300):
    """``python -m keras_gen.cli ARGS`` from the repository root (the package under test)."""
    return subprocess.run([sys.executable, "-m", "keras_gen.cli", *map(str, args)], capture_output=True, text=True,
                          env=ENV, cwd=REPO, timeout=timeout)


def cli_lines(stderr):
    """What keras-gen printed to stderr (TensorFlow's C++ start-up lines left out), asserting no traceback."""
    assert "Traceback" not in stderr, stderr[-3000:]
    return [line for line in stderr.splitlines() if line.startswith("keras-gen")]


def weights_and_iterations(run_dir):
    model = keras.models.load_model(os.path.join(run_dir, "model.keras"))
    iterations = {name: int(opt.iterations) for name, opt in (("d", model.d_optimizer), ("g", model.g_optimizer))}
    return [v.numpy() for v in model.weights], iterations


def history_rows(run_dir):
    with open(os.path.join(run_dir, "history.csv"), newline="") as f:
        return list(csv.DictReader(f))


def assert_same_run(actual_dir, expected_dir, atol=1e-6):
    """Same final weights (and optimizer slots), the same optimizer iterations, the same history rows."""
    actual, actual_iterations = weights_and_iterations(actual_dir)
    expected, expected_iterations = weights_and_iterations(expected_dir)
    assert actual_iterations == expected_iterations
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        np.testing.assert_allclose(a, e, atol=atol, rtol=0)
    rows, reference = history_rows(actual_dir), history_rows(expected_dir)
    assert [r["epoch"] for r in rows] == [r["epoch"] for r in reference]
    for row, ref in zip(rows, reference):
        assert row.keys() == ref.keys()
        for key in ref:
            assert float(row[key]) == pytest.approx(float(ref[key]), abs=atol), (row["epoch"], key)


class RaiseAt(keras.callbacks.Callback):
    """Raises ``exception`` when epoch ``epoch`` begins (or at its batch ``batch``)."""

    def __init__(self, epoch, batch=None, exception=KeyboardInterrupt):
        super().__init__()
        self.epoch, self.batch, self.exception, self._epoch = epoch, batch, exception, None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        if epoch == self.epoch and self.batch is None:
            raise self.exception("simulated interruption")

    def on_train_batch_end(self, batch, logs=None):
        if self._epoch == self.epoch and batch == self.batch:
            raise self.exception("simulated interruption")


# ----------------------------------------------------------------------------------------------------------------
# Item 5: the order of an epoch is a function of (seed, epoch)


def _order(dataset):
    """One pass: the examples' rows in the order drawn (each image or point flattened)."""
    rows = []
    for batch in dataset:
        images = batch[0] if isinstance(batch, tuple) else batch
        rows.extend(np.asarray(images).reshape(len(images), -1))
    return np.stack(rows)


def _as_set(rows):
    return sorted(map(bytes, np.asarray(rows, np.float32)))


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
    from tests.test_data import KerasGenTinyShapes

    path = tmp_path_factory.mktemp("tfds")
    KerasGenTinyShapes(data_dir=str(path)).download_and_prepare()
    return str(path)


@pytest.mark.parametrize("source", ["digits", "stacked_mnist", "folder", "tfds", "digits in windows"])
def test_epoch_order_is_a_function_of_seed_and_epoch(source, tmp_path, tfds_dir, monkeypatch):
    """Every pass is one epoch; epoch e of a dataset built to start at e (as a resumed run builds it) is epoch e
    of a dataset that started at 0; each epoch is a permutation of the data (within its windows, when the data
    does not fit in memory), the epochs differ from each other and from another seed's."""
    options = {"batch_size": 4}
    if source == "digits" or source == "digits in windows":
        name = "digits"
    elif source == "stacked_mnist":
        name, options["num_samples"] = "stacked_mnist", 40
    elif source == "folder":
        name = write_folder(tmp_path / "images", 20, classes=["a", "b"])
    else:
        name, options["data_dir"] = "tfds:keras_gen_tiny_shapes", tfds_dir
    window = None
    if source == "digits in windows":
        window = 100
        monkeypatch.setattr(data, "_MEMORY_BUDGET_BYTES", window * 8 * 8 * 4)  # 100 digits fit
    plain = _order(data.load_dataset(name, shuffle=False, drop_remainder=False, **options))  # the source order
    one = data.load_dataset(name, seed=3, **options)
    passes = [_order(one) for _ in range(3)]
    resumed = _order(data.load_dataset(name, seed=3, epoch=2, **options))
    np.testing.assert_array_equal(resumed, passes[2])
    usable = len(plain) // 4 * 4
    for order in passes:
        assert len(order) == usable
        missing = collections.Counter(_as_set(plain))
        missing.subtract(_as_set(order))
        assert min(missing.values()) == 0 and sum(missing.values()) == len(plain) - usable  # a permutation
    if window is not None:  # window k of every epoch holds exactly the source's examples k*W .. (k+1)*W - 1
        for order in passes:
            for start in range(0, usable - window + 1, window):
                assert _as_set(order[start:start + window]) == _as_set(plain[start:start + window])
    if source != "tfds":  # the tiny TFDS set has two distinct images: its orders are not told apart by pixels
        assert not np.array_equal(passes[0], passes[1]) and not np.array_equal(passes[1], passes[2])
        assert not np.array_equal(_order(data.load_dataset(name, seed=4, **options)), passes[0])


def test_epoch_order_is_the_same_in_a_fresh_process(tmp_path):
    """The defect: a run resumed in a new process drew other orders. Epoch 2 drawn in another process is epoch
    2 drawn here."""
    here = _order(data.load_dataset("digits", batch_size=64, seed=9, epoch=2))
    code = ("import sys, numpy as np; from keras_gen import data; from tests.test_runs import _order; "
            "np.save(sys.argv[1], _order(data.load_dataset('digits', batch_size=64, seed=9, epoch=2)))")
    path = tmp_path / "order.npy"
    result = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, env=ENV,
                            cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    np.testing.assert_array_equal(np.load(path), here)


def test_shuffle_epoch_follows_fits_epochs():
    """With `ShuffleEpoch`, fit's epoch e trains on epoch e's order, though Keras drew a batch of the dataset
    before the first epoch (to build the model, which is not built) and so advanced its counter."""

    class Recorder(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(1)
            self.seen = []

        def call(self, x):
            return self.dense(keras.ops.reshape(x, (-1, 64)))

        def train_step(self, batch):
            self.seen.append(np.asarray(batch[0]).reshape(len(batch[0]), -1))
            return {"seen": float(len(self.seen))}

    epoch = tf.Variable(0, dtype="int64")
    ds = data.load_dataset("digits", batch_size=64, seed=1, epoch=epoch)
    model = Recorder()
    model.compile(optimizer="sgd", run_eagerly=True)
    model.fit(ds, epochs=2, verbose=0, callbacks=[cbs.ShuffleEpoch(epoch)])
    seen = np.concatenate(model.seen)
    for e in (0, 1):
        expected = _order(data.load_dataset("digits", batch_size=64, seed=1, epoch=e))
        np.testing.assert_array_equal(seen[e * len(expected):(e + 1) * len(expected)], expected)


def test_resumed_run_continues_the_run_it_resumes_with_shuffled_data(tmp_path):
    """Item 5: interrupted when epoch 3 begins and resumed (shuffling on, as every preset loads its data), the run
    ends with the weights, optimizer iterations and history of the uninterrupted run."""
    train_run(small_config(epochs=3), tmp_path / "reference", verbose=0)
    with pytest.raises(KeyboardInterrupt):
        train_run(small_config(epochs=3), tmp_path / "run", verbose=0, extra_callbacks=[RaiseAt(2)])
    result = train_run(small_config(epochs=3), tmp_path / "run", resume=True, verbose=0)
    assert result.epochs_done == 3
    assert_same_run(tmp_path / "run", tmp_path / "reference", atol=1e-5)


# ----------------------------------------------------------------------------------------------------------------
# Items 4 and 6: an epoch commits as one step; a kill at any point resumes at the last commit


def _child(argv):
    """The training subprocess of the kill tests: ``OUT EPOCHS new|resume [EXIT_IN_EPOCH]``."""
    out, epochs, mode = argv[:3]
    extra = []
    if len(argv) > 3:

        class ExitInEpoch(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.epoch = epoch

            def on_train_batch_end(self, batch, logs=None):
                if self.epoch == int(argv[3]) and batch == 3:
                    os._exit(86)

        extra.append(ExitInEpoch())
    train_run(small_config(epochs=int(epochs), deterministic=True), out, resume=mode == "resume", verbose=0,
              extra_callbacks=extra)


def train_subprocess(out, epochs, resume=False, exit_at=None, exit_in_epoch=None):
    code = "import sys; from tests.test_runs import _child; _child(sys.argv[1:])"
    args = [str(out), str(epochs), "resume" if resume else "new"] + ([str(exit_in_epoch)] if exit_in_epoch else [])
    env = {**ENV, cbs.EXIT_AT_ENV: exit_at} if exit_at else ENV
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, cwd=REPO,
                          timeout=300)


# Each process is killed at the next point, then resumed by the next process: every point between the writes of a
# run, before the first epoch, while a commit has an older one beside it, and in the middle of an epoch.
KILLS = [
    ("run-config-written@0", 0),  # (where the process dies, epochs committed after it)
    ("run-dataset-written@0", 0),
    ("backup-renamed@1", 1),
    ("backup-started@2", 1),
    ("backup-weights-written@2", 1),
    ("backup-state-written@2", 1),
    ("backup-history-written@2", 2),
    ("backup-done@3", 3),
    ("in epoch 4", 3),
]


# The default suite kills at four of them (a write of the run folder, inside a commit, between a commit's last write
# and its rename, in an epoch); the slow suite at every one.
SOME_KILLS = [KILLS[1], KILLS[4], KILLS[6], KILLS[8]]


def test_the_kills_cover_every_write_point():
    assert {kill.split("@")[0] for kill, _ in KILLS[:-1]} == set(cbs.WRITE_POINTS)


@pytest.mark.parametrize("kills", [pytest.param(SOME_KILLS, id="four-points"),
                                   pytest.param(KILLS, id="every-point", marks=pytest.mark.slow)])
def test_a_kill_at_any_write_point_resumes_at_the_last_commit(tmp_path, kills):
    """Items 4 and 6: a training process killed (``os._exit``: no cleanup, no flush) at each point between the
    writes of a run, and resumed each time, ends with the weights, optimizer iterations and history rows of the
    uninterrupted run; after each kill the run holds exactly the epochs committed before it."""
    reference = tmp_path / "uninterrupted"
    result = train_subprocess(reference, 4)
    assert result.returncode == 0, result.stderr[-3000:]
    out = tmp_path / "run"
    for i, (kill, committed) in enumerate(kills):
        if kill == "in epoch 4":
            killed = train_subprocess(out, 4, resume=i > 0, exit_in_epoch=3)
        else:
            killed = train_subprocess(out, 4, resume=i > 0, exit_at=kill)
        assert killed.returncode == 86, (kill, killed.stderr[-3000:])
        backup = cbs.RunBackup(out / "backup")
        assert backup.committed_epoch() == committed, (kill, os.listdir(out / "backup"))
    resumed = train_subprocess(out, 4, resume=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same_run(out, reference, atol=0)
    assert sorted(os.listdir(out / "backup")) == ["epoch-000004"]


def test_resume_removes_partial_writes(tmp_path):
    """Item 4: what killed writes left (``.tmp-*`` files of 0 B to 1 MB, a half-written commit folder) is removed
    when the run resumes."""
    out = tmp_path / "run"
    train_run(small_config(epochs=1), out, verbose=0)
    leftovers = [out / "backup" / ".tmp-k2j4x.weights.h5", out / "checkpoints" / ".tmp-9a8b.keras",
                 out / "samples" / ".tmp-1c2d.png", out / ".tmp-3e4f.json"]
    for i, path in enumerate(leftovers):
        path.write_bytes(b"\0" * (i * 300_000))
    partial = out / "backup" / ".tmp-epoch-000002-5a6b7c8d"
    partial.mkdir()
    (partial / "model.weights.h5").write_bytes(b"\0" * 1000)
    train_run(small_config(epochs=2), out, resume=True, verbose=0)
    for path in leftovers + [partial]:
        assert not path.exists(), path
    assert sorted(os.listdir(out / "backup")) == ["epoch-000002"]


def test_a_run_of_the_earlier_backup_layout_resumes(tmp_path):
    """Run folders written before commits existed (Keras's ``backup/latest.weights.h5`` and
    ``training_metadata.json``, rows in history.csv) resume where they stopped; the next commit replaces them."""
    train_run(small_config(epochs=2), tmp_path / "reference", verbose=0)
    out = tmp_path / "run"
    train_run(small_config(epochs=1), out, verbose=0)
    backup = out / "backup"
    shutil.move(backup / "epoch-000001" / "model.weights.h5", backup / "latest.weights.h5")
    shutil.rmtree(backup / "epoch-000001")
    (backup / "training_metadata.json").write_text(json.dumps({"epoch": 1, "batch": 0}))
    train_run(small_config(epochs=2), out, resume=True, verbose=0)
    assert_same_run(out, tmp_path / "reference", atol=1e-5)
    assert sorted(os.listdir(backup)) == ["epoch-000002"]


def test_history_csv_is_rebuilt_from_the_commit(tmp_path):
    """history.csv always matches the weights: rows of epochs past the last commit (a process killed after its
    CSV row and before its backup) are dropped on resume, and a missing row is written back."""
    out = tmp_path / "run"
    train_run(small_config(epochs=2), out, verbose=0)
    rows = history_rows(out)
    with open(out / "history.csv", "a") as f:
        f.write("2," + ",".join(["0.5"] * (len(rows[0]) - 1)) + "\n")
    train_run(small_config(epochs=2), out, resume=True, verbose=0)
    assert history_rows(out) == rows
    (out / "history.csv").unlink()
    train_run(small_config(epochs=2), out, resume=True, verbose=0)
    assert history_rows(out) == rows


# ----------------------------------------------------------------------------------------------------------------
# Item 7: a batch that no epoch could take is refused before anything is built or written


def test_batch_larger_than_the_training_split_is_refused_by_the_cli(tmp_path):
    out = tmp_path / "run"
    result = run_cli("train", "dcgan", "--epochs", 1, "--batch-size", 5000, "--out", out)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = cli_lines(result.stderr)
    assert len(lines) == 1, result.stderr[-2000:]
    assert "5000" in lines[0] and "4500 training examples" in lines[0] and "--batch-size 4500" in lines[0]
    assert not out.exists()


def test_folder_smaller_than_the_batch_is_refused(tmp_path):
    folder = write_folder(tmp_path / "images", 10)
    with pytest.raises(ValueError, match=r"batch_size` 16 is larger than the 10 training examples.*at most 10"):
        train_run(small_config(dataset=folder, batch_size=16, epochs=1), tmp_path / "run", verbose=0)
    assert not (tmp_path / "run").exists()
    packed = small_config(dataset=folder, batch_size=16, epochs=1)
    packed.networks["discriminator"]["packing"] = 4
    with pytest.raises(ValueError, match=r"at most 8 \(a multiple of the packing degree 4\)"):
        train_run(packed, tmp_path / "run", verbose=0)
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------------------------------------------
# Item 8: a run that fails before its first epoch leaves no run folder; a folder that existed is kept


def _unlabelled_conditional(tmp_path):
    return small_config(dataset=write_folder(tmp_path / "flat", 12), conditional=True, batch_size=4)


@pytest.mark.parametrize("failure", ["model building", "ctrl-c in the first epoch", "broken image folder"])
def test_a_run_that_fails_before_its_first_epoch_leaves_no_folder(failure, tmp_path):
    extra = []
    if failure == "model building":  # a conditional GAN on a folder without classes
        config, error = _unlabelled_conditional(tmp_path), ValueError
    elif failure == "ctrl-c in the first epoch":
        config, error = small_config(epochs=2), KeyboardInterrupt
        extra = [RaiseAt(0, batch=2)]
    else:
        folder = pathlib.Path(write_folder(tmp_path / "images", 12))
        (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
        config, error = small_config(dataset=str(folder), batch_size=4), ValueError
    out = tmp_path / "runs" / "run"
    with pytest.raises(error):
        train_run(config, out, verbose=0, extra_callbacks=extra)
    assert not (tmp_path / "runs").exists()  # neither the run folder nor the parent made for it


def test_a_failed_run_keeps_folders_that_existed(tmp_path):
    """An empty folder the user made stays (empty); a resumed run that fails keeps its commits; a failed
    --overwrite keeps the run it would have replaced."""
    empty = tmp_path / "mine"
    empty.mkdir()
    with pytest.raises(KeyboardInterrupt):
        train_run(small_config(epochs=1), empty, verbose=0, extra_callbacks=[RaiseAt(0, batch=1)])
    assert empty.is_dir() and os.listdir(empty) == []

    out = tmp_path / "run"
    train_run(small_config(epochs=1), out, verbose=0)
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    with pytest.raises(KeyboardInterrupt):
        train_run(small_config(epochs=2), out, resume=True, verbose=0, extra_callbacks=[RaiseAt(1, batch=1)])
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    with pytest.raises(ValueError, match="no labels"):
        train_run(_unlabelled_conditional(tmp_path), out, overwrite=True, verbose=0)
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before


def test_cli_broken_folder_prints_one_line_and_leaves_nothing(tmp_path):
    folder = pathlib.Path(write_folder(tmp_path / "images", 12))
    (folder / "empty.png").write_bytes(b"")
    out = tmp_path / "run"
    result = run_cli("train", "dcgan", "--dataset", folder, "--epochs", 1, "--batch-size", 4, "--out", out)
    assert result.returncode == 2
    lines = cli_lines(result.stderr)
    assert len(lines) == 1 and "empty.png" in lines[0], result.stderr[-2000:]
    assert not out.exists()


def test_extra_callbacks_logs_reach_history_csv(tmp_path):
    """A callback given to train_run that adds a value to the epoch's logs (as ModeCollapseAlarm does) is in
    history.csv: its rows are committed after the extra callbacks ran."""

    class Probe(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["probe"] = epoch + 0.5

    result = train_run(small_config(epochs=2), tmp_path / "run", verbose=0, extra_callbacks=[Probe()])
    assert [float(r["probe"]) for r in history_rows(result.run_dir)] == [0.5, 1.5]


@pytest.mark.parametrize("epoch", [-1, 1.5, True])
def test_bad_epoch_is_named(epoch):
    with pytest.raises(ValueError, match="`epoch` must be a non-negative integer or a scalar int64 tf.Variable"):
        data.load_dataset("digits", epoch=epoch)
    with pytest.raises(ValueError, match="must be a scalar int64, got int32"):
        data.load_dataset("digits", epoch=tf.Variable(0))
