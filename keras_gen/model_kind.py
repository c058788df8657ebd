"""`ModelKind`: what the command line, export, serving, evaluation and the latent tools may ask of a model.

A model declares its ``kind`` (a key of `KINDS`) and the ``operations`` it offers (a superset of its kind's);
export records both in ``manifest.json``, so an exported artifact answers the same questions. Consumers ask
`require(model, operation, action)` instead of testing class names, and a model that cannot do what was asked
gets one clear error naming what it can do.

=================  =========================================================  ==========================
kind               what it is                                                 its operations, at least
=================  =========================================================  ==========================
``latent``         samples from a latent prior (GANs, VAEs, PixelCNN, VQ-VAE)  sample
``coded``          samples from a latent with structured codes (InfoGAN)       sample, codes
``translator``     translates an input image into an output image              translate
=================  =========================================================  ==========================

Operations (`OPERATIONS`): ``sample`` (``generate(n, seed)``, the ``sample`` signature, `evaluate`'s draw),
``latent_space`` (a continuous latent to interpolate, traverse and do arithmetic in), ``codes`` (structured codes to
hold or sweep), ``encode`` and ``reconstruct`` (images to latents and back), ``translate`` (image to image).
"""

import dataclasses

__all__ = ["OPERATIONS", "KINDS", "ModelKind", "UnsupportedOperationError", "kind_of", "operations_of", "require"]

OPERATIONS = {
    "sample": "draws samples from its prior",
    "latent_space": "has a continuous latent space to interpolate, traverse and do arithmetic in",
    "codes": "has structured latent codes to hold or sweep",
    "encode": "encodes images into its latent space",
    "reconstruct": "reconstructs images through its latent space",
    "translate": "translates an input image into an output image",
}


@dataclasses.dataclass(frozen=True)
class ModelKind:
    """A kind of model: its name, what it is, and the operations every model of the kind offers."""

    name: str
    description: str
    operations: frozenset


KINDS = {
    "latent": ModelKind("latent", "samples from a latent prior", frozenset({"sample"})),
    "coded": ModelKind("coded", "samples from a latent with structured codes", frozenset({"sample", "codes"})),
    "translator": ModelKind("translator", "translates an input image into an output image", frozenset({"translate"})),
}


class UnsupportedOperationError(TypeError):
    """A model (or an exported artifact) was asked for an operation its kind does not offer."""


def kind_of(source):
    """The `ModelKind` of a model, an exported sampler or a manifest's ``model`` dict (``"latent"`` when it does
    not say: models and exports written before kinds existed all sample from a latent)."""
    name = source.get("kind") if isinstance(source, dict) else getattr(source, "kind", None)
    if name not in KINDS:
        name = "latent"
    return KINDS[name]


def operations_of(source):
    """The operations a model, a sampler or a manifest's ``model`` dict offers (a frozenset)."""
    declared = source.get("operations") if isinstance(source, dict) else getattr(source, "operations", None)
    if declared is None:
        return kind_of(source).operations
    return frozenset(declared)


def _name(source):
    if isinstance(source, dict):
        return source.get("class") or "model"
    return getattr(source, "model_class", None) or type(source).__name__


def require(source, operation, action=None):
    """Checks that ``source`` offers ``operation``; returns ``source``.

    Args:
        source: a keras-gen model, a sampler from ``keras_gen.export.load`` or a manifest's ``model`` dict.
        operation: a key of `OPERATIONS`.
        action: what was asked, for the message (e.g. ``"keras-gen latent traverse"``).

    Raises:
        UnsupportedOperationError: (a TypeError) naming the model's kind and what it can do instead.
    """
    if operation not in OPERATIONS:
        raise ValueError(f"Unknown operation {operation!r}. Valid: {', '.join(OPERATIONS)}.")
    offered = operations_of(source)
    if operation in offered:
        return source
    kind = kind_of(source)
    can = ", ".join(sorted(offered)) or "nothing"
    raise UnsupportedOperationError(
        f"{action or operation.replace('_', ' ')} needs a model that {OPERATIONS[operation]}; this "
        f"{_name(source)} is a {kind.name!r} model ({kind.description}) and offers: {can}."
    )
