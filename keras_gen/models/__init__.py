"""Models that own an objective: keras.Model subclasses trained with `fit`."""

from keras_gen.models.base import GenerativeModel
from keras_gen.models.gan import GAN

__all__ = ["GAN", "GenerativeModel"]
