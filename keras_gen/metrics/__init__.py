"""Evaluation metrics for generative models, as stages: features -> statistics -> distance (torch-fidelity style).

    extractor(images) -> features          identity_extractor, InceptionFeatureExtractor
    features -> statistics -> distance     feature_statistics + frechet_distance (FID), kernel_inception_distance,
                                           precision_recall
    class probabilities -> score           inception_score
    samples -> mode statistics             mode_coverage (Gaussian mixtures), stacked_mnist_modes
    latent-variable model, data -> nats    elbo, iw_nll (importance-weighted bound), bits_per_dim
    digit images -> features / classes     DomainClassifier (domain_classifier: a small CNN, shipped for mnist and
                                           digits, else trained once and cached)
    digit samples -> quality               DigitQuality: confident-digit share (real digits' beside it), class
                                           histogram KL to uniform, FID (confident_share, class_kl, quality_score,
                                           format_quality: the caption under a run's sample grid)
    model or sampler -> all of the above   evaluate (+ format_table for a Markdown table; generate_samples for
                                           the samples it scores; a run folder: keras_gen.runs.evaluate_run)

Everything here is NumPy / SciPy; TensorFlow and Keras are imported only when an `InceptionFeatureExtractor` is
built or a likelihood (`elbo`, `iw_nll`) is computed, so `import keras_gen.metrics` stays cheap.

Example:

>>> from keras_gen import metrics
>>> extractor = metrics.InceptionFeatureExtractor(weights="inception_v3_notop.weights.h5")
>>> fid = metrics.fid_from_features(extractor(real_images), extractor(fake_images))
"""

from keras_gen.metrics.classifier import DomainClassifier, domain_classifier, train_domain_classifier
from keras_gen.metrics.coverage import mode_coverage, stacked_mnist_modes
from keras_gen.metrics.evaluate import (
    METRICS,
    applicable_metrics,
    evaluate,
    format_table,
    generate_samples,
)
from keras_gen.metrics.extractors import INCEPTION_V3_NOTOP_WEIGHTS, InceptionFeatureExtractor, identity_extractor
from keras_gen.metrics.fid import feature_statistics, fid_from_features, frechet_distance
from keras_gen.metrics.inception_score import inception_score
from keras_gen.metrics.kid import kernel_inception_distance, polynomial_kernel, unbiased_mmd2
from keras_gen.metrics.likelihood import BINARIZATIONS, binarize_images, bits_per_dim, elbo, iw_nll
from keras_gen.metrics.precision_recall import knn_radii, precision_recall
from keras_gen.metrics.quality import (
    CONFIDENCE,
    QUALITY_DATASETS,
    DigitQuality,
    class_kl,
    confident_share,
    digit_probabilities,
    format_quality,
    quality_score,
)

__all__ = [
    "identity_extractor",
    "InceptionFeatureExtractor",
    "INCEPTION_V3_NOTOP_WEIGHTS",
    "feature_statistics",
    "frechet_distance",
    "fid_from_features",
    "kernel_inception_distance",
    "polynomial_kernel",
    "unbiased_mmd2",
    "inception_score",
    "precision_recall",
    "knn_radii",
    "mode_coverage",
    "stacked_mnist_modes",
    "DomainClassifier",
    "domain_classifier",
    "train_domain_classifier",
    "METRICS",
    "evaluate",
    "applicable_metrics",
    "format_table",
    "generate_samples",
    "elbo",
    "iw_nll",
    "bits_per_dim",
    "binarize_images",
    "BINARIZATIONS",
    "DigitQuality",
    "CONFIDENCE",
    "QUALITY_DATASETS",
    "confident_share",
    "class_kl",
    "digit_probabilities",
    "quality_score",
    "format_quality",
]
