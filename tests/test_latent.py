"""keras_gen.latent: interpolation against closed forms, attribute vectors and arithmetic on constructed latents,
traversals, editing through a tiny VAE, the grids' PNGs, and the `keras-gen latent` command on tiny 1-epoch runs."""

import io
import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
from PIL import Image

from keras_gen import latent, latent_grids, presets
from keras_gen.models import GAN, VAE
from keras_gen.networks import dcgan_discriminator, dcgan_generator, mlp_decoder, mlp_encoder
from keras_gen.runs import train_run

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def tiny_gan(num_classes=None, latent_dim=8):
    generator = dcgan_generator(latent_dim=latent_dim, image_shape=(8, 8, 1), width=8, num_classes=num_classes)
    discriminator = dcgan_discriminator(image_shape=(8, 8, 1), width=8, num_classes=num_classes)
    return GAN(generator, discriminator, num_classes=num_classes, seed=0)


def tiny_vae(num_classes=None, latent_dim=4):
    encoder = mlp_encoder((8, 8, 1), latent_dim=latent_dim, hidden=[16], num_classes=num_classes)
    decoder = mlp_decoder(latent_dim, (8, 8, 1), hidden=[16], num_classes=num_classes)
    return VAE(encoder, decoder, num_classes=num_classes, seed=0)


def images(n, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, size=(n, 8, 8, 1)).astype("float32")


def angle(x, y):
    return np.arccos(np.clip(np.dot(x, y) / (np.linalg.norm(x) * np.linalg.norm(y)), -1.0, 1.0))


# ------------------------------------------------------------------------------------------------ interpolate
def test_slerp_stays_on_the_great_circle_and_hits_both_ends():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 16))
    b *= np.linalg.norm(a) / np.linalg.norm(b)  # equal norms
    a, b = a.astype("float32"), b.astype("float32")
    path = latent.interpolate(a, b, 9)
    assert path.shape == (9, 16) and path.dtype == np.float32
    path = path.astype("float64")
    np.testing.assert_array_equal(path[0], a)
    np.testing.assert_array_equal(path[-1], b)
    np.testing.assert_allclose(np.linalg.norm(path, axis=1), np.linalg.norm(a), rtol=1e-5)
    # In the plane of a and b, at angle t * omega from a: Shoemake's formula, written out here.
    a64, b64 = a.astype("float64"), b.astype("float64")
    omega = angle(a64, b64)
    t = np.linspace(0, 1, 9)[:, None]
    shoemake = (np.sin((1 - t) * omega) * a64 + np.sin(t * omega) * b64) / np.sin(omega)
    np.testing.assert_allclose(path, shoemake, atol=1e-5)
    np.testing.assert_allclose([angle(p, a64) for p in path], t[:, 0] * omega, atol=1e-5)


def test_slerp_interpolates_norms_linearly_and_lerp_is_exact():
    a = np.array([3.0, 0.0, 0.0], "float32")
    b = np.array([0.0, 0.0, 1.0], "float32")
    path = latent.interpolate(a, b, 5)
    t = np.linspace(0, 1, 5)
    np.testing.assert_allclose(np.linalg.norm(path, axis=1), 3 * (1 - t) + t, rtol=1e-6)
    np.testing.assert_allclose(path[2] / np.linalg.norm(path[2]), [np.sqrt(0.5), 0, np.sqrt(0.5)], atol=1e-6)
    lerp = latent.interpolate(a, b, 5, method="lerp")
    np.testing.assert_array_equal(lerp[0], a)
    np.testing.assert_array_equal(lerp[-1], b)
    np.testing.assert_allclose(lerp, (1 - t)[:, None] * a + t[:, None] * b, atol=1e-7)


def test_slerp_of_nearly_parallel_antiparallel_and_zero_vectors():
    a = np.random.default_rng(1).normal(size=8)
    near = latent.interpolate(a, a + 1e-9, 5)  # an angle of ~1e-10: no 0/0
    assert np.all(np.isfinite(near))
    np.testing.assert_allclose(near, np.repeat(a[None], 5, 0), atol=1e-6)
    parallel = latent.interpolate(a, 2 * a, 3)  # same direction: the norms go 1 -> 1.5 -> 2 times |a|
    np.testing.assert_allclose(parallel[1], 1.5 * a, rtol=1e-6)
    opposite = latent.interpolate(a, -a, 3)  # every great circle works; the middle is orthogonal to a
    assert np.all(np.isfinite(opposite))
    np.testing.assert_allclose(np.linalg.norm(opposite, axis=1), np.linalg.norm(a), rtol=1e-6)
    assert abs(np.dot(opposite[1], a)) < 1e-5
    zero = latent.interpolate(np.zeros(8), a, 3)  # no direction: the lerp
    np.testing.assert_allclose(zero[1], a / 2, rtol=1e-6)


def test_interpolate_keeps_the_latent_shape_and_validates():
    a, b = np.ones((2, 3)), -np.ones((2, 3)) + np.eye(2, 3)
    assert latent.interpolate(a, b, 4).shape == (4, 2, 3)
    with pytest.raises(ValueError, match="steps"):
        latent.interpolate(a, b, 1)
    with pytest.raises(ValueError, match="cubic"):
        latent.interpolate(a, b, 3, method="cubic")
    with pytest.raises(ValueError, match="same shape"):
        latent.interpolate(a, b[:1], 3)
    with pytest.raises(ValueError, match="non-finite"):
        latent.interpolate(a * np.nan, b, 3)


def test_interpolation_grid_chains_anchors_and_decodes_them():
    gan = tiny_gan()
    anchors = np.asarray(gan.sample_latent(3, seed=4))
    grid = latent.interpolation_grid(gan, anchors, steps=5, method="lerp")
    assert grid.shape == (2, 5) and grid.images.shape == (2, 5, 8, 8, 1) and grid.labels is None
    np.testing.assert_array_equal(grid.latents[0, -1], grid.latents[1, 0])  # row r ends where row r+1 starts
    np.testing.assert_array_equal(grid.latents[1, -1], anchors[2])
    expected = keras.ops.convert_to_numpy(gan.generator(grid.latents.reshape(10, 8), training=False))
    np.testing.assert_allclose(grid.images.reshape(10, 8, 8, 1), expected, atol=1e-6)
    drawn = latent.interpolation_grid(gan, 3, steps=5, method="lerp", seed=4)  # int anchors: prior draws
    np.testing.assert_allclose(drawn.latents, grid.latents, atol=1e-6)
    with pytest.raises(ValueError, match="unconditional"):
        latent.interpolation_grid(gan, 3, labels=[1, 2, 3])


def test_interpolation_grid_holds_or_switches_a_conditional_label():
    gan = tiny_gan(num_classes=10)
    held = latent.interpolation_grid(gan, 3, steps=4, labels=[2, 5, 7])
    np.testing.assert_array_equal(held.labels, [[2, 2, 2, 2], [5, 5, 5, 5]])
    switched = latent.interpolation_grid(gan, 3, steps=4, labels=[2, 5, 7], label_mode="switch")
    np.testing.assert_array_equal(switched.labels, [[2, 2, 5, 5], [5, 5, 7, 7]])  # t = 0, 1/3 | 2/3, 1
    expected = keras.ops.convert_to_numpy(
        gan.generator([switched.latents[1].reshape(4, 8), switched.labels[1]], training=False)
    )
    np.testing.assert_allclose(switched.images[1], expected, atol=1e-6)
    with pytest.raises(ValueError, match="Labels must be in"):
        latent.interpolation_grid(gan, 3, labels=[2, 5, 12])


# ------------------------------------------------------------------------------------------------ vectors
def test_attribute_vector_recovers_a_known_offset():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(50, 6))
    offset = np.array([2.0, 0.0, -1.0, 0.5, 0.0, 3.0])
    latents = np.concatenate([base + offset, base])  # group A = group B shifted by the offset
    in_a = np.arange(100) < 50
    np.testing.assert_allclose(latent.attribute_vector(latents, in_a, ~in_a), offset, atol=1e-5)
    np.testing.assert_allclose(latent.attribute_vector(latents, np.arange(50)), offset, atol=1e-5)  # B = the rest
    # From noisy groups the estimate converges like sqrt(2 / n) per coordinate.
    noisy = np.concatenate([rng.normal(size=(4000, 6)) + offset, rng.normal(size=(4000, 6))])
    vector = latent.attribute_vector(noisy, np.arange(8000) < 4000)
    assert np.max(np.abs(vector - offset)) < 5 * np.sqrt(2 / 4000)
    with pytest.raises(ValueError, match="empty"):
        latent.attribute_vector(latents, np.zeros(100, bool))


def test_arithmetic_and_apply():
    signs = np.array([[1.0], [-1.0]])  # zero-mean spread, so each group mean is its centre
    a, b, c = (centre + signs * np.array([0.3, -0.2]) for centre in ([1.0, 2.0], [0.5, 0.5], [-1.0, 4.0]))
    np.testing.assert_allclose(latent.arithmetic(a, b, c), [1 - 0.5 - 1, 2 - 0.5 + 4], atol=1e-6)
    rescaled = latent.arithmetic(a, b, c, rescale=True)  # same direction, the mean norm of C's latents
    np.testing.assert_allclose(np.linalg.norm(rescaled), np.linalg.norm(c, axis=1).mean(), rtol=1e-6)
    direction = np.array([-0.5, 5.5]) / np.hypot(0.5, 5.5)
    np.testing.assert_allclose(rescaled / np.linalg.norm(rescaled), direction, atol=1e-6)
    z = np.zeros((3, 2))
    np.testing.assert_allclose(latent.apply(z, [1.0, -2.0], 0.5), np.tile([0.5, -1.0], (3, 1)))
    shifted = latent.apply(z, [1.0, -2.0], [0.0, 1.0, 2.0])
    assert shifted.shape == (3, 3, 2)
    np.testing.assert_allclose(shifted[2, 1], [2.0, -4.0])
    with pytest.raises(ValueError, match="does not match"):
        latent.apply(z, [1.0, 2.0, 3.0])
    edits = latent.along([1.0, 0.0], [0.5, 2])
    assert list(edits) == ["+0.5", "+2"]
    np.testing.assert_allclose(edits["+2"](np.zeros((1, 2))), [[2.0, 0.0]])


def test_group_mask_ranks_stroke_weight_within_each_class():
    brightness = np.array([0.1, 0.5, 0.9, -0.9, -0.5, 0.0])  # class 0: three, class 1: three
    imgs = np.repeat(brightness[:, None, None, None], 4, axis=1).repeat(4, axis=2)
    labels = np.array([0, 0, 0, 1, 1, 1])
    np.testing.assert_allclose(latent.ink(imgs), (brightness + 1) / 2)
    np.testing.assert_array_equal(latent.group_mask(labels, 0), [1, 1, 1, 0, 0, 0])
    np.testing.assert_array_equal(latent.group_mask(labels, None, imgs, "bold"), [0, 0, 1, 0, 0, 1])
    np.testing.assert_array_equal(latent.group_mask(labels, [1], imgs, "thin"), [0, 0, 0, 1, 0, 0])
    with pytest.raises(ValueError, match="empty"):
        latent.group_mask(labels, 7)
    with pytest.raises(ValueError, match="pass its `images`"):
        latent.group_mask(labels, 0, style="bold")
    assert latent.parse_group("3,5:thin") == ((3, 5), "thin")
    assert latent.parse_group(":bold") == (None, "bold")
    with pytest.raises(ValueError, match="bold"):
        latent.parse_group("7:italic")


def test_classify_samples_groups_a_gans_latents():
    gan = tiny_gan()

    def by_brightness(x):  # any callable images -> labels works; scores (n, K) are argmaxed
        score = x.reshape(len(x), -1).mean(axis=1)
        return np.stack([-score, score], axis=1)

    z, x, predicted = latent.classify_samples(gan, 32, by_brightness, seed=1)
    assert z.shape == (32, 8) and x.shape == (32, 8, 8, 1)
    np.testing.assert_array_equal(predicted, (x.reshape(32, -1).mean(axis=1) > 0).astype(int))
    np.testing.assert_allclose(z, np.asarray(gan.sample_latent(32, seed=1)), atol=1e-6)
    with pytest.raises(ValueError, match="one label"):
        latent.classify_samples(gan, 4, lambda x: np.zeros(3, int))


# ------------------------------------------------------------------------------------------------ traverse
def test_traversal_changes_only_the_chosen_dimension():
    gan = tiny_gan()
    z = np.asarray(gan.sample_latent(1, seed=2))[0]
    values = [-2.0, 0.0, 2.5]
    grid = latent.traverse(gan, z, dims=[1, 5], values=values)
    assert grid.shape == (2, 3) and grid.row_titles == ["z[1]", "z[5]"]
    for r, d in enumerate([1, 5]):
        for c, v in enumerate(values):
            changed = np.flatnonzero(grid.latents[r, c] != z)
            assert set(changed) <= {d}
            assert grid.latents[r, c, d] == np.float32(v)
    expected = keras.ops.convert_to_numpy(gan.generator(grid.latents.reshape(6, 8), training=False))
    np.testing.assert_allclose(grid.images.reshape(6, 8, 8, 1), expected, atol=1e-6)
    shifted = latent.traverse(gan, z, dims=[0], values=[1.0], offset=True)
    np.testing.assert_allclose(shifted.latents[0, 0, 0], z[0] + 1.0, rtol=1e-6)
    with pytest.raises(ValueError, match=r"\[0, 8\)"):
        latent.traverse(gan, z, dims=[8])
    with pytest.raises(ValueError, match="conditional"):
        latent.traverse(tiny_gan(num_classes=10), z)


def test_active_dims_is_the_closed_form_kl_per_dimension():
    vae = tiny_vae()
    x = images(16)
    mean, log_var = vae.encode(x)
    dims, kl = latent.active_dims(vae, x)
    expected = np.mean(0.5 * (mean**2 + np.exp(log_var) - log_var - 1), axis=0)
    np.testing.assert_allclose(kl, expected, rtol=1e-5)
    np.testing.assert_array_equal(dims, np.argsort(-expected))


# ------------------------------------------------------------------------------------------------ edit
def test_edit_with_the_identity_reproduces_the_reconstruction():
    vae = tiny_vae()
    x = images(5)
    grid = latent.edit(vae, x, lambda z: z)
    assert grid.col_titles == ["original", "reconstruction", "edited"]
    reconstruction = vae.reconstruct(x)
    np.testing.assert_array_equal(grid.column("original"), x)
    np.testing.assert_allclose(grid.column("reconstruction"), reconstruction, atol=1e-6)
    np.testing.assert_allclose(grid.column("edited"), reconstruction, atol=1e-6)


def test_edit_applies_each_change_to_the_posterior_mean():
    vae = tiny_vae()
    x = images(4)
    mean, _ = vae.encode(x)
    vector = np.array([1.0, -1.0, 0.0, 2.0], "float32")
    grid = latent.edit(vae, x, latent.along(vector, [1, 2]))
    assert grid.col_titles == ["original", "reconstruction", "+1", "+2"]
    np.testing.assert_allclose(grid.latents[:, 3], mean + 2 * vector, atol=1e-6)
    np.testing.assert_allclose(grid.column("+2"), vae.decode(mean + 2 * vector), atol=1e-6)
    with pytest.raises(ValueError, match="shape"):
        latent.edit(vae, x, lambda z: z[:, :2])
    with pytest.raises(TypeError, match="Editing real images .* needs a model that encodes images"):
        latent.edit(tiny_gan(), x)


def test_edit_of_a_conditional_vae_can_decode_with_another_class():
    vae = tiny_vae(num_classes=10)
    x, labels = images(3), np.array([1, 2, 3])
    grid = latent.edit(vae, x, lambda z: z, labels=labels, new_labels=7)
    mean, _ = vae.encode(x, labels)
    np.testing.assert_array_equal(grid.labels, [[1, 1, 7], [2, 2, 7], [3, 3, 7]])
    np.testing.assert_allclose(grid.column("reconstruction"), vae.reconstruct(x, labels), atol=1e-6)
    np.testing.assert_allclose(grid.column("edited"), vae.decode(mean, 7), atol=1e-6)
    with pytest.raises(ValueError, match="conditional"):
        latent.edit(vae, x)


def test_arithmetic_grid_decodes_the_averaged_result():
    vae = tiny_vae()
    rng = np.random.default_rng(0)
    a, b, c = rng.normal(size=(3, 5, 4)).astype("float32")
    grid = latent.arithmetic_grid(vae, a, b, c, examples=3)
    assert grid.shape == (4, 4) and grid.col_titles == ["#1", "#2", "#3", "mean"]
    np.testing.assert_allclose(grid.latents[3, -1], a.mean(0) - b.mean(0) + c.mean(0), atol=1e-6)
    np.testing.assert_allclose(grid.latents[3, 0], a[0] - b[0] + c[0], atol=1e-6)
    np.testing.assert_allclose(grid.images[3, -1], vae.decode(grid.latents[3, -1:])[0], atol=1e-6)


def test_grids_write_labelled_pngs(tmp_path):
    grid = latent.traverse(tiny_vae(), np.zeros(4), dims=[0, 1], values=[-1, 1])
    path = grid.save(tmp_path / "traverse.png")
    image = Image.open(path)
    assert image.format == "PNG" and image.size[0] > 100
    bare = Image.open(grid.save(tmp_path / "bare.png", labelled=False))
    assert bare.size[0] >= 256
    assert grid._repr_png_()[:8] == b"\x89PNG\r\n\x1a\n"
    Image.open(io.BytesIO(grid.to_png())).verify()


# ------------------------------------------------------------------------------------------------ the CLI
def keras_gen(*args, timeout=300):
    script = shutil.which("keras-gen", path=os.path.dirname(sys.executable)) or shutil.which("keras-gen")
    command = [script] if script else [sys.executable, "-m", "keras_gen.cli"]
    return subprocess.run(command + [str(a) for a in args], capture_output=True, text=True, env=ENV, timeout=timeout)


def _tiny_run(tmp_path_factory, preset, networks, **overrides):
    out = tmp_path_factory.mktemp("runs") / preset
    config = presets.get_config(preset, dataset="digits", epochs=1, networks=networks, **overrides)
    train_run(config, out, verbose=0)
    return out


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory):
    networks = {"encoder": {"latent_dim": 4, "hidden": [16]}, "decoder": {"hidden": [16]}}
    return _tiny_run(tmp_path_factory, "vae", networks)


@pytest.fixture(scope="module")
def gan_run(tmp_path_factory):
    return _tiny_run(
        tmp_path_factory, "dcgan", {"generator": {"latent_dim": 8, "width": 8}, "discriminator": {"width": 8}}
    )


@pytest.mark.parametrize(
    "action, extra",
    [
        ("interpolate", ["--rows", 2, "--steps", 4, "--source", "data"]),
        ("arithmetic", ["--a", "3:bold", "--b", "3", "--c", "1", "--examples", 2]),
        ("traverse", ["--steps", 3]),
        ("edit", ["--count", 3, "--strengths", "1,2"]),
    ],
)
def test_cli_latent_writes_the_grids_of_a_vae_run(vae_run, tmp_path, action, extra):
    out = tmp_path / f"{action}.png"
    result = keras_gen("latent", action, vae_run, "--out", out, "--seed", 1, *extra)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Wrote" in result.stdout and Image.open(out).format == "PNG"


def test_cli_latent_on_a_gan_run_and_its_errors(gan_run, tmp_path):
    out = tmp_path / "interpolate.png"
    result = keras_gen("latent", "interpolate", gan_run, "--out", out, "--rows", 2, "--steps", 3)
    assert result.returncode == 0, result.stderr[-3000:]
    assert Image.open(out).format == "PNG"
    result = keras_gen("latent", "edit", gan_run, "--out", tmp_path / "edit.png")
    assert result.returncode == 2 and "encodes images" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "edit.png").exists()


def test_grid_for_run_in_process(vae_run, gan_run):
    grid = latent_grids.grid_for_run(gan_run, "traverse", dims=[0, 7], steps=3)
    assert grid.shape == (2, 3)
    stub = lambda x: (x.reshape(len(x), -1).mean(axis=1) > np.median(x.reshape(len(x), -1).mean(axis=1))).astype(int)
    grid = latent_grids.grid_for_run(gan_run, "arithmetic", a="1", b="0", c="0", examples=2, num_samples=64,
                                     classify=stub)
    assert grid.shape == (4, 3)
    grid = latent_grids.grid_for_run(vae_run, "traverse", source="data", index=3, steps=3)
    assert grid.shape == (4, 3)  # the VAE's 4 latent dimensions, ranked by KL
    with pytest.raises(ValueError, match="Unknown option"):
        latent_grids.grid_for_run(vae_run, "edit", rows=3)
    with pytest.raises(ValueError, match="Unknown latent action"):
        latent_grids.grid_for_run(vae_run, "morph")
