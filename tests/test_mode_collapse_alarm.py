"""`ModeCollapseAlarm`: it fires on a collapse, stays silent on a healthy run, and its column reaches the CSV."""

import csv
import math
import warnings

import keras
import numpy as np
import pytest

from keras_gen import data, presets
from keras_gen.callbacks import ModeCollapseAlarm


# ------------------------------------------------------------------------------------------- the alarm
class SwitchingGenerator:
    """Ring points over all 8 modes until `collapse_at` epochs have passed, then all on mode 0."""

    def __init__(self, collapse_at=None):
        self.centers, _ = data.mixture_modes("ring2d")
        self.collapse_at = collapse_at
        self.epoch = 0

    def generate(self, n, seed=None):
        modes = np.arange(n) % 8
        if self.collapse_at is not None and self.epoch >= self.collapse_at:
            modes[:] = 0
        return self.centers[modes]


def _run_alarm(alarm, generator, epochs):
    alarm.set_model(generator)
    alarm.on_train_begin()
    logged = []
    for epoch in range(epochs):
        generator.epoch = epoch
        logs = {"d_loss": 1.0}
        alarm.on_epoch_end(epoch, logs)
        logged.append(logs[alarm.name])
    return logged


def test_alarm_fires_on_a_collapse(capsys):
    alarm = ModeCollapseAlarm("ring2d", n=80, drop=2)
    with pytest.warns(RuntimeWarning, match="Mode collapse"):
        logged = _run_alarm(alarm, SwitchingGenerator(collapse_at=3), epochs=5)
    assert logged == [8, 8, 8, 1, 1]
    assert alarm.alarms == [(3, 1, 8)]  # once, at the epoch of the fall
    assert "modes_covered fell to 1" in capsys.readouterr().err


def test_alarm_is_silent_on_a_healthy_run():
    alarm = ModeCollapseAlarm("ring2d", n=80, every=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        logged = _run_alarm(alarm, SwitchingGenerator(collapse_at=None), epochs=5)
    assert logged == [8] * 5 and alarm.alarms == []
    assert [epoch for epoch, _ in alarm.history] == [0, 1, 3]  # first epoch, then every 2


def test_alarm_entropy_with_a_classifier():
    class ModeClassifier:
        """One-hot 'class' = index of the nearest ring mode (10 classes, two never used)."""

        def probabilities(self, points):
            centers, _ = data.mixture_modes("ring2d")
            nearest = np.argmin(np.linalg.norm(points[:, None] - centers[None], axis=-1), axis=1)
            return np.eye(10)[nearest]

    alarm = ModeCollapseAlarm(ModeClassifier(), n=80)
    with pytest.warns(RuntimeWarning):
        logged = _run_alarm(alarm, SwitchingGenerator(collapse_at=2), epochs=3)
    assert alarm.name == "mode_entropy"
    np.testing.assert_allclose(logged, [math.log(8), math.log(8), 0.0], atol=1e-12)


def test_alarm_errors():
    with pytest.raises(ValueError, match="every"):
        ModeCollapseAlarm("ring2d", every=0)
    with pytest.raises(ValueError, match="not a Gaussian mixture"):
        ModeCollapseAlarm("mnist")
    with pytest.raises(TypeError, match="monitor"):
        ModeCollapseAlarm(42)


def test_alarm_in_fit_is_recorded_by_csv_logger(tmp_path):
    config = presets.get_config(
        "ring2d", batch_size=64,
        networks={"generator": {"latent_dim": 2, "hidden": [8]}, "discriminator": {"hidden": [8]}},
    )
    model = presets.build_model(config)
    x, _ = data.load_arrays("ring2d", "train", num_samples=256)
    alarm = ModeCollapseAlarm("ring2d", n=100)
    csv_path = tmp_path / "history.csv"
    model.fit(x, batch_size=64, epochs=2, verbose=0, callbacks=[alarm, keras.callbacks.CSVLogger(str(csv_path))])
    with open(csv_path) as f:
        rows = list(csv.DictReader(f))
    assert [float(r["modes_covered"]) for r in rows] == [v for _, v in alarm.history]
