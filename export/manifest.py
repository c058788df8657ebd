"""``manifest.json``: what an export folder holds, written beside the artifacts.

Example (abridged)::

    {
      "manifest_version": 2,
      "name": "dcgan", "version": 1, "created": "2025-01-01T12:00:00Z",
      "versions": {"keras_gen": "0.1.0", "tensorflow": "2.21.0", "keras": "3.15.1"},
      "model": {"kind": "latent", "operations": ["latent_space", "sample"], "family": "gan", "class": "GAN",
                "networks": ["generator"],
                "latent": {"parts": [{"name": "z", "shape": [100], "distribution": "normal", "loc": 0.0,
                                      "scale": 1.0}],
                           "conditions": []},
                "latent_shape": [100], "latent_dim": 100, "num_classes": null, "sample_shape": [28, 28, 1],
                "value_range": [-1.0, 1.0], "output": "images"},
      "sampling": {"latent": "...", "default_labels": "...", "uint8": "..."},
      "source": {"run_dir": "...", "preset": "dcgan", "dataset": "mnist"},
      "artifacts": [
        {"format": "savedmodel", "precision": "fp32", "path": ".", "size_bytes": 3100000,
         "files": {"saved_model.pb": 98000, "variables/variables.data-00000-of-00001": 3000000, ...},
         "signatures": {"generate": {"inputs": {"z": {"dtype": "float32", "shape": [null, 100]}},
                                     "outputs": {"images": {"dtype": "float32", "shape": [null, 28, 28, 1]}}},
                        ...},
         "aliases": {"serving_default": "generate"},
         "parity": {"precision": "fp32", "tolerance": {...}, "batch_sizes": [1, 7, 64],
                    "endpoints": {"generate": {"1": {"images": {"max_abs_error": 0.0, ...}}}}, "passed": true},
         "session_parity": {...}},
        {"format": "tflite", "precision": "int8", "path": "tflite/model_int8.tflite", ...},
        {"format": "onnx", "precision": "fp32", "path": "onnx", "opset": 17, ...}
      ]
    }

Paths are relative to the version folder.
"""

import datetime
import json
import os

__all__ = ["MANIFEST_FILE", "MANIFEST_VERSION", "build_manifest", "write_manifest", "read_manifest", "find_manifest",
           "file_sizes", "latent_spec"]

MANIFEST_FILE = "manifest.json"
MANIFEST_VERSION = 2

SAMPLING = {
    "latent": "model.latent, a keras_gen.latent_spec.LatentSpec: part i drawn with seed [seed, i] from its "
    "distribution by keras_gen.rng (a standard normal z: keras_gen.rng.normal((n, *shape), seed=[seed, 0])), the draw "
    "of model.generate(n, seed=seed) and of the SavedModel's `sample` signature",
    "default_labels": "arange(n) % num_classes",
    "uint8": "clip(round((x - low) / (high - low) * 255), 0, 255) with (low, high) = value_range",
}


def file_sizes(root, paths=None):
    """``{relative path: bytes}`` of the files under ``root`` (or of the given relative ``paths``, files or
    folders)."""
    root = os.fspath(root)
    sizes = {}
    for top in paths if paths is not None else [""]:
        full = os.path.join(root, top)
        if os.path.isfile(full):
            sizes[top] = os.path.getsize(full)
            continue
        for directory, _, files in os.walk(full):
            for name in files:
                path = os.path.join(directory, name)
                sizes[os.path.relpath(path, root)] = os.path.getsize(path)
    return dict(sorted(sizes.items()))


def build_manifest(adapter, name, version, artifacts, source=None):
    """The manifest dict of an export (see the module docstring)."""
    from keras_gen import provenance

    return {
        "manifest_version": MANIFEST_VERSION,
        "name": name,
        "version": int(version),
        "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "versions": provenance.versions(),
        "model": adapter.describe(),
        "sampling": dict(SAMPLING),
        "source": source,
        "artifacts": list(artifacts),
    }


def latent_spec(model, generate_inputs=None):
    """The `keras_gen.latent_spec.LatentSpec` of an export, from its manifest's ``model`` dict.

    A manifest written with one holds ``latent`` (`LatentSpec.to_dict`). One written before has ``prior``
    (``"normal"`` or ``"uniform"``) and ``latent_shape``; an artifact with no manifest (``model = {}``) is read as
    a standard normal ``z`` of the shape its ``generate`` signature takes (``generate_inputs``: ``{name: {"dtype",
    "shape"}}``, as the runners describe a signature).
    """
    from keras_gen.latent_spec import Condition, LatentSpec

    model = model or {}
    if model.get("latent") is not None:
        return LatentSpec.from_dict(model["latent"])
    num_classes = model.get("num_classes")
    label = () if num_classes is None else (Condition("label", "label", num_classes=num_classes),)
    shape = model.get("latent_shape")
    if shape is None and generate_inputs and "z" in generate_inputs:
        shape = generate_inputs["z"]["shape"][1:]
    if shape is None:
        return LatentSpec((), label)
    if model.get("prior") == "uniform":
        return LatentSpec.uniform(tuple(shape), conditions=label)
    return LatentSpec.normal(tuple(shape), conditions=label)


def write_manifest(directory, manifest):
    path = os.path.join(os.fspath(directory), MANIFEST_FILE)
    with open(path, "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=False)
        f.write("\n")
    return path


def read_manifest(path):
    """Reads ``manifest.json`` (a version folder or the file itself)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, MANIFEST_FILE)
    with open(path) as f:
        return json.load(f)


def find_manifest(path, levels=2):
    """``(manifest, version folder)`` for a path inside an export (a version folder, its ``tflite/`` or ``onnx/``
    folder, or a file in them), looking up to ``levels`` folders up; ``(None, None)`` when there is none."""
    path = os.path.abspath(os.fspath(path))
    directory = path if os.path.isdir(path) else os.path.dirname(path)
    for _ in range(levels + 1):
        if os.path.isfile(os.path.join(directory, MANIFEST_FILE)):
            return read_manifest(directory), directory
        parent = os.path.dirname(directory)
        if parent == directory:
            break
        directory = parent
    return None, None
