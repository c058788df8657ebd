"""The errors of `keras_gen.export`. All are `ValueError` s, so the CLI prints them as one clean line."""

__all__ = ["ExportError", "UnsupportedModelError", "ParityError"]


class ExportError(ValueError):
    """An export could not be completed; nothing was left behind."""


class UnsupportedModelError(ExportError):
    """A format cannot express the model (an operation it lacks); the message names the format and operations."""


class ParityError(ExportError):
    """A written artifact did not reproduce the Keras outputs within its tolerance; the message has the numbers."""
