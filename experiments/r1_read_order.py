"""How often a traced discriminator update computes R1 from weights it has already updated, with and without the
order `keras_gen.models.base.apply_gradients` imposes (the update waits for the whole loss).

    python experiments/r1_read_order.py               # r1-ema-stacked-mnist, 50 fresh traces of each order
    python experiments/r1_read_order.py --traces 20 --presets r1-stacked-mnist

R1 reads the discriminator's biases (batch-norm offsets here) in a forward pass that no gradient of those biases
needs: through LeakyReLU their R1 gradient is zero. Without an imposed order only the traced graph's
read-before-write order kept that read ahead of the update, and on TF 2.21 / CPU some traces lost it. Which
traces do is a draw made when the step is traced (a fresh model and tf.function each time), so each variant
traces the preset's discriminator update ``--traces`` times from the same weights, seed state and real batch,
and compares the R1 it logs with R1 computed eagerly on those weights. The draw depends on what else the process
has traced: of the unordered traces, 3 of 40 lost the order here when run alone, 1 of 50 after 50 ordered ones
(this script), none of 50 interleaved with them. So the count shows the hazard, not its rate.

Writes JSON to experiments/results/r1_read_order.json.
"""

import argparse
import contextlib
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_gen import data, losses, presets, provenance  # noqa: E402
from keras_gen.models import gan as gan_module  # noqa: E402

ORDERS = ("update waits for the loss (keras-gen)", "no order imposed (before the fix)")


def _unordered(optimizer, loss, tape, variables):
    """The update as it was: gradients, then apply, with nothing making the update wait for the rest of the loss."""
    grads = tape.gradient(loss, variables)
    optimizer.apply_gradients(zip(grads, variables))


@contextlib.contextmanager
def _order(name):
    if name == ORDERS[0]:
        yield
        return
    saved = gan_module.apply_gradients
    gan_module.apply_gradients = _unordered
    try:
        yield
    finally:
        gan_module.apply_gradients = saved


def _fresh(config, state):
    model = presets.build_model(config)
    model.generator.set_weights(state["generator"])
    model.discriminator.set_weights(state["discriminator"])
    model.seed_generator.state.assign(state["seed"])
    return model


def traced_r1(config, state, real, order):
    """R1 as one fresh trace of the discriminator update logs it."""
    import tensorflow as tf

    with _order(order):
        model = _fresh(config, state)
        return float(tf.function(model.training_phases()[0][1])(real)["r1"])


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", default="r1-ema-stacked-mnist", help="comma-separated GAN presets with R1")
    parser.add_argument("--traces", type=int, default=50, help="fresh traces of each order (default 50)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "r1_read_order.json"))
    args = parser.parse_args(argv)
    args.presets = [p for p in args.presets.split(",") if p]
    for name in args.presets:
        if name not in presets.PRESETS:
            parser.error(f"Unknown preset {name!r}; see `keras-gen presets`.")
        if not presets.PRESETS[name].get("model", {}).get("r1_weight"):
            parser.error(f"Preset {name!r} has no R1 penalty (model.r1_weight).")
    if args.traces < 1:
        parser.error(f"--traces must be >= 1, got {args.traces}.")
    return args


def main(argv=None):
    args = parse_args(argv)
    began = time.perf_counter()
    rows = []
    for name in args.presets:
        config = presets.get_config(name, seed=args.seed)
        keras.utils.set_random_seed(args.seed)
        first = presets.build_model(config)
        batch = next(iter(data.load_dataset(config.dataset, batch_size=config.batch_size, seed=args.seed)))
        real = first.unpack_batch(batch)[0]
        first.generator(keras.ops.zeros((1, first.latent_dim)))  # built before its weights are read
        state = {"generator": first.generator.get_weights(), "discriminator": first.discriminator.get_weights(),
                 "seed": first.seed_generator.state.numpy()}
        expected = float(losses.r1_penalty(first.discriminator, real))
        logged = {order: [] for order in ORDERS}
        for order in ORDERS:  # one order after the other: interleaved, the unordered traces all kept the order
            for i in range(args.traces):
                logged[order].append(traced_r1(config, state, real, order))
                print(f"\r{name}, {order}: {i + 1}/{args.traces} traces", end="", file=sys.stderr, flush=True)
            print(file=sys.stderr)
        for order in ORDERS:
            error = np.abs(np.array(logged[order]) - expected) / abs(expected)
            off = error > 1e-5
            rows.append({"preset": name, "order": order, "traces": args.traces, "eager_r1": expected,
                         "traces_off": int(off.sum()), "max_relative_error": float(error.max()),
                         "logged_r1": logged[order]})
    lines = [
        f"R1 logged by fresh traces of the discriminator update vs R1 computed eagerly on the same weights "
        f"({provenance.processor()}, {os.cpu_count()} cores)",
        "",
        "| preset | order | traces | R1 off (> 1e-5 relative) | largest relative error |",
        "|---|---|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(f"| {row['preset']} | {row['order']} | {row['traces']} | {row['traces_off']} "
                     f"| {row['max_relative_error']:.1e} |")
    table = "\n".join(lines)
    wall = time.perf_counter() - began
    print(table)
    print(f"\n({wall:.0f} s)")
    provenance.write_report(args.out, {"command": provenance.command_line("experiments/r1_read_order.py", argv),
                                       "wall_seconds": round(wall, 1), "rows": rows, "table": table})
    print(f"Wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
