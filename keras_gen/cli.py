"""The ``keras-gen`` command.

    keras-gen presets
    keras-gen train PRESET [--dataset D] [--epochs N] [--batch-size B] [--out RUN] [--seed S]
                           [--resume | --overwrite] [--jit | --no-jit] [--mixed-precision float16|bfloat16]
    keras-gen sample RUN_DIR [--n 64] [--seed 0] [--labels 0,1,2] --out grid.png
    keras-gen export RUN_DIR [--formats savedmodel,tflite,onnx] [--quantize fp16,int8] [--out BASE] [--name NAME]
                             [--version N]
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
    train.add_argument(
        "--strategy", choices=["default", "mirrored", "multiworker"], help="tf.distribute strategy (default: one device)"
    )
    train.add_argument(
        "--deterministic", action="store_true", default=None, help="TensorFlow op determinism (bit-identical runs)"
    )
    train.add_argument("--verbose", type=int, choices=[0, 1, 2], help="Keras fit verbosity")

    sample = sub.add_parser("sample", help="draw samples from a trained run into a PNG grid")
    sample.add_argument("run_dir", help="a run folder written by `keras-gen train`")
    sample.add_argument("--n", type=int, default=64, help="number of samples (default 64)")
    sample.add_argument("--seed", type=int, default=0, help="latent seed (default 0)")
    sample.add_argument("--labels", type=_parse_labels, help="class label(s) for a conditional model: 3 or 0,1,2")
    sample.add_argument("--out", required=True, help="PNG file to write")

    export = sub.add_parser(
        "export", help="export a trained run to SavedModel (TF Serving layout), TFLite and ONNX, checked against Keras"
    )
    export.add_argument("run_dir", help="a run folder written by `keras-gen train`")
    export.add_argument("--formats", default="savedmodel,tflite,onnx", help="comma-separated: savedmodel,tflite,onnx")
    export.add_argument("--quantize", default="", help="extra TFLite variants: fp16,int8,dynamic_int8")
    export.add_argument("--out", help="TF Serving base path (default: RUN_DIR/export)")
    export.add_argument("--name", help="model name (default: the run folder's name)")
    export.add_argument("--version", type=int, help="version folder (default: the next free one; never overwritten)")
    export.add_argument("--opset", type=int, default=17, help="ONNX opset (at most 18; default 17)")
    export.add_argument("--allow-untrained", action="store_true", help="export even if the model was never trained")
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
            strategy=args.strategy,
            deterministic=args.deterministic,
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


def _cmd_export(args, out):
    from keras_gen.export import export_run

    result = export_run(
        args.run_dir,
        base_dir=args.out,
        name=args.name,
        version=args.version,
        formats=args.formats,
        quantize=args.quantize,
        opset=args.opset,
        allow_untrained=args.allow_untrained,
        progress=lambda text: print(f"  {text}", file=out, flush=True),
    )
    print(f"Exported {result.name} version {result.version} to {result.path}", file=out)
    for artifact in result.manifest["artifacts"]:
        worst = _worst_parity(artifact["parity"])
        print(
            f"  {artifact['format']:<10} {artifact['precision']:<12} {artifact['size_bytes'] / 1e6:8.2f} MB  "
            f"{artifact['path']:<28} {worst}",
            file=out,
        )
    return 0


def _worst_parity(parity):
    """One line: the worst error (or PSNR) over an artifact's endpoints and batch sizes."""
    errors, levels, psnrs = [], [], []
    for by_batch in parity["endpoints"].values():
        for outputs in by_batch.values():
            for metrics in outputs.values():
                if "max_level_error" in metrics:
                    levels.append(metrics["max_level_error"])
                elif "error" in metrics:
                    errors.append(metrics["error"])
                    psnrs.append(float("inf") if metrics["psnr_db"] == "inf" else metrics["psnr_db"])
    parts = []
    if "min_psnr_db" in parity["tolerance"] and psnrs:
        parts.append(f"PSNR >= {min(psnrs):.1f} dB")
    elif errors:
        parts.append(f"max error {max(errors):.2g}")
    if levels:
        parts.append(f"uint8 within {max(levels)} level(s)")
    return ", ".join(parts)


COMMANDS = {"presets": _cmd_presets, "train": _cmd_train, "sample": _cmd_sample, "export": _cmd_export}


def main(argv=None, out=None):
    """Entry point of the ``keras-gen`` console script. Returns the exit status."""
    _quiet_tensorflow()
    args = build_parser().parse_args(argv)
    out = out or sys.stdout
    try:
        return COMMANDS[args.command](args, out)
    except (ValueError, TypeError, FileNotFoundError, FileExistsError) as exc:
        if os.environ.get("KERAS_GEN_DEBUG"):
            raise
        print(f"keras-gen {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"keras-gen {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
