"""Trains a tiny preset for a few steps on one device and under MirroredStrategy over 2 logical CPUs, from the
same weights and data; prints the largest weight difference and both runs' losses as JSON."""

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
x, y = data.load_arrays(dataset, split="train")
ds = tf.data.Dataset.from_tensor_slices((x[: 16 * steps], y[: 16 * steps])).batch(16, drop_remainder=True)

runs = {}
initial = None
jit_ok, jit_reason = distribute.jit_supported(distribute.make_strategy("mirrored"))
for label, strategy in (("single", distribute.make_strategy("default")), ("mirrored", distribute.make_strategy("mirrored"))):
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
        "logs": {k: float(v[-1]) for k, v in history.history.items()},
        "d_iterations": int(model.d_optimizer.iterations.numpy()),
    }

diff = max(float(np.max(np.abs(a - b))) for a, b in zip(runs["single"]["weights"], runs["mirrored"]["weights"]))
moved = max(float(np.max(np.abs(a - b))) for a, b in zip(initial, runs["single"]["weights"]))
print(json.dumps({
    "max_weight_diff": diff,
    "max_weight_change": moved,
    "replicas": [runs["single"]["replicas"], runs["mirrored"]["replicas"]],
    "logs": [runs["single"]["logs"], runs["mirrored"]["logs"]],
    "d_iterations": [runs["single"]["d_iterations"], runs["mirrored"]["d_iterations"]],
    "jit_supported": [jit_ok, jit_reason],
}))
