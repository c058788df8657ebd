"""Request counters and latency histograms in Prometheus' text format, on the REST port at the path
``monitoring.config`` names (TF Serving's ``/monitoring/prometheus/metrics``), under TF Serving's metric names
``:tensorflow:serving:request_count`` and ``:tensorflow:serving:request_latency``."""

import bisect
import threading

__all__ = ["Metrics"]

_BUCKETS_US = (100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000)


class Metrics:
    """Thread-safe request counts ``(entrypoint, method, model, status)`` and latencies ``(entrypoint, method,
    model)``."""

    def __init__(self):
        self._lock = threading.Lock()
        self._counts = {}
        self._latency = {}

    def observe(self, entrypoint, method, model, code, seconds):
        micros = seconds * 1e6
        with self._lock:
            key = (entrypoint, method, model or "", code)
            self._counts[key] = self._counts.get(key, 0) + 1
            hist = self._latency.setdefault((entrypoint, method, model or ""), [[0] * len(_BUCKETS_US), 0, 0.0])
            index = bisect.bisect_left(_BUCKETS_US, micros)
            if index < len(_BUCKETS_US):
                hist[0][index] += 1
            hist[1] += 1
            hist[2] += micros

    def count(self, code=None):
        """Requests seen (with status ``code``, or all)."""
        with self._lock:
            return sum(n for (_, _, _, c), n in self._counts.items() if code is None or c == code)

    def render(self):
        """The Prometheus text page."""

        def labels(**items):
            return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in items.items()) + "}"

        lines = ["# TYPE :tensorflow:serving:request_count counter"]
        with self._lock:
            counts = sorted(self._counts.items())
            latency = sorted((k, ([*v[0]], v[1], v[2])) for k, v in self._latency.items())
        for (entrypoint, method, model, code), n in counts:
            lines.append(
                ":tensorflow:serving:request_count"
                + labels(entrypoint=entrypoint, API=method, model_name=model, status=code) + f" {n}"
            )
        lines.append("# TYPE :tensorflow:serving:request_latency histogram")
        for (entrypoint, method, model), (buckets, total, micros) in latency:
            cumulative = 0
            for bound, n in zip(_BUCKETS_US, buckets):
                cumulative += n
                lines.append(
                    ":tensorflow:serving:request_latency_bucket"
                    + labels(entrypoint=entrypoint, API=method, model_name=model, le=str(bound)) + f" {cumulative}"
                )
            lines.append(
                ":tensorflow:serving:request_latency_bucket"
                + labels(entrypoint=entrypoint, API=method, model_name=model, le="+Inf") + f" {total}"
            )
            base = labels(entrypoint=entrypoint, API=method, model_name=model)
            lines.append(f":tensorflow:serving:request_latency_sum{base} {micros:.1f}")
            lines.append(f":tensorflow:serving:request_latency_count{base} {total}")
        return "\n".join(lines) + "\n"


def _escape(value):
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
