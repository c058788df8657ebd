"""The ``keras-gen`` command (also ``python -m keras_gen``).

    keras-gen [--verbose] COMMAND ...      --verbose (before or after COMMAND): TensorFlow's C++ log lines too
    keras-gen presets [--show NAME]
    keras-gen train PRESET|--config FILE [--set KEY=VALUE ...] [--dataset D] [--epochs N] [--batch-size B]
                           [--out RUN] [--seed S] [--resume | --overwrite] [--jit | --no-jit]
                           [--mixed-precision float16|bfloat16] [--fit-verbose 0|1|2]
    keras-gen sample RUN_DIR [--n 64] [--seed 0] [--labels 0,1,2] --out grid.png
    keras-gen sample --server HOST:8500 --model NAME [--rest] [--version N] [--n 64] [--seed 0] --out grid.png
    keras-gen serve BASE [--grpc-port 8500] [--rest-port 8501] [--host 127.0.0.1] [--backend savedmodel|onnx]
                         [--batching [--per-model-batching]] [--model-config-file F] [--tls-cert C --tls-key K]
                         [--log-level debug]
    keras-gen export RUN_DIR [--formats savedmodel,tflite,onnx] [--quantize fp16,int8] [--out BASE] [--name NAME]
                             [--version N]
    keras-gen evaluate RUN_DIR|EXPORT_PATH [--metrics fid,kid,is,pr,coverage,quality] [--n N] [--seed S]
                             [--extractor auto|classifier|inception|identity] [--out results.json]
    keras-gen latent interpolate|arithmetic|traverse|edit RUN_DIR --out grid.png [--seed 0] [options]

Only argparse-level modules are imported here: ``--help``, ``presets`` and argument errors answer without
TensorFlow; a command that needs it imports it when it runs (`_start_tensorflow`).
"""

import argparse
import os
import sys

__all__ = ["main", "build_parser"]

METRIC_NAMES = ("fid", "kid", "is", "pr", "coverage", "quality")
"""`keras_gen.metrics.evaluate.METRICS`, spelled here so that checking ``--metrics`` does not import TensorFlow
(tests/test_cli.py checks that the two agree)."""

_LOG_LEVEL = "TF_CPP_MIN_LOG_LEVEL"


def _start_tensorflow(verbose=False):
    """Imports TensorFlow for a command that needs it, without its C++ log lines unless they are asked for.

    ``TF_CPP_MIN_LOG_LEVEL`` (3 unless the user set it) hides the lines TensorFlow logs once it runs (such as
    ``E0000 ... failed call to cuInit`` on a machine without a GPU). The lines printed while the library loads
    (absl's ``All log messages before absl::InitializeLog()``, oneDNN, the CUDA stub, twice) come before TensorFlow
    reads that variable (tensorflow#100442): they are informational, so they are dropped with the rest of stderr
    during the import unless the level shows INFO lines (0). ``--verbose`` changes nothing: TensorFlow's own
    defaults show everything. ``TF_ENABLE_ONEDNN_OPTS`` is left alone (it changes the numerics).
    """
    if verbose or "tensorflow" in sys.modules:
        import tensorflow  # noqa: F401
        return
    level = os.environ.setdefault(_LOG_LEVEL, "3")
    if level.strip() in ("", "0"):
        import tensorflow  # noqa: F401
        return
    from keras_gen.files import stderr_discarded

    with stderr_discarded():
        import tensorflow  # noqa: F401


def _parse_labels(text):
    if text is None:
        return None
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--labels must be comma-separated integers, got {text!r}.") from exc
    return values[0] if len(values) == 1 else values


def _parse_image_size(text):
    """``"64"`` -> [64, 64]; ``"64x48"`` -> [64, 48] (height x width)."""
    try:
        sizes = [int(part) for part in text.lower().split("x")]
    except ValueError:
        sizes = []
    if len(sizes) not in (1, 2) or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"expected N or HxW (height x width), e.g. 64 or 64x48; got {text!r}")
    return sizes * 2 if len(sizes) == 1 else sizes


_VERBOSE_HELP = "also show TensorFlow's C++ log lines (oneDNN, CUDA, ...), which are hidden otherwise"


class _HelpFormatter(argparse.HelpFormatter):
    """Ends a flag's help with ``(default: X)``, unless the help says its default itself or there is none to show
    (a switch, a required flag)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if ("default" in text or not action.option_strings or action.required
                or action.default is None or isinstance(action.default, bool) or action.default == argparse.SUPPRESS):
            return text
        return f"{text} (default: {'none' if action.default in ('', []) else '%(default)s'})"


class _Parser(argparse.ArgumentParser):
    """An argument parser whose flags show their defaults and that takes ``-v/--verbose`` after its command too."""

    def __init__(self, *args, verbose_flag=True, **kwargs):
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)
        if verbose_flag:  # SUPPRESS: the top-level --verbose (before the command) keeps its value when not given here
            self.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=_VERBOSE_HELP)


class _TrainHelpFormatter(_HelpFormatter, argparse.RawDescriptionHelpFormatter):
    """`_HelpFormatter` that keeps the line breaks of the epilog (the --set table)."""


_SET_HELP = """--set KEY=VALUE (a path as in config.json; the value is read as JSON, else as text):
  epochs=3, batch_size=32, seed=1, dataset=digits             a field
  networks.generator.width=64, model.r1_weight=10             a network's or the model's argument
  optimizers.g_optimizer.config.learning_rate=1e-4            an optimizer's argument
shortcuts:
  generator.width=64                                          networks.ROLE.KEY
  loss=hinge, r1_weight=10                                    model.KEY
  lr=1e-4, g_lr=1e-4, d_lr=4e-4                               the learning rate of every optimizer, of G's,
                                                              of D's (of a schedule: its initial rate)
An unknown key is refused with the valid ones at its level. `keras-gen presets --show PRESET` prints a config."""


def _fit_verbosity(text):
    """``train --verbose N``, the Keras fit verbosity it meant before ``--fit-verbose``."""
    if text not in ("0", "1", "2"):
        raise argparse.ArgumentTypeError(
            f"--verbose takes no value (or, as before, the Keras fit verbosity 0, 1 or 2: now --fit-verbose); got "
            f"{text!r}. Put the preset before --verbose."
        )
    return int(text)


def _assignment(text):
    if "=" not in text or not text.partition("=")[0].strip():
        raise argparse.ArgumentTypeError(
            f"expected KEY=VALUE (e.g. epochs=3, networks.generator.width=64, g_lr=1e-4), got {text!r}"
        )
    return text


def build_parser():
    parser = _Parser(
        prog="keras-gen", description="Train, sample and inspect generative models (GANs, VAEs) in Keras.",
        verbose_flag=False,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help=_VERBOSE_HELP)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    presets = sub.add_parser("presets", help="list the named presets: dataset, epochs and purpose")
    presets.add_argument("--show", metavar="NAME",
                         help="print the preset's full config as JSON, as a run's config.json holds it (default: "
                         "list the presets)")

    train = sub.add_parser("train", help="train a preset (or a config file) into a run folder", verbose_flag=False,
                           epilog=_SET_HELP, formatter_class=_TrainHelpFormatter)
    train.add_argument("preset", nargs="?", help="a preset name (see `keras-gen presets`), or give --config")
    train.add_argument("--config", metavar="FILE",
                       help="train the config in this JSON file instead of a preset (a run's config.json is one; "
                       "default: the preset's)")
    train.add_argument("--set", action="append", type=_assignment, metavar="KEY=VALUE", default=[],
                       help="change a config field by its path in config.json (value read as JSON), after the other "
                       "flags; repeatable (default: none; see below)")
    train.add_argument("--dataset",
                       help="train on this dataset instead (builtin name, tfds:NAME or a folder; default: the "
                       "preset's)")
    train.add_argument("--data-dir", help="TFDS data directory (default: TFDS's own)")
    train.add_argument("--epochs", type=int, help="epochs to train (default: the preset's)")
    train.add_argument("--batch-size", type=int, help="examples per batch (default: the preset's)")
    train.add_argument("--seed", type=int, help="seed of the weights, the data order and the samples (default: the "
                       "preset's)")
    train.add_argument("--out", help="run folder (default: runs/PRESET)")
    mode = train.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="continue the run in --out from its last backup")
    mode.add_argument("--overwrite", action="store_true", help="delete an existing run folder --out first")
    jit = train.add_mutually_exclusive_group()
    jit.add_argument("--jit", dest="jit_compile", action="store_true", default=None,
                     help="compile with XLA (default: the preset's, no XLA)")
    jit.add_argument("--no-jit", dest="jit_compile", action="store_false", help="no XLA (default)")
    train.add_argument("--mixed-precision", choices=["float16", "bfloat16"],
                       help="mixed precision policy (default: the preset's, float32)")
    train.add_argument("--steps-per-execution", type=int,
                       help="train steps per call into the compiled graph (default 1; 8 is ~5%% faster on CPU)")
    train.add_argument(
        "--strategy", choices=["default", "mirrored", "multiworker"],
        help="tf.distribute strategy (default: one device)",
    )
    train.add_argument(
        "--deterministic", action="store_true", default=None, help="TensorFlow op determinism (bit-identical runs)"
    )
    train.add_argument("--image-size", type=_parse_image_size, metavar="N|HxW",
                       help="resize images to N x N or H x W (height x width); needed for a folder of mixed sizes "
                       "(default: the dataset's size)")
    train.add_argument("--channels", type=int, choices=[1, 3, 4],
                       help="image folders: convert every image to 1, 3 or 4 channels (default: from the folder)")
    train.add_argument("--center-crop", action="store_true", default=None,
                       help="image folders, with --image-size: crop to its aspect ratio instead of stretching")
    train.add_argument("--fit-verbose", type=int, choices=[0, 1, 2],
                       help="Keras fit verbosity: 0 silent, 1 a progress bar, 2 a line per epoch (default: 1 on a "
                       "terminal, else 2)")
    train.add_argument("--log-every", type=int, default=50, metavar="STEPS",
                       help="training steps between TensorBoard's step summaries in RUN/logs/ (0: epochs only; "
                       "default: %(default)s)")
    train.add_argument("-v", "--verbose", nargs="?", const=True, type=_fit_verbosity, default=argparse.SUPPRESS,
                       metavar="N",
                       help=_VERBOSE_HELP + " (default: off; --verbose N still sets the fit verbosity, as it did)")

    sample = sub.add_parser("sample", help="draw samples from a trained run into a PNG grid")
    sample.add_argument("run_dir", nargs="?", help="a run folder written by `keras-gen train` (or give --server)")
    sample.add_argument("--n", type=int,
                        help="number of samples (default 64; a conditional model's grid without --labels: rounded up "
                        "to full rows of one column per class, 70 for 10 classes)")
    sample.add_argument("--seed", type=int, default=0, help="latent seed (default 0)")
    sample.add_argument("--labels", type=_parse_labels,
                        help="class label(s) for a conditional model: 3 or 0,1,2 (default: 0, 1, 2, ... in turn)")
    sample.add_argument("--out", required=True, help="PNG file to write")
    sample.add_argument(
        "--server", help="sample from a TF-Serving-protocol server instead: HOST:PORT (gRPC; REST with --rest; "
        "default: from RUN_DIR)"
    )
    sample.add_argument("--model", help="the served model's name (with --server; default: none, required there)")
    sample.add_argument("--version", type=int, help="the served version (default: the newest)")
    sample.add_argument("--rest", action="store_true", help="talk to --server over REST instead of gRPC")
    sample.add_argument("--timeout", type=float, default=30.0, help="seconds per request attempt (default 30)")
    sample.add_argument("--retries", type=int, default=2, help="retries when the server is unavailable (default 2)")
    sample.add_argument("--tls-ca", help="PEM certificate to trust: connect with TLS (HTTPS with --rest; default: "
                        "no TLS)")

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

    evaluate = sub.add_parser(
        "evaluate", help="FID, KID, IS, precision/recall and mode coverage of a run or an export, as a table and JSON"
    )
    evaluate.add_argument("path", help="a run folder, a .keras model in one, or an exported artifact")
    evaluate.add_argument(
        "--metrics", type=_parse_metrics,
        help="comma-separated: fid,kid,is,pr,coverage,quality (default: all that apply)",
    )
    evaluate.add_argument(
        "--n", type=int, help="samples to draw (default 2500 points, 26000 stacked MNIST, 5000 images)"
    )
    evaluate.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    evaluate.add_argument(
        "--extractor", default="auto", choices=["auto", "classifier", "inception", "identity"],
        help="features: the digit classifier, InceptionV3 (local weights) or raw points (default: auto)",
    )
    evaluate.add_argument("--inception-weights",
                          help="InceptionV3 weights file for --extractor inception (default: none, required there)")
    evaluate.add_argument("--dataset", help="the dataset the samples imitate (default: the run's)")
    evaluate.add_argument("--batch-size", type=int, default=500, help="samples per generator call (default 500)")
    evaluate.add_argument(
        "--out", help="JSON file to write (default: RUN_DIR/eval.json; RUN_DIR/eval_FORMAT_PRECISION.json for exports)"
    )
    evaluate.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")

    _add_latent_parser(sub)
    _add_serve_parser(sub)
    return parser


def _add_serve_parser(sub):
    serve = sub.add_parser("serve", help="serve exported models over TF Serving's gRPC and REST protocol")
    serve.add_argument("base", help="the export base path (BASE/NAME/VERSION/), or one model's folder")
    serve.add_argument("--grpc-port", type=int, default=8500, help="gRPC port (default 8500; 0: any free port)")
    serve.add_argument("--rest-port", type=int, default=8501, help="REST port (default 8501; 0: any free port)")
    serve.add_argument("--no-grpc", action="store_true", help="no gRPC endpoint")
    serve.add_argument("--no-rest", action="store_true", help="no REST endpoint")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0: all)")
    serve.add_argument("--backend", default="savedmodel", choices=["savedmodel", "onnx"], help="what runs the model")
    serve.add_argument("--onnx-threads", type=int, default=0, help="ONNX Runtime threads per call (0: its default)")
    serve.add_argument("--tensorflow-intra-op-parallelism", type=_threads, default=0, metavar="N",
                       help="threads one TensorFlow op may use (0: all cores, TensorFlow's default; 1 cuts the "
                       "latency of small requests, see serving/README.md)")
    serve.add_argument("--tensorflow-inter-op-parallelism", type=_threads, default=0, metavar="N",
                       help="TensorFlow ops run at once (0: TensorFlow's default)")
    serve.add_argument("--model-name", help="serve only this model (or name the model when BASE is a model folder; "
                       "default: every model under BASE)")
    serve.add_argument("--model-config-file", help="TF Serving models.config (relative base paths are under BASE; "
                       "default: none, the folders under BASE)")
    serve.add_argument("--batching", action="store_true",
                       help="TF Serving's --enable_batching: concurrent requests to a signature run as one batch; "
                       "every signature batches, so `sample` (scalar n, seed) is refused (serving/README.md)")
    serve.add_argument("--per-model-batching", action="store_true",
                       help="TF Serving's --enable_per_model_batching_parameters: with --batching, batch only the "
                       "versions whose folder holds batching_params.pbtxt")
    serve.add_argument("--batching-parameters-file",
                       help="TF Serving batching parameters (with --batching, as TF Serving needs; default: "
                       "none, the values below)")
    serve.add_argument("--max-batch-size", type=int, help="images per batch (with --batching; default 64)")
    serve.add_argument("--batch-timeout-micros", type=int, help="how long a batch waits to fill (default 2000)")
    serve.add_argument("--num-batch-threads", type=int, help="batches run at once (default 1)")
    serve.add_argument("--poll-seconds", type=float, default=1.0,
                       help="scan BASE for new versions (0: once; default 1)")
    serve.add_argument("--max-images", type=int, default=1024, help="most images per request (default 1024)")
    serve.add_argument("--max-request-bytes", type=int, default=16 << 20, help="largest request (default 16 MiB)")
    serve.add_argument("--tls-cert", help="PEM certificate chain: TLS on both ports (with --tls-key; default: no TLS)")
    serve.add_argument("--tls-key", help="PEM private key of --tls-cert (default: none)")
    serve.add_argument("--monitoring-config-file",
                       help="TF Serving monitoring.config (Prometheus page on REST; default: none, no page)")
    serve.add_argument("--no-warmup", action="store_true", help="skip the warm-up call when a version loads")
    serve.add_argument("--grace", type=float, default=10.0, help="seconds in-flight requests get at shutdown")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning"],
                       help="debug: one line per request (default info)")


def _threads(text):
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a thread count >= 0 (0: TensorFlow's default), got {text!r}")
    return value


def _set_tensorflow_threads(intra, inter):
    """TF Serving's ``--tensorflow_intra_op_parallelism`` / ``--tensorflow_inter_op_parallelism``: set before
    TensorFlow starts its runtime (0 keeps its default). Returns ``(intra, inter)`` as TensorFlow now reports them."""
    import tensorflow as tf

    try:
        if intra:
            tf.config.threading.set_intra_op_parallelism_threads(intra)
        if inter:
            tf.config.threading.set_inter_op_parallelism_threads(inter)
    except RuntimeError as exc:  # the runtime already started in this process
        raise ValueError(f"Cannot set TensorFlow's thread counts now: {exc}") from exc
    threading = tf.config.threading
    return threading.get_intra_op_parallelism_threads(), threading.get_inter_op_parallelism_threads()


def _parse_metrics(text):
    names = [part.strip().lower() for part in text.split(",") if part.strip()]
    unknown = [name for name in names if name not in METRIC_NAMES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown metric(s) {', '.join(unknown) or repr(text)}; valid metrics: {', '.join(METRIC_NAMES)}"
        )
    return names


def _purpose(description):
    """The first sentence of a preset's description: up to its first ``". "`` or ``"; "`` outside parentheses."""
    depth = 0
    for i, char in enumerate(description):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0 and char in ".;" and description[i + 1 : i + 2] in (" ", ""):
            return description[:i]
    return description


def _cmd_presets(args, out):
    import json
    import shutil

    from keras_gen.presets import PRESETS, get_config

    if args.show is not None:
        print(json.dumps(get_config(args.show).to_dict(), indent=2, sort_keys=True), file=out)
        return 0
    rows = [(name, str(PRESETS[name].get("dataset", "")), str(PRESETS[name].get("epochs", "")),
             _purpose(PRESETS[name].get("description", ""))) for name in sorted(PRESETS)]
    header = ("preset", "dataset", "epochs", "purpose")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(3)]
    room = max(30, shutil.get_terminal_size((120, 24)).columns - sum(widths) - 7)
    for row in [header, *rows]:
        purpose = row[3] if len(row[3]) <= room else row[3][: room - 3] + "..."
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1]), row[2].rjust(widths[2]), purpose]
        print("  ".join(cells).rstrip(), file=out)
    print("\n`keras-gen presets --show NAME` prints a preset's full config; `keras-gen train NAME` trains it.",
          file=out)
    return 0


def _train_config(args):
    """The config ``keras-gen train`` runs: the preset's, the --config file's or (with --resume) the run's,
    with the flags and then each --set applied; checked whole before anything is built or written.
    Returns ``(config, run_dir)``."""
    from keras_gen.presets import RunConfig, apply_overrides, get_config, run_dir_config

    if args.preset is not None and args.config is not None:
        raise ValueError("Give a preset or --config FILE, not both (--set changes a preset's fields).")
    if args.preset is None and args.config is None:
        raise ValueError(
            "Give a preset (`keras-gen presets` lists them) or --config FILE (a run's config.json is one)."
        )
    config = RunConfig.load(args.config) if args.config is not None else None
    run_dir = args.out or os.path.join("runs", args.preset or config.preset)
    if args.resume:
        # The stored config rules: train_run refuses a change to anything but `epochs`.
        stored = run_dir_config(run_dir)
        if args.preset is not None and stored.preset != args.preset:
            raise ValueError(f"{run_dir} is a run of preset {stored.preset!r}, not {args.preset!r}.")
        config = config or stored
    elif config is None:
        config = get_config(args.preset)
    flags = {
        "dataset": args.dataset,
        "data_dir": args.data_dir,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "jit_compile": args.jit_compile,
        "steps_per_execution": args.steps_per_execution,
        "mixed_precision": f"mixed_{args.mixed_precision}" if args.mixed_precision else None,
        "strategy": args.strategy,
        "deterministic": args.deterministic,
        "image_size": args.image_size,
        "channels": args.channels,
        "center_crop": args.center_crop,
    }
    flags = [(key, value) for key, value in flags.items() if value is not None]
    return apply_overrides(config, [*flags, *args.set]), run_dir


def _cmd_train(args, out):
    from keras_gen.data import dataset_info
    from keras_gen.runs import train_run

    config, run_dir = _train_config(args)
    # Before the run folder exists: a folder's broken files or mixed sizes stop here, and what the scan decided
    # (size, channels, conversions) is said once. The scan is cached, so train_run does not repeat it.
    info = dataset_info(
        config.dataset, data_dir=config.data_dir, image_size=config.image_size, channels=config.channels,
        center_crop=config.center_crop,
    )
    if info["source"] == "folder":
        print(f"Folder {info['name'][len('folder:'):]}: {info['folder']['summary']}", file=out, flush=True)
    if args.log_every < 0:
        raise ValueError(f"--log-every must be >= 0 (0: epoch summaries only), got {args.log_every}.")
    result = train_run(config, run_dir, resume=args.resume, overwrite=args.overwrite, verbose=args.fit_verbose,
                       log_every=args.log_every or None)
    print(f"Run folder: {result.run_dir}  ({result.seconds:.0f} s, {result.epochs_done} epochs)", file=out)
    if result.stopped_on_nan:
        print("Stopped on a non-finite loss; checkpoints/last.keras holds the last good epoch.", file=out)
        return 1
    print(f"Model: {result.model_path}\nSamples: {result.samples}", file=out)
    return 0


def _cmd_sample(args, out):
    from keras_gen import model_kind
    from keras_gen.images import full_rows, save_image_grid, save_scatter
    from keras_gen.runs import load_run

    if args.server is not None:
        return _sample_from_server(args, out)
    if args.run_dir is None:
        raise ValueError("Give a run folder, or --server HOST:PORT --model NAME to sample from a server.")
    model = model_kind.require(load_run(args.run_dir, compile=False), "sample", "`keras-gen sample`")
    nrow = model.num_classes if (model.num_classes and args.labels is None and len(model.sample_shape) > 1) else None
    n = args.n if args.n is not None else full_rows(64, nrow)
    samples = model.generate(n, labels=args.labels, seed=args.seed)
    if len(model.sample_shape) == 1:
        path = save_scatter(samples, args.out)
    else:
        path = save_image_grid(samples, args.out, nrow=nrow)
    print(f"Wrote {n} samples to {path}", file=out)
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


def _open_export(path):
    """`keras_gen.export.load`: the command line is where the core's run loading meets the export package."""
    from keras_gen.export import load

    return load(path)


def _cmd_evaluate(args, out):
    from keras_gen.metrics.evaluate import format_table
    from keras_gen.provenance import write_report
    from keras_gen.runs import evaluate_run

    results = evaluate_run(  # resolves pretrained:NAME; a missing path is a FileNotFoundError naming it
        args.path,
        args.metrics,
        open_artifact=_open_export,
        n=args.n,
        extractor=args.extractor,
        seed=args.seed,
        batch_size=args.batch_size,
        progress=args.progress,
        dataset=args.dataset,
        inception_weights=args.inception_weights,
    )
    source = results["source"]
    name = "eval.json"
    if source.get("type") == "export":  # several artifacts of one run: one file each
        name = f"eval_{source.get('format')}_{source.get('precision')}.json"
    path = args.out or os.path.join(source.get("run_dir") or os.getcwd(), name)
    write_report(path, results)  # atomic; the metrics keep their canonical order
    print(format_table(results), file=out)
    print(f"Wrote {path}", file=out)
    return 0


def _parse_numbers(kind):
    def parse(text):
        try:
            return [kind(part) for part in text.split(",") if part.strip()]
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"expected comma-separated {kind.__name__}s, got {text!r}") from exc

    return parse


def _add_latent_parser(sub):
    latent = sub.add_parser(
        "latent", help="latent-space grids of a trained run: interpolate, arithmetic, traverse, edit"
    )
    actions = latent.add_subparsers(dest="action", required=True, metavar="ACTION")

    def action(name, help):
        parser = actions.add_parser(name, help=help)
        parser.add_argument("run_dir", help="a run folder written by `keras-gen train`")
        parser.add_argument("--out", required=True, help="PNG file to write (a labelled grid)")
        parser.add_argument("--seed", type=int, default=0, help="seed of the latents and image choices (default 0)")
        return parser

    groups = "group spec: classes and an optional style, e.g. 7, 7:bold, 3,5:thin, :bold"
    interpolate = action("interpolate", "rows of slerp/lerp interpolations between latents")
    interpolate.add_argument("--rows", type=int, default=4, help="rows (anchors - 1; default 4)")
    interpolate.add_argument("--steps", type=int, default=8, help="images per row (default 8)")
    interpolate.add_argument("--method", choices=["slerp", "lerp"], default="slerp",
                             help="spherical or linear interpolation between latents")
    interpolate.add_argument("--labels", type=_parse_labels,
                             help="conditional models: a class per anchor, or one (default: 0, 1, 2, ... in turn)")
    interpolate.add_argument("--label-mode", choices=["hold", "switch"], default="hold",
                             help="conditional models: keep each row's start class, or switch at the midpoint")
    interpolate.add_argument("--source", choices=["prior", "data"], default="prior",
                             help="anchors from the prior, or encoded test images (VAEs)")

    arithmetic = action("arithmetic", "A - B + C on averaged latents (default: 7:bold - 7 + 1, a bold 1)")
    arithmetic.add_argument("--a", default="7:bold", help=f"group A ({groups}; default 7:bold)")
    arithmetic.add_argument("--b", default="7", help="group B (default 7)")
    arithmetic.add_argument("--c", default="1", help="group C (default 1)")
    arithmetic.add_argument("--examples", type=int, default=4, help="example columns (default 4)")
    arithmetic.add_argument("--num-samples", type=int, default=2000, help="GAN samples to form groups (default 2000)")

    traverse = action("traverse", "vary one latent dimension at a time")
    traverse.add_argument("--dims", type=_parse_numbers(int),
                          help="dimensions (default: a VAE's 8 most used, else 0-7)")
    traverse.add_argument("--values", type=_parse_numbers(float), help="values to set (default: --steps from -3 to 3)")
    traverse.add_argument("--steps", type=int, default=7, help="values from -3 to 3 (default 7)")
    traverse.add_argument("--labels", type=int, help="conditional models: the class (default: the classes in turn)")
    traverse.add_argument("--source", choices=["prior", "data"], default="prior",
                          help="z from the prior, or the encoding of test image --index (VAEs)")
    traverse.add_argument("--index", type=int, default=0, help="the test image, with --source data")

    edit = action("edit", "VAEs: encode test images, add strength x (mean z[to] - mean z[from]), decode")
    edit.add_argument("--images", default=":thin", help=f"which test images to edit ({groups}; default :thin)")
    edit.add_argument("--from", dest="from_group", default=":thin", help="group the vector starts at (default :thin)")
    edit.add_argument("--to", dest="to_group", default=":bold", help="group the vector points to (default :bold)")
    edit.add_argument("--strengths", type=_parse_numbers(float), default=[0.5, 1.0, 1.5],
                      help="comma-separated strengths, one column each (default 0.5,1,1.5)")
    edit.add_argument("--count", type=int, default=6, help="images to edit (default 6)")


def _cmd_latent(args, out):
    from keras_gen.latent_grids import grid_for_run

    options = {
        "interpolate": ("rows", "steps", "method", "labels", "label_mode", "source"),
        "arithmetic": ("a", "b", "c", "examples", "num_samples"),
        "traverse": ("dims", "values", "steps", "labels", "source", "index"),
        "edit": ("images", "from_group", "to_group", "strengths", "count"),
    }[args.action]
    grid = grid_for_run(args.run_dir, args.action, seed=args.seed, **{name: getattr(args, name) for name in options})
    path = grid.save(args.out)
    rows, cols = grid.shape
    print(f"Wrote {grid.title}: {rows}x{cols} grid to {path}", file=out)
    return 0


def _sample_from_server(args, out):
    from keras_gen.images import save_image_grid, save_scatter
    from keras_gen.serving.client import RestSamplerClient, SamplerClient
    from keras_gen.serving.errors import ServingError

    if args.run_dir is not None:
        raise ValueError("Give a run folder or --server, not both.")
    if not args.model:
        raise ValueError("--server needs --model NAME (the served model's name).")
    common = {"model": args.model, "version": args.version, "timeout": args.timeout, "retries": args.retries}
    n = 64 if args.n is None else args.n
    if args.rest:
        client = RestSamplerClient(args.server, ca_file=args.tls_ca, **common)
    else:
        client = SamplerClient(args.server, root_certificates=args.tls_ca, **common)
    try:
        with client:
            images = "sample_uint8" in client.signatures()
            samples = client.sample(n, seed=args.seed, labels=args.labels, uint8=images)
    except ServingError as exc:
        if isinstance(exc, (ValueError, ConnectionError)):
            raise
        raise ConnectionError(str(exc)) from exc  # a server fault (INTERNAL): one clean line too
    if images:
        path = save_image_grid(samples, args.out, value_range=(0, 255))
    else:
        path = save_scatter(samples, args.out)
    print(f"Wrote {n} samples from {args.model} at {args.server} to {path}", file=out)
    return 0


def _cmd_serve(args, out):
    import dataclasses
    import logging

    from keras_gen.serving.batching import BatchingParameters
    from keras_gen.serving.server import serve

    logger = logging.getLogger("keras_gen.serving")
    logger.setLevel(args.log_level.upper())
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
    batching = None
    overrides = {key: getattr(args, key) for key in ("max_batch_size", "batch_timeout_micros", "num_batch_threads")
                 if getattr(args, key) is not None}
    if not args.batching and (args.batching_parameters_file or overrides or args.per_model_batching):
        given = [flag for flag, value in (("--batching-parameters-file", args.batching_parameters_file),
                                          ("--per-model-batching", args.per_model_batching),
                                          *((f"--{k.replace('_', '-')}", v) for k, v in overrides.items())) if value]
        raise ValueError(
            f"{', '.join(given)} configure batching, which is off: add --batching (TF Serving, too, reads them only "
            "with --enable_batching)."
        )
    if args.batching:
        batching = (BatchingParameters.from_file(args.batching_parameters_file) if args.batching_parameters_file
                    else BatchingParameters())
        batching = dataclasses.replace(batching, **overrides)

    threads = None
    if args.tensorflow_intra_op_parallelism or args.tensorflow_inter_op_parallelism:
        threads = _set_tensorflow_threads(args.tensorflow_intra_op_parallelism, args.tensorflow_inter_op_parallelism)

    def ready(server):
        served = ", ".join(f"{n} v{max(v)}" for n, v in sorted(server.models().items()) if v) or "no model yet"
        print(f"Serving {served} from {args.base} ({args.backend}{', batching' if batching else ''})", file=out)
        if threads is not None:
            print(f"TensorFlow threads: intra-op {threads[0] or 'default'}, inter-op {threads[1] or 'default'}",
                  file=out)
        if server.grpc_port is not None:
            print(f"gRPC: {server.grpc_address}", file=out)
        if server.rest_port is not None:
            print(f"REST: {server.rest_url}/v1/models/", file=out)
        print("Stop with Ctrl-C or SIGTERM.", file=out, flush=True)

    try:
        return serve(
            args.base, ready=ready, model_name=args.model_name, model_config_file=args.model_config_file,
            host=args.host, grpc_port=None if args.no_grpc else args.grpc_port,
            rest_port=None if args.no_rest else args.rest_port, backend=args.backend, batching=batching,
            per_model_batching=args.per_model_batching,
            poll_interval=args.poll_seconds, max_images=args.max_images, max_request_bytes=args.max_request_bytes,
            tls_cert=args.tls_cert, tls_key=args.tls_key, monitoring_config_file=args.monitoring_config_file,
            warmup=not args.no_warmup, grace=args.grace, onnx_threads=args.onnx_threads,
        )
    except OSError as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise ConnectionError(str(exc)) from exc  # a port in use: one clean line


COMMANDS = {
    "presets": _cmd_presets,
    "train": _cmd_train,
    "sample": _cmd_sample,
    "export": _cmd_export,
    "evaluate": _cmd_evaluate,
    "latent": _cmd_latent,
    "serve": _cmd_serve,
}


def main(argv=None, out=None):
    """Entry point of the ``keras-gen`` console script (and of ``python -m keras_gen``). Returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.command == "train" and not isinstance(args.verbose, bool):  # `train --verbose N`, as it used to be
        print(f"keras-gen train: --verbose {args.verbose} is now --fit-verbose {args.verbose}.", file=sys.stderr)
        args.fit_verbose = args.verbose if args.fit_verbose is None else args.fit_verbose
        args.verbose = False
    out = out or sys.stdout
    try:
        if args.command != "presets":
            _start_tensorflow(args.verbose)
        return COMMANDS[args.command](args, out)
    except BrokenPipeError:  # `keras-gen presets | head`: the reader has gone; Python's advice, not a traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (ValueError, TypeError, FileNotFoundError, FileExistsError, ConnectionError) as exc:
        if os.environ.get("KERAS_GEN_DEBUG"):
            raise
        print(f"keras-gen {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"keras-gen {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
