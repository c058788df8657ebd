"""Do the 2-D mixture presets keep their goals on mixtures they were not tuned on?

A preset is a recipe a user applies to data of their own: this trains each mixture preset (``ring2d``,
``pacgan-ring2d``, ``grid2d``) unchanged on other Gaussian mixtures of its layout, named with
parameters (`keras_gen.data.mixture_modes`): more modes, another radius and spread, the same layout embedded
linearly in 10 dimensions with small noise across its plane. Each run draws 50,000 training points as the
presets' own data does, and is scored as ``benchmarks/mode_collapse.py`` scores it (2,500 samples; a sample is
high quality within 3 sigma of its nearest mode; reverse KL of the high-quality samples' mode histogram to
uniform) against the goal of its layout (every mode; ring >= 98 %, grid >= 95 % high quality; reverse KL <= 0.02)
on the mean over seeds. Each mixture's calibration row scores its 2,500 held-out test points the same way (what a
perfect generator gets: ~98.9 % within 3 sigma in 2-D, a little less with the noise across the plane).

    python benchmarks/mixture_robustness.py                             # every preset x its layout's cases, 3 seeds
    python benchmarks/mixture_robustness.py --presets ring2d --seeds 5  # one preset
    python benchmarks/mixture_robustness.py --presets grid2d --mixtures grid2d:K=36 --merge  # add a row to --out
    python benchmarks/mixture_robustness.py --quick                     # 1 seed, 1 epoch, one case: a smoke test

Cost on 2 CPU cores: a ring run as ``ring2d`` on its own data (about a minute), a grid run as ``grid2d`` (a few
minutes); the default table is 2 x 4 ring cases and 4 grid cases, 3 seeds each (about 2 hours idle).
"""

import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # run from a checkout without installing
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # mode_collapse.py beside this script

import mode_collapse  # noqa: E402

# Mixtures each layout's presets were not tuned on: more modes, another scale (radius and spread together), another
# spread at the same scale, and the layout's plane embedded in 10-D with noise of sigma / 10 across it.
CASES = {
    "ring2d": ("ring2d:K=12", "ring2d:r=4,sigma=0.04", "ring2d:sigma=0.03", "ring2d:D=10,noise=0.001"),
    "grid2d": ("grid2d:K=36", "grid2d:step=0.5,sigma=0.0125", "grid2d:sigma=0.1", "grid2d:D=10,noise=0.005"),
}
PRESETS = ("ring2d", "pacgan-ring2d", "grid2d")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", help=f"comma-separated mixture presets (default: {','.join(PRESETS)})")
    parser.add_argument(
        "--mixtures", nargs="+", metavar="MIXTURE",
        help="mixtures named with parameters, e.g. ring2d:K=12,r=2 grid2d:K=36 (keras_gen.data.mixture_modes); each "
        "preset trains on those of its own layout (default: CASES)",
    )
    parser.add_argument("--seeds", type=int, help="number of seeds 0..N-1 (default 3, or 1 with --quick)")
    parser.add_argument("--first-seed", type=int, default=0, help="start the seeds here (default 0)")
    parser.add_argument("--epochs", type=int, help="override every preset's epochs (default: the preset's)")
    parser.add_argument("--n", type=int, default=2500, help="samples per evaluation (default 2,500)")
    parser.add_argument("--quick", action="store_true",
                        help="1 seed, 1 epoch, the first preset on the first case of its layout (or on --mixtures): "
                        "a smoke test")
    parser.add_argument("--out", help="JSON file (default benchmarks/results/mixture_robustness[_quick].json)")
    parser.add_argument("--merge", action="store_true",
                        help="keep the other (preset, mixture) rows already in --out (build the table in parts)")
    parser.add_argument("--verbose", type=int, default=0, choices=[0, 1, 2], help="Keras fit verbosity")
    args = parser.parse_args(argv)
    if args.seeds is None:
        args.seeds = 1 if args.quick else 3
    if args.epochs is None and args.quick:
        args.epochs = 1
    for name in ("seeds", "epochs", "n"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name} must be >= 1, got {value}.")
    args.preset_names = [p.strip() for p in (args.presets or ",".join(PRESETS)).split(",") if p.strip()]
    if args.quick and not args.presets:
        args.preset_names = args.preset_names[:1]
    args.mixture_names = args.mixtures
    if args.out is None:
        args.out = os.path.join(ROOT, "benchmarks", "results",
                                "mixture_robustness_quick.json" if args.quick else "mixture_robustness.json")
    return args


def plan(preset_names, mixture_names=None, quick=False):
    """``[(preset, mixture), ...]``: each preset with the mixtures of its own layout (``mixture_names`` or
    `CASES`); a SystemExit names an unknown preset, a preset of another kind or a bad mixture name."""
    from keras_gen import data, presets

    pairs = []
    for name in preset_names:
        if message := presets.removed_preset(name):
            raise SystemExit(message)
        if name not in presets.PRESETS or presets.PRESETS[name]["dataset"] not in CASES:
            valid = sorted(p for p, v in presets.PRESETS.items() if v["dataset"] in CASES)
            raise SystemExit(f"Unknown mixture preset {name!r}. Valid presets: {', '.join(valid)}.")
        layout = presets.PRESETS[name]["dataset"]
        mixtures = CASES[layout] if mixture_names is None else [m for m in mixture_names
                                                               if m.partition(":")[0] == layout]
        pairs += [(name, mixture) for mixture in (mixtures[:1] if quick and mixture_names is None else mixtures)]
    for mixture in mixture_names or ():
        if mixture.partition(":")[0] not in CASES:
            raise SystemExit(f"--mixtures: {mixture!r} is not a ring2d or grid2d mixture (e.g. ring2d:K=12,r=2).")
        try:
            data.mixture_modes(mixture)
        except ValueError as error:
            raise SystemExit(f"--mixtures: {error}") from None
    if not pairs:
        raise SystemExit("No (preset, mixture) pair to run: give mixtures of the presets' layouts (ring2d:..., "
                         "grid2d:...).")
    return pairs


def goal(layout, num_modes):
    """The goal of a mixture of ``layout`` with ``num_modes`` modes: mode_collapse.py's, with every mode."""
    return {**mode_collapse.GOAL[layout], "modes": float(num_modes)}


def goal_met(target, mean):
    return (mean["modes"] >= target["modes"] - 1e-9 and mean["high_quality"] >= target["high_quality"]
            and mean["reverse_kl"] <= target["reverse_kl"])


def calibration(mixture, n):
    """The scores of ``n`` held-out points of the mixture itself (its test split; more are drawn when n > 2,500)."""
    from keras_gen import data
    from keras_gen.metrics import mode_coverage

    x, _ = data.load_arrays(mixture, "test", num_samples=n)
    coverage = mode_coverage(x, *data.mixture_modes(mixture))
    return {k: coverage[k] for k in ("modes", "high_quality", "reverse_kl")}


def _cell(mean, std, key, scale=1.0, digits=1, seeds=1):
    value = f"{mean[key] * scale:.{digits}f}"
    return value if seeds == 1 else f"{value} ± {std[key] * scale:.{digits}f}"


def _strict(value):
    """NaN -> None, recursively, so the report is strict JSON."""
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    return None if isinstance(value, float) and value != value else value


def format_table(results, calibrations):
    """One Markdown table: a row per (preset, mixture), mean ± std over seeds, beside the mixture's calibration."""
    header = ("| preset | mixture | modes | high-quality samples (%) | reverse KL | goal met | data itself: high "
              "quality (%) | seeds | s / run |")
    lines = [header, "|---|---|---|---|---|---|---|---|---|"]
    for r in results.values():
        m, s, num_seeds = r["mean"], r["std"], len(r["runs"])
        cell = _cell
        lines.append(
            f"| {r['preset']} | `{r['mixture']}` | {cell(m, s, 'modes', seeds=num_seeds)} of {r['num_modes']} | "
            f"{cell(m, s, 'high_quality', 100, seeds=num_seeds)} | {cell(m, s, 'reverse_kl', digits=3, seeds=num_seeds)}"
            f" | {'yes' if r['goal_met'] else 'no'} | {100 * calibrations[r['mixture']]['high_quality']:.1f} | "
            f"{num_seeds} | {r['seconds_per_run']:.0f} |"
        )
    return "\n".join(lines)


def main(argv=None):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    args = parse_args(argv)
    pairs = plan(args.preset_names, args.mixture_names, args.quick)
    from keras_gen import data, presets, provenance

    environment = provenance.environment()
    start = time.perf_counter()
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    results = {}
    for preset, mixture in pairs:
        runs = []
        for seed in seeds:
            run, _, _ = mode_collapse.train_and_score(preset, seed, args.epochs, args.n, args.verbose,
                                                      dataset=mixture)
            runs.append(run)
            print(f"{preset} on {mixture} seed {seed}: modes={run['modes']}, high_quality={run['high_quality']}, "
                  f"reverse_kl={run['reverse_kl']} ({run['seconds']:.0f} s training)", flush=True)
        layout, num_modes = presets.PRESETS[preset]["dataset"], len(data.mixture_modes(mixture)[0])
        mean, std = mode_collapse.summarize(runs, ("modes", "high_quality", "reverse_kl"))
        target = goal(layout, num_modes)
        results[f"{preset} @ {mixture}"] = {
            "preset": preset, "mixture": mixture, "num_modes": num_modes, "goal": target,
            "description": presets.PRESETS[preset]["description"], "epochs": runs[0]["epochs"], "runs": runs,
            "mean": mean, "std": std, "goal_met": goal_met(target, mean),
            "seconds_per_run": sum(r["seconds"] for r in runs) / len(runs),
        }
    wall = time.perf_counter() - start
    command = provenance.command_line("benchmarks/mixture_robustness.py", argv)
    invocations = [{"command": command, "wall_seconds": round(wall, 1), "rows": list(results),
                    "environment": environment}]
    if args.merge and os.path.isfile(args.out):
        with open(args.out) as f:
            previous = json.load(f)
        results = {**{k: v for k, v in previous.get("results", {}).items() if k not in results}, **results}
        invocations = previous.get("invocations", []) + invocations
    calibrations = {r["mixture"]: calibration(r["mixture"], args.n) for r in results.values()}
    table = format_table(results, calibrations)
    print(table)
    print(f"Command: {command}\nWall time: {wall:.0f} s ({os.cpu_count()} CPU cores, {provenance.processor()}; "
          f"load average at the end {', '.join(f'{x:.1f}' for x in os.getloadavg())})")
    report = {
        "command": command, "wall_seconds": round(wall, 1), "invocations": invocations, "environment": environment,
        "seeds": seeds, "epochs_override": args.epochs, "cases": CASES, "results": results,
        "calibration": calibrations, "table": table,
    }
    provenance.write_report(args.out, _strict(report), allow_nan=False)
    print(f"Wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
