"""Likelihood benchmark on the held-out embedded MNIST digits: ELBO, importance-weighted NLL and bits/dim.

    python benchmarks/likelihood.py                        # every row: 20 epochs, k = 5,000
    python benchmarks/likelihood.py --epochs 5 --k 1000 --models vae,cvae

Cost on 2 shared CPU cores: training is quick (about 1 s per epoch fully connected, 2-3 s convolutional); the
IW bound dominates, about 20 s (fully connected) and 50 s (convolutional) per 1,000 samples over the 500 digits,
so the defaults take about 13 minutes; ``--k 1000`` about 4.

Protocol (printed with the table and stored in the JSON):

- data: the package's embedded MNIST ("mnist": 4,500 training digits, the 500 held-out test digits), 28x28;
- binarization (``--binarize``, default ``stochastic``): ``stochastic`` trains on digits re-binarized at every
  epoch (pixel on with probability = intensity; "dynamically binarized MNIST") and evaluates on the test digits
  binarized once with ``--seed``; ``threshold`` uses intensity > 0.5 for both. Published MNIST numbers differ by
  about 2 nats between the two, so compare only rows with the same protocol;
- ELBO: one reparameterized sample per image, the closed-form KL, beta = 1 whatever the training beta;
- IW-NLL: -L_k of Burda et al. (2016) with ``--k`` samples (default 5,000), an upper bound on -log p(x);
- bits/dim: IW-NLL / (784 ln 2).

Rows come from `ROWS`, a list of ``(name, function)`` entries; ``function(args)`` trains and evaluates one model
and returns a dict with the keys of `COLUMNS` (``None`` where a value does not apply, e.g. no ELBO for an exact
likelihood model; ``nll_kind`` says what the NLL is: ``"IW k=5000"``, ``"exact"``). Other model families append
their own entries and may reuse `mnist_arrays`, `binarized_dataset` and `evaluate_vae`.

Results go to ``benchmarks/results/likelihood.json`` (``--out``) and a Markdown table to stdout.
"""

import argparse
import functools
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

COLUMNS = (
    "model",
    "preset",
    "epochs",
    "elbo",
    "nll",
    "nll_kind",
    "bits_per_dim",
    "binarization",
    "train_seconds",
    "eval_seconds",
    "note",
)
HELD_OUT = 500  # the embedded MNIST test split


def mnist_arrays(split, args):
    """The embedded MNIST ``split`` as ``(images in [-1, 1], labels)``; the test split is binarized once with
    ``args.binarize`` and ``args.seed`` (the training data is binarized per batch by `binarized_dataset`)."""
    from keras_gen import data
    from keras_gen.metrics import binarize_images

    x, y = data.load_arrays("mnist", split)
    if split == "test":
        x = binarize_images(x, args.binarize, seed=args.seed)
    return x, y


def binarized_dataset(x, y, batch_size, args):
    """A shuffled ``tf.data`` of ``(binary images in {-1, 1}, labels)``: re-binarized at every epoch for
    ``stochastic``, thresholded for ``threshold``."""
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=args.seed)
    dataset = dataset.batch(batch_size, drop_remainder=True)
    # One fresh seed per batch and per epoch (Dataset.random draws new numbers at each iteration), so the
    # stochastic binarization is redrawn every epoch yet reproducible from --seed.
    seeds = tf.data.Dataset.random(seed=args.seed, rerandomize_each_iteration=True)
    dataset = tf.data.Dataset.zip((dataset, seeds))

    def binarize(batch, seed):
        images, labels = batch
        intensity = (images + 1.0) / 2.0
        if args.binarize == "stochastic":
            on = tf.random.stateless_uniform(tf.shape(images), seed=tf.stack([seed, 0])) < intensity
        else:
            on = intensity > 0.5
        return tf.where(on, 1.0, -1.0), labels

    return dataset.map(binarize, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def evaluate_vae(model, x_test, y_test, args):
    """ELBO, IW-NLL and bits/dim of a VAE on the (already binarized) held-out digits."""
    from keras_gen.metrics import elbo, iw_nll

    labels = y_test if model.num_classes else None
    # The test digits are binarized already: evaluate them as they are (binary stays binary).
    lower = elbo(model, x_test, labels, binarize=None, seed=args.seed)
    bound = iw_nll(model, x_test, labels, k=args.k, binarize=None, seed=args.seed)
    return {
        "elbo": lower["mean_elbo"],
        "nll": bound["mean_nll"],
        "nll_kind": f"IW k={args.k}",
        "bits_per_dim": bound["bits_per_dim"],
    }


def vae_row(preset, label, args):
    """Trains the VAE preset for ``args.epochs`` on the binarized training digits and evaluates it."""
    import keras

    from keras_gen import presets

    keras.utils.set_random_seed(args.seed)
    config = presets.get_config(preset, epochs=args.epochs, seed=args.seed)
    model = presets.build_model(config)
    x, y = mnist_arrays("train", args)
    x_test, y_test = mnist_arrays("test", args)
    start = time.perf_counter()
    model.fit(binarized_dataset(x, y, config.batch_size, args), epochs=args.epochs, verbose=0, shuffle=False)
    train_seconds = time.perf_counter() - start
    start = time.perf_counter()
    row = evaluate_vae(model, x_test, y_test, args)
    notes = []
    if model.beta != 1.0:
        notes.append(f"trained with beta={model.beta:g}; ELBO at beta=1")
    if model.num_classes:
        notes.append("conditional: -log p(x|y), given the true label")
    row.update(
        model=label,
        preset=preset,
        epochs=args.epochs,
        train_seconds=train_seconds,
        eval_seconds=time.perf_counter() - start,
        note="; ".join(notes),
    )
    return row


ROWS = [
    ("vae", functools.partial(vae_row, "vae", "VAE, fully connected")),
    ("conv-vae", functools.partial(vae_row, "conv-vae", "VAE, convolutional")),
    ("beta-vae", functools.partial(vae_row, "beta-vae", "beta-VAE, convolutional")),
    ("cvae", functools.partial(vae_row, "cvae", "conditional VAE, fully connected")),
]
"""``(name, function(args) -> row dict)``; append to add rows (e.g. VQ-VAE + PixelCNN, pixel PixelCNN)."""


# ------------------------------------------------------------------------------ VQ-VAE + PixelCNN, pixel PixelCNN
def vqvae_row(args):
    """The ``vqvae`` preset with a Bernoulli decoder (the data are binary here), trained on the binarized digits
    for ``args.epochs`` with its PixelCNN prior alongside, then the prior alone for ``args.epochs // 2`` more
    epochs on the codes of the frozen autoencoder (`VQVAE.fit_prior`, the paper's second stage).

    The number is a bound, not an exact NLL: with the deterministic encoder, q(z|x) is a point mass at the codes
    k(x), so the ELBO is log p(x | k(x)) + log p(k(x)) (decoder Bernoulli term + the prior's exact log-probability
    of the code map) <= log p(x). Importance sampling cannot tighten it (every sample of q is the same k(x)).
    """
    import keras
    import numpy as np

    from keras_gen import presets

    keras.utils.set_random_seed(args.seed)
    model_args = {**presets.PRESETS["vqvae"]["model"], "likelihood": "bernoulli"}
    config = presets.get_config("vqvae", epochs=args.epochs, seed=args.seed, model=model_args)
    model = presets.build_model(config)
    x, y = mnist_arrays("train", args)
    x_test, _ = mnist_arrays("test", args)
    train = binarized_dataset(x, y, config.batch_size, args)
    prior_epochs = max(1, args.epochs // 2)
    start = time.perf_counter()
    model.fit(train, epochs=args.epochs, verbose=0)
    model.fit_prior(train, epochs=prior_epochs, verbose=0)
    train_seconds = time.perf_counter() - start
    start = time.perf_counter()
    log_px_given_codes, log_p_codes = model.elbo(x_test)
    bound = log_px_given_codes + log_p_codes  # (500,) nats
    nll = float(-bound.mean())
    return {
        "model": "VQ-VAE + PixelCNN prior",
        "preset": "vqvae (likelihood=bernoulli)",
        "epochs": args.epochs,
        "elbo": float(bound.mean()),
        "nll": nll,
        "nll_kind": "-ELBO (point-mass q)",
        "bits_per_dim": nll / (784 * np.log(2.0)),
        "train_seconds": train_seconds,
        "eval_seconds": time.perf_counter() - start,
        "note": (
            f"decoder term {float(log_px_given_codes.mean()):.1f} + prior term {float(log_p_codes.mean()):.1f} nats "
            f"(7x7 codes of {model.num_codes}); prior +{prior_epochs} epochs on frozen codes; a bound, IW = ELBO"
        ),
    }


def pixelcnn_row(args):
    """The ``pixelcnn`` preset trained on the binarized digits for ``args.epochs``; its exact NLL on the held-out
    digits (binary images in {-1, 1}; the model's binarization at 0 leaves them unchanged)."""
    import keras
    import numpy as np

    from keras_gen import presets

    keras.utils.set_random_seed(args.seed)
    config = presets.get_config("pixelcnn", epochs=args.epochs, seed=args.seed)
    model = presets.build_model(config)
    x, y = mnist_arrays("train", args)
    x_test, _ = mnist_arrays("test", args)
    start = time.perf_counter()
    model.fit(binarized_dataset(x, y, config.batch_size, args), epochs=args.epochs, verbose=0)
    train_seconds = time.perf_counter() - start
    start = time.perf_counter()
    nll = float(-model.log_prob(x_test).mean())
    return {
        "model": "PixelCNN (pixels)",
        "preset": "pixelcnn",
        "epochs": args.epochs,
        "elbo": None,
        "nll": nll,
        "nll_kind": "exact",
        "bits_per_dim": nll / (784 * np.log(2.0)),
        "train_seconds": train_seconds,
        "eval_seconds": time.perf_counter() - start,
        "note": "exact -log p(x) by the softmax chain rule",
    }


ROWS += [
    ("vqvae", vqvae_row),
    ("pixelcnn", pixelcnn_row),
]


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=20, help="training epochs per model (default 20)")
    parser.add_argument("--k", type=int, default=5000, help="importance samples of the IW bound (default 5000)")
    parser.add_argument("--binarize", choices=["stochastic", "threshold"], default="stochastic",
                        help="binarization protocol (default stochastic)")
    parser.add_argument("--seed", type=int, default=0, help="seed of training, binarization and sampling")
    parser.add_argument("--models", help=f"comma-separated subset of: {', '.join(name for name, _ in ROWS)}")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                                      "likelihood.json"), help="JSON output path")
    return parser


def _format(value, digits=2):
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def markdown_table(rows):
    header = ["model", "preset", "epochs", "ELBO (nats)", "NLL (nats)", "NLL is", "bits/dim", "train s", "eval s",
              "note"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in rows:
        cells = [row["model"], row["preset"], row["epochs"], _format(row["elbo"]), _format(row["nll"]),
                 row["nll_kind"], _format(row["bits_per_dim"], 3), _format(row["train_seconds"], 0),
                 _format(row["eval_seconds"], 0), row.get("note") or ""]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def protocol(args):
    if args.binarize == "stochastic":
        binarization = (f"stochastic: training digits re-binarized each epoch, the {HELD_OUT} held-out digits "
                        f"binarized once (seed {args.seed})")
    else:
        binarization = "threshold: pixel on where intensity > 0.5, training and held-out digits"
    return (f"Embedded MNIST, {HELD_OUT} held-out test digits, 28x28; binarization {binarization}; ELBO with one "
            f"sample, IW-NLL with k={args.k}; bits/dim = NLL / (784 ln 2).")


def main(argv=None):
    args = build_parser().parse_args(argv)
    for name in ("epochs", "k"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name} must be >= 1, got {getattr(args, name)}.")
    known = dict(ROWS)
    selected = [name for name in (args.models.split(",") if args.models else known) if name]
    unknown = [name for name in selected if name not in known]
    if unknown:
        raise SystemExit(f"Unknown model(s) {unknown}. Valid: {', '.join(known)}.")
    rows = []
    start = time.perf_counter()
    for name in selected:
        print(f"[likelihood] {name} ...", file=sys.stderr, flush=True)
        row = known[name](args)
        row.setdefault("binarization", args.binarize)
        missing = set(COLUMNS) - set(row)
        if missing:
            raise RuntimeError(f"Row {name!r} is missing {sorted(missing)}.")
        rows.append(row)
        print(f"[likelihood] {name}: NLL {row['nll']:.2f} nats ({row['train_seconds']:.0f} s train, "
              f"{row['eval_seconds']:.0f} s eval)", file=sys.stderr, flush=True)
    from keras_gen import provenance

    result = {
        "command": provenance.command_line("benchmarks/likelihood.py", argv),
        "protocol": protocol(args),
        "settings": {"epochs": args.epochs, "k": args.k, "binarize": args.binarize, "seed": args.seed,
                     "held_out": HELD_OUT},
        "total_seconds": time.perf_counter() - start,
        "environment": provenance.environment(),
        "rows": rows,
    }
    provenance.write_report(args.out, result)
    print(protocol(args))
    print()
    print(markdown_table(rows))
    print(f"\n`{result['command']}` ({result['total_seconds']:.0f} s); JSON: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
