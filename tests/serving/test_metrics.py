"""The Prometheus page (`keras_gen.serving.metrics`): TF Serving's metric names and labels, written by
prometheus_client from one registry per server, with the counts of known requests."""

import http.client
import time
from urllib.parse import urlsplit

import numpy as np
import prometheus_client
from prometheus_client.parser import text_string_to_metric_families

from keras_gen.serving import ModelServer, RequestError, RestSamplerClient, SamplerClient
from tests.serving.helpers import _base, _http, _z

PAGE = "/monitoring/prometheus/metrics"
COUNT = ":tensorflow:serving:request_count"
LATENCY = ":tensorflow:serving:request_latency"
BOUNDS_US = [100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000]


def _page(url, accept=None):
    """``(content type, text)`` of the metrics page."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.request("GET", parts.path, headers={"Accept": accept} if accept else {})
        response = connection.getresponse()
        text = response.read().decode()
        assert response.status == 200, text
        return response.getheader("Content-Type"), text
    finally:
        connection.close()


def _families(text):
    return {family.name: family for family in text_string_to_metric_families(text)}


def test_metrics_page_counts_known_requests(exported, server, tmp_path):
    _, paths = exported
    _http(f"{server.rest_url}/v1/models/dcgan")  # a request to the other server in this process
    srv = ModelServer(_base(tmp_path, paths, "a"), grpc_port=0, rest_port=0, poll_interval=0, monitoring=True)
    srv.start()
    try:
        started = time.perf_counter()
        with SamplerClient(srv.grpc_address, model="dcgan", retries=0) as client:
            for seed in range(3):
                client.generate(_z(2, seed))
            client.status()
        with SamplerClient(srv.grpc_address, model="nope", retries=0) as client:
            try:
                client.status()
            except RequestError as exc:
                assert exc.code == "NOT_FOUND"
        with RestSamplerClient(srv.rest_url, model="dcgan", retries=0) as client:
            client.generate(_z(2, 5))  # the client reads the metadata first: GetModelMetadata, then predict
            client.generate(_z(2, 6))
        elapsed_us = (time.perf_counter() - started) * 1e6
        content_type, text = _page(srv.rest_url + PAGE)
        families = _families(text)
    finally:
        srv.stop(grace=1)

    assert content_type.startswith("text/plain")
    assert families[COUNT].type == "counter" and families[LATENCY].type == "histogram"
    counts = {
        (s.labels["entrypoint"], s.labels["API"], s.labels["model_name"], s.labels["status"]): s.value
        for s in families[COUNT].samples if s.name == COUNT + "_total"
    }
    assert counts == {
        ("gRPC", "GetModelMetadata", "dcgan", "OK"): 1,  # SamplerClient.generate reads the signatures once
        ("gRPC", "Predict", "dcgan", "OK"): 3,
        ("gRPC", "GetModelStatus", "dcgan", "OK"): 1,
        ("gRPC", "GetModelStatus", "nope", "NOT_FOUND"): 1,
        ("REST", "GetModelMetadata", "dcgan", "OK"): 1,
        ("REST", "predict", "dcgan", "OK"): 2,
    }
    # The latency histogram (microseconds, TF Serving's unit): one observation per request, cumulative buckets.
    latency = {}
    for s in families[LATENCY].samples:
        key = (s.labels["entrypoint"], s.labels["API"], s.labels["model_name"])
        suffix = s.name[len(LATENCY):]
        latency.setdefault(key, {})[(suffix, float(s.labels["le"])) if "le" in s.labels else suffix] = s.value
    for (entrypoint, api, model), values in latency.items():
        n = sum(v for (e, a, m, _), v in counts.items() if (e, a, m) == (entrypoint, api, model))
        buckets = [values["_bucket", float(b)] for b in BOUNDS_US + ["inf"]]
        assert values["_count"] == n == buckets[-1] and np.all(np.diff(buckets) >= 0), (entrypoint, api, values)
        assert 0 < values["_sum"] <= n * elapsed_us
    assert set(latency) == {key[:3] for key in counts}
    assert srv.stats()["requests"] == 10 and srv.stats()["errors"] == 1  # the 9, and the page's own request


def test_metrics_come_from_one_registry_per_server(server, tmp_path):
    other = ModelServer(tmp_path, grpc_port=None, rest_port=0, monitoring=True)
    registry = other.metrics.registry
    assert isinstance(registry, prometheus_client.CollectorRegistry)
    assert registry is not server.metrics.registry and registry is not prometheus_client.REGISTRY
    # What an application registers in a server's registry is on that server's page.
    gauge = prometheus_client.Gauge("keras_gen_test_queue_depth", "A user's gauge.", registry=server.metrics.registry)
    gauge.set(3)
    try:
        families = _families(_page(server.rest_url + PAGE)[1])
        assert families["keras_gen_test_queue_depth"].samples[0].value == 3
        assert "keras_gen_test_queue_depth" not in {f.name for f in registry.collect()}
    finally:
        server.metrics.registry.unregister(gauge)


def test_metrics_page_is_prometheus_text_whatever_the_scraper_accepts(server):
    """Prometheus 2's Accept header prefers OpenMetrics; prometheus_client's OpenMetrics writer would rename the
    samples of colon names but not their TYPE lines (client_python#1177), so the page stays the text format."""
    _http(f"{server.rest_url}/v1/models/cgan")
    accept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75," \
             "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
    for header in (None, accept):
        content_type, text = _page(server.rest_url + PAGE, accept=header)
        assert content_type.startswith("text/plain; version=0.0.4")
        typed = None
        for line in text.splitlines():  # every sample belongs to the family its TYPE line names
            if line.startswith("# TYPE "):
                typed = line.split()[2]
            elif not line.startswith("#"):
                assert line.startswith(typed), (typed, line)
        samples = _families(text)[COUNT].samples
        assert any(s.labels == {"entrypoint": "REST", "API": "GetModelStatus", "model_name": "cgan", "status": "OK"}
                   and s.value >= 1 for s in samples)


def test_a_rest_request_is_counted_before_its_answer_leaves(server, monkeypatch):
    """A client that holds its answer and reads /metrics at once finds its request counted: the REST server records
    a request before it writes the response (it used to record after, and a fast scraper could miss it)."""
    from keras_gen.serving import rest_server

    events = []
    record, send = server.core.record, rest_server._Handler._send

    def recording(*args, **kwargs):
        events.append(("record", args[1]))
        return record(*args, **kwargs)

    def sending(self, status, *args, **kwargs):
        events.append(("send", status))
        return send(self, status, *args, **kwargs)

    monkeypatch.setattr(server.core, "record", recording)
    monkeypatch.setattr(rest_server._Handler, "_send", sending)
    _http(f"{server.rest_url}/v1/models/cgan")
    assert events[:2] == [("record", "GetModelStatus"), ("send", 200)], events
