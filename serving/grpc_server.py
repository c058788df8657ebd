"""The gRPC front end: TF Serving's ``PredictionService`` and ``ModelService`` with the stubs of
``tensorflow-serving-api``.

- ``PredictionService.Predict``: `PredictionCore.predict` (inputs and outputs as ``TensorProto``; the inputs are
  decoded by `PredictionCore.decode_protos` once the signature is known, each header checked against it first;
  outputs are written with ``tensor_content``, as TF Serving's ``kAsProtoContent``);
- ``PredictionService.GetModelMetadata``: ``metadata["signature_def"]`` packs the version's ``SignatureDefMap``
  (the only metadata field TF Serving knows);
- ``PredictionService.Classify`` / ``Regress`` / ``MultiInference``: UNIMPLEMENTED (generators have no
  classification or regression signatures);
- ``ModelService.GetModelStatus``: the state of every version (or one); ``HandleReloadConfigRequest``:
  UNIMPLEMENTED (the server polls its base path instead).

Requests larger than the server's ``max_request_bytes`` are refused by gRPC itself with RESOURCE_EXHAUSTED.
"""

import functools
import time
from concurrent import futures

from keras_gen.serving.errors import ServingError, from_exception

__all__ = ["build_grpc_server"]


def _spec(model_spec):
    version = model_spec.version.value if model_spec.HasField("version") else None
    return model_spec.name, version, model_spec.version_label or None


def _abort(context, error):
    import grpc

    context.abort(getattr(grpc.StatusCode, error.code), error.message)


@functools.lru_cache(maxsize=None)
def _servicers():
    """The servicer classes (built on first use: importing the stubs imports TensorFlow)."""
    from tensorflow_serving.apis import (
        get_model_metadata_pb2,
        get_model_status_pb2,
        model_service_pb2_grpc,
        predict_pb2,
        prediction_service_pb2_grpc,
    )

    from keras_gen.serving.errors import RequestError
    from keras_gen.serving.tensors import to_tensor_proto

    class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
        """``PredictionService`` over a `PredictionCore`."""

        def __init__(self, core, max_elements):
            self.core = core
            self.max_elements = max_elements

        def Predict(self, request, context):  # noqa: N802 - gRPC method name
            started = time.perf_counter()
            name, version, label = _spec(request.model_spec)
            signature = request.model_spec.signature_name
            code, images = "OK", None
            try:
                if not request.HasField("model_spec"):
                    raise RequestError("INVALID_ARGUMENT", "Missing ModelSpec")
                # Decoded once the signature is known, each proto's header checked against it first.
                inputs = functools.partial(self.core.decode_protos, protos=request.inputs,
                                           max_elements=self.max_elements)
                result = self.core.predict(name, version, label, signature, inputs, list(request.output_filter))
                response = predict_pb2.PredictResponse()
                response.model_spec.name = result.name
                response.model_spec.version.value = result.version
                response.model_spec.signature_name = result.signature
                for key, value in result.outputs.items():
                    to_tensor_proto(value, out=response.outputs[key])
                first = next(iter(result.outputs.values()), None)
                images = first.shape[0] if first is not None and first.ndim else None
                return response
            except Exception as exc:  # noqa: BLE001 - every failure becomes a status code
                error = exc if isinstance(exc, ServingError) else from_exception(exc)
                code = error.code
                _abort(context, error)
            finally:
                self.core.record("gRPC", "Predict", name, version, signature, code, started, images)

        def GetModelMetadata(self, request, context):  # noqa: N802
            started = time.perf_counter()
            name, version, label = _spec(request.model_spec)
            code = "OK"
            try:
                if not request.HasField("model_spec"):
                    raise RequestError("INVALID_ARGUMENT", "Missing ModelSpec")
                if not request.metadata_field:
                    raise RequestError(
                        "INVALID_ARGUMENT", "GetModelMetadataRequest must specify at least one metadata_field"
                    )
                for field in request.metadata_field:
                    if field != "signature_def":
                        raise RequestError("INVALID_ARGUMENT", f"Metadata field {field} is not supported")
                served, signature_defs = self.core.metadata(name, version, label)
                response = get_model_metadata_pb2.GetModelMetadataResponse()
                response.model_spec.name = name
                response.model_spec.version.value = served
                response.metadata["signature_def"].Pack(signature_defs)
                return response
            except Exception as exc:  # noqa: BLE001
                error = exc if isinstance(exc, ServingError) else from_exception(exc)
                code = error.code
                _abort(context, error)
            finally:
                self.core.record("gRPC", "GetModelMetadata", name, version, None, code, started)

        def _unimplemented(self, method, context):
            self.core.record("gRPC", method, None, None, None, "UNIMPLEMENTED", time.perf_counter())
            _abort(context, RequestError(
                "UNIMPLEMENTED",
                f"{method} is not implemented: keras-gen models are generators without classification or "
                "regression signatures; use Predict.",
            ))

        def Classify(self, request, context):  # noqa: N802
            self._unimplemented("Classify", context)

        def Regress(self, request, context):  # noqa: N802
            self._unimplemented("Regress", context)

        def MultiInference(self, request, context):  # noqa: N802
            self._unimplemented("MultiInference", context)

    class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
        """``ModelService`` over a `PredictionCore`."""

        def __init__(self, core):
            self.core = core

        def GetModelStatus(self, request, context):  # noqa: N802
            started = time.perf_counter()
            name, version, label = _spec(request.model_spec)
            code = "OK"
            try:
                if not request.HasField("model_spec"):
                    raise RequestError("INVALID_ARGUMENT", "Missing ModelSpec")
                response = get_model_status_pb2.GetModelStatusResponse()
                for status in self.core.status(name, version, label):
                    entry = response.model_version_status.add()
                    entry.version = status["version"]
                    entry.state = get_model_status_pb2.ModelVersionStatus.State.Value(status["state"])
                    entry.status.error_code = _code_number(status["error_code"])
                    entry.status.error_message = status["error_message"]
                return response
            except Exception as exc:  # noqa: BLE001
                error = exc if isinstance(exc, ServingError) else from_exception(exc)
                code = error.code
                _abort(context, error)
            finally:
                self.core.record("gRPC", "GetModelStatus", name, version, None, code, started)

        def HandleReloadConfigRequest(self, request, context):  # noqa: N802
            _abort(context, RequestError(
                "UNIMPLEMENTED",
                "HandleReloadConfigRequest is not implemented: this server polls its base path for new versions.",
            ))

    return PredictionServicer, ModelServicer, prediction_service_pb2_grpc, model_service_pb2_grpc


def _code_number(name):
    from keras_gen.serving.errors import CODES

    return CODES.index(name)


def build_grpc_server(core, host="127.0.0.1", port=8500, max_workers=32, max_request_bytes=16 << 20,
                      credentials=None, max_elements=None):
    """A ``grpc.Server`` (not started yet) with both services on ``host:port``.

    Args:
        core: the `PredictionCore`.
        host, port: the address (port 0 picks a free port).
        max_workers: threads answering RPCs (concurrent requests beyond it queue in gRPC).
        max_request_bytes: the largest request message (larger ones: RESOURCE_EXHAUSTED).
        credentials: ``grpc.ssl_server_credentials(...)`` for TLS, or None.
        max_elements: the most elements one input tensor may have.

    Returns:
        ``(server, bound port)``.

    Raises:
        OSError: the address cannot be bound (in use, or not an address of this machine).
    """
    import grpc

    from keras_gen.serving.tensors import MAX_ELEMENTS

    prediction_cls, model_cls, prediction_grpc, model_grpc = _servicers()
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="grpc-worker"),
        options=[
            ("grpc.max_receive_message_length", int(max_request_bytes)),
            ("grpc.max_send_message_length", -1),
            ("grpc.so_reuseport", 0),  # a second server on the same port must fail, not share it
        ],
    )
    prediction_grpc.add_PredictionServiceServicer_to_server(
        prediction_cls(core, max_elements or MAX_ELEMENTS), server
    )
    model_grpc.add_ModelServiceServicer_to_server(model_cls(core), server)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        bound = server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
    except RuntimeError as exc:
        raise OSError(f"Cannot listen for gRPC on {address}: {exc}") from exc
    if not bound:
        raise OSError(f"Cannot listen for gRPC on {address} (in use, or not an address of this machine).")
    return server, bound
