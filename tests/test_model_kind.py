"""Model kinds: what each model declares, what an export records, and a clear refusal of what a model does not offer
(by the command line, the latent tools and evaluation alike)."""

import json

import numpy as np
import pytest

from keras_gen import latent, model_kind, presets
from keras_gen.model_kind import UnsupportedOperationError, require
from keras_gen.runs import train_run
from tests.test_models import tiny_config

EXPECTED = {
    "dcgan": {"sample", "latent_space"},
    "cgan": {"sample", "latent_space"},
    "ring2d": {"sample", "latent_space"},
    "vae": {"sample", "latent_space", "encode", "reconstruct"},
    "cvae": {"sample", "latent_space", "encode", "reconstruct"},
    "vqvae": {"sample", "encode", "reconstruct"},
    "pixelcnn": {"sample"},
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_model_declares_its_kind_and_operations(name):
    model = presets.build_model(tiny_config(name))
    assert model.kind == "latent" and model.operations == EXPECTED[name]
    assert model_kind.KINDS[model.kind].operations <= model.operations
    assert model.latent_spec.num_classes == model.num_classes


def test_require_names_the_kind_and_what_the_model_offers():
    model = presets.build_model(tiny_config("pixelcnn"))
    assert require(model, "sample") is model
    with pytest.raises(UnsupportedOperationError) as info:
        require(model, "latent_space", "A traversal")
    assert str(info.value) == (
        "A traversal needs a model that has a continuous latent space to interpolate, traverse and do arithmetic in; "
        "this PixelCNN is a 'latent' model (samples from a latent prior) and offers: sample."
    )
    assert isinstance(info.value, TypeError)
    with pytest.raises(ValueError, match="Unknown operation 'fly'"):
        require(model, "fly")
    translator = {"kind": "translator", "class": "Pix2Pix"}  # a manifest's model entry
    with pytest.raises(UnsupportedOperationError, match="this Pix2Pix is a 'translator' model .* offers: translate"):
        require(translator, "sample", "keras-gen sample")


def test_the_latent_tools_refuse_sampling_noise_by_its_declaration():
    model = presets.build_model(tiny_config("vqvae"))
    with pytest.raises(UnsupportedOperationError, match="this VQVAE is a 'latent' model .* offers: encode"):
        latent.interpolation_grid(model, 3, 4, seed=0)


def test_the_command_line_refuses_by_name(tmp_path, capsys):
    from keras_gen import cli

    run = tmp_path / "pixelcnn"
    train_run(tiny_config("pixelcnn", epochs=1), run, verbose=0)
    assert cli.main(["latent", "traverse", str(run), "--out", str(tmp_path / "t.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "keras-gen latent: error: `keras-gen latent traverse` needs a model that has a continuous latent space to "
        "interpolate, traverse and do arithmetic in; this PixelCNN is a 'latent' model (samples from a latent "
        "prior) and offers: sample."
    )
    assert not (tmp_path / "t.png").exists()


def test_an_export_records_the_kind_and_an_older_manifest_still_reads(tmp_path):
    import keras_gen.export as kx

    model = presets.build_model(tiny_config("vae"))
    result = kx.export_model(model, tmp_path, "vae", formats="savedmodel", batch_sizes=(1,), allow_untrained=True)
    with kx.load(result.path) as sampler:
        assert sampler.kind == "latent" and sampler.operations == model.operations
        assert sampler.latent_spec == model.latent_spec
        expected = sampler.sample(3, seed=1)
    # A manifest of version 1 had a family in "kind", a "prior", and no spec or operations.
    path = tmp_path / "vae" / "1" / "manifest.json"
    manifest = json.loads(path.read_text())
    for key in ("latent", "operations", "family"):
        del manifest["model"][key]
    manifest["model"].update(kind="vae", prior="normal")
    path.write_text(json.dumps(manifest))
    with kx.load(result.path) as sampler:
        assert sampler.kind == "latent" and sampler.operations == {"sample", "encode", "reconstruct"}
        assert sampler.latent_spec == model.latent_spec
        np.testing.assert_array_equal(sampler.sample(3, seed=1), expected)
