"""Which digits a trained stacked-MNIST generator draws too often or too rarely, and how much of its KL that is.

    python experiments/stacked_digits.py --backup benchmarks/results/backup/r1-ema-stacked-mnist_seed7
    python experiments/stacked_digits.py --weights run.weights.h5 --preset r1-stacked-mnist --n 5000
    python experiments/stacked_digits.py --backup DIR --classifier-seed 0,1,2,3  # the mean of four classifiers

Scores a generator the way `benchmarks/mode_collapse.py` does (the domain classifier's digit for each channel of
``--n`` samples, KL of the digit triples to uniform over 1,000; the same samples for the same seed, so the same KL)
and splits that KL into the summed KLs of the three channels' digit histograms and the rest: the channels'
dependence plus what a finite sample scores by chance (the training data's rest, ~0.019 at 26,000 samples). For each
digit it shows the share of the classifier's votes (argmax), the mean probability the classifier gives it (a share
that does not depend on where the argmax boundary falls) and the share of samples read with confidence below 0.9,
beside the same numbers for the training data: a digit the generator draws rarely is rare in both shares; strokes
the classifier reads as another digit move the votes more than the probabilities.

The weights come from a `benchmarks/mode_collapse.py --backup` folder (``PRESET_seedS``: the preset and seed are
read from its name; the backup of a finished run holds its last epoch) or a ``.weights.h5`` file of the preset's
model. A generator that keeps a weight average (``use_ema``) is scored with it, as `fit` leaves it, and with its
live weights. ``--classifier-seed S`` reads the same samples with a classifier trained the same way from another
seed; ``--classifier-seed 0,1,2,3`` (or ``--classifier`` given more than once) reads each digit by the mean of
several classifiers' probabilities, a reader that depends less on any one classifier's training.
Writes JSON to experiments/results/stacked_digits.json.
"""

import argparse
import os
import re
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # run from a checkout without installing

from keras_gen import data, presets, provenance  # noqa: E402
from keras_gen.callbacks import RunBackup  # noqa: E402
from keras_gen.metrics.coverage import stacked_mnist_modes  # noqa: E402

CONFIDENT = 0.9


def _seeds(text):
    """``"0,1,2"`` -> ``[0, 1, 2]``: distinct seeds >= 0 (an argparse type)."""
    try:
        seeds = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seeds like 0 or 0,1,2,3; got {text!r}") from None
    if any(seed < 0 for seed in seeds) or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"seeds must be distinct and >= 0; got {text!r}")
    return seeds


class MeanReader:
    """Reads each digit by the mean of several classifiers' probabilities (of one classifier: its own)."""

    def __init__(self, classifiers):
        self.classifiers = list(classifiers)

    def probabilities(self, images):
        return np.mean([classifier.probabilities(images) for classifier in self.classifiers], axis=0)

    def describe(self):
        """One classifier's own record; for several, the mean's accuracy on the test digits and each member's."""
        if len(self.classifiers) == 1:
            return self.classifiers[0].describe()
        x, y = data.load_arrays("mnist", "test")
        return {"name": f"mean of {len(self.classifiers)} mnist classifiers",
                "accuracy": float(np.mean(self.probabilities(x).argmax(axis=1) == y)), "num_test": int(len(y)),
                "members": [classifier.describe() for classifier in self.classifiers]}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--backup", metavar="DIR", help="a mode_collapse.py --backup run folder (PRESET_seedS)")
    source.add_argument("--weights", help="a .weights.h5 file of --preset's model")
    parser.add_argument("--preset", help="the stacked-MNIST preset (default: read from the --backup folder's name)")
    parser.add_argument("--seed", type=int, help="sampling seed (default: the --backup run's seed, else 0)")
    reader = parser.add_mutually_exclusive_group()
    reader.add_argument("--classifier", action="append", metavar="PATH",
                        help="a domain classifier .keras file (default: the cached MNIST one); given more than "
                        "once, each digit is read by the mean of their probabilities")
    reader.add_argument("--classifier-seed", type=_seeds, default=[0], metavar="S[,S...]",
                        help="train (once, then cached) the MNIST classifier from seed S instead of 0, the one "
                        "mode_collapse.py scores with: how much of the KL is the classifier's reading; several "
                        "seeds, comma-separated, read each digit by the mean of their classifiers' probabilities")
    parser.add_argument("--n", type=int, default=26_000, help="generated samples (default 26,000, as PacGAN)")
    parser.add_argument("--out", default=os.path.join(ROOT, "experiments", "results", "stacked_digits.json"))
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error(f"--n must be >= 1, got {args.n}.")
    if args.seed is not None and not 0 <= args.seed < 2**32:
        parser.error(f"--seed must be in [0, 2**32), got {args.seed}.")
    if args.backup:
        match = re.fullmatch(r"(.+)_seed(\d+)", os.path.basename(os.path.normpath(args.backup)))
        if match is None and args.preset is None:
            parser.error(f"--backup {args.backup!r} is not named PRESET_seedS; name the preset with --preset.")
        args.weights = RunBackup(args.backup).committed_weights()
        if args.weights is None:
            parser.error(f"No weights at {args.backup!r}: no committed epoch (epoch-N/ folder) or latest.weights.h5.")
        args.preset = args.preset or match.group(1)
        if args.seed is None and match is not None:
            args.seed = int(match.group(2))
    if args.preset is None:
        parser.error("--weights needs --preset.")
    stacked = [name for name, preset in presets.PRESETS.items() if preset["dataset"] == "stacked_mnist"]
    if args.preset not in stacked:
        problem = (f"trains on {presets.PRESETS[args.preset]['dataset']}, not stacked_mnist"
                   if args.preset in presets.PRESETS else "is not a preset")
        parser.error(f"{args.preset!r} {problem}; the stacked-MNIST presets are {', '.join(stacked)}.")
    if not os.path.isfile(args.weights):
        parser.error(f"No weights at {args.weights!r}.")
    for path in args.classifier or ():
        if not os.path.isfile(path):  # domain_classifier would train one there
            parser.error(f"No classifier at {path!r}.")
    args.seed = 0 if args.seed is None else args.seed
    return args


def digit_shares(images, classifier):
    """Scores ``(N, 28, 28, 3)`` images: the triples' KL and its split, and per digit (over all three channels)
    the share of argmax votes, the mean probability and the share of votes read with confidence below 0.9."""
    channels = [classifier.probabilities(np.asarray(images)[..., c : c + 1]) for c in range(3)]  # 3 x (N, 10)
    digits = np.stack([p.argmax(axis=1) for p in channels], axis=1)  # (N, 3)
    modes = stacked_mnist_modes(digits)
    channel_kl = sum(modes["channel_kl"])
    probabilities = np.concatenate(channels)  # (3 N, 10)
    votes = digits.T.reshape(-1)  # (3 N,), in the order of `probabilities`
    unsure = probabilities.max(axis=1) < CONFIDENT
    return {
        "num_samples": len(digits),
        "modes": modes["modes"],
        "kl": modes["kl"],
        "channel_kl_sum": channel_kl,
        # the sample's multi-information: >= 0 (uniform over triples is the product of uniform channels), so
        # below 0 only by rounding
        "rest": max(modes["kl"] - channel_kl, 0.0),
        "votes": (np.bincount(votes, minlength=10) / len(votes)).tolist(),
        "probability": probabilities.mean(axis=0).tolist(),
        "unsure": [float(unsure[votes == d].mean()) if np.any(votes == d) else None for d in range(10)],
    }


def format_table(rows):
    """Markdown: one row per sampler and share, digits as columns, then the KL split."""
    head = "| images | share | " + " | ".join(str(d) for d in range(10)) + " | KL | channel KLs | rest |"
    lines = [head, "|---|---|" + "---:|" * 13]
    for label, scores in rows.items():
        for key, name in (("votes", "votes %"), ("probability", "mean probability %"),
                          ("unsure", f"confidence < {CONFIDENT} %")):
            cells = " | ".join("" if v is None else f"{100 * v:.1f}" for v in scores[key])
            split = (f"{scores['kl']:.3f} | {scores['channel_kl_sum']:.3f} | {scores['rest']:.3f}"
                     if key == "votes" else "| |")
            lines.append(f"| {label} | {name} | {cells} | {split} |")
    return "\n".join(lines)


def reader_label(reader):
    """``"classifier 3"``, or ``"mean of classifiers 0-3"`` for a `MeanReader` record: by training seed (by file
    name for a classifier whose record holds no training arguments)."""
    members = reader.get("members", [reader])
    seeds = [(member.get("training") or {}).get("seed") for member in members]
    if None in seeds:
        return ("" if len(members) == 1 else "mean of ") + ", ".join(
            os.path.basename(member.get("path") or member.get("name") or "classifier") for member in members)
    if len(seeds) == 1:
        return f"classifier {seeds[0]}"
    run = seeds == list(range(seeds[0], seeds[0] + len(seeds)))
    return f"mean of classifiers {f'{seeds[0]}-{seeds[-1]}' if run else ', '.join(map(str, seeds))}"


def summary_row(report):
    """A report's line in the README's table of readers: generator seed, reader, its test accuracy, the KL (of the
    averaged weights, the live ones in brackets), channel KLs, rest, and the rarest and commonest digit (votes %)."""
    rows = report["rows"]
    first = rows.get("generator, averaged weights", rows.get("generator"))
    kl = f"{first['kl']:.3f}"
    if "generator, live weights" in rows:
        kl += f" ({rows['generator, live weights']['kl']:.3f})"
    votes = first["votes"]
    rarest, commonest = (f"{d} ({100 * votes[d]:.1f})" for d in (int(np.argmin(votes)), int(np.argmax(votes))))
    return (f"| seed {report['seed']} | {reader_label(report['classifier'])} | "
            f"{100 * report['classifier']['accuracy']:.1f} % | {kl} | {first['channel_kl_sum']:.3f} | "
            f"{first['rest']:.3f} | {rarest} | {commonest} |")


def main(argv=None):
    args = parse_args(argv)
    from keras_gen.metrics.classifier import domain_classifier
    from keras_gen.metrics.evaluate import generate_samples  # evaluate's batches: what mode_collapse.py scores

    began = time.perf_counter()
    classifier = MeanReader([domain_classifier("mnist", path=path) for path in args.classifier] if args.classifier
                            else [domain_classifier("mnist", seed=seed) for seed in args.classifier_seed])
    model = presets.build_model(presets.get_config(args.preset, seed=args.seed))
    try:
        model.load_weights(args.weights)
    except (OSError, ValueError) as error:  # not HDF5, truncated, or another model's weights
        raise SystemExit(f"Could not load {args.weights!r} into the {args.preset} model: {error}") from error
    real, _ = data.load_arrays("stacked_mnist", split="train", num_samples=args.n, seed=0)
    rows = {f"training data ({args.n:,})": digit_shares(real, classifier)}

    def generated():
        return digit_shares(generate_samples(model, args.n, args.seed, batch_size=500, progress=False), classifier)

    if model.keeps_generator_average:
        with model.averaged_weights():
            rows["generator, averaged weights"] = generated()
        rows["generator, live weights"] = generated()
    else:
        rows["generator"] = generated()
    table = format_table(rows)
    wall = time.perf_counter() - began
    print(table)
    reader = classifier.describe()
    print(f"\n({args.preset}, seed {args.seed}, {args.weights}; read by {reader['name']}, "
          f"{100 * reader['accuracy']:.1f} % accurate on {reader['num_test']} test digits; {wall:.0f} s)")
    report = {
        "command": provenance.command_line("experiments/stacked_digits.py", argv), "wall_seconds": round(wall, 1),
        "preset": args.preset, "seed": args.seed, "weights": args.weights, "classifier": reader,
        "rows": rows, "table": table}
    provenance.write_report(args.out, report)
    print(f"Wrote {args.out}\nIts row in the README's table of readers:\n{summary_row(report)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
