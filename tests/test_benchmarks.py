"""The product benchmarks of benchmarks/ on quick settings: they run, and score what the package scores."""

import contextlib
import copy
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from keras_gen import data, presets
from tests.helpers import ROOT, load_script


# ------------------------------------------------------------------------------------------- the benchmark
def test_benchmark_quick_run(tmp_path):
    out = tmp_path / "mode_collapse.json"
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "mode_collapse.py"), "--quick", "--epochs", "1",
         "--presets", "ring2d,grid2d", "--out", str(out), "--plots", str(tmp_path)],
        capture_output=True, text=True, timeout=600, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2D ring" in result.stdout and "PacGAN" in result.stdout and "keras-gen goal" in result.stdout
    saved = json.loads(out.read_text())
    assert saved["seeds"] == [0] and set(saved["results"]) == {"ring2d", "grid2d"}
    run = saved["results"]["ring2d"]["runs"][0]
    assert set(run) >= {"seed", "modes", "high_quality", "reverse_kl", "seconds"}
    assert (tmp_path / "mode_collapse_ring2d.png").is_file()
    # The calibration rows score fresh training data the same way: every mode, ~98.9% within 3 sigma
    # (1 - exp(-4.5) for a 2-D Gaussian), and a KL near the multinomial noise (K - 1) / 2N.
    for dataset, modes in (("ring2d", 8), ("grid2d", 25)):
        real = saved["calibration"][dataset]
        assert real["modes"] == modes and 0.975 < real["high_quality"] < 0.995, real
        assert real["reverse_kl"] < 4 * (modes - 1) / (2 * 2500), real
    assert "training data, 2,500 samples (calibration)" in result.stdout


def test_input_pipeline_benchmark_counts_what_fit_would_see(tmp_path):
    bench = load_script("input_pipeline")
    out = tmp_path / "pipeline.json"
    assert bench.main(["--datasets", "digits,ring2d", "--batch-size", "50", "--repeats", "2", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    rows = {row["dataset"]: row for row in report["rows"]}
    for name, row in rows.items():
        size = data.dataset_info(name)["splits"]["train"]
        assert row["batches"] == size // 50 and row["examples"] == 50 * (size // 50), row  # last partial dropped
        assert len(row["runs"]) == 2 and row["seconds_per_epoch"] > 0
        assert f"| {name} | {row['batches']} | {row['seconds_per_epoch']:.2f} |" in report["table"]
    with pytest.raises(SystemExit):
        bench.main(["--datasets", "mnistt"])


def test_benchmark_stacked_table_shows_the_channel_kls():
    """The stacked-MNIST table: a run with per-channel KLs shows their sum; an older run without them a dash."""
    bench = load_script("mode_collapse")
    runs = [{"seed": s, "modes": 1000, "kl": kl, "channel_kl_sum": c, "num_samples": 26000}
            for s, kl, c in ((0, 0.2, 0.15), (1, 0.1, 0.05))]
    mean, std = bench.summarize(runs, ("modes", "kl", "channel_kl_sum"))
    assert mean["channel_kl_sum"] == pytest.approx(0.1) and std["channel_kl_sum"] == pytest.approx(0.05)
    results = {
        "new": {"dataset": "stacked_mnist", "runs": runs, "mean": mean, "std": std, "goal_met": False,
                "seconds_per_run": 1.0},
        "old": {"dataset": "stacked_mnist", "runs": runs[:1], "mean": {"modes": 1000.0, "kl": 0.2},
                "std": {"modes": 0.0, "kl": 0.0}, "goal_met": False, "seconds_per_run": 1.0},
    }
    table = bench.format_tables(results, {"stacked_mnist": {"modes": 1000, "kl": 0.02, "channel_kl_sum": 0.001}})
    assert "| channel KLs, summed |" in table
    assert "| new | 1000.0 ± 0.0 | 0.150 ± 0.050 | 0.100 ± 0.050 | no | 2 | 1 |" in table
    assert "| old | 1000.0 | 0.200 | — | no | 1 | 1 |" in table
    assert "| 1000 | 0.020 | 0.001 | | | |" in table


def test_benchmark_curve_scores_epoch_n_as_an_n_epoch_run_would(tmp_path):
    """`--curve-every K` scores during training; epoch N of a longer run must score exactly as an N-epoch run (the
    scoring draws from fixed latents and leaves training's random numbers alone), and the table shows the curve."""
    bench = load_script("mode_collapse")
    common = ["--presets", "ring2d", "--seeds", "1", "--plots", str(tmp_path)]
    bench.main(common + ["--epochs", "10", "--curve-every", "5", "--out", str(tmp_path / "long.json")])
    bench.main(common + ["--epochs", "5", "--out", str(tmp_path / "short.json")])
    with open(tmp_path / "long.json") as f:
        long = json.load(f)
    with open(tmp_path / "short.json") as f:
        short = json.load(f)["results"]["ring2d"]["runs"][0]
    curve = long["results"]["ring2d"]["runs"][0]["curve"]
    assert [point["epoch"] for point in curve] == [5, 10]
    # A real score to compare: some high-quality samples (1.6 to 3.2 % at epoch 5, as threads split the work).
    assert curve[0]["high_quality"] > 0 and curve[0]["reverse_kl"] is not None
    for key in ("modes", "high_quality", "reverse_kl"):
        assert curve[0][key] == short[key], key
        assert curve[1][key] == long["results"]["ring2d"]["runs"][0][key], key
    assert "| preset | seed | epoch 5 | epoch 10 |" in long["table"]
    assert "curve" not in short


def test_benchmark_resumes_a_run_from_its_backup(tmp_path):
    """`--backup`: rerunning a finished run restores it and only scores it again (the same numbers, its curve and
    training seconds taken back); a run given more epochs resumes where its backup ends, keeps the curve up to there
    (not a point the stopped process wrote past its last backup) and records where it resumed."""
    bench = load_script("mode_collapse")
    common = ["--presets", "ring2d", "--seeds", "1", "--curve-every", "2", "--backup", str(tmp_path / "backup"),
              "--plots", str(tmp_path)]

    def run(name, epochs):
        bench.main(common + ["--epochs", str(epochs), "--out", str(tmp_path / name)])
        with open(tmp_path / name) as f:
            return json.load(f)["results"]["ring2d"]["runs"][0]

    first = run("first.json", 4)
    assert [point["epoch"] for point in first["curve"]] == [2, 4] and "resumed_at" not in first
    again = run("again.json", 4)
    for key in ("modes", "high_quality", "reverse_kl", "curve"):
        assert again[key] == first[key], key
    assert again["seconds"] == pytest.approx(first["seconds"], abs=0.5)  # not the seconds of a second training
    state = tmp_path / "backup" / "ring2d_seed0" / "curve.json"
    saved = json.loads(state.read_text())
    assert saved["epoch"] == 4
    saved["curve"].append({**saved["curve"][-1], "epoch": 6})  # written by a process stopped before its backup
    state.write_text(json.dumps(saved))
    longer = run("longer.json", 6)
    assert [point["epoch"] for point in longer["curve"]] == [2, 4, 6] and longer["curve"][:2] == first["curve"]
    assert longer["resumed_at"] == [4] and longer["seconds"] > first["seconds"]
    assert longer["curve"][2]["seconds"] > first["curve"][1]["seconds"]


def test_benchmark_curve_also_scores_the_generator_weight_average(tmp_path, monkeypatch):
    """With a ``use_ema`` generator optimizer the curve scores the live weights and, in brackets, the average; the
    last epoch's average is what fit leaves in place, so it scores exactly as the finished run."""

    bench = load_script("mode_collapse")
    averaged = copy.deepcopy(presets.PRESETS["ring2d"])
    averaged["optimizers"]["g_optimizer"]["config"].update(use_ema=True, ema_momentum=0.99)
    monkeypatch.setitem(presets.PRESETS, "ring2d-ema", averaged)
    bench.main(["--presets", "ring2d-ema", "--seeds", "1", "--epochs", "10", "--curve-every", "5", "--plots",
                str(tmp_path), "--out", str(tmp_path / "ema.json")])
    with open(tmp_path / "ema.json") as f:
        saved = json.load(f)
    run = saved["results"]["ring2d-ema"]["runs"][0]
    assert run["weights"] == "averaged"
    assert [point["epoch"] for point in run["curve"]] == [5, 10]
    last = run["curve"][-1]
    for key in ("modes", "high_quality", "reverse_kl"):
        assert last["averaged"][key] == run[key], key
    assert last["averaged"]["high_quality"] != last["high_quality"]  # the live weights are another generator
    cell = f"{last['reverse_kl']:.3f} ({last['averaged']['reverse_kl']:.3f})"
    assert f"| ring2d-ema | 0 | {run['curve'][0]['reverse_kl']:.3f} (" in saved["table"] and cell in saved["table"]


def test_benchmark_scores_the_average_on_recomputed_statistics_and_puts_training_ones_back():
    """The curve's third score (stacked MNIST): inside ``_standing_statistics`` the generator's batch norms hold
    what `recompute_generator_statistics` computes; afterwards, also after an exception, the ones training keeps."""
    from tests.test_gan import IMAGES, small_gan

    bench = load_script("mode_collapse")
    gan = small_gan()
    gan.fit(IMAGES, epochs=1, batch_size=4, verbose=0)
    layers = gan._generator_batch_norms()
    assert layers
    kept = [(layer.moving_mean.numpy(), layer.moving_variance.numpy()) for layer in layers]
    gan.recompute_generator_statistics()
    recomputed = [(layer.moving_mean.numpy(), layer.moving_variance.numpy()) for layer in layers]
    for layer, (mean, variance) in zip(layers, kept):
        layer.moving_mean.assign(mean)
        layer.moving_variance.assign(variance)
    assert not np.allclose(recomputed[0][1], kept[0][1])  # one epoch: training's statistics are another thing
    for fail in (False, True):
        with pytest.raises(KeyboardInterrupt) if fail else contextlib.nullcontext():
            with bench._standing_statistics(gan):
                for layer, (mean, variance) in zip(layers, recomputed):
                    np.testing.assert_array_equal(layer.moving_mean.numpy(), mean)
                    np.testing.assert_array_equal(layer.moving_variance.numpy(), variance)
                if fail:
                    raise KeyboardInterrupt
        for layer, (mean, variance) in zip(layers, kept):
            np.testing.assert_array_equal(layer.moving_mean.numpy(), mean)
            np.testing.assert_array_equal(layer.moving_variance.numpy(), variance)
    point = {"kl": 0.06, "averaged": {"kl": 0.0512}, "standing": {"kl": 0.048}}
    assert bench._curve_cell(point, "kl") == "0.060 (0.051, 0.048)"
    assert bench._curve_cell({"kl": 0.06, "averaged": {"kl": 0.0512}}, "kl") == "0.060 (0.051)"
    assert bench._curve_cell({"kl": 0.06}, "kl") == "0.060"


def test_benchmark_combine_pools_the_seeds_of_separate_runs(tmp_path, capsys):
    """Runs made side by side (one seed per process) pool into one row: the mean over both seeds, each run kept;
    a seed given twice, or runs of another length, are refused with a message naming the file; runs of different
    keras-gen revisions, or timed on different processors, pool with a note naming them."""
    from keras_gen import provenance

    bench = load_script("mode_collapse")
    common = ["--presets", "ring2d", "--seeds", "1", "--epochs", "5", "--plots", str(tmp_path)]
    for seed in (0, 1):
        bench.main(common + ["--first-seed", str(seed), "--out", str(tmp_path / f"seed{seed}.json")])
    runs = [json.loads((tmp_path / f"seed{s}.json").read_text())["results"]["ring2d"]["runs"][0] for s in (0, 1)]
    assert runs[0]["high_quality"] != runs[1]["high_quality"]  # two different runs to pool
    bench.main(["--combine", str(tmp_path / "seed0.json"), str(tmp_path / "seed1.json"), "--out",
                str(tmp_path / "both.json")])
    both = json.loads((tmp_path / "both.json").read_text())
    pooled = both["results"]["ring2d"]
    assert [run["seed"] for run in pooled["runs"]] == [0, 1] and both["seeds"] == [0, 1]
    assert pooled["mean"]["high_quality"] == pytest.approx((runs[0]["high_quality"] + runs[1]["high_quality"]) / 2)
    assert pooled["std"]["high_quality"] == pytest.approx(abs(runs[0]["high_quality"] - runs[1]["high_quality"]) / 2)
    assert len(both["invocations"]) == 2 and "| ring2d |" in both["table"] and "| 2 |" in both["table"]
    assert [i["environment"]["source"] for i in both["invocations"]] == [provenance.source_revision()] * 2
    out = capsys.readouterr().out
    assert "revisions of keras-gen" not in out and "processors" not in out
    other = json.loads((tmp_path / "seed1.json").read_text())
    other["invocations"][0]["environment"]["source"] = {"commit": "0123456789abcdef", "dirty": True}
    other["invocations"][0]["environment"].update(processor="Another CPU", cpu_count=64)
    (tmp_path / "other.json").write_text(json.dumps(other))
    bench.main(["--combine", str(tmp_path / "seed0.json"), str(tmp_path / "other.json"), "--out",
                str(tmp_path / "other_both.json")])
    out = capsys.readouterr().out
    assert "0123456+dirty" in out.split("come from 2 revisions of keras-gen")[1]
    assert f"{provenance.processor()} x{os.cpu_count()}; Another CPU x64" in out.split("timed on 2 processors")[1]
    with pytest.raises(SystemExit, match="seed 0 is already"):
        bench.main(["--combine", str(tmp_path / "seed0.json"), str(tmp_path / "seed0.json"), "--out",
                    str(tmp_path / "twice.json")])
    bench.main(common[:-4] + ["--epochs", "2", "--first-seed", "2", "--plots", str(tmp_path), "--out",
                              str(tmp_path / "short.json")])
    with pytest.raises(SystemExit, match="ran 2 epochs"):
        bench.main(["--combine", str(tmp_path / "seed0.json"), str(tmp_path / "short.json"), "--out",
                    str(tmp_path / "mixed.json")])
    (tmp_path / "broken.json").write_text("{not json")
    for bad in ("broken.json", "missing.json"):
        with pytest.raises(SystemExit, match=f"--combine .*{bad}: not a mode_collapse.py JSON report"):
            bench.main(["--combine", str(tmp_path / "seed0.json"), str(tmp_path / bad), "--out",
                        str(tmp_path / "bad.json")])
    assert not any((tmp_path / f).exists() for f in ("twice.json", "mixed.json", "bad.json"))


# ------------------------------------------------------------------------------------ mixtures not tuned on
def test_mode_collapse_scores_a_named_mixture_as_evaluate_scores_its_builtin():
    """``ring2d:K=8`` is ``ring2d`` by another name: mode_collapse.py scores it without `evaluate` (which knows the
    modes of the builtins only) and gets what `evaluate` gets for ``ring2d`` on the same samples."""
    from tests.helpers import ArraySampler

    bench = load_script("mode_collapse")
    x, _ = data.load_arrays("ring2d", "train", num_samples=500)
    x[:300] += 0.05  # most samples off their mode (5 sigma in each coordinate)
    sampler = ArraySampler(x)
    builtin = bench.score(sampler, "ring2d", 500, 0)
    named = bench.score(sampler, "ring2d:K=8", 500, 0)
    angles = 2 * np.pi * np.arange(8) / 8
    centers = np.stack([np.cos(angles), np.sin(angles)], axis=1)  # (8, 2)
    nearest = np.linalg.norm(x[:, None] - centers[None], axis=-1).min(axis=1)  # (500,)
    assert named == builtin and named["high_quality"] == pytest.approx(np.mean(nearest <= 0.03))
    assert 0.35 < named["high_quality"] <= 0.4


def test_mixture_robustness_quick_run(tmp_path, capsys):
    """One epoch of ring2d on two mixtures it was not tuned on: a row each against its layout's goal with its own
    number of modes, beside the mixture's own test points scored the same way."""
    bench = load_script("mixture_robustness")
    out = tmp_path / "robustness.json"
    mixtures = ["ring2d:K=12,r=2,sigma=0.02", "ring2d:D=10,noise=0.001", "grid2d:K=16"]  # the grid has no preset here
    assert bench.main(["--quick", "--presets", "ring2d", "--mixtures", *mixtures, "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    rows = report["results"]
    assert list(rows) == ["ring2d @ ring2d:K=12,r=2,sigma=0.02", "ring2d @ ring2d:D=10,noise=0.001"]
    twelve, embedded = rows.values()
    assert twelve["num_modes"] == 12 and twelve["goal"] == {"modes": 12.0, "high_quality": 0.98, "reverse_kl": 0.02}
    assert embedded["num_modes"] == 8 and len(embedded["runs"][0]["counts"]) == 8 and embedded["epochs"] == 1
    assert twelve["goal_met"] is False  # one epoch does not make a ring
    # The data itself: every mode; within 3 sigma ~98.9% in 2-D (1 - exp(-4.5)), a little less with the noise
    # across the plane in 10-D (its variance adds 8 (sigma / 10)^2 to the squared distance).
    for mixture, modes in (("ring2d:K=12,r=2,sigma=0.02", 12), ("ring2d:D=10,noise=0.001", 8)):
        real = report["calibration"][mixture]
        assert real["modes"] == modes and 0.975 < real["high_quality"] < 0.995, real
    assert "| ring2d | `ring2d:K=12,r=2,sigma=0.02` | " in report["table"] and " of 12 | " in report["table"]
    assert report["table"] in capsys.readouterr().out
    with pytest.raises(SystemExit, match="'K=x' is not a parameter|K='x' is not an integer"):
        bench.main(["--quick", "--mixtures", "ring2d:K=x", "--out", str(tmp_path / "bad.json")])
    with pytest.raises(SystemExit, match="Unknown mixture preset 'dcgan'"):
        bench.main(["--quick", "--presets", "dcgan", "--out", str(tmp_path / "bad.json")])
    assert not (tmp_path / "bad.json").exists()


# ------------------------------------------------------------------------------------------------ small data
def test_small_data_quick_run(tmp_path, capsys):
    """Two sizes, with and without DiffAugment, a few steps each: every run is scored and watched by the alarm,
    the training digits are class-balanced, and the goal's share of the FID gap is the one computed here."""
    bench = load_script("small_data")
    digits = bench.training_digits(30)
    x, y = data.load_arrays("mnist", "train")
    expected = np.concatenate([x[np.flatnonzero(y == d)[:3]] for d in range(10)])
    np.testing.assert_array_equal(digits, expected)
    out = tmp_path / "small_data.json"
    assert bench.main(["--sizes", "50,100", "--seeds", "1", "--steps", "4", "--checks", "2", "--samples", "100",
                       "--width", "8", "--batch-size", "16", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    runs = report["runs"]
    assert [(r["size"], r["augment"]) for r in runs] == [
        (50, None), (50, "color,translation,cutout"), (100, None), (100, "color,translation,cutout")]
    for run in runs:
        assert np.isfinite(run["fid"]) and 0 <= run["confident"] <= 1 and -1 <= run["r_t"] <= 1
    fid = {(r["size"], r["augment"]): r["fid"] for r in runs}
    gap = fid[(50, None)] - fid[(100, None)]
    closed = (fid[(50, None)] - fid[(50, "color,translation,cutout")]) / gap if gap > 0 else None  # 1 seed: no spread
    assert report["goal"]["closed"] == (pytest.approx(closed) if closed is not None else None)
    assert 0.5 < report["real_confident"] <= 1
    assert report["table"] in capsys.readouterr().out
    # --rescore recomputes the goal from the runs alone: a gap within the seeds' spread is no gap.
    for run in runs:
        run["fid"] = {(50, None): 60.0, (100, None): 58.0}.get((run["size"], run["augment"]), 59.0)
    runs += [{**run, "seed": 1, "fid": run["fid"] + (3.0 if run["augment"] is None else 0.0)} for run in runs]
    (tmp_path / "edited.json").write_text(json.dumps({**report, "runs": runs}))
    assert bench.main(["--rescore", str(tmp_path / "edited.json"), "--out", str(tmp_path / "rescored.json")]) == 0
    rescored = json.loads((tmp_path / "rescored.json").read_text())
    # FIDs 60 and 63 at 50 digits, 58 and 61 at 100: gap 2, spread 1.5 + 1.5 = 3.
    assert rescored["goal"]["gap"] == pytest.approx(2.0) and rescored["goal"]["noise"] == pytest.approx(3.0)
    assert rescored["goal"]["closed"] is None and "no gap to close" in rescored["table"]
    assert rescored["environment"] == report["environment"] and "--rescore" in rescored["rescored"]["command"]
    with pytest.raises(SystemExit):
        bench.main(["--sizes", "55", "--out", str(tmp_path / "bad.json")])
    assert not (tmp_path / "bad.json").exists()
