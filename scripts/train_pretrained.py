"""Trains the models keras-gen ships (`keras_gen.pretrained`) and writes their folders, evaluations and model cards.

    python scripts/train_pretrained.py                             # every model in MODELS (about 20 min on 2 cores)
    python scripts/train_pretrained.py dcgan-mnist                 # one model
    python scripts/train_pretrained.py --train-only                # only the run folders under --work
    python scripts/train_pretrained.py --reuse-runs                # package runs trained before (no training)
    python scripts/train_pretrained.py --cards-only                # rewrite the model cards from their JSON

For each model of `MODELS`:

1. train: ``keras_gen.train_run(get_config(PRESET), WORK/NAME)``, exactly ``keras-gen train PRESET --out
   WORK/NAME`` (the preset's own settings, seed 0); the command and its wall time go to ``WORK/NAME/training.json``;
2. package: the networks sampling needs (`MODELS`' ``networks``) as Keras weight files with float16 values,
   ``config.json``, ``dataset.json`` and the record ``pretrained.json`` (weight files, optimizer steps trained,
   commands, wall times) into ``keras_gen/pretrained/NAME/``, written in a staging folder and renamed into place.
   Float16 storage is checked before anything is written: ``generate(256, seed=0)`` of the float16 weights must
   be within `FLOAT16_TOLERANCE` of the float32 model's (the largest difference is recorded);
3. reference: ``samples.npy``, ``generate(16, seed=0)`` of the folder as `keras_gen.from_preset` loads it;
4. evaluate: ``keras-gen evaluate pretrained:NAME --out keras_gen/pretrained/NAME/eval.json`` with default
   settings (FID, KID, IS, precision/recall and coverage under the digit classifier); for a VAE also the ELBO and
   the importance-weighted NLL on the 500 held-out digits (`LIKELIHOOD`) into ``likelihood.json``;
5. card: ``README.md`` from `CARD`, its numbers read from those JSON files (tests/test_pretrained.py checks that
   they agree).
"""

import argparse
import json
import os
import shutil
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # run from a checkout without installing
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

MODELS = {
    "dcgan-mnist": {
        "preset": "dcgan",
        "networks": ("generator",),
        "what": "The `dcgan` preset: a DCGAN (non-saturating loss, Adam(2e-4, 0.5)) trained on the embedded MNIST "
                "digits. Unconditional: `generate(n, seed=...)` draws digits of any class.",
    },
    "cgan-mnist": {
        "preset": "cgan",
        "networks": ("generator",),
        "what": "The `cgan` preset: a class-conditional DCGAN (conditional batch norm in the generator, projection "
                "discriminator) trained on the embedded MNIST digits. `generate(n, labels=3, seed=...)` draws 3s; "
                "without labels the classes cycle 0, 1, ..., 9.",
    },
    "acgan-mnist": {
        "preset": "acgan-r1-ema",
        "networks": ("generator",),
        "what": "The `acgan-r1-ema` preset, what `make demo` trains: a class-conditional DCGAN whose discriminator also "
                "classifies the digit (AC-GAN), with R1 on the discriminator and the generator's weight average "
                "(EMA 0.995), trained on the embedded MNIST digits. `generate(n, labels=3, seed=...)` draws 3s; "
                "without labels the classes cycle 0, 1, ..., 9.",
    },
    "vae-mnist": {
        "preset": "vae",
        "networks": ("encoder", "decoder"),
        "what": "The `vae` preset: the fully connected VAE of Kingma & Welling (784-400-20, Bernoulli decoder, "
                "Adam(1e-3)) trained on the embedded MNIST digits. Encoder and decoder are shipped, so `encode`, "
                "`reconstruct` and the latent edits work as well as `generate`.",
    },
}
"""The shipped models: ``name -> {"preset", "networks" (the weights shipped), "what" (the card's first lines)}``."""

FLOAT16_TOLERANCE = 2 / 255
"""Largest allowed difference between samples of the float16-stored and the float32 weights, on the [-1, 1] image
scale: one level of an 8-bit image (a [-1, 1] range spans 255 levels of 2/255)."""

REFERENCE = {"n": 16, "seed": 0}
"""The stored reference draw: ``generate(16, seed=0)``."""

LIKELIHOOD = {"binarize": "threshold", "seed": 0, "k": 5000}
"""How a VAE's ELBO and IW-NLL are taken: the 500 held-out digits binarized at 0.5 (pixel on where its intensity
is above half), 5,000 importance samples (`keras_gen.metrics.iw_nll`)."""

CARD = """# `{name}`: {title}

{what}

```python
import keras_gen
model = keras_gen.from_preset("{name}")
images = model.generate(16, seed=0)        # (16, 28, 28, 1) in [-1, 1]
```

`keras-gen sample pretrained:{name} --out grid.png`, `keras-gen export pretrained:{name} --out exports` and
`keras-gen evaluate pretrained:{name}` work as on a run folder ([docs/pretrained.md](../../../docs/pretrained.md)).

## Training

| | |
|---|---|
| preset | `{preset}` (its own settings: {epochs} epochs, batch {batch_size}, seed {seed}) |
| data | the embedded MNIST digits (`mnist`: 4,500 training digits, 28x28x1) |
| optimizer steps | {trained_steps} |
| command | `{train_command}` (the same as `{cli_command}`) |
| wall time | {train_seconds:.0f} s on {cpu_count} CPU cores ({processor}) |
| packaged by | `{package_command}` |
| shipped | {shipped} |

## Evaluation

```bash
{eval_command}
```

with its default settings: {num_samples} samples (seed {eval_seed}) against the {num_real} held-out test digits, in
the features of the digit classifier `{extractor}` (held-out accuracy {accuracy}). The full report is
[eval.json](eval.json).

| metric | value |
|---|---|
{metric_rows}
{likelihood}"""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help=f"models to make (default: all of {', '.join(MODELS)})")
    parser.add_argument("--work", default=os.path.join(ROOT, "runs", "pretrained"),
                        help="where the training runs go (default: runs/pretrained)")
    parser.add_argument("--out", default=os.path.join(ROOT, "keras_gen", "pretrained"),
                        help="where the shipped folders go (default: keras_gen/pretrained)")
    stage = parser.add_mutually_exclusive_group()
    stage.add_argument("--train-only", action="store_true", help="train the runs under --work, nothing else")
    stage.add_argument("--reuse-runs", action="store_true",
                       help="package the runs already trained under --work instead of training them again")
    stage.add_argument("--cards-only", action="store_true",
                       help="rewrite the model cards from the shipped folders' JSON, nothing else")
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in MODELS]
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; valid: {', '.join(MODELS)}")
    args.names = args.names or list(MODELS)
    return args


def _relative(path):
    """``path`` as the commands are written: relative to the repository root, where they are run."""
    return os.path.relpath(path, ROOT)


def command_of(argv):
    return " ".join(["python", _relative(os.path.abspath(__file__)), *argv])


# ------------------------------------------------------------------------------------------------------------ train
def train(name, work, command):
    """Trains ``name``'s preset into ``work/name`` (overwriting an earlier run) and records how."""
    from keras_gen import provenance
    from keras_gen.files import write_json
    from keras_gen.presets import get_config
    from keras_gen.runs import train_run

    spec = MODELS[name]
    run_dir = os.path.join(work, name)
    config = get_config(spec["preset"])
    start = time.perf_counter()
    result = train_run(config, run_dir, overwrite=True, verbose=2)
    seconds = time.perf_counter() - start
    if result.stopped_on_nan:
        raise RuntimeError(f"{name}: training stopped on a non-finite loss; nothing is packaged.")
    write_json(os.path.join(run_dir, "training.json"), {
        "name": name,
        "command": command,
        "cli_command": f"keras-gen train {spec['preset']} --out {_relative(run_dir)}",
        "seconds": seconds,
        "epochs": result.epochs_done,
        "environment": provenance.environment(),
    })
    print(f"{name}: trained in {seconds:.0f} s ({run_dir})", flush=True)
    return run_dir


# ---------------------------------------------------------------------------------------------------------- package
def write_float16_weights(network, path):
    """Writes ``network``'s Keras weight file with its values stored in float16 (Keras casts them back to each
    variable's float32 when it loads the file)."""
    import tempfile

    import h5py

    with tempfile.TemporaryDirectory() as tmp:
        full = os.path.join(tmp, "float32.weights.h5")
        network.save_weights(full)
        with h5py.File(full, "r") as source, h5py.File(path, "w") as target:
            def copy(group_in, group_out):
                group_out.attrs.update(dict(group_in.attrs))
                for key, item in group_in.items():
                    if isinstance(item, h5py.Group):
                        copy(item, group_out.create_group(key))
                    else:
                        data = item[()]
                        if getattr(data, "dtype", None) is not None and data.dtype.kind == "f":
                            data = data.astype("float16")
                        out = group_out.create_dataset(key, data=data)
                        out.attrs.update(dict(item.attrs))

            copy(source, target)


def _training_steps(model):
    import keras
    import numpy as np

    return max(int(np.asarray(v.iterations)) for v in vars(model).values() if isinstance(v, keras.optimizers.Optimizer))


def package(name, run_dir, out, command):
    """Writes ``out/name`` from the trained run: the float16 weights, config, dataset description, record and the
    reference samples. Returns the folder."""
    import numpy as np

    from keras_gen import provenance
    from keras_gen.files import write_json
    from keras_gen.pretrained import RECORD, load_model_dir
    from keras_gen.runs import load_run

    spec = MODELS[name]
    with open(os.path.join(run_dir, "training.json"), encoding="utf-8") as f:
        training = json.load(f)
    model = load_run(run_dir, compile=True)
    final = os.path.join(out, name)
    stage = os.path.join(out, f".{name}.staging")
    shutil.rmtree(stage, ignore_errors=True)
    os.makedirs(stage)
    try:
        weights = {}
        for role in spec["networks"]:
            weights[role] = f"{role}.weights.h5"
            write_float16_weights(getattr(model, role), os.path.join(stage, weights[role]))
        shutil.copy(os.path.join(run_dir, "config.json"), stage)
        shutil.copy(os.path.join(run_dir, "dataset.json"), stage)
        with open(os.path.join(run_dir, "config.json"), encoding="utf-8") as f:
            config = json.load(f)
        record = {
            "name": name,
            "preset": spec["preset"],
            "weights": weights,
            "storage": "float16",
            "trained_steps": _training_steps(model),
            "epochs": training["epochs"],
            "seed": config["seed"],
            "train_command": training["command"],
            "train_cli_command": training["cli_command"],
            "train_seconds": round(training["seconds"], 1),
            "package_command": command,
            # Where it trained (runs trained before training.json recorded it: where it was packaged).
            "environment": training.get("environment") or provenance.environment(),
        }
        write_json(os.path.join(stage, RECORD), record)
        loaded = load_model_dir(stage)
        full = model.generate(256, seed=0)
        half = loaded.generate(256, seed=0)
        error = float(np.max(np.abs(full - half)))
        if error > FLOAT16_TOLERANCE:
            raise ValueError(
                f"{name}: samples of the float16 weights differ from the float32 model's by {error:.4g} > "
                f"{FLOAT16_TOLERANCE:.4g}; not shipped."
            )
        record["float16_max_error"] = error
        record["float16_tolerance"] = FLOAT16_TOLERANCE
        write_json(os.path.join(stage, RECORD), record)
        reference = loaded.generate(REFERENCE["n"], seed=REFERENCE["seed"])
        np.save(os.path.join(stage, "samples.npy"), reference.astype("float32"))
        if os.path.isdir(final):
            shutil.rmtree(final)
        os.rename(stage, final)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    print(f"{name}: packaged into {final} (float16 samples within {error:.2g} of float32)", flush=True)
    return final


# --------------------------------------------------------------------------------------------------------- evaluate
def _summary(result):
    """A likelihood result without its per-image arrays."""
    import numpy as np

    return {key: value for key, value in result.items() if not isinstance(value, np.ndarray)}


def evaluate(name, folder):
    """``keras-gen evaluate pretrained:NAME --out FOLDER/eval.json`` with default settings (what the command line
    passes), and for a VAE the likelihood into ``likelihood.json``."""
    from keras_gen.metrics import elbo, iw_nll
    from keras_gen.metrics.evaluate import format_table
    from keras_gen.provenance import write_report
    from keras_gen.runs import evaluate_run

    path = os.path.join(folder, "eval.json")
    results = evaluate_run(f"pretrained:{name}", None, n=None, extractor="auto", seed=0, batch_size=500,
                           progress=False)
    results["command"] = f"keras-gen evaluate pretrained:{name} --out {_relative(path)}"
    write_report(path, results)
    print(format_table(results), flush=True)
    if MODELS[name]["networks"] == ("encoder", "decoder"):
        from keras_gen import data
        from keras_gen.pretrained import from_preset

        model = from_preset(name)
        images, labels = data.load_arrays("mnist", "test")
        labels = labels if model.num_classes else None
        start = time.perf_counter()
        lower = elbo(model, images, labels, binarize=LIKELIHOOD["binarize"], seed=LIKELIHOOD["seed"])
        bound = iw_nll(model, images, labels, k=LIKELIHOOD["k"], binarize=LIKELIHOOD["binarize"],
                       seed=LIKELIHOOD["seed"])
        write_report(os.path.join(folder, "likelihood.json"), {
            "model": f"pretrained:{name}",
            "protocol": {**LIKELIHOOD, "data": "mnist test split", "num_images": len(images)},
            "elbo": _summary(lower),
            "iw_nll": _summary(bound),
            "seconds": time.perf_counter() - start,
        })
        print(f"{name}: ELBO {lower['mean_elbo']:.2f}, IW-NLL {bound['mean_nll']:.2f} nats", flush=True)
    return path


# ------------------------------------------------------------------------------------------------------------- card
METRIC_ROWS = (
    # (label, path into the report's "metrics", digits)
    ("FID", ("fid", "value"), 2),
    ("KID", ("kid", "mean"), 3),
    ("KID std", ("kid", "std"), 3),
    ("IS", ("is", "mean"), 3),
    ("IS std", ("is", "std"), 3),
    ("IS of the real digits", ("is", "real_mean"), 3),
    ("precision", ("pr", "precision"), 3),
    ("recall", ("pr", "recall"), 3),
    ("classes covered", ("coverage", "modes"), 0),
    ("KL of the class histogram to uniform", ("coverage", "kl"), 4),
)
"""The card's evaluation rows; tests/test_pretrained.py reads the card back with the same table."""

LIKELIHOOD_ROWS = (
    ("ELBO (nats)", ("elbo", "mean_elbo"), 2),
    ("IW-NLL (nats)", ("iw_nll", "mean_nll"), 2),
    ("bits/dim", ("iw_nll", "bits_per_dim"), 4),
)
"""The likelihood rows of a VAE's card, read from ``likelihood.json``."""


def lookup(report, path):
    value = report
    for key in path:
        value = value[key]
    return value


def _cell(value, digits):
    return f"{value:.{digits}f}"


def card_text(folder):
    """The model card of a shipped folder, from its record and JSON reports."""
    def read(filename):
        with open(os.path.join(folder, filename), encoding="utf-8") as f:
            return json.load(f)

    record, config, report = read("pretrained.json"), read("config.json"), read("eval.json")
    name = record["name"]
    spec = MODELS[name]
    extractor = report["extractor"]
    sizes = {filename: os.path.getsize(os.path.join(folder, filename)) for filename in record["weights"].values()}
    shipped = ", ".join(f"`{f}` ({size / 2**20:.2f} MiB)" for f, size in sizes.items())
    shipped += (f"; float16 values: samples within {record['float16_max_error']:.2g} of the float32 weights' "
                f"(allowed {record['float16_tolerance']:.4f}, one 8-bit level)")
    rows = [f"| {label} | {_cell(lookup(report['metrics'], path), digits)} |" for label, path, digits in METRIC_ROWS]
    likelihood = ""
    if os.path.isfile(os.path.join(folder, "likelihood.json")):
        bound = read("likelihood.json")
        protocol = bound["protocol"]
        lines = [f"| {label} | {_cell(lookup(bound, path), digits)} |" for label, path, digits in LIKELIHOOD_ROWS]
        likelihood = (
            f"\nLikelihood on the {protocol['num_images']} held-out digits binarized at 0.5 "
            f"(`keras_gen.metrics.elbo` and `iw_nll`\nwith k = {protocol['k']:,}, seed {protocol['seed']}; "
            "[likelihood.json](likelihood.json)). The model trained on grey-level digits, so this is\nnot the "
            "protocol of `benchmarks/likelihood.py` (dynamically binarized training):\n\n"
            "| metric | value |\n|---|---|\n" + "\n".join(lines) + "\n"
        )
    environment = record["environment"]
    return CARD.format(
        name=name,
        title=config["description"].split(":")[0].rstrip("."),
        what=spec["what"],
        preset=record["preset"],
        epochs=config["epochs"],
        batch_size=config["batch_size"],
        seed=config["seed"],
        trained_steps=f"{record['trained_steps']:,}",
        train_command=record["train_command"],
        cli_command=record["train_cli_command"],
        train_seconds=record["train_seconds"],
        cpu_count=environment["cpu_count"],
        processor=environment["processor"],
        package_command=record["package_command"],
        shipped=shipped,
        eval_command=report["command"],
        num_samples=f"{report['num_samples']:,}",
        eval_seed=report["seed"],
        num_real=report["num_real"],
        extractor=extractor["name"],
        accuracy=f"{extractor['accuracy']:.3f}",
        metric_rows="\n".join(rows),
        likelihood=likelihood,
    )


def write_card(folder):
    path = os.path.join(folder, "README.md")
    with open(path, "w", encoding="utf-8") as f:
        f.write(card_text(folder))
    return path


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    command = command_of(argv)
    for name in args.names:
        if args.cards_only:
            print(f"{name}: model card {write_card(os.path.join(args.out, name))}", flush=True)
            continue
        run_dir = os.path.join(args.work, name)
        if not args.reuse_runs:
            train(name, args.work, command)
        elif not os.path.isfile(os.path.join(run_dir, "training.json")):
            raise SystemExit(f"--reuse-runs: {run_dir} holds no finished training run (no training.json).")
        if args.train_only:
            continue
        folder = package(name, run_dir, args.out, command)
        evaluate(name, folder)
        print(f"{name}: model card {write_card(folder)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
