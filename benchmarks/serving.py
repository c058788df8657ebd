"""Serving latency and throughput of `keras-gen serve` over gRPC: 1, 4 and 16 concurrent clients, batching off and
on, SavedModel and ONNX Runtime backends.

    python benchmarks/serving.py                              # DCGAN preset (28x28x1, z of 100, width 64)
    python benchmarks/serving.py --seconds 4 --max-batch-size 16 --batch-timeout-micros 2000

What is timed: each client (a thread with its own `SamplerClient`, i.e. its own gRPC channel) sends
``generate_uint8`` requests of one latent each, back to back, for ``--seconds`` after a warm-up; latency is the
client-side time of one call (serialization, gRPC over loopback, validation, the model, the answer). The server is
``keras-gen serve`` in its own process (as deployed), one per backend and batching setting; clients run in this
process. Batching uses TF Serving's parameters (``--max-batch-size``, ``--batch-timeout-micros``,
``--num-batch-threads``); TensorFlow gets ``--intra-op-threads`` threads per op (default 0: all cores) and ONNX
Runtime ``--onnx-threads`` threads per call (default 1). The generator is a freshly built, untrained DCGAN preset:
speed does not depend on the weights' values.

Goal (the serving issue): with batching, throughput at 16 clients >= 4x one client without batching (one request
at a time), and p99 latency at 16 clients <= 2x the single-client median latency.

Two limits on this machine, which the last rows measure. (1) Clients and server share the CPU cores, and the
Python gRPC stack costs CPU per request whatever the server does: the "fixed answer" server (decodes z, answers
one constant image; no model, validation or batching) is the ceiling for any server here with these clients.
(2) Little's law: 16 closed-loop clients with mean latency W get 16 / W requests/s, so a p99 (> W) within 2x
the single-client latency L1 needs >= 8x the single-client throughput 1 / L1, twice the throughput goal.

Results: a Markdown table on stdout and JSON in ``benchmarks/results/serving.json``.
"""

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

CONCURRENCY = (1, 4, 16)


def _percentile(values, q):
    values = sorted(values)
    index = min(len(values) - 1, max(0, int(round(q / 100.0 * (len(values) - 1)))))
    return values[index]


def _row(backend, batching, clients, latencies, rate, errors):
    """One table row from a `run_load` result."""
    return {
        "backend": backend, "batching": batching, "clients": clients,
        "requests": len(latencies), "errors": len(errors),
        "p50_ms": 1e3 * _percentile(latencies, 50), "p99_ms": 1e3 * _percentile(latencies, 99),
        "requests_per_s": rate,
    }


def export_dcgan(base):
    from keras_gen import presets
    from keras_gen.export import export_model

    model = presets.build_model(presets.get_config("dcgan"))
    result = export_model(model, base, "dcgan", formats="savedmodel,onnx", allow_untrained=True, batch_sizes=(1, 16))
    return result.path, model.latent_dim


def start_server(base, backend, batching, args):
    command = [sys.executable, "-m", "keras_gen.cli", "serve", base, "--grpc-port", "0", "--no-rest",
               "--backend", backend, "--poll-seconds", "0", "--log-level", "warning",
               "--onnx-threads", str(args.onnx_threads),
               "--tensorflow-intra-op-parallelism", str(args.intra_op_threads)]
    if batching:
        command += ["--batching", "--max-batch-size", str(args.max_batch_size),
                    "--batch-timeout-micros", str(args.batch_timeout_micros),
                    "--num-batch-threads", str(args.num_batch_threads)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"keras-gen serve exited: {process.stderr.read()[-2000:]}")
        if line.startswith("gRPC:"):
            return process, line.split()[1]
    process.kill()
    raise RuntimeError("keras-gen serve did not start in 300 s")


def stop_server(process):
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(30)
    process.stdout.close()
    process.stderr.close()


def _fixed_answer_server(port_queue):
    """A gRPC PredictionService that decodes ``z`` and answers one fixed 28x28 uint8 image, with no model, no
    validation and no batching: what the protocol stack alone (grpcio's server, protobuf, the tensor conversion)
    costs here. Runs in its own process, as `keras-gen serve` does."""
    from concurrent import futures

    import grpc
    import numpy as np
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    from keras_gen.serving.tensors import from_tensor_proto, to_tensor_proto

    image = np.zeros((1, 28, 28, 1), np.uint8)

    class Fixed(prediction_service_pb2_grpc.PredictionServiceServicer):
        def Predict(self, request, context):  # noqa: N802 - gRPC method name
            from_tensor_proto(request.inputs["z"], "z")
            response = predict_pb2.PredictResponse()
            response.model_spec.name = request.model_spec.name
            response.model_spec.signature_name = request.model_spec.signature_name
            to_tensor_proto(image, out=response.outputs["images"])
            return response

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=32))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Fixed(), server)
    port_queue.put(server.add_insecure_port("127.0.0.1:0"))
    server.start()
    server.wait_for_termination()


def protocol_ceiling(args, latent_dim):
    """Rows for the fixed-answer server at 1 and 16 clients: the most requests/s any Python gRPC server could
    reach on this machine with these clients."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    ports = context.Queue()
    process = context.Process(target=_fixed_answer_server, args=(ports,), daemon=True)
    process.start()
    rows = []
    try:
        address = f"127.0.0.1:{ports.get(timeout=300)}"
        for clients in (1, 16):
            latencies, rate, errors = run_load(address, clients, args.seconds, args.warmup, latent_dim)
            rows.append(_row("fixed answer (no model)", False, clients, latencies, rate, errors))
            print(f"  fixed answer clients={clients:<3} p50 {rows[-1]['p50_ms']:6.2f} ms  {rate:7.1f} req/s",
                  file=sys.stderr, flush=True)
    finally:
        process.kill()
        process.join(30)
    return rows


def run_load(address, clients, seconds, warmup, latent_dim):
    """``clients`` threads sending one-latent requests back to back; returns (latencies in s, requests/s, errors)."""
    import numpy as np

    from keras_gen.serving import SamplerClient

    latencies = [[] for _ in range(clients)]
    errors = []
    start_gate = threading.Barrier(clients + 1)
    state = {"measure": False, "stop": False}

    def work(index):
        z = np.random.default_rng(index).standard_normal((1, latent_dim)).astype("float32")
        with SamplerClient(address, model="dcgan", timeout=60, retries=0) as client:
            client.predict("generate_uint8", {"z": z})  # connect
            start_gate.wait()
            while not state["stop"]:
                begin = time.perf_counter()
                try:
                    client.predict("generate_uint8", {"z": z})
                except Exception as exc:  # noqa: BLE001 - counted
                    errors.append(repr(exc))
                    continue
                if state["measure"]:
                    latencies[index].append(time.perf_counter() - begin)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    start_gate.wait()
    time.sleep(warmup)
    state["measure"] = True
    began = time.perf_counter()
    time.sleep(seconds)
    state["measure"] = False
    elapsed = time.perf_counter() - began
    state["stop"] = True
    for thread in threads:
        thread.join(120)
    flat = [x for per_client in latencies for x in per_client]
    return flat, len(flat) / elapsed, errors


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="measured seconds per row (default 4)")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds first (default 1)")
    parser.add_argument("--max-batch-size", type=int, default=16, help="batching: images per batch (default 16)")
    parser.add_argument("--batch-timeout-micros", type=int, default=2000, help="batching: wait to fill (default 2000)")
    parser.add_argument("--onnx-threads", type=int, default=1,
                        help="ONNX Runtime threads per call (default 1: concurrent calls share the cores)")
    parser.add_argument("--num-batch-threads", type=int, default=1, help="batching: batches run at once (default 1)")
    parser.add_argument("--intra-op-threads", type=int, default=0,
                        help="the server's --tensorflow-intra-op-parallelism (default 0: TensorFlow's, all cores)")
    parser.add_argument("--backends", default="savedmodel,onnx")
    parser.add_argument("--no-ceiling", action="store_true",
                        help="skip the fixed-answer server rows (the protocol stack's own ceiling)")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                                      "serving.json"))
    args = parser.parse_args(argv)

    from keras_gen import provenance

    load_before = os.getloadavg()  # other processes on the machine skew the numbers: recorded with them
    rows = []
    with tempfile.TemporaryDirectory() as base:
        print("Exporting the DCGAN preset (untrained) ...", file=sys.stderr, flush=True)
        _, latent_dim = export_dcgan(base)
        for backend in args.backends.split(","):
            for batching in (False, True):
                process, address = start_server(base, backend, batching, args)
                try:
                    for clients in CONCURRENCY:
                        latencies, rate, errors = run_load(address, clients, args.seconds, args.warmup, latent_dim)
                        row = _row(backend, batching, clients, latencies, rate, errors)
                        rows.append(row)
                        print(f"  {backend:<10} batching={'on ' if batching else 'off'} clients={clients:<3} "
                              f"p50 {row['p50_ms']:6.2f} ms  p99 {row['p99_ms']:6.2f} ms  {rate:7.1f} req/s  "
                              f"errors {len(errors)}", file=sys.stderr, flush=True)
                finally:
                    stop_server(process)
        if not args.no_ceiling:
            rows += protocol_ceiling(args, latent_dim)

    def find(backend, batching, clients):
        return next(r for r in rows if (r["backend"], r["batching"], r["clients"]) == (backend, batching, clients))

    goals = {}
    lines = [
        "| backend | batching | clients | p50 ms | p99 ms | requests/s | x one-at-a-time |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for backend in args.backends.split(","):
        single = find(backend, False, 1)
        for row in (r for r in rows if r["backend"] == backend):
            ratio = row["requests_per_s"] / single["requests_per_s"]
            lines.append(
                f"| {backend} | {'on' if row['batching'] else 'off'} | {row['clients']} | {row['p50_ms']:.2f} | "
                f"{row['p99_ms']:.2f} | {row['requests_per_s']:.0f} | {ratio:.2f} |"
            )
        batched = find(backend, True, 16)
        goals[backend] = {
            "throughput_ratio": batched["requests_per_s"] / single["requests_per_s"],
            "p99_over_single_p50": batched["p99_ms"] / single["p50_ms"],
        }
        goals[backend]["met"] = goals[backend]["throughput_ratio"] >= 4 and goals[backend]["p99_over_single_p50"] <= 2
    ceiling = [r for r in rows if r["backend"] == "fixed answer (no model)"]
    for row in ceiling:
        lines.append(
            f"| fixed answer (no model) | off | {row['clients']} | {row['p50_ms']:.2f} | {row['p99_ms']:.2f} | "
            f"{row['requests_per_s']:.0f} | {row['requests_per_s'] / ceiling[0]['requests_per_s']:.2f} |"
        )
    if ceiling:
        for backend, goal in goals.items():
            # The most any server could reach with these clients, as a multiple of this backend's single client.
            goal["ceiling_ratio"] = ceiling[-1]["requests_per_s"] / find(backend, False, 1)["requests_per_s"]
    table = "\n".join(lines)
    print(table)
    print(f"\n(load average {load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after, {os.cpu_count()} CPUs)")
    print()
    for backend, goal in goals.items():
        print(f"{backend}: batching at 16 clients = {goal['throughput_ratio']:.2f}x the one-at-a-time throughput "
              f"(goal >= 4), p99 = {goal['p99_over_single_p50']:.2f}x the single-client p50 (goal <= 2): "
              f"{'met' if goal['met'] else 'NOT met'}"
              + (f"; the fixed-answer server reaches {goal['ceiling_ratio']:.2f}x" if "ceiling_ratio" in goal else ""))

    provenance.write_report(args.out, {
        "command": provenance.command_line("benchmarks/serving.py", argv),
        "model": "dcgan preset (28x28x1, latent 100, width 64), untrained",
        "request": "generate_uint8, one latent per request, gRPC over loopback",
        "batching": {"max_batch_size": args.max_batch_size, "batch_timeout_micros": args.batch_timeout_micros,
                     "num_batch_threads": args.num_batch_threads},
        "tensorflow_intra_op_parallelism": args.intra_op_threads,
        "onnx_threads": args.onnx_threads,
        "load_average": {"before": load_before, "after": os.getloadavg()},
        "seconds_per_row": args.seconds,
        "rows": rows, "goals": goals, "table": table,
    })
    print(f"\nWrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
