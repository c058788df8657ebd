"""The studies of experiments/: the stacked-MNIST sweep scores as the package does, the digit readers split a KL."""

import json
import math

import numpy as np
import pytest

from keras_gen import data, presets
from keras_gen.metrics import (
    domain_classifier,
)
from tests.helpers import TINY_CLASSIFIER, load_script


def test_sweep_scores_like_stacked_mnist_modes():
    """benchmarks/stacked_mnist_sweep.py scores its PyTorch runs with its own NumPy code; on skewed random triples
    it must give what `stacked_mnist_modes` gives, and the confidence share is counted by hand."""
    from keras_gen.metrics import stacked_mnist_modes

    sweep = load_script("stacked_mnist_sweep")  # imports NumPy only at module level: PyTorch stays unneeded here
    rng = np.random.default_rng(0)
    digits = rng.choice(10, size=(3000, 3), p=np.linspace(1, 3, 10) / 20)  # (3000, 3), skewed toward 9
    confidence = np.tile([0.5, 0.95, 0.99], (3000, 1))  # one channel in three below 0.9
    scores, expected = sweep.summarize(digits, confidence), stacked_mnist_modes(digits)
    assert scores["modes"] == expected["modes"] < 1000
    assert scores["kl"] == pytest.approx(expected["kl"], rel=1e-12) and scores["kl"] > 0.05
    assert scores["channel_kl_sum"] == pytest.approx(sum(expected["channel_kl"]), rel=1e-12)
    assert scores["low_confidence"] == pytest.approx(1 / 3)




def test_stacked_digits_benchmark_splits_the_kl_of_a_generator_it_loads(tmp_path, mnist_classifier, capsys):
    """benchmarks/stacked_digits.py on a generator whose weights are all zero (so every sample is one constant
    image): every vote goes to one digit, so KL = log 1000, each channel's KL = log 10 and nothing is left over.
    A freshly built generator draws varied images, so these numbers show the weights were loaded."""
    bench = load_script("stacked_digits")
    model = presets.build_model(presets.get_config("r1-ema-stacked-mnist"))
    for variable in model.generator.trainable_variables:
        variable.assign(np.zeros(variable.shape, variable.dtype))
    backup = tmp_path / "r1-ema-stacked-mnist_seed3"
    (backup / "epoch-000030").mkdir(parents=True)  # a keras_gen.callbacks.RunBackup commit
    model.save_weights(str(backup / "epoch-000030" / "model.weights.h5"))
    out = tmp_path / "digits.json"
    assert bench.main(["--backup", str(backup), "--classifier", mnist_classifier.path, "--n", "120",
                       "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert (report["preset"], report["seed"]) == ("r1-ema-stacked-mnist", 3)  # read from the folder's name
    assert bench.parse_args(["--backup", str(backup), "--classifier-seed", "2"]).classifier_seed == [2]
    assert bench.parse_args(["--backup", str(backup), "--classifier-seed", "0,3,1"]).classifier_seed == [0, 3, 1]
    assert report["classifier"]["path"] == mnist_classifier.path
    rows = report["rows"]
    assert list(rows) == ["training data (120)", "generator, averaged weights", "generator, live weights"]
    blank = int(mnist_classifier.predict(np.zeros((1, 28, 28, 1), "float32"))[0])
    for label in list(rows)[1:]:
        scores = rows[label]
        assert scores["votes"] == [1.0 if d == blank else 0.0 for d in range(10)]
        assert scores["modes"] == 1
        np.testing.assert_allclose([scores["kl"], scores["channel_kl_sum"], scores["rest"]],
                                   [math.log(1000), 3 * math.log(10), 0.0], atol=1e-9)
        np.testing.assert_allclose(sum(scores["probability"]), 1.0, rtol=1e-5)
    real = rows["training data (120)"]
    assert real["modes"] > 1 and sum(real["votes"]) == pytest.approx(1.0)  # varied images (the tiny classifier
    # reads them poorly: no closed form here)
    printed = capsys.readouterr().out
    assert f"| generator, live weights | votes % | {' | '.join('100.0' if d == blank else '0.0' for d in range(10))}" \
        in printed
    rarest = 1 if blank == 0 else 0  # the first digit with no votes
    assert printed.rstrip().endswith(f"| seed 3 | classifier 0 | {100 * mnist_classifier.accuracy:.1f} % | "
                                     f"6.908 (6.908) | 6.908 | 0.000 | {rarest} (0.0) | {blank} (100.0) |")

    typo = str(tmp_path / "typo.keras")
    weights = str(backup / "epoch-000030" / "model.weights.h5")
    for argv, message in ((["--weights", weights], "--weights needs --preset"),
                          (["--backup", str(tmp_path)], "is not named PRESET_seedS"),
                          (["--backup", str(backup), "--preset", "grid2d"], "trains on grid2d, not stacked_mnist"),
                          (["--backup", str(backup), "--preset", "r1-stacked"], "'r1-stacked' is not a preset; the "
                           "stacked-MNIST presets are dcgan-stacked-mnist, "),
                          (["--backup", str(tmp_path / "dcgan-stacked-mnist_seed0")], "No weights at"),
                          (["--backup", str(backup), "--classifier", typo], "No classifier at"),
                          (["--backup", str(backup), "--seed", "-1"], "--seed must be in [0, 2**32), got -1"),
                          (["--backup", str(backup), "--classifier", mnist_classifier.path, "--classifier-seed", "1"],
                           "not allowed with argument"),
                          (["--backup", str(backup), "--classifier-seed", "0,x"], "expected seeds like 0 or 0,1,2,3; "
                           "got '0,x'"),
                          (["--backup", str(backup), "--classifier-seed", "1,1"], "distinct and >= 0; got '1,1'")):
        with pytest.raises(SystemExit):
            bench.parse_args(argv)
        assert message in capsys.readouterr().err
    (tmp_path / "broken.weights.h5").write_bytes(b"not HDF5")  # a truncated or foreign file: named, not a traceback
    with pytest.raises(SystemExit, match="Could not load .*broken.weights.h5.* into the r1-stacked-mnist model"):
        bench.main(["--weights", str(tmp_path / "broken.weights.h5"), "--preset", "r1-stacked-mnist",
                    "--classifier", mnist_classifier.path, "--out", str(out)])
    assert json.loads(out.read_text())["seed"] == 3  # the earlier report is untouched


def test_stacked_digits_reads_each_digit_by_the_mean_of_several_classifiers(tmp_path, mnist_classifier):
    """``--classifier A --classifier B``: every share is that of the mean of A's and B's probabilities, checked
    against the two classifiers run separately, and the reader's accuracy is that mean's on the test digits."""
    bench = load_script("stacked_digits")
    other = domain_classifier("mnist", path=tmp_path / "other.keras", **{**TINY_CLASSIFIER, "seed": 1})
    model = presets.build_model(presets.get_config("r1-stacked-mnist", seed=5))
    model.save_weights(str(tmp_path / "g.weights.h5"))
    out = tmp_path / "mean.json"
    assert bench.main(["--weights", str(tmp_path / "g.weights.h5"), "--preset", "r1-stacked-mnist", "--n", "64",
                       "--classifier", mnist_classifier.path, "--classifier", other.path, "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    real, _ = data.load_arrays("stacked_mnist", split="train", num_samples=64, seed=0)
    channels = [(mnist_classifier.probabilities(real[..., c : c + 1]) + other.probabilities(real[..., c : c + 1])) / 2
                for c in range(3)]
    votes = np.concatenate([p.argmax(axis=1) for p in channels])
    scores = report["rows"]["training data (64)"]
    np.testing.assert_allclose(scores["probability"], np.concatenate(channels).mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(scores["votes"], np.bincount(votes, minlength=10) / len(votes))
    alone = [mnist_classifier.predict(real[..., c : c + 1]) for c in range(3)]
    assert not np.array_equal(np.concatenate(alone), votes)  # the second classifier changed some votes
    x, y = data.load_arrays("mnist", "test")
    accuracy = np.mean(((mnist_classifier.probabilities(x) + other.probabilities(x)) / 2).argmax(axis=1) == y)
    assert report["classifier"]["accuracy"] == pytest.approx(accuracy)
    assert [m["path"] for m in report["classifier"]["members"]] == [mnist_classifier.path, other.path]
    assert report["classifier"]["name"] == "mean of 2 mnist classifiers"
    assert bench.reader_label(report["classifier"]) == "mean of classifiers 0-1"  # the TINY ones' seeds
    members = [{**member, "training": None} for member in report["classifier"]["members"]]  # a file of unknown origin
    assert bench.reader_label({"members": members}) == "mean of tiny.keras, other.keras"
