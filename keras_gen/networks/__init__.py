"""Plain Keras networks: generators, discriminators and the layers they share. No losses here."""

from keras_gen.networks.dcgan import dcgan_discriminator, dcgan_generator, resolution_plan
from keras_gen.networks.layers import (
    BatchNormalization,
    ConditionalBatchNormalization,
    LayerNormalization,
    Pack,
    ProjectionHead,
    SpectralConv2D,
    SpectralDense,
)
from keras_gen.networks.mlp import mlp_discriminator, mlp_generator
from keras_gen.networks.pixel_cnn import GatedActivation, MaskedConv2D, causal_mask, pixel_cnn
from keras_gen.networks.vq_vae import VectorQuantizer, codebook_perplexity, straight_through, vq_decoder, vq_encoder
from keras_gen.networks.vae import conv_decoder, conv_encoder, mlp_decoder, mlp_encoder

__all__ = [
    "BatchNormalization",
    "LayerNormalization",
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
    "GatedActivation",
    "MaskedConv2D",
    "causal_mask",
    "pixel_cnn",
    "VectorQuantizer",
    "codebook_perplexity",
    "straight_through",
    "vq_decoder",
    "vq_encoder",
    "mlp_encoder",
    "mlp_decoder",
    "conv_encoder",
    "conv_decoder",
]
