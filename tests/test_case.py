"""The shared model test harness (after keras-hub's `TestCase`).

Every preset's model runs all of it (tests/test_models.py, one test per check and preset), and so does a new
model (tests/test_adding_a_model.py): ``run_serialization_test``, ``run_saving_test``, ``run_phase_test``,
``run_jit_test``, ``run_mixed_precision_test``, ``run_resume_test`` and ``run_export_test``. A model takes part by
offering the package's common interface: ``get_config`` / ``from_config``, ``.keras`` saving with its optimizers,
``generate(n, seed=...)``, ``training_phases()`` (one phase per optimizer, each owning its variables),
``train_on_batch``, and its declared ``kind``, ``operations`` and ``latent_spec``. There are no model-specific
branches here."""

import os

import keras
import numpy as np

from keras_gen.runs import dtype_policy


def _values(variables):
    return [np.array(keras.ops.convert_to_numpy(v)) for v in variables]


def _optimizers(model):
    """The model's optimizers, by attribute name (those set by its compile)."""
    found = {}
    for name, value in vars(model).items():
        if isinstance(value, keras.optimizers.Optimizer):
            found[name] = value
    return dict(sorted(found.items()))


def train_on_batch(model, batch):
    """``batch`` is ``x`` or ``(x, y)``, as a dataset would yield it."""
    args = batch if isinstance(batch, tuple) else (batch,)
    return model.train_on_batch(*args, return_dict=True)


def assert_all_close(actual, expected, atol=1e-6, rtol=1e-6, msg=""):
    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), atol=atol, rtol=rtol, err_msg=msg)


def run_serialization_test(model):
    """``from_config(get_config())`` rebuilds a model with the same config and the same weight shapes."""
    config = model.get_config()
    restored = model.__class__.from_config(config)
    assert restored.get_config() == config
    assert [tuple(w.shape) for w in restored.weights] == [tuple(w.shape) for w in model.weights]


def run_saving_test(model, batch, tmp_path):
    """After one training step, a ``.keras`` round trip restores generation exactly and every optimizer's
    iterations and slot variables."""
    train_on_batch(model, batch)
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    assert_all_close(restored.generate(4, seed=7), model.generate(4, seed=7), atol=0, rtol=0)
    assert [w.path for w in restored.weights] == [w.path for w in model.weights]
    for expected, actual in zip(_values(model.weights), _values(restored.weights)):
        assert_all_close(actual, expected, atol=0, rtol=0)
    original_opts, restored_opts = _optimizers(model), _optimizers(restored)
    assert list(restored_opts) == list(original_opts) and original_opts, "optimizers were not restored"
    for name, opt in original_opts.items():
        other = restored_opts[name]
        assert int(other.iterations) == int(opt.iterations) >= 1, f"{name} iterations differ"
        assert len(other.variables) == len(opt.variables), f"{name} has a different number of variables"
        for expected, actual in zip(_values(opt.variables), _values(other.variables)):
            assert_all_close(actual, expected, atol=0, rtol=0, msg=f"{name} slot differs")
    # The restored model is compiled and can keep training.
    logs = train_on_batch(restored, batch)
    assert all(np.isfinite(v) for v in logs.values())


def run_phase_test(model, batch):
    """Each training phase changes its own network's trainable weights and no one else's."""
    phases = model.training_phases()
    assert len(phases) >= 1
    every = model.trainable_variables
    for name, run, owned in phases:
        owned_ids = {id(v) for v in owned}
        assert owned_ids, f"phase {name} owns no variables"
        before = _values(every)
        run(batch)
        after = _values(every)
        changed_owned = [
            v.path for v, b, a in zip(every, before, after) if id(v) in owned_ids and not np.array_equal(a, b)
        ]
        changed_other = [
            v.path for v, b, a in zip(every, before, after) if id(v) not in owned_ids and not np.array_equal(a, b)
        ]
        assert changed_owned, f"phase {name} changed none of its own weights"
        assert not changed_other, f"phase {name} changed weights it does not own: {changed_other}"


def run_jit_test(build, batch, atol=1e-4):
    """The first step's logged losses agree with and without XLA (same weights, same seed)."""
    logs = []
    for jit in (False, True):
        keras.utils.set_random_seed(1)
        model = build(jit_compile=jit)
        logs.append(train_on_batch(model, batch))
    assert set(logs[0]) == set(logs[1])
    for key in logs[0]:
        assert_all_close(logs[1][key], logs[0][key], atol=atol, rtol=1e-3, msg=key)


def run_mixed_precision_test(build, batch, steps=3, policy="mixed_float16"):
    """Under mixed precision, optimizers are loss-scaled (float16), outputs stay float32, steps are finite."""
    with dtype_policy(policy):
        model = build(jit_compile=False)
        for _ in range(steps):
            logs = train_on_batch(model, batch)
            assert all(np.isfinite(v) for v in logs.values()), logs
    if policy == "mixed_float16":
        for name, opt in _optimizers(model).items():
            assert isinstance(opt, keras.optimizers.LossScaleOptimizer), f"{name} is not loss-scaled"
    assert model.generate(2, seed=0).dtype == np.float32


class _Interrupt(keras.callbacks.Callback):
    def __init__(self, at_epoch):
        super().__init__()
        self.at_epoch = at_epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.at_epoch:
            raise KeyboardInterrupt("simulated interruption")


def run_resume_test(build, dataset, tmp_path, epochs=3, interrupt_at=2, seed=11):
    """``fit`` on shuffled batches, interrupted after ``interrupt_at`` epochs and resumed through
    `keras_gen.callbacks.RunBackup` by a fresh model, continues at the right epoch with the optimizers' state
    intact and each epoch's data order, and ends where an uninterrupted run ends: the same weights, optimizer
    iterations and history rows.

    ``dataset`` (batches, in a fixed order) is reshuffled every epoch by `keras_gen.data.shuffled_batches`, as
    `keras_gen.data.load_dataset` shuffles, with `keras_gen.callbacks.ShuffleEpoch` giving it fit's epoch.
    """
    import csv

    import tensorflow as tf

    from keras_gen import callbacks as cbs
    from keras_gen import data

    batch_size = int(tf.nest.flatten(dataset.element_spec)[0].shape[0])
    examples = dataset.unbatch()
    count = sum(1 for _ in examples)

    def shuffled():
        epoch = tf.Variable(0, dtype="int64")
        batches = data.shuffled_batches(examples, batch_size, seed=seed, epoch=epoch, num_examples=count)
        return batches, cbs.ShuffleEpoch(epoch)

    keras.utils.set_random_seed(3)
    reference = build(jit_compile=False)
    initial = _values(reference.weights)
    batches, order = shuffled()
    expected_history = reference.fit(batches, epochs=epochs, verbose=0, shuffle=False, callbacks=[order]).history

    keras.utils.set_random_seed(3)
    first = build(jit_compile=False)
    first.set_weights(initial)
    backup_dir = os.path.join(tmp_path, "backup")
    history_path = os.path.join(tmp_path, "history.csv")
    batches, order = shuffled()
    try:
        first.fit(batches, epochs=epochs, verbose=0, shuffle=False,
                  callbacks=[order, cbs.RunBackup(backup_dir, history_path), _Interrupt(interrupt_at)])
        raise AssertionError("the interruption did not happen")
    except KeyboardInterrupt:
        pass
    saved_iterations = {name: int(opt.iterations) for name, opt in _optimizers(first).items()}

    keras.utils.set_random_seed(99)  # a different process would start elsewhere: the backup must rule
    resumed = build(jit_compile=False)
    batches, order = shuffled()  # a new dataset, its epoch counter at 0, as in a new process
    epochs_seen = []

    class Record(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            epochs_seen.append(
                {name: int(opt.iterations) for name, opt in _optimizers(self.model).items()}
            )

        def on_epoch_begin(self, epoch, logs=None):
            epochs_seen.append(epoch)

    resumed.fit(batches, epochs=epochs, verbose=0, shuffle=False,
                callbacks=[order, cbs.RunBackup(backup_dir, history_path), Record()])
    # RunBackup restores in its own on_train_begin, which runs before Record's.
    assert epochs_seen[0] == saved_iterations, "optimizer iterations were not restored"
    assert epochs_seen[1:] == list(range(interrupt_at, epochs)), epochs_seen
    for expected, actual in zip(_values(reference.weights), _values(resumed.weights)):
        assert_all_close(actual, expected, atol=1e-5, rtol=1e-4)
    for name, opt in _optimizers(reference).items():
        assert int(_optimizers(resumed)[name].iterations) == int(opt.iterations)
    with open(history_path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(row["epoch"]) for row in rows] == list(range(epochs))
    for key, values in expected_history.items():
        assert_all_close([float(row[key]) for row in rows], values, atol=1e-5, rtol=1e-4, msg=key)


def run_export_test(model, batch, tmp_path, batch_sizes=(1, 3), n=3, seed=5):
    """Exported to every format its endpoints allow (`keras_gen.export.supported_formats`): each artifact passes the
    exporter's own parity check against Keras, and, reloaded by `keras_gen.export.load`, records the model's kind,
    operations and latent spec, draws ``model.generate(n, seed)`` for ``sample(n, seed)``, and reconstructs as the
    model does where it offers reconstruction."""
    import inspect

    import keras_gen.export as kx

    formats = kx.supported_formats(model)
    result = kx.export_model(model, tmp_path, "model", formats=",".join(formats), batch_sizes=batch_sizes,
                             allow_untrained=True)
    assert [a["format"] for a in result.manifest["artifacts"]] == list(formats)
    assert all(a["parity"]["passed"] for a in result.manifest["artifacts"])
    images, labels = batch if isinstance(batch, tuple) else (batch, None)
    images = np.asarray(images)[:n]
    labels = None if labels is None or model.num_classes is None else np.asarray(labels)[:n].astype("int32")
    expected = model.generate(n, seed=seed) if "sample" in model.operations else None
    for format in formats:
        with kx.load(result.path, format=format) as sampler:
            assert (sampler.kind, sampler.operations) == (model.kind, model.operations), format
            assert sampler.latent_spec == model.latent_spec, format
            atol = 1e-6 if format == "savedmodel" else 1e-4
            if expected is not None and "generate" in sampler.endpoints:
                assert_all_close(sampler.sample(n, seed=seed), expected, atol=atol, rtol=0, msg=format)
            if "reconstruct" in sampler.endpoints:
                takes_labels = "labels" in inspect.signature(model.reconstruct).parameters and labels is not None
                reference = model.reconstruct(images, labels=labels) if takes_labels else model.reconstruct(images)
                assert_all_close(sampler.reconstruct(images, labels=labels), reference, atol=atol, rtol=0, msg=format)
