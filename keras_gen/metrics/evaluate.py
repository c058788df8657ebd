"""`evaluate`: every metric that applies to a model or a sampler, against its dataset's held-out data.

Pipeline (torch-fidelity style): draw ``n`` samples in batches (a tqdm bar) -> load the real comparison data
(the dataset's test split) -> features / class probabilities from one extractor -> the metrics of this package:

- ``fid``: `fid_from_features` on extractor features (2-D mixtures: on the raw points);
- ``kid``: `kernel_inception_distance`, mean and std over subsets (mixtures: raw points);
- ``is``: `inception_score` of the classifier's probabilities (digit data only), its chunks cut from a permutation
  of each set drawn with ``seed`` (a test split sorted by class would otherwise put one class in each chunk);
- ``pr``: `precision_recall`, k = 3 (mixtures: raw points);
- ``coverage``: ring2d / grid2d: `mode_coverage` over the true modes (VEEGAN / PacGAN: modes, high-quality
  fraction, reverse KL); mnist / digits: classes the classifier predicts and the KL of their histogram to
  uniform; stacked MNIST: `stacked_mnist_modes` of the predicted digit triples;
- ``quality``: digit data only, `keras_gen.metrics.quality`: the share of generated digits the classifier reads
  with confidence >= 0.9 (and of the real digits), the class histogram's KL to uniform (stacked MNIST: of the
  channels' digits) and the ``fid`` above (computed once: the features and class probabilities of both sets are
  shared by every metric that needs them).

Extractors: ``"classifier"`` is the package's `domain_classifier` (digit data: ``mnist``, ``digits``, and
``stacked_mnist`` channel by channel: features concatenated, probabilities over the 1,000 digit triples as the
product of the three channels'); ``"inception"`` is `InceptionFeatureExtractor` (local weights only; no class
probabilities, so no IS or coverage); ``"auto"`` takes the classifier for digit data, InceptionV3 for other
images and the identity for points. Every metric's entry records the extractor and the sample counts.

The real data is the dataset's test split (its training split when it has none), whole for the builtin datasets;
of a larger TFDS split or image folder, ``n`` examples drawn at random with ``seed`` (not the first ``n``: an image
folder lists its images class by class). No metric depends on the order of either set.

`evaluate` takes objects: a keras-gen model (it must offer ``sample``, `keras_gen.model_kind`) or a sampler from
``keras_gen.export.load``. Loading them from paths is the run side's: `keras_gen.runs.evaluate_run` (what
``keras-gen evaluate`` does) reads a run folder's dataset and its folder options.

Example:

>>> from keras_gen.metrics import evaluate, format_table
>>> results = evaluate(keras_gen.load_run("runs/ring2d"), dataset="ring2d", n=2500)
>>> print(format_table(results))
"""

import os
import time

import numpy as np

from keras_gen import checks, model_kind
from keras_gen.metrics.coverage import _kl_to_uniform, mode_coverage, stacked_mnist_modes
from keras_gen.metrics.fid import fid_from_features
from keras_gen.metrics.inception_score import inception_score
from keras_gen.metrics.kid import kernel_inception_distance
from keras_gen.metrics.precision_recall import precision_recall
from keras_gen.metrics.quality import quality_score
from keras_gen.provenance import environment

__all__ = ["METRICS", "EXTRACTORS", "evaluate", "applicable_metrics", "generate_samples", "format_table"]

METRICS = ("fid", "kid", "is", "pr", "coverage", "quality")
"""Metric names `evaluate` knows, in the order results are reported."""

EXTRACTORS = ("auto", "classifier", "inception", "identity")

DIGIT_DATASETS = ("mnist", "digits", "stacked_mnist")
_DEFAULT_N = {"points": 2_500, "stacked_mnist": 26_000, "image": 5_000}


# ---------------------------------------------------------------------------------------------------------- sources
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
            f"from keras_gen.export.load); received {type(source).__name__}."
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

    n = checks.integer(n, "n", 1)
    seed = checks.integer(seed, "seed", 0)
    batch_size = checks.integer(batch_size, "batch_size", 1)

    starts = range(0, n, batch_size)
    batches = []
    for i, start in enumerate(tqdm(starts, desc="generating", unit="batch", disable=not progress)):
        batches.append(_draw(source, min(batch_size, n - start), seed + i * 2**32))
    return np.concatenate(batches, axis=0)


# ---------------------------------------------------------------------------------------------------------- data
def _resolve_dataset(dataset, description, source, data_dir):
    from keras_gen import data

    origin = (getattr(source, "manifest", None) or {}).get("source") or {}  # an export records its run's dataset
    if not description.get("dataset") and origin.get("dataset"):
        description = {**description, "dataset": origin["dataset"], "dataset_info": origin.get("dataset_info")}
    name = dataset or description.get("dataset") or getattr(source, "dataset", None)
    if not name:
        raise ValueError(
            "Which dataset do these samples imitate? Pass dataset=NAME (CLI: --dataset): the source is neither a run "
            "folder nor an artifact that records its dataset."
        )
    info = description.get("dataset_info") if not dataset or dataset == description.get("dataset") else None
    if info is None:
        info = data.dataset_info(name, data_dir=data_dir or description.get("data_dir"),
                                 **description.get("data_options", {}))
    return name, info


def _real_data(name, info, n, data_dir, seed, data_options=None):
    """The comparison data ``(x, split, split size)``: a builtin dataset's whole test split; of another dataset's
    test split (its training split when it has none), all of it or, when it holds more than ``n`` examples, ``n``
    of them drawn at random with ``seed`` (in the split's order), streamed so that only those are kept."""
    from keras_gen import data

    if name in data.BUILTIN_DATASETS:
        split = "test"
        x, _ = data.load_arrays(name, split)
        return x, split, len(x)
    splits = info.get("splits") or {}
    split = "test" if "test" in splits else "train"
    ds = data.load_dataset(
        name, split=split, batch_size=256, shuffle=False, with_labels=False, drop_remainder=False, data_dir=data_dir,
        **(data_options or {}),
    )
    size = splits.get(split)
    if size is None or size <= n:  # keep everything (the size is counted while reading)
        x = np.concatenate([np.asarray(batch) for batch in ds], axis=0)  # (size, *shape)
        if len(x) <= n:
            return x, split, len(x)
        size, ds = len(x), [x]
    keep = np.sort(np.random.RandomState(seed).choice(size, n, replace=False))  # (n,) indices into the split
    rows, start = [], 0
    for batch in ds:
        batch = np.asarray(batch)  # (b, *shape)
        lo, hi = np.searchsorted(keep, [start, start + len(batch)])
        rows.append(batch[keep[lo:hi] - start])
        start += len(batch)
        if hi == n:
            break
    return np.concatenate(rows, axis=0), split, size  # (n, *shape)


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
    with the classifier: all six. Other images, or the InceptionV3 extractor: fid, kid, pr (InceptionV3 here has
    no classification head, and other datasets have no known modes or digits).
    """
    from keras_gen import data

    info = info or data.dataset_info(dataset)
    if info["kind"] == "points":
        return ("fid", "kid", "pr", "coverage") if data.is_mixture(dataset) else ("fid", "kid", "pr")
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
            "quality": f"it needs the domain classifier of digit data ({', '.join(DIGIT_DATASETS)})",
        }
        why = "; ".join(f"{m}: {reasons.get(m, 'not defined for this data')}" for m in bad)
        raise ValueError(
            f"Metric(s) {bad} do not apply to dataset {dataset!r} with extractor {extractor!r} ({why}). "
            f"Applicable here: {', '.join(applicable)}."
        )
    return [m for m in METRICS if m in metrics]  # canonical order, no duplicates




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
    source_info=None,
):
    """Draws ``n`` samples from ``source`` and computes the requested metrics against the dataset's test split.

    Args:
        source: a sampler with ``sample(n, seed=...)`` (e.g. from ``keras_gen.export.load``; preferred when an
            object has both, since an export's ``generate`` takes latents) or a keras-gen model with
            ``generate(n, seed=...)`` (e.g. from `keras_gen.runs.load_run`) that offers ``sample``. For a path, use
            `keras_gen.runs.evaluate_run`.
        metrics: names from `METRICS` (a list or ``"fid,kid"``); ``None`` means every metric that applies (see
            `applicable_metrics`). A metric that does not apply raises a ValueError saying why.
        n: samples to draw; default 2,500 for 2-D mixtures (the VEEGAN/PacGAN protocol), 26,000 for stacked MNIST,
            5,000 for other images.
        extractor: ``"auto"``, ``"classifier"``, ``"inception"`` or ``"identity"`` (points).
        seed: sampling seed (a non-negative integer below 2**32); batch i is drawn with ``seed + i * 2**32``, so
            results depend on ``batch_size`` too (both are recorded). It also seeds the permutation the Inception
            Score's chunks are cut from, the KID subsets, and the subset of a real split larger than ``n``.
        batch_size: samples per generator call.
        progress: show a tqdm bar over the generation batches.
        dataset: the dataset the samples imitate; default: ``source_info``'s, or the one an exported sampler's
            manifest records.
        data_dir: TFDS data directory for TFDS datasets.
        real: the comparison data as an array, instead of the dataset's test split.
        classifier: a `DomainClassifier` to use instead of the cached default one.
        inception_weights: weights file for the InceptionV3 extractor.
        kid_subsets, pr_k, is_splits: `kernel_inception_distance` subsets (of size min(1000, n, real)),
            precision/recall neighbourhood k, Inception Score splits (reduced to n when n is smaller).
        source_info: what the source is, as `keras_gen.runs.load_source` describes it (``path``, ``type``,
            ``dataset``, ``dataset_info``, ``data_dir``, ``data_options``, ...): recorded as the report's ``source``,
            and the dataset and its folder options are taken from it.

    Returns:
        A JSON-able dict: ``source``, ``dataset``, ``num_samples``, ``num_real``, ``real_split``,
        ``real_split_size`` (examples in that split; more than ``num_real`` when a seeded subset was compared,
        None for given arrays), ``seed``, ``batch_size``, ``extractor`` (``name``, ``path``, ``accuracy``, ...),
        ``seconds``, ``environment``
        (versions, machine and keras-gen revision: `keras_gen.provenance.environment`) and ``metrics``:
        ``{name: {...values..., "extractor": name, "num_samples": n, "num_real": m}}`` with
        fid ``value``; kid ``mean``/``std``; is ``mean``/``std``, ``splits``, ``permutation_seed`` (the seed of the
        permutation the chunks are cut from) and ``real_mean``/``real_std``, the IS of the real data in
        ``real_splits`` chunks of the samples' chunk size (IS grows with it);
        pr ``precision``/``recall``; coverage (mixtures) ``modes``/``num_modes``/``high_quality``/``reverse_kl``/
        ``counts`` or (digits) ``modes``/``num_modes``/``kl``/``counts`` of the predicted classes (triples for
        stacked MNIST); quality ``confident``/``real_confident``/``class_kl``/``fid``/``threshold``/``counts``
        (`keras_gen.metrics.quality_score`; stacked MNIST: every channel's digit).
        Undefined values (a KL when no sample is high quality) are None, so the dict is strict JSON.

    Example:

    >>> model = keras_gen.load_run("runs/ring2d")
    >>> evaluate(model, dataset="ring2d")["metrics"]["coverage"]["modes"]
    8
    """
    start_time = time.perf_counter()
    if isinstance(source, (str, os.PathLike)):
        raise TypeError(
            f"evaluate() takes a model or a sampler, not the path {os.fspath(source)!r}: use "
            "keras_gen.runs.evaluate_run(path) for a run folder or .keras file, or "
            "evaluate(keras_gen.export.load(path)) for an export."
        )
    if not (hasattr(source, "generate") or hasattr(source, "sample")):
        raise TypeError(
            "`source` must be a keras-gen model with `generate(n, seed=...)` or a sampler with "
            f"`sample(n, seed=...)`; received {type(source).__name__}."
        )
    model_kind.require(source, "sample", "Evaluating samples")
    description = dict(source_info or {"type": "object", "name": _sampler_name(source)})
    if extractor not in EXTRACTORS:
        raise ValueError(f"Unknown extractor {extractor!r}. Valid extractors: {', '.join(EXTRACTORS)}.")
    seed = checks.integer(seed, "seed", 0)
    if seed >= 2**32:
        raise ValueError(f"`seed` must be below 2**32; received seed={seed}.")
    batch_size = checks.integer(batch_size, "batch_size", 1)
    name, info = _resolve_dataset(dataset, description, source, data_dir)
    applicable = applicable_metrics(name, info, extractor)
    metric_names = _check_metrics(metrics, applicable, name, extractor)
    kind = "points" if info["kind"] == "points" else ("stacked_mnist" if name == "stacked_mnist" else "image")
    n = _DEFAULT_N[kind] if n is None else checks.integer(n, "n", 2)

    if real is None:
        real, real_split, real_split_size = _real_data(
            name, info, n, data_dir or description.get("data_dir"), seed, description.get("data_options")
        )
    else:
        real, real_split, real_split_size = np.asarray(real, dtype=np.float32), "given", None
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
    computed = {}

    def once(key, compute):
        """Each set's features and class probabilities are computed once, for every metric that needs them."""
        if key not in computed:
            computed[key] = compute()
        return computed[key]

    def features(which):
        return once(("features", which), lambda: feature_extractor.features(fake if which == "fake" else real))

    def channels(which):  # the class probabilities of each image's digits: [(N, 10)], one per channel
        images = fake if which == "fake" else real
        return once(("channels", which), lambda: feature_extractor.channel_probabilities(images)
                    if kind == "stacked_mnist" else [feature_extractor.probabilities(images)])

    def probabilities(which):  # (N, K): of the image's class (stacked MNIST: the 1,000 digit triples)
        if kind != "stacked_mnist":
            return channels(which)[0]
        p1, p2, p3 = channels(which)
        return np.einsum("ni,nj,nk->nijk", p1, p2, p3).reshape(len(p1), 1000)  # triple 100 i + 10 j + k

    if {"fid", "kid", "pr"} & set(metric_names):
        real_features = features("real")  # (m, F)
        fake_features = features("fake")  # (n, F)
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
        # Chunks of a seeded permutation of each set: a class-sorted split must not give one class per chunk.
        # The real data is cut into chunks of the generated chunks' size (IS grows with the chunk size), as many
        # as it fills: 500 test digits against 5,000 samples in 10 chunks give one chunk of 500.
        splits = min(is_splits, n)
        real_splits = max(1, int(len(real) // (n / splits)))
        fake_probabilities = probabilities("fake")  # (n, K)
        mean, std = inception_score(fake_probabilities, splits=splits, seed=seed)
        real_probabilities = probabilities("real")  # (m, K)
        real_mean, real_std = inception_score(real_probabilities, splits=real_splits, seed=seed)
        results["is"] = {"mean": mean, "std": std, "splits": splits, "permutation_seed": seed,
                         "real_mean": real_mean, "real_std": real_std, "real_splits": real_splits}
    if "coverage" in metric_names:
        if kind == "points":
            from keras_gen.data import mixture_modes

            centers, sigma = mixture_modes(name)
            coverage = mode_coverage(fake, centers, sigma)
            results["coverage"] = {**coverage, "sigma": sigma, "threshold": 3.0}
        elif kind == "stacked_mnist":
            coverage = stacked_mnist_modes(np.stack([np.argmax(p, axis=1) for p in channels("fake")], axis=1))
            results["coverage"] = {**coverage, "num_modes": 1000}
        else:
            results["coverage"] = _class_histogram(np.argmax(channels("fake")[0], axis=1),
                                                   feature_extractor.num_classes)
    if "quality" in metric_names:
        fid = results["fid"]["value"] if "fid" in results else fid_from_features(features("real"), features("fake"))
        results["quality"] = quality_score(np.concatenate(channels("fake"), axis=0),
                                           real_probabilities=np.concatenate(channels("real"), axis=0), fid=fid)
    # NaN (e.g. the reverse KL when no sample is high quality) is written as null.
    metrics_out = {m: _json_safe({**results[m], **common}) for m in metric_names}
    description = {k: v for k, v in description.items() if k not in ("dataset_info",)}
    return {
        "source": description,
        "dataset": name,
        "num_samples": int(n),
        "num_real": int(len(real)),
        "real_split": real_split,
        "real_split_size": None if real_split_size is None else int(real_split_size),
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
    rows, notes = [], []
    for name, entry in results["metrics"].items():
        samples = f"{entry.get('num_samples', '')} / {entry.get('num_real', '')}"
        if name == "fid":
            rows.append(("FID", _number(entry["value"]), "", samples))
        elif name == "kid":
            rows.append(("KID", _number(entry["mean"]), _number(entry["std"]), samples))
        elif name == "is":
            rows.append(("Inception Score", _number(entry["mean"]), _number(entry["std"]), samples))
            rows.append(("Inception Score (real data)", _number(entry["real_mean"]),
                         _number(entry.get("real_std")) if "real_std" in entry else "", f"/ {entry['num_real']}"))
            if entry.get("permutation_seed") is not None:
                real_splits = entry.get("real_splits", entry["splits"])
                notes.append(
                    f"Inception Score: {entry['splits']} chunks of the samples and {real_splits} of the real data, "
                    f"of {entry['num_samples'] // entry['splits']} each, in a random order drawn with seed "
                    f"{entry['permutation_seed']} (not in the data's order: a split sorted by class would put one "
                    "class in each chunk); ± is the spread over the chunks."
                )
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
        elif name == "quality":
            percent = lambda share: "n/a" if share is None else f"{100 * share:.1f} %"  # noqa: E731
            threshold = entry.get("threshold", 0.9)
            rows.append((f"confident digits (p ≥ {threshold:g})", percent(entry["confident"]), "", samples))
            rows.append(("confident digits, real data", percent(entry["real_confident"]), "",
                         f"/ {entry['num_real']}"))
            rows.append(("class KL to uniform", _number(entry["class_kl"]), "", samples))
            rows.append(("FID (classifier features)", _number(entry["fid"]), "", samples))
    lines = ["| metric | value | ± | samples (generated / real) |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    extractor = results.get("extractor", {})
    accuracy = extractor.get("accuracy")
    where = results.get("source", {}).get("path") or results.get("source", {}).get("name", "")
    split = f"{results.get('real_split')} split"
    split_size, num_real = results.get("real_split_size"), results.get("num_real")
    if split_size is not None and num_real is not None and split_size > num_real:
        split += f": {num_real} of the {split_size} examples, drawn with seed {results.get('seed')}"
    lines.append("")
    lines.append(
        f"{where}, dataset {results.get('dataset')} ({split}), extractor "
        f"{extractor.get('name')}"
        + (f" (held-out accuracy {accuracy:.4f})" if accuracy is not None else "")
        + (f", {extractor['path']}" if extractor.get("path") else "")
        + f", seed {results.get('seed')}."
    )
    lines += notes
    return "\n".join(lines)
