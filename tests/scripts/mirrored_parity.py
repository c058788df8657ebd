"""Trains a tiny preset for a few steps on one device and under MirroredStrategy over 2 logical CPUs, from the
same weights and data; prints the largest weight difference and both runs' losses as JSON."""

import dataclasses
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow as tf  # noqa: E402

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_gen import data, distribute, presets  # noqa: E402

name = sys.argv[1]
steps = int(sys.argv[2]) if len(sys.argv) > 2 else 3
preset = presets.PRESETS[name]
if preset["family"] == "gan":
    networks = {role: dict(kwargs) for role, kwargs in preset["networks"].items()}
    if preset["network"] == "dcgan":
        networks["generator"].update(latent_dim=8, width=8)
        networks["discriminator"].update(width=8)
        dataset = "digits"
    else:
        for role in networks:
            networks[role].update(hidden=[16, 16])
        dataset = preset["dataset"]
    config = presets.get_config(name, dataset=dataset, networks=networks, batch_size=16)
else:  # the VAE family: the test suite's tiny networks
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    from tests.test_models import tiny_config  # noqa: E402

    config = dataclasses.replace(tiny_config(name), batch_size=16)
if len(sys.argv) > 3:  # model overrides, as JSON: e.g. '{"dead_code_steps": 1}' to restart codes at once
    config = dataclasses.replace(config, model={**config.model, **json.loads(sys.argv[3])})
if len(sys.argv) > 4:  # the GAN generator optimizer's config overrides, e.g. '{"use_ema": true}'
    g_optimizer = {**config.optimizers["g_optimizer"]}
    g_optimizer["config"] = {**g_optimizer["config"], **json.loads(sys.argv[4])}
    config = dataclasses.replace(config, optimizers={**config.optimizers, "g_optimizer": g_optimizer})
dataset = config.dataset
x, y = data.load_arrays(dataset, split="train")
ds = tf.data.Dataset.from_tensor_slices((x[: 16 * steps], y[: 16 * steps])).batch(16, drop_remainder=True)

def _first_optimizer(model):
    """The optimizer updated first in a step: the GAN's discriminator's, the VQ-VAE's autoencoder's, the VAE's."""
    for name in ("d_optimizer", "vq_optimizer", "optimizer"):
        if getattr(model, name, None) is not None:
            return getattr(model, name)
    raise AttributeError(f"{type(model).__name__} has no optimizer")


runs = {}
initial = None
jit_ok, jit_reason = distribute.jit_supported(distribute.make_strategy("mirrored"))
strategies = (("single", distribute.make_strategy("default")), ("mirrored", distribute.make_strategy("mirrored")))
for label, strategy in strategies:
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = presets.build_model(config)
    if initial is None:
        initial = [w.numpy() for w in model.weights]
    else:
        model.set_weights(initial)
    history = model.fit(ds, epochs=1, verbose=0, shuffle=False)
    runs[label] = {
        "replicas": strategy.num_replicas_in_sync,
        "weights": [w.numpy() for w in model.weights],
        "paths": [w.path for w in model.weights],
        "logs": {k: float(v[-1]) for k, v in history.history.items()},
        "d_iterations": int(_first_optimizer(model).iterations.numpy()),
    }

diffs = [float(np.max(np.abs(a - b))) if a.size else 0.0
         for a, b in zip(runs["single"]["weights"], runs["mirrored"]["weights"])]
worst = runs["single"]["paths"][int(np.argmax(diffs))]
diff = max(float(np.max(np.abs(a - b))) for a, b in zip(runs["single"]["weights"], runs["mirrored"]["weights"]))
moved = max(float(np.max(np.abs(a - b))) for a, b in zip(initial, runs["single"]["weights"]))
print(json.dumps({
    "max_weight_diff": diff,
    "worst_weight": worst,
    "max_weight_change": moved,
    "replicas": [runs["single"]["replicas"], runs["mirrored"]["replicas"]],
    "logs": [runs["single"]["logs"], runs["mirrored"]["logs"]],
    "d_iterations": [runs["single"]["d_iterations"], runs["mirrored"]["d_iterations"]],
    "jit_supported": [jit_ok, jit_reason],
}))
