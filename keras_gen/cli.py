"""The ``keras-gen`` command.

    keras-gen presets
    keras-gen train PRESET [--dataset D] [--epochs N] [--batch-size B] [--out RUN] [--seed S]
                           [--resume | --overwrite] [--jit | --no-jit] [--mixed-precision float16|bfloat16]
    keras-gen sample RUN_DIR [--n 64] [--seed 0] [--labels 0,1,2] --out grid.png
"""

import argparse
import os
import sys

__all__ = ["main", "build_parser"]


def _quiet_tensorflow():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _parse_labels(text):
    if text is None:
        return None
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--labels must be comma-separated integers, got {text!r}.") from exc
    return values[0] if len(values) == 1 else values


def build_parser():
    parser = argparse.ArgumentParser(
        prog="keras-gen", description="Train, sample and inspect generative models (GANs, VAEs) in Keras."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("presets", help="list the named presets")

    train = sub.add_parser("train", help="train a preset into a run folder")
    train.add_argument("preset", help="a preset name (see `keras-gen presets`)")
    train.add_argument("--dataset", help="override the preset's dataset (builtin name, tfds:NAME or a folder)")
    train.add_argument("--data-dir", help="TFDS data directory")
    train.add_argument("--epochs", type=int)
    train.add_argument("--batch-size", type=int)
    train.add_argument("--seed", type=int)
    train.add_argument("--out", help="run folder (default: runs/PRESET)")
    mode = train.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="continue the run in --out from its last backup")
    mode.add_argument("--overwrite", action="store_true", help="delete an existing run folder --out first")
    jit = train.add_mutually_exclusive_group()
    jit.add_argument("--jit", dest="jit_compile", action="store_true", default=None, help="compile with XLA")
    jit.add_argument("--no-jit", dest="jit_compile", action="store_false", help="no XLA (default)")
    train.add_argument("--mixed-precision", choices=["float16", "bfloat16"], help="mixed precision policy")
    train.add_argument("--verbose", type=int, choices=[0, 1, 2], help="Keras fit verbosity")

    sample = sub.add_parser("sample", help="draw samples from a trained run into a PNG grid")
    sample.add_argument("run_dir", help="a run folder written by `keras-gen train`")
    sample.add_argument("--n", type=int, default=64, help="number of samples (default 64)")
    sample.add_argument("--seed", type=int, default=0, help="latent seed (default 0)")
    sample.add_argument("--labels", type=_parse_labels, help="class label(s) for a conditional model: 3 or 0,1,2")
    sample.add_argument("--out", required=True, help="PNG file to write")
    return parser


def _cmd_presets(args, out):
    from keras_gen.presets import list_presets

    rows = list_presets()
    width = max(len(name) for name, _ in rows)
    print(f"{'preset'.ljust(width)}  description", file=out)
    for name, description in rows:
        print(f"{name.ljust(width)}  {description}", file=out)
    return 0


def _cmd_train(args, out):
    from keras_gen.presets import get_config, run_dir_config
    from keras_gen.runs import train_run

    run_dir = args.out or os.path.join("runs", args.preset)
    if args.resume:
        # The stored config rules; only --epochs may extend it.
        config = run_dir_config(run_dir)
        if config.preset != args.preset:
            raise ValueError(f"{run_dir} is a run of preset {config.preset!r}, not {args.preset!r}.")
        if args.epochs:
            config.epochs = args.epochs
    else:
        config = get_config(
            args.preset,
            dataset=args.dataset,
            data_dir=args.data_dir,
            epochs=args.epochs,
            batch_size=args.batch_size,
            seed=args.seed,
            jit_compile=args.jit_compile,
            mixed_precision=f"mixed_{args.mixed_precision}" if args.mixed_precision else None,
        )
    result = train_run(config, run_dir, resume=args.resume, overwrite=args.overwrite, verbose=args.verbose)
    print(f"Run folder: {result.run_dir}  ({result.seconds:.0f} s, {result.epochs_done} epochs)", file=out)
    if result.stopped_on_nan:
        print("Stopped on a non-finite loss; checkpoints/last.keras holds the last good epoch.", file=out)
        return 1
    print(f"Model: {result.model_path}\nSamples: {result.samples}", file=out)
    return 0


def _cmd_sample(args, out):
    from keras_gen.images import save_image_grid, save_scatter
    from keras_gen.runs import load_run

    model = load_run(args.run_dir, compile=False)
    samples = model.generate(args.n, labels=args.labels, seed=args.seed)
    if len(model.sample_shape) == 1:
        path = save_scatter(samples, args.out)
    else:
        nrow = model.num_classes if (model.num_classes and args.labels is None) else None
        path = save_image_grid(samples, args.out, nrow=nrow)
    print(f"Wrote {args.n} samples to {path}", file=out)
    return 0


COMMANDS = {"presets": _cmd_presets, "train": _cmd_train, "sample": _cmd_sample}


def main(argv=None, out=None):
    """Entry point of the ``keras-gen`` console script. Returns the exit status."""
    _quiet_tensorflow()
    args = build_parser().parse_args(argv)
    out = out or sys.stdout
    try:
        return COMMANDS[args.command](args, out)
    except (ValueError, TypeError, FileNotFoundError, FileExistsError) as exc:
        print(f"keras-gen {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"keras-gen {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
