"""The `keras-gen` command, run as a user runs it: a subprocess of the installed console script."""

import argparse
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from keras_gen import cli, presets

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def _command(*args):
    """The console script's command line (`python -m keras_gen` if the script is not on PATH)."""
    script = shutil.which("keras-gen", path=os.path.dirname(sys.executable)) or shutil.which("keras-gen")
    return ([script] if script else [sys.executable, "-m", "keras_gen"]) + [str(a) for a in args]


def keras_gen(*args, cwd=None, timeout=300, env=None):
    """Runs the console script as a user runs it (``env``: variables to set on top of the test environment)."""
    return subprocess.run(_command(*args), capture_output=True, text=True, env={**ENV, **(env or {})}, cwd=cwd,
                          timeout=timeout)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "dcgan-digits"
    result = keras_gen("train", "dcgan", "--dataset", "digits", "--epochs", 1, "--batch-size", 64, "--out", out)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def test_presets_lists_every_preset():
    result = keras_gen("presets")
    assert result.returncode == 0, result.stderr
    for name in presets.PRESETS:
        assert any(line.split()[0] == name for line in result.stdout.splitlines()[1:]), name


def test_train_writes_a_complete_run_folder(run_dir):
    for name in ("config.json", "dataset.json", "model.keras", "checkpoints/last.keras", "history.csv",
                 "losses.png", "samples/epoch_001.png", "samples/latest.png", "backup/epoch-000001/model.weights.h5"):
        assert (run_dir / name).is_file(), name
    config = json.loads((run_dir / "config.json").read_text())
    assert config["preset"] == "dcgan" and config["dataset"] == "digits" and config["epochs"] == 1
    grid = Image.open(run_dir / "samples" / "latest.png")
    assert grid.size[0] >= 256 and grid.mode == "L"
    assert (run_dir / "samples/latest.png").read_bytes() == (run_dir / "samples/epoch_001.png").read_bytes()


def test_existing_run_folder_is_never_overwritten_silently(run_dir):
    before = (run_dir / "model.keras").stat().st_mtime_ns
    result = keras_gen("train", "dcgan", "--dataset", "digits", "--epochs", 1, "--out", run_dir)
    assert result.returncode == 2
    assert "already exists" in result.stderr and "--resume" in result.stderr and "Traceback" not in result.stderr
    assert (run_dir / "model.keras").stat().st_mtime_ns == before


def test_sample_is_deterministic_for_a_seed(run_dir, tmp_path):
    paths = [tmp_path / "a.png", tmp_path / "b.png", tmp_path / "c.png"]
    for path, seed in zip(paths, (3, 3, 4)):
        result = keras_gen("sample", run_dir, "--n", 16, "--seed", seed, "--out", path)
        assert result.returncode == 0, result.stderr[-2000:]
    a, b, c = (np.asarray(Image.open(p)) for p in paths)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_resume_continues_from_the_backup(run_dir, tmp_path):
    copy = tmp_path / "resumed"
    shutil.copytree(run_dir, copy)
    result = keras_gen("train", "dcgan", "--resume", "--epochs", 2, "--out", copy)
    assert result.returncode == 0, result.stderr[-3000:]
    with open(copy / "history.csv") as f:
        epochs = [int(row["epoch"]) for row in csv.DictReader(f)]
    assert epochs == [0, 1]  # epoch 0 from the first run, epoch 1 from the resumed one
    assert (copy / "samples" / "epoch_002.png").is_file()
    assert json.loads((copy / "config.json").read_text())["epochs"] == 2


def test_unknown_preset_lists_the_valid_ones():
    result = keras_gen("train", "dcgann", "--epochs", 1)
    assert result.returncode == 2
    assert "Unknown preset 'dcgann'" in result.stderr and "wgan-gp" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_removed_preset_says_why_and_what_to_train_instead(tmp_path):
    result = keras_gen("train", "pacgan-grid2d", "--epochs", 1, "--out", tmp_path / "run")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "'pacgan-grid2d' was removed" in result.stderr and "23 %" in result.stderr and "`grid2d`" in result.stderr
    assert not (tmp_path / "run").exists()


def test_sample_from_a_folder_that_is_not_a_run(tmp_path):
    result = keras_gen("sample", tmp_path, "--out", tmp_path / "x.png")
    assert result.returncode == 2 and "not a keras-gen run folder" in result.stderr
    assert not (tmp_path / "x.png").exists()


def test_corrupt_model_file_is_named(run_dir, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(run_dir, broken)
    (broken / "model.keras").write_bytes(b"not a zip file")
    result = keras_gen("sample", broken, "--out", tmp_path / "x.png")
    assert result.returncode == 2
    assert "model.keras" in result.stderr and "corrupt" in result.stderr
    assert not (tmp_path / "x.png").exists()


def test_a_conditional_grid_has_one_column_per_class_and_only_full_rows(tmp_path):
    result = keras_gen("sample", "pretrained:cgan-mnist", "--out", tmp_path / "grid.png")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Wrote 70 samples" in result.stdout  # the default 64, rounded up to 7 rows of the 10 digits
    grid = np.asarray(Image.open(tmp_path / "grid.png"))
    assert grid.shape == (7 * 30 + 2, 10 * 30 + 2)  # 28x28 digits, 2 pixels of padding
    assert (grid[-30:-2, -30:-2] != 255).any()  # the last cell holds a digit (a 9), not padding


def test_bad_labels_for_an_unconditional_model(run_dir, tmp_path):
    result = keras_gen("sample", run_dir, "--labels", "1,2", "--n", 2, "--out", tmp_path / "x.png")
    assert result.returncode == 2 and "unconditional" in result.stderr


# ------------------------------------------------------------------------------------- a quiet, fast command line
CPP_LOG_LINE = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d|absl::InitializeLog|oneDNN custom operations|cuda drivers|"
                          r"cuInit|cpu_feature_guard", flags=re.M)
NO_LOG_SETTING = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}


def test_help_presets_and_argument_errors_do_not_import_tensorflow():
    """What answers from the parser alone never imports TensorFlow: the answer is quick and prints no C++ log."""
    program = textwrap.dedent("""
        import sys, time
        start = time.perf_counter()
        import keras_gen
        from keras_gen.cli import main
        for argv in (["--help"], ["train", "--help"], ["presets"], ["presets", "--show", "ring2d"],
                     ["presets", "--show", "nope"], ["train", "--bogus"], ["sample", "run", "--n", "x", "--out", "y"],
                     ["evaluate", "run", "--metrics", "fid,bogus"]):
            try:
                code = main(argv)
            except SystemExit as exit:
                code = exit.code
            print("RESULT", argv[0], code, "tensorflow" in sys.modules, file=sys.stderr)
        print("SECONDS", time.perf_counter() - start, file=sys.stderr)
        keras_gen.__all__, keras_gen.get_config, keras_gen.PRESETS
        print("IMPORTED", "tensorflow" in sys.modules, file=sys.stderr)
    """)
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, env=NO_LOG_SETTING,
                            timeout=120)
    results = [line.split() for line in result.stderr.splitlines() if line.startswith("RESULT")]
    assert [(name, code) for _, name, code, _ in results] == [
        ("--help", "0"), ("train", "0"), ("presets", "0"), ("presets", "0"), ("presets", "2"), ("train", "2"),
        ("sample", "2"), ("evaluate", "2")], result.stderr
    assert all(imported == "False" for *_, imported in results), result.stderr
    assert "IMPORTED False" in result.stderr and "Unknown preset 'nope'" in result.stderr
    assert not CPP_LOG_LINE.search(result.stderr), result.stderr
    seconds = float(re.search(r"SECONDS (\S+)", result.stderr).group(1))
    assert seconds < 5, f"the parser's answers took {seconds:.1f} s"  # TensorFlow's import alone takes ~3 s here


def test_import_keras_gen_resolves_every_public_name_lazily():
    import keras_gen
    from keras_gen.metrics.evaluate import METRICS

    assert {name: getattr(keras_gen, name) is not None for name in keras_gen.__all__} == dict.fromkeys(
        keras_gen.__all__, True)
    assert keras_gen.GAN.__name__ == "GAN" and callable(keras_gen.from_preset) and keras_gen.data.load_dataset
    assert "from_preset" in keras_gen.__all__ and set(keras_gen.__all__) <= set(dir(keras_gen))
    with pytest.raises(AttributeError, match="has no attribute 'nothing'"):
        keras_gen.nothing  # noqa: B018
    assert cli.METRIC_NAMES == METRICS


def test_commands_that_run_tensorflow_print_no_cpp_log_lines_unless_verbose(run_dir, tmp_path):
    quiet = subprocess.run(_command("sample", run_dir, "--n", 4, "--out", tmp_path / "a.png"), capture_output=True,
                           text=True, env=NO_LOG_SETTING, timeout=300)
    assert quiet.returncode == 0 and not CPP_LOG_LINE.search(quiet.stderr), quiet.stderr
    loud = subprocess.run(_command("--verbose", "sample", run_dir, "--n", 4, "--out", tmp_path / "b.png"),
                          capture_output=True, text=True, env=NO_LOG_SETTING, timeout=300)
    assert loud.returncode == 0 and CPP_LOG_LINE.search(loud.stderr), loud.stderr
    # The user's own level is theirs: 0 shows the start-up lines too.
    own = subprocess.run(_command("sample", tmp_path, "--out", tmp_path / "c.png"), capture_output=True, text=True,
                         env={**NO_LOG_SETTING, "TF_CPP_MIN_LOG_LEVEL": "0"}, timeout=300)
    assert own.returncode == 2 and CPP_LOG_LINE.search(own.stderr), own.stderr  # (not a run folder)


def test_python_dash_m_keras_gen_is_the_command():
    result = subprocess.run([sys.executable, "-m", "keras_gen", "presets"], capture_output=True, text=True, env=ENV,
                            timeout=120)
    assert result.returncode == 0 and result.stdout == keras_gen("presets").stdout


def _options(parser, path=("keras-gen",)):
    """``(command path, action)`` of every option of the parser and of its subcommands."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _options(child, (*path, name))
        elif action.option_strings and action.help != argparse.SUPPRESS:
            yield path, action


def test_every_flag_has_a_help_that_shows_its_default():
    parser = cli.build_parser()
    switches = (argparse._StoreTrueAction, argparse._StoreFalseAction, argparse._HelpAction)
    for path, action in _options(parser):
        where = f"{' '.join(path)} {action.option_strings[-1]}"
        assert action.help, f"{where} has no help"
        if isinstance(action, switches) or action.required:
            continue
        shown = cli._HelpFormatter("keras-gen")._expand_help(action)
        assert "default" in shown, f"{where}: {shown!r} does not say its default"
    helps = {a.option_strings[-1]: a.help for p, a in _options(parser) if p[-1] == "train"}
    for flag in ("--epochs", "--batch-size", "--seed"):
        assert "default: the preset's" in helps[flag], flag


def test_presets_is_a_table_of_dataset_epochs_and_purpose():
    result = keras_gen("presets", env={"COLUMNS": "200"})  # wide enough for every purpose
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["preset", "dataset", "epochs", "purpose"]
    rows = {line.split()[0]: line.split() for line in lines[1:] if line.strip() and not line.startswith("`")}
    assert set(rows) == set(presets.PRESETS)
    for name, row in rows.items():
        assert row[1] == presets.PRESETS[name]["dataset"] and int(row[2]) == presets.PRESETS[name]["epochs"], row
    assert "DCGAN on the embedded MNIST digits" in " ".join(rows["dcgan"])
    narrow = keras_gen("presets", env={"COLUMNS": "80"}).stdout.splitlines()
    assert all(len(line) <= 80 for line in narrow[:-1]) and any(line.endswith("...") for line in narrow)


def test_presets_show_prints_the_config_a_run_would_write():
    result = keras_gen("presets", "--show", "grid2d")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == presets.get_config("grid2d").to_dict()
    bad = keras_gen("presets", "--show", "grid3d")
    assert bad.returncode == 2 and "Unknown preset 'grid3d'" in bad.stderr and "grid2d" in bad.stderr


def test_train_takes_the_fit_verbosity_by_its_new_name_and_its_old_one():
    parse = cli.build_parser().parse_args
    assert parse(["train", "dcgan", "--fit-verbose", "2"]).fit_verbose == 2
    old = parse(["train", "dcgan", "--verbose", "0"])
    assert old.verbose == 0 and not isinstance(old.verbose, bool)  # main() reads it as --fit-verbose 0
    assert parse(["train", "dcgan", "--verbose"]).verbose is True
    assert parse(["--verbose", "train", "dcgan"]).verbose is True
    assert parse(["sample", "run", "--out", "x.png", "-v"]).verbose is True
    assert parse(["sample", "run", "--out", "x.png"]).verbose is False
