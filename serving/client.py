"""Clients that sample images from any TF-Serving-protocol endpoint: ``tensorflow_model_server`` (the
``tensorflow/serving`` image) or `keras_gen.serving.ModelServer`.

    from keras_gen.serving import SamplerClient, RestSamplerClient
    with SamplerClient("127.0.0.1:8500", model="dcgan", timeout=10, retries=2) as client:
        pixels = client.sample(64, seed=0)          # uint8 (64, 28, 28, 1), the `sample_uint8` signature
        pixels = client.generate(z)                 # uint8 images of given latents (`generate_uint8`)
        client.metadata()["signatures"]["generate"] # {"inputs": {"z": {"dtype": "float32", "shape": [None, 100]}}, ...}
        client.status()                             # [{"version": 1, "state": "AVAILABLE", ...}]
    client = RestSamplerClient("http://127.0.0.1:8501", model="dcgan")   # the same methods over REST

``sample(n, seed)`` asks the model's ``sample_uint8`` signature, which draws ``z`` in the graph exactly as
``model.generate(n, seed=seed)`` does. A conditional model needs ``labels`` (an int, or one per sample): the
serving protocol does not tell a client how many classes there are.

Errors: a refused request raises `RequestError` (a ``ValueError``: NOT_FOUND, INVALID_ARGUMENT,
FAILED_PRECONDITION, ...); a server that cannot be reached or answer in time raises `ServerUnavailableError` (a
``ConnectionError``) after ``retries`` more attempts. Only UNAVAILABLE (and, for REST, a dropped connection) is
retried: Predict is idempotent, the other errors would not change.

Retries over gRPC are gRPC's own: the channel's service config holds a ``retryPolicy`` for UNAVAILABLE
(``maxAttempts = retries + 1``, backoff from ``retry_backoff``, doubling), so an attempt refused by the server
(a draining replica, a full batch queue) or failed by the connection is made again inside gRPC, and ``timeout``
is the deadline of the whole call, retries included. gRPC caps a policy at 5 attempts (``retries <= 4``) and
retries no call whose answer had begun (response headers received); besides the policy it retries on its own,
without counting, calls that never reached the server's code (gRFC A6, "Transparent Retries").
``serving/README.md`` ("Retries") says what the policy covers. Over REST the client retries itself: each attempt
waits at most ``timeout`` seconds, ``retry_backoff * 2**attempt`` seconds apart.
"""

import dataclasses
import http.client
import json
import socket
import ssl
import threading
import time
from urllib.parse import quote, urlsplit

import numpy as np

from keras_gen.serving.errors import RequestError, ServerUnavailableError, ServingError, error_for

__all__ = ["SamplerClient", "RestSamplerClient", "Prediction"]

_RETRY = ("UNAVAILABLE",)
_GRPC_MAX_RETRIES = 4  # gRPC clamps a retry policy's maxAttempts at 5 (gRFC A6, "Limits on Retries and Hedges")
_GRPC_MIN_BACKOFF = 0.01  # seconds: gRPC refuses a zero backoff, and grpcio 1.85 stalls a call until its deadline
#                           at 1 ms (serving/README.md, "Retries")


@dataclasses.dataclass
class Prediction:
    """A Predict answer: ``outputs`` (``{name: NumPy array}``), and the ``name``, ``version`` (None over REST,
    whose answer does not say) and ``signature`` that answered. ``prediction["images"]`` reads an output."""

    outputs: dict
    name: str
    version: object
    signature: str

    def __getitem__(self, key):
        return self.outputs[key]


def _check_common(model, version, version_label, timeout, retries, retry_backoff):
    if not isinstance(model, str) or not model:
        raise ValueError(f"`model` must be a model name, got {model!r}.")
    if version is not None and (isinstance(version, bool) or not isinstance(version, (int, np.integer)) or version < 1):
        raise ValueError(f"`version` must be a positive integer or None (the newest), got {version!r}.")
    if version is not None and version_label is not None:
        raise ValueError("Give `version` or `version_label`, not both.")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise ValueError(f"`timeout` must be a positive number of seconds, got {timeout!r}.")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValueError(f"`retries` must be a non-negative integer, got {retries!r}.")
    if isinstance(retry_backoff, bool) or not isinstance(retry_backoff, (int, float)) or retry_backoff < 0:
        raise ValueError(f"`retry_backoff` must be a non-negative number of seconds, got {retry_backoff!r}.")


def _count(n):
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"The number of samples must be a positive integer, got {n!r}.")
    return int(n)


class _Client:
    """What both clients share: sampling on top of `predict` and `metadata`."""

    def __init__(self, model, version, version_label, timeout, retries, retry_backoff):
        _check_common(model, version, version_label, timeout, retries, retry_backoff)
        self.model = model
        self.version = None if version is None else int(version)
        self.version_label = version_label
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.retry_backoff = float(retry_backoff)
        self._signatures = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------------------- transport (subclasses)
    def predict(self, signature, inputs, output_filter=None):
        """Calls one signature. ``inputs``: ``{name: array}``. Returns a `Prediction`."""
        raise NotImplementedError

    def metadata(self):
        """``{"name", "version", "signatures": {name: {"inputs": {input: {"dtype", "shape"}}, "outputs": ...}}}``
        (shapes with None for any size), from GetModelMetadata."""
        raise NotImplementedError

    def status(self):
        """``[{"version", "state", "error_code", "error_message"}]`` of the model's versions (GetModelStatus)."""
        raise NotImplementedError

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------------------- sampling
    def signatures(self, refresh=False):
        """The model's signatures (from `metadata`, fetched once and kept; ``refresh=True`` fetches again)."""
        with self._lock:
            cached = self._signatures
        if cached is None or refresh:
            cached = self.metadata()["signatures"]
            with self._lock:
                self._signatures = cached
        return cached

    def _signature(self, *names):
        signatures = self.signatures()
        for name in names:
            if name in signatures:
                return name, signatures[name]
        raise RequestError(
            "FAILED_PRECONDITION",
            f"Model {self.model!r} has no {' or '.join(repr(n) for n in names)} signature (it has "
            f"{', '.join(sorted(signatures))}): is it a keras-gen export?",
        )

    @staticmethod
    def _labels(signature, labels, n):
        if "label" not in signature["inputs"]:
            if labels is not None:
                raise ValueError("This model is unconditional: `labels` must be None.")
            return None
        if labels is None:
            raise ValueError(
                "This model is conditional: pass `labels` (one class for all samples, or one per sample)."
            )
        labels = np.asarray(labels)
        if labels.ndim == 0:
            labels = np.full((n,), labels)
        if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"Expected one integer label per sample ({n}), got {labels.shape} of {labels.dtype}.")
        return labels.astype("int32")

    @staticmethod
    def _image_output(signature):
        names = [k for k in signature["outputs"] if k != "z"]
        return "images" if "images" in names else names[0]

    def sample(self, n, seed=None, labels=None, uint8=True, return_z=False):
        """``n`` samples from the prior (the ``sample_uint8`` / ``sample`` signature).

        Args:
            n: how many.
            seed: an int makes the draw deterministic (equal to ``model.generate(n, labels, seed)``); None draws a
                random seed here.
            labels: for a conditional model: an int or ``n`` ints.
            uint8: uint8 pixels (default) instead of floats in the model's value range.
            return_z: also return the latents ``(n, latent_dim)``.

        Returns:
            NumPy images ``(n, H, W, C)`` (uint8 by default), or ``(images, z)``.
        """
        n = _count(n)
        if seed is None:
            seed = int(np.random.default_rng().integers(0, 2**62))
        elif isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise ValueError(f"`seed` must be an int or None, got {seed!r}.")
        name, signature = self._signature(*(("sample_uint8", "sample") if uint8 else ("sample",)))
        inputs = {"n": np.array(n, "int32"), "seed": np.array(int(seed), "int64")}
        labels = self._labels(signature, labels, n)
        if labels is not None:
            inputs["label"] = labels
        outputs = self.predict(name, inputs).outputs
        images = outputs[self._image_output(signature)]
        if uint8 and images.dtype != np.uint8:
            raise ValueError(
                f"Model {self.model!r} has no uint8 signature (its samples are not images): use uint8=False."
            )
        return (images, outputs["z"]) if return_z else images

    def generate(self, z, labels=None, uint8=True):
        """Samples from given latents (the ``generate_uint8`` / ``generate`` signature).

        Args:
            z: ``(n, latent_dim)`` floats.
            labels: for a conditional model: an int or ``n`` ints.
            uint8: uint8 pixels (default) instead of floats.

        Returns:
            NumPy images ``(n, H, W, C)``.
        """
        name, signature = self._signature(*(("generate_uint8", "generate") if uint8 else ("generate",)))
        z = np.asarray(z, dtype="float32")
        shape = signature["inputs"]["z"]["shape"]
        if z.ndim != len(shape) or any(d is not None and d != s for d, s in zip(shape[1:], z.shape[1:])) or not len(z):
            expected = ", ".join("n" if d is None else str(d) for d in shape)
            raise ValueError(f"`z` must have shape ({expected}), got {z.shape}.")
        inputs = {"z": z}
        labels = self._labels(signature, labels, len(z))
        if labels is not None:
            inputs["label"] = labels
        images = self.predict(name, inputs).outputs[self._image_output(signature)]
        if uint8 and images.dtype != np.uint8:
            raise ValueError(
                f"Model {self.model!r} has no uint8 signature (its samples are not images): use uint8=False."
            )
        return images


# ---------------------------------------------------------------------------------------------------- gRPC
class SamplerClient(_Client):
    """Samples over gRPC with TF Serving's ``PredictionService`` and ``ModelService`` stubs.

    Args:
        target: ``"host:port"`` of the gRPC endpoint.
        model: the model name.
        version: a version number (default: the newest the server has).
        version_label: a version label (``"stable"``) instead of a number.
        timeout: seconds the whole call may take, retries included (the gRPC deadline).
        retries: extra attempts after an UNAVAILABLE answer, 0 to 4 (gRPC's limit), fixed when the client is made.
        retry_backoff: about how many seconds before the first retry, doubling after each (gRPC draws each wait
            at random; at least 0.01).
        tls: use TLS (``root_certificates`` to trust a private CA or a self-signed certificate).
        root_certificates: PEM bytes, or the path of a PEM file.
        tls_server_name: the name to check the server certificate against, when it differs from the host.
        max_message_bytes: the largest answer accepted.
    """

    def __init__(self, target="127.0.0.1:8500", model=None, *, version=None, version_label=None, timeout=30.0,
                 retries=2, retry_backoff=0.1, tls=False, root_certificates=None, tls_server_name=None,
                 max_message_bytes=256 << 20):
        super().__init__(model, version, version_label, timeout, retries, retry_backoff)
        import grpc
        from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

        if not isinstance(target, str) or ":" not in target:
            raise ValueError(f"`target` must be 'host:port', got {target!r}.")
        if self.retries > _GRPC_MAX_RETRIES:
            raise ValueError(
                f"`retries` must be at most {_GRPC_MAX_RETRIES} over gRPC (gRPC makes at most "
                f"{_GRPC_MAX_RETRIES + 1} attempts of a call), got {retries!r}."
            )
        self.target = target
        options = [("grpc.max_receive_message_length", int(max_message_bytes)),
                   ("grpc.max_send_message_length", int(max_message_bytes)),
                   ("grpc.enable_retries", 1),
                   ("grpc.service_config_disable_resolution", 1)]  # the policy below, not one from DNS
        if self.retries:
            options += [("grpc.service_config", _retry_service_config(self.retries, self.retry_backoff)),
                        # gRPC retries only what it kept a copy of (256 KiB a call by default): keep any request
                        ("grpc.per_rpc_retry_buffer_size", int(max_message_bytes))]
        if tls or root_certificates is not None:
            if isinstance(root_certificates, str) and not root_certificates.lstrip().startswith("-----BEGIN"):
                with open(root_certificates, "rb") as f:
                    root_certificates = f.read()
            elif isinstance(root_certificates, str):
                root_certificates = root_certificates.encode()
            if tls_server_name:
                options.append(("grpc.ssl_target_name_override", tls_server_name))
            credentials = grpc.ssl_channel_credentials(root_certificates=root_certificates)
            self._channel = grpc.secure_channel(target, credentials, options=options)
        else:
            self._channel = grpc.insecure_channel(target, options=options)
        self._prediction = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._models = model_service_pb2_grpc.ModelServiceStub(self._channel)

    def __repr__(self):
        return f"SamplerClient({self.target!r}, model={self.model!r}, version={self.version})"

    def close(self):
        self._channel.close()

    def _spec(self, spec, signature=None):
        spec.name = self.model
        if self.version is not None:
            spec.version.value = self.version
        elif self.version_label:
            spec.version_label = self.version_label
        if signature:
            spec.signature_name = signature

    def _call(self, method, request):
        import grpc

        try:
            return method(request, timeout=self.timeout)  # retried inside gRPC (the channel's retry policy)
        except grpc.RpcError as exc:
            code = exc.code().name if exc.code() is not None else "UNKNOWN"
            details = exc.details() or code
            if code in ("UNAVAILABLE", "DEADLINE_EXCEEDED"):
                details = f"{self.target}: {details}"
            raise error_for(code, details) from None

    def predict(self, signature, inputs, output_filter=None):
        from tensorflow_serving.apis import predict_pb2

        from keras_gen.serving.tensors import from_tensor_proto, to_tensor_proto

        request = predict_pb2.PredictRequest()
        self._spec(request.model_spec, signature)
        for key, value in inputs.items():
            to_tensor_proto(value, out=request.inputs[key])
        if output_filter:
            request.output_filter.extend(output_filter)
        response = self._call(self._prediction.Predict, request)
        outputs = {key: from_tensor_proto(value, key) for key, value in response.outputs.items()}
        spec = response.model_spec
        return Prediction(outputs, spec.name or self.model,
                          spec.version.value if spec.HasField("version") else None, spec.signature_name or signature)

    def metadata(self):
        from tensorflow_serving.apis import get_model_metadata_pb2

        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        self._spec(request.model_spec)
        response = self._call(self._prediction.GetModelMetadata, request)
        signature_defs = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signature_defs)
        return {
            "name": response.model_spec.name,
            "version": response.model_spec.version.value if response.model_spec.HasField("version") else None,
            "signatures": _signatures_from_proto(signature_defs),
        }

    def status(self):
        from tensorflow_serving.apis import get_model_status_pb2

        from keras_gen.serving.errors import CODES

        request = get_model_status_pb2.GetModelStatusRequest()
        self._spec(request.model_spec)
        response = self._call(self._models.GetModelStatus, request)
        return [
            {"version": s.version, "state": get_model_status_pb2.ModelVersionStatus.State.Name(s.state),
             "error_code": CODES[s.status.error_code] if 0 <= s.status.error_code < len(CODES) else "UNKNOWN",
             "error_message": s.status.error_message}
            for s in response.model_version_status
        ]


def _retry_service_config(retries, backoff):
    """gRPC's service config (JSON) retrying UNAVAILABLE ``retries`` times on TF Serving's two services, the waits
    starting at ``backoff`` seconds and doubling (gRFC A6's ``retryPolicy``)."""
    backoff = max(backoff, _GRPC_MIN_BACKOFF)
    policy = {
        "maxAttempts": retries + 1,
        "initialBackoff": f"{backoff:.3f}s",
        "maxBackoff": f"{backoff * 2 ** (retries - 1):.3f}s",
        "backoffMultiplier": 2,
        "retryableStatusCodes": list(_RETRY),
    }
    services = [{"service": "tensorflow.serving.PredictionService"}, {"service": "tensorflow.serving.ModelService"}]
    return json.dumps({"methodConfig": [{"name": services, "retryPolicy": policy}]})


def _signatures_from_proto(signature_defs):
    from keras_gen.serving.tensors import _TYPES

    def describe(info):
        dtype = _TYPES[info.dtype][0].name if info.dtype in _TYPES else f"DT_{info.dtype}"
        shape = None if info.tensor_shape.unknown_rank else [
            None if d.size < 0 else int(d.size) for d in info.tensor_shape.dim]
        return {"dtype": dtype, "shape": shape}

    return {
        key: {"inputs": {k: describe(v) for k, v in sorted(sig.inputs.items())},
              "outputs": {k: describe(v) for k, v in sorted(sig.outputs.items())}}
        for key, sig in sorted(signature_defs.signature_def.items())
        if not key.startswith("__")
    }


# ---------------------------------------------------------------------------------------------------- REST
_HTTP_CODES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
               409: "ABORTED", 411: "INVALID_ARGUMENT", 413: "RESOURCE_EXHAUSTED", 429: "RESOURCE_EXHAUSTED",
               499: "CANCELLED", 500: "INTERNAL", 501: "UNIMPLEMENTED", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
_DTYPES = {"DT_FLOAT": "float32", "DT_DOUBLE": "float64", "DT_INT32": "int32", "DT_UINT8": "uint8",
           "DT_INT16": "int16", "DT_INT8": "int8", "DT_INT64": "int64", "DT_BOOL": "bool", "DT_HALF": "float16",
           "DT_UINT16": "uint16", "DT_UINT32": "uint32", "DT_UINT64": "uint64"}


class RestSamplerClient(_Client):
    """Samples over TF Serving's REST API (same methods as `SamplerClient`).

    Args:
        url: ``"http://host:port"``, ``"https://host:port"`` or ``"host:port"``.
        model, version, version_label: as in `SamplerClient`.
        timeout: seconds each attempt may take.
        retries: extra attempts after an UNAVAILABLE answer (HTTP 503) or a dropped connection (0: none).
        retry_backoff: seconds before the first retry (doubling after each).
        ca_file: a PEM file of the certificate(s) to trust for HTTPS (a self-signed server certificate).

    Connections are kept alive, one per thread.
    """

    def __init__(self, url="http://127.0.0.1:8501", model=None, *, version=None, version_label=None, timeout=30.0,
                 retries=2, retry_backoff=0.1, ca_file=None):
        super().__init__(model, version, version_label, timeout, retries, retry_backoff)
        if not isinstance(url, str) or not url:
            raise ValueError(f"`url` must be 'http://host:port', got {url!r}.")
        if "://" not in url:
            url = f"{'https' if ca_file else 'http'}://{url}"
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"`url` must be 'http(s)://host:port', got {url!r}.")
        self.url = f"{parts.scheme}://{parts.netloc}"
        self._host, self._port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
        self._context = ssl.create_default_context(cafile=ca_file) if parts.scheme == "https" else None
        self._local = threading.local()
        self._connections = []
        prefix = f"/v1/models/{quote(self.model, safe='')}"
        if self.version is not None:
            prefix += f"/versions/{self.version}"
        elif self.version_label:
            prefix += f"/labels/{quote(self.version_label, safe='')}"
        self._prefix = prefix

    def __repr__(self):
        return f"RestSamplerClient({self.url!r}, model={self.model!r}, version={self.version})"

    def _connection(self):
        connection = getattr(self._local, "connection", None)
        if connection is None:
            if self._context is not None:
                connection = http.client.HTTPSConnection(self._host, self._port, timeout=self.timeout,
                                                         context=self._context)
            else:
                connection = http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection

    def _drop_connection(self):
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    def close(self):
        with self._lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            connection.close()

    def _request(self, method, path, payload=None):
        body = None if payload is None else json.dumps(payload, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json"} if body is not None else {}

        def once():
            connection = self._connection()
            try:
                connection.request(method, path, body=body, headers=headers)
                response = connection.getresponse()
                data = response.read()
            except (socket.timeout, TimeoutError) as exc:
                self._drop_connection()
                raise ServerUnavailableError(
                    "DEADLINE_EXCEEDED", f"{self.url}{path}: no answer in {self.timeout} s"
                ) from exc
            except (ConnectionError, http.client.HTTPException, OSError) as exc:
                self._drop_connection()
                raise ServerUnavailableError("UNAVAILABLE", f"{self.url}: {type(exc).__name__}: {exc}") from exc
            if response.getheader("Connection", "").lower() == "close":
                self._drop_connection()
            try:
                answer = json.loads(data) if data else {}
            except ValueError:
                answer = {"error": data[:200].decode(errors="replace")}
            if response.status != 200:
                message = answer.get("error", "") if isinstance(answer, dict) else str(answer)
                raise error_for(_HTTP_CODES.get(response.status, "UNKNOWN"), f"HTTP {response.status}: {message}")
            return answer

        attempt = 0
        while True:
            try:
                return once()
            except ServingError as exc:
                if exc.code not in _RETRY or attempt >= self.retries:
                    raise
            time.sleep(self.retry_backoff * (2**attempt))
            attempt += 1

    def predict(self, signature, inputs, output_filter=None):
        signatures = self.signatures()
        if signature not in signatures:
            signatures = self.signatures(refresh=True)
        payload = {"signature_name": signature,
                   "inputs": {key: np.asarray(value).tolist() for key, value in inputs.items()}}
        answer = self._request("POST", f"{self._prefix}:predict", payload)
        outputs = answer.get("outputs")
        info = signatures.get(signature, {"outputs": {}})["outputs"]
        names = list(output_filter or info)
        if not isinstance(outputs, dict) or (len(names) == 1 and set(outputs) != set(names)):
            outputs = {names[0] if names else "output": outputs}
        result = {}
        for key, value in outputs.items():
            dtype = info.get(key, {}).get("dtype")
            result[key] = np.asarray(value, dtype=dtype)
        if output_filter:
            result = {k: result[k] for k in output_filter}
        return Prediction(result, self.model, None, signature)

    def metadata(self):
        answer = self._request("GET", f"{self._prefix}/metadata")
        spec = answer.get("model_spec", {})
        defs = answer.get("metadata", {}).get("signature_def", {}).get("signature_def", {})

        def describe(info):
            shape = info.get("tensor_shape", {})
            dims = None if shape.get("unknown_rank") else [
                None if int(d.get("size", -1)) < 0 else int(d["size"]) for d in shape.get("dim", [])]
            return {"dtype": _DTYPES.get(info.get("dtype"), info.get("dtype")), "shape": dims}

        signatures = {
            key: {"inputs": {k: describe(v) for k, v in sorted(sig.get("inputs", {}).items())},
                  "outputs": {k: describe(v) for k, v in sorted(sig.get("outputs", {}).items())}}
            for key, sig in sorted(defs.items())
            if not key.startswith("__")
        }
        version = spec.get("version")
        return {"name": spec.get("name", self.model), "version": int(version) if version else None,
                "signatures": signatures}

    def status(self):
        answer = self._request("GET", self._prefix)
        return [
            {"version": int(s["version"]), "state": s["state"],
             "error_code": s.get("status", {}).get("error_code", "OK"),
             "error_message": s.get("status", {}).get("error_message", "")}
            for s in answer.get("model_version_status", [])
        ]
