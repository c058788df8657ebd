"""DiffAugment (keras_gen.augment) and the GAN's ``augment`` option: each transformation against a closed form or a
NumPy reference, what the discriminator and generator updates feed D, XLA, tf.distribute, saving, the presets."""

import dataclasses
import json
import os
import subprocess
import sys
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_gen import augment, losses, presets, rng
from keras_gen import networks as nets
from keras_gen.models import GAN
from tests import test_case
from tests.test_distribute import ENV, SCRIPTS, _last_json_line
from tests.test_models import batch_for, dataset_for, tiny_config

FULL = "color,translation,cutout"
IMAGES = np.random.default_rng(0).uniform(-1, 1, size=(6, 8, 8, 3)).astype("float32")


def _np(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


# ------------------------------------------------------------------------------------------- colour
def test_brightness_adds_the_drawn_offset():
    u = np.array([0.0001, 0.25, 0.5, 0.75, 0.9999, 0.6], "float32")
    out = _np(augment.brightness(IMAGES, u))
    np.testing.assert_allclose(out, IMAGES + (u - 0.5)[:, None, None, None], rtol=0, atol=1e-7)


def test_saturation_scales_the_distance_to_the_channel_mean():
    u = np.array([0.1, 0.3, 0.5, 0.7, 0.9, 0.0001], "float32")
    mean = IMAGES.mean(axis=3, keepdims=True)
    expected = mean + (IMAGES - mean) * (2 * u)[:, None, None, None]
    np.testing.assert_allclose(_np(augment.saturation(IMAGES, u)), expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(_np(augment.saturation(IMAGES, np.full(6, 0.5, "float32"))), IMAGES, atol=1e-6)
    gray = IMAGES[..., :1]
    np.testing.assert_array_equal(_np(augment.saturation(gray, u)), gray)  # one channel: its own mean


def test_contrast_scales_the_distance_to_the_image_mean():
    u = np.array([0.1, 0.3, 0.5, 0.7, 0.9, 0.0001], "float32")
    mean = IMAGES.mean(axis=(1, 2, 3), keepdims=True)
    expected = mean + (IMAGES - mean) * (u + 0.5)[:, None, None, None]
    np.testing.assert_allclose(_np(augment.contrast(IMAGES, u)), expected, rtol=0, atol=1e-6)
    out = _np(augment.contrast(IMAGES, u))
    np.testing.assert_allclose(out.mean(axis=(1, 2, 3)), IMAGES.mean(axis=(1, 2, 3)), atol=1e-6)  # mean kept


# ------------------------------------------------------------------------------------------- translation
def _shift_reference(image, dy, dx):
    """``out[i, j] = image[i - dy, j - dx]`` inside the image, else 0, by slicing (H, W, C)."""
    height, width = image.shape[:2]
    out = np.zeros_like(image)
    out[max(dy, 0) : height + min(dy, 0), max(dx, 0) : width + min(dx, 0)] = image[
        max(-dy, 0) : height + min(-dy, 0), max(-dx, 0) : width + min(-dx, 0)]
    return out


def _u_for(index, count):
    """A uniform number whose ``floor(u * count)`` is ``index`` (the middle of its interval)."""
    return (index + 0.5) / count


def test_translation_moves_pixels_by_the_drawn_shift_and_fills_zeros():
    images = np.random.default_rng(1).uniform(0.5, 1.0, size=(5, 16, 16, 2)).astype("float32")  # no zero pixel
    shifts = [(-2, 2), (0, 0), (2, -1), (1, -2), (-1, 0)]  # s = round(16 / 8) = 2: t in {-2, ..., 2}
    u = np.array([[_u_for(dy + 2, 5), _u_for(dx + 2, 5)] for dy, dx in shifts], "float32")
    out = _np(augment.translation(images, u))
    for image, result, (dy, dx) in zip(images, out, shifts):
        np.testing.assert_array_equal(result, _shift_reference(image, dy, dx))
        assert (result == 0).all(axis=2).sum() == 16 * 16 - (16 - abs(dy)) * (16 - abs(dx))
    marker = np.zeros((1, 16, 16, 1), "float32")
    marker[0, 7, 5, 0] = 1.0
    moved = _np(augment.translation(marker, np.array([[_u_for(4, 5), _u_for(0, 5)]], "float32")))
    assert np.argwhere(moved[0, ..., 0]).tolist() == [[9, 3]]  # down 2, left 2


def test_translation_draws_every_shift_up_to_an_eighth_of_the_side():
    marker = np.zeros((1, 28, 28, 1), "float32")
    marker[0, 14, 14, 0] = 1.0
    u = rng.uniform((2000, 2), seed=3)
    moved = _np(augment.translation(np.repeat(marker, 2000, axis=0), u))
    where = np.nonzero(moved[..., 0].reshape(2000, -1))[1]  # the marker's flat index in each image
    rows, cols = where // 28, where % 28
    shifts = np.stack([rows - 14, cols - 14], axis=1)
    assert len(shifts) == 2000  # the marker always stays inside (|t| <= 4 < 14)
    for axis in (0, 1):
        values, counts = np.unique(shifts[:, axis], return_counts=True)
        assert values.tolist() == list(range(-4, 5))  # s = round(28 / 8) = 4
        assert counts.min() > 2000 / 9 * 0.7


# ------------------------------------------------------------------------------------------- cutout
def _cutout_reference(height, width, cy, cx, ch, cw):
    """The kept-pixel mask (H, W) of a ``ch x cw`` square with rows from ``cy - ch // 2``, clipped."""
    keep = np.ones((height, width), "float32")
    keep[max(cy - ch // 2, 0) : max(cy - ch // 2 + ch, 0), max(cx - cw // 2, 0) : max(cx - cw // 2 + cw, 0)] = 0
    return keep


def test_cutout_zeroes_exactly_a_square_of_half_the_side():
    images = np.random.default_rng(2).uniform(0.5, 1.0, size=(4, 16, 12, 3)).astype("float32")
    # c_h = 8, c_w = 6 (even: centres 0..16 and 0..12); a square inside, two at corners, one at an edge.
    centres = [(8, 6), (0, 0), (16, 12), (3, 9)]
    u = np.array([[_u_for(cy, 17), _u_for(cx, 13)] for cy, cx in centres], "float32")
    out = _np(augment.cutout(images, u))
    for image, result, (cy, cx) in zip(images, out, centres):
        keep = _cutout_reference(16, 12, cy, cx, 8, 6)
        np.testing.assert_array_equal(result, image * keep[..., None])
    zeroed = (out[0] == 0).all(axis=2)
    assert zeroed.sum() == 8 * 6 and np.argwhere(zeroed).min(0).tolist() == [4, 3]  # rows 4-11, cols 3-8
    assert (out[1] == 0).all(axis=2).sum() == 4 * 3  # clipped at the top-left corner


def test_cutout_square_of_an_odd_side_and_its_centres():
    # 9x9: c = round(4.5) = 5, odd: centres 0..8, rows from centre - 2.
    u = rng.uniform((3000, 2), seed=4)
    out = _np(augment.cutout(np.ones((3000, 9, 9, 1), "float32"), u))[..., 0]
    full = (out == 0).sum(axis=(1, 2)) == 25
    centres = np.floor(_np(u) * 9).astype(int)
    inside = ((centres >= 2) & (centres <= 6)).all(axis=1)
    np.testing.assert_array_equal(full, inside)  # a whole 5x5 square exactly when it fits
    assert sorted(np.unique(centres).tolist()) == list(range(9))


# ------------------------------------------------------------------------------------------- policies, draws
def test_policy_names_and_errors():
    assert augment.parse_policy(" color, cutout ") == ("color", "cutout")
    assert augment.parse_policy(["translation"]) == ("translation",)
    assert augment.parse_policy(None) == augment.parse_policy("") == augment.parse_policy([]) == ()
    assert augment.policy_string(["color", "translation", "cutout"]) == FULL and augment.policy_string("") is None
    assert augment.draws(FULL) == 7
    with pytest.raises(ValueError, match="Unknown augmentation policy 'colour'.*'color', 'translation', 'cutout'"):
        augment.parse_policy("colour,cutout")
    with pytest.raises(ValueError, match="twice"):
        augment.parse_policy("cutout,cutout")
    with pytest.raises(TypeError, match="comma-separated"):
        augment.parse_policy(3)
    with pytest.raises(ValueError, match=r"\(B, H, W, C\)"):
        augment.diff_augment(np.zeros((4, 2), "float32"), "color", seed=0)


def test_diff_augment_applies_the_policy_in_order_with_one_draw_per_image():
    u = _np(rng.uniform((6, 7), seed=5))
    expected = augment.contrast(augment.saturation(augment.brightness(IMAGES, u[:, 0]), u[:, 1]), u[:, 2])
    expected = augment.cutout(augment.translation(expected, u[:, 3:5]), u[:, 5:7])
    np.testing.assert_array_equal(_np(augment.diff_augment(IMAGES, FULL, seed=5)), _np(expected))
    assert augment.diff_augment(IMAGES, None, seed=5) is IMAGES
    generator = keras.random.SeedGenerator(0)
    first, second = (_np(augment.diff_augment(IMAGES, FULL, generator)) for _ in range(2))
    assert not np.allclose(first, second)  # the generator advances: fresh draws each call
    per_image = _np(augment.diff_augment(np.repeat(IMAGES[:1], 6, axis=0), FULL, seed=1))
    assert len({row.tobytes() for row in per_image}) == 6  # each image its own draw


def test_augmentations_are_the_same_under_xla():
    x = tf.constant(np.random.default_rng(3).uniform(-1, 1, size=(8, 28, 28, 3)).astype("float32"))
    for policy, atol in (("translation,cutout", 0.0), (FULL, 1e-6)):
        eager = augment.diff_augment(x, policy, seed=7)
        compiled = tf.function(lambda images, p=policy: augment.diff_augment(images, p, seed=7), jit_compile=True)
        np.testing.assert_allclose(_np(compiled(x)), _np(eager), rtol=0, atol=atol, err_msg=policy)


def test_gradients_flow_through_the_augmentations():
    x = tf.constant(IMAGES)
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = augment.diff_augment(x, "translation,cutout", seed=2)
        total = tf.reduce_sum(out)
    grad = _np(tape.gradient(total, x))
    # Translation and cutout copy or drop pixels: d(sum)/dx is 1 where a pixel survives, else 0.
    assert set(np.unique(grad).tolist()) == {0.0, 1.0}
    assert grad.sum() == (_np(out) != 0).sum()


# ------------------------------------------------------------------------------------------- the GAN option
def small_gan(augment_policy=FULL, channels=1, **kwargs):
    g = nets.dcgan_generator(latent_dim=8, image_shape=(8, 8, channels), width=4)
    d = nets.dcgan_discriminator(image_shape=(8, 8, channels), width=4, normalization=None)
    gan = GAN(g, d, seed=0, augment=augment_policy, **kwargs)
    gan.compile(d_optimizer=keras.optimizers.Adam(1e-3), g_optimizer=keras.optimizers.Adam(1e-3))
    return gan


def _copy_generator(gan):
    generator = keras.random.SeedGenerator(0)
    generator.state.assign(gan.seed_generator.state)
    return generator


def test_discriminator_update_sees_real_and_fake_augmented_with_independent_draws():
    """The D step's loss and R1 are those of D on T(x) and T'(G(z)), T and T' independent draws from the model's
    seed in the order z, T, T' (the paper's code augments real and generated batches separately), and R1 is taken
    on the augmented real batch the loss scores (the reference's CIFAR / FFHQ setting)."""
    gan = small_gan(channels=3, r1_weight=1.0)
    real = tf.constant(IMAGES)
    seeds = _copy_generator(gan)
    z = gan.latent_spec.sample_network_input(6, seeds)
    fake = gan.generator(z, training=True)
    real_seen = augment.diff_augment(real, FULL, seeds)
    fake_seen = augment.diff_augment(fake, FULL, seeds)
    expected = losses.LOSSES["non_saturating"][1](gan.discriminator(real_seen), gan.discriminator(fake_seen))
    expected_r1 = losses.r1_penalty(gan.discriminator, real_seen)
    logs = gan.training_phases()[0][1](real)
    assert float(logs["d_loss"]) == pytest.approx(float(expected), rel=1e-5)
    assert float(logs["r1"]) == pytest.approx(float(expected_r1), rel=1e-5)
    assert float(expected_r1) != pytest.approx(float(losses.r1_penalty(gan.discriminator, real)), rel=1e-3)
    # Independent draws: the same images augmented for the real and the fake side differ.
    seeds = _copy_generator(small_gan(channels=3))
    gan.latent_spec.sample_network_input(6, seeds)
    first, second = augment.diff_augment(real, FULL, seeds), augment.diff_augment(real, FULL, seeds)
    assert not np.allclose(_np(first), _np(second))


def test_generator_update_differentiates_through_the_augmentation():
    gan = small_gan(channels=3)
    seeds = _copy_generator(gan)
    z = gan.latent_spec.sample_network_input(6, seeds)
    with tf.GradientTape() as tape:
        fake_seen = augment.diff_augment(gan.generator(z, training=True), FULL, seeds)
        expected = losses.LOSSES["non_saturating"][0](gan.discriminator(fake_seen, training=True))
    grads = tape.gradient(expected, gan.generator.trainable_variables)
    assert all(g is not None for g in grads) and max(float(tf.reduce_max(tf.abs(g))) for g in grads) > 0
    g_loss = gan.training_phases()[1][1](tf.constant(IMAGES))["g_loss"]
    assert float(g_loss) == pytest.approx(float(expected), rel=1e-5)


def test_gradient_penalty_interpolates_the_augmented_batches():
    gan = small_gan(channels=3, loss="wasserstein", gradient_penalty_weight=10.0)
    real = tf.constant(IMAGES)
    seeds = _copy_generator(gan)
    fake = gan.generator(gan.latent_spec.sample_network_input(6, seeds), training=True)
    real_seen, fake_seen = augment.diff_augment(real, FULL, seeds), augment.diff_augment(fake, FULL, seeds)
    expected = losses.gradient_penalty(gan.discriminator, real_seen, fake_seen, seed=seeds)
    logs = gan.training_phases()[0][1](real)
    assert float(logs["gp"]) == pytest.approx(float(expected), rel=1e-5)


def test_augment_off_draws_nothing_extra():
    plain, off = small_gan(None), small_gan("")
    assert off.augment is None and off.get_config()["augment"] is None
    for gan in (plain, off):
        gan.train_on_batch(IMAGES[..., :1])
    np.testing.assert_array_equal(_np(plain.seed_generator.state), _np(off.seed_generator.state))


def test_bad_augment_arguments_are_refused():
    with pytest.raises(ValueError, match="Unknown augmentation policy 'flip'"):
        small_gan("flip")
    g = nets.mlp_generator(output_dim=2, latent_dim=2, hidden=[4])
    d = nets.mlp_discriminator(input_dim=2, hidden=[4])
    with pytest.raises(ValueError, match=r"transforms images \(H, W, C\), but the samples have shape \(2,\)"):
        GAN(g, d, augment="translation")


# ------------------------------------------------------------------------------------------- the harness
def _augmented(jit_compile=False, policy=FULL):
    config = tiny_config("dcgan", jit_compile=jit_compile)
    return dataclasses.replace(config, model={**config.model, "augment": policy})


def build(jit_compile=False):
    return presets.build_model(_augmented(jit_compile))


def test_harness_serialization_and_saving(tmp_path):
    model = build()
    assert model.augment == FULL and model.get_config()["augment"] == FULL
    test_case.run_serialization_test(model)
    test_case.run_saving_test(model, batch_for(_augmented()), tmp_path)
    restored = keras.models.load_model(os.path.join(tmp_path, "model.keras"))
    assert restored.augment == FULL
    as_list = GAN.from_config({**model.get_config(), "augment": ["color", "translation", "cutout"]})
    assert as_list.get_config() == model.get_config()


def test_harness_phases_jit_and_mixed_precision():
    batch = batch_for(_augmented())
    test_case.run_phase_test(build(), batch)
    test_case.run_jit_test(build, batch)
    test_case.run_mixed_precision_test(build, batch)


def test_harness_resume(tmp_path):
    test_case.run_resume_test(build, dataset_for(_augmented()), tmp_path)


def test_augmentation_changes_training():
    keras.utils.set_random_seed(0)
    plain = presets.build_model(_augmented(policy=None))
    keras.utils.set_random_seed(0)
    augmented = build()
    augmented.set_weights(plain.get_weights())
    batch = batch_for(_augmented())
    logs = [test_case.train_on_batch(model, batch) for model in (plain, augmented)]
    assert logs[0]["d_loss"] != pytest.approx(logs[1]["d_loss"], rel=1e-3)


def test_every_gan_preset_takes_augment_from_the_command_line_syntax():
    from keras_gen.presets.overrides import apply_overrides, parse_assignment

    key, value = parse_assignment(f"model.augment={FULL}")
    for name in ("dcgan", "wgan-gp", "cgan"):
        config = apply_overrides(tiny_config(name), {key: value})
        model = presets.build_model(config)
        assert model.augment == FULL, name
        assert np.isfinite(test_case.train_on_batch(model, batch_for(config))["d_loss"])
    with pytest.raises(ValueError, match="Unknown augmentation policy 'colour'"):
        presets.build_model(apply_overrides(tiny_config("dcgan"), {"model.augment": "colour"}))
    with pytest.raises(ValueError, match="transforms images"):
        presets.build_model(apply_overrides(tiny_config("ring2d"), {"model.augment": "cutout"}))


def test_mirrored_matches_one_device_with_augmentation():
    """Each replica augments its slice of the global batch with its slice of one global draw: the 2-replica step
    equals the one-device step on the same global batch."""
    result = subprocess.run(
        [sys.executable, str(SCRIPTS / "mirrored_parity.py"), "dcgan", "3", json.dumps({"augment": FULL})],
        capture_output=True, text=True, env=ENV, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = _last_json_line(result.stdout)
    assert report["replicas"] == [1, 2] and report["max_weight_change"] > 1e-3
    assert report["max_weight_diff"] < 1e-6, report
    single, mirrored = report["logs"]
    for key in single:
        assert mirrored[key] == pytest.approx(single[key], rel=1e-5, abs=1e-6), key


# ------------------------------------------------------------------------------------------- the overfitting alarm
TRAIN = np.random.default_rng(5).uniform(-1, 1, size=(16, 8, 8, 1)).astype("float32")
HELD_OUT = np.random.default_rng(6).uniform(-1, 1, size=(16, 8, 8, 1)).astype("float32")


def _lookup_gan():
    """A GAN whose discriminator is ``max_j(<x, t_j> - |t_j|^2 / 2)`` over the training images t_j when memorizing
    (positive on each of them, about -|t|^2 / 2 elsewhere), or the constant of its bias when its kernel is 0."""
    images = keras.Input((8, 8, 1))
    scores = keras.layers.Dense(len(TRAIN), name="lookup")(keras.layers.Flatten()(images))  # (B, 16)
    logits = keras.layers.GlobalMaxPooling1D()(keras.layers.Reshape((len(TRAIN), 1))(scores))  # (B, 1)
    discriminator = keras.Model(images, logits)
    generator = nets.dcgan_generator(latent_dim=4, image_shape=(8, 8, 1), width=4)
    return GAN(generator, discriminator, seed=0)


def _set_discriminator(gan, memorize, bias=1.0):
    flat = TRAIN.reshape(len(TRAIN), -1)  # (16, 64)
    if memorize:
        gan.discriminator.get_layer("lookup").set_weights([flat.T, -0.5 * (flat**2).sum(axis=1)])
    else:  # the same verdict on every image: sure of all real images, or of none
        gan.discriminator.get_layer("lookup").set_weights([np.zeros_like(flat.T), np.full(len(TRAIN), bias, "float32")])


def _run_overfitting_alarm(alarm, gan, memorize_from, epochs):
    alarm.set_model(gan)
    alarm.on_train_begin()
    rows = []
    for epoch in range(epochs):
        _set_discriminator(gan, memorize_from is not None and epoch >= memorize_from)
        logs = {"d_loss": 0.05}
        alarm.on_epoch_end(epoch, logs)
        rows.append(logs)
    return rows


def test_overfitting_alarm_fires_when_held_out_images_look_fake(capsys):
    from keras_gen.callbacks import DiscriminatorOverfittingAlarm

    gan = _lookup_gan()
    alarm = DiscriminatorOverfittingAlarm(TRAIN, held_out=HELD_OUT, batch_size=8)
    with pytest.warns(RuntimeWarning, match="overfitting its training images at epoch 3"):
        rows = _run_overfitting_alarm(alarm, gan, memorize_from=2, epochs=4)
    # Sure of every real image (r_t = r_held = 1) is no overfitting; then training images +1, held-out ones -1.
    assert [(row["r_t"], row["r_held"]) for row in rows] == [(1.0, 1.0), (1.0, 1.0), (1.0, -1.0), (1.0, -1.0)]
    assert alarm.alarms == [(2, 1.0, -1.0)]  # once, at the epoch it began
    err = capsys.readouterr().err
    assert "r_t = E[sign D(x)] = 1.00 on training images but -1.00 on held-out real images, d_loss 0.05" in err
    for remedy in ("model.augment=color,translation,cutout", "r1_weight", "d_steps", "d_lr", "more data"):
        assert remedy in err


def test_overfitting_alarm_without_held_out_images_watches_r_t_alone():
    from keras_gen.callbacks import DiscriminatorOverfittingAlarm

    gan = _lookup_gan()
    alarm = DiscriminatorOverfittingAlarm(TRAIN, batch_size=5, every=2)
    alarm.set_model(gan)
    alarm.on_train_begin()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for epoch, bias in enumerate((-1.0, -1.0, -1.0)):  # D calls every real image fake: r_t = -1
            _set_discriminator(gan, False, bias)
            logs = {}
            alarm.on_epoch_end(epoch, logs)
            assert logs == {"r_t": -1.0}
    assert [row[0] for row in alarm.history] == [0, 1]  # first epoch, then every 2
    _set_discriminator(gan, False, 1.0)
    with pytest.warns(RuntimeWarning, match=r"1.00 on training images\. Try DiffAugment"):
        alarm.on_epoch_end(3, {})
    assert alarm.alarms == [(3, 1.0, None)]


def test_overfitting_alarm_scores_as_training_does_and_leaves_the_discriminator_as_it_was():
    """Batch statistics of real batches (training mode), not the moving statistics that mix real and fake batches,
    and the moving statistics are put back afterwards."""
    from keras_gen.callbacks import DiscriminatorOverfittingAlarm

    generator = nets.dcgan_generator(latent_dim=4, image_shape=(8, 8, 1), width=4)
    gan = GAN(generator, nets.dcgan_discriminator(image_shape=(8, 8, 1), width=4), seed=0)  # batch normalization
    for layer in gan.discriminator.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(np.full(layer.moving_mean.shape, 5.0, "float32"))
    before = [v.numpy().copy() for v in gan.discriminator.non_trainable_variables]
    alarm = DiscriminatorOverfittingAlarm(TRAIN, held_out=HELD_OUT, batch_size=8)
    alarm.set_model(gan)
    r_t, r_held = alarm.score()
    expected = np.concatenate([np.sign(gan.discriminator(alarm.images[0][i : i + 8], training=True).numpy())
                               for i in (0, 8)])
    for variable, value in zip(gan.discriminator.non_trainable_variables, before):
        variable.assign(value)
    assert r_t == pytest.approx(float(expected.mean()))
    alarm.score()
    for variable, value in zip(gan.discriminator.non_trainable_variables, before):
        np.testing.assert_array_equal(variable.numpy(), value)


def test_overfitting_alarm_columns_reach_the_csv(tmp_path):
    import csv

    from keras_gen.callbacks import DiscriminatorOverfittingAlarm

    gan = small_gan("translation")
    alarm = DiscriminatorOverfittingAlarm(TRAIN, held_out=HELD_OUT, batch_size=8)
    gan.fit(TRAIN, batch_size=8, epochs=2, verbose=0,
            callbacks=[alarm, keras.callbacks.CSVLogger(str(tmp_path / "history.csv"))])
    with open(tmp_path / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [float(row["r_t"]) for row in rows] == [r_t for _, r_t, _ in alarm.history]
    assert all(-1 <= float(row["r_held"]) <= 1 for row in rows)


def test_overfitting_alarm_refuses_bad_arguments():
    from keras_gen.callbacks import DiscriminatorOverfittingAlarm

    with pytest.raises(ValueError, match=r"`images` must be a non-empty batch of images \(N, H, W, C\)"):
        DiscriminatorOverfittingAlarm(np.zeros((4, 2), "float32"))
    with pytest.raises(ValueError, match="`held_out` images have shape"):
        DiscriminatorOverfittingAlarm(TRAIN, held_out=np.zeros((4, 4, 4, 1), "float32"))
    with pytest.raises(ValueError, match=r"`threshold` must be a number in \(-1, 1\]"):
        DiscriminatorOverfittingAlarm(TRAIN, threshold=1.5)
    gan = _lookup_gan()
    alarm = DiscriminatorOverfittingAlarm((TRAIN, np.zeros(16, "int32")))
    alarm.set_model(gan)
    with pytest.raises(ValueError, match="an unconditional one images only"):
        alarm.on_train_begin()
