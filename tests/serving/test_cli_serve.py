"""The commands: ``keras-gen serve`` as a process, ``keras-gen sample --server`` against it."""

import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.serving.helpers import _base


def test_keras_gen_serve_and_sample_commands(exported, tmp_path, capsys):
    """``keras-gen serve`` as a process: sample from it with ``keras-gen sample --server`` (gRPC and REST), then
    SIGTERM stops it cleanly."""
    from PIL import Image

    from keras_gen import cli
    from keras_gen.images import image_grid

    models, paths = exported
    base = _base(tmp_path, paths, "a", "c")
    script = shutil.which("keras-gen", path=os.path.dirname(sys.executable))
    command = [script] if script else [sys.executable, "-m", "keras_gen.cli"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen(
        command + ["serve", str(base), "--grpc-port", "0", "--rest-port", "0", "--poll-seconds", "0",
                   "--log-level", "debug", "--tensorflow-intra-op-parallelism", "1",
                   "--tensorflow-inter-op-parallelism", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        lines = []
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not any(line.startswith("Stop with") for line in lines):
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line.strip())
        assert any(line.startswith("Stop with") for line in lines), (lines, process.stderr.read()[-3000:])
        assert "TensorFlow threads: intra-op 1, inter-op 2" in lines  # as TensorFlow reports them after setting
        grpc_address = next(line.split()[1] for line in lines if line.startswith("gRPC:"))
        rest_url = next(line.split()[1] for line in lines if line.startswith("REST:")).split("/v1/")[0]
        expected = image_grid(models["a"].generate(9, seed=4)).astype(int)
        for extra, server in (([], grpc_address), (["--rest"], rest_url)):
            out = tmp_path / f"grid{len(extra)}.png"
            code = cli.main(["sample", "--server", server, "--model", "dcgan", "--n", "9", "--seed", "4",
                             "--out", str(out)] + extra)
            assert code == 0
            grid = np.asarray(Image.open(out)).astype(int)
            scale = grid.shape[0] // expected.shape[0]
            assert np.abs(grid[::scale, ::scale] - expected[..., 0]).max() <= 1
        capsys.readouterr()
        assert cli.main(["sample", "--server", grpc_address, "--model", "cgan", "--out", str(out)]) == 2
        assert "conditional" in capsys.readouterr().err
        assert cli.main(["sample", "--server", grpc_address, "--model", "gan", "--out", str(out)]) == 2
        assert "NOT_FOUND" in capsys.readouterr().err
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
        stderr = process.stderr.read()
        assert "Server stopped" in stderr and "Traceback" not in stderr
        assert "gRPC Predict model=dcgan" in stderr and "REST predict model=dcgan" in stderr  # debug request lines
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)
        process.stdout.close()
        process.stderr.close()


def test_sample_command_errors_are_clean(capsys, tmp_path, unused_port):
    from keras_gen import cli

    with pytest.raises(SystemExit):
        cli.main(["serve", str(tmp_path), "--tensorflow-intra-op-parallelism", "-1"])
    assert "thread count >= 0" in capsys.readouterr().err

    out = str(tmp_path / "g.png")
    assert cli.main(["sample", "--out", out]) == 2
    assert "--server" in capsys.readouterr().err
    assert cli.main(["sample", "--server", f"127.0.0.1:{unused_port}", "--out", out]) == 2
    assert "--model" in capsys.readouterr().err
    assert cli.main(["sample", "--server", f"127.0.0.1:{unused_port}", "--model", "m", "--retries", "0",
                     "--timeout", "2", "--out", out]) == 2
    err = capsys.readouterr().err
    assert "UNAVAILABLE" in err and "Traceback" not in err



@pytest.mark.parametrize("flags", [
    ["--batching-parameters-file", "serving/batching.config"],
    ["--per-model-batching"],
    ["--max-batch-size", "8"],
])
def test_batching_options_need_batching_as_in_tf_serving(capsys, tmp_path, flags):
    """TF Serving reads its batching file and per-model parameters only with --enable_batching; keras-gen serve
    says so before it loads anything (it used to turn batching on by itself)."""
    from keras_gen import cli

    assert cli.main(["serve", str(tmp_path), *flags]) == 2
    err = capsys.readouterr().err
    assert f"{flags[0]}" in err and "add --batching" in err and "Traceback" not in err
