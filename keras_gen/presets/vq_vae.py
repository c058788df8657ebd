"""The VQ-VAE family (with its PixelCNN prior over the codes) and the PixelCNN family, and their presets."""

from keras_gen.presets import adam, class_count, compile_options, optimizer, register_family, register_presets
from keras_gen.presets.overrides import parameters

_VQVAE_ROLES = ("encoder", "decoder", "quantizer", "prior")
_VQVAE_MODEL_ARGS = ("likelihood", "commitment_weight", "dead_code_steps", "train_prior")
_VQVAE_DERIVED = {
    "encoder": ("image_shape",),
    "decoder": ("code_shape", "channels", "num_upsamples"),
    "quantizer": ("code_dim",),
    "prior": ("input_shape", "num_levels", "num_classes"),
}
_PIXELCNN_DERIVED = ("input_shape", "num_classes")

register_presets(
    {
        "vqvae": {
            "description": (
                "VQ-VAE (van den Oord et al. 2017): 7x7 codes from a 64-vector codebook (D=16), MSE, beta 0.25, "
                "dead-code restarts; its gated PixelCNN prior (128 wide, 8 blocks) is trained alongside on the codes."
            ),
            "family": "vqvae",
            "dataset": "mnist",
            "network": "vqvae",
            "epochs": 15,
            "batch_size": 64,
            "networks": {
                "encoder": {"code_dim": 16, "width": 32, "num_downsamples": 2, "num_residual": 1},
                "decoder": {"width": 32, "num_residual": 1},
                "quantizer": {"num_codes": 64},
                "prior": {"width": 128, "num_blocks": 8, "first_kernel_size": 7, "kernel_size": 3},
            },
            "model": {"likelihood": "gaussian", "commitment_weight": 0.25, "dead_code_steps": 20, "train_prior": True},
            "optimizers": {"optimizer": adam(1e-3, 0.9), "prior_optimizer": adam(1e-3, 0.9)},
        },
        "pixelcnn": {
            "description": (
                "Gated PixelCNN (van den Oord et al. 2016) on MNIST binarized at 0 (x >= 0 -> 1): exact likelihood, "
                "7x7 type-A then 3x3 type-B gated residual blocks."
            ),
            "family": "pixelcnn",
            "dataset": "mnist",
            "network": "pixelcnn",
            "epochs": 10,
            "batch_size": 64,
            "networks": {
                "pixel_cnn": {"num_levels": 2, "width": 32, "num_blocks": 5, "first_kernel_size": 7, "kernel_size": 3}
            },
            "model": {},
            "optimizers": {"optimizer": adam(1e-3, 0.9)},
            "sample_count": 36,
        },
    }
)


def _check_builder_args(family, role, kwargs, derived):
    if not isinstance(kwargs, dict):
        raise ValueError(f"`networks.{role}` of a {family} config must be a dict of builder arguments.")
    bad = sorted(set(kwargs) & set(derived))
    if bad:
        raise ValueError(
            f"`networks.{role}` sets {bad}, which the {family} builder derives (from the dataset, `conditional` and "
            "the other networks); remove them."
        )


def _validate_vqvae(config):
    if config.network != "vqvae":
        raise ValueError(f"Unknown VQ-VAE network {config.network!r}. Valid: 'vqvae'.")
    if set(config.optimizers) != {"optimizer", "prior_optimizer"}:
        raise ValueError(
            f"A VQ-VAE config needs optimizers 'optimizer' and 'prior_optimizer'; got {sorted(config.optimizers)}."
        )
    unknown = set(config.networks) - set(_VQVAE_ROLES)
    if unknown:
        raise ValueError(f"Unknown network role(s) {sorted(unknown)} for a VQ-VAE: use {', '.join(_VQVAE_ROLES)}.")
    for role in _VQVAE_ROLES:
        _check_builder_args("VQ-VAE", role, config.networks.get(role, {}), _VQVAE_DERIVED[role])
    bad = set(config.model) - set(_VQVAE_MODEL_ARGS)
    if bad:
        raise ValueError(f"Unknown VQ-VAE model argument(s) {sorted(bad)}. Valid: {', '.join(_VQVAE_MODEL_ARGS)}.")


def _build_vqvae(config, info):
    from keras_gen import networks as nets
    from keras_gen.models import VQVAE, PixelCNN

    shape = tuple(info["shape"])
    if len(shape) != 3:
        raise ValueError(f"The VQ-VAE networks need images (H, W, C); dataset {config.dataset!r} has {shape}.")
    num_classes = class_count(config, info, "VQ-VAE prior")
    enc_kwargs = dict(config.networks.get("encoder", {}))
    encoder = nets.vq_encoder(image_shape=shape, **enc_kwargs)
    code_shape = tuple(int(s) for s in encoder.outputs[0].shape[1:])  # (h, w, D)
    decoder = nets.vq_decoder(
        code_shape=code_shape,
        channels=shape[-1],
        num_upsamples=enc_kwargs.get("num_downsamples", 2),
        **config.networks.get("decoder", {}),
    )
    quantizer = nets.VectorQuantizer(code_dim=code_shape[-1], name="quantizer", **config.networks.get("quantizer", {}))
    prior_net = nets.pixel_cnn(
        code_shape[:2], num_levels=quantizer.num_codes, num_classes=num_classes, name="prior_pixel_cnn",
        **config.networks.get("prior", {}),
    )
    prior = PixelCNN(prior_net, num_classes=num_classes, seed=config.seed, name="prior")
    model = VQVAE(encoder, decoder, quantizer, prior=prior, seed=config.seed, **config.model)
    model.compile(
        optimizer=optimizer(config, "optimizer", info),
        prior_optimizer=optimizer(config, "prior_optimizer", info),
        **compile_options(config),
    )
    return model


def _vqvae_arguments(config):
    from keras_gen import networks as nets

    builders = {"encoder": nets.vq_encoder, "decoder": nets.vq_decoder, "quantizer": nets.VectorQuantizer,
                "prior": nets.pixel_cnn}
    arguments = {f"networks.{role}": parameters(build, (*_VQVAE_DERIVED[role], "name"))
                 for role, build in builders.items()}
    return {**arguments, "model": _VQVAE_MODEL_ARGS}


def _validate_pixelcnn(config):
    if config.network != "pixelcnn":
        raise ValueError(f"Unknown PixelCNN network {config.network!r}. Valid: 'pixelcnn'.")
    if set(config.optimizers) != {"optimizer"}:
        raise ValueError(
            f"A PixelCNN config needs exactly one optimizer, named 'optimizer'; got {sorted(config.optimizers)}."
        )
    unknown = set(config.networks) - {"pixel_cnn"}
    if unknown:
        raise ValueError(f"Unknown network role(s) {sorted(unknown)} for a PixelCNN: use 'pixel_cnn'.")
    _check_builder_args("PixelCNN", "pixel_cnn", config.networks.get("pixel_cnn", {}), _PIXELCNN_DERIVED)
    if config.model:
        raise ValueError(
            f"A PixelCNN takes no model arguments (classes come from `conditional`, the seed from `seed`); "
            f"got {sorted(config.model)}."
        )


def _build_pixelcnn(config, info):
    from keras_gen import networks as nets
    from keras_gen.models import PixelCNN

    shape = tuple(info["shape"])
    if len(shape) != 3 or shape[-1] != 1:
        raise ValueError(
            f"A PixelCNN here models one value per pixel: it needs (H, W, 1) images; dataset {config.dataset!r} "
            f"has {shape}."
        )
    num_classes = class_count(config, info, "PixelCNN")
    network = nets.pixel_cnn(shape[:2], num_classes=num_classes, **config.networks.get("pixel_cnn", {}))
    model = PixelCNN(network, num_classes=num_classes, seed=config.seed)
    model.compile(
        optimizer=optimizer(config, "optimizer", info),
        **compile_options(config),
    )
    return model


def _pixelcnn_arguments(config):
    from keras_gen import networks as nets

    return {"networks.pixel_cnn": parameters(nets.pixel_cnn, (*_PIXELCNN_DERIVED, "name")), "model": ()}


register_family("vqvae", _build_vqvae, _validate_vqvae, _vqvae_arguments)
register_family("pixelcnn", _build_pixelcnn, _validate_pixelcnn, _pixelcnn_arguments)
