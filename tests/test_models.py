"""Every preset's model through the shared harness (tests/test_case.py), at tiny sizes.

The presets keep their losses, regularizers, conditioning, packing and optimizers; only the sizes shrink
(8x8 digits instead of 28x28 MNIST, widths of 8, batch 8) so the whole suite stays fast. Each check runs once per
configuration that differs at those sizes: the training checks skip a preset whose tiny config equals another's
(dcgan-stacked-mnist is then dcgan), and the export round trip runs once per exported network (the DCGAN presets
export the same generator whatever loss trained it), so a new preset is checked as soon as it differs.
"""

import functools
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_gen import data, presets
from tests import test_case

BATCH = 8


def _tiny_dcgan(networks):
    networks["generator"].update(latent_dim=8, width=8)
    networks["discriminator"].update(width=8)
    return "digits"


def _tiny_mlp(networks):
    for role in networks:
        networks[role].update(hidden=[16, 16])
    return None


def _tiny_vae_mlp(networks):
    networks["encoder"].update(latent_dim=4, hidden=[16])
    networks["decoder"].update(hidden=[16])
    return "digits"


def _tiny_vae_conv(networks):
    networks["encoder"].update(latent_dim=4, widths=[8, 16], hidden=16)
    networks["decoder"].update(widths=[8, 16], hidden=16)
    return "digits"


def _tiny_vqvae(networks):
    networks["encoder"].update(code_dim=4, width=8, num_downsamples=1, num_residual=1)  # 8x8 digits -> 4x4 codes
    networks["decoder"].update(width=8, num_residual=1)
    networks["quantizer"].update(num_codes=8)
    networks["prior"].update(width=8, num_blocks=1, first_kernel_size=3)
    return "digits"


def _tiny_pixelcnn(networks):
    networks["pixel_cnn"].update(width=8, num_blocks=1, first_kernel_size=3)
    return "digits"


TINY = {
    "dcgan": _tiny_dcgan,
    "mlp": _tiny_mlp,
    "vae-mlp": _tiny_vae_mlp,
    "vae-conv": _tiny_vae_conv,
    "vqvae": _tiny_vqvae,
    "pixelcnn": _tiny_pixelcnn,
}
"""``network name -> fn(networks dict)`` that shrinks the networks in place and returns a smaller dataset name (or
None to keep the preset's). Every network kind a preset uses must have an entry; a new family adds its own."""

PRESET_NAMES = sorted(presets.PRESETS)


def _distinct(names, key):
    """The first of ``names`` for each value of ``key(tiny config dict)``: one check per configuration that differs."""
    seen = {}
    for name in names:
        seen.setdefault(json.dumps(key(tiny_config(name).to_dict()), sort_keys=True), name)
    return sorted(seen.values())


def _training_key(config):
    """What training depends on: everything but names, descriptions and lengths (dcgan-stacked-mnist at tiny sizes
    is dcgan)."""
    return {k: v for k, v in config.items() if k not in ("preset", "description", "epochs", "sample_count")}


def _export_key(config):
    """What an export depends on: the family, the networks it holds (never a discriminator), the classes, the latent
    and the likelihood (the DCGAN presets differ only in how their generator was trained)."""
    networks = {role: kwargs for role, kwargs in config["networks"].items() if role != "discriminator"}
    model = {k: config["model"].get(k) for k in ("latent", "likelihood")}
    return [config["family"], config["network"], networks, config["conditional"], config["dataset"], model]


def tiny_config(name, **overrides):
    preset = presets.PRESETS[name]
    networks = {role: dict(kwargs) for role, kwargs in preset["networks"].items()}
    dataset = TINY[preset["network"]](networks) or preset["dataset"]
    if preset.get("model", {}).get("latent") and "generator" in networks:  # the latent's parts fix G's input width
        networks["generator"]["latent_dim"] = preset["networks"]["generator"]["latent_dim"]
    return presets.get_config(name, dataset=dataset, networks=networks, batch_size=BATCH, **overrides)


@functools.lru_cache(maxsize=None)
def _arrays(dataset):
    x, y = data.load_arrays(dataset, split="train")
    return np.array(x[: 4 * BATCH]), np.array(y[: 4 * BATCH])


def batch_for(config):
    x, y = _arrays(config.dataset)
    return (tf.constant(x[:BATCH]), tf.constant(y[:BATCH]))


def dataset_for(config, batches=2):
    x, y = _arrays(config.dataset)
    n = batches * BATCH
    return tf.data.Dataset.from_tensor_slices((x[:n], y[:n])).batch(BATCH, drop_remainder=True)


def builder(name):
    def build(jit_compile=False):
        config = tiny_config(name, jit_compile=jit_compile)
        return presets.build_model(config)

    return build


HARNESS_NAMES = _distinct(PRESET_NAMES, _training_key)
EXPORT_NAMES = _distinct(PRESET_NAMES, _export_key)


@pytest.mark.parametrize("name", HARNESS_NAMES)
def test_serialization(name):
    test_case.run_serialization_test(builder(name)())


@pytest.mark.parametrize("name", HARNESS_NAMES)
def test_saving(name, tmp_path):
    model = builder(name)()
    test_case.run_saving_test(model, batch_for(tiny_config(name)), tmp_path)


@pytest.mark.parametrize("name", HARNESS_NAMES)
def test_phases(name):
    model = builder(name)()
    test_case.run_phase_test(model, batch_for(tiny_config(name)))


@pytest.mark.parametrize("name", HARNESS_NAMES)
def test_jit_matches_eager_graph(name):
    test_case.run_jit_test(builder(name), batch_for(tiny_config(name)))


@pytest.mark.parametrize("name", HARNESS_NAMES)
def test_mixed_precision(name):
    test_case.run_mixed_precision_test(builder(name), batch_for(tiny_config(name)))


@pytest.mark.parametrize("name", HARNESS_NAMES)
def test_resume(name, tmp_path):
    test_case.run_resume_test(builder(name), dataset_for(tiny_config(name)), tmp_path)


@pytest.mark.parametrize("name", ["dcgan", "vae", "vqvae"])
def test_steps_per_execution_trains_the_same_weights(name):
    """RunConfig.steps_per_execution only changes how steps are dispatched: 4 steps in one execution end with
    the weights of 4 steps one at a time."""
    weights = []
    for spe in (1, 4):
        keras.utils.set_random_seed(0)
        config = tiny_config(name, steps_per_execution=spe)
        model = presets.build_model(config)
        assert model.steps_per_execution == spe
        model.fit(dataset_for(config, batches=4), epochs=1, verbose=0, shuffle=False)
        weights.append([w.numpy() for w in model.weights])
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="steps_per_execution"):
        tiny_config(name, steps_per_execution=0)


@pytest.mark.parametrize("name", EXPORT_NAMES)
def test_export(name, tmp_path):
    test_case.run_export_test(builder(name)(), batch_for(tiny_config(name)), tmp_path)
