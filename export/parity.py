"""Parity: every artifact against Keras, before it is reported as written.

For each endpoint of an artifact and each batch size (1, 7 and 64 by default), the same inputs (random ``z``,
labels and images; ``n`` and a seed for ``sample``) go through the Keras networks, eagerly, and through the
reloaded artifact. Per output:

- float outputs: ``max_abs_error = max |artifact - keras|`` and, normalised by the output's scale,
  ``error = max_abs_error / max(1, max |keras|)``; ``psnr_db = 10 log10(peak^2 / mean((artifact - keras)^2))``
  with ``peak`` the width of the value range (2 for images in [-1, 1]; the Keras output's range for other
  outputs); ``"inf"`` when identical.
- uint8 outputs: ``max_level_error = max |artifact - keras|`` in pixel levels.

Tolerances (`TOLERANCES`): fp32 ``error <= 1e-4`` and uint8 within 1 level; fp16 ``error <= 1e-2`` and uint8
within 2 levels (1 of rounding plus 1e-2 * 127.5); int8 (full-integer or dynamic-range) ``psnr_db >= 30``.
An artifact that misses raises `ParityError` with the numbers, and the export writes nothing.
"""

import math

import numpy as np

__all__ = ["BATCH_SIZES", "TOLERANCES", "reference_outputs", "compare_outputs", "check_parity", "PARITY_SEED"]

BATCH_SIZES = (1, 7, 64)
PARITY_SEED = 1234

TOLERANCES = {
    "fp32": {"max_error": 1e-4, "max_level_error": 1},
    "fp16": {"max_error": 1e-2, "max_level_error": 2},
    "int8": {"min_psnr_db": 30.0},
    "dynamic_int8": {"min_psnr_db": 30.0},
}


def _check_batch_sizes(batch_sizes):
    batch_sizes = tuple(batch_sizes)
    bad = [b for b in batch_sizes if isinstance(b, bool) or not isinstance(b, (int, np.integer)) or b < 1]
    if not batch_sizes or bad:
        raise ValueError(f"`batch_sizes` must be positive integers, got {batch_sizes!r}.")
    return tuple(int(b) for b in batch_sizes)


def reference_outputs(adapter, endpoints, batch_sizes=BATCH_SIZES, seed=PARITY_SEED):
    """Keras outputs of each endpoint (built without in-graph checks, run eagerly) on example inputs.

    Returns:
        ``{(endpoint name, batch): (inputs, outputs)}``, NumPy dicts.
    """
    import tensorflow as tf

    references = {}
    for endpoint in endpoints:
        fn = endpoint.build(False)
        for i, batch in enumerate(_check_batch_sizes(batch_sizes)):
            inputs = adapter.example_inputs(endpoint, batch, seed + i)
            args = [tf.constant(inputs[spec.name], dtype=spec.dtype) for spec in endpoint.inputs]
            outputs = {name: np.asarray(value) for name, value in fn(*args).items()}
            references[(endpoint.name, batch)] = (inputs, outputs)
    return references


def _psnr(mse, peak):
    if mse == 0:
        return "inf"
    if not math.isfinite(mse):
        return float("nan")
    return round(10.0 * math.log10(peak**2 / mse), 2)


def compare_outputs(reference, got, value_range=(-1.0, 1.0), image_outputs=("images",)):
    """Per-output error metrics of ``got`` against ``reference`` (dicts of arrays); see the module docstring."""
    metrics = {}
    for name, ref in reference.items():
        if name not in got:
            raise KeyError(f"The artifact did not return output {name!r}; it returned {sorted(got)}.")
        out = np.asarray(got[name])
        if out.shape != ref.shape:
            metrics[name] = {"shape_mismatch": [list(out.shape), list(ref.shape)]}
            continue
        if ref.dtype == np.uint8:
            levels = int(np.abs(out.astype("int32") - ref.astype("int32")).max()) if ref.size else 0
            metrics[name] = {"max_level_error": levels}
            continue
        diff = out.astype("float64") - ref.astype("float64")
        max_abs = float(np.abs(diff).max()) if diff.size else 0.0
        scale = max(1.0, float(np.abs(ref).max())) if ref.size else 1.0
        if name in image_outputs:
            peak = value_range[1] - value_range[0]
        else:
            peak = float(ref.max() - ref.min()) if ref.size else 1.0
            peak = peak if peak > 0 else 1.0
        mse = float(np.mean(diff**2)) if diff.size else 0.0
        metrics[name] = {
            "max_abs_error": float(f"{max_abs:.3g}"),
            "error": float(f"{max_abs / scale:.3g}"),
            "psnr_db": _psnr(mse, peak),
        }
    return metrics


def _passes(metrics, precision):
    tolerance = TOLERANCES[precision]
    if "shape_mismatch" in metrics:
        return False
    if "max_level_error" in metrics:
        if "max_level_error" not in tolerance:  # int8 files have no uint8 outputs
            return True
        return metrics["max_level_error"] <= tolerance["max_level_error"]
    if "min_psnr_db" in tolerance:
        psnr = metrics["psnr_db"]
        return psnr == "inf" or (isinstance(psnr, float) and psnr >= tolerance["min_psnr_db"])
    return math.isfinite(metrics["error"]) and metrics["error"] <= tolerance["max_error"]


def check_parity(runner, adapter, references, precision, endpoints, label=None):
    """Runs ``runner`` on the reference inputs of ``endpoints`` and compares.

    Args:
        runner: ``runner(endpoint, inputs) -> outputs`` (a SavedModel, session, TFLite or ONNX runner).
        adapter: the `ModelAdapter` (for the value range and output names).
        references: from `reference_outputs`.
        precision: ``"fp32"``, ``"fp16"``, ``"int8"`` or ``"dynamic_int8"`` (chooses the tolerance).
        endpoints: names of the endpoints to check.
        label: how to name the artifact in an error message.

    Returns:
        ``{"precision", "tolerance", "batch_sizes", "endpoints": {name: {batch: {output: metrics}}},
        "passed": True}``.

    Raises:
        ParityError: an output misses its tolerance (all the misses are listed).
    """
    from keras_gen.export.errors import ParityError

    if precision not in TOLERANCES:
        raise ValueError(f"Unknown precision {precision!r}. Valid: {', '.join(TOLERANCES)}.")
    image_outputs = (adapter.output_name,) if adapter.is_image else ()
    report = {}
    failures = []
    batch_sizes = sorted({batch for (name, batch) in references if name in endpoints})
    for (name, batch), (inputs, expected) in sorted(references.items()):
        if name not in endpoints:
            continue
        try:
            got = runner(name, inputs)
        except Exception as exc:
            raise ParityError(
                f"{label or runner.format}: endpoint {name!r} failed to run at batch {batch}: "
                f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
            ) from exc
        metrics = compare_outputs(expected, got, adapter.value_range, image_outputs)
        report.setdefault(name, {})[str(batch)] = metrics
        for output, values in metrics.items():
            if not _passes(values, precision):
                failures.append(f"{name}[{output}] at batch {batch}: {values}")
    if failures:
        raise ParityError(
            f"{label or runner.format} does not reproduce the Keras outputs (tolerance {TOLERANCES[precision]}): "
            + "; ".join(failures)
        )
    return {
        "precision": precision,
        "tolerance": TOLERANCES[precision],
        "batch_sizes": batch_sizes,
        "endpoints": report,
        "passed": True,
    }
