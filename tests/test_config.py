"""Runs you can configure: ``--set`` overrides and config files with errors that name the key, a preset on your own
arrays or tf.data pipeline, and schedules that follow the data they train on."""

import json

import numpy as np
import pytest
import tensorflow as tf

from keras_gen import cli, presets
from keras_gen.runs import train_run

TINY_MLP = {"generator": {"latent_dim": 2, "hidden": [8]}, "discriminator": {"hidden": [8]}}


def _decay_steps(optimizer):
    return optimizer.get_config()["learning_rate"]["config"]["decay_steps"]


# ------------------------------------------------------------------------------------------ schedules follow the data
@pytest.mark.parametrize("name, steps", [("ring2d", 10_000), ("grid2d", 15_000), ("pacgan-ring2d", 10_000)])
def test_mixture_presets_decay_over_the_steps_they_always_did(name, steps):
    """On their own 50,000 points at batch 500 (100 steps an epoch), the 2-D presets' cosine decay spans the steps
    it spanned when the presets stored them: 100 or 150 epochs of 100 steps."""
    model = presets.build_model(presets.get_config(name))
    assert _decay_steps(model.g_optimizer) == _decay_steps(model.d_optimizer) == steps


def test_a_schedule_spans_its_epochs_of_your_own_data():
    points = np.random.default_rng(0).normal(size=(5000, 2)).astype("float32")
    config = presets.get_config("ring2d", networks=TINY_MLP)
    assert config.optimizers["g_optimizer"]["config"]["learning_rate"]["config"]["decay_epochs"] == 100
    model = presets.build_model(config, data=points)
    assert _decay_steps(model.g_optimizer) == 100 * (5000 // 500)  # 100 epochs of 10 steps
    model = presets.build_model(presets.get_config("ring2d", networks=TINY_MLP, batch_size=128), data=points)
    assert _decay_steps(model.g_optimizer) == 100 * (5000 // 128)  # the last partial batch is dropped
    # Two discriminator updates per train step: its schedule counts twice the steps.
    config = presets.apply_overrides(config, {"d_steps": 2})
    model = presets.build_model(config, data=points)
    assert _decay_steps(model.d_optimizer) == 2 * _decay_steps(model.g_optimizer) == 2000


def test_a_schedule_in_epochs_needs_a_known_data_size():
    config = presets.get_config("ring2d", networks=TINY_MLP)
    with pytest.raises(ValueError, match=r"optimizers\.d_optimizer gives `decay_epochs`=100 in epochs.*decay_steps"):
        presets.build_model(config, info={"shape": (2,), "kind": "points", "num_classes": None})


# --------------------------------------------------------------------------------------------------- --set overrides
def test_overrides_by_path_and_by_shortcut():
    base = presets.get_config("dcgan")
    config = presets.apply_overrides(base, [
        "epochs=3", "networks.generator.width=32", "discriminator.width=16", "discriminator.spectral_norm=true",
        "optimizers.g_optimizer.config.learning_rate=1e-4", "d_lr=3e-4", "model.r1_weight=10", "loss=hinge",
    ])
    assert config.epochs == 3 and base.epochs == 40  # a new config; the preset's is untouched
    assert config.networks == {"generator": {"latent_dim": 100, "width": 32},
                                "discriminator": {"width": 16, "spectral_norm": True}}
    assert config.optimizers["g_optimizer"]["config"]["learning_rate"] == 1e-4
    assert config.optimizers["d_optimizer"]["config"]["learning_rate"] == 3e-4
    assert config.model == {"loss": "hinge", "r1_weight": 10}
    assert presets.apply_overrides(base, {"lr": 5e-5}).optimizers == {
        name: {"class_name": "Adam", "config": {"learning_rate": 5e-5, "beta_1": 0.5, "beta_2": 0.999}}
        for name in ("d_optimizer", "g_optimizer")
    }


def test_a_learning_rate_shortcut_keeps_the_schedule():
    config = presets.apply_overrides(presets.get_config("ring2d"), ["g_lr=5e-4"])
    g = config.optimizers["g_optimizer"]["config"]["learning_rate"]
    d = config.optimizers["d_optimizer"]["config"]["learning_rate"]
    assert g["class_name"] == "CosineDecay" and g["config"]["initial_learning_rate"] == 5e-4
    assert g["config"]["decay_epochs"] == 100 and d["config"]["initial_learning_rate"] == 1e-3


def test_values_are_read_as_json_or_else_kept_as_text():
    assert presets.parse_assignment("epochs=3") == ("epochs", 3)
    assert presets.parse_assignment("g_lr=1e-4") == ("g_lr", 1e-4)
    assert presets.parse_assignment("networks.generator.hidden=[16, 16]") == ("networks.generator.hidden", [16, 16])
    assert presets.parse_assignment("mixed_precision=null") == ("mixed_precision", None)
    assert presets.parse_assignment("loss=hinge") == ("loss", "hinge")
    assert presets.parse_assignment("dataset=tfds:cifar10") == ("dataset", "tfds:cifar10")
    with pytest.raises(ValueError, match="Expected KEY=VALUE"):
        presets.parse_assignment("epochs")


@pytest.mark.parametrize("assignment, message", [
    ("networks.generator.widht=3", r"Unknown key 'widht' under networks\.generator; valid: latent_dim, width, "
                                   r".*Did you mean 'width'\?"),
    ("epocs=3", r"Unknown key 'epocs' .*valid: preset, description, .*epochs.*Did you mean 'epochs'\?"),
    ("genrator.width=3", r"Unknown key 'genrator' in 'genrator.width'; valid: .*generator"),
    ("model.r1_weigth=1", r"Unknown key 'r1_weigth' under model; valid: loss, d_steps, .*r1_weight"),
    ("optimizers.g_optimizer.config.learning_rat=1", r"Unknown key 'learning_rat' under "
                                                     r"optimizers\.g_optimizer\.config; valid: learning_rate, beta_1"),
    ("optimizers.g_optimizer.class_name=Adamm",
     r"Unknown optimizer class 'Adamm' at optimizers\.g_optimizer\.class_name; valid: .*Adam, .*Did you mean 'Adam'\?"),
    ("epochs.x=1", r"Cannot set 'epochs\.x': epochs is 40, not a group of keys"),
    ("epochs=0", r"`epochs` must be a positive integer, got 0"),
])
def test_an_unknown_key_is_named_with_the_valid_ones(assignment, message):
    with pytest.raises(ValueError, match=message):
        presets.apply_overrides(presets.get_config("dcgan"), [assignment])


def test_a_gan_shortcut_on_a_vae_names_its_optimizers():
    with pytest.raises(ValueError, match=r"'g_lr' .*optimizers\.g_optimizer.*its optimizers: optimizer"):
        presets.apply_overrides(presets.get_config("vae"), {"g_lr": 1e-4})
    config = presets.apply_overrides(presets.get_config("vae"), {"lr": 1e-4, "encoder.latent_dim": 4, "beta": 2.0})
    assert config.optimizers["optimizer"]["config"]["learning_rate"] == 1e-4
    assert config.networks["encoder"]["latent_dim"] == 4 and config.model["beta"] == 2.0
    with pytest.raises(ValueError, match=r"Unknown key 'hiden' under networks\.decoder; valid: hidden, embedding_dim"):
        presets.apply_overrides(presets.get_config("vae"), {"decoder.hiden": [8]})


# ------------------------------------------------------------------------------------- the command: --set, --config
def _tiny_ring(epochs=1):
    return ["--set", "networks.generator.hidden=[8]", "--set", "networks.discriminator.hidden=[8]",
            "--set", f"epochs={epochs}", "--set", "sample_count=16"]


def test_train_with_set_and_from_a_config_file(tmp_path, capsys):
    first = tmp_path / "first"
    assert cli.main(["train", "ring2d", "--out", str(first), "--fit-verbose", "0", *_tiny_ring(),
                     "--set", "g_lr=5e-4", "--set", "model.r1_weight=0.5"]) == 0
    stored = json.loads((first / "config.json").read_text())
    assert stored["networks"]["generator"]["hidden"] == [8] and stored["model"]["r1_weight"] == 0.5
    assert stored["optimizers"]["g_optimizer"]["config"]["learning_rate"]["config"]["initial_learning_rate"] == 5e-4
    # The config.json a run wrote trains as it is; --set applies on top of it.
    second = tmp_path / "second"
    assert cli.main(["train", "--config", str(first / "config.json"), "--set", "seed=3", "--out", str(second),
                     "--fit-verbose", "0"]) == 0
    again = json.loads((second / "config.json").read_text())
    assert again == {**stored, "seed": 3}
    capsys.readouterr()


@pytest.mark.parametrize("args, message", [
    (["ring2d", "--set", "networks.generator.widht=3"], "Unknown key 'widht' under networks.generator; valid: "
                                                        "latent_dim, hidden, batch_norm."),
    (["--config", "missing.json"], "missing.json"),
    ([], "Give a preset (`keras-gen presets` lists them) or --config FILE"),
    (["ring2d", "--config", "x.json"], "a preset or --config FILE, not both"),
])
def test_train_refuses_a_bad_key_before_writing_anything(args, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["train", *args, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "run").exists()


def test_a_set_without_a_value_is_an_argument_error(capsys):
    with pytest.raises(SystemExit) as exit_info:  # argparse's: before TensorFlow is imported
        cli.main(["train", "ring2d", "--set", "epochs"])
    assert exit_info.value.code == 2 and "expected KEY=VALUE" in capsys.readouterr().err


def test_a_config_file_with_a_bad_key_is_refused_by_name(tmp_path, capsys):
    config = presets.get_config("ring2d").to_dict()
    config["networks"]["discriminator"]["hiden"] = [8]
    path = tmp_path / "my_run.json"
    path.write_text(json.dumps(config))
    assert cli.main(["train", "--config", str(path), "--out", str(tmp_path / "run")]) == 2
    assert "Unknown key 'hiden' under networks.discriminator; valid: hidden" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------------------------ your own data
def test_a_preset_trains_on_your_own_numpy_points(tmp_path):
    points = np.random.default_rng(0).normal(size=(64, 2)).astype("float32")
    config = presets.get_config("ring2d", networks=TINY_MLP, epochs=1, batch_size=16, sample_count=16)
    result = train_run(config, tmp_path / "run", data=points, verbose=0)
    stored = json.loads((tmp_path / "run" / "config.json").read_text())
    info = json.loads((tmp_path / "run" / "dataset.json").read_text())
    assert stored["dataset"] == "arrays (64, 2)" and info["source"] == "arrays"
    assert info["shape"] == [2] and info["splits"] == {"train": 64}
    assert result.epochs_done == 1 and len(result.history["g_loss"]) == 1
    assert _decay_steps(result.model.g_optimizer) == 100 * 4  # 100 epochs of 64 // 16 steps
    assert int(result.model.g_optimizer.iterations) == 4  # one epoch: 4 batches of 16
    assert result.model.generate(5, seed=0).shape == (5, 2)


def test_a_conditional_preset_trains_on_your_own_tf_data_pipeline(tmp_path):
    rng = np.random.default_rng(1)
    images = rng.uniform(-1, 1, size=(32, 8, 8, 1)).astype("float32")
    labels = np.arange(32, dtype="int32") % 3
    pipeline = tf.data.Dataset.from_tensor_slices((images, labels)).batch(8)
    networks = {"encoder": {"latent_dim": 2, "hidden": [16]}, "decoder": {"hidden": [16]}}
    config = presets.get_config("cvae", networks=networks, epochs=1, sample_count=9)  # batch_size 64: the pipeline's
    result = train_run(config, tmp_path / "run", data=pipeline, verbose=0)
    stored = json.loads((tmp_path / "run" / "config.json").read_text())
    info = json.loads((tmp_path / "run" / "dataset.json").read_text())
    assert stored["dataset"] == "tf.data (None, 8, 8, 1)" and stored["batch_size"] == 8
    assert info["num_classes"] == 3 and info["batches"] == 4 and info["shape"] == [8, 8, 1]
    assert int(result.model.optimizer.iterations) == 4
    assert result.model.generate(3, labels=[0, 1, 2], seed=0).shape == (3, 8, 8, 1)
    assert (tmp_path / "run" / "reconstructions").is_dir()


@pytest.mark.parametrize("data, message", [
    (np.zeros((8, 8, 8, 1), "uint8") + 255, r"scaled to \[-1, 1\].*x / 127.5 - 1"),
    (np.zeros((8, 8, 8), "float32"), r"x\[\.\.\., None\]"),
    ((np.zeros((8, 2), "float32"), np.full(8, 0.5)), "labels must be class indices"),
    (tf.data.Dataset.from_tensor_slices(np.zeros((8, 8, 8, 1), "float32")), r"add \.batch\("),
    (tf.data.Dataset.from_tensor_slices(np.zeros((8, 2), "float32")).batch(4).repeat(), "repeats forever"),
])
def test_data_that_does_not_fit_is_refused_before_the_run_folder_exists(data, message, tmp_path):
    config = presets.get_config("dcgan", epochs=1, batch_size=4)
    with pytest.raises(ValueError, match=message):
        train_run(config, tmp_path / "run", data=data, verbose=0)
    assert not (tmp_path / "run").exists()
