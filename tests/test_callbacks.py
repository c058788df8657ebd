"""Callbacks and image writing: NaN stops keep the last good checkpoint, grids, atomic writes."""

import io
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_gen import callbacks as cbs
from keras_gen import networks as nets
from keras_gen.files import atomic_write
from keras_gen.images import image_grid, save_image_grid, to_uint8
from keras_gen.models import GAN


def small_gan(num_classes=None):
    g = nets.dcgan_generator(latent_dim=8, image_shape=(8, 8, 1), width=4, num_classes=num_classes)
    d = nets.dcgan_discriminator(image_shape=(8, 8, 1), width=4, num_classes=num_classes)
    gan = GAN(g, d, num_classes=num_classes, seed=0)
    gan.compile()
    return gan


IMAGES = np.random.default_rng(0).uniform(-1, 1, size=(16, 8, 8, 1)).astype("float32")


class PoisonAt(keras.callbacks.Callback):
    """Sets the discriminator's weights to NaN when an epoch begins (a divergence the logs will show)."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            for v in self.model.discriminator.trainable_variables:
                v.assign(tf.fill(v.shape, np.float32(np.nan)))


def test_nan_stops_training_and_keeps_the_last_good_checkpoint(tmp_path):
    gan = small_gan()
    checkpoint = str(tmp_path / "last.keras")
    stream = io.StringIO()
    stop = cbs.StopOnNaN(checkpoint=checkpoint, stream=stream)
    backup = cbs.BackupAndRestore(str(tmp_path / "backup"))
    gan.fit(IMAGES, batch_size=8, epochs=4, verbose=0,
            callbacks=[stop, backup, cbs.ModelCheckpoint(checkpoint), PoisonAt(1)])
    assert stop.stopped_at[:2] == (1, 0) and "d_loss" in stop.stopped_at[2]
    message = stream.getvalue()
    assert "non-finite loss" in message and "epoch 2, batch 1" in message and checkpoint in message
    # The checkpoint and the backup are from epoch 1, with finite weights.
    restored = keras.models.load_model(checkpoint)
    assert all(np.all(np.isfinite(v.numpy())) for v in restored.discriminator.weights)
    with open(tmp_path / "backup" / "training_metadata.json") as f:
        assert json.load(f)["epoch"] == 1


def test_sample_grid_writes_every_epoch_from_fixed_latents(tmp_path):
    gan = small_gan(num_classes=3)
    grid = cbs.SampleGrid(str(tmp_path), n=9, seed=1)
    gan.fit(IMAGES, np.arange(16) % 3, batch_size=8, epochs=2, verbose=0, callbacks=[grid])
    assert sorted(os.listdir(tmp_path)) == ["epoch_001.png", "epoch_002.png", "latest.png"]
    assert (tmp_path / "latest.png").read_bytes() == (tmp_path / "epoch_002.png").read_bytes()
    # Writing again from the same fixed latents reproduces the last grid exactly.
    grid.write(str(tmp_path / "again.png"))
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "again.png")),
                                  np.asarray(Image.open(tmp_path / "epoch_002.png")))


def test_a_conditional_sample_grid_has_only_full_rows(tmp_path):
    gan = small_gan(num_classes=3)
    gan.fit(IMAGES, np.arange(16) % 3, batch_size=8, epochs=1, verbose=0,
            callbacks=[cbs.SampleGrid(str(tmp_path), n=7, seed=1)])
    grid = np.asarray(Image.open(tmp_path / "latest.png"))
    cell = 8 + 2  # 8x8 images, 2 pixels of padding, upscaled to at least 256 pixels wide
    scale = grid.shape[1] // (3 * cell + 2)
    grid = grid[::scale, ::scale]
    assert grid.shape == (3 * cell + 2, 3 * cell + 2)
    # 7 samples rounded up to 9: the third row is full, its last cell (class 2) a sample, not padding.
    assert (grid[2 * cell + 2:3 * cell, 2 * cell + 2:3 * cell] != 255).any()


def test_sample_grid_every_n_epochs_still_writes_the_last(tmp_path):
    gan = small_gan()
    gan.fit(IMAGES, batch_size=8, epochs=3, verbose=0, callbacks=[cbs.SampleGrid(str(tmp_path), n=4, every=2)])
    assert sorted(os.listdir(tmp_path)) == ["epoch_002.png", "epoch_003.png", "latest.png"]


def test_model_checkpoint_requires_keras_suffix():
    with pytest.raises(ValueError, match="must end in '.keras'"):
        cbs.ModelCheckpoint("model.h5")


def test_to_uint8_and_grid_layout():
    np.testing.assert_array_equal(to_uint8(np.array([-1.0, 0.0, 1.0, 2.0])), [0, 128, 255, 255])
    images = np.stack([np.full((2, 3, 1), v, "float32") for v in (-1.0, 1.0, -1.0)])
    grid = image_grid(images, nrow=2, padding=1)
    # 2 rows x 2 columns of 2x3 images with 1 pixel of padding: (2*3+1, 2*4+1).
    assert grid.shape == (7, 9, 1)
    np.testing.assert_array_equal(grid[1:3, 1:4, 0], 0)
    np.testing.assert_array_equal(grid[1:3, 5:8, 0], 255)
    np.testing.assert_array_equal(grid[4:6, 1:4, 0], 0)
    np.testing.assert_array_equal(grid[4:6, 5:8, 0], 255)  # the empty slot keeps the padding colour
    with pytest.raises(ValueError, match=r"\(N, H, W, 1\|3\)"):
        image_grid(np.zeros((2, 4, 4, 2)))


def test_saved_grid_is_upscaled_and_lossless(tmp_path):
    images = np.random.default_rng(1).uniform(-1, 1, size=(4, 8, 8, 3)).astype("float32")
    path = save_image_grid(images, tmp_path / "grid.png", nrow=2, min_size=100)
    png = np.asarray(Image.open(path))
    raw = image_grid(images, nrow=2)
    scale = png.shape[1] // raw.shape[1]
    assert scale >= 2 and png.shape[1] >= 100
    np.testing.assert_array_equal(png[::scale, ::scale], raw)


def test_atomic_write_leaves_nothing_behind_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")

    def failing(tmp):
        with open(tmp, "w") as f:
            f.write("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, failing)
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_atomic_write_gives_the_mode_open_would(tmp_path):
    """mkstemp makes 0600 files; the result must get the mode a plain open() gives (0666 less the umask)."""
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    path = atomic_write(tmp_path / "atomic.txt", lambda tmp: open(tmp, "w").close())
    assert os.stat(path).st_mode & 0o777 == os.stat(plain).st_mode & 0o777


def test_backup_and_restore_removes_partial_writes(tmp_path):
    """The temporary files that killed writes left in a `BackupAndRestore` folder (0 B to 1 MB) are removed when
    training begins (run folders use `RunBackup`; benchmarks/mode_collapse.py keeps a plain backup)."""
    backup = tmp_path / "backup"
    backup.mkdir()
    for i, name in enumerate([".tmp-x1y2.weights.h5", ".tmp-z3w4.json"]):
        (backup / name).write_bytes(b"\0" * (i * 500_000))
    small_gan().fit(IMAGES, batch_size=8, epochs=1, verbose=0, callbacks=[cbs.BackupAndRestore(str(backup))])
    assert sorted(os.listdir(backup)) == ["latest.weights.h5", "training_metadata.json"]


def test_run_backup_commits_only_finite_epochs(tmp_path):
    """A non-finite epoch is not committed: the last commit (epoch 1) is whole and restores into a fresh model
    with finite weights, its optimizers' iterations and its history row."""
    gan = small_gan()
    backup_dir, history = tmp_path / "backup", tmp_path / "history.csv"
    gan.fit(IMAGES, batch_size=8, epochs=4, verbose=0,
            callbacks=[cbs.StopOnNaN(stream=io.StringIO()), cbs.RunBackup(backup_dir, history), PoisonAt(1)])
    assert os.listdir(backup_dir) == ["epoch-000001"]
    state = json.loads((backup_dir / "epoch-000001" / "state.json").read_text())
    assert state["epoch"] == 1 and [row["epoch"] for row in state["history"]] == [0]
    restored = small_gan()
    backup = cbs.RunBackup(backup_dir, history)
    backup.set_model(restored)
    assert backup.restore() == 1 and restored._initial_epoch == 1
    assert all(np.all(np.isfinite(v.numpy())) for v in restored.weights)
    assert int(restored.d_optimizer.iterations) == int(restored.g_optimizer.iterations) == 2  # 16 images, batch 8
    assert history.read_text().splitlines()[0].split(",")[0] == "epoch" and len(history.read_text().splitlines()) == 2


def test_shuffle_epoch_needs_an_int64_variable():
    with pytest.raises(ValueError, match="scalar int64 tf.Variable"):
        cbs.ShuffleEpoch(tf.Variable(0))


def _saved_figures(monkeypatch):
    """The matplotlib figures saved from now on (whatever function draws them)."""
    from matplotlib.figure import Figure

    saved, savefig = [], Figure.savefig

    def record(figure, *args, **kwargs):
        saved.append(figure)
        return savefig(figure, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", record)
    return saved


def test_loss_plot_shows_only_what_was_logged_losses_apart_from_other_values(tmp_path, monkeypatch):
    """history.csv columns with no value (``NA``: a validation column no epoch logged) get no curve and no legend
    entry; the losses share one axis and the other logged values (a mode-collapse score) have their own."""
    csv_path = tmp_path / "history.csv"
    csv_path.write_text(
        "epoch,d_loss,g_loss,mode_entropy,val_d_loss,val_g_loss\n"
        "0,1.25,0.5,2.0,NA,NA\n"
        "1,1.0,NA,2.25,NA,NA\n"
        "2,0.75,0.25,2.5,NA,NA\n"
    )
    saved = _saved_figures(monkeypatch)
    plot = cbs.LossPlot(csv_path, tmp_path / "losses.png")
    plot.on_train_end()
    assert (tmp_path / "losses.png").is_file() and len(saved) == 1
    axes = [ax for ax in saved[0].axes if ax.get_legend() is not None]
    legends = [[text.get_text() for text in ax.get_legend().get_texts()] for ax in axes]
    assert legends == [["d_loss", "g_loss"], ["mode_entropy"]]
    curves = {line.get_label(): np.asarray(line.get_ydata(), dtype="float64") for ax in axes for line in ax.lines}
    np.testing.assert_array_equal(curves["d_loss"], [1.25, 1.0, 0.75])
    np.testing.assert_array_equal(curves["g_loss"], [0.5, np.nan, 0.25])  # a gap where nothing was logged
    np.testing.assert_array_equal(curves["mode_entropy"], [2.0, 2.25, 2.5])


def test_loss_plot_draws_validation_beside_its_training_curve():
    from keras_gen.images import loss_figure

    figure = loss_figure({"loss": [3.0, 2.0], "val_loss": [3.5, 2.5], "kl_loss": [0.5, 0.75]})
    (ax,) = figure.axes  # only losses: one axis
    lines = {line.get_label(): line for line in ax.lines}
    assert sorted(lines) == ["kl_loss", "loss", "val_loss"]
    assert lines["val_loss"].get_color() == lines["loss"].get_color() and lines["val_loss"].get_linestyle() == "--"


def test_loss_plot_of_nothing_logged_writes_nothing(tmp_path):
    from keras_gen.images import save_loss_plot

    assert save_loss_plot({"d_loss": [np.nan], "val_d_loss": [np.nan]}, tmp_path / "losses.png") is None
    assert not (tmp_path / "losses.png").exists()
