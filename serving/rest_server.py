"""The REST front end, as TF Serving documents it (https://www.tensorflow.org/tfx/serving/api_rest), on the
standard library's ``ThreadingHTTPServer`` (HTTP/1.1, keep-alive, one thread per connection).

==========================================================================  =====================================
request                                                                     answer
==========================================================================  =====================================
``GET /v1/models/NAME[/versions/N | /labels/L]``                            ``{"model_version_status": [...]}``
``GET /v1/models/NAME[/versions/N | /labels/L]/metadata``                   ``{"model_spec": ..., "metadata":
                                                                            {"signature_def": ...}}``
``POST /v1/models/NAME[/versions/N | /labels/L]:predict``                   see below
``POST ...:classify`` / ``...:regress``                                     501, UNIMPLEMENTED
``GET /monitoring/prometheus/metrics`` (when monitoring is on)              Prometheus text
==========================================================================  =====================================

Predict bodies: ``{"signature_name": "...", "instances": [...]}`` (row format: one entry per example, an object
``{input: value}`` when the signature has several inputs; answered with ``{"predictions": [...]}``, one entry per
example, an object when there are several outputs) or ``{"signature_name": "...", "inputs": {input: value}}``
(columnar format: whole tensors, the only way to send scalars such as ``n`` and ``seed``; answered with
``{"outputs": {output: value}}``, or the bare value for a single output). For example::

    curl -d '{"signature_name": "sample_uint8", "inputs": {"n": 4, "seed": 0}}' \\
        http://127.0.0.1:8501/v1/models/dcgan:predict

Errors are ``{"error": "<message>"}`` with TF Serving's HTTP status for the status code (`errors.HTTP_STATUS`);
a path under ``/v1/`` that matches nothing is a 400 ("Malformed request"), any other path a 404; a body over the
server's limit a 413, a chunked body a 411.
"""

import json
import logging
import re
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

from keras_gen.serving.errors import RequestError, ServingError, from_exception
from keras_gen.serving.metrics import CONTENT_TYPE
from keras_gen.serving.tensors import array_to_json, json_to_array

__all__ = ["build_rest_server", "RestServer", "json_inputs", "json_outputs"]

logger = logging.getLogger("keras_gen.serving")

_SPEC = r"/v1/models/([^/:]+)(?:/versions/(\d+)|/labels/([^/:]+))?"
_PREDICT = re.compile(rf"(?i)^{_SPEC}:(predict|classify|regress)$")
_STATUS = re.compile(rf"(?i)^{_SPEC}(/metadata)?$")
_INT64_MAX = 2**63 - 1


class _HTTPError(Exception):
    def __init__(self, status, code, message, close=False):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.close = close


# ------------------------------------------------------------------------------------------------ JSON formats
def json_inputs(payload, signature):
    """A predict body (parsed JSON) -> ``({input name: array}, row_format)`` for ``signature``.

    Raises:
        RequestError: INVALID_ARGUMENT for anything malformed (named).
    """
    if not isinstance(payload, dict):
        raise RequestError("INVALID_ARGUMENT", "The request body must be a JSON object.")
    if "instances" in payload and "inputs" in payload:
        raise RequestError("INVALID_ARGUMENT", 'The request has both "instances" and "inputs": send one of them.')
    names = sorted(signature.inputs)
    if "instances" in payload:
        instances = payload["instances"]
        if not isinstance(instances, list) or not instances:
            raise RequestError("INVALID_ARGUMENT", '"instances" must be a non-empty list.')
        scalars = [k for k in names if signature.inputs[k].shape == ()]
        if scalars:
            raise RequestError(
                "INVALID_ARGUMENT",
                f"input(s) {', '.join(scalars)} of signature {signature.name!r} are scalars, which the row "
                '("instances") format cannot carry: send {"inputs": {...}} (the columnar format) instead.',
            )
        if all(isinstance(item, dict) for item in instances):
            keys = set(instances[0])
            if any(set(item) != keys for item in instances):
                raise RequestError("INVALID_ARGUMENT", "Every instance must name the same inputs.")
            columns = {key: [item[key] for item in instances] for key in sorted(keys)}
        elif any(isinstance(item, dict) for item in instances):
            raise RequestError("INVALID_ARGUMENT", "Instances must be all objects or all values, not a mix.")
        else:
            if len(names) != 1:
                raise RequestError(
                    "INVALID_ARGUMENT",
                    f"signature {signature.name!r} has {len(names)} inputs ({', '.join(names)}): each instance must "
                    "be an object naming them.",
                )
            columns = {names[0]: instances}
        row = True
    elif "inputs" in payload:
        value = payload["inputs"]
        if isinstance(value, dict):
            columns = value
        else:
            if len(names) != 1:
                raise RequestError(
                    "INVALID_ARGUMENT",
                    f"signature {signature.name!r} has {len(names)} inputs ({', '.join(names)}): \"inputs\" must be "
                    "an object naming them.",
                )
            columns = {names[0]: value}
        row = False
    else:
        raise RequestError("INVALID_ARGUMENT", 'Missing "instances" or "inputs" key in the request body.')
    arrays = {}
    for key, value in columns.items():
        spec = signature.inputs.get(key)
        if spec is None:
            raise RequestError(
                "INVALID_ARGUMENT",
                f"input tensor alias not found in signature: {key}. Inputs expected to be in the set "
                f"{{{','.join(names)}}}.",
            )
        arrays[key] = json_to_array(value, spec.dtype, key)
    return arrays, row


def json_outputs(outputs, row):
    """Outputs -> the response object: ``{"predictions": ...}`` (row) or ``{"outputs": ...}`` (columnar)."""
    if not row:
        if len(outputs) == 1:
            return {"outputs": array_to_json(next(iter(outputs.values())))}
        return {"outputs": {key: array_to_json(value) for key, value in outputs.items()}}
    if len(outputs) == 1:
        return {"predictions": array_to_json(next(iter(outputs.values())))}
    sizes = {key: (value.shape[0] if value.ndim else None) for key, value in outputs.items()}
    if None in sizes.values() or len(set(sizes.values())) != 1:
        raise RequestError(
            "INVALID_ARGUMENT",
            f"The outputs have different batch sizes ({sizes}), which the row format cannot answer: send \"inputs\".",
        )
    lists = {key: array_to_json(value) for key, value in outputs.items()}
    count = next(iter(sizes.values()))
    return {"predictions": [{key: lists[key][i] for key in lists} for i in range(count)]}


def _status_json(statuses):
    return {
        "model_version_status": [
            {"version": str(s["version"]), "state": s["state"],
             "status": {"error_code": s["error_code"], "error_message": s["error_message"]}}
            for s in statuses
        ]
    }


# ------------------------------------------------------------------------------------------------ the handler
class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "keras-gen-serving"
    timeout = 60  # seconds an idle keep-alive connection is kept
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall

    def setup(self):
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(self.timeout)
            self.request.do_handshake()
        super().setup()
        self.server.track(self.request, True)

    def finish(self):
        try:
            super().finish()
        finally:
            self.server.track(self.request, False)

    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass  # one debug line per request is written by PredictionCore.record

    def send_error(self, code, message=None, explain=None):
        """The HTTP layer's own refusals (a malformed request line, an unsupported method) as JSON too."""
        self.close_connection = True
        body = json.dumps({"error": message or explain or f"HTTP {code}"}).encode()
        try:
            self.send_response(code, message)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD" and code >= 200 and code not in (204, 304):
                self.wfile.write(body)
        except OSError:
            pass

    def do_GET(self):  # noqa: N802
        self._handle("GET")

    def do_POST(self):  # noqa: N802
        self._handle("POST")

    def do_PUT(self):  # noqa: N802
        self._handle("PUT")

    def do_DELETE(self):  # noqa: N802
        self._handle("DELETE")

    def do_PATCH(self):  # noqa: N802
        self._handle("PATCH")

    # ----------------------------------------------------------------------------------------------
    def _handle(self, method):
        server = self.server
        core = server.core
        started = time.perf_counter()
        self._log = {"api": method, "name": None, "version": None, "signature": None, "images": None}
        if not server.begin():
            self._send(503, {"error": "The server is shutting down."}, close=True)
            core.record("REST", method, None, None, None, "UNAVAILABLE", started)
            return
        code = "OK"
        recorded = False
        try:
            try:
                status, payload, content_type = self._route(method)
            except _HTTPError as exc:
                code = exc.code
                status, payload, content_type = exc.status, {"error": exc.message}, None
                if exc.close:
                    self.close_connection = True
            except ServingError as exc:
                code = exc.code
                status, payload, content_type = exc.http_status, {"error": exc.message}, None
            except Exception as exc:  # noqa: BLE001 - every failure becomes a status code
                error = from_exception(exc)
                code = error.code
                status, payload, content_type = error.http_status, {"error": error.message}, None
            # Counted before the answer leaves: a client holding its answer finds the request on /metrics.
            self._record(code, started)
            recorded = True
            self._send(status, payload, content_type)
        finally:
            server.end()
            if not recorded:
                self._record(code, started)

    def _record(self, code, started):
        log = self._log
        self.server.core.record("REST", log["api"], log["name"], log["version"], log["signature"], code, started,
                                log["images"])

    def _send(self, status, payload, content_type=None, close=False):
        if isinstance(payload, (bytes, str)):
            body = payload.encode() if isinstance(payload, str) else payload
        else:
            body = json.dumps(payload, separators=(",", ":")).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type or "application/json")
            self.send_header("Content-Length", str(len(body)))
            if close or self.close_connection:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(body)
        except OSError:  # the client went away
            self.close_connection = True

    def _read_body(self):
        server = self.server
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            raise _HTTPError(411, "INVALID_ARGUMENT",
                             "Chunked request bodies are not supported: send a Content-Length.", close=True)
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        try:
            length = int(length)
            if length < 0:
                raise ValueError
        except ValueError:
            raise _HTTPError(400, "INVALID_ARGUMENT", f"Invalid Content-Length {length!r}.", close=True) from None
        if length > server.max_request_bytes:
            close = True
            if length <= 4 * server.max_request_bytes:  # read it, so the client sees the answer, not a reset
                self._discard(length)
                close = False
            raise _HTTPError(
                413, "INVALID_ARGUMENT",
                f"The request body has {length} bytes; this server takes at most {server.max_request_bytes} "
                "(--max-request-bytes).",
                close=close,
            )
        body = self.rfile.read(length)
        if len(body) != length:
            raise _HTTPError(400, "INVALID_ARGUMENT", "The request body ended early.", close=True)
        return body

    def _discard(self, length):
        while length > 0:
            chunk = self.rfile.read(min(length, 1 << 16))
            if not chunk:
                break
            length -= len(chunk)

    def _route(self, method):
        server = self.server
        path = unquote(urlsplit(self.path).path)
        body = self._read_body()  # read whatever was sent (even with GET), so a kept-alive connection stays in step
        if method == "GET" and server.metrics_path is not None and path == server.metrics_path:
            self._log["api"] = "metrics"
            return 200, server.core.metrics.render(), CONTENT_TYPE
        match = _PREDICT.match(path) if method == "POST" else _STATUS.match(path) if method == "GET" else None
        if match is None:
            if path.lower().startswith("/v1/"):
                raise RequestError("INVALID_ARGUMENT", f"Malformed request: {method} {path}")
            raise _HTTPError(404, "NOT_FOUND", f"Not found: {method} {path} (the API is under /v1/models/).")
        name, version, label = match.group(1), match.group(2), match.group(3)
        if version is not None:
            version = int(version)
            if version > _INT64_MAX:
                raise RequestError("INVALID_ARGUMENT", f"Failed to convert version: {match.group(2)} to numeric.")
        self._log.update(name=name, version=version)
        core = server.core
        if method == "GET":
            if match.group(4):
                self._log["api"] = "GetModelMetadata"
                from google.protobuf import json_format

                served, signature_defs = core.metadata(name, version, label)
                payload = {
                    "model_spec": {"name": name, "signature_name": "", "version": str(served)},
                    "metadata": {"signature_def": json_format.MessageToDict(
                        signature_defs, preserving_proto_field_name=True)},
                }
                return 200, payload, None
            self._log["api"] = "GetModelStatus"
            return 200, _status_json(core.status(name, version, label)), None
        kind = match.group(4).lower()
        self._log["api"] = kind
        if kind != "predict":
            raise RequestError(
                "UNIMPLEMENTED",
                f"{kind} is not implemented: keras-gen models are generators without classification or regression "
                "signatures; use :predict.",
            )
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError) as exc:
            raise RequestError("INVALID_ARGUMENT", f"The request body is not valid JSON: {exc}") from None
        signature_name = payload.get("signature_name", "") if isinstance(payload, dict) else ""
        if not isinstance(signature_name, str):
            raise RequestError("INVALID_ARGUMENT", '"signature_name" must be a string.')
        self._log["signature"] = signature_name or "serving_default"
        row = {}

        def inputs(signature):
            arrays, row["row"] = json_inputs(payload, signature)
            return arrays

        result = core.predict(name, version, label, signature_name, inputs)
        first = next(iter(result.outputs.values()), None)
        self._log.update(version=result.version, images=first.shape[0] if first is not None and first.ndim else None)
        return 200, json_outputs(result.outputs, row["row"]), None


class RestServer(ThreadingHTTPServer):
    """The REST server: `ThreadingHTTPServer` with the request limits, TLS, and a graceful `stop`.

    Args:
        address: ``(host, port)``; port 0 picks a free one.
        core: the `PredictionCore`.
        max_request_bytes: the largest request body (HTTP 413 beyond it).
        ssl_context: an ``ssl.SSLContext`` for HTTPS, or None.
        metrics_path: where the Prometheus page is served (None: not served).
    """

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address, core, max_request_bytes=16 << 20, ssl_context=None, metrics_path=None):
        self.core = core
        self.max_request_bytes = int(max_request_bytes)
        self.metrics_path = metrics_path
        self._active = 0
        self._stopping = False
        self._cond = threading.Condition()
        self._connections = set()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)
        if ssl_context is not None:
            self.socket = ssl_context.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)

    @property
    def port(self):
        return self.server_address[1]

    def track(self, connection, opened):
        with self._cond:
            if opened:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def begin(self):
        """Counts a request in; False when stopping."""
        with self._cond:
            if self._stopping:
                return False
            self._active += 1
            return True

    def end(self):
        with self._cond:
            self._active -= 1
            self._cond.notify_all()

    def handle_error(self, request, client_address):
        logger.debug("REST connection from %s failed", client_address, exc_info=True)

    def stop(self, grace=5.0):
        """Stops accepting, waits up to ``grace`` seconds for requests in flight, then closes the connections."""
        with self._cond:
            self._stopping = True
        self.shutdown()
        deadline = time.monotonic() + grace
        with self._cond:
            while self._active and time.monotonic() < deadline:
                self._cond.wait(max(0.0, deadline - time.monotonic()))
            connections = list(self._connections)
        for connection in connections:  # idle keep-alive connections: wake their threads up
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.server_close()


def build_rest_server(core, host="127.0.0.1", port=8501, max_request_bytes=16 << 20, ssl_context=None,
                      metrics_path=None):
    """A `RestServer` bound to ``host:port`` (not serving yet: run ``serve_forever`` in a thread).

    Raises:
        OSError: the address cannot be bound.
    """
    try:
        return RestServer((host, port), core, max_request_bytes, ssl_context, metrics_path)
    except OSError as exc:
        raise OSError(f"Cannot listen for REST on {host}:{port}: {exc.strerror or exc}") from exc
