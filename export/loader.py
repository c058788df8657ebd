"""`load(path)`: one sampler interface over an exported SavedModel, TFLite file or ONNX folder.

    sampler = keras_gen.export.load("exports/dcgan/1")                    # SavedModel
    sampler = keras_gen.export.load("exports/dcgan/1", format="tflite", precision="int8")
    sampler = keras_gen.export.load("exports/dcgan/1/onnx")               # or ".../onnx/generate.onnx"
    images = sampler.sample(64, seed=0)          # == model.generate(64, seed=0) (float32, value range)
    pixels = sampler.sample(64, seed=0, uint8=True)
    images = sampler.generate(z, labels=[3] * len(z))

So evaluation (FID on the exported artifact) and serving run on what was shipped, not on the Keras model.
"""

import os

import numpy as np

from keras_gen import model_kind
from keras_gen.export import manifest as manifest_lib

__all__ = ["Sampler", "load"]


class Sampler:
    """Samples from an exported artifact through a runner (`SavedModelRunner`, `SessionRunner`, `TFLiteRunner`,
    `ONNXRunner`).

    The SavedModel runs its own ``sample`` signature (the latent parts are drawn in the graph); TFLite and ONNX,
    which cannot hold the random draw, get the parts drawn here by the model's `keras_gen.latent_spec.LatentSpec`
    as ``manifest.json`` records it (``z = keras_gen.rng.normal((n, *latent_shape), seed)`` for the one-part
    normal latent of most models), the same numbers. Either way ``sample(n, seed, labels)`` equals
    ``model.generate(n, labels, seed)`` up to the artifact's precision.

    Attributes:
        format: ``"savedmodel"``, ``"tflite"`` or ``"onnx"``.
        precision: ``"fp32"``, ``"fp16"``, ``"int8"`` or ``"dynamic_int8"``.
        path: the artifact's path.
        manifest: the export's manifest dict (None for a bare artifact without one).
        latent_spec: the model's `LatentSpec`, from the manifest (older manifests: their ``prior`` and
            ``latent_shape``; a bare artifact: a standard normal ``z`` of the ``generate`` signature's shape).
        kind, operations: the model's kind and what it offers (`keras_gen.model_kind`), from the manifest, or
            read off the endpoints.
        latent_shape, num_classes, sample_shape, value_range: the model's, from the manifest (inferred from the
            ``generate`` signature when there is none).
        endpoints: the artifact's endpoint (signature) names.
    """

    def __init__(self, runner, manifest=None, precision="fp32"):
        self.runner = runner
        self.format = runner.format
        self.precision = precision
        self.path = runner.path
        self.manifest = manifest
        self.endpoints = list(runner.endpoints)
        model = (manifest or {}).get("model") or {}
        if "generate" in self.endpoints:
            signature = runner.signature("generate")
            self.conditional = "label" in signature["inputs"]
            output = next(iter(signature["outputs"]))
            sample_shape = signature["outputs"][output]["shape"][1:]
        elif model:  # e.g. the ONNX files of a VQ-VAE: the autoencoder without the prior's sampling loop
            self.conditional = model.get("num_classes") is not None
            output, sample_shape = model.get("output"), model["sample_shape"]
        else:
            raise ValueError(
                f"{self.path} has no `generate` endpoint and no manifest.json (it has {self.endpoints}): not a "
                "keras-gen export."
            )
        self.num_classes = model.get("num_classes")
        generate_inputs = runner.signature("generate")["inputs"] if "generate" in self.endpoints else None
        self.latent_spec = manifest_lib.latent_spec(model, generate_inputs)
        self.latent_shape = self.latent_spec.network_shape
        self.output_name = model.get("output") or output
        self.sample_shape = tuple(model.get("sample_shape") or sample_shape)
        self.value_range = tuple(model.get("value_range") or (-1.0, 1.0))
        self.kind = model.get("kind") if model.get("kind") in model_kind.KINDS else "latent"
        self.operations = frozenset(model["operations"]) if "operations" in model else _operations(self.endpoints)
        self.model_class = model.get("class")

    # ------------------------------------------------------------------ plumbing
    def __repr__(self):
        return (
            f"Sampler(format={self.format!r}, precision={self.precision!r}, path={self.path!r}, "
            f"latent_shape={self.latent_shape}, num_classes={self.num_classes}, sample_shape={self.sample_shape})"
        )

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.runner.close()

    @property
    def latent_dim(self):
        if self.latent_shape is None:
            return None
        return self.latent_shape[0] if len(self.latent_shape) == 1 else self.latent_shape

    def run(self, endpoint, **inputs):
        """Calls one endpoint on one batch: ``{output name: NumPy array}``."""
        return self.runner(endpoint, inputs)

    def check_labels(self, labels, n):
        """Labels for ``n`` samples as `GenerativeModel.check_labels` makes them (default ``arange(n) % K``)."""
        from keras_gen.models.base import GenerativeModel

        if not self.conditional:
            if labels is not None:
                raise ValueError("This model is unconditional: `labels` must be None.")
            return None
        if self.num_classes is None:  # a bare artifact: no manifest to say how many classes
            if labels is None:
                raise ValueError("This conditional artifact has no manifest.json to tell its classes: pass `labels`.")
            labels = np.broadcast_to(np.asarray(labels), (n,)) if np.ndim(labels) == 0 else np.asarray(labels)
            if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
                raise ValueError(f"Expected {n} integer labels, got {labels!r}.")
            return labels.astype("int32")
        return GenerativeModel.check_labels(self, labels, n)

    def _batched(self, endpoint, inputs, batch_size):
        from keras_gen.models.base import check_count

        batch_size = check_count(batch_size)
        n = len(next(iter(inputs.values())))
        parts = []
        for start in range(0, n, batch_size):
            parts.append(self.runner(endpoint, {k: v[start : start + batch_size] for k, v in inputs.items()}))
        return {name: np.concatenate([p[name] for p in parts], axis=0) for name in parts[0]}

    def _images(self, endpoint, inputs, uint8, batch_size, output=None):
        from keras_gen.images import to_uint8

        if uint8 and not self.is_image:
            raise ValueError(f"uint8 output is for images; this model makes samples of shape {self.sample_shape}.")
        name = f"{endpoint}_uint8" if uint8 and f"{endpoint}_uint8" in self.endpoints else endpoint
        images = self._batched(name, inputs, batch_size)[output or self.output_name]
        if uint8 and images.dtype != np.uint8:  # an artifact without the uint8 endpoint (full-integer TFLite)
            images = to_uint8(images, self.value_range)
        return images

    @property
    def is_image(self):
        return len(self.sample_shape) == 3

    # ------------------------------------------------------------------ sampling
    def latents(self, n, seed):
        """The ``n`` latents ``sample(n, seed)`` decodes: ``{part name: NumPy (n, *shape)}`` drawn by `latent_spec`
        (``z = keras_gen.rng.normal((n, *latent_shape), seed)`` for a standard normal ``z``), as the model's
        `sample_latent` draws them."""
        from keras_gen.models.base import check_count

        n = check_count(n)
        self._require("generate")
        return {name: np.asarray(value) for name, value in self.latent_spec.sample(n, int(seed)).items()}

    def generate(self, z, labels=None, uint8=False, batch_size=256):
        """Samples from given latents.

        Args:
            z: ``(n, *latent_shape)`` floats for a one-part latent, or ``{part name: (n, *shape)}`` (`latents`).
            labels: for a conditional model: an int or ``n`` ints (default ``arange(n) % num_classes``).
            uint8: return uint8 pixels instead of floats in the value range.
            batch_size: samples per artifact call.

        Returns:
            NumPy ``(n, *sample_shape)``, float32 (or uint8).
        """
        self._require("generate")
        inputs = self.latent_spec.check(z)  # {part: array}, one batch size; errors name the part
        n = len(next(iter(inputs.values())))
        labels = self.check_labels(labels, n)
        if labels is not None:
            inputs["label"] = labels
        return self._images("generate", inputs, uint8, batch_size)

    decode = generate

    def sample(self, n, seed=None, labels=None, uint8=False, batch_size=256):
        """``n`` samples from the prior; with an int ``seed`` the same as ``model.generate(n, labels, seed)``.

        Args:
            n: number of samples.
            seed: an int (deterministic); None draws a fresh seed.
            labels: for a conditional model: an int or ``n`` ints (default ``arange(n) % num_classes``).
            uint8: return uint8 pixels.
            batch_size: samples per call for TFLite and ONNX (the SavedModel draws all ``n`` in one call).

        Returns:
            NumPy ``(n, *sample_shape)``, float32 (or uint8).
        """
        from keras_gen.models.base import check_count

        n = check_count(n)
        if seed is None:
            seed = int(np.random.default_rng().integers(0, 2**31 - 1))
        labels = self.check_labels(labels, n)
        if "sample" in self.endpoints:
            inputs = {"n": np.array(n, "int32"), "seed": np.array(int(seed), "int64")}
            if labels is not None:
                inputs["label"] = labels
            name = "sample_uint8" if uint8 and "sample_uint8" in self.endpoints else "sample"
            if uint8 and not self.is_image:
                raise ValueError(f"uint8 output is for images; this model makes samples of shape {self.sample_shape}.")
            return self.runner(name, inputs)[self.output_name]
        return self.generate(self.latents(n, seed), labels, uint8=uint8, batch_size=batch_size)

    # ------------------------------------------------------------------ autoencoders
    def _require(self, endpoint):
        if endpoint not in self.endpoints:
            why = " (ONNX cannot hold this model's sampling loop: use the SavedModel or TFLite)" if (
                endpoint == "generate" and self.format == "onnx") else ""
            raise ValueError(
                f"This {self.format} artifact has no `{endpoint}` endpoint{why}; it has {', '.join(self.endpoints)}."
            )

    def _image_inputs(self, endpoint, images, labels):
        images = np.asarray(images, dtype="float32")
        if images.ndim == len(self.sample_shape):
            images = images[None]
        if tuple(images.shape[1:]) != self.sample_shape or not len(images):
            shape = ", ".join(map(str, self.sample_shape))
            raise ValueError(f"Expected images of shape (n, {shape}), got {images.shape}.")
        inputs = {"images": images}
        if "label" not in self.runner.signature(endpoint)["inputs"]:  # e.g. a VQ-VAE's: its labels condition the prior
            return inputs
        if self.conditional and labels is None:
            raise ValueError("This model is conditional: pass the images' `labels`.")
        labels = self.check_labels(labels, len(images))
        if labels is not None:
            inputs["label"] = labels
        return inputs

    def encode(self, images, labels=None, batch_size=256):
        """A VAE's posterior ``(z_mean, z_log_var)``, NumPy ``(n, latent_dim)`` each; a VQ-VAE's code maps, NumPy
        int32 ``(n, h, w)``."""
        self._require("encode")
        out = self._batched("encode", self._image_inputs("encode", images, labels), batch_size)
        if "codes" in out:
            return out["codes"]
        return out["z_mean"], out["z_log_var"]

    def decode_codes(self, codes, uint8=False, batch_size=256):
        """A VQ-VAE's decoder on integer code maps ``(n, h, w)``: images ``(n, *sample_shape)``."""
        self._require("decode_codes")
        codes = np.asarray(codes)
        if codes.ndim != 3 or not len(codes) or not np.issubdtype(codes.dtype, np.integer):
            raise ValueError(f"`codes` must be integer maps (n, h, w), got {codes.dtype} {codes.shape}.")
        return self._images("decode_codes", {"codes": codes.astype("int32")}, uint8, batch_size)

    def reconstruct(self, images, labels=None, uint8=False, batch_size=256):
        """An autoencoder's reconstructions (the decoded posterior mean), NumPy ``(n, *sample_shape)``."""
        self._require("reconstruct")
        return self._images("reconstruct", self._image_inputs("reconstruct", images, labels), uint8, batch_size,
                            "reconstructions")


def _operations(endpoints):
    """What an artifact without a recorded ``operations`` offers, read off its endpoints."""
    offered = {"sample"} if "generate" in endpoints or "sample" in endpoints else set()
    return frozenset(offered | {name for name in ("encode", "reconstruct") if name in endpoints})


def _latest_version(model_dir):
    versions = sorted(
        int(n) for n in os.listdir(model_dir) if n.isdigit() and os.path.isdir(os.path.join(model_dir, n))
    )
    return os.path.join(model_dir, str(versions[-1])) if versions else None


def _artifact(manifest, version_dir, format, precision):
    for entry in (manifest or {}).get("artifacts", []):
        if entry["format"] == format and (format != "tflite" or entry["precision"] == precision):
            return os.path.join(version_dir, entry["path"])
    return None


def load(path, format=None, precision="fp32", session=False, num_threads=2, providers=None):
    """Opens an exported artifact as a `Sampler`.

    Args:
        path: a version folder ``BASE/NAME/VERSION`` (its SavedModel by default), a model folder ``BASE/NAME``
            (its latest version), a ``.tflite`` file or ``tflite/`` folder, an ``onnx/`` folder or ``.onnx`` file.
        format: ``"savedmodel"``, ``"tflite"`` or ``"onnx"`` to pick an artifact of a version folder.
        precision: the TFLite variant (``"fp32"``, ``"fp16"``, ``"int8"``, ``"dynamic_int8"``).
        session: run the SavedModel in a TF1 session (as ``saved_model_cli`` and TF Serving do) instead of
            `tf.saved_model.load`.
        num_threads: LiteRT interpreter threads.
        providers: ONNX Runtime execution providers (default CUDA if available, else CPU).

    Raises:
        FileNotFoundError: nothing loadable at ``path`` (the message says what was looked for).
        ValueError: an unknown format, or a folder that is not a keras-gen export.
    """
    from keras_gen.export.exporter import FORMATS
    from keras_gen.export.onnx import ONNXRunner
    from keras_gen.export.savedmodel import SavedModelRunner, SessionRunner
    from keras_gen.export.tflite import PRECISIONS, TFLiteRunner

    if format is not None and format not in FORMATS:
        raise ValueError(f"Unknown format {format!r}. Valid: {', '.join(FORMATS)}.")
    if precision not in PRECISIONS:
        raise ValueError(f"Unknown precision {precision!r}. Valid: {', '.join(PRECISIONS)}.")
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No export at {path!r}.")
    if os.path.isdir(path) and os.path.isfile(os.path.join(path, f"model_{precision}.tflite")):
        path = os.path.join(path, f"model_{precision}.tflite")  # a version's tflite/ folder
    if os.path.isdir(path) and not os.path.isfile(os.path.join(path, manifest_lib.MANIFEST_FILE)) and not (
        os.path.isfile(os.path.join(path, "saved_model.pb")) or any(n.endswith(".onnx") for n in os.listdir(path))
    ):
        latest = _latest_version(path)
        if latest is None:
            raise FileNotFoundError(
                f"{path} is not an export: no manifest.json, saved_model.pb, .onnx files or version folders."
            )
        path = latest
    manifest, version_dir = manifest_lib.find_manifest(path)

    if os.path.isfile(path):
        if path.endswith(".tflite"):
            name = os.path.basename(path)[: -len(".tflite")]
            file_precision = name[len("model_"):] if name.startswith("model_") else "fp32"
            return Sampler(TFLiteRunner(path, num_threads=num_threads), manifest, precision=file_precision)
        if path.endswith(".onnx"):
            return Sampler(ONNXRunner(path, providers=providers), manifest)
        raise ValueError(f"{path} is not a .tflite or .onnx file; pass a version folder for a SavedModel.")

    has_savedmodel = os.path.isfile(os.path.join(path, "saved_model.pb"))
    if format is None:
        if has_savedmodel:
            format = "savedmodel"
        elif any(n.endswith(".onnx") for n in os.listdir(path)):
            format = "onnx"
        else:
            formats = [a["format"] for a in (manifest or {}).get("artifacts", [])]
            if not formats:
                raise FileNotFoundError(f"{path} holds no artifact.")
            format = formats[0]
    if format == "savedmodel":
        if not has_savedmodel:
            raise FileNotFoundError(f"{path} holds no SavedModel (no saved_model.pb).")
        runner = SessionRunner(path) if session else SavedModelRunner(path)
        return Sampler(runner, manifest)
    if format == "onnx":
        folder = path if any(n.endswith(".onnx") for n in os.listdir(path)) else _artifact(manifest, path, "onnx", None)
        if folder is None or not os.path.isdir(folder):
            raise FileNotFoundError(f"{path} holds no ONNX artifact.")
        return Sampler(ONNXRunner(folder, providers=providers), manifest)
    tflite = _artifact(manifest, version_dir or path, "tflite", precision)
    if tflite is None:
        candidate = os.path.join(path, "tflite", f"model_{precision}.tflite")
        tflite = candidate if os.path.isfile(candidate) else None
    if tflite is None:
        raise FileNotFoundError(f"{path} holds no TFLite {precision} artifact.")
    return Sampler(TFLiteRunner(tflite, num_threads=num_threads), manifest, precision=precision)
