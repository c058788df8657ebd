"""tf.distribute, mixed precision and determinism: distributed steps equal single-device ones.

MirroredStrategy runs over 2 logical CPU devices and MultiWorkerMirroredStrategy over 2 local processes on
127.0.0.1; both need a fresh TensorFlow runtime, so they run in subprocesses that the tests start and stop.
"""

import csv
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_gen import losses
from keras_gen import networks as nets

SCRIPTS = pathlib.Path(__file__).parent / "scripts"
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def _last_json_line(text):
    return json.loads([line for line in text.splitlines() if line.startswith("{")][-1])


@pytest.mark.parametrize("preset,overrides", [("cgan", None), ("wgan-gp", None), ("cvae", None),
                                              ("vqvae", ['{"dead_code_steps": 1}']),
                                              ("dcgan", ['{"standing_statistics": 2}',
                                                        '{"use_ema": true, "ema_momentum": 0.5}'])])
def test_mirrored_matches_one_device_on_the_same_global_batch(preset, overrides):
    # cgan: synchronized conditional batch norm, projection D; wgan-gp: 5 critic steps and a gradient penalty;
    # cvae: the reparameterization draws; vqvae: dead codes restarted every step (usage summed over replicas,
    # replacements from the global batch) and the prior's step; dcgan with use_ema: the generator's weight
    # average, kept per replica by the optimizer and put in place by GAN.fit in cross-replica context, then its
    # batch-norm statistics recomputed there (standing_statistics; the moving statistics are among the weights).
    result = subprocess.run(
        [sys.executable, str(SCRIPTS / "mirrored_parity.py"), preset, "3"] + (overrides or []),
        capture_output=True, text=True, env=ENV, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = _last_json_line(result.stdout)
    assert report["replicas"] == [1, 2]
    assert report["max_weight_change"] > 1e-3  # training happened
    assert report["max_weight_diff"] < 1e-6, report
    single, mirrored = report["logs"]
    for key in single:
        assert mirrored[key] == pytest.approx(single[key], rel=1e-5, abs=1e-6), key
    assert report["d_iterations"][0] == report["d_iterations"][1]
    assert report["jit_supported"][0] is False and "without jit_compile" in report["jit_supported"][1]


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _keras_gen_command():
    script = shutil.which("keras-gen", path=os.path.dirname(sys.executable))
    return [script] if script else [sys.executable, "-m", "keras_gen.cli"]


def _run_workers(out, *extra):
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    try:
        for index in range(2):
            env = {**ENV, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
            procs.append(subprocess.Popen(
                _keras_gen_command() + ["train", "ring2d", "--strategy", "multiworker", "--batch-size", "2500",
                                        "--out", str(out), *extra],  # 20 steps an epoch
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
            ))
        outputs = [p.communicate(timeout=400) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, (_, err) in zip(procs, outputs):
        assert p.returncode == 0, err[-3000:]


def _assert_same_models(out):
    chief = out / "model.keras"
    worker = pathlib.Path(str(out) + ".workers") / "worker-1" / "model.keras"
    assert chief.is_file() and worker.is_file()
    a, b = keras.models.load_model(chief), keras.models.load_model(worker)
    assert len(a.weights) == len(b.weights) > 0
    for wa, wb in zip(a.weights, b.weights):
        np.testing.assert_array_equal(wa.numpy(), wb.numpy())
    assert int(a.g_optimizer.iterations) == int(b.g_optimizer.iterations) > 0
    return a


def test_two_workers_end_with_identical_weights_and_resume_together(tmp_path):
    out = tmp_path / "run"
    _run_workers(out, "--epochs", "1")
    first = _assert_same_models(out)
    steps_per_epoch = int(first.g_optimizer.iterations)
    # Both workers stopped after epoch 1; restarted with --resume they continue from the chief's backup.
    _run_workers(out, "--resume", "--epochs", "2")
    resumed = _assert_same_models(out)
    assert int(resumed.g_optimizer.iterations) == 2 * steps_per_epoch
    with open(out / "history.csv") as f:
        assert [int(row["epoch"]) for row in csv.DictReader(f)] == [0, 1]


def test_deterministic_runs_give_bit_identical_losses(tmp_path):
    histories = []
    for name in ("a", "b"):
        result = subprocess.run(
            _keras_gen_command() + ["train", "wgan-gp", "--dataset", "digits", "--epochs", "2", "--deterministic",
                                    "--seed", "7", "--set", "networks.generator.width=16",
                                    "--set", "networks.discriminator.width=16", "--out", str(tmp_path / name)],
            capture_output=True, text=True, env=ENV, timeout=400,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        with open(tmp_path / name / "history.csv") as f:
            histories.append(list(csv.DictReader(f)))
    assert histories[0] == histories[1]
    assert len(histories[0]) == 2


def test_penalties_under_loss_scaling_match_float32():
    """The penalty's inner gradient is loss-scaled under mixed float16, so it does not underflow."""
    rng = np.random.default_rng(0)
    real = rng.uniform(-1, 1, size=(4, 8, 8, 1)).astype("float32")
    fake = rng.uniform(-1, 1, size=(4, 8, 8, 1)).astype("float32")
    reference = nets.dcgan_discriminator(image_shape=(8, 8, 1), width=4, normalization=None)
    # Tiny weights make the input gradients small enough to underflow in float16 without scaling.
    reference.set_weights([w * 1e-3 for w in reference.get_weights()])
    expected_gp = float(losses.gradient_penalty(reference, real, fake, seed=1, target=0.0))
    expected_r1 = float(losses.r1_penalty(reference, real))
    keras.config.set_dtype_policy("mixed_float16")
    half = nets.dcgan_discriminator(image_shape=(8, 8, 1), width=4, normalization=None)
    half.set_weights(reference.get_weights())
    scaled_gp = float(losses.gradient_penalty(half, real, fake, seed=1, target=0.0, loss_scale=2.0**15))
    scaled_r1 = float(losses.r1_penalty(half, real, loss_scale=2.0**15))
    assert scaled_gp == pytest.approx(expected_gp, rel=2e-2)
    assert scaled_r1 == pytest.approx(expected_r1, rel=2e-2)
    unscaled_r1 = float(losses.r1_penalty(half, real))
    assert abs(unscaled_r1 - expected_r1) > abs(scaled_r1 - expected_r1)  # scaling is what makes it right
