"""Sampling speed of the DCGAN generator: Keras against its exported SavedModel, TFLite and ONNX artifacts.

    python benchmarks/sampling.py                      # DCGAN preset (28x28x1, z of 100, width 64)
    python benchmarks/sampling.py --threads 2 --latency-calls 300 --out benchmarks/results/sampling.json

What is timed (one call = decoding a batch of given latents into images, z drawn beforehand):

- ``keras generator(z)``: the functional generator called eagerly, ``training=False``;
- ``keras predict``: ``generator.predict(z, batch_size=B)`` (the baseline of the ratios);
- ``SavedModel``: the ``generate`` signature of the exported SavedModel (``tf.saved_model.load``);
- ``TFLite fp32 / fp16 / int8``: the LiteRT interpreter's ``generate`` signature runner, ``--threads`` threads;
- ``ONNX Runtime``: ``generate.onnx`` on the CPU provider, ``--threads`` intra-op threads.

Batch 1: latency per call, p50 and p99 over ``--latency-calls`` calls after warm-up. Batches 64 and 256:
throughput in images/s from the median call time. Ratios are against Keras ``predict`` (>1 = faster). The
generator is a freshly built, untrained DCGAN preset: speed does not depend on the weights' values. Every
artifact passes the exporter's parity checks before it is timed.

Results: a Markdown table on stdout and JSON in ``benchmarks/results/sampling.json``.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _percentile(values, q):
    values = sorted(values)
    index = min(len(values) - 1, max(0, int(round(q / 100.0 * (len(values) - 1)))))
    return values[index]


def _time_calls(fn, calls, warmup):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def build_runners(generator, version_dir, threads):
    """``{row name: make(z) -> callable}`` for every backend; each callable decodes the fixed batch ``z``."""
    import numpy as np
    import onnxruntime as ort
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    saved = tf.saved_model.load(version_dir)
    signature = saved.signatures["generate"]

    def keras_call(z):
        tensor = tf.constant(z)
        return lambda: np.asarray(generator(tensor, training=False))

    def keras_predict(z):
        return lambda: generator.predict(z, batch_size=len(z), verbose=0)

    def savedmodel(z):
        tensor = tf.constant(z)
        return lambda: signature(z=tensor)["images"].numpy()

    def tflite(precision):
        interpreter = Interpreter(
            model_path=os.path.join(version_dir, "tflite", f"model_{precision}.tflite"), num_threads=threads
        )
        runner = interpreter.get_signature_runner("generate")

        def make(z):
            runner(z=z)  # resize once for this batch size
            return lambda: runner(z=z)["images"]

        return make

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(
        os.path.join(version_dir, "onnx", "generate.onnx"), sess_options=options, providers=["CPUExecutionProvider"]
    )

    def onnx(z):
        return lambda: session.run(["images"], {"z": z})[0]

    return {
        "keras generator(z)": keras_call,
        "keras predict": keras_predict,
        "SavedModel signature": savedmodel,
        "TFLite fp32": tflite("fp32"),
        "TFLite fp16": tflite("fp16"),
        "TFLite int8": tflite("int8"),
        "ONNX Runtime": onnx,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="dcgan", help="a GAN preset (default dcgan)")
    parser.add_argument("--threads", type=int, default=2, help="threads for TFLite, ONNX Runtime and TensorFlow")
    parser.add_argument("--latency-calls", type=int, default=200, help="timed calls at batch 1")
    parser.add_argument("--throughput-calls", type=int, default=15, help="timed calls at batches 64 and 256")
    parser.add_argument("--batches", default="64,256", help="throughput batch sizes")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                                      "sampling.json"))
    args = parser.parse_args(argv)

    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    import keras_gen
    import keras_gen.export as kx
    from keras_gen import provenance

    config = keras_gen.get_config(args.preset)
    model = keras_gen.build_model(config)
    generator = model.generator
    throughput_batches = [int(b) for b in args.batches.split(",")]
    rows = {}
    with tempfile.TemporaryDirectory() as base:
        start = time.perf_counter()
        result = kx.export_model(model, base, args.preset, quantize="fp16,int8", allow_untrained=True)
        export_seconds = time.perf_counter() - start
        sizes = {f"{a['format']} {a['precision']}": a["size_bytes"] for a in result.manifest["artifacts"]}
        runners = build_runners(generator, result.path, args.threads)
        rng = np.random.default_rng(0)
        for name, make in runners.items():
            print(f"timing {name} ...", file=sys.stderr, flush=True)
            z1 = rng.standard_normal((1, model.latent_dim)).astype("float32")
            calls = args.latency_calls if name != "keras predict" else max(50, args.latency_calls // 4)
            times = _time_calls(make(z1), calls, warmup=10)
            row = {"p50_ms": 1e3 * statistics.median(times), "p99_ms": 1e3 * _percentile(times, 99), "calls": calls}
            for batch in throughput_batches:
                z = rng.standard_normal((batch, model.latent_dim)).astype("float32")
                times = _time_calls(make(z), args.throughput_calls, warmup=2)
                row[f"images_per_s_{batch}"] = batch / statistics.median(times)
            rows[name] = row

    base_row = rows["keras predict"]
    for row in rows.values():
        row["speedup_p50"] = base_row["p50_ms"] / row["p50_ms"]
        for batch in throughput_batches:
            row[f"speedup_{batch}"] = row[f"images_per_s_{batch}"] / base_row[f"images_per_s_{batch}"]

    header = ["backend", "b=1 p50 ms", "b=1 p99 ms", "b=1 vs predict"]
    for batch in throughput_batches:
        header += [f"b={batch} img/s", f"b={batch} vs predict"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    for name, row in rows.items():
        cells = [name, f"{row['p50_ms']:.2f}", f"{row['p99_ms']:.2f}", f"{row['speedup_p50']:.1f}x"]
        for batch in throughput_batches:
            cells += [f"{row[f'images_per_s_{batch}']:,.0f}", f"{row[f'speedup_{batch}']:.1f}x"]
        lines.append("| " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    print(
        f"\nSampling speed, preset {args.preset} ({tuple(model.sample_shape)}, z of {model.latent_dim}, "
        f"{generator.count_params():,} generator parameters, untrained), {args.threads} threads, "
        f"CPU {provenance.processor()} x{os.cpu_count()}\n"
    )
    print(table)
    best = max(rows["ONNX Runtime"]["speedup_p50"], max(rows[f"TFLite {p}"]["speedup_p50"] for p in ("fp32", "fp16")))
    print(f"\nGoal (ONNX Runtime or TFLite >= 3x faster than predict at batch 1): {'met' if best >= 3 else 'NOT met'} "
          f"(best {best:.1f}x). Export with parity checks took {export_seconds:.0f} s.")

    provenance.write_report(args.out, {
        "command": provenance.command_line("benchmarks/sampling.py", argv),
        "preset": args.preset,
        "trained": False,
        "threads": args.threads,
        "generator_parameters": int(generator.count_params()),
        "artifact_bytes": sizes,
        "export_seconds": export_seconds,
        "rows": rows,
        "table": table,
    })
    print(f"Wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
