"""`export_model` / `export_run`: write a model's SavedModel, TFLite and ONNX artifacts into TF Serving's layout,
checking each against Keras before anything is reported as written.

Layout of one export (``BASE/NAME/VERSION/`` is what TF Serving loads as version ``VERSION`` of model ``NAME``;
it ignores the extra folders)::

    BASE/NAME/VERSION/saved_model.pb, variables/, assets/, fingerprint.pb    SavedModel (all signatures)
    BASE/NAME/VERSION/tflite/model_fp32.tflite [model_fp16, model_int8, model_dynamic_int8]
    BASE/NAME/VERSION/onnx/generate.onnx, generate_uint8.onnx [encode.onnx, reconstruct.onnx, ...]
    BASE/NAME/VERSION/manifest.json                                           what is there, and its parity

Everything is written into a hidden staging folder ``BASE/NAME/.export-VERSION-*`` (TF Serving only looks at
integer folder names) and renamed to ``VERSION`` at the end, after every artifact passed its parity check. On any
error the staging folder (and any folder the call created) is removed: nothing half-written stays behind.
"""

import os
import re
import shutil
import sys
import tempfile

import numpy as np

from keras_gen.export import adapters as adapters_lib
from keras_gen.export import manifest as manifest_lib
from keras_gen.export import onnx as onnx_lib
from keras_gen.export import parity as parity_lib
from keras_gen.export import tflite as tflite_lib

__all__ = ["FORMATS", "QUANTIZATIONS", "ExportResult", "export_model", "export_run", "next_version", "check_formats",
           "check_quantize"]

FORMATS = ("savedmodel", "tflite", "onnx")
QUANTIZATIONS = ("fp16", "int8", "dynamic_int8")
"""TFLite variants besides fp32 (written when ``tflite`` is among the formats); ``dynamic_int8`` only on request."""

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


class ExportResult(dict):
    """What `export_model` wrote: ``path`` (the version folder), ``name``, ``version``, ``manifest`` (the dict
    written as ``manifest.json``) and ``artifacts`` (``[(format, precision, absolute path)]``)."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError as exc:
            raise AttributeError(name) from exc


def _split(value):
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return list(value)


def check_formats(formats):
    """A list of formats (a comma-separated string or a sequence) validated against `FORMATS`."""
    formats = _split(formats)
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ValueError(
            f"Unknown export format(s) {unknown or formats!r}. Valid: {', '.join(FORMATS)} (at least one)."
        )
    return [f for f in FORMATS if f in formats]


def supported_formats(model, num_classes=None):
    """The formats of `FORMATS` that can hold at least one endpoint of ``model`` (a model, a generator network or
    an adapter): a SavedModel always; TFLite and ONNX when an endpoint converts (a PixelCNN's sampling loop has
    no ONNX conversion, for one)."""
    from keras_gen.export.onnx import onnx_endpoints
    from keras_gen.export.tflite import tflite_endpoints

    adapter = adapters_lib.get_adapter(model, num_classes=num_classes)
    holds = {"savedmodel": True, "tflite": bool(tflite_endpoints(adapter, "fp32")), "onnx": bool(onnx_endpoints(adapter))}
    return tuple(f for f in FORMATS if holds[f])


def check_quantize(quantize, formats):
    """A list of TFLite quantizations validated against `QUANTIZATIONS` (they need the ``tflite`` format)."""
    quantize = _split(quantize)
    unknown = [q for q in quantize if q not in QUANTIZATIONS]
    if unknown:
        raise ValueError(f"Unknown quantization(s) {unknown!r}. Valid: {', '.join(QUANTIZATIONS)}.")
    if quantize and "tflite" not in formats:
        raise ValueError(f"Quantization {quantize} applies to TFLite: add 'tflite' to the formats {formats}.")
    return [q for q in QUANTIZATIONS if q in quantize]


def _check_name(name):
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            f"Model name {name!r} is not valid: use letters, digits, '_', '.', '-' (starting with a letter or digit)."
        )
    return name


def _versions(model_dir):
    if not os.path.isdir(model_dir):
        return []
    return sorted(int(n) for n in os.listdir(model_dir) if n.isdigit() and os.path.isdir(os.path.join(model_dir, n)))


def next_version(base_dir, name):
    """One more than the largest integer version folder of ``BASE/NAME`` (1 when there is none)."""
    versions = _versions(os.path.join(os.fspath(base_dir), name))
    return versions[-1] + 1 if versions else 1


def _check_version(version):
    if version is None:
        return None
    if isinstance(version, str) and version.isdigit():
        version = int(version)
    if isinstance(version, bool) or not isinstance(version, (int, np.integer)) or version < 1:
        raise ValueError(f"`version` must be a positive integer (a TF Serving version folder), got {version!r}.")
    return int(version)


def _training_steps(model):
    """Optimizer steps taken by ``model`` (the most of its optimizers), plus the ``trained_steps`` it carries from
    before it was loaded (a shipped model's, `keras_gen.pretrained`: its optimizers start at 0), or None when it
    holds neither."""
    import keras

    steps = [
        int(np.asarray(value.iterations))
        for value in vars(model).values()
        if isinstance(value, keras.optimizers.Optimizer)
    ]
    before = getattr(model, "trained_steps", None)
    if before is None:
        return max(steps) if steps else None
    return int(before) + max(steps, default=0)


def _makedirs(path):
    """``os.makedirs`` that returns the folders it created, outermost first."""
    created = []
    path = os.path.abspath(path)
    while not os.path.isdir(path):
        created.append(path)
        path = os.path.dirname(path)
    for directory in reversed(created):
        os.mkdir(directory)
    return list(reversed(created))


def _say(progress, text):
    if progress is not None:
        progress(text)


class _Steps:
    """The steps of one export as they start: a tqdm bar over them on stderr when it is a terminal (unless
    ``progress`` is False or None), and each step's text to ``progress`` when it is a callable."""

    def __init__(self, progress, total):
        from tqdm import tqdm

        self.lines = progress if callable(progress) else None
        shown = progress is not None and progress is not False
        self.bar = tqdm(total=total, file=sys.stderr, disable=None if shown else True,  # None: on a terminal only
                        bar_format="export: {desc} {bar} {n_fmt}/{total_fmt} steps [{elapsed}]")
        self.started = False

    def __call__(self, text):
        if self.started:
            self.bar.update(1)
        self.started = True
        self.bar.set_description_str(text)
        if self.lines is not None:
            with self.bar.external_write_mode():  # the line above the bar, which is drawn again below it
                self.lines(text)

    def close(self, done):
        if done and self.started:
            self.bar.set_description_str("done", refresh=False)
            self.bar.update(1)
        self.bar.close()


def _count_steps(formats, quantize):
    """How many `_Steps` an export of ``formats`` (and TFLite ``quantize`` variants) goes through."""
    per_format = {"savedmodel": 3, "tflite": 2 * (1 + len(quantize)), "onnx": 2}
    return 1 + sum(per_format[f] for f in formats)


def _open(label, make_runner, names):
    """Opens a just-written artifact and reads its signatures; a failure is a `ParityError` naming it."""
    from keras_gen.export.errors import ParityError

    try:
        runner = make_runner()
        return runner, {name: runner.signature(name) for name in names}
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ParityError(f"{label} was written but could not be loaded back: {type(exc).__name__}: {first}") from exc


def _aliases(adapter, endpoints):
    from keras_gen.export.savedmodel import SERVING_DEFAULT

    return {SERVING_DEFAULT: endpoints[0].name, **adapter.aliases()}


def _savedmodel_artifact(adapter, stage, references, endpoints, progress):
    from keras_gen.export.savedmodel import SavedModelRunner, SessionRunner, write_savedmodel

    _say(progress, "SavedModel: writing")
    write_savedmodel(adapter, stage)
    files = manifest_lib.file_sizes(stage)
    aliases = _aliases(adapter, endpoints)
    names = [e.name for e in endpoints] + list(aliases)
    entry = {"format": "savedmodel", "precision": "fp32", "path": ".", "size_bytes": sum(files.values()),
             "files": files}
    _say(progress, "SavedModel: parity (tf.saved_model.load)")
    runner, entry["signatures"] = _open("SavedModel", lambda: SavedModelRunner(stage), names)
    try:
        entry["aliases"] = aliases
        entry["parity"] = parity_lib.check_parity(runner, adapter, references, "fp32", names, label="SavedModel")
    finally:
        runner.close()
    _say(progress, "SavedModel: parity (TF1 session, as saved_model_cli and TF Serving load it)")
    session, _ = _open("SavedModel (session)", lambda: SessionRunner(stage), names)
    try:
        entry["session_parity"] = parity_lib.check_parity(
            session, adapter, references, "fp32", names, label="SavedModel (session)"
        )
    finally:
        session.close()
    return entry


def _tflite_artifact(adapter, stage, references, precision, num_threads, progress):
    folder = os.path.join(stage, "tflite")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"model_{precision}.tflite")
    _say(progress, f"TFLite {precision}: converting")
    names = tflite_lib.write_tflite(adapter, path, precision, work_dir=stage)
    _say(progress, f"TFLite {precision}: parity (LiteRT interpreter, {num_threads} threads)")
    runner, signatures = _open(
        f"TFLite {precision}", lambda: tflite_lib.TFLiteRunner(path, num_threads=num_threads), names
    )
    try:
        parity = parity_lib.check_parity(runner, adapter, references, precision, names, label=f"TFLite {precision}")
    finally:
        runner.close()
    relative = os.path.relpath(path, stage)
    return {"format": "tflite", "precision": precision, "path": relative, "size_bytes": os.path.getsize(path),
            "files": {relative: os.path.getsize(path)}, "signatures": signatures, "parity": parity}


def _onnx_artifact(adapter, stage, references, opset, progress):
    folder = os.path.join(stage, "onnx")
    _say(progress, f"ONNX (opset {opset}): converting")
    written = onnx_lib.write_onnx(adapter, folder, opset=opset)
    _say(progress, "ONNX: parity (ONNX Runtime)")
    runner, signatures = _open("ONNX", lambda: onnx_lib.ONNXRunner(folder, providers=["CPUExecutionProvider"]), written)
    try:
        parity = parity_lib.check_parity(runner, adapter, references, "fp32", list(written), label="ONNX")
    finally:
        runner.close()
    files = manifest_lib.file_sizes(stage, [os.path.relpath(p, stage) for p in written.values()])
    return {"format": "onnx", "precision": "fp32", "path": "onnx", "opset": opset, "size_bytes": sum(files.values()),
            "files": files, "signatures": signatures, "parity": parity}


def export_model(
    model,
    base_dir,
    name,
    version=None,
    formats=FORMATS,
    quantize=(),
    *,
    batch_sizes=parity_lib.BATCH_SIZES,
    opset=onnx_lib.DEFAULT_OPSET,
    allow_untrained=False,
    num_classes=None,
    num_threads=2,
    source=None,
    progress=True,
):
    """Exports a model to SavedModel (TF Serving layout), TFLite and ONNX, each checked against Keras.

    Args:
        model: a `keras_gen` model (`GAN`, `VAE`), a built generator network, or a `ModelAdapter`. Only the
            inference networks are exported (the generator; a VAE's decoder and encoder).
        base_dir: the TF Serving base path; the export goes to ``base_dir/name/version``.
        name: the model name (letters, digits, ``_.-``).
        version: a positive integer; default one more than the largest existing version. An existing version
            folder is never overwritten (`FileExistsError`).
        formats: any of ``"savedmodel"``, ``"tflite"``, ``"onnx"`` (a list or a comma-separated string).
        quantize: TFLite variants besides fp32: ``"fp16"``, ``"int8"`` (full-integer, calibrated on latents from
            the prior), ``"dynamic_int8"`` (dynamic range; ~25x slower on CPU, only on request).
        batch_sizes: batch sizes of the parity checks.
        opset: ONNX opset (at most 18 with tf2onnx 1.17).
        allow_untrained: export a model whose optimizers never took a step (by default that is an error: it is
            usually the wrong model). A model's ``trained_steps`` (a shipped model's, `keras_gen.pretrained`) counts
            as steps taken.
        num_classes: classes of a bare conditional generator network.
        num_threads: LiteRT threads for the TFLite parity runs.
        source: a dict recorded as the manifest's ``source`` (e.g. the run folder).
        progress: ``True``: a progress bar over the export's steps (the conversions, the parity checks of each
            format) on stderr when it is a terminal; ``False`` (or None): none; a callable: ``progress(text)`` is
            called as each step starts (e.g. ``print``), and the bar is shown as for ``True``.

    Returns:
        An `ExportResult`.

    Raises:
        ValueError: unknown format or quantization, bad name/version/opset, an unbuilt or untrained model, a
            model kind no exporter knows; `UnsupportedModelError` (a ValueError) when a format cannot express an
            operation of the model; `ParityError` (a ValueError) when an artifact misses its tolerance.
        FileExistsError: the version folder exists.

    Example:
        >>> result = export_model(gan, "exports", "dcgan", formats="savedmodel,tflite,onnx", quantize="fp16,int8")
        >>> result.path  # doctest: +SKIP
        'exports/dcgan/1'
        >>> sampler = keras_gen.export.load(result.path)  # doctest: +SKIP
        >>> images = sampler.sample(16, seed=0)  # equals gan.generate(16, seed=0)  # doctest: +SKIP
    """
    formats = check_formats(formats)
    quantize = check_quantize(quantize, formats)
    name = _check_name(name)
    version = _check_version(version)
    batch_sizes = parity_lib._check_batch_sizes(batch_sizes)
    opset = onnx_lib.check_opset(opset)
    adapter = adapters_lib.get_adapter(model, num_classes=num_classes)
    if not allow_untrained and not isinstance(model, adapters_lib.ModelAdapter):
        steps = _training_steps(model)
        if steps == 0:
            raise ValueError(
                f"This {type(model).__name__} has never been trained (its optimizers took 0 steps): exporting it is "
                "usually a mistake. Train it first, or pass allow_untrained=True (--allow-untrained)."
            )

    _check_expressible(adapter, formats, quantize)

    base_dir = os.path.abspath(os.fspath(base_dir))
    model_dir = os.path.join(base_dir, name)
    if version is None:
        version = next_version(base_dir, name)
    final = os.path.join(model_dir, str(version))
    if os.path.exists(final):
        raise FileExistsError(
            f"{final} already exists: an exported version is never overwritten. Choose another --version, or "
            f"leave it out to write version {next_version(base_dir, name)}."
        )
    created = _makedirs(model_dir)
    stage = tempfile.mkdtemp(prefix=f".export-{version}-", dir=model_dir)
    lines, progress = progress, _Steps(progress, _count_steps(formats, quantize))
    try:
        endpoints = adapter.endpoints()
        _say(progress, f"Keras reference outputs at batch sizes {list(batch_sizes)}")
        references = parity_lib.reference_outputs(adapter, endpoints, batch_sizes)
        for alias, target in _aliases(adapter, endpoints).items():
            for batch in batch_sizes:
                references[(alias, batch)] = references[(target, batch)]
        artifacts = []
        if "savedmodel" in formats:
            artifacts.append(_savedmodel_artifact(adapter, stage, references, endpoints, progress))
        if "tflite" in formats:
            for precision in ["fp32"] + quantize:
                artifacts.append(_tflite_artifact(adapter, stage, references, precision, num_threads, progress))
        if "onnx" in formats:
            artifacts.append(_onnx_artifact(adapter, stage, references, opset, progress))
        manifest = manifest_lib.build_manifest(adapter, name, version, artifacts, source=source)
        manifest_lib.write_manifest(stage, manifest)
        if os.path.exists(final):  # someone else wrote it meanwhile
            raise FileExistsError(f"{final} appeared during the export; it was left as it is.")
        os.rename(stage, final)
    except BaseException:
        progress.close(done=False)
        shutil.rmtree(stage, ignore_errors=True)
        for directory in reversed(created):
            try:
                os.rmdir(directory)  # only if still empty
            except OSError:
                break
        raise
    progress.close(done=True)
    if callable(lines):
        lines(f"Wrote {final}")
    return ExportResult(
        path=final,
        name=name,
        version=version,
        manifest=manifest,
        artifacts=[(a["format"], a["precision"], os.path.normpath(os.path.join(final, a["path"]))) for a in artifacts],
    )


def _check_expressible(adapter, formats, quantize):
    """Fails before any work when a requested format or TFLite variant would hold no endpoint of the model."""
    from keras_gen.export.errors import UnsupportedModelError

    if "onnx" in formats and not onnx_lib.onnx_endpoints(adapter):
        raise UnsupportedModelError(
            f"ONNX cannot express any endpoint of this {adapter.model_class}: tf2onnx cannot convert its sampling "
            "loop. Export it with formats='savedmodel,tflite'."
        )
    if "tflite" in formats:
        for precision in ["fp32"] + list(quantize):
            if not tflite_lib.tflite_endpoints(adapter, precision):
                raise UnsupportedModelError(
                    f"No endpoint of this {adapter.model_class} can go into a TFLite {precision} file (its sampling "
                    "picks by argmax, which reduced precision changes); leave out that quantization."
                )


def _default_name(run_dir):
    base = os.path.basename(os.path.abspath(run_dir)) or "model"
    name = re.sub(r"[^A-Za-z0-9_.\-]+", "-", base).lstrip(".-_") or "model"
    return name


def export_run(run_dir, base_dir=None, name=None, version=None, formats=FORMATS, quantize=(), **kwargs):
    """Exports the model of a run folder (written by ``keras-gen train``); see `export_model`.

    Args:
        run_dir: the run folder, or ``pretrained:NAME`` for a model shipped with the package
            (`keras_gen.runs.resolve_run_dir`).
        base_dir: the TF Serving base path (default ``RUN_DIR/export``; ``export`` in the current directory for a
            shipped model, whose folder is never written into).
        name: the model name (default the run folder's name; a shipped model's NAME).
        version, formats, quantize, **kwargs: as in `export_model`.

    Raises:
        FileNotFoundError: ``run_dir`` is missing, is not a run folder, or holds no model yet.
        ValueError: an unknown pretrained NAME (the message lists the shipped ones), and `export_model`'s errors.
    """
    import json

    from keras_gen.presets import run_dir_config
    from keras_gen.runs import load_run, resolve_run_dir

    run_dir, pretrained = resolve_run_dir(run_dir)
    if not os.path.isdir(run_dir):
        raise FileNotFoundError(f"Run folder {run_dir!r} does not exist.")
    # Validate the cheap arguments before loading the model.
    formats = check_formats(formats)
    check_quantize(quantize, formats)
    name = _check_name(name if name is not None else (pretrained or _default_name(run_dir)))
    config = run_dir_config(run_dir)
    model = load_run(run_dir, compile=True)
    where = {"run_dir": os.path.abspath(run_dir)} if pretrained is None else {"pretrained": pretrained}
    source = {**where, "preset": config.preset, "dataset": config.dataset, "epochs": config.epochs}
    info_path = os.path.join(run_dir, "dataset.json")
    if os.path.isfile(info_path):
        with open(info_path) as f:
            source["dataset_info"] = json.load(f)
    if base_dir is None:
        base_dir = os.path.join(run_dir if pretrained is None else os.getcwd(), "export")
    return export_model(model, base_dir, name, version, formats, quantize, source=source, **kwargs)
