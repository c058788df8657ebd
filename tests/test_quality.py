"""Digit quality (docs/evaluation.md, "Digit quality"): the confident-digit share, the class histogram's KL and the
classifier-feature FID, on constructed probabilities (closed forms), on real digits, in `evaluate`, logged every
epoch by a run (history.csv, TensorBoard) and stated under its sample grid; and the shipped default classifiers,
which load without training.

Expected values are computed by hand or with NumPy here, never copied from the code's output."""

import csv
import json
import math
import os
import time

import numpy as np
import pytest
from PIL import Image

from keras_gen import callbacks as cbs
from keras_gen import data, presets
from keras_gen.metrics import (
    DigitQuality,
    class_kl,
    confident_share,
    domain_classifier,
    evaluate,
    fid_from_features,
    format_quality,
    format_table,
    quality_score,
    train_domain_classifier,
)
from keras_gen.metrics import classifier as classifier_module
from keras_gen.runs import evaluate_run, train_run
from tests.helpers import ArraySampler
from tests.test_runs import small_config
from tests.test_tensorboard import scalars


def rows_with_max(maxima, k=10):
    """Probability rows whose largest entry is ``maxima[i]`` (in class ``i % k``), the rest spread evenly."""
    rows = []
    for i, top in enumerate(maxima):
        row = np.full(k, (1.0 - top) / (k - 1))
        row[i % k] = top
        rows.append(row)
    return np.array(rows)


# ------------------------------------------------------------------------------------------- closed forms
def test_confident_share_counts_rows_at_or_above_the_threshold():
    assert confident_share(rows_with_max([0.99, 0.95, 0.9, 1.0])) == 1.0  # all confident (0.9 itself counts)
    assert confident_share(rows_with_max([0.95, 0.9, 0.89, 0.5])) == 0.5
    assert confident_share(rows_with_max([0.2, 0.3])) == 0.0
    assert confident_share(rows_with_max([0.6, 0.7, 0.8]), threshold=0.7) == pytest.approx(2 / 3)
    assert math.isnan(confident_share(np.zeros((0, 10))))


def test_class_kl_of_known_histograms():
    # 4 digits read as classes 0, 0, 1, 2 of 10: q = (1/2, 1/4, 1/4), KL = 1/2 log(10/2) + 2 * 1/4 log(10/4).
    p = np.eye(10)[[0, 0, 1, 2]]
    assert class_kl(p) == pytest.approx(0.5 * math.log(5) + 0.5 * math.log(2.5), rel=1e-12)
    assert class_kl(np.eye(10)) == pytest.approx(0.0, abs=1e-12)  # every class once
    assert class_kl(np.eye(10)[[3] * 7]) == pytest.approx(math.log(10), rel=1e-12)  # one class only
    assert class_kl(np.eye(4)[[0, 1]]) == pytest.approx(math.log(2), rel=1e-12)  # 2 of 4 classes, equally


def test_quality_score_and_its_caption():
    p = rows_with_max([0.95, 0.99, 0.5, 0.97] * 5)  # 15 of 20 confident; classes 0-9 twice each
    real = rows_with_max([0.99] * 9 + [0.3])
    score = quality_score(p, real_probabilities=real, fid=4.123)
    assert score["confident"] == 0.75 and score["real_confident"] == 0.9
    assert score["class_kl"] == pytest.approx(0.0, abs=1e-12) and score["counts"] == [2] * 10
    assert score["fid"] == 4.123 and score["threshold"] == 0.9
    json.dumps(score)
    assert format_quality(score, epoch=12) == "epoch 12: 75% confident digits (real 90%), class KL 0.00, FID 4.12"
    assert format_quality(quality_score(p)) == "75% confident digits, class KL 0.00"


def test_quality_arguments_are_checked():
    with pytest.raises(ValueError, match=r"`threshold` must be a probability in \(0, 1\]; received threshold=1.5"):
        confident_share(rows_with_max([0.9]), threshold=1.5)
    with pytest.raises(ValueError, match=r"shape \(N, K\), K >= 2; received shape \(10,\)"):
        class_kl(np.ones(10))
    with pytest.raises(ValueError, match="Digit quality is defined for mnist, digits, stacked_mnist"):
        DigitQuality("ring2d")


# ------------------------------------------------------------------------------------------- the shipped classifiers
def test_the_shipped_mnist_classifier_loads_without_training(tmp_path, monkeypatch):
    """An empty cache: the default classifier is the shipped one, loaded in well under the ~20-60 s training takes,
    writing nothing, with its recorded held-out accuracy what it scores on the test split here."""
    monkeypatch.setenv("KERAS_GEN_CACHE", str(tmp_path / "cache"))
    start = time.perf_counter()
    classifier = domain_classifier("mnist")
    seconds = time.perf_counter() - start
    assert seconds < 5, f"loading took {seconds:.1f} s"
    assert not (tmp_path / "cache").exists()  # nothing trained, nothing cached
    shipped = classifier_module.shipped_path("mnist")
    assert classifier.path == shipped and os.path.dirname(shipped) == os.path.dirname(classifier_module.__file__)
    assert os.path.getsize(shipped) < 1_000_000
    assert classifier.metadata["training"] == classifier_module._DEFAULT_TRAINING
    x, y = data.load_arrays("mnist", "test")
    predicted = classifier.predict(x)
    assert classifier.accuracy == np.mean(predicted == y)  # the float16 weights' accuracy, recorded
    assert classifier.metadata["float32_accuracy"] == classifier.accuracy  # float16 storage lost nothing
    # Non-default training arguments are not the shipped classifier: they train (here, a tiny one).
    tiny = domain_classifier("mnist", epochs=1, num_samples=64, width=4)
    assert tiny.path.startswith(str(tmp_path / "cache"))


def test_the_shipped_digits_classifier_loads_without_training(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_GEN_CACHE", str(tmp_path / "cache"))
    classifier = domain_classifier("digits")
    assert classifier.path == classifier_module.shipped_path("digits") and not (tmp_path / "cache").exists()
    x, y = data.load_arrays("digits", "test")
    assert classifier.accuracy == np.mean(classifier.predict(x) == y) > 0.9


def test_a_cached_classifier_comes_before_the_shipped_one(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_GEN_CACHE", str(tmp_path))
    trained = train_domain_classifier("digits", epochs=1, width=4, num_samples=64)  # stands in for a user's cache
    trained.save(str(tmp_path / "digits_classifier.keras"))
    loaded = domain_classifier("digits")
    assert loaded.path == str(tmp_path / "digits_classifier.keras") and loaded.feature_dim == 16


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["mnist", "digits"])
def test_the_shipped_classifier_predicts_what_training_it_gives(dataset):
    """Training with the default arguments (deterministic) gives the classifier whose weights are shipped: the same
    class for every test digit, probabilities and features within float16 rounding."""
    shipped = classifier_module.DomainClassifier.load(classifier_module.shipped_path(dataset))
    trained = train_domain_classifier(dataset)
    x, _ = data.load_arrays(dataset, "test")
    np.testing.assert_array_equal(shipped.predict(x), trained.predict(x))
    np.testing.assert_allclose(shipped.probabilities(x), trained.probabilities(x), atol=2e-3)
    assert shipped.metadata["float32_accuracy"] == trained.accuracy
    features = trained.features(x)
    assert np.max(np.abs(shipped.features(x) - features)) < 1e-2 * np.max(np.abs(features))


# ------------------------------------------------------------------------------------------- real digits
def test_real_digits_are_read_confidently_about_as_often_as_correctly():
    """The shipped MNIST classifier on the 500 held-out digits: the confident share is close to the held-out
    accuracy (a digit read confidently is almost always read right), and the classes are near uniform."""
    classifier = domain_classifier("mnist")
    x, y = data.load_arrays("mnist", "test")
    p = classifier.probabilities(x)
    confident = confident_share(p)
    assert abs(confident - classifier.accuracy) < 0.05 and confident > 0.85
    is_confident = p.max(axis=1) >= 0.9
    assert np.mean(np.argmax(p, axis=1)[is_confident] == y[is_confident]) > 0.98
    assert class_kl(p) < 0.01  # 50 test digits of each class
    quality = DigitQuality("mnist", classifier=classifier)
    assert quality.real_confident == confident
    score = quality(x)  # the real digits scored as samples: their own FID is 0
    assert score["confident"] == confident == score["real_confident"] and score["fid"] == pytest.approx(0, abs=1e-6)


def test_stacked_mnist_is_scored_channel_by_channel():
    """Stacked images whose channels are known test digits: the share and the histogram are those of the 3 N channel
    digits, and the FID that of the three channels' features side by side."""
    classifier = domain_classifier("mnist")
    x, _ = data.load_arrays("mnist", "test")
    order = np.random.default_rng(0).permutation(500)
    stacked = np.concatenate([x[:100], x[order[:100]], x[order[100:200]]], axis=-1)  # (100, 28, 28, 3)
    quality = DigitQuality("stacked_mnist", classifier=classifier, real=stacked[:50])
    score = quality(stacked)
    digits = np.concatenate([x[:100], x[order[:100]], x[order[100:200]]], axis=0)  # the 300 channel digits
    p = classifier.probabilities(digits)
    assert sum(score["counts"]) == 300 and score["confident"] == confident_share(p)
    assert score["class_kl"] == pytest.approx(class_kl(p), rel=1e-12)
    features = lambda images: np.concatenate([classifier.features(images[..., c:c + 1]) for c in range(3)], axis=1)
    assert score["fid"] == pytest.approx(fid_from_features(features(stacked[:50]), features(stacked)), rel=1e-9)


# ------------------------------------------------------------------------------------------- evaluate
def test_evaluate_reports_quality_reusing_its_fid(digits_classifier):
    train, _ = data.load_arrays("digits", "train")
    kwargs = dict(n=400, classifier=digits_classifier, progress=False, dataset="digits", batch_size=400)
    report = evaluate(ArraySampler(train), metrics="quality,fid", **kwargs)
    assert list(report["metrics"]) == ["fid", "quality"]  # the canonical order
    quality = report["metrics"]["quality"]
    p = digits_classifier.probabilities(train[:400])
    real = digits_classifier.probabilities(data.load_arrays("digits", "test")[0])
    assert quality["confident"] == confident_share(p) and quality["real_confident"] == confident_share(real)
    assert quality["class_kl"] == pytest.approx(class_kl(p), rel=1e-12)
    assert quality["fid"] == report["metrics"]["fid"]["value"]
    assert quality["extractor"] == "digits_classifier" and quality["num_samples"] == 400
    # Asked alone, it computes the same FID itself.
    alone = evaluate(ArraySampler(train), metrics=["quality"], **kwargs)["metrics"]["quality"]
    assert alone["fid"] == pytest.approx(quality["fid"], rel=1e-9)
    json.loads(json.dumps(report))
    table = format_table(report)
    assert f"| confident digits (p ≥ 0.9) | {100 * quality['confident']:.1f} % |" in table
    assert f"| confident digits, real data | {100 * quality['real_confident']:.1f} % |" in table
    assert "| class KL to uniform |" in table and "| FID (classifier features) |" in table
    # Digit data with the classifier: quality is one of the default metrics; other data: it does not apply.
    assert "quality" in evaluate(ArraySampler(train), metrics=None, **kwargs)["metrics"]
    points, _ = data.load_arrays("ring2d", "test")
    with pytest.raises(ValueError, match="quality: it needs the domain classifier of digit data"):
        evaluate(ArraySampler(points), metrics="quality", n=100, progress=False, dataset="ring2d")


def test_the_command_line_accepts_quality():
    from keras_gen import cli

    assert "quality" in cli.METRIC_NAMES and cli._parse_metrics("fid,quality") == ["fid", "quality"]


# ------------------------------------------------------------------------------------------- a run
@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """A 2-epoch DCGAN run on the 8x8 digits (width 4), with the default digits classifier."""
    out = tmp_path_factory.mktemp("quality") / "run"
    result = train_run(small_config(epochs=2), out, verbose=0, log_every=10)
    return out, result


def _history(run_dir):
    with open(os.path.join(run_dir, "history.csv"), newline="") as f:
        return list(csv.DictReader(f))


def test_a_run_logs_its_quality_every_epoch(digits_run):
    out, result = digits_run
    rows = _history(out)
    names = ("quality_confident", "quality_real_confident", "quality_class_kl", "quality_fid")
    assert [int(row["epoch"]) for row in rows] == [0, 1]
    for row in rows:
        values = {name: float(row[name]) for name in names}
        assert 0 <= values["quality_confident"] <= 1 and 0 <= values["quality_class_kl"] <= math.log(10)
        assert values["quality_fid"] > 0
    # The last row is the score of the saved model's samples, recomputed here.
    classifier = domain_classifier("digits")
    samples = result.model.generate(cbs.DigitQualityMonitor.DEFAULT_N, seed=small_config().seed)
    p = classifier.probabilities(samples)
    assert float(rows[-1]["quality_confident"]) == pytest.approx(confident_share(p), abs=1e-12)
    assert float(rows[-1]["quality_class_kl"]) == pytest.approx(class_kl(p), rel=1e-9)
    real = classifier.probabilities(data.load_arrays("digits", "test")[0])
    assert float(rows[0]["quality_real_confident"]) == pytest.approx(confident_share(real), abs=1e-12)
    # TensorBoard: each is the scalar epoch_NAME at steps 0 and 1, equal to history.csv.
    logged = scalars(out / "logs" / "train", prefix="epoch_quality")
    assert sorted(logged) == sorted(f"epoch_{name}" for name in names)
    for name in names:
        assert [step for step, _ in logged[f"epoch_{name}"]] == [0, 1]
        for (_, value), row in zip(logged[f"epoch_{name}"], rows):
            assert value == pytest.approx(float(row[name]), rel=1e-6, abs=1e-7)


def test_the_sample_grid_states_the_quality_under_it(digits_run):
    out, _ = digits_run
    row = _history(out)[-1]
    expected = format_quality({"confident": float(row["quality_confident"]),
                               "real_confident": float(row["quality_real_confident"]),
                               "class_kl": float(row["quality_class_kl"]), "fid": float(row["quality_fid"])}, epoch=2)
    for name in ("latest.png", "epoch_002.png"):
        with Image.open(out / "samples" / name) as image:
            assert image.text.get("Caption") == expected
            width, height = image.size
            pixels = np.asarray(image.convert("L"))
        # 64 samples of 8x8 in 8 columns, 2 pixels apart: 82 x 82, upscaled 4 times to 328 x 328; the caption's
        # strip is below it, white with dark text.
        assert width == 328 and height > 328 + 10
        strip = pixels[330:]
        assert strip.max() == 255 and strip.min() < 128
    with Image.open(out / "samples" / "epoch_001.png") as first:
        assert first.text.get("Caption", "").startswith("epoch 1: ")


def test_evaluate_run_logs_quality_to_the_runs_eval_logs(digits_run):
    out, _ = digits_run
    report = evaluate_run(out, "quality", n=200, progress=False)
    quality = report["metrics"]["quality"]
    logged = scalars(out / "logs" / "eval", prefix="quality")
    assert {tag: values[-1] for tag, values in logged.items()} == {
        "quality/confident": (1, pytest.approx(quality["confident"])),
        "quality/real_confident": (1, pytest.approx(quality["real_confident"])),
        "quality/class_kl": (1, pytest.approx(quality["class_kl"])),
        "quality/fid": (1, pytest.approx(quality["fid"])),
    }


def test_runs_of_other_data_have_no_quality(tmp_path):
    points = np.random.default_rng(0).normal(size=(400, 2)).astype("float32")
    config = presets.get_config("ring2d", epochs=1, batch_size=200, networks={
        "generator": {"latent_dim": 2, "hidden": [8]}, "discriminator": {"hidden": [8]}})
    train_run(config, tmp_path / "run", verbose=0, data=points)
    assert not [name for name in _history(tmp_path / "run")[0] if name.startswith("quality")]


# ------------------------------------------------------------------------------------- the overfitting alarm
def test_a_gan_run_watches_its_discriminator_against_held_out_digits(digits_run):
    """`keras-gen train` of a GAN on images logs r_t and r_held every epoch (docs/small_data.md): the last row is what
    the same alarm reads off the saved discriminator, scored again here by hand."""
    from keras_gen.runs import overfitting_alarm, real_images

    out, result = digits_run
    rows = _history(out)
    assert all(-1 <= float(row["r_t"]) <= 1 and -1 <= float(row["r_held"]) <= 1 for row in rows)
    config = small_config(epochs=2)
    train, _ = real_images(config, "train", 500)
    held, _ = real_images(config, "test", 500)
    alarm = overfitting_alarm(config, result.model)
    assert alarm.threshold == cbs.DiscriminatorOverfittingAlarm.DEFAULT_THRESHOLD and alarm.held_out is not None
    alarm.set_model(result.model)
    discriminator = result.model.discriminator

    def mean_sign(images):  # whole batches of 64 in training mode, as the alarm scores them
        rows = np.random.default_rng(config.seed if images is train else config.seed + 1).permutation(len(images))
        images = images[rows[:500]]
        stop = len(images) - len(images) % 64
        signs = [np.sign(discriminator(images[i:i + 64], training=True).numpy()) for i in range(0, stop, 64)]
        return float(np.mean(np.concatenate(signs)))

    state = [v.numpy().copy() for v in discriminator.non_trainable_variables]
    expected = (mean_sign(train), mean_sign(held))
    for variable, value in zip(discriminator.non_trainable_variables, state):
        variable.assign(value)
    assert (float(rows[-1]["r_t"]), float(rows[-1]["r_held"])) == pytest.approx(expected, abs=1e-12)


def test_a_folder_run_watches_r_t_alone_and_a_vae_run_nothing(tmp_path):
    from tests.test_runs import write_folder

    write_folder(tmp_path / "images", 96)
    folder = small_config(dataset=str(tmp_path / "images"), epochs=1, batch_size=32)
    train_run(folder, tmp_path / "gan", verbose=0)
    row = _history(tmp_path / "gan")[0]
    assert -1 <= float(row["r_t"]) <= 1 and "r_held" not in row
    from keras_gen.runs import overfitting_alarm

    alarm = overfitting_alarm(folder, presets.build_model(folder))
    assert alarm.held_out is None and alarm.threshold is None and not alarm.overfitting(1.0, None)
    vae = presets.get_config("vae", dataset="digits", epochs=1, batch_size=256)
    train_run(vae, tmp_path / "vae", verbose=0)
    assert not {"r_t", "r_held"} & set(_history(tmp_path / "vae")[0])
