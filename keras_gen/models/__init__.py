"""Models that own an objective: keras.Model subclasses trained with `fit`."""

from keras_gen.models.base import GenerativeModel
from keras_gen.models.gan import GAN
from keras_gen.models.pixel_cnn import PixelCNN
from keras_gen.models.vae import VAE
from keras_gen.models.vq_vae import VQVAE

__all__ = ["GAN", "GenerativeModel", "PixelCNN", "VAE", "VQVAE"]
