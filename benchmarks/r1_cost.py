"""What R1 costs per training step, and what lazy R1 (``GAN(r1_interval=N)``) saves, on the r1-stacked-mnist preset.

    python benchmarks/r1_cost.py            # intervals 1, 2, 4, 8 and no R1; 5 interleaved repeats of 49 steps
    python benchmarks/r1_cost.py --quick    # 17 steps x 2 repeats

R1 differentiates the discriminator's input gradient with respect to its weights: one more forward pass of D on
the real batch and a double backward pass, on every discriminator update. Lazy R1 (StyleGAN2) computes it on
every Nth update only, weighted by N. All variants train the preset's networks (DCGAN, 28x28x3 stacked MNIST,
batch 64) in this one process, interleaved (A, B, C, ...), timed as `train_throughput.py` times them (from the
end of the first execution to the end of the last); the median of the repeats is reported, with the minutes an
epoch (781 steps) and the preset's 30 epochs take at that rate.

Writes JSON to benchmarks/results/r1_cost.json.
"""

import argparse
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402

from keras_gen import data, presets, provenance  # noqa: E402
from train_throughput import steps_per_second  # noqa: E402

PRESET = "r1-stacked-mnist"
STEPS_PER_EPOCH = 781  # 50,000 stacked training images in batches of 64 (the last partial batch dropped)


def variants(intervals):
    """``{label: model overrides}``: no R1, then R1 (the preset's gamma) at each interval."""
    gamma = presets.PRESETS[PRESET]["model"]["r1_weight"]
    rows = {"no R1": {"r1_weight": 0.0}}
    for n in intervals:
        label = "R1 on every update (the preset)" if n == 1 else f"lazy R1, every {n} updates (r1_interval={n})"
        rows[label] = {"r1_weight": gamma, "r1_interval": n}
    return rows


def build(model_overrides):
    return presets.build_model(presets.get_config(PRESET, model=model_overrides))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--intervals", default="1,2,4,8", help="comma-separated r1_interval values (default 1,2,4,8)")
    parser.add_argument("--steps", type=int, default=49, help="steps per timed run (the first execution untimed)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="17 steps x 2 repeats")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "r1_cost.json"))
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.repeats = 17, 2
    try:
        args.intervals = [int(n) for n in args.intervals.split(",")]
    except ValueError:
        parser.error(f"--intervals must be comma-separated integers, got {args.intervals!r}.")
    if any(n < 1 for n in args.intervals) or args.steps < 2 or args.repeats < 1:
        parser.error("--intervals must be >= 1, --steps >= 2 and --repeats >= 1.")
    return args


def main(argv=None):
    args = parse_args(argv)
    began, load_before = time.perf_counter(), os.getloadavg()
    keras.utils.set_random_seed(0)
    rows = variants(args.intervals)
    models = {label: build(overrides) for label, overrides in rows.items()}
    ds = data.load_dataset("stacked_mnist", batch_size=64, seed=0, repeat=True)
    for model in models.values():  # warm-up: tracing and the first steps
        steps_per_second(model, ds, max(args.intervals) + 9)
    rates = {label: [] for label in models}
    for _ in range(args.repeats):
        for label, model in models.items():
            rates[label].append(steps_per_second(model, ds, args.steps))
    medians = {label: statistics.median(r) for label, r in rates.items()}
    base = medians["R1 on every update (the preset)"] if 1 in args.intervals else None

    lines = [
        f"{PRESET} (DCGAN, 28x28x3, batch 64) on {os.cpu_count()} CPU cores ({platform.machine()}); median of "
        f"{args.repeats} interleaved runs of {args.steps} steps",
        "",
        "| discriminator penalty | steps/s | vs R1 on every update | min / epoch | 30 epochs (h) |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, rate in medians.items():
        ratio = "" if base is None else f"{rate / base:.2f}x"
        minutes = STEPS_PER_EPOCH / rate / 60
        lines.append(f"| {label} | {rate:.2f} | {ratio} | {minutes:.1f} | {30 * minutes / 60:.2f} |")
    wall = time.perf_counter() - began
    table = "\n".join(lines)
    print(table)
    print(f"\n(load average {load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after; {wall:.0f} s)")
    provenance.write_report(args.out, {
        "command": provenance.command_line("benchmarks/r1_cost.py", argv),
        "wall_seconds": round(wall, 1), "load_average": {"before": load_before, "after": os.getloadavg()},
        "steps": args.steps, "repeats": args.repeats,
        "rows": [{"variant": label, "model": rows[label], "steps_per_s": medians[label], "runs": rates[label]}
                 for label in rows],
        "table": table})
    print(f"Wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
