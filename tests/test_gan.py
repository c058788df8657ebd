"""GAN behaviour beyond the shared harness: the update schedule, constraints, sampling, learning, bad input."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_gen import networks as nets
from keras_gen import rng
from keras_gen.models import GAN


def small_gan(num_classes=None, packing=1, **kwargs):
    g = nets.dcgan_generator(latent_dim=8, image_shape=(8, 8, 1), width=4, num_classes=num_classes)
    d = nets.dcgan_discriminator(image_shape=(8, 8, 1), width=4, num_classes=num_classes, packing=packing)
    gan = GAN(g, d, num_classes=num_classes, seed=0, **kwargs)
    gan.compile(d_optimizer=keras.optimizers.Adam(1e-3), g_optimizer=keras.optimizers.Adam(1e-3))
    return gan


IMAGES = np.random.default_rng(0).uniform(-1, 1, size=(8, 8, 8, 1)).astype("float32")
LABELS = np.arange(8, dtype="int32") % 3


def test_d_steps_per_generator_step():
    gan = small_gan(d_steps=3)
    gan.train_on_batch(IMAGES)
    gan.train_on_batch(IMAGES)
    assert int(gan.d_optimizer.iterations) == 6
    assert int(gan.g_optimizer.iterations) == 2


def test_weight_clipping_bounds_every_critic_weight():
    gan = small_gan(loss="wasserstein", clip_value=0.01)
    gan.train_on_batch(IMAGES)
    for v in gan.discriminator.trainable_variables:
        assert float(tf.reduce_max(tf.abs(v))) <= 0.01 + 1e-7, v.path


def test_penalties_are_logged_and_finite():
    gan = small_gan(loss="wasserstein", gradient_penalty_weight=10.0, r1_weight=1.0)
    logs = gan.train_on_batch(IMAGES, return_dict=True)
    assert set(logs) == {"d_loss", "g_loss", "gp", "r1"}
    assert all(np.isfinite(v) and v >= 0 for k, v in logs.items() if k in ("gp", "r1"))


def _sgd_gan(**kwargs):
    gan = small_gan(**kwargs)
    gan.compile(d_optimizer=keras.optimizers.SGD(0.1), g_optimizer=keras.optimizers.SGD(0.1))
    return gan


def test_lazy_r1_is_every_nth_update_weighted_by_n():
    # Compiled discriminator updates of a GAN with r1_interval=3 must equal, from the same state, an update with
    # 3x the R1 weight on updates 0 and 3 and an update without R1 on 1 and 2 (plain SGD: no optimizer state).
    lazy = _sgd_gan(r1_weight=2.0, r1_interval=3)
    every, none = _sgd_gan(r1_weight=6.0), _sgd_gan()
    steps = {id(gan): tf.function(gan.training_phases()[0][1]) for gan in (lazy, every, none)}
    batch = tf.constant(IMAGES)
    for i in range(5):
        reference = every if i % 3 == 0 else none
        for mine, theirs in ((lazy.generator, reference.generator), (lazy.discriminator, reference.discriminator)):
            theirs.set_weights(mine.get_weights())
        reference.seed_generator.state.assign(lazy.seed_generator.state)  # the same fake batch
        logs, expected = steps[id(lazy)](batch), steps[id(reference)](batch)
        for a, b in zip(lazy.discriminator.weights, reference.discriminator.weights):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6, err_msg=f"update {i}: {a.path}")
        if i % 3 == 0:
            assert float(logs["r1"]) == pytest.approx(float(expected["r1"]), rel=1e-5) and float(logs["r1"]) > 0
        else:
            assert float(logs["r1"]) == 0.0 and float(logs["r1_due"]) == 0.0
    assert int(lazy.d_optimizer.iterations.numpy()) == 5


def test_r1_sees_the_weights_the_update_starts_from():
    # Without the order that models.base.apply_gradients imposes, about 1 trace in 10 of this step computed R1
    # with the discriminator's bias already updated (0.2933 for 0.2903 here). Each trace is a new draw: 30 of
    # them catch that with probability 1 - 0.9^30 = 0.96.
    from keras_gen import losses

    first = _sgd_gan(r1_weight=6.0)
    weights = first.generator.get_weights(), first.discriminator.get_weights()
    expected = float(losses.r1_penalty(first.discriminator, IMAGES))
    for trace in range(30):
        gan = _sgd_gan(r1_weight=6.0)
        gan.generator.set_weights(weights[0])
        gan.discriminator.set_weights(weights[1])
        logs = tf.function(gan.training_phases()[0][1])(tf.constant(IMAGES))
        assert float(logs["r1"]) == pytest.approx(expected, rel=1e-6), f"trace {trace}"


def test_lazy_r1_log_averages_the_updates_that_computed_it():
    from keras_gen import losses

    gan = _sgd_gan(r1_weight=1.0, r1_interval=2)
    first = float(losses.r1_penalty(gan.discriminator, IMAGES[:4]))  # update 0 computes it, update 1 skips
    logs = gan.fit(tf.data.Dataset.from_tensor_slices(IMAGES).batch(4), epochs=1, verbose=0).history
    assert logs["r1"][0] == pytest.approx(first, rel=1e-5)
    restored = GAN.from_config(gan.get_config())
    assert restored.r1_interval == 2
    for bad in (0, 1.5, True, -1):
        with pytest.raises(ValueError, match="r1_interval"):
            small_gan(r1_weight=1.0, r1_interval=bad)


def test_generate_is_deterministic_for_a_seed_and_uses_the_shared_draw():
    gan = small_gan()
    a, b, c = gan.generate(5, seed=1), gan.generate(5, seed=1), gan.generate(5, seed=2)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    z = rng.normal((5, 8), 1)
    np.testing.assert_allclose(a, gan.generator(z, training=False).numpy(), atol=1e-6)
    assert a.shape == (5, 8, 8, 1) and a.dtype == np.float32 and np.abs(a).max() <= 1


def test_rng_normal_is_standard_normal_and_xla_stable():
    z = rng.normal((20000,), 3).numpy()
    assert abs(z.mean()) < 0.03 and abs(z.std() - 1) < 0.03
    eager = rng.normal((16,), 3).numpy()
    compiled = tf.function(lambda: rng.normal((16,), 3), jit_compile=True)().numpy()
    np.testing.assert_allclose(compiled, eager, atol=1e-5)


def test_conditional_generation_labels():
    gan = small_gan(num_classes=3)
    np.testing.assert_array_equal(gan.check_labels(None, 5), [0, 1, 2, 0, 1])
    np.testing.assert_array_equal(gan.check_labels(2, 3), [2, 2, 2])
    assert gan.generate(4, labels=[0, 1, 2, 0], seed=0).shape == (4, 8, 8, 1)
    with pytest.raises(ValueError, match=r"Labels must be in \[0, 3\); got \[3\]"):
        gan.generate(2, labels=[0, 3])
    with pytest.raises(ValueError, match="Got 3 labels for 2 samples"):
        gan.generate(2, labels=[0, 1, 2])
    with pytest.raises(ValueError, match="unconditional"):
        small_gan().generate(2, labels=[0, 1])


def test_evaluate_uses_the_test_step():
    gan = small_gan(num_classes=3)
    logs = gan.evaluate(IMAGES, LABELS, batch_size=4, verbose=0, return_dict=True)
    assert set(logs) == {"d_loss", "g_loss"} and all(np.isfinite(v) for v in logs.values())


@pytest.mark.parametrize("loss", ["non_saturating", "minimax", "least_squares", "hinge", "wasserstein"])
def test_training_moves_the_generator_to_the_data(loss):
    """A wrong sign anywhere in a loss or an update would push G away from the data instead."""
    keras.utils.set_random_seed(0)
    target = np.array([2.0, -1.0], "float32")
    data = (target + 0.05 * np.random.default_rng(0).normal(size=(4096, 2))).astype("float32")
    g = nets.mlp_generator(latent_dim=2, output_dim=2, hidden=[32, 32])
    d = nets.mlp_discriminator(input_dim=2, hidden=[32, 32])
    extra = {"gradient_penalty_weight": 1.0} if loss == "wasserstein" else {}
    gan = GAN(g, d, loss=loss, seed=0, **extra)
    gan.compile(d_optimizer=keras.optimizers.Adam(2e-3, beta_1=0.5),
                g_optimizer=keras.optimizers.Adam(2e-3, beta_1=0.5))
    before = np.linalg.norm(gan.generate(512, seed=0).mean(axis=0) - target)
    gan.fit(tf.data.Dataset.from_tensor_slices(data).batch(64), epochs=5, verbose=0)
    after = np.linalg.norm(gan.generate(512, seed=0).mean(axis=0) - target)
    assert before > 1.5 and after < 0.3, (before, after)


def test_bad_data_gets_clear_errors():
    gan = small_gan()
    with pytest.raises(ValueError, match=r"samples of shape \(28, 28, 1\).*makes \(8, 8, 1\)"):
        gan.train_on_batch(np.zeros((4, 28, 28, 1), "float32"))
    cgan = small_gan(num_classes=3)
    with pytest.raises(ValueError, match="conditional.*must be \\(images, labels\\)"):
        cgan.train_on_batch(IMAGES)
    with pytest.raises(ValueError, match="Got 3 labels for a batch of 8 images"):
        cgan.train_on_batch(IMAGES, LABELS[:3])
    packed = small_gan(packing=4)
    with pytest.raises(ValueError, match="packs 4 samples.*batch size 6"):
        packed.train_on_batch(IMAGES[:6])


def test_bad_arguments_get_clear_errors():
    g = nets.dcgan_generator(latent_dim=8, image_shape=(8, 8, 1), width=4)
    d = nets.dcgan_discriminator(image_shape=(8, 8, 1), width=4)
    with pytest.raises(ValueError, match="Unknown GAN loss 'wgan'"):
        GAN(g, d, loss="wgan")
    with pytest.raises(ValueError, match="d_steps"):
        GAN(g, d, d_steps=0)
    with pytest.raises(ValueError, match=r"num_classes=10 needs 2 \(z, label\)"):
        GAN(g, d, num_classes=10)
    with pytest.raises(ValueError, match="makes samples of shape"):
        GAN(g, nets.dcgan_discriminator(image_shape=(16, 16, 1), width=4))
    with pytest.raises(TypeError, match="keras.Model"):
        GAN("generator", d)
    gan = GAN(g, d)
    with pytest.raises(ValueError, match="compile"):
        gan.train_on_batch(IMAGES)
    with pytest.raises(RuntimeError, match=r"gan.compile\(d_optimizer"):
        gan.training_phases()
    with pytest.raises(TypeError, match="takes no `optimizer`"):
        gan.compile(optimizer="adam")
    opt = keras.optimizers.Adam()
    with pytest.raises(ValueError, match="two different optimizer instances"):
        gan.compile(d_optimizer=opt, g_optimizer=opt)
    with pytest.raises(ValueError, match="positive integer"):
        gan.generate(0)


def test_loss_scaling_skips_a_non_finite_step_and_lowers_the_scale():
    keras.config.set_dtype_policy("mixed_float16")
    gan = small_gan()
    assert isinstance(gan.d_optimizer, keras.optimizers.LossScaleOptimizer)
    before = [v.numpy().copy() for v in gan.discriminator.trainable_variables]
    scale = float(gan.d_optimizer.dynamic_scale)
    grads = [tf.fill(v.shape, np.float32(np.inf)) for v in gan.discriminator.trainable_variables]
    gan.d_optimizer.apply_gradients(zip(grads, gan.discriminator.trainable_variables))
    for b, v in zip(before, gan.discriminator.trainable_variables):
        np.testing.assert_array_equal(v.numpy(), b)
    assert float(gan.d_optimizer.dynamic_scale) == scale / 2



class _RecordGenerator(keras.callbacks.Callback):
    """The generator's trainable weights after every step (what the optimizer's moving average sees)."""

    def on_train_begin(self, logs=None):
        self.steps = []

    def on_train_batch_end(self, batch, logs=None):
        self.steps.append([v.numpy().copy() for v in self.model.generator.trainable_variables])


def test_fit_puts_the_generator_weight_average_in_place(tmp_path):
    momentum = 0.9
    gan = small_gan()
    gan.compile(d_optimizer=keras.optimizers.Adam(1e-2),
                g_optimizer=keras.optimizers.Adam(1e-2, use_ema=True, ema_momentum=momentum))
    record = _RecordGenerator()
    gan.fit(tf.data.Dataset.from_tensor_slices(IMAGES).batch(2), epochs=2, callbacks=[record], verbose=0)
    assert len(record.steps) == 8
    # Independent EMA (Keras's rule: the first step copies the weights, then a <- m a + (1 - m) w).
    expected = [w.copy() for w in record.steps[0]]
    for step in record.steps[1:]:
        expected = [momentum * a + (1 - momentum) * w for a, w in zip(expected, step)]
    last = record.steps[-1]
    for v, e, raw in zip(gan.generator.trainable_variables, expected, last):
        np.testing.assert_allclose(v.numpy(), e, rtol=1e-5, atol=1e-6)
    assert any(not np.allclose(e, raw, atol=1e-4) for e, raw in zip(expected, last))  # the average differs
    # The discriminator (no use_ema) keeps its last weights; the saved model holds the averaged generator.
    path = str(tmp_path / "gan.keras")
    gan.save(path)
    restored = keras.models.load_model(path)
    np.testing.assert_allclose(restored.generate(4, seed=3), gan.generate(4, seed=3), atol=1e-6)


def test_use_ema_changes_no_update():
    # The README reads r1-ema-stacked-mnist's live weights as r1-stacked-mnist's runs: the average must be a
    # bystander until fit ends.
    weights = []
    for use_ema in (False, True):
        keras.utils.set_random_seed(0)
        gan = GAN(nets.dcgan_generator(latent_dim=8, image_shape=(8, 8, 1), width=4),
                  nets.dcgan_discriminator(image_shape=(8, 8, 1), width=4), seed=0, r1_weight=10.0)
        gan.compile(d_optimizer=keras.optimizers.Adam(1e-2),
                    g_optimizer=keras.optimizers.Adam(1e-2, use_ema=use_ema, ema_momentum=0.9))
        record = _RecordGenerator()
        gan.fit(tf.data.Dataset.from_tensor_slices(IMAGES).batch(2), epochs=2, callbacks=[record], verbose=0)
        weights.append(record.steps + [[v.numpy() for v in gan.discriminator.weights]])
    for plain, averaged in zip(*weights):
        for a, b in zip(plain, averaged):
            np.testing.assert_array_equal(a, b)


def test_weight_average_is_not_applied_before_any_step():
    gan = small_gan()
    gan.compile(d_optimizer=keras.optimizers.Adam(1e-3),
                g_optimizer=keras.optimizers.Adam(1e-3, use_ema=True))
    before = [v.numpy().copy() for v in gan.generator.trainable_variables]
    gan.fit(tf.data.Dataset.from_tensor_slices(IMAGES).batch(2), epochs=0, verbose=0)
    gan.finalize_averages()  # no step taken: the zero-initialized averages must not replace the weights
    for b, v in zip(before, gan.generator.trainable_variables):
        np.testing.assert_array_equal(v.numpy(), b)


def test_keeps_generator_average_reads_the_generators_optimizer_through_loss_scaling():
    gan = small_gan()
    assert gan.keeps_generator_average is False  # plain Adam
    cases = [(keras.optimizers.Adam(use_ema=True), keras.optimizers.Adam(), False),  # only D averages
             (keras.optimizers.Adam(), keras.optimizers.Adam(use_ema=True), True),
             (keras.optimizers.Adam(), keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam(use_ema=True)), True),
             (keras.optimizers.Adam(), keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam()), False)]
    for d_optimizer, g_optimizer, expected in cases:
        gan = small_gan()
        gan.compile(d_optimizer=d_optimizer, g_optimizer=g_optimizer)
        assert gan.keeps_generator_average is expected


def test_averaged_weights_swaps_the_averages_in_and_the_live_weights_back():
    gan = small_gan()
    gan.compile(d_optimizer=keras.optimizers.Adam(1e-2, use_ema=True, ema_momentum=0.5),
                g_optimizer=keras.optimizers.Adam(1e-2, use_ema=True, ema_momentum=0.9))
    before = [v.numpy().copy() for v in gan.generator.trainable_variables]
    with gan.averaged_weights():  # no step yet: the zero-initialized averages stay out
        for v, b in zip(gan.generator.trainable_variables, before):
            np.testing.assert_array_equal(v.numpy(), b)
    gan.fit(tf.data.Dataset.from_tensor_slices(IMAGES).batch(2), epochs=1, verbose=0)
    # fit left the averages in place; live weights that moved on (as in the middle of a fit) differ from them.
    for variable in gan.discriminator.trainable_variables + gan.generator.trainable_variables:
        variable.assign(variable + 0.1)
    networks = (gan.discriminator, gan.generator)
    optimizers = (gan.d_optimizer, gan.g_optimizer)
    live = [[v.numpy().copy() for v in n.trainable_variables] for n in networks]
    averages = [[a.numpy().copy() for a in o._model_variables_moving_average] for o in optimizers]
    samples = gan.generate(4, seed=1)
    with pytest.raises(RuntimeError, match="inside"):
        with gan.averaged_weights():
            for network, expected in zip(networks, averages):
                for v, a in zip(network.trainable_variables, expected):
                    np.testing.assert_array_equal(v.numpy(), a)
            assert not np.allclose(gan.generate(4, seed=1), samples, atol=1e-6)  # the average samples otherwise
            raise RuntimeError("inside")
    for network, expected in zip(networks, live):  # back, although the block raised
        for v, w in zip(network.trainable_variables, expected):
            np.testing.assert_array_equal(v.numpy(), w)
    np.testing.assert_array_equal(gan.generate(4, seed=1), samples)


def test_fit_on_a_dataset_does_not_warn_about_shuffle():
    # Keras ignores `shuffle` for a tf.data.Dataset and warns when it is True, its default; the package's models
    # pass False for datasets, and leave a flag the user passed alone.
    gan = small_gan()
    dataset = tf.data.Dataset.from_tensor_slices(IMAGES).batch(4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gan.fit(dataset, epochs=1, verbose=0)
    assert not [w for w in caught if "shuffle" in str(w.message)]
    with pytest.warns(UserWarning, match="shuffle=True"):
        gan.fit(dataset, epochs=1, verbose=0, shuffle=True)


def test_recompute_generator_statistics_averages_fresh_batches():
    gan = small_gan(num_classes=3)
    gan.fit(tf.data.Dataset.from_tensor_slices((IMAGES, LABELS)).batch(4), epochs=1, verbose=0)
    layers = [l for l in gan.generator._flatten_layers() if isinstance(l, keras.layers.BatchNormalization)]
    assert layers
    momenta = [layer.momentum for layer in layers]
    assert gan.recompute_generator_statistics(batches=3, batch_size=6, seed=5) == len(layers)
    labels = tf.constant(np.arange(6) % 3, dtype="int32")
    for layer, momentum in zip(layers, momenta):
        # Independently: the layer's input on the same three batches, its per-batch moments, their mean.
        inputs = keras.Model(gan.generator.inputs, layer.input)
        batches = [inputs([gan.sample_latent(6, seed=5 + i), labels], training=True).numpy() for i in range(3)]
        axes = tuple(range(batches[0].ndim - 1))
        np.testing.assert_allclose(layer.moving_mean.numpy(), np.mean([b.mean(axes) for b in batches], 0),
                                   rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(layer.moving_variance.numpy(), np.mean([b.var(axes) for b in batches], 0),
                                   rtol=1e-4, atol=1e-6)
        assert layer.momentum == momentum


def test_recompute_generator_statistics_keeps_the_old_ones_when_it_fails():
    gan = small_gan()
    layer = next(l for l in gan.generator._flatten_layers() if isinstance(l, keras.layers.BatchNormalization))
    layer.moving_mean.assign(np.full(layer.moving_mean.shape, 0.5, "float32"))
    for bad in ({"batches": 0}, {"batch_size": 1}, {"batches": 2.0}, {"seed": "x"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            gan.recompute_generator_statistics(**bad)
    draws = []

    def interrupted(n, seed=None):  # the second batch's draw is interrupted, after the first batch ran
        draws.append(seed)
        if len(draws) == 2:
            raise KeyboardInterrupt
        return rng.normal((n, gan.latent_dim), seed)

    gan.sample_latent = interrupted
    with pytest.raises(KeyboardInterrupt):
        gan.recompute_generator_statistics(batches=3)
    assert draws == [0, 1]
    np.testing.assert_array_equal(layer.moving_mean.numpy(), 0.5)
    assert layer.momentum == 0.99


def test_standing_statistics_after_fit_belong_to_the_averaged_generator(tmp_path):
    def moving(gan):
        return [(l.moving_mean.numpy(), l.moving_variance.numpy()) for l in gan.generator._flatten_layers()
                if isinstance(l, keras.layers.BatchNormalization)]

    stats = {}
    for standing, use_ema in ((0, True), (3, True), (3, False)):
        keras.utils.set_random_seed(0)
        gan = small_gan(standing_statistics=standing)
        gan.compile(d_optimizer=keras.optimizers.Adam(1e-2),
                    g_optimizer=keras.optimizers.Adam(1e-2, use_ema=use_ema, ema_momentum=0.9))
        gan.fit(tf.data.Dataset.from_tensor_slices(IMAGES).batch(2), epochs=2, verbose=0)
        stats[standing, use_ema] = moving(gan)
        if standing and use_ema:
            # What fit left are the statistics of the weights now in place (the average), over 3 batches.
            gan.recompute_generator_statistics(batches=3)
            for (mean, variance), (again_mean, again_variance) in zip(stats[standing, use_ema], moving(gan)):
                np.testing.assert_allclose(mean, again_mean, rtol=1e-5, atol=1e-7)
                np.testing.assert_allclose(variance, again_variance, rtol=1e-5, atol=1e-7)
            path = str(tmp_path / "gan.keras")
            gan.save(path)
            restored = keras.models.load_model(path)
            assert restored.standing_statistics == 3
            np.testing.assert_allclose(restored.generate(4, seed=3), gan.generate(4, seed=3), atol=1e-6)
    # Without the option fit keeps training's statistics; without an average in place the option does nothing
    # (use_ema changes no update, so the runs trained alike).
    assert not np.allclose(stats[0, True][0][1], stats[3, True][0][1])
    for (mean, variance), (kept_mean, kept_variance) in zip(stats[3, False], stats[0, True]):
        np.testing.assert_array_equal(mean, kept_mean)
        np.testing.assert_array_equal(variance, kept_variance)
    for bad in (-1, 1.5, True, "3"):
        with pytest.raises(ValueError, match="standing_statistics"):
            small_gan(standing_statistics=bad)


def test_penalties_warn_about_keras_own_normalization_layers():
    # R1 / the gradient penalty through keras.layers.BatchNormalization get a wrong second derivative on
    # TensorFlow (tests/test_losses.py shows it); the package's discriminators use its own layers.
    g = nets.dcgan_generator(latent_dim=8, image_shape=(16, 16, 1), width=4)
    images = keras.Input((16, 16, 1))
    x = keras.layers.Conv2D(4, 4, strides=2, padding="same")(images)
    x = keras.layers.BatchNormalization(name="stock_bn")(x)
    stock = keras.Model(images, keras.layers.Dense(1)(keras.layers.Flatten()(x)))
    message = r"own layers \(stock_bn\).*tf.nn.moments.*keras_gen.networks.BatchNormalization"
    with pytest.warns(RuntimeWarning, match=message):
        GAN(g, stock, r1_weight=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        GAN(g, stock)  # no penalty: nothing differentiates twice
        ours = nets.dcgan_discriminator(image_shape=(16, 16, 1), width=4, normalization="batch")
        GAN(g, ours, r1_weight=1.0)
        GAN(g, nets.dcgan_discriminator(image_shape=(16, 16, 1), width=4, normalization="layer"),
            loss="wasserstein", gradient_penalty_weight=10.0)
    assert sum(isinstance(layer, nets.BatchNormalization) for layer in ours.layers) == 1  # 16 -> 8 -> 4


def test_r1_read_order_benchmark_checks_its_arguments_and_restores_the_update(capsys):
    from keras_gen.models import base
    from keras_gen.models import gan as gan_module
    from tests.helpers import load_script

    bench = load_script("r1_read_order")
    for argv, message in ((["--presets", "nope"], "Unknown preset 'nope'"),
                          (["--presets", "dcgan"], "has no R1 penalty"),
                          (["--traces", "0"], "--traces must be >= 1, got 0")):
        with pytest.raises(SystemExit):
            bench.parse_args(argv)
        assert message in capsys.readouterr().err
    with bench._order(bench.ORDERS[1]):
        assert gan_module.apply_gradients is bench._unordered
    assert gan_module.apply_gradients is base.apply_gradients


def test_restoring_generator_statistics_puts_back_the_ones_training_keeps():
    """``with gan.restoring_generator_statistics():`` lets standing statistics be recomputed for a look (the
    averaged generator scored mid-training) and puts back what the batch norms held, also after an exception."""
    import contextlib

    gan = small_gan()
    gan.fit(IMAGES, epochs=1, batch_size=4, verbose=0)
    layers = [l for l in gan.generator._flatten_layers() if isinstance(l, keras.layers.BatchNormalization)]
    kept = [(layer.moving_mean.numpy(), layer.moving_variance.numpy()) for layer in layers]
    for fail in (False, True):
        with pytest.raises(KeyboardInterrupt) if fail else contextlib.nullcontext():
            with gan.restoring_generator_statistics() as count:
                assert count == len(layers) > 0
                gan.recompute_generator_statistics(batches=2, batch_size=4)
                assert not np.allclose(layers[0].moving_variance.numpy(), kept[0][1])  # recomputed inside
                if fail:
                    raise KeyboardInterrupt
        for layer, (mean, variance) in zip(layers, kept):
            np.testing.assert_array_equal(layer.moving_mean.numpy(), mean)
            np.testing.assert_array_equal(layer.moving_variance.numpy(), variance)
    plain = GAN(nets.mlp_generator(latent_dim=2, hidden=[8]), nets.mlp_discriminator(hidden=[8]), seed=0)
    with plain.restoring_generator_statistics() as count:  # no batch norm: nothing to keep
        assert count == 0


# ------------------------------------------------------------------------------------------- AC-GAN
def acgan(loss="non_saturating", classifier_weight=1.0, learning_rate=1e-3, normalization="batch", **kwargs):
    g = nets.dcgan_generator(latent_dim=8, image_shape=(8, 8, 1), width=4, num_classes=3, conditioning="cbn")
    d = nets.dcgan_discriminator(image_shape=(8, 8, 1), width=4, num_classes=3, classifier_head=True,
                                 normalization=normalization)
    gan = GAN(g, d, num_classes=3, loss=loss, classifier_weight=classifier_weight, seed=0, **kwargs)
    gan.compile(d_optimizer=keras.optimizers.SGD(learning_rate), g_optimizer=keras.optimizers.SGD(learning_rate))
    return gan


def _no_adversarial_loss():
    """A loss pair that is 0 whatever the logits: what is left of each player's objective is its class loss."""
    return (lambda fake: 0.0 * keras.ops.mean(fake), lambda real, fake: 0.0 * keras.ops.mean(real + fake))


def test_acgan_logs_the_class_cross_entropies_of_real_and_generated_images():
    from keras_gen import losses

    gan = acgan(r1_weight=1.0)
    seeds = keras.random.SeedGenerator(0)
    seeds.state.assign(gan.seed_generator.state)
    z = gan.latent_spec.sample_network_input(8, seeds)
    labels = tf.constant(LABELS)
    fake = gan.generator([z, labels], training=True)
    (real_logits, real_classes), (fake_logits, _) = (gan.discriminator([x, labels], training=True)
                                                     for x in (tf.constant(IMAGES), fake))
    expected_r1 = losses.r1_penalty(lambda x, training: gan.discriminator(x, training=training)[0], IMAGES, labels)
    logs = gan.training_phases()[0][1]((IMAGES, LABELS))
    assert float(logs["d_class"]) == pytest.approx(float(losses.classifier_loss(real_classes, LABELS)), rel=1e-5)
    expected = losses.non_saturating_discriminator_loss(real_logits, fake_logits)
    assert float(logs["d_loss"]) == pytest.approx(float(expected), rel=1e-5)  # the adversarial part alone
    assert float(logs["r1"]) == pytest.approx(float(expected_r1), rel=1e-5)
    images = tf.constant(IMAGES)
    np.testing.assert_allclose(gan.discriminate([images, labels]), gan.discriminator([images, labels])[0])


def test_acgan_players_lower_their_class_losses():
    """With the adversarial losses at 0, discriminator updates lower the class loss on real images, and then
    generator updates the class loss of its samples for the labels they were drawn for (with the class term left
    out of either objective, nothing would change)."""
    from keras_gen import losses

    gan = acgan(loss=_no_adversarial_loss(), learning_rate=0.5, normalization=None)
    z, labels = rng.normal((8, 8), seed=3), tf.constant(LABELS)
    (_, discriminator_step, _), (_, generator_step, _) = gan.training_phases()

    def class_loss(images):
        return float(losses.classifier_loss(gan.discriminator([images, labels], training=True)[1], LABELS))

    def samples():
        return gan.generator([z, labels], training=True)

    before = class_loss(tf.constant(IMAGES))
    for _ in range(20):
        discriminator_step((IMAGES, LABELS))
    assert class_loss(tf.constant(IMAGES)) < before / 10  # measured 1.06 -> 0.02 over seeds
    before = class_loss(samples())
    for _ in range(20):
        generator_step((IMAGES, LABELS))
    assert class_loss(samples()) < before - 0.2  # measured drops of 0.7 to 1.3 over 4 latent draws


def test_acgan_arguments_are_checked():
    g = nets.dcgan_generator(latent_dim=8, image_shape=(8, 8, 1), width=4, num_classes=3)
    head = nets.dcgan_discriminator(image_shape=(8, 8, 1), width=4, num_classes=3, classifier_head=True)
    plain = nets.dcgan_discriminator(image_shape=(8, 8, 1), width=4, num_classes=3)
    with pytest.raises(ValueError, match="2 outputs; a GAN uses one"):
        GAN(g, head, num_classes=3)
    with pytest.raises(ValueError, match=r"classifier_weight=1.0. needs a discriminator with two outputs"):
        GAN(g, plain, num_classes=3, classifier_weight=1.0)
    with pytest.raises(ValueError, match="classifier_weight. must be >= 0"):
        GAN(g, head, num_classes=3, classifier_weight=-1.0)
    other = nets.dcgan_discriminator(image_shape=(8, 8, 1), width=4, num_classes=4, classifier_head=True)
    with pytest.raises(ValueError, match=r"shape \(B, 3\).*the second of shape \(B, 4\)"):
        GAN(g, other, num_classes=3, classifier_weight=1.0)
    with pytest.raises(ValueError, match="the features it classifies already hold the label"):
        nets.dcgan_discriminator(image_shape=(8, 8, 1), width=4, num_classes=3, conditioning="concat",
                                 classifier_head=True)
    with pytest.raises(ValueError, match="needs a conditional discriminator"):
        nets.dcgan_discriminator(image_shape=(8, 8, 1), width=4, classifier_head=True)


# ------------------------------------------------------------------------------------------- InfoGAN
def _info_latent():
    from keras_gen.latent_spec import LatentPart, LatentSpec

    return LatentSpec([LatentPart("z", (4,)), LatentPart("digit", (), "categorical", num_classes=3),
                       LatentPart("style", (2,), "uniform", low=-1.0, high=1.0)])


def infogan(loss="non_saturating", learning_rate=1e-3, normalization="batch", **kwargs):
    g = nets.dcgan_generator(latent_dim=9, image_shape=(8, 8, 1), width=4)
    d = nets.dcgan_discriminator(image_shape=(8, 8, 1), width=4, code_head=5, normalization=normalization)
    gan = GAN(g, d, loss=loss, latent=_info_latent(), info_weight=1.0, info_codes=["digit", "style"], seed=0,
              **kwargs)
    gan.compile(d_optimizer=keras.optimizers.SGD(learning_rate), g_optimizer=keras.optimizers.SGD(learning_rate))
    return gan


def _info_reference(outputs, parts):
    """The codes' negative log-likelihood in NumPy: cross-entropy of 'digit' plus the unit-variance Gaussian NLL
    (without its constant) of 'style'."""
    outputs = np.asarray(outputs, dtype="float64")
    logits, means = outputs[:, :3], outputs[:, 3:]
    log_softmax = logits - logits.max(1, keepdims=True)
    log_softmax -= np.log(np.exp(log_softmax).sum(1, keepdims=True))
    digit, style = np.asarray(parts["digit"]), np.asarray(parts["style"])
    return -log_softmax[np.arange(len(digit)), digit].mean() + np.mean(0.5 * ((means - style) ** 2).sum(1))


def test_infogan_logs_the_codes_negative_log_likelihood_under_q():
    gan = infogan()
    seeds = keras.random.SeedGenerator(0)
    seeds.state.assign(gan.seed_generator.state)
    parts = gan.latent_spec.sample(8, seeds)
    fake = gan.generator(gan.latent_spec.network_input(parts), training=True)
    real_logits, _ = gan.discriminator(tf.constant(IMAGES), training=True)
    fake_logits, fake_codes = gan.discriminator(fake, training=True)
    logs = gan.training_phases()[0][1](IMAGES)
    assert float(logs["d_info"]) == pytest.approx(_info_reference(fake_codes, parts), rel=1e-5)
    from keras_gen import losses

    expected = losses.non_saturating_discriminator_loss(real_logits, fake_logits)
    assert float(logs["d_loss"]) == pytest.approx(float(expected), rel=1e-5)  # the adversarial part alone


def test_infogan_players_make_the_codes_readable():
    """With the adversarial losses at 0, discriminator (Q) updates lower the codes' NLL on generated images, and then
    generator updates lower it further for Q as it stands: both players maximize the mutual-information bound."""
    gan = infogan(loss=_no_adversarial_loss(), learning_rate=0.5, normalization=None)
    parts = gan.latent_spec.sample(64, seed=5)
    z = gan.latent_spec.network_input(parts)
    (_, discriminator_step, _), (_, generator_step, _) = gan.training_phases()

    def nll():
        return _info_reference(gan.discriminator(gan.generator(z, training=True), training=True)[1], parts)

    before = nll()
    for _ in range(20):
        discriminator_step(IMAGES)
    after_q = nll()
    assert after_q < before - 0.1
    for _ in range(20):
        generator_step(IMAGES)
    assert nll() < after_q - 0.1


def test_infogan_arguments_are_checked():
    g = nets.dcgan_generator(latent_dim=9, image_shape=(8, 8, 1), width=4)
    d = nets.dcgan_discriminator(image_shape=(8, 8, 1), width=4, code_head=5)
    latent = _info_latent()
    with pytest.raises(ValueError, match=r"needs `info_codes`"):
        GAN(g, d, latent=latent, info_weight=1.0)
    with pytest.raises(ValueError, match=r"\['nope'\] are not parts of the latent \['z', 'digit', 'style'\]"):
        GAN(g, d, latent=latent, info_weight=1.0, info_codes=["nope"])
    with pytest.raises(ValueError, match=r"codes \['digit'\] of shape \(B, 3\).*code_head=3.*second of shape \(B, 5\)"):
        GAN(g, d, latent=latent, info_weight=1.0, info_codes=["digit"])
    with pytest.raises(ValueError, match=r"needs `info_weight` > 0"):
        GAN(g, d, latent=latent, info_codes=["digit"])
    with pytest.raises(ValueError, match="one auxiliary head"):
        nets.dcgan_discriminator(image_shape=(8, 8, 1), width=4, num_classes=3, classifier_head=True, code_head=5)
    with pytest.raises(ValueError, match="code_head. must be a non-negative integer"):
        nets.dcgan_discriminator(image_shape=(8, 8, 1), width=4, code_head=-1)
