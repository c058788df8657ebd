"""`evaluate`: every metric that applies to a trained model, from a run folder, an export or a model object.

Pipeline (torch-fidelity style): draw ``n`` samples in batches (a tqdm bar) -> load the real comparison data
(the dataset's test split) -> features / class probabilities from one extractor -> the metrics of this package:

- ``fid``: `fid_from_features` on extractor features (2-D mixtures: on the raw points);
- ``kid``: `kernel_inception_distance`, mean and std over subsets (mixtures: raw points);
- ``is``: `inception_score` of the classifier's probabilities (digit data only);
- ``pr``: `precision_recall`, k = 3 (mixtures: raw points);
- ``coverage``: ring2d / grid2d: `mode_coverage` over the true modes (VEEGAN / PacGAN: modes, high-quality
  fraction, reverse KL); mnist / digits: classes the classifier predicts and the KL of their histogram to
  uniform; stacked MNIST: `stacked_mnist_modes` of the predicted digit triples.

Extractors: ``"classifier"`` is the package's `domain_classifier` (digit data: ``mnist``, ``digits``, and
``stacked_mnist`` channel by channel: features concatenated, probabilities over the 1,000 digit triples as the
product of the three channels'); ``"inception"`` is `InceptionFeatureExtractor` (local weights only; no class
probabilities, so no IS or coverage); ``"auto"`` takes the classifier for digit data, InceptionV3 for other
images and the identity for points. Every metric's entry records the extractor and the sample counts.

Example:

>>> from keras_gen.metrics import evaluate, format_table
>>> results = evaluate("runs/ring2d", n=2500)            # a run folder, an export, or a model object
>>> print(format_table(results))
"""

import json
import numbers
import os
import time

import numpy as np

from keras_gen.metrics.coverage import _kl_to_uniform, mode_coverage, stacked_mnist_modes
from keras_gen.metrics.fid import fid_from_features
from keras_gen.metrics.inception_score import inception_score
from keras_gen.metrics.kid import kernel_inception_distance
from keras_gen.metrics.precision_recall import precision_recall
from keras_gen.provenance import environment

__all__ = ["METRICS", "EXTRACTORS", "evaluate", "applicable_metrics", "load_source", "format_table"]

METRICS = ("fid", "kid", "is", "pr", "coverage")
"""Metric names `evaluate` knows, in the order results are reported."""

EXTRACTORS = ("auto", "classifier", "inception", "identity")

DIGIT_DATASETS = ("mnist", "digits", "stacked_mnist")
_MIXTURES = ("ring2d", "grid2d")
_DEFAULT_N = {"points": 2_500, "stacked_mnist": 26_000, "image": 5_000}
_NEEDS_PROBABILITIES = ("is", "coverage")


# ---------------------------------------------------------------------------------------------------------- sources
def _find_run_dir(path):
    """The run folder holding ``path`` (the folder itself, or up to two levels above a file), or None."""
    path = os.path.abspath(path)
    candidates = [path] if os.path.isdir(path) else []
    parent = os.path.dirname(path)
    candidates += [parent, os.path.dirname(parent)]
    for candidate in candidates:
        if os.path.isfile(os.path.join(candidate, "config.json")):
            return candidate
    return None


def _run_dataset(run_dir):
    """(dataset name, dataset info) of a run folder, from ``config.json`` and ``dataset.json``."""
    from keras_gen.presets import RunConfig

    config = RunConfig.load(os.path.join(run_dir, "config.json"))
    info_path = os.path.join(run_dir, "dataset.json")
    info = None
    if os.path.isfile(info_path):
        with open(info_path) as f:
            info = json.load(f)
    return config.dataset, info, config.data_dir


def load_source(path):
    """Loads what `evaluate` samples from, given a path.

    Args:
        path: a run folder written by `keras_gen.runs.train_run` (its ``model.keras`` or last checkpoint), a
            ``.keras`` model file (inside a run folder, the folder's dataset is used), or an artifact written by
            `keras_gen.export` (loaded with ``keras_gen.export.load``).

    Returns:
        ``(sampler, description)``: the sampler has ``generate(n, seed=...)`` or ``sample(n, seed=...)``;
        ``description`` is a dict with ``path``, ``type`` (``"run"``, ``"keras"``, ``"export"``) and, when the
        path says, ``dataset`` (the dataset name) and ``dataset_info``.

    Raises:
        FileNotFoundError: nothing at ``path``, or a run folder without a model yet.
        ValueError: a path that is none of the above.
    """
    path = os.path.abspath(os.path.expanduser(os.fspath(path)))
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"Nothing to evaluate at {path!r}: expected a run folder (with config.json), a .keras model or an "
            "exported artifact."
        )
    run_dir = _find_run_dir(path)
    description = {"path": path}
    if run_dir is not None:
        dataset, info, data_dir = _run_dataset(run_dir)
        description.update(dataset=dataset, dataset_info=info, data_dir=data_dir, run_dir=run_dir)
    if os.path.isdir(path) and run_dir == path:
        from keras_gen.runs import load_run

        description["type"] = "run"
        return load_run(path, compile=False), description
    if os.path.isfile(path) and path.endswith(".keras"):
        import keras

        import keras_gen  # noqa: F401  (registers the serializable classes)

        description["type"] = "keras"
        try:
            model = keras.models.load_model(path, compile=False)
        except Exception as exc:
            raise ValueError(f"Could not load {path}: the file is corrupt or not a keras-gen model ({exc}).") from exc
        return model, description
    try:
        from keras_gen import export
    except ImportError as exc:  # the export package is optional at evaluation time
        raise ValueError(f"{path!r} is not a run folder or .keras file, and keras_gen.export is unavailable ({exc}).")
    if not hasattr(export, "load"):
        raise ValueError(f"{path!r} is not a run folder or .keras file, and keras_gen.export has no `load` yet.")
    sampler = export.load(path)
    description.update(type="export", format=getattr(sampler, "format", None),
                       precision=getattr(sampler, "precision", None))
    # The manifest of `keras_gen.export` names the run it came from: {"source": {"dataset", "dataset_info", ...}}.
    origin = (getattr(sampler, "manifest", None) or {}).get("source") or {}
    if origin.get("dataset") and "dataset" not in description:
        description.update(dataset=origin["dataset"], dataset_info=origin.get("dataset_info"))
    if origin.get("run_dir") and os.path.isfile(os.path.join(origin["run_dir"], "config.json")):
        description.setdefault("run_dir", origin["run_dir"])
    return sampler, description


def _sampler_name(source):
    for attribute in ("name", "__name__"):
        value = getattr(source, attribute, None)
        if isinstance(value, str):
            return value
    return type(source).__name__


def _draw(source, count, seed):
    """``count`` samples from a sampler (``sample``, preferred: an export's ``generate`` takes latents) or a model
    (``generate``) as a float32 NumPy array. Conditional sources get their default labels (classes in turn)."""
    if hasattr(source, "sample"):
        samples = source.sample(count, seed=seed)
    elif hasattr(source, "generate"):
        samples = source.generate(count, seed=seed)
    else:
        raise TypeError(
            "`source` must have `generate(n, seed=...)` (a keras-gen model) or `sample(n, seed=...)` (a sampler "
            f"from keras_gen.export.load), or be a path; received {type(source).__name__}."
        )
    if isinstance(samples, dict):
        for key in ("images", "samples"):
            if key in samples:
                samples = samples[key]
                break
        else:
            raise ValueError(f"The sampler returned a dict without 'images' or 'samples': keys {sorted(samples)}.")
    samples = np.asarray(samples, dtype=np.float32)
    if samples.shape[:1] != (count,):
        raise ValueError(f"Asked the sampler for {count} samples, received an array of shape {samples.shape}.")
    return samples


def generate_samples(source, n, seed=0, batch_size=500, progress=True):
    """The ``n`` samples `evaluate` scores for the same ``seed`` and ``batch_size``, as a float32 NumPy array.

    Batch i is drawn with seed ``seed + i * 2**32`` (batch 0 is ``generate(batch_size, seed=seed)``), so the
    samples depend on ``batch_size`` as well as on ``seed``. For scoring samples another way (a reader of one's
    own, a histogram) on exactly the draw that `evaluate` and ``benchmarks/mode_collapse.py`` score.

    Args:
        source: a keras-gen model (``generate(n, seed=...)``) or a sampler from ``keras_gen.export.load``
            (``sample(n, seed=...)``); conditional sources get their default labels (classes in turn).
        n: how many samples, a positive integer.
        seed: a non-negative integer.
        batch_size: samples per generator call, a positive integer.
        progress: show a tqdm bar over the batches.

    Raises:
        ValueError: ``n``, ``seed`` or ``batch_size`` out of range, or a source that returns the wrong count.
        TypeError: a source with neither ``generate`` nor ``sample``.

    Example:

    >>> images = generate_samples(gan, 26_000, seed=0)   # (26000, 28, 28, 3) for a stacked-MNIST GAN
    """
    from tqdm.auto import tqdm

    n = _check_int("n", n, 1)
    seed = _check_int("seed", seed, 0)
    batch_size = _check_int("batch_size", batch_size, 1)

    starts = range(0, n, batch_size)
    batches = []
    for i, start in enumerate(tqdm(starts, desc="generating", unit="batch", disable=not progress)):
        batches.append(_draw(source, min(batch_size, n - start), seed + i * 2**32))
    return np.concatenate(batches, axis=0)


# ---------------------------------------------------------------------------------------------------------- data
def _resolve_dataset(dataset, description, source, data_dir):
    from keras_gen import data

    name = dataset or description.get("dataset") or getattr(source, "dataset", None)
    if not name:
        raise ValueError(
            "Which dataset do these samples imitate? Pass dataset=NAME (CLI: --dataset): the source is neither a run "
            "folder nor an artifact that records its dataset."
        )
    info = description.get("dataset_info") if not dataset or dataset == description.get("dataset") else None
    if info is None:
        info = data.dataset_info(name, data_dir=data_dir or description.get("data_dir"))
    return name, info


def _real_data(name, info, n, data_dir):
    """The comparison data: the test split (or what there is), at most ``max(n, split size)`` examples."""
    from keras_gen import data

    if name in data.BUILTIN_DATASETS:
        split = "test"
        x, _ = data.load_arrays(name, split)
        return x, split
    splits = info.get("splits") or {}
    split = "test" if "test" in splits else "train"
    ds = data.load_dataset(
        name, split=split, batch_size=256, shuffle=False, with_labels=False, drop_remainder=False,
        num_samples=n, data_dir=data_dir,
    )
    return np.concatenate([np.asarray(batch) for batch in ds], axis=0), split


# ---------------------------------------------------------------------------------------------------------- extractors
class _StackedClassifier:
    """Applies a 28x28x1 digit classifier to each channel of (N, 28, 28, 3) stacked-MNIST images."""

    def __init__(self, classifier):
        self.classifier = classifier
        self.name = f"{classifier.name}_per_channel"

    def describe(self):
        return {**self.classifier.describe(), "name": self.name, "channels": 3}

    @staticmethod
    def _channels(images):
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"Stacked MNIST images must have shape (N, 28, 28, 3); received {images.shape}.")
        return [images[..., c : c + 1] for c in range(3)]  # 3 x (N, 28, 28, 1)

    def features(self, images):
        return np.concatenate([self.classifier.features(c) for c in self._channels(images)], axis=1)  # (N, 3 F)

    def channel_probabilities(self, images):
        return [self.classifier.probabilities(c) for c in self._channels(images)]  # 3 x (N, 10)

    def probabilities(self, images):
        p1, p2, p3 = self.channel_probabilities(images)
        return np.einsum("ni,nj,nk->nijk", p1, p2, p3).reshape(len(p1), 1000)  # (N, 1000), triple 100 i + 10 j + k

    def predict_digits(self, images):
        return np.stack([np.argmax(p, axis=1) for p in self.channel_probabilities(images)], axis=1)  # (N, 3)

    __call__ = features


class _Identity:
    name = "identity"

    def describe(self):
        return {"name": self.name, "path": None, "accuracy": None}

    def features(self, x):
        x = np.asarray(x)
        return x.reshape(x.shape[0], -1)

    __call__ = features


class _Inception:
    def __init__(self, weights, batch_size, progress):
        from keras_gen.metrics.extractors import InceptionFeatureExtractor

        self.extractor = InceptionFeatureExtractor(weights=weights, batch_size=batch_size, progress=progress)
        self.name = self.extractor.name

    def describe(self):
        return {"name": self.name, "path": self.extractor.weights_path, "accuracy": None}

    def features(self, images):
        return self.extractor(images)

    __call__ = features


def _make_extractor(kind, name, info, classifier, inception_weights, batch_size, progress):
    from keras_gen.metrics.classifier import DomainClassifier, domain_classifier

    points = info["kind"] == "points"
    if kind == "auto":
        kind = "identity" if points else ("classifier" if name in DIGIT_DATASETS else "inception")
    if points and kind != "identity":
        raise ValueError(f"Dataset {name!r} holds 2-D points: its metrics use the raw points (extractor='identity'), "
                         f"not {kind!r}.")
    if kind == "identity":
        return _Identity()
    if kind == "inception":
        return _Inception(inception_weights, batch_size, progress)
    if name not in DIGIT_DATASETS:
        raise ValueError(
            f"The domain classifier knows digits ({', '.join(DIGIT_DATASETS)}), not {name!r}; use "
            "extractor='inception' (with local InceptionV3 weights) for other images."
        )
    if classifier is None:
        classifier = domain_classifier("digits" if name == "digits" else "mnist")
    elif not isinstance(classifier, DomainClassifier):
        raise TypeError(f"`classifier` must be a DomainClassifier or None; received {type(classifier).__name__}.")
    return _StackedClassifier(classifier) if name == "stacked_mnist" else classifier


# ---------------------------------------------------------------------------------------------------------- metrics
def applicable_metrics(dataset, info=None, extractor="auto"):
    """The metrics `evaluate` can compute for a dataset (and extractor), in `METRICS` order.

    Points (``ring2d``, ``grid2d``): fid, kid, pr on the raw points and coverage (`mode_coverage`). Digit images
    with the classifier: all five. Other images, or the InceptionV3 extractor: fid, kid, pr (InceptionV3 here has
    no classification head, and other datasets have no known modes).
    """
    from keras_gen import data

    info = info or data.dataset_info(dataset)
    if info["kind"] == "points":
        return ("fid", "kid", "pr", "coverage") if dataset in _MIXTURES else ("fid", "kid", "pr")
    if dataset in DIGIT_DATASETS and extractor in ("auto", "classifier"):
        return METRICS
    return ("fid", "kid", "pr")


def _check_metrics(metrics, applicable, dataset, extractor):
    if metrics is None:
        return list(applicable)
    if isinstance(metrics, str):
        metrics = [m.strip() for m in metrics.split(",") if m.strip()]
    metrics = [str(m).lower() for m in metrics]
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"Unknown metric(s) {unknown}. Valid metrics: {', '.join(METRICS)}.")
    if not metrics:
        raise ValueError(f"No metric requested. Valid metrics: {', '.join(METRICS)}.")
    bad = [m for m in metrics if m not in applicable]
    if bad:
        reasons = {
            "is": "it needs class probabilities (the domain classifier of digit datasets)",
            "coverage": "it needs known modes (ring2d/grid2d mixtures, or digit classes from the domain classifier)",
        }
        why = "; ".join(f"{m}: {reasons.get(m, 'not defined for this data')}" for m in bad)
        raise ValueError(
            f"Metric(s) {bad} do not apply to dataset {dataset!r} with extractor {extractor!r} ({why}). "
            f"Applicable here: {', '.join(applicable)}."
        )
    return [m for m in METRICS if m in metrics]  # canonical order, no duplicates


def _check_int(name, value, minimum):
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}; received {name}={value!r}.")
    return int(value)


def _json_safe(value):
    """NaN / inf -> None (strict JSON), recursively; NumPy scalars -> Python numbers."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _class_histogram(predicted, num_classes):
    counts = np.bincount(predicted, minlength=num_classes)  # (K,)
    return dict(
        modes=int(np.count_nonzero(counts)),
        num_modes=int(num_classes),
        kl=_kl_to_uniform(counts),
        counts=[int(c) for c in counts],
    )


def evaluate(
    source,
    metrics=None,
    *,
    n=None,
    extractor="auto",
    seed=0,
    batch_size=500,
    progress=True,
    dataset=None,
    data_dir=None,
    real=None,
    classifier=None,
    inception_weights=None,
    kid_subsets=100,
    pr_k=3,
    is_splits=10,
):
    """Draws ``n`` samples from ``source`` and computes the requested metrics against the dataset's test split.

    Args:
        source: a sampler with ``sample(n, seed=...)`` (e.g. from ``keras_gen.export.load``; preferred when an
            object has both, since an export's ``generate`` takes latents), a keras-gen model with
            ``generate(n, seed=...)`` (e.g. from `keras_gen.runs.load_run`), or a path that `load_source`
            understands (run folder, ``.keras`` file, export).
        metrics: names from `METRICS` (a list or ``"fid,kid"``); ``None`` means every metric that applies (see
            `applicable_metrics`). A metric that does not apply raises a ValueError saying why.
        n: samples to draw; default 2,500 for 2-D mixtures (the VEEGAN/PacGAN protocol), 26,000 for stacked MNIST,
            5,000 for other images.
        extractor: ``"auto"``, ``"classifier"``, ``"inception"`` or ``"identity"`` (points).
        seed: sampling seed (a non-negative integer below 2**32); batch i is drawn with ``seed + i * 2**32``, so
            results depend on ``batch_size`` too (both are recorded).
        batch_size: samples per generator call.
        progress: show a tqdm bar over the generation batches.
        dataset: the dataset the samples imitate; read from the run folder / artifact when omitted.
        data_dir: TFDS data directory for TFDS datasets.
        real: the comparison data as an array, instead of the dataset's test split.
        classifier: a `DomainClassifier` to use instead of the cached default one.
        inception_weights: weights file for the InceptionV3 extractor.
        kid_subsets, pr_k, is_splits: `kernel_inception_distance` subsets (of size min(1000, n, real)),
            precision/recall neighbourhood k, Inception Score splits (reduced to n when n is smaller).

    Returns:
        A JSON-able dict: ``source``, ``dataset``, ``num_samples``, ``num_real``, ``real_split``, ``seed``,
        ``batch_size``, ``extractor`` (``name``, ``path``, ``accuracy``, ...), ``seconds``, ``environment``
        (versions, machine and keras-gen revision: `keras_gen.provenance.environment`) and ``metrics``:
        ``{name: {...values..., "extractor": name, "num_samples": n, "num_real": m}}`` with
        fid ``value``; kid ``mean``/``std``; is ``mean``/``std`` (and ``real_mean``, the IS of the real data);
        pr ``precision``/``recall``; coverage (mixtures) ``modes``/``num_modes``/``high_quality``/``reverse_kl``/
        ``counts`` or (digits) ``modes``/``num_modes``/``kl``/``counts`` of the predicted classes (triples for
        stacked MNIST). Undefined values (a KL when no sample is high quality) are None, so the dict is strict JSON.

    Example:

    >>> model = keras_gen.load_run("runs/ring2d")
    >>> evaluate(model, dataset="ring2d")["metrics"]["coverage"]["modes"]
    8
    """
    start_time = time.perf_counter()
    description = {"type": "object", "name": _sampler_name(source)}
    if isinstance(source, (str, os.PathLike)):
        source, description = load_source(source)
    if not (hasattr(source, "generate") or hasattr(source, "sample")):
        raise TypeError(
            "`source` must be a path, a keras-gen model with `generate(n, seed=...)` or a sampler with "
            f"`sample(n, seed=...)`; received {type(source).__name__}."
        )
    if extractor not in EXTRACTORS:
        raise ValueError(f"Unknown extractor {extractor!r}. Valid extractors: {', '.join(EXTRACTORS)}.")
    seed = _check_int("seed", seed, 0)
    if seed >= 2**32:
        raise ValueError(f"`seed` must be below 2**32; received seed={seed}.")
    batch_size = _check_int("batch_size", batch_size, 1)
    name, info = _resolve_dataset(dataset, description, source, data_dir)
    applicable = applicable_metrics(name, info, extractor)
    metric_names = _check_metrics(metrics, applicable, name, extractor)
    kind = "points" if info["kind"] == "points" else ("stacked_mnist" if name == "stacked_mnist" else "image")
    n = _DEFAULT_N[kind] if n is None else _check_int("n", n, 2)

    if real is None:
        real, real_split = _real_data(name, info, n, data_dir or description.get("data_dir"))
    else:
        real, real_split = np.asarray(real, dtype=np.float32), "given"
    shape = tuple(info["shape"])
    if tuple(real.shape[1:]) != shape:
        raise ValueError(f"The real data has examples of shape {tuple(real.shape[1:])}; dataset {name!r} has {shape}.")
    fake = generate_samples(source, n, seed, batch_size, progress)  # (n, *shape)
    if tuple(fake.shape[1:]) != shape:
        raise ValueError(
            f"The source makes samples of shape {tuple(fake.shape[1:])}, but dataset {name!r} has {shape}: "
            "evaluate it against its own dataset (dataset=...)."
        )

    feature_extractor = _make_extractor(extractor, name, info, classifier, inception_weights, batch_size, progress)
    provenance = feature_extractor.describe()
    common = {"extractor": provenance["name"], "num_samples": int(n), "num_real": int(len(real))}
    results = {}
    if {"fid", "kid", "pr"} & set(metric_names):
        real_features = feature_extractor.features(real)  # (m, F)
        fake_features = feature_extractor.features(fake)  # (n, F)
        if "fid" in metric_names:
            results["fid"] = {"value": fid_from_features(real_features, fake_features)}
        if "kid" in metric_names:
            subset = min(1000, len(real_features), len(fake_features))
            mean, std = kernel_inception_distance(
                real_features, fake_features, num_subsets=kid_subsets, subset_size=subset, seed=seed
            )
            results["kid"] = {"mean": mean, "std": std, "subset_size": subset}
        if "pr" in metric_names:
            results["pr"] = {**precision_recall(real_features, fake_features, k=pr_k), "k": pr_k}
    if "is" in metric_names:
        fake_probabilities = feature_extractor.probabilities(fake)  # (n, K)
        mean, std = inception_score(fake_probabilities, splits=min(is_splits, n))
        real_mean, _ = inception_score(feature_extractor.probabilities(real), splits=min(is_splits, len(real)))
        results["is"] = {"mean": mean, "std": std, "splits": min(is_splits, n), "real_mean": real_mean}
    if "coverage" in metric_names:
        if kind == "points":
            from keras_gen.data import mixture_modes

            centers, sigma = mixture_modes(name)
            coverage = mode_coverage(fake, centers, sigma)
            results["coverage"] = {**coverage, "sigma": sigma, "threshold": 3.0}
        elif kind == "stacked_mnist":
            coverage = stacked_mnist_modes(feature_extractor.predict_digits(fake))
            results["coverage"] = {**coverage, "num_modes": 1000}
        else:
            results["coverage"] = _class_histogram(feature_extractor.predict(fake), feature_extractor.num_classes)
    # NaN (e.g. the reverse KL when no sample is high quality) is written as null.
    metrics_out = {m: _json_safe({**results[m], **common}) for m in metric_names}
    description = {k: v for k, v in description.items() if k not in ("dataset_info",)}
    return {
        "source": description,
        "dataset": name,
        "num_samples": int(n),
        "num_real": int(len(real)),
        "real_split": real_split,
        "seed": seed,
        "batch_size": batch_size,
        "extractor": provenance,
        "metrics": metrics_out,
        "seconds": round(time.perf_counter() - start_time, 2),
        "environment": environment(),
    }


# ---------------------------------------------------------------------------------------------------------- table
def _number(value, digits=4):
    if value is None:
        return "n/a"
    if isinstance(value, float) and not np.isfinite(value):
        return "nan"
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def format_table(results):
    """A Markdown table of `evaluate` results: one row per reported number, with its spread and provenance.

    Args:
        results: the dict `evaluate` returns.

    Returns:
        The table as a string (header, separator, rows), followed by a line naming the source and extractor.
    """
    if not isinstance(results, dict) or "metrics" not in results:
        raise TypeError("`results` must be the dict returned by `evaluate` (with a 'metrics' entry).")
    rows = []
    for name, entry in results["metrics"].items():
        samples = f"{entry.get('num_samples', '')} / {entry.get('num_real', '')}"
        if name == "fid":
            rows.append(("FID", _number(entry["value"]), "", samples))
        elif name == "kid":
            rows.append(("KID", _number(entry["mean"]), _number(entry["std"]), samples))
        elif name == "is":
            rows.append(("Inception Score", _number(entry["mean"]), _number(entry["std"]), samples))
            rows.append(("Inception Score (real data)", _number(entry["real_mean"]), "", f"/ {entry['num_real']}"))
        elif name == "pr":
            rows.append(("precision", _number(entry["precision"]), "", samples))
            rows.append(("recall", _number(entry["recall"]), "", samples))
        elif name == "coverage":
            rows.append(("modes covered", f"{entry['modes']} / {entry['num_modes']}", "", samples))
            if "high_quality" in entry:
                rows.append(("high-quality samples", f"{100 * entry['high_quality']:.1f} %", "", samples))
                rows.append(("reverse KL to uniform", _number(entry["reverse_kl"]), "", samples))
            else:
                rows.append(("KL to uniform", _number(entry["kl"]), "", samples))
    lines = ["| metric | value | ± | samples (generated / real) |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    extractor = results.get("extractor", {})
    accuracy = extractor.get("accuracy")
    where = results.get("source", {}).get("path") or results.get("source", {}).get("name", "")
    lines.append("")
    lines.append(
        f"{where}, dataset {results.get('dataset')} ({results.get('real_split')} split), extractor "
        f"{extractor.get('name')}"
        + (f" (held-out accuracy {accuracy:.4f})" if accuracy is not None else "")
        + (f", {extractor['path']}" if extractor.get("path") else "")
        + f", seed {results.get('seed')}."
    )
    return "\n".join(lines)
