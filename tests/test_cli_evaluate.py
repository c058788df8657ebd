"""`keras-gen evaluate` and `keras_gen.runs.evaluate_run` on a run folder and on its export."""

import json
import os

import pytest
import tensorflow as tf

from keras_gen.runs import evaluate_run
from tests.test_cli import keras_gen


# ------------------------------------------------------------------------------------------- the CLI
def test_cli_evaluate_writes_json_and_table(ring_run):
    result = keras_gen("evaluate", ring_run, "--metrics", "coverage,fid", "--n", 500, "--no-progress")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| modes covered |" in result.stdout and "| FID |" in result.stdout
    saved = json.loads((ring_run / "eval.json").read_text())
    assert set(saved) >= {"source", "dataset", "num_samples", "num_real", "extractor", "metrics", "seed"}
    assert saved["dataset"] == "ring2d" and saved["num_samples"] == 500 and saved["source"]["type"] == "run"
    assert saved["environment"]["tensorflow"] == tf.__version__ and saved["environment"]["cpu_count"] == os.cpu_count()
    assert list(saved["metrics"]) == ["fid", "coverage"]
    assert set(saved["metrics"]["coverage"]) >= {"modes", "num_modes", "high_quality", "reverse_kl", "counts"}


def test_cli_evaluate_errors(ring_run, tmp_path, capsys):
    from keras_gen import cli  # in-process: the same code path as the console script, without a new interpreter

    with pytest.raises(SystemExit) as exit_info:  # argparse rejects unknown names before anything is loaded
        cli.main(["evaluate", str(ring_run), "--metrics", "fid,bogus"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "bogus" in err and "fid, kid, is, pr, coverage" in err
    assert cli.main(["evaluate", str(ring_run), "--metrics", "is", "--out", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err
    assert "do not apply" in err and "is: it needs class probabilities" in err and not (tmp_path / "x.json").exists()
    assert cli.main(["evaluate", str(tmp_path / "nothing")]) == 2
    assert "Nothing at" in capsys.readouterr().err


def test_evaluate_an_export_like_its_run(ring_run, tmp_path):
    import keras_gen.export as kx

    result = kx.export_run(ring_run, base_dir=tmp_path / "exports", formats="savedmodel")
    with pytest.raises(ValueError, match="is not a run folder or a .keras file.*keras_gen.export.load"):
        evaluate_run(result.path, metrics="coverage", progress=False)
    from_export = evaluate_run(result.path, metrics="coverage", progress=False, open_artifact=kx.load)
    from_run = evaluate_run(ring_run, metrics="coverage", progress=False)
    assert from_export["source"]["type"] == "export" and from_export["dataset"] == "ring2d"  # from the manifest
    # The artifact reproduces model.generate(n, seed), so the counts agree exactly.
    assert from_export["metrics"]["coverage"]["counts"] == from_run["metrics"]["coverage"]["counts"]
