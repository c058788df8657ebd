"""Status codes as TF Serving uses them, and the errors the server raises and the clients re-raise.

The codes are gRPC's (``tensorflow/core/protobuf/error_codes.proto`` has the same numbers); the HTTP status of
each is the one TF Serving's REST server answers with (``model_servers/http_server.cc``, ``ToHTTPStatusCode``):

=======================  ====  =========================================================================
code                     HTTP  used here for
=======================  ====  =========================================================================
``INVALID_ARGUMENT``     400   a bad input name, dtype, shape or value; too many images; malformed JSON
``FAILED_PRECONDITION``  400   an unknown signature name
``NOT_FOUND``            404   an unknown model or version
``RESOURCE_EXHAUSTED``   429   (gRPC) a request larger than the server's message limit
``UNIMPLEMENTED``        501   Classify, Regress, MultiInference
``UNAVAILABLE``          503   the server is shutting down; the batch queue is full
``INTERNAL``             500   anything else (a bug: the message says what failed)
=======================  ====  =========================================================================

A REST body over the size limit is answered with HTTP 413 (an HTTP-level refusal TF Serving does not have).
"""

__all__ = [
    "CODES",
    "HTTP_STATUS",
    "ServingError",
    "RequestError",
    "ServerUnavailableError",
    "error_for",
    "from_exception",
]

CODES = (
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
)
"""Status code names, indexed by their number."""

HTTP_STATUS = {
    "OK": 200,
    "CANCELLED": 499,
    "UNKNOWN": 500,
    "INVALID_ARGUMENT": 400,
    "DEADLINE_EXCEEDED": 504,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "PERMISSION_DENIED": 403,
    "RESOURCE_EXHAUSTED": 429,
    "FAILED_PRECONDITION": 400,
    "ABORTED": 409,
    "OUT_OF_RANGE": 400,
    "UNIMPLEMENTED": 501,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DATA_LOSS": 500,
    "UNAUTHENTICATED": 401,
}
"""TF Serving's HTTP status for each code."""

_UNAVAILABLE = {"UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED", "ABORTED"}
_SERVER = {"INTERNAL", "UNKNOWN", "DATA_LOSS"}


class ServingError(Exception):
    """A request answered with a status other than OK.

    Attributes:
        code: the status code name (``"NOT_FOUND"``, ``"INVALID_ARGUMENT"``, ...).
        message: the server's message.
        http_status: the HTTP status TF Serving's REST API uses for ``code``.
    """

    def __init__(self, code, message):
        if code not in HTTP_STATUS:
            raise ValueError(f"Unknown status code {code!r}. Valid: {', '.join(CODES)}.")
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    @property
    def http_status(self):
        return HTTP_STATUS[self.code]


class RequestError(ServingError, ValueError):
    """The server refused the request as sent (bad input, unknown model, version or signature, ...)."""


class ServerUnavailableError(ServingError, ConnectionError):
    """The server could not be reached or could not answer in time (UNAVAILABLE, DEADLINE_EXCEEDED, ...)."""


def error_for(code, message):
    """The `ServingError` subclass instance for ``code``: `ServerUnavailableError` for UNAVAILABLE,
    DEADLINE_EXCEEDED, CANCELLED and ABORTED, a plain `ServingError` for INTERNAL, UNKNOWN and DATA_LOSS (a server
    fault), `RequestError` for the rest."""
    if code in _UNAVAILABLE:
        return ServerUnavailableError(code, message)
    if code in _SERVER:
        return ServingError(code, message)
    return RequestError(code, message)


def from_exception(exc):
    """The `ServingError` for an exception raised while running a model: TensorFlow's ``OpError`` keeps its code
    (an in-graph check that fails is INVALID_ARGUMENT), ONNX Runtime's ``InvalidArgument`` becomes
    INVALID_ARGUMENT, anything else INTERNAL."""
    if isinstance(exc, ServingError):
        return exc
    error_code = getattr(exc, "error_code", None)  # tf.errors.OpError
    if isinstance(error_code, int) and 0 < error_code < len(CODES):
        message = getattr(exc, "message", None) or str(exc)
        return error_for(CODES[error_code], _first_lines(message))
    kind = type(exc).__name__
    if kind in ("InvalidArgument", "InvalidArgumentError"):
        return error_for("INVALID_ARGUMENT", _first_lines(str(exc)))
    return error_for("INTERNAL", f"{kind}: {_first_lines(str(exc))}")


def _first_lines(text, lines=3):
    parts = [line for line in str(text).strip().splitlines() if line.strip()]
    return "\n".join(parts[:lines])
