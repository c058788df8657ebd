"""`ModelServer`: TF Serving's protocol (gRPC and REST) over the models exported by `keras_gen.export`.

    from keras_gen.serving import ModelServer
    with ModelServer("exports", grpc_port=8500, rest_port=8501) as server:   # BASE/NAME/VERSION/
        ...                                                                  # serve until the block ends
    # or, blocking until SIGTERM / Ctrl-C:  keras-gen serve exports

What it does, as ``tensorflow_model_server`` does:

- serves every model folder under the base path (or one model folder, or the models of a ``models.config``),
  each at its newest version by default (or ``all`` / ``specific`` versions and version labels from the config);
- polls the base path every ``poll_interval`` seconds: a new version folder is loaded and warmed up, takes the
  traffic, and the old version is unloaded once its requests in flight have finished (`ModelManager`);
- answers gRPC (``PredictionService``, ``ModelService``) and REST (``/v1/models/...``) with TF Serving's status
  codes and messages; optional server-side batching (`BatchingParameters`: every signature of a batched model,
  or only the versions with a ``batching_params.pbtxt`` under per-model batching, as TF Serving batches), TLS on
  both ports, and a Prometheus page on the REST port;
- binds to 127.0.0.1 unless ``host`` says otherwise; stops gracefully (in-flight requests finish) on `stop`, and
  on SIGTERM / SIGINT under `serve`.

Differences from TF Serving: one Python process (requests run in threads; TensorFlow and ONNX Runtime release the
GIL while computing); port 0 picks a free port (TF Serving's ``--rest_api_port=0`` turns REST off: here pass
``rest_port=None``); a model keeps its last version when every version folder disappears; ``models.config`` is
read once (TF Serving re-reads it every ``--model_config_file_poll_wait_seconds``); a batching parameters file
that leaves a field out gets `BatchingParameters`' default for it, not TF Serving's. ``docs/serving.md`` lists
the TF Serving behaviour this server follows, with its sources.
"""

import logging
import os
import signal
import ssl
import threading

from keras_gen.serving.backends import BACKENDS, load_servable
from keras_gen.serving.batching import BatchingParameters, read_model_batching
from keras_gen.serving.config import PROMETHEUS_PATH, discover_models, read_model_config, read_monitoring_config
from keras_gen.serving.manager import ModelManager
from keras_gen.serving.metrics import Metrics
from keras_gen.serving.service import PredictionCore

__all__ = ["ModelServer", "serve"]

logger = logging.getLogger("keras_gen.serving")

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _check_port(name, port):
    if port is None:
        return None
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"`{name}` must be a port number 0-65535 (0: any free port) or None (off), got {port!r}.")
    return port


def _check_positive(name, value, integer=True, zero=False):
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or value < 0 or (value == 0 and not zero):
        raise ValueError(f"`{name}` must be a {'non-negative' if zero else 'positive'} number, got {value!r}.")
    return value


def _batching(batching):
    if batching is None or batching is False:
        return None
    if batching is True:
        return BatchingParameters()
    if isinstance(batching, BatchingParameters):
        return batching
    if isinstance(batching, (str, os.PathLike)):
        return BatchingParameters.from_file(batching)
    if isinstance(batching, dict):
        return BatchingParameters(**batching)
    raise TypeError(
        f"`batching` must be None/False (off), True (defaults), a BatchingParameters, a dict of its fields or a "
        f"batching parameters file, got {type(batching).__name__}."
    )


class ModelServer:
    """A TF-Serving-protocol server (see the module docstring).

    Args:
        base_path: the export base path (``BASE/NAME/VERSION``), or one model's folder (``BASE/VERSION``).
        models: `ModelSource` s to serve instead of discovering them under ``base_path``.
        model_config_file: a ``models.config`` (TF Serving's text format); relative base paths are taken from
            ``base_path`` (or the file's folder).
        model_name: serve only this model of ``base_path`` (or name the model when ``base_path`` is a model folder).
        host: the address to listen on; 127.0.0.1 by default (``"0.0.0.0"`` for every interface: use TLS).
        grpc_port, rest_port: ports (0: a free one, None: off). The bound ports are in `grpc_port` / `rest_port`
            after `start`.
        backend: ``"savedmodel"`` or ``"onnx"`` (see `keras_gen.serving.backends`).
        batching: None (off), True (default `BatchingParameters`), a `BatchingParameters`, a dict of its fields,
            or a batching parameters file (TF Serving's ``--enable_batching`` and ``--batching_parameters_file``).
            As in TF Serving, every signature of a batched model is batched, so `sample` (scalar inputs) is
            refused there: see ``per_model_batching``.
        per_model_batching: TF Serving's ``--enable_per_model_batching_parameters``: with ``batching`` on, batch
            only the versions whose folder holds a ``batching_params.pbtxt`` (read when the version loads; one
            that does not parse fails the load), with that file's parameters; ``batching`` then gives only
            ``num_batch_threads``, shared by all batched models. Ignored without ``batching``, as in TF Serving.
        poll_interval: seconds between scans of the base path for new versions (0: scan once at start).
        max_images: the most images one request may ask for (INVALID_ARGUMENT beyond it).
        max_request_bytes: the largest request (gRPC: RESOURCE_EXHAUSTED; REST: HTTP 413).
        tls_cert, tls_key: PEM certificate chain and private key: TLS on both ports.
        monitoring: None/False (off), True (Prometheus page at TF Serving's default path), or the page's URL path
            (starting with ``/``).
        monitoring_config_file: a ``monitoring.config`` file (TF Serving's format) saying the same.
        warmup: run every signature once when a version loads (a failure fails the load).
        grpc_workers: threads answering gRPC calls.
        onnx_threads: ONNX Runtime intra-op threads per session (0: its default).
        grace: seconds `stop` waits for requests in flight.

    Raises:
        ValueError / TypeError: a bad argument (named). FileNotFoundError: a missing base path or file.
    """

    def __init__(
        self,
        base_path=None,
        *,
        models=None,
        model_config_file=None,
        model_name=None,
        host="127.0.0.1",
        grpc_port=8500,
        rest_port=8501,
        backend="savedmodel",
        batching=None,
        per_model_batching=False,
        poll_interval=1.0,
        max_images=1024,
        max_request_bytes=16 << 20,
        tls_cert=None,
        tls_key=None,
        monitoring=None,
        monitoring_config_file=None,
        warmup=True,
        grpc_workers=32,
        onnx_threads=0,
        grace=10.0,
    ):
        if backend not in BACKENDS:
            raise ValueError(f"Unknown backend {backend!r}. Valid: {', '.join(BACKENDS)}.")
        if not isinstance(host, str) or not host:
            raise ValueError(f"`host` must be an address such as '127.0.0.1', got {host!r}.")
        self.host = host
        self._grpc_port = _check_port("grpc_port", grpc_port)
        self._rest_port = _check_port("rest_port", rest_port)
        if self._grpc_port is None and self._rest_port is None:
            raise ValueError("Both `grpc_port` and `rest_port` are None: nothing would be served.")
        self.backend = backend
        self.batching = _batching(batching)
        self.per_model_batching = bool(per_model_batching)
        if self.per_model_batching and self.batching is None:
            logger.warning("per_model_batching is ignored without batching (as TF Serving ignores "
                           "--enable_per_model_batching_parameters without --enable_batching).")
            self.per_model_batching = False
        self.poll_interval = _check_positive("poll_interval", poll_interval, integer=False, zero=True)
        self.max_request_bytes = _check_positive("max_request_bytes", max_request_bytes)
        self.grpc_workers = _check_positive("grpc_workers", grpc_workers)
        self.onnx_threads = _check_positive("onnx_threads", onnx_threads, zero=True)
        self.grace = _check_positive("grace", grace, integer=False, zero=True)
        self.warmup = bool(warmup)
        if (tls_cert is None) != (tls_key is None):
            raise ValueError("TLS needs both `tls_cert` and `tls_key` (PEM files), or neither.")
        self._tls = None
        if tls_cert is not None:
            with open(tls_cert, "rb") as f:
                cert = f.read()
            with open(tls_key, "rb") as f:
                key = f.read()
            self._tls = (os.fspath(tls_cert), os.fspath(tls_key), cert, key)
        self.metrics_path = self._monitoring(monitoring, monitoring_config_file)
        self.sources = self._sources(base_path, models, model_config_file, model_name)
        self.metrics = Metrics()
        self.manager = ModelManager(self.sources, self._load)
        self.core = PredictionCore(self.manager, max_images=max_images, batching=self.batching, metrics=self.metrics,
                                   per_model_batching=self.per_model_batching)
        self._grpc = None
        self._rest = None
        self._threads = []
        self._stop = threading.Event()
        self._stopped = threading.Event()
        self._started = False

    # ------------------------------------------------------------------------------------------- setup
    @staticmethod
    def _monitoring(monitoring, config_file):
        if config_file is not None:
            if monitoring not in (None, False):
                raise ValueError("Give `monitoring` or `monitoring_config_file`, not both.")
            return read_monitoring_config(config_file)
        if monitoring is None or monitoring is False:
            return None
        if monitoring is True:
            return PROMETHEUS_PATH
        if isinstance(monitoring, str) and monitoring.startswith("/"):
            return monitoring
        raise ValueError(
            f"`monitoring` must be True, False/None or a URL path starting with '/', got {monitoring!r} (a "
            "monitoring.config file goes to `monitoring_config_file`)."
        )

    @staticmethod
    def _sources(base_path, models, model_config_file, model_name):
        if models is not None:
            return list(models)
        if model_config_file is not None:
            return read_model_config(model_config_file, base=base_path)
        if base_path is None:
            raise ValueError("Give a base path (or `models` / `model_config_file`).")
        base = os.path.abspath(os.fspath(base_path))
        discover_models(base, model_name)  # raises FileNotFoundError now, not at the first poll
        return lambda: discover_models(base, model_name)

    def _load(self, name, version, path):
        servable = load_servable(name, version, path, self.backend, onnx_threads=self.onnx_threads)
        try:
            batching = read_model_batching(path) if self.per_model_batching else None
            if self.warmup:
                servable.warm_up()
        except BaseException:
            servable.close()
            raise
        if batching is not None:
            self.core.model_batching[servable] = batching
        return servable

    # ------------------------------------------------------------------------------------------- running
    def start(self):
        """Loads the models (the newest versions, warmed up), then listens. Returns ``self``.

        Raises:
            OSError: a port cannot be bound.
        """
        if self._started:
            raise RuntimeError("This ModelServer was already started; make a new one.")
        self._started = True
        self.manager.poll()
        served = {name: versions for name, versions in self.manager.models().items() if versions}
        if not served:
            logger.warning("No model version could be loaded yet; polling for them.")
        try:
            if self._grpc_port is not None:
                self._start_grpc()
            if self._rest_port is not None:
                self._start_rest()
        except BaseException:
            self.stop(grace=0)
            raise
        if self.poll_interval:
            poller = threading.Thread(target=self._poll_loop, name="keras-gen-serving-poll", daemon=True)
            poller.start()
            self._threads.append(poller)
        scheme = "https" if self._tls else "http"
        logger.info(
            "Serving %s (%s backend%s) on %s",
            ", ".join(f"{n} v{max(v)}" for n, v in sorted(served.items())) or "no model yet",
            self.backend,
            ", batching" if self.batching else "",
            ", ".join(filter(None, [
                f"gRPC {self.grpc_address}" if self.grpc_port else None,
                f"REST {scheme}://{self.rest_address}" if self.rest_port else None,
            ])),
        )
        if self.host not in _LOOPBACK and self._tls is None:
            logger.warning("Listening on %s without TLS: anyone who can reach it can use it.", self.host)
        return self

    def _start_grpc(self):
        import grpc

        from keras_gen.serving.grpc_server import build_grpc_server

        credentials = grpc.ssl_server_credentials([(self._tls[3], self._tls[2])]) if self._tls else None
        self._grpc, self._grpc_port = build_grpc_server(
            self.core, self.host, self._grpc_port, max_workers=self.grpc_workers,
            max_request_bytes=self.max_request_bytes, credentials=credentials,
        )
        self._grpc.start()

    def _start_rest(self):
        from keras_gen.serving.rest_server import build_rest_server

        context = None
        if self._tls:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(self._tls[0], self._tls[1])
        self._rest = build_rest_server(self.core, self.host, self._rest_port, self.max_request_bytes, context,
                                       self.metrics_path)
        self._rest_port = self._rest.port
        thread = threading.Thread(target=self._rest.serve_forever, kwargs={"poll_interval": 0.2},
                                  name="keras-gen-serving-rest", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _poll_loop(self):
        while not self._stop.wait(self.poll_interval):
            try:
                self.manager.poll()
            except Exception:  # noqa: BLE001 - keep polling; the error is logged
                logger.exception("Polling the model base path failed")

    def stop(self, grace=None):
        """Stops listening, lets requests in flight finish (up to ``grace`` seconds), unloads the models."""
        if self._stopped.is_set():
            return
        grace = self.grace if grace is None else grace
        self._stop.set()
        if self._grpc is not None:
            self._grpc.stop(grace).wait(grace + 1)
        if self._rest is not None:
            self._rest.stop(grace)
        for thread in self._threads:
            thread.join(grace + 1)
        self.manager.close(timeout=grace)
        self._stopped.set()
        logger.info("Server stopped")

    def wait(self, timeout=None):
        """Blocks until `stop` has finished (or ``timeout`` seconds); returns whether it has."""
        return self._stopped.wait(timeout)

    def __enter__(self):
        return self if self._started else self.start()

    def __exit__(self, *exc):
        self.stop()

    # ------------------------------------------------------------------------------------------- introspection
    @property
    def grpc_port(self):
        """The bound gRPC port (after `start`), or None when gRPC is off."""
        return self._grpc_port

    @property
    def rest_port(self):
        """The bound REST port (after `start`), or None when REST is off."""
        return self._rest_port

    @property
    def grpc_address(self):
        return None if self._grpc_port is None else _address(self.host, self._grpc_port)

    @property
    def rest_address(self):
        return None if self._rest_port is None else _address(self.host, self._rest_port)

    @property
    def rest_url(self):
        """``http(s)://host:port`` of the REST API."""
        if self._rest_port is None:
            return None
        return f"{'https' if self._tls else 'http'}://{self.rest_address}"

    def models(self):
        """``{name: [available versions]}``."""
        return self.manager.models()

    def stats(self):
        """Requests answered (by status code) and the batchers' statistics."""
        return {"requests": self.metrics.count(), "errors": self.metrics.count() - self.metrics.count("OK"),
                "batching": self.core.batching_stats()}


def _address(host, port):
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def serve(base_path=None, ready=None, **kwargs):
    """Runs a `ModelServer` until SIGTERM or SIGINT, then stops it gracefully (the ``keras-gen serve`` command).

    Args:
        base_path: as in `ModelServer`.
        ready: called with the started server (e.g. to print its addresses).
        **kwargs: `ModelServer` arguments.

    Returns:
        0 once stopped.
    """
    server = ModelServer(base_path, **kwargs)
    stop = threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, lambda number, frame: stop.set())
    try:
        server.start()
        if ready is not None:
            ready(server)
        while not stop.wait(0.5):
            pass
        logger.info("Stopping (signal received); requests in flight get %.0f s to finish", server.grace)
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
