"""Request counts and latencies for Prometheus, under TF Serving's metric names and labels, kept and written by
``prometheus_client``, on the REST port at the path ``monitoring.config`` names (TF Serving's
``/monitoring/prometheus/metrics``):

- ``:tensorflow:serving:request_count`` (counter): requests answered, labelled ``entrypoint`` (``gRPC``,
  ``REST``), ``API`` (``Predict``, ``GetModelStatus``, ``predict``, ...), ``model_name`` and ``status``
  (``OK``, ``NOT_FOUND``, ...);
- ``:tensorflow:serving:request_latency`` (histogram, in microseconds as in TF Serving): the time to answer,
  labelled ``entrypoint``, ``API`` and ``model_name``.

Each server has its own `prometheus_client.CollectorRegistry` (``server.metrics.registry``), so several servers in
one process keep apart, and an application can register its own metrics there to have them on the same page.
The page is Prometheus' text format (version 0.0.4, as TF Serving's), whatever the scraper's ``Accept`` asks:
prometheus_client's OpenMetrics writer turns the colons of sample names into underscores but not those of the
``# TYPE`` lines (prometheus/client_python#1177), which strict parsers reject. Unlike TF Serving's page, a
counter's samples carry the ``_total`` suffix that prometheus_client always writes
(``:tensorflow:serving:request_count_total{...}``), and a ``_created`` timestamp.
"""

import prometheus_client

__all__ = ["Metrics"]

CONTENT_TYPE = prometheus_client.CONTENT_TYPE_PLAIN_0_0_4
REQUEST_COUNT = ":tensorflow:serving:request_count"
REQUEST_LATENCY = ":tensorflow:serving:request_latency"
_BUCKETS_US = (100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000)


class Metrics:
    """The request counter and latency histogram of one server, in their own registry (thread-safe).

    Args:
        registry: the `prometheus_client.CollectorRegistry` to register them in (default: a new one).
    """

    def __init__(self, registry=None):
        self.registry = prometheus_client.CollectorRegistry() if registry is None else registry
        self._requests = prometheus_client.Counter(
            REQUEST_COUNT, "Requests answered, by entry point, API, model and status code.",
            ("entrypoint", "API", "model_name", "status"), registry=self.registry,
        )
        self._latency = prometheus_client.Histogram(
            REQUEST_LATENCY, "Time to answer a request, in microseconds.",
            ("entrypoint", "API", "model_name"), buckets=_BUCKETS_US, registry=self.registry,
        )

    def observe(self, entrypoint, method, model, code, seconds):
        """Counts one request answered with status ``code`` after ``seconds``."""
        model = model or ""
        self._requests.labels(entrypoint, method, model, code).inc()
        self._latency.labels(entrypoint, method, model).observe(seconds * 1e6)

    def count(self, code=None):
        """Requests seen (with status ``code``, or all)."""
        return int(sum(
            sample.value
            for family in self._requests.collect()
            for sample in family.samples
            if sample.name == REQUEST_COUNT + "_total" and (code is None or sample.labels["status"] == code)
        ))

    def render(self):
        """The page (bytes of `CONTENT_TYPE`): every metric of `registry`."""
        return prometheus_client.generate_latest(self.registry)
