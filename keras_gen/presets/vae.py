"""The VAE family: fully connected and convolutional VAEs, β-VAE and the conditional VAE, and their presets."""

from keras_gen.presets import adam, class_count, compile_options, optimizer, register_family, register_presets
from keras_gen.presets.overrides import parameters

_VAE_NETWORKS = ("vae-mlp", "vae-conv")
_VAE_MODEL_ARGS = ("likelihood", "beta", "sigma")


def _vae_preset(description, network, encoder, decoder=None, model=None, **overrides):
    preset = {
        "description": description,
        "family": "vae",
        "dataset": "mnist",
        "network": network,
        "epochs": 30,
        "batch_size": 64,
        "networks": {"encoder": dict(encoder), "decoder": dict(decoder or {})},
        "model": {"likelihood": "bernoulli", "beta": 1.0, **(model or {})},
        "optimizers": {"optimizer": adam(1e-3, 0.9)},
    }
    preset.update(overrides)
    return preset


register_presets(
    {
        "vae": _vae_preset(
            "VAE of Kingma & Welling (2014): fully connected 784-400-20, Bernoulli decoder, Adam(1e-3).",
            "vae-mlp",
            encoder={"latent_dim": 20, "hidden": [400]},
            decoder={"hidden": [400]},
        ),
        "conv-vae": _vae_preset(
            "Convolutional VAE: two stride-2 convs (16, 32), z of 16, Bernoulli decoder, Adam(1e-3).",
            "vae-conv",
            encoder={"latent_dim": 16, "widths": [16, 32], "hidden": 256},
            decoder={"widths": [16, 32], "hidden": 256},
            epochs=20,
        ),
        "beta-vae": _vae_preset(
            "beta-VAE (Higgins et al. 2017): the convolutional VAE with beta = 4 (more disentangled, blurrier).",
            "vae-conv",
            encoder={"latent_dim": 16, "widths": [16, 32], "hidden": 256},
            decoder={"widths": [16, 32], "hidden": 256},
            model={"beta": 4.0},
            epochs=20,
        ),
        "cvae": _vae_preset(
            "Conditional VAE (Sohn et al. 2015): the fully connected VAE with the digit class given to q and p.",
            "vae-mlp",
            encoder={"latent_dim": 20, "hidden": [400]},
            decoder={"hidden": [400]},
            conditional=True,
        ),
    }
)


def _validate_vae(config):
    if config.network not in _VAE_NETWORKS:
        raise ValueError(f"Unknown VAE network {config.network!r}. Valid: {', '.join(_VAE_NETWORKS)}.")
    if set(config.optimizers) != {"optimizer"}:
        raise ValueError(
            f"A VAE config needs exactly one optimizer, named 'optimizer'; got {sorted(config.optimizers)}.")
    unknown = set(config.networks) - {"encoder", "decoder"}
    if unknown:
        raise ValueError(f"Unknown network role(s) {sorted(unknown)} for a VAE: use 'encoder', 'decoder'.")
    for role in ("encoder", "decoder"):
        if not isinstance(config.networks.get(role, {}), dict):
            raise ValueError(f"`networks.{role}` must be a dict of builder arguments.")
    for key in ("latent_dim", "num_classes", "image_shape"):
        if key in config.networks.get("decoder", {}):
            raise ValueError(
                f"Set `{key}` of a VAE decoder through the config, not networks.decoder: latent_dim under "
                "networks.encoder, classes with `conditional`, the shape from the dataset."
            )
    if "num_classes" in config.networks.get("encoder", {}) or "image_shape" in config.networks.get("encoder", {}):
        raise ValueError(
            "Set classes with `conditional` and the image shape through the dataset, not networks.encoder.")
    bad = set(config.model) - set(_VAE_MODEL_ARGS)
    if bad:
        raise ValueError(
            f"Unknown VAE model argument(s) {sorted(bad)}. Valid: {', '.join(_VAE_MODEL_ARGS)} (classes come from "
            "`conditional`, the seed from `seed`)."
        )


def _build_vae(config, info):
    from keras_gen import networks as nets
    from keras_gen.models import VAE

    num_classes = class_count(config, info, "VAE")
    shape = tuple(info["shape"])
    if len(shape) != 3:
        raise ValueError(f"The VAE networks need images (H, W, C); dataset {config.dataset!r} has {shape}.")
    build_encoder, build_decoder = {
        "vae-mlp": (nets.mlp_encoder, nets.mlp_decoder),
        "vae-conv": (nets.conv_encoder, nets.conv_decoder),
    }[config.network]
    encoder = build_encoder(image_shape=shape, num_classes=num_classes, **config.networks.get("encoder", {}))
    latent_dim = int(encoder.outputs[0].shape[-1])
    decoder = build_decoder(
        latent_dim=latent_dim, image_shape=shape, num_classes=num_classes, **config.networks.get("decoder", {})
    )
    vae = VAE(encoder, decoder, num_classes=num_classes, seed=config.seed, **config.model)
    vae.compile(
        optimizer=optimizer(config, "optimizer", info),
        **compile_options(config),
    )
    return vae


def _vae_arguments(config):
    from keras_gen import networks as nets

    encoder, decoder = {
        "vae-mlp": (nets.mlp_encoder, nets.mlp_decoder),
        "vae-conv": (nets.conv_encoder, nets.conv_decoder),
    }[config.network]
    return {
        "networks.encoder": parameters(encoder, ("image_shape", "num_classes", "name")),
        "networks.decoder": parameters(decoder, ("latent_dim", "image_shape", "num_classes", "name")),
        "model": _VAE_MODEL_ARGS,
    }


register_family("vae", _build_vae, _validate_vae, _vae_arguments)
