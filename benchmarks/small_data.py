"""The small-data benchmark: DiffAugment (Zhao et al. 2020, https://arxiv.org/abs/2006.10738) in miniature.

Trains a GAN preset on the first N digits of the embedded MNIST training split, class-balanced (the first N / 10
of each digit), for N = 500, 1,000 and 4,500 (all of it), with and without DiffAugment
(``GAN(augment=...)``), over seeds, each run for the same number of training steps whatever N (so small data is
not also less training). Each generator is scored on 2,000 samples from fixed latents under the package's digit
classifier (`keras_gen.metrics.DigitQuality`): FID of its features against the 500 held-out test digits, and
the share of samples it reads with confidence >= 0.9 (the real test digits' share beside it). Each run also
watches its discriminator with `keras_gen.callbacks.DiscriminatorOverfittingAlarm` (the training digits against
the held-out ones) and records ``r_t`` / ``r_held`` at the end and the epochs the alarm fired.

    python benchmarks/small_data.py                        # 3 sizes x {none, DiffAugment} x 3 seeds (~1 h on 2 cores)
    python benchmarks/small_data.py --quick                # 1 seed, 40 steps: a smoke test
    python benchmarks/small_data.py --sizes 500 --seeds 1 --set model.r1_weight=10   # a variant (any --set)

The goal, after the paper (BigGAN on 10% of CIFAR-10: FID 39.8 without, 22.4 with DiffAugment, its Table 2):
at 500 digits DiffAugment closes at least half of the FID gap between 500 and 4,500 digits without it, i.e.
``(FID(500) - FID(500, DiffAugment)) / (FID(500) - FID(4,500)) >= 0.5`` on the means over seeds.

Writes JSON (every run, the table, the command, the environment) to benchmarks/results/small_data.json.
"""

import argparse
import contextlib
import dataclasses
import io
import json
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # run from a checkout without installing

import numpy as np  # noqa: E402

DEFAULT_SIZES = (500, 1000, 4500)
DEFAULT_POLICY = "color,translation,cutout"
CONFIDENCE = 0.9
GOAL = 0.5  # the share of the FID gap DiffAugment must close at the smallest size


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="dcgan", help="a GAN preset of 28x28 digits (default dcgan)")
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)),
                        help="training digits per run, multiples of 10 up to 4500 (default 500,1000,4500)")
    parser.add_argument("--policy", default=DEFAULT_POLICY,
                        help=f"the DiffAugment policy of the augmented runs (default {DEFAULT_POLICY})")
    parser.add_argument("--variants", default="none,augment",
                        help="which runs: none (no augmentation), augment (--policy), or both (default)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (plus --first-seed; default 3)")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=2000, help="training steps per run, every size (default 2000)")
    parser.add_argument("--checks", type=int, default=10,
                        help="epochs the steps are split into: the alarm scores after each (default 10)")
    parser.add_argument("--width", type=int, default=32,
                        help="generator and discriminator width (default 32: a quarter of the preset's 64's cost)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--samples", type=int, default=2000, help="samples scored per run (default 2000)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a config override for every run, as keras-gen train --set (repeatable)")
    parser.add_argument("--classifier", help="a saved digit classifier (.keras) instead of the cached default")
    parser.add_argument("--quick", action="store_true", help="1 seed, 40 steps, 4 checks, 200 samples")
    parser.add_argument("--rescore", metavar="JSON",
                        help="no training: recompute the table and the goal of this report's runs (e.g. after the "
                             "goal's rule changed) and write them with the runs to --out")
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results", "small_data.json"))
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.steps, args.checks, args.samples = 1, 40, 4, 200
    try:
        args.sizes = [int(n) for n in args.sizes.split(",")]
    except ValueError:
        parser.error(f"--sizes must be comma-separated integers, got {args.sizes!r}.")
    if any(n < 10 or n > 4500 or n % 10 for n in args.sizes):
        parser.error(f"--sizes must be multiples of 10 from 10 to 4500 (class-balanced digits), got {args.sizes}.")
    args.variants = [v.strip() for v in args.variants.split(",")]
    if not args.variants or set(args.variants) - {"none", "augment"}:
        parser.error(f"--variants must name none and/or augment, got {','.join(args.variants)!r}.")
    for name in ("seeds", "steps", "checks", "width", "batch_size", "samples"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1.")
    if args.first_seed < 0:
        parser.error("--first-seed must be >= 0.")
    if args.steps % args.checks:
        parser.error(f"--steps ({args.steps}) must be a multiple of --checks ({args.checks}).")
    from keras_gen import augment
    from keras_gen.presets.overrides import parse_assignment

    try:
        args.policy = augment.policy_string(args.policy)
        args.overrides = dict(parse_assignment(text) for text in args.set)
    except (TypeError, ValueError) as exc:
        parser.error(str(exc))
    if args.policy is None and "augment" in args.variants:
        parser.error("--policy is empty: give one (e.g. color,translation,cutout) or --variants none.")
    return args


def training_digits(n):
    """The first ``n / 10`` digits of each class of the embedded MNIST training split: ``(n, 28, 28, 1)``."""
    from keras_gen import data

    x, y = data.load_arrays("mnist", "train")
    rows = np.concatenate([np.flatnonzero(y == digit)[: n // 10] for digit in range(10)])
    return x[rows]


def run_config(args, seed, policy):
    """The `RunConfig` of one run: the preset at ``--width``, ``--set`` applied, ``augment`` = ``policy``."""
    from keras_gen import presets
    from keras_gen.presets.overrides import apply_overrides

    config = presets.get_config(args.preset, seed=seed, batch_size=args.batch_size)
    if config.family != "gan" or config.dataset != "mnist":
        raise SystemExit(f"--preset {args.preset!r}: this benchmark trains GAN presets of the mnist digits.")
    networks = {role: {**kwargs, "width": args.width} for role, kwargs in config.networks.items()}
    config = dataclasses.replace(config, networks=networks)
    config = apply_overrides(config, args.overrides)
    return dataclasses.replace(config, model={**config.model, "augment": policy})


class Scorer:
    """FID under the classifier's features against the held-out digits, and the confident-digit share
    (`keras_gen.metrics.DigitQuality`)."""

    def __init__(self, classifier_path=None):
        from keras_gen.metrics import DigitQuality, DomainClassifier

        classifier = DomainClassifier.load(classifier_path) if classifier_path else None
        self.quality = DigitQuality("mnist", classifier=classifier, threshold=CONFIDENCE)
        self.classifier = self.quality.extractor
        self.held_out = self.quality.real  # (500, 28, 28, 1)
        self.real_confident = self.quality.real_confident

    def __call__(self, samples):
        score = self.quality(samples)
        return {"fid": score["fid"], "confident": score["confident"], "class_kl": score["class_kl"]}


def train_one(args, size, seed, policy, digits, scorer):
    """Trains and scores one run; returns its JSON row."""
    import keras
    import tensorflow as tf

    from keras_gen import presets
    from keras_gen.callbacks import DiscriminatorOverfittingAlarm

    keras.utils.set_random_seed(seed)
    config = run_config(args, seed, policy)
    gan = presets.build_model(config)
    batches = (tf.data.Dataset.from_tensor_slices(digits).shuffle(len(digits), seed=seed, reshuffle_each_iteration=True)
               .repeat().batch(args.batch_size, drop_remainder=True))
    alarm = DiscriminatorOverfittingAlarm(digits, held_out=scorer.held_out, batch_size=args.batch_size,
                                          n=min(500, size), stream=io.StringIO())
    began = time.perf_counter()
    with warnings_silenced():
        history = gan.fit(batches, epochs=args.checks, steps_per_epoch=args.steps // args.checks, verbose=0,
                          callbacks=[alarm]).history
    seconds = time.perf_counter() - began
    score = scorer(np.asarray(gan.generate(args.samples, seed=12345)))
    return {
        "size": size, "augment": policy, "seed": seed, **score,
        "d_loss": float(history["d_loss"][-1]), "g_loss": float(history["g_loss"][-1]),
        "r_t": float(history["r_t"][-1]), "r_held": float(history["r_held"][-1]),
        "alarm_epochs": [epoch + 1 for epoch, _, _ in alarm.alarms],
        "seconds": round(seconds, 1),
    }


@contextlib.contextmanager
def warnings_silenced():
    """The alarm's warning is recorded in the run's row instead of printed."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def summarize(runs, keys=("fid", "confident", "r_t", "r_held", "d_loss", "seconds")):
    """``(mean, std)`` dicts over runs (population std; 0 for one run)."""
    mean = {k: statistics.fmean(run[k] for run in runs) for k in keys}
    std = {k: statistics.pstdev([run[k] for run in runs]) if len(runs) > 1 else 0.0 for k in keys}
    return mean, std


def rows_of(runs):
    """``{(size, augment): {"runs", "mean", "std"}}`` in table order (size, then no augmentation first)."""
    groups = {}
    for run in runs:
        groups.setdefault((run["size"], run["augment"]), []).append(run)
    out = {}
    for key in sorted(groups, key=lambda k: (k[0], k[1] is not None)):
        mean, std = summarize(groups[key])
        out[key] = {"runs": groups[key], "mean": mean, "std": std}
    return out


def gap_closed(rows, policy):
    """The goal's numbers: ``{"small", "large", "fid_none_small", "fid_augment_small", "fid_none_large", "closed"}``
    (``closed`` = the share of the FID gap closed), or None without the three rows it needs."""
    sizes = sorted({size for size, _ in rows})
    if len(sizes) < 2:
        return None
    small, large = sizes[0], sizes[-1]
    need = ((small, None), (small, policy), (large, None))
    if any(key not in rows for key in need):
        return None
    none_small, aug_small, none_large = (rows[key]["mean"]["fid"] for key in need)
    gap = none_small - none_large
    # A gap within the seeds' spread (the sum of the two rows' standard deviations) is no gap: its share would be noise.
    noise = rows[(small, None)]["std"]["fid"] + rows[(large, None)]["std"]["fid"]
    closed = (none_small - aug_small) / gap if gap > noise and gap > 0 else None
    return {"small": small, "large": large, "fid_none_small": none_small, "fid_augment_small": aug_small,
            "fid_none_large": none_large, "gap": gap, "noise": noise, "closed": closed, "goal": GOAL,
            "goal_met": closed is not None and closed >= GOAL}


def format_table(rows, real_confident, goal):
    lines = [
        "| training digits | DiffAugment | FID ↓ | confident ≥ 0.9 ↑ | r_t train / held-out | d_loss | alarm | "
        "s / run | seeds |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (size, policy), row in rows.items():
        mean, std, runs = row["mean"], row["std"], row["runs"]
        fired = sum(1 for run in runs if run["alarm_epochs"])
        lines.append(
            f"| {size:,} | {policy or 'none'} | {mean['fid']:.1f} ± {std['fid']:.1f} | "
            f"{100 * mean['confident']:.1f}% ± {100 * std['confident']:.1f} | {mean['r_t']:.2f} / {mean['r_held']:.2f} | "
            f"{mean['d_loss']:.3f} | {fired}/{len(runs)} | {mean['seconds']:.0f} | {len(runs)} |"
        )
    lines.append(f"| real held-out digits | | 0 | {100 * real_confident:.1f}% | | | | | |")
    if goal is not None:
        closed = (f"no gap to close (FID {goal['gap']:+.1f} between the sizes, within the seeds' spread of "
                  f"{goal['noise']:.1f})" if goal["closed"] is None else f"{100 * goal['closed']:.0f}% closed")
        lines += ["", f"Goal: at {goal['small']:,} digits DiffAugment closes >= {100 * GOAL:.0f}% of the FID gap to "
                      f"{goal['large']:,} digits without it: FID {goal['fid_none_small']:.1f} -> "
                      f"{goal['fid_augment_small']:.1f} against {goal['fid_none_large']:.1f}: {closed}, "
                      f"{'met' if goal['goal_met'] else 'not met'}."]
    return "\n".join(lines)


def rescore(args, argv):
    """The table and goal of a report's runs under this script's rules, written with the runs to ``--out``."""
    from keras_gen import provenance

    with open(args.rescore) as f:
        report = json.load(f)
    rows = rows_of(report["runs"])
    goal = gap_closed(rows, report["policy"])
    table = format_table(rows, report["real_confident"], goal)
    print(f"\n{report['header']}\n\n{table}")
    rescored = {**report, "goal": goal, "table": table,
                "rescored": {"command": provenance.command_line("benchmarks/small_data.py", argv),
                             "environment": provenance.environment()}}
    provenance.write_report(args.out, rescored)  # the environment of the training runs, the rescoring's beside it
    print(f"Wrote {args.out}")
    return 0


def main(argv=None):
    args = parse_args(argv)
    if args.rescore:
        return rescore(args, argv)
    from keras_gen import provenance

    began, load_before = time.perf_counter(), os.getloadavg()
    scorer = Scorer(args.classifier)
    policies = [None if variant == "none" else args.policy for variant in args.variants]
    runs = []
    for size in args.sizes:
        digits = training_digits(size)
        for policy in policies:
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                run = train_one(args, size, seed, policy, digits, scorer)
                runs.append(run)
                print(f"  {size} digits, augment={policy}, seed {seed}: FID {run['fid']:.1f}, confident "
                      f"{100 * run['confident']:.1f}%, r_t {run['r_t']:.2f} / {run['r_held']:.2f}, "
                      f"{run['seconds']:.0f} s", flush=True)
    rows = rows_of(runs)
    goal = gap_closed(rows, args.policy)
    table = format_table(rows, scorer.real_confident, goal)
    wall = time.perf_counter() - began
    header = (f"{args.preset} (width {args.width}, batch {args.batch_size}), {args.steps} steps per run, "
              f"{args.samples} samples scored against the 500 held-out digits under the digit classifier")
    print(f"\n{header}\n\n{table}")
    print(f"\n(load average {load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after; {wall:.0f} s on "
          f"{os.cpu_count()} CPU cores)")
    provenance.write_report(args.out, {
        "command": provenance.command_line("benchmarks/small_data.py", argv),
        "wall_seconds": round(wall, 1), "load_average": {"before": load_before, "after": os.getloadavg()},
        "preset": args.preset, "width": args.width, "batch_size": args.batch_size, "steps": args.steps,
        "samples": args.samples, "policy": args.policy, "overrides": args.overrides,
        "seeds": list(range(args.first_seed, args.first_seed + args.seeds)),
        "classifier": scorer.classifier.describe(), "real_confident": scorer.real_confident,
        "runs": runs, "goal": goal, "header": header, "table": table,
    })
    print(f"Wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
