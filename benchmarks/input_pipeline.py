"""How fast `keras_gen.data.load_dataset` feeds training: seconds per epoch and examples/s of each built-in dataset.

    python benchmarks/input_pipeline.py                 # every built-in dataset, batch 64, median of 3 epochs
    python benchmarks/input_pipeline.py --datasets stacked_mnist --repeats 5

Each row iterates whole epochs of the training split exactly as `fit` receives it (shuffled, batched, prefetched,
the last partial batch dropped, as the presets load it) with no model attached: the time the pipeline alone needs.
The first epoch is untimed (it traces the map functions and fills the shuffle buffer). A training step of the
stacked-MNIST presets takes 70-90 ms on 2 CPU cores (``benchmarks/r1_cost.py``), and the pipeline's work shares
those cores.

Writes JSON to benchmarks/results/input_pipeline.json.
"""

import argparse
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from keras_gen import data, provenance  # noqa: E402

# (label, load_dataset arguments): the built-ins as the presets load them, and stacked MNIST resized.
ROWS = {
    "mnist": {"name": "mnist"},
    "digits": {"name": "digits"},
    "ring2d": {"name": "ring2d"},
    "grid2d": {"name": "grid2d"},
    "stacked_mnist": {"name": "stacked_mnist"},
    "stacked_mnist (resized to 32x32)": {"name": "stacked_mnist", "image_size": (32, 32)},
}


def epoch_seconds(ds):
    """(seconds, batches, examples) of one pass over ``ds``."""
    start, batches, examples = time.perf_counter(), 0, 0
    for batch in ds:
        images = batch[0] if isinstance(batch, tuple) else batch
        batches += 1
        examples += int(images.shape[0])
    return time.perf_counter() - start, batches, examples


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", help=f"comma-separated rows (default: all of {', '.join(ROWS)})")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3, help="timed epochs per dataset (the median is shown)")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "input_pipeline.json"))
    args = parser.parse_args(argv)
    names = list(ROWS) if not args.datasets else [n.strip() for n in args.datasets.split(",")]
    chosen = []
    for name in names:
        labels = [label for label in ROWS if label == name or label.split(" (")[0] == name]
        if not labels:
            parser.error(f"unknown dataset {name!r}; the rows are: {', '.join(ROWS)}.")
        chosen += [label for label in labels if label not in chosen]
    args.datasets = chosen
    if args.batch_size < 1 or args.repeats < 1:
        parser.error(f"--batch-size and --repeats must be >= 1, got {args.batch_size} and {args.repeats}.")
    return args


def main(argv=None):
    args = parse_args(argv)
    began, load_before = time.perf_counter(), os.getloadavg()
    rows = []
    for label in args.datasets:
        ds = data.load_dataset(**ROWS[label], split="train", batch_size=args.batch_size, seed=0)
        epoch_seconds(ds)  # untimed: tracing, the shuffle buffer's first fill
        runs = [epoch_seconds(ds) for _ in range(args.repeats)]
        seconds = statistics.median(r[0] for r in runs)
        _, batches, examples = runs[0]
        rows.append({"dataset": label, "arguments": ROWS[label], "batches": batches, "examples": examples,
                     "seconds_per_epoch": seconds, "runs": [r[0] for r in runs]})
        print(f"{label}: {seconds:.2f} s per epoch", flush=True)

    lines = [
        f"load_dataset(split='train', batch_size={args.batch_size}) on {os.cpu_count()} CPU cores "
        f"({platform.machine()}); median of {args.repeats} epochs after an untimed one",
        "",
        "| dataset | batches / epoch | s / epoch | ms / batch | examples / s |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(f"| {row['dataset']} | {row['batches']} | {row['seconds_per_epoch']:.2f} | "
                     f"{1000 * row['seconds_per_epoch'] / row['batches']:.2f} | "
                     f"{row['examples'] / row['seconds_per_epoch']:,.0f} |")
    wall = time.perf_counter() - began
    table = "\n".join(lines)
    print("\n" + table)
    print(f"\n(load average {load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after; {wall:.0f} s)")
    provenance.write_report(args.out, {
        "command": provenance.command_line("benchmarks/input_pipeline.py", argv),
        "wall_seconds": round(wall, 1), "load_average": {"before": load_before, "after": os.getloadavg()},
        "batch_size": args.batch_size, "repeats": args.repeats, "rows": rows, "table": table})
    print(f"Wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
