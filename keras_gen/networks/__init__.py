"""Plain Keras networks: generators, discriminators and the layers they share. No losses here."""

from keras_gen.networks.dcgan import dcgan_discriminator, dcgan_generator, resolution_plan
from keras_gen.networks.layers import (
    ConditionalBatchNormalization,
    Pack,
    ProjectionHead,
    SpectralConv2D,
    SpectralDense,
)
from keras_gen.networks.mlp import mlp_discriminator, mlp_generator

__all__ = [
    "ConditionalBatchNormalization",
    "Pack",
    "ProjectionHead",
    "SpectralConv2D",
    "SpectralDense",
    "dcgan_discriminator",
    "dcgan_generator",
    "mlp_discriminator",
    "mlp_generator",
    "resolution_plan",
]
