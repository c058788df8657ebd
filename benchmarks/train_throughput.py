"""Training throughput of the DCGAN preset: keras-gen's GAN against a plain reference, and precision/XLA combos.

    python benchmarks/train_throughput.py                 # A/B table + precision/XLA table
    python benchmarks/train_throughput.py --quick         # fewer steps and repeats

The reference is written here, keras-io style (https://keras.io/examples/generative/dcgan_overriding_train_step/):
the same networks and batch, one `train_step` with `keras.random.normal` latents, a discriminator step on the
concatenated real+fake batch and a generator step, no tricks. All run in this one process, interleaved
(A, B, A, B, ...), and the median of the repeats is reported. Each timed `fit` call is clocked from the end of
its first execution to the end of its last, so what `fit` does once per call is not counted.

keras-gen's discriminator step calls D twice (real, then generated: batch normalization sees each batch with its
own statistics, the DCGAN recipe); the reference calls it once on the concatenation. Measured here, the two cost
the same (a one-call variant of keras-gen ran at 0.97x the two-call one), so the rows compare like with like.

The keras.io example calls the networks without ``training=True``. Under Keras 3 `fit` does not set the
training phase for calls inside a custom `train_step`, so its batch normalization runs in inference mode (the
moving statistics never change: measured): cheaper, and not the DCGAN algorithm. The reference here passes
``training=True``; the verbatim example is a separate row, for the record.

FLOPs per training step are counted by TensorFlow's graph profiler on the traced step (float operations of
the forward and backward passes and the optimizer updates); the fraction of peak uses this CPU's nominal peak
= cores x clock x FLOPs/cycle (64 single-precision FLOPs/cycle/core for AVX-512 with two FMA units, 32
with AVX2), which the table states.

Writes JSON to benchmarks/results/train_throughput.json.
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_gen import data, presets, provenance  # noqa: E402
from keras_gen.runs import dtype_policy  # noqa: E402


class ReferenceGAN(keras.Model):
    """The keras-io DCGAN training step, verbatim in spirit."""

    def __init__(self, discriminator, generator, latent_dim, training=None):
        super().__init__()
        self.training = training
        self.discriminator = discriminator
        self.generator = generator
        self.latent_dim = latent_dim
        self.seed_generator = keras.random.SeedGenerator(1337)

    def compile(self, d_optimizer, g_optimizer, loss_fn, **kwargs):
        super().compile(**kwargs)
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer
        self.loss_fn = loss_fn
        self.d_loss_metric = keras.metrics.Mean(name="d_loss")
        self.g_loss_metric = keras.metrics.Mean(name="g_loss")

    @property
    def metrics(self):
        return [self.d_loss_metric, self.g_loss_metric]

    def train_step(self, real_images):
        if isinstance(real_images, tuple):
            real_images = real_images[0]
        batch_size = tf.shape(real_images)[0]
        z = keras.random.normal(shape=(batch_size, self.latent_dim), seed=self.seed_generator)
        generated_images = self.generator(z, training=self.training)
        combined_images = tf.concat([generated_images, real_images], axis=0)
        labels = tf.concat([tf.ones((batch_size, 1)), tf.zeros((batch_size, 1))], axis=0)
        labels += 0.05 * tf.random.uniform(tf.shape(labels))
        with tf.GradientTape() as tape:
            predictions = self.discriminator(combined_images, training=self.training)
            d_loss = self.loss_fn(labels, predictions)
        grads = tape.gradient(d_loss, self.discriminator.trainable_weights)
        self.d_optimizer.apply_gradients(zip(grads, self.discriminator.trainable_weights))
        z = keras.random.normal(shape=(batch_size, self.latent_dim), seed=self.seed_generator)
        misleading_labels = tf.zeros((batch_size, 1))
        with tf.GradientTape() as tape:
            predictions = self.discriminator(self.generator(z, training=self.training), training=self.training)
            g_loss = self.loss_fn(misleading_labels, predictions)
        grads = tape.gradient(g_loss, self.generator.trainable_weights)
        self.g_optimizer.apply_gradients(zip(grads, self.generator.trainable_weights))
        self.d_loss_metric.update_state(d_loss)
        self.g_loss_metric.update_state(g_loss)
        return {"d_loss": self.d_loss_metric.result(), "g_loss": self.g_loss_metric.result()}


def build_keras_gen(jit=False, policy=None, steps_per_execution=1):
    config = presets.get_config("dcgan", jit_compile=jit)
    with dtype_policy(policy):
        model = presets.build_model(config)
        model.compile(
            d_optimizer=model.d_optimizer, g_optimizer=model.g_optimizer,
            jit_compile=jit, steps_per_execution=steps_per_execution,
        )
    return model


def build_reference(jit=False, training=True):
    config = presets.get_config("dcgan")
    gan = presets.build_model(config)  # the same networks (fresh weights)
    ref = ReferenceGAN(gan.discriminator, gan.generator, gan.latent_dim, training=training)
    ref.compile(
        d_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5),
        g_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5),
        loss_fn=keras.losses.BinaryCrossentropy(from_logits=True),
        jit_compile=jit,
    )
    return ref


def dataset(batch_size, steps):
    ds = data.load_dataset("mnist", batch_size=batch_size, seed=0, repeat=True)
    return ds.take(steps)


class _StepClock(keras.callbacks.Callback):
    """Times training from the end of the first execution to the end of the last one, so what `fit` does once
    per call (iterator, callbacks, the first execution's dispatch) is left out."""

    def __init__(self):
        super().__init__()
        self.ends = []

    def on_train_batch_end(self, batch, logs=None):
        self.ends.append((batch, time.perf_counter()))


def steps_per_second(model, ds, steps):
    clock = _StepClock()
    model.fit(ds, epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False, callbacks=[clock])
    (first, t0), (last, t1) = clock.ends[0], clock.ends[-1]
    if last == first:
        raise ValueError(f"{steps} steps are one execution; time more steps than steps_per_execution.")
    return (last - first) / (t1 - t0)


def count_flops(model, batch_size):
    """Float operations of one traced train step, from TensorFlow's graph profiler."""
    from tensorflow.python.profiler import model_analyzer, option_builder

    spec = (tf.TensorSpec((batch_size, 28, 28, 1), tf.float32), tf.TensorSpec((batch_size,), tf.int32))
    concrete = tf.function(model.train_step).get_concrete_function(spec)
    options = option_builder.ProfileOptionBuilder(option_builder.ProfileOptionBuilder.float_operation())
    options = options.with_empty_output().build()
    return model_analyzer.profile(concrete.graph, options=options).total_float_ops


def cpu_peak_flops():
    """(peak FLOP/s, description) from core count, clock and the widest FMA the CPU reports."""
    cores = os.cpu_count() or 1
    mhz, flags = None, ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("cpu MHz") and mhz is None:
                    mhz = float(line.split(":")[1])
                if line.startswith("flags") and not flags:
                    flags = line
    except OSError:
        pass
    mhz = mhz or 2000.0
    # Single precision, two FMA units: 16 lanes x 2 FLOPs x 2 for AVX-512, 8 x 2 x 2 for AVX2.
    per_cycle = 64 if "avx512f" in flags else 32 if "avx2" in flags else 8
    return cores * mhz * 1e6 * per_cycle, f"{cores} cores x {mhz / 1000:.2f} GHz x {per_cycle} FLOP/cycle"


def ab_table(args):
    """keras-gen vs the reference, interleaved."""
    ds = dataset(args.batch_size, args.steps * (args.repeats + 1) + 10)
    candidates = {
        "reference (keras-io style)": build_reference(),
        "reference verbatim (no training=True: BatchNorm frozen)": build_reference(training=None),
        "keras-gen GAN": build_keras_gen(),
        "keras-gen GAN, steps_per_execution=8": build_keras_gen(steps_per_execution=8),
    }
    for model in candidates.values():  # warm-up: tracing and the first steps
        steps_per_second(model, ds, 17)
    rates = {name: [] for name in candidates}
    for _ in range(args.repeats):
        for name, model in candidates.items():
            rates[name].append(steps_per_second(model, ds, args.steps))
    return {name: statistics.median(r) for name, r in rates.items()}, rates


def precision_table(args):
    combos = [
        ("float32", None, False),
        ("float32 + XLA", None, True),
        ("mixed_float16", "mixed_float16", False),
        ("mixed_float16 + XLA", "mixed_float16", True),
        ("mixed_bfloat16", "mixed_bfloat16", False),
        ("mixed_bfloat16 + XLA", "mixed_bfloat16", True),
    ]
    ds = dataset(args.batch_size, args.precision_steps * (args.precision_repeats + 1) + 10)
    models = {}
    for name, policy, jit in combos:
        models[name] = build_keras_gen(jit=jit, policy=policy)
        steps_per_second(models[name], ds, 3)
    rates = {name: [] for name in models}
    for _ in range(args.precision_repeats):
        for name, model in models.items():
            rates[name].append(steps_per_second(model, ds, args.precision_steps))
    return {name: statistics.median(r) for name, r in rates.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=49,
                        help="steps per timed run (the first execution is not timed: 48 steps are, by default)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--precision-repeats", type=int, default=2, help="repeats of the precision/XLA table")
    parser.add_argument("--precision-steps", type=int, default=17,
                        help="steps per run of the precision/XLA table (mixed_float16 without XLA is ~0.2 steps/s "
                        "on CPU)")
    parser.add_argument("--quick", action="store_true", help="17 steps x 2 repeats")
    parser.add_argument("--no-precision", action="store_true", help="skip the precision/XLA table")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "train_throughput.json"))
    args = parser.parse_args()
    if args.quick:
        args.steps, args.repeats, args.precision_repeats, args.precision_steps = 17, 2, 1, 9
    began = time.perf_counter()
    load_before = os.getloadavg()

    keras.utils.set_random_seed(0)
    flops = count_flops(build_keras_gen(), args.batch_size)
    ref_flops = count_flops(build_reference(), args.batch_size)
    peak, peak_text = cpu_peak_flops()
    medians, all_rates = ab_table(args)
    reference = medians["reference (keras-io style)"]

    print(f"\nDCGAN preset (28x28x1, width 64, batch {args.batch_size}) on "
          f"{provenance.processor()}, TF {tf.__version__}, Keras {keras.__version__}; median of "
          f"{args.repeats} interleaved runs of {args.steps} steps, the first execution untimed")
    print(f"peak = {peak_text} = {peak / 1e9:.0f} GFLOP/s (nominal)\n")
    lines = ["| trainer | steps/s | vs reference | GFLOP/step | GFLOP/s | % of peak |", "|---|---|---|---|---|---|"]
    rows = []
    for name, rate in medians.items():
        step_flops = ref_flops if name.startswith("reference") else flops
        achieved = rate * step_flops
        rows.append({"trainer": name, "steps_per_s": rate, "ratio": rate / reference,
                     "flops_per_step": step_flops, "achieved_flops": achieved, "fraction_of_peak": achieved / peak,
                     "runs": all_rates[name]})
        lines.append(f"| {name} | {rate:.2f} | {rate / reference:.2f}x | {step_flops / 1e9:.2f} | "
                     f"{achieved / 1e9:.1f} | {100 * achieved / peak:.1f}% |")
    print("\n".join(lines))

    precision = {}
    if not args.no_precision:
        precision = precision_table(args)
        base = precision["float32"]
        lines += ["", "| precision / compilation (keras-gen GAN) | steps/s | vs float32 |", "|---|---|---|"]
        lines += [f"| {name} | {rate:.2f} | {rate / base:.2f}x |" for name, rate in precision.items()]
        print("\n".join(lines[-len(precision) - 2:]))
    wall = time.perf_counter() - began
    print(f"\n(load average {load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after; {wall:.0f} s)")

    provenance.write_report(args.out, {
        "command": provenance.command_line("benchmarks/train_throughput.py"),
        "wall_seconds": round(wall, 1), "load_average": {"before": load_before, "after": os.getloadavg()},
        "batch_size": args.batch_size, "steps": args.steps, "repeats": args.repeats,
        "precision_repeats": args.precision_repeats, "peak_flops": peak, "peak": peak_text, "ab": rows,
        "precision": precision, "table": "\n".join(lines)})
    print(f"\nWrote {args.out}")


if __name__ == "__main__":
    main()
