"""TensorBoard logs of a run, read back from the event files with TensorFlow's own reader: the epoch scalars are
history.csv's rows, the image is the sample grid PNG, the hparams are config.json, a resumed run has each epoch
once, and the evaluation scalars are the JSON report's numbers (docs/training.md, "TensorBoard")."""

import io
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_gen import callbacks as cbs
from keras_gen.runs import evaluate_run, train_run
from tests.test_callbacks import IMAGES, small_gan
from tests.test_runs import ENV, REPO, history_rows, small_config


def read_events(directory):
    """``[(tag, step, value)]`` of every summary value in the event files of ``directory``, in the order
    TensorBoard reads them (files by name); ``value`` is the `Summary.Value` proto."""
    found = []
    for name in sorted(os.listdir(directory)):
        if "tfevents" not in name:
            continue
        for event in tf.compat.v1.train.summary_iterator(os.path.join(directory, name)):
            for value in event.summary.value:
                found.append((value.tag, event.step, value))
    return found


def scalars(directory, prefix=""):
    """``{tag: [(step, float)]}`` of the scalar summaries whose tag starts with ``prefix``, every one of them."""
    out = {}
    for tag, step, value in read_events(directory):
        if tag.startswith(prefix) and value.metadata.plugin_data.plugin_name in ("scalars", ""):
            out.setdefault(tag, []).append((step, float(tf.make_ndarray(value.tensor))))
    return out


def flatten(config, prefix=""):
    """The leaves of a nested dict as ``{dotted.name: value}`` (the test's own reference)."""
    out = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def assert_epochs_match_history(run_dir):
    """Each column of history.csv is the scalar ``epoch_COLUMN`` at the steps 0, 1, ... (each once), equal to the
    row's value (to float32 precision: summaries hold float32)."""
    rows = history_rows(run_dir)
    logged = scalars(os.path.join(run_dir, "logs", "train"), prefix="epoch_")
    columns = [c for c in rows[0] if c != "epoch"]
    assert sorted(logged) == sorted(f"epoch_{c}" for c in columns)
    for column in columns:
        steps = [step for step, _ in logged[f"epoch_{column}"]]
        assert steps == [int(row["epoch"]) for row in rows], (column, steps)
        for (_, value), row in zip(logged[f"epoch_{column}"], rows):
            assert value == pytest.approx(float(row[column]), rel=1e-6, abs=1e-7), (column, row["epoch"])


def test_a_run_logs_its_history_its_sample_grids_and_its_config(tmp_path):
    out = tmp_path / "run"
    train_run(small_config(epochs=2), out, verbose=0, log_every=10)  # 25 steps an epoch
    logs = out / "logs"
    assert_epochs_match_history(out)
    # Batch summaries every 10 training steps, numbered by the steps done: 10, 20 in epoch 1, 30, 40, 50 in epoch 2.
    batch = scalars(logs / "train", prefix="batch_")
    assert sorted(batch) == ["batch_d_loss", "batch_g_loss"]
    assert [step for step, _ in batch["batch_d_loss"]] == [10, 20, 30, 40, 50]
    # The last batch summary of an epoch is the epoch's value (Keras logs running means of the epoch).
    assert batch["batch_d_loss"][-1][1] == pytest.approx(float(history_rows(out)[-1]["d_loss"]), rel=1e-6)

    # The image of each epoch is the sample grid PNG written for it, pixel for pixel.
    images = [(step, value) for tag, step, value in read_events(logs / "train") if tag == "samples"]
    assert [step for step, _ in images] == [0, 1]
    for step, value in images:
        assert value.metadata.plugin_data.plugin_name == "images"
        width, height, png = value.tensor.string_val
        pixels = np.asarray(Image.open(io.BytesIO(png)))
        expected = np.asarray(Image.open(out / "samples" / f"epoch_{step + 1:03d}.png"))
        np.testing.assert_array_equal(pixels, expected)
        assert (int(width), int(height)) == (expected.shape[1], expected.shape[0])

    # The hparams plugin's session, in logs/: the config's values under their config.json names.
    from tensorboard.plugins.hparams import metadata as hparams_metadata

    sessions = [value for tag, _, value in read_events(logs) if value.metadata.plugin_data.plugin_name == "hparams"]
    assert len(sessions) == 1
    info = hparams_metadata.parse_session_start_info_plugin_data(sessions[0].metadata.plugin_data.content)
    hparams = {name: getattr(value, value.WhichOneof("kind")) for name, value in info.hparams.items()}
    config = flatten(json.loads((out / "config.json").read_text()))
    expected = {k: v for k, v in config.items() if v is not None and k != "description"}
    assert set(hparams) == set(expected)
    for name, value in expected.items():
        if isinstance(value, bool):
            assert hparams[name] is value, name
        elif isinstance(value, (int, float)):
            assert hparams[name] == pytest.approx(value), name
        else:
            assert hparams[name] == value, name
    assert hparams["networks.generator.width"] == 4 and hparams["dataset"] == "digits"
    assert hparams["optimizers.g_optimizer.config.learning_rate"] == pytest.approx(2e-4)


def test_the_hparams_plugin_finds_the_config_and_the_final_losses(tmp_path):
    """What TensorBoard's hparams dashboard shows, asked through its own backend: one session with the config's
    values, and the losses of ``train`` and the evaluation of ``eval`` among its metrics."""
    from tensorboard import context
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.hparams import backend_context

    out = tmp_path / "runs" / "dcgan"
    train_run(small_config(epochs=1), out, verbose=0)
    cbs.log_evaluation(out / "logs", {"metrics": {"fid": {"value": 12.5, "num_samples": 100}}}, step=0)
    multiplexer = plugin_event_multiplexer.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(tmp_path / "runs"))
    multiplexer.Reload()
    provider = data_provider.MultiplexerDataProvider(multiplexer, str(tmp_path / "runs"))
    hparams_context = backend_context.Context(base_plugin.TBContext(data_provider=provider))
    request = context.RequestContext()
    experiment = hparams_context.experiment_from_metadata(
        request, "", True, hparams_context.hparams_metadata(request, ""),
        hparams_context.hparams_from_data_provider(request, "", 1000),
    )
    hparams = {info.name for info in experiment.hparam_infos}
    assert {"batch_size", "seed", "networks.generator.width", "optimizers.d_optimizer.config.learning_rate"} <= hparams
    metrics = {(info.name.group, info.name.tag) for info in experiment.metric_infos}
    assert {("train", "epoch_d_loss"), ("train", "epoch_g_loss"), ("eval", "fid")} <= metrics


def _child(argv):
    """The training subprocess of the resume test: ``OUT EPOCHS``, killed where ``KERAS_GEN_EXIT_AT`` says."""
    out, epochs = argv
    train_run(small_config(epochs=int(epochs)), out, verbose=0, log_every=10)


def test_a_resumed_run_logs_each_epoch_once(tmp_path):
    """A process killed when the commit of epoch 2 begins (epoch 2's summaries are on the disk, epoch 2 is not
    committed) resumes: epoch 2 is trained again and logged once, every epoch and every logged step once, and
    the epoch scalars are history.csv's rows."""
    out = tmp_path / "run"
    code = "import sys; from tests.test_tensorboard import _child; _child(sys.argv[1:])"
    killed = subprocess.run([sys.executable, "-c", code, str(out), "3"], capture_output=True, text=True,
                            env={**ENV, cbs.EXIT_AT_ENV: "backup-started@2"}, cwd=REPO, timeout=300)
    assert killed.returncode == 86, killed.stderr[-3000:]
    assert cbs.RunBackup(out / "backup").committed_epoch() == 1
    before = scalars(out / "logs" / "train", prefix="epoch_d_loss")["epoch_d_loss"]
    assert [step for step, _ in before] == [0, 1]  # the killed process had logged epoch 2 (step 1)

    train_run(small_config(epochs=3), out, resume=True, verbose=0, log_every=10)
    assert_epochs_match_history(out)
    batch = scalars(out / "logs" / "train", prefix="batch_d_loss")["batch_d_loss"]
    assert [step for step, _ in batch] == [10, 20, 30, 40, 50, 60, 70]
    images = [step for tag, step, _ in read_events(out / "logs" / "train") if tag == "samples"]
    assert images == [0, 1, 2]


def test_batch_summaries_count_training_steps_across_epochs_and_calls(tmp_path):
    """8 steps an epoch, 3 steps a call (calls end after steps 3, 6, 8, 11, 14, 16): with a summary every 5 steps,
    the calls that pass 5, 10 and 15 are logged, at the steps they end on."""
    gan = small_gan()
    gan.compile(steps_per_execution=3)
    board = cbs.TensorBoard(tmp_path / "logs", update_freq=5)
    gan.fit(IMAGES, batch_size=2, epochs=2, verbose=0, callbacks=[board])
    logged = scalars(tmp_path / "logs" / "train")
    assert [step for step, _ in logged["batch_d_loss"]] == [6, 11, 16]
    assert [step for step, _ in logged["epoch_d_loss"]] == [0, 1]


def test_evaluate_writes_its_numbers_into_the_runs_logs(ring_run):
    """`evaluate_run` on a run folder (what ``keras-gen evaluate RUN`` runs) writes the report's numbers to
    ``logs/eval`` at the run's last epoch; a second evaluation replaces them there."""
    for seed in (0, 1):
        report = evaluate_run(ring_run, metrics="coverage,fid", n=500, seed=seed, progress=False)
    logged = scalars(ring_run / "logs" / "eval")
    fid, coverage = report["metrics"]["fid"], report["metrics"]["coverage"]
    expected = {"fid": fid["value"], "coverage/modes": coverage["modes"],
                "coverage/high_quality": coverage["high_quality"]}
    if coverage["reverse_kl"] is not None:
        expected["coverage/reverse_kl"] = coverage["reverse_kl"]
    assert set(logged) == set(expected)
    for tag, value in expected.items():
        assert logged[tag] == [(0, pytest.approx(value, rel=1e-6))], tag  # the 1-epoch run's last epoch is 0


def test_evaluation_scalars_leave_out_settings_and_lists():
    report = {"metrics": {
        "kid": {"mean": 0.5, "std": 0.1, "subset_size": 100, "extractor": "classifier", "num_samples": 10},
        "coverage": {"modes": 7, "num_modes": 8, "counts": [1, 2], "reverse_kl": None, "high_quality": 0.25},
    }}
    assert cbs.evaluation_scalars(report) == {"kid/mean": 0.5, "kid/std": 0.1, "coverage/modes": 7.0,
                                              "coverage/high_quality": 0.25}


def test_tensorboard_arguments_are_checked(tmp_path):
    with pytest.raises(ValueError, match="`update_freq` must be a positive integer, got 0"):
        cbs.TensorBoard(tmp_path, update_freq=0)
    with pytest.raises(TypeError, match="SampleGrid or ReconstructionGrid.*'samples' is a StopOnNaN"):
        cbs.TensorBoard(tmp_path, images={"samples": cbs.StopOnNaN()})


def test_import_keras_gen_does_not_import_tensorboard():
    code = "import sys, keras_gen; print(sorted(m for m in sys.modules if m.split('.')[0] == 'tensorboard'))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, cwd=REPO,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "[]"


def test_an_evaluation_that_cannot_be_logged_is_still_returned(ring_run, tmp_path):
    run = tmp_path / "ring"
    shutil.copytree(ring_run, run)
    shutil.rmtree(run / "logs")
    (run / "logs").write_text("not a folder")
    with pytest.warns(RuntimeWarning, match=r"The evaluation was not written to .*ring/logs/eval"):
        report = evaluate_run(run, metrics="coverage", n=500, progress=False)
    assert report["metrics"]["coverage"]["modes"] >= 0
