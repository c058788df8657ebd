"""The mode-collapse benchmark of PacGAN (Lin et al. 2018, https://arxiv.org/abs/1712.04086), Tables 1-3.

Trains the package's presets on the 2-D ring (8 Gaussians, sigma 0.01) and the 2-D grid (25 Gaussians,
sigma 0.05) over several seeds, draws 2,500 samples from each trained generator and scores them with
`keras_gen.metrics.mode_coverage` (VEEGAN / PacGAN: a sample is high quality within 3 sigma of its nearest mode;
a mode is captured with at least one high-quality sample; reverse KL of the captured-mode histogram to uniform).
With ``--stacked`` it also trains DCGAN-style presets on stacked MNIST and counts the digit triples of 26,000
samples with the domain classifier (`keras_gen.metrics.evaluate`).

The table puts the published rows (GAN and PacGAN's best, from the PacGAN paper) and the keras-gen goal beside
the mean (± std) over seeds of each preset; the JSON holds every run; a scatter plot (or image grid) of the first
seed of each preset goes next to the JSON.

    python benchmarks/mode_collapse.py                     # 10 seeds: ring2d, pacgan-ring2d, grid2d
    python benchmarks/mode_collapse.py --quick             # 1 seed, 5 epochs: a smoke test for CI
    python benchmarks/mode_collapse.py --stacked --seeds 1 # + stacked MNIST (~20 min more on 2 idle CPU cores)
    python benchmarks/mode_collapse.py --presets grid2d --seeds 3 --merge   # add rows to an existing --out
    python benchmarks/mode_collapse.py --combine a.json b.json --out ab.json # pool seeds run side by side
    python benchmarks/mode_collapse.py --presets r1-ema-stacked-mnist --seeds 1 --first-seed 7 \
        --backup benchmarks/results/backup      # hours: rerun the same command after a stop to resume

Cost measured on 2 CPU cores: about 50 s per run of ring2d / pacgan-ring2d, 300 s of grid2d (150 epochs; R1
makes it slower), so the full 10-seed table takes about 65 minutes; ``--merge`` builds it
from shorter invocations. Stacked MNIST rows also show the summed KLs of the three channels' digit histograms
(the triples' KL is that plus the channels' dependence): a generator that draws some digits poorly shows there.
"""

import argparse
import contextlib
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # run from a checkout without installing

DATASETS = {
    "ring2d": {"title": "2D ring", "modes": 8},
    "grid2d": {"title": "2D grid", "modes": 25},
    "stacked_mnist": {"title": "stacked MNIST", "modes": 1000},
}

# PacGAN (Lin et al. 2018) Table 1 (2-D ring), Table 2 (2-D grid), Table 3 (stacked MNIST): the GAN / DCGAN row
# and the best PacGAN row.
PUBLISHED = {
    "ring2d": [
        ("GAN (PacGAN paper)", {"modes": 6.3, "high_quality": 0.982, "reverse_kl": 0.45}),
        ("PacGAN, best row (PacGAN paper)", {"modes": 7.9, "high_quality": 0.956, "reverse_kl": 0.07}),
    ],
    "grid2d": [
        ("GAN (PacGAN paper)", {"modes": 17.3, "high_quality": 0.948, "reverse_kl": 0.70}),
        ("PacGAN, best row (PacGAN paper)", {"modes": 24.8, "high_quality": 0.936, "reverse_kl": 0.04}),
    ],
    "stacked_mnist": [
        ("DCGAN (PacGAN paper)", {"modes": 99.0, "kl": 3.40}),
        ("PacDCGAN, best row (PacGAN paper)", {"modes": 1000.0, "kl": 0.06}),
    ],
}
GOAL = {
    "ring2d": {"modes": 8.0, "high_quality": 0.98, "reverse_kl": 0.02},
    "grid2d": {"modes": 25.0, "high_quality": 0.95, "reverse_kl": 0.02},
    "stacked_mnist": {"modes": 1000.0, "kl": 0.05},
}

DEFAULT_PRESETS = ("ring2d", "pacgan-ring2d", "grid2d")
STACKED_PRESETS = ("dcgan-stacked-mnist", "pacgan-stacked-mnist", "r1-stacked-mnist", "r1-ema-stacked-mnist")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 seed and 5 epochs per preset (a smoke test)")
    parser.add_argument("--seeds", type=int, help="number of seeds 0..N-1 (default 10, or 1 with --quick)")
    parser.add_argument("--first-seed", type=int, default=0, help="start the seeds here (default 0)")
    parser.add_argument("--epochs", type=int, help="override every preset's epochs (default: the preset's)")
    parser.add_argument("--presets", help=f"comma-separated presets (default: {','.join(DEFAULT_PRESETS)})")
    parser.add_argument(
        "--stacked", action="store_true",
        help="also train the stacked-MNIST presets (DCGAN on 50,000 28x28x3 images, 781 steps per epoch; measured "
        "on 2 CPU cores: pacgan-stacked-mnist ~45 s per epoch idle, ~2 min busy; dcgan-stacked-mnist ~1.6x that; "
        "r1-stacked-mnist and r1-ema-stacked-mnist ~2 min per epoch idle, ~2.9 min each with two side by side, "
        "and 30 epochs, so 1-1.5 hours per seed; 10 seeds of all four take ~20 hours here, minutes on a GPU)",
    )
    parser.add_argument("--stacked-epochs", type=int, help="epochs of the stacked-MNIST presets (default: preset's)")
    parser.add_argument("--n", type=int, help="samples per evaluation (default 2,500 points / 26,000 stacked MNIST)")
    parser.add_argument("--out", help="JSON file (default benchmarks/results/mode_collapse[_quick].json)")
    parser.add_argument("--plots", help="folder for the plots (default: the JSON's folder)")
    parser.add_argument(
        "--retable", action="store_true",
        help="train nothing: rebuild the tables (and the training-data calibration rows) of the results in --out",
    )
    parser.add_argument(
        "--combine", nargs="+", metavar="JSON",
        help="train nothing: one table from the runs in these --out files (e.g. one seed per process, run side by "
        "side on the cores), each preset's runs pooled over the files; a seed may appear once per preset",
    )
    parser.add_argument(
        "--curve-every", type=int,
        help="also score every K epochs during training and keep the curve in the JSON (the presets' learning rates "
        "depend on the step, not on the number of epochs, so epoch N of a longer run is exactly an N-epoch run: one "
        "long run shows where more epochs stop helping)",
    )
    parser.add_argument(
        "--backup", metavar="DIR",
        help="keep a backup of each run in DIR/PRESET_seedS at every epoch's end and resume from it: rerun the same "
        "command after a stop. A resumed run shuffles its later epochs afresh, so it trains the same recipe along "
        "another path than an unstopped one; the JSON lists the epochs it resumed at (resumed_at). The backups "
        "stay (rerunning a finished run only scores it again): delete DIR to train anew",
    )
    parser.add_argument("--verbose", type=int, default=0, choices=[0, 1, 2], help="Keras fit verbosity")
    parser.add_argument(
        "--merge", action="store_true",
        help="keep the other presets' results already in --out (to build one table from runs under 10 minutes each)",
    )
    args = parser.parse_args(argv)
    if args.seeds is None:
        args.seeds = 1 if args.quick else 10
    if args.epochs is None and args.quick:
        args.epochs = 5
    for name in ("seeds", "epochs", "stacked_epochs", "n", "curve_every"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {value}.")
    names = args.presets.split(",") if args.presets else list(DEFAULT_PRESETS)
    if args.stacked:
        names += [p for p in STACKED_PRESETS if p not in names]
    args.preset_names = [] if args.retable or args.combine else [p.strip() for p in names if p.strip()]
    if args.retable:
        args.merge = True
    if args.out is None:
        args.out = os.path.join(ROOT, "benchmarks", "results", "mode_collapse_quick.json" if args.quick
                                else "mode_collapse.json")
    if args.plots is None:
        args.plots = os.path.dirname(os.path.abspath(args.out))
    return args


def check_presets(names):
    from keras_gen import presets

    for name in names:
        if message := presets.removed_preset(name):
            raise SystemExit(message)
        if name not in presets.PRESETS:
            raise SystemExit(f"Unknown preset {name!r}. Valid presets: {', '.join(sorted(presets.PRESETS))}.")
        dataset = presets.PRESETS[name]["dataset"]
        if dataset not in DATASETS:
            raise SystemExit(f"Preset {name!r} trains on {dataset!r}; this benchmark covers {', '.join(DATASETS)}.")


STACKED_KEYS = ("modes", "kl", "channel_kl", "channel_counts")


def score(model, dataset, n, seed):
    """The coverage scores of ``n`` samples of ``model`` (drawn from fixed latents: training's RNG is untouched);
    ``dataset`` may be a mixture named with parameters (``"ring2d:K=12"``, `keras_gen.data.mixture_modes`)."""
    from keras_gen.metrics import evaluate

    result = evaluate(model, ["coverage"], dataset=dataset, n=n, seed=seed, progress=False)
    coverage = result["metrics"]["coverage"]
    keys = ("modes", "high_quality", "reverse_kl", "counts") if "high_quality" in coverage else STACKED_KEYS
    scores = {"num_samples": result["num_samples"], **{k: coverage[k] for k in keys}}
    if "channel_kl" in scores:
        scores["channel_kl_sum"] = sum(scores["channel_kl"])
    if "high_quality" not in coverage:
        scores["extractor"] = result["extractor"]
    return scores


def _keeps_average(model):
    """Whether the generator's optimizer keeps a weight average (``use_ema``) that `GAN.fit` puts in place."""
    return bool(getattr(model, "keeps_generator_average", False))


@contextlib.contextmanager
def _standing_statistics(model):
    """Inside the block the generator's batch normalizations hold statistics recomputed for its current weights
    (`GAN.recompute_generator_statistics`); on exit, exception or not, the moving statistics training keeps
    (`GAN.restoring_generator_statistics`). Yields the number of batch normalizations (0: nothing recomputed)."""
    with model.restoring_generator_statistics() as layers:
        yield model.recompute_generator_statistics() if layers else 0


def _curve_scores(scores):
    return {k: v for k, v in scores.items() if k not in ("counts", "channel_counts", "extractor")}


def _shown(scores):
    keys = [k for k in ("modes", "high_quality", "reverse_kl", "kl", "channel_kl_sum") if k in scores]
    return ", ".join(f"{k}={scores[k]:.4g}" if scores[k] is not None else f"{k}=n/a" for k in keys)


def _curve_callback(every, dataset, n, seed, label, state=None):
    """A callback whose ``curve`` gets ``{"epoch", "seconds", scores...}`` every ``every`` epochs (none when
    ``every`` is None) (and ``"averaged": {scores...}`` of the optimizers' weight averages when the model keeps them,
    ``use_ema``, and ``"standing": {scores...}`` of the average with batch-norm statistics recomputed for it);
    ``scoring`` is the time spent scoring, `training_seconds()` the time spent training (``total`` at the end).

    With ``state`` (a JSON path) it writes the curve and the training seconds there at every epoch's end, and a
    run that `RunBackup` resumes at epoch E takes them back (the points up to E) and records E in
    ``resumed_at``."""
    import keras

    from keras_gen.files import write_json

    class ScoreCurve(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.curve, self.start, self.scoring, self.before, self.resumed_at = [], time.perf_counter(), 0.0, 0.0, []
            self._first_epoch = True

        def training_seconds(self):
            return self.before + time.perf_counter() - self.start - self.scoring

        def on_epoch_begin(self, epoch, logs=None):
            if self._first_epoch and epoch:  # resumed from a backup of `epoch` finished epochs
                self._take_back(epoch)
            self._first_epoch = False

        def on_train_end(self, logs=None):
            if self._first_epoch:  # no epoch left to train: the backup was of the finished run
                self._take_back(None)
            self.total = self.training_seconds()

        def _take_back(self, epoch):
            saved = {"curve": [], "seconds": 0.0, "resumed_at": []}
            if state and os.path.isfile(state):
                with open(state) as f:
                    saved = json.load(f)
            self.curve = [point for point in saved["curve"] if epoch is None or point["epoch"] <= epoch]
            self.before, self.start, self.scoring = saved["seconds"], time.perf_counter(), 0.0  # restoring took time
            self.resumed_at = saved["resumed_at"] + ([epoch] if epoch is not None else [])

        def on_epoch_end(self, epoch, logs=None):
            if every and (epoch + 1) % every == 0:
                self._score(epoch)
            if state:
                record = {"epoch": epoch + 1, "seconds": round(self.training_seconds(), 1), "curve": self.curve,
                          "resumed_at": self.resumed_at}

                write_json(state, _strict(record), allow_nan=False)

        def _score(self, epoch):
            now = time.perf_counter()
            seconds = self.training_seconds()  # training seconds so far
            point = {"epoch": epoch + 1, "seconds": round(seconds, 1),
                     **_curve_scores(score(self.model, dataset, n, seed))}
            shown = _shown(point)
            if _keeps_average(self.model):  # also score what fit would leave in place if it ended now
                with self.model.averaged_weights():
                    point["averaged"] = _curve_scores(score(self.model, dataset, n, seed))
                    shown += f"; averaged weights: {_shown(point['averaged'])}"
                    with _standing_statistics(self.model) as layers:  # and the average with statistics of its own
                        if layers:
                            point["standing"] = _curve_scores(score(self.model, dataset, n, seed))
                    if "standing" in point:
                        shown += f"; with recomputed statistics: {_shown(point['standing'])}"
            self.scoring += time.perf_counter() - now
            self.curve.append(point)
            print(f"{label} epoch {epoch + 1}: {shown} ({seconds:.0f} s)", flush=True)

    return ScoreCurve()


def train_and_score(preset, seed, epochs, n, verbose, curve_every=None, backup=None, dataset=None):
    """Trains one preset with one seed (on ``dataset`` instead of its own when given: another mixture, named with
    parameters); returns (scores dict, samples for the plot, the run's config).

    With ``backup`` (a folder) the run commits every epoch there (`keras_gen.callbacks.RunBackup`, plus the curve
    so far) and resumes from the last commit when one is there, in the data order of the uninterrupted run
    (`keras_gen.callbacks.ShuffleEpoch`, as `keras_gen.train_run` does)."""
    import keras
    import tensorflow as tf

    from keras_gen import callbacks as cbs
    from keras_gen import data, presets

    config = presets.get_config(preset, seed=seed, epochs=epochs, dataset=dataset)
    keras.utils.set_random_seed(seed)
    epoch = tf.Variable(0, dtype=tf.int64, trainable=False)  # each epoch's data order: a function of (seed, epoch)
    dataset = data.load_dataset(config.dataset, split="train", batch_size=config.batch_size, seed=seed, epoch=epoch)
    model = presets.build_model(config)
    callbacks, curve = [cbs.ShuffleEpoch(epoch)], None
    if curve_every or backup:
        state = os.path.join(backup, "curve.json") if backup else None
        curve = _curve_callback(curve_every, config.dataset, n, seed, f"{preset} seed {seed}", state)
        callbacks.append(curve)
    if backup:  # after the curve: a commit never runs ahead of the curve it resumes with
        callbacks.append(cbs.RunBackup(backup))
    start = time.perf_counter()
    model.fit(dataset, epochs=config.epochs, verbose=verbose, shuffle=False, callbacks=callbacks)  # data shuffles
    seconds = curve.total if curve is not None else time.perf_counter() - start
    run = {"seed": seed, "epochs": config.epochs, "seconds": round(seconds, 1),
           "weights": "averaged" if _keeps_average(model) else "live"}  # fit put use_ema averages in place
    run.update(score(model, config.dataset, n, seed))
    if curve is not None and curve.curve:
        run["curve"] = curve.curve
    if curve is not None and curve.resumed_at:
        run["resumed_at"] = curve.resumed_at
    samples = model.generate(64 if config.dataset == "stacked_mnist" else 2500, seed=seed)
    return run, samples, config


class TrainingData:
    """A "sampler" that draws fresh training data, scored exactly as the generators are: the calibration row
    (what a perfect generator would get with this many samples and this classifier)."""

    def __init__(self, dataset):
        self.name = f"{dataset} training data"
        self.dataset = dataset

    def sample(self, count, seed=0):
        from keras_gen import data

        seed = int(seed)  # evaluate draws batch i with seed + i * 2**32: fold the high bits in
        x, _ = data.load_arrays(self.dataset, split="train", num_samples=count, seed=(seed ^ (seed >> 32)) % 2**31)
        return x


def calibration(dataset, n):
    """The scores of ``n`` training samples of ``dataset`` (seed 0)."""
    from keras_gen.metrics import evaluate

    coverage = evaluate(TrainingData(dataset), ["coverage"], dataset=dataset, n=n, seed=0, progress=False)
    coverage = coverage["metrics"]["coverage"]
    if dataset == "stacked_mnist":
        return {"modes": coverage["modes"], "kl": coverage["kl"], "channel_kl_sum": sum(coverage["channel_kl"])}
    return {k: coverage[k] for k in ("modes", "high_quality", "reverse_kl")}


def combine(paths):
    """(results, invocations) of several --out files: each preset's runs pooled, its mean, std and goal again."""
    from keras_gen import presets

    results, invocations = {}, []
    for path in paths:
        try:
            with open(path) as f:
                report = json.load(f)
            report_results = report["results"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise SystemExit(f"--combine {path}: not a mode_collapse.py JSON report ({error!r}).") from None
        invocations += report.get("invocations", [])
        for name, r in report_results.items():
            if name not in results:
                results[name] = {**r, "runs": list(r["runs"]), "command": [r.get("command")]}
                continue
            pooled = results[name]
            for run in r["runs"]:
                if any(run["seed"] == other["seed"] for other in pooled["runs"]):
                    raise SystemExit(f"{path}: {name} seed {run['seed']} is already in another --combine file.")
                if (run["epochs"], run["num_samples"]) != (pooled["epochs"], pooled["runs"][0]["num_samples"]):
                    raise SystemExit(
                        f"{path}: {name} seed {run['seed']} ran {run['epochs']} epochs scored on "
                        f"{run['num_samples']} samples; the other files' runs: {pooled['epochs']} epochs, "
                        f"{pooled['runs'][0]['num_samples']} samples. Only like runs pool into one row."
                    )
            pooled["runs"] += r["runs"]
            pooled["command"].append(r.get("command"))
    for name, r in results.items():
        r["runs"].sort(key=lambda run: run["seed"])
        keys = [k for k in _summary_keys(r["dataset"]) if all(k in run for run in r["runs"])]
        r["mean"], r["std"] = summarize(r["runs"], keys)
        r["goal_met"] = goal_met(r["dataset"], r["mean"])
        r["seconds_per_run"] = sum(run["seconds"] for run in r["runs"]) / len(r["runs"])
        if name in presets.PRESETS:  # today's description, not the first file's
            r["description"] = presets.PRESETS[name]["description"]
        r["command"] = "; ".join(dict.fromkeys(c for c in r["command"] if c))
        r.pop("wall_seconds", None)  # the runs' processes overlapped: each invocation keeps its own wall time
    return results, invocations


def _distinct(invocations, describe):
    """``describe(environment)`` of each invocation, in order and without repeats; an invocation whose report has
    no environment, or where ``describe`` gives nothing, is left out."""
    described = (describe(invocation.get("environment") or {}) for invocation in invocations)
    return list(dict.fromkeys(text for text in described if text))


def source_revisions(invocations):
    """The keras-gen revisions (short commit, ``+dirty`` for uncommitted changes) the invocations ran, in order;
    invocations from before the reports recorded it, or from a checkout without git, are left out."""
    def revision(environment):
        source = environment.get("source")
        return source and source["commit"][:7] + ("+dirty" if source["dirty"] else "")

    return _distinct(invocations, revision)


def processors(invocations):
    """The processors (with their core counts) the invocations ran on, in order, so that pooled wall times from
    different machines are not compared as if from one; invocations that did not record it are left out."""
    return _distinct(invocations, lambda e: e.get("processor") and f"{e['processor']} x{e.get('cpu_count')}")


def curve_key(dataset):
    """The score a training curve follows: KL to uniform on stacked MNIST, reverse KL on the 2-D mixtures."""
    return "kl" if dataset == "stacked_mnist" else "reverse_kl"


def _summary_keys(dataset):
    """The run scores a table row averages over seeds."""
    return ("modes", "kl", "channel_kl_sum") if dataset == "stacked_mnist" else ("modes", "high_quality", "reverse_kl")


def summarize(runs, keys):
    """Mean and std over runs; an undefined value (None: no high-quality sample, so no KL) makes them NaN."""
    import numpy as np

    def values(k):
        return np.array([np.nan if r[k] is None else r[k] for r in runs], dtype=float)

    return ({k: float(np.mean(values(k))) for k in keys}, {k: float(np.std(values(k))) for k in keys})


def _strict(value):
    """NaN -> None, recursively, so the report is strict JSON."""
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strict(v) for v in value]
    return None if isinstance(value, float) and value != value else value


def goal_met(dataset, mean):
    goal = GOAL[dataset]
    if dataset == "stacked_mnist":
        return mean["modes"] >= goal["modes"] - 0.5 and mean["kl"] <= goal["kl"]
    return (mean["modes"] >= goal["modes"] - 1e-9 and mean["high_quality"] >= goal["high_quality"]
            and mean["reverse_kl"] <= goal["reverse_kl"])


def _cell(mean, std, key, scale=1.0, digits=1, seeds=1):
    value = f"{mean[key] * scale:.{digits}f}"
    return value if seeds == 1 else f"{value} ± {std[key] * scale:.{digits}f}"


def format_tables(results, calibrations=None):
    """PacGAN-style Markdown tables, one per dataset: published rows, the goal, the training data itself (when
    ``calibrations`` has it), then each preset (mean ± std over its seeds)."""
    calibrations = calibrations or {}
    lines = []
    for dataset, spec in DATASETS.items():
        rows = {name: r for name, r in results.items() if r["dataset"] == dataset}
        if not rows:
            continue
        stacked = dataset == "stacked_mnist"
        n = next(iter(rows.values()))["runs"][0]["num_samples"]
        lines.append(f"### {spec['title']} ({spec['modes']} modes): {n:,} samples per run, mean ± std over seeds")
        lines.append("")
        if stacked:
            lines += [
                "| | modes (of 1000) | KL to uniform | channel KLs, summed | goal met | seeds | s / run |",
                "|---|---|---|---|---|---|---|",
            ]
            for label, value in PUBLISHED[dataset]:
                lines.append(f"| {label} | {value['modes']:.0f} | {value['kl']:.2f} | | | | |")
            goal = GOAL[dataset]
            lines.append(f"| **keras-gen goal** | **{goal['modes']:.0f}** | **≤ {goal['kl']}** | | | | |")
            if dataset in calibrations:
                c = calibrations[dataset]
                lines.append(f"| *training data, {n:,} samples (calibration)* | {c['modes']:.0f} | {c['kl']:.3f} | "
                             f"{c['channel_kl_sum']:.3f} | | | |")
            for name, r in rows.items():
                m, s, num_seeds = r["mean"], r["std"], len(r["runs"])
                channels = _cell(m, s, "channel_kl_sum", digits=3, seeds=num_seeds) if "channel_kl_sum" in m else "—"
                lines.append(
                    f"| {name} | {_cell(m, s, 'modes', seeds=num_seeds)} | "
                    f"{_cell(m, s, 'kl', digits=3, seeds=num_seeds)} | {channels}"
                    f" | {'yes' if r['goal_met'] else 'no'} | {num_seeds} | {r['seconds_per_run']:.0f} |"
                )
        else:
            lines += [
                f"| | modes (of {spec['modes']}) | high-quality samples (%) | reverse KL | goal met | seeds "
                "| s / run |",
                "|---|---|---|---|---|---|---|",
            ]
            for label, value in PUBLISHED[dataset]:
                lines.append(f"| {label} | {value['modes']:.1f} | {100 * value['high_quality']:.1f} | "
                             f"{value['reverse_kl']:.2f} | | | |")
            goal = GOAL[dataset]
            lines.append(f"| **keras-gen goal** | **{goal['modes']:.1f}** | **≥ {100 * goal['high_quality']:.0f}** | "
                         f"**≤ {goal['reverse_kl']}** | | | |")
            if dataset in calibrations:
                c = calibrations[dataset]
                lines.append(f"| *training data, {n:,} samples (calibration)* | {c['modes']:.1f} | "
                             f"{100 * c['high_quality']:.1f} | {c['reverse_kl']:.3f} | | | |")
            for name, r in rows.items():
                m, s, num_seeds = r["mean"], r["std"], len(r["runs"])
                lines.append(
                    f"| {name} | {_cell(m, s, 'modes', seeds=num_seeds)} | "
                    f"{_cell(m, s, 'high_quality', 100, seeds=num_seeds)} | "
                    f"{_cell(m, s, 'reverse_kl', digits=3, seeds=num_seeds)} | "
                    f"{'yes' if r['goal_met'] else 'no'} | {num_seeds} | {r['seconds_per_run']:.0f} |"
                )
        lines.append("")
    lines += _curve_table(results)
    return "\n".join(lines)


def _curve_table(results):
    """Markdown lines of the scores taken during training (``--curve-every``), one row per run; [] when none."""
    runs = [(name, run) for name, r in results.items() for run in r["runs"] if run.get("curve")]
    if not runs:
        return []
    epochs = sorted({point["epoch"] for _, run in runs for point in run["curve"]})
    key = {name: curve_key(r["dataset"]) for name, r in results.items()}
    lines = [
        "### Scored during training (KL to uniform; reverse KL on the 2-D mixtures; --curve-every; in brackets, "
        "the generator's weight average when its optimizer keeps one, then that average with batch-norm statistics "
        "recomputed for it)",
        "",
        "| preset | seed | " + " | ".join(f"epoch {e}" for e in epochs) + " |",
        "|---|---|" + "---:|" * len(epochs),
    ]
    for name, run in runs:
        by_epoch = {point["epoch"]: point for point in run["curve"]}
        cells = [_curve_cell(by_epoch.get(e), key[name]) for e in epochs]
        lines.append(f"| {name} | {run['seed']} | " + " | ".join(cells) + " |")
    return lines + [""]


def _curve_cell(point, key):
    """``0.060``, ``0.060 (0.051)`` with the score of the averaged weights, or ``0.060 (0.051, 0.048)`` with that
    of the average on recomputed statistics too."""
    if point is None or point.get(key) is None:
        return ""
    others = [(point.get(name) or {}).get(key) for name in ("averaged", "standing")]
    others = [f"{value:.3f}" for value in others if value is not None]
    return f"{point[key]:.3f}" + (f" ({', '.join(others)})" if others else "")


def save_plot(samples, config, path):
    from keras_gen.data import mixture_modes
    from keras_gen.images import save_image_grid, save_scatter

    if config.dataset == "stacked_mnist":
        return save_image_grid(samples, path)
    centers, _ = mixture_modes(config.dataset)
    return save_scatter(samples, path, centers=centers, title=f"{config.preset} (seed {config.seed})")


def main(argv=None):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    args = parse_args(argv)
    check_presets(args.preset_names)
    from keras_gen import presets, provenance

    environment = provenance.environment()  # the code this process starts with, however long it trains
    start = time.perf_counter()
    stem = os.path.splitext(os.path.basename(args.out))[0]
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    results = {}
    for name in args.preset_names:
        dataset = presets.PRESETS[name]["dataset"]
        epochs = args.stacked_epochs if dataset == "stacked_mnist" and args.stacked_epochs else args.epochs
        n = args.n or (26_000 if dataset == "stacked_mnist" else 2_500)
        runs = []
        for seed in seeds:
            backup = os.path.join(args.backup, f"{name}_seed{seed}") if args.backup else None
            run, samples, config = train_and_score(name, seed, epochs, n, args.verbose, args.curve_every, backup)
            runs.append(run)
            scores = ", ".join(f"{k}={run[k]}" for k in ("modes", "high_quality", "reverse_kl", "kl") if k in run)
            print(f"{name} seed {seed}: {scores} ({run['seconds']:.0f} s training)", flush=True)
            if seed == seeds[0]:
                save_plot(samples, config, os.path.join(args.plots, f"{stem}_{name}.png"))
        mean, std = summarize(runs, _summary_keys(dataset))
        results[name] = {
            "dataset": dataset,
            "description": presets.PRESETS[name]["description"],
            "epochs": runs[0]["epochs"],
            "runs": runs,
            "mean": mean,
            "std": std,
            "goal_met": goal_met(dataset, mean),
            "seconds_per_run": sum(r["seconds"] for r in runs) / len(runs),
        }
    wall = time.perf_counter() - start
    command = provenance.command_line("benchmarks/mode_collapse.py", argv)
    for r in results.values():
        r.update(command=command, wall_seconds=round(wall, 1))
    invocations = [{"command": command, "wall_seconds": round(wall, 1), "presets": list(results),
                    "environment": environment}]
    if args.retable:
        invocations = []
    if args.combine:
        results, invocations = combine(args.combine)
        seeds = sorted({run["seed"] for r in results.values() for run in r["runs"]})
    if args.merge and os.path.isfile(args.out):
        with open(args.out) as f:
            previous = json.load(f)
        results = {**{k: v for k, v in previous.get("results", {}).items() if k not in results}, **results}
        invocations = previous.get("invocations", []) + invocations
        if args.retable:  # the report still describes the last training invocation
            command, wall = previous.get("command", command), previous.get("wall_seconds", wall)
    calibrations = {}
    for dataset in sorted({r["dataset"] for r in results.values()}):
        n = next(r for r in results.values() if r["dataset"] == dataset)["runs"][0]["num_samples"]
        calibrations[dataset] = calibration(dataset, n)
    table = format_tables(results, calibrations)
    print(table)
    if args.combine:  # the pooled runs' own commands and wall times
        for invocation in invocations:
            print(f"Ran: {invocation['command']} ({invocation['wall_seconds']:.0f} s)")
        revisions = source_revisions(invocations)
        if len(revisions) > 1:
            print(f"Note: the pooled runs come from {len(revisions)} revisions of keras-gen ({', '.join(revisions)}).")
        machines = processors(invocations)
        if len(machines) > 1:
            print(f"Note: the pooled runs were timed on {len(machines)} processors ({'; '.join(machines)}); their "
                  "seconds per run are not one machine's.")
    print(f"Command: {command}\nWall time: {wall:.0f} s ({os.cpu_count()} CPU cores, {provenance.processor()})")
    report = {
        "command": command,
        "wall_seconds": round(wall, 1),
        "invocations": invocations,
        "environment": environment,
        "seeds": seeds,
        "epochs_override": args.epochs,
        "published": {d: [{"row": label, **values} for label, values in rows] for d, rows in PUBLISHED.items()},
        "goal": GOAL,
        "results": results,
        "calibration": calibrations,
        "table": table,
    }
    provenance.write_report(args.out, _strict(report), allow_nan=False)
    print(f"Wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
