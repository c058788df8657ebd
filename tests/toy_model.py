"""The toy of docs/architecture.md's "Adding a model": a generative moment-matching network (GMMN, Li, Swersky &
Zemel 2015, https://arxiv.org/abs/1502.02761), written the way a model of the package is.

A GMMN is one generator trained without a discriminator: it makes the maximum mean discrepancy between a batch of
its samples and a batch of data small,

    MMD^2 = mean k(x, x') + mean k(y, y') - 2 mean k(x, y),   k(a, b) = sum_s exp(-|a - b|^2 / (2 s^2))

In the package its three parts would go to `keras_gen/losses.py` (`mmd`), `keras_gen/models/gmmn.py` (the model)
and `keras_gen/presets/gmmn.py` (the family and its preset); here they share one file, which
tests/test_adding_a_model.py runs through the harness, a run folder, the command line, export and the server.
"""

import copy

import keras
from keras import ops

from keras_gen.models.base import GenerativeModel, apply_gradients, prepare_optimizer, scaled_loss


# ------------------------------------------------------------------------------------- the math (losses.py)
def mmd(x, y, bandwidths=(0.1, 0.3, 1.0)):
    """Squared maximum mean discrepancy between two batches ``(B, ...)`` under a sum of Gaussian kernels (biased
    estimate: the diagonals included)."""
    x = ops.reshape(ops.cast(x, "float32"), (ops.shape(x)[0], -1))  # (B, D)
    y = ops.reshape(ops.cast(y, "float32"), (ops.shape(y)[0], -1))  # (B', D)

    def kernel(a, b):
        d2 = ops.sum(a**2, axis=1)[:, None] + ops.sum(b**2, axis=1)[None, :] - 2.0 * ops.matmul(a, ops.transpose(b))
        return sum(ops.exp(-ops.maximum(d2, 0.0) / (2.0 * s**2)) for s in bandwidths)  # (B, B')

    return ops.mean(kernel(x, x)) + ops.mean(kernel(y, y)) - 2.0 * ops.mean(kernel(x, y))


# ------------------------------------------------------------------------------------- the model (models/gmmn.py)
@keras.saving.register_keras_serializable(package="keras_gen_toy")
class GMMN(GenerativeModel):
    """A generator trained on the MMD to the data (see the module docstring). Unconditional; ``z`` is standard
    normal (the default `latent_spec`), so export, serving and the latent tools need nothing of their own.

    Args:
        generator: a Keras model ``z -> samples``.
        bandwidths: the kernels' widths.
        seed: seed of the model's `SeedGenerator`.
    """

    def __init__(self, generator, bandwidths=(0.1, 0.3, 1.0), seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.generator = generator
        self.bandwidths = tuple(float(b) for b in bandwidths)
        self.latent_dim = int(generator.inputs[0].shape[-1])
        self.sample_shape = tuple(int(s) for s in generator.outputs[0].shape[1:])
        self.num_classes = None
        self.mmd_tracker = keras.metrics.Mean(name="mmd")
        self.built = True

    @property
    def operations(self):
        return super().operations | {"latent_space"}  # one continuous z: interpolations and traversals apply

    def compile(self, optimizer=None, loss_scale="auto", **kwargs):
        optimizer = prepare_optimizer(optimizer, [self.generator], loss_scale)
        super().compile(optimizer=optimizer, auto_scale_loss=False, **kwargs)
        self.optimizer.build(self.generator.trainable_variables)

    def get_compile_config(self):
        return {"optimizer": keras.saving.serialize_keras_object(self.optimizer)}

    def compile_from_config(self, config):
        self.compile(optimizer=keras.saving.deserialize_keras_object(config["optimizer"]), loss_scale=False)

    def get_config(self):
        config = super().get_config()
        config.update(generator=keras.layers.serialize(self.generator), bandwidths=list(self.bandwidths),
                      seed=self.seed)
        return config

    @classmethod
    def from_config(cls, config):
        config = copy.deepcopy(config)
        config["generator"] = keras.layers.deserialize(config["generator"])
        return cls(**config)

    @property
    def metrics(self):
        return [self.mmd_tracker]

    def _step(self, real):
        import tensorflow as tf

        z = self.latent_spec.sample_network_input(ops.shape(real)[0], self.seed_generator)  # (B, latent_dim)
        with tf.GradientTape() as tape:
            loss = mmd(self.generator(z, training=True), real, self.bandwidths)
            scaled = scaled_loss(self.optimizer, loss)
        apply_gradients(self.optimizer, scaled, tape, self.generator.trainable_variables)
        self.mmd_tracker.update_state(loss)
        return {"mmd": self.mmd_tracker.result()}

    def train_step(self, data):
        real, _ = self.unpack_batch(data)
        return self._step(real)

    def training_phases(self):
        return [("generator", lambda data: self._step(self.unpack_batch(data)[0]),
                 self.generator.trainable_variables)]

    def decode_latent(self, z, labels=None):
        return self.generator(z, training=False)


# ------------------------------------------------------------------------------------- the preset (presets/gmmn.py)
def build_gmmn(config, info):
    from keras_gen.networks import mlp_generator

    generator = mlp_generator(output_dim=info["shape"][0], **config.networks.get("generator", {}))
    model = GMMN(generator, seed=config.seed, **config.model)
    model.compile(optimizer=keras.optimizers.get(copy.deepcopy(config.optimizers["optimizer"])),
                  jit_compile=config.jit_compile, steps_per_execution=config.steps_per_execution)
    return model


def validate_gmmn(config):
    if set(config.optimizers) != {"optimizer"}:
        raise ValueError(f"A GMMN config needs one optimizer, named 'optimizer'; got {sorted(config.optimizers)}.")


PRESET = {
    "description": "Generative moment matching (Li et al. 2015) on the 2-D ring: an MLP trained on the MMD.",
    "family": "gmmn",
    "dataset": "ring2d",
    "network": "mlp",
    "epochs": 20,
    "batch_size": 500,
    "networks": {"generator": {"latent_dim": 2, "hidden": [128, 128]}},
    "model": {"bandwidths": [0.05, 0.2, 1.0]},
    "optimizers": {"optimizer": {"class_name": "Adam", "config": {"learning_rate": 1e-3}}},
    "sample_count": 2500,
}


def register():
    """What presets/gmmn.py would do on import; returns a function that undoes it (for the tests)."""
    from keras_gen import presets

    presets.register_family("gmmn", build_gmmn, validate_gmmn)
    presets.register_presets({"gmmn-ring2d": PRESET})

    def unregister():
        presets.PRESETS.pop("gmmn-ring2d", None)
        presets.FAMILIES.pop("gmmn", None)

    return unregister
