"""What the serving tests share besides fixtures: constants, request builders and reference outputs."""

import http.client
import json
import os
import shutil

import grpc
import numpy as np
import tensorflow as tf
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from tensorflow_serving.apis import predict_pb2

LATENT = 8
MAX_IMAGES = 64
MAX_REQUEST_BYTES = 256 << 10
FUZZ = settings(max_examples=50, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
_SIGNATURES = st.sampled_from(["", "serving_default", "generate", "generate_uint8", "sample", "sample_uint8", "x"])


def _base(tmp_path, paths, *keys):
    """A fresh base path holding copies of the given exports."""
    base = tmp_path / "base"
    for key in keys:
        source = paths[key]
        target = base / os.path.basename(os.path.dirname(source)) / os.path.basename(source)
        shutil.copytree(source, target)
    return base


def _keras(model, z, labels=None):
    return np.asarray(model.generator(z if labels is None else [z, labels], training=False))


def _uint8(images):
    """NumPy reference of the uint8 mapping of [-1, 1] images."""
    return np.clip(np.round((images.astype("float64") + 1.0) / 2.0 * 255.0), 0, 255).astype("uint8")


def _z(batch, seed):
    return np.random.default_rng(seed).standard_normal((batch, LATENT)).astype("float32")


def _request(name, signature="", version=None, **inputs):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    if signature:
        request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = version
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    return request


def _code(call, *args):
    try:
        call(*args, timeout=30)
    except grpc.RpcError as exc:
        return exc.code().name, exc.details()
    return "OK", ""


def _http(url, method="GET", body=None, headers=None, raw=False):
    """``(status, parsed JSON or text)`` of one HTTP request."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        if body is not None and not isinstance(body, bytes):
            body = json.dumps(body).encode()
        connection.request(method, parts.path, body=body, headers=headers or {})
        response = connection.getresponse()
        data = response.read()
    finally:
        connection.close()
    if raw:
        return response.status, data.decode()
    return response.status, json.loads(data)



def serve_process(base, *flags, data_limit=None):
    """``keras-gen serve BASE --grpc-port 0 --rest-port 0 --poll-seconds 0 FLAGS`` as a process, once it listens:
    ``(process, {"gRPC": address, "REST": url})``. ``data_limit`` (bytes) caps the process's heap (RLIMIT_DATA),
    so a server that allocates what a request merely announces fails that request instead of the machine."""
    import resource
    import subprocess
    import sys
    import time

    script = shutil.which("keras-gen", path=os.path.dirname(sys.executable))
    command = [script] if script else [sys.executable, "-m", "keras_gen.cli"]

    def limit():
        if data_limit is not None:
            resource.setrlimit(resource.RLIMIT_DATA, (data_limit, data_limit))

    process = subprocess.Popen(
        command + ["serve", str(base), "--grpc-port", "0", "--rest-port", "0", "--poll-seconds", "0", *flags],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, preexec_fn=limit,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    lines, deadline = [], time.monotonic() + 180
    while time.monotonic() < deadline and not any(line.startswith("Stop with") for line in lines):
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line.strip())
    if not any(line.startswith("Stop with") for line in lines):
        process.kill()
        process.wait(30)
        raise RuntimeError(f"keras-gen serve did not start: {lines}")
    addresses = {line.split(":", 1)[0]: line.split()[1] for line in lines if line.startswith(("gRPC:", "REST:"))}
    return process, addresses


def proc_status_kib(pid, field):
    """A ``kB`` field of ``/proc/PID/status`` (``VmRSS``, ``VmHWM``, ...)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def read_compose(path):
    """A docker-compose file as nested dicts and lists, for the YAML it is written in: block mappings, block
    sequences, plain, single- and double-quoted scalars, ``|`` literal blocks, JSON-style flow sequences and
    comments. Anything else raises
    ValueError, which keeps the shipped file in that plain subset (PyYAML is not a dependency here)."""
    rows = []
    with open(path) as f:
        raw = f.read().splitlines()
    index = 0
    while index < len(raw):
        line = raw[index]
        index += 1
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if "\t" in line[: len(line) - len(line.lstrip())]:
            raise ValueError(f"{path}: tab in indentation: {line!r}")
        indent = len(line) - len(line.lstrip())
        text = _strip_comment(line.strip())
        if text.endswith("|") and (text == "- |" or text.endswith(": |")):
            block = []  # a literal block: the following lines indented deeper than this one, verbatim
            while index < len(raw) and (not raw[index].strip() or len(raw[index]) - len(raw[index].lstrip()) > indent):
                block.append(raw[index])
                index += 1
            while block and not block[-1].strip():
                block.pop()
            depth = min(len(b) - len(b.lstrip()) for b in block if b.strip())
            rows.append((indent, text[:-1].rstrip(), "\n".join(b[depth:] for b in block) + "\n"))
        else:
            rows.append((indent, text, None))

    def scalar(text):
        if text.startswith('"'):
            if not text.endswith('"') or len(text) < 2:
                raise ValueError(f"{path}: unterminated string {text!r}")
            return json.loads(text)
        if text.startswith("'"):
            if not text.endswith("'") or len(text) < 2:
                raise ValueError(f"{path}: unterminated string {text!r}")
            return text[1:-1].replace("''", "'")
        if text.startswith("["):  # a flow sequence, as far as it is JSON
            try:
                return json.loads(text)
            except ValueError:
                raise ValueError(f"{path}: a flow sequence that is not JSON: {text!r}") from None
        if text[:1] in "{&*!%@`":
            raise ValueError(f"{path}: flow mappings, anchors and tags are not in the subset: {text!r}")
        return text

    def node(position, indent):
        """The block (mapping or sequence) whose rows start at ``position`` with ``indent``."""
        is_list = rows[position][1].startswith("- ") or rows[position][1] in ("-", "- ")
        result = [] if is_list else {}
        while position < len(rows) and rows[position][0] == indent:
            _, text, literal = rows[position]
            position += 1
            if is_list:
                if not text.startswith("-"):
                    raise ValueError(f"{path}: a mapping entry inside a sequence: {text!r}")
                item = text[1:].strip()
                if literal is not None:
                    result.append(literal)
                elif item:
                    result.append(scalar(item))
                else:
                    value, position = node(position, rows[position][0])
                    result.append(value)
                continue
            key, sep, value = text.partition(":")
            if not sep or text.startswith("-") or (value and not value.startswith(" ")):
                raise ValueError(f"{path}: expected `key: value`, got {text!r}")
            key, value = key.strip(), value.strip()
            if key in result:
                raise ValueError(f"{path}: key {key!r} given twice")
            if literal is not None:
                result[key] = literal
            elif value:
                result[key] = scalar(value)
            elif position < len(rows) and rows[position][0] > indent:
                result[key], position = node(position, rows[position][0])
            else:
                result[key] = None
        if position < len(rows) and rows[position][0] > indent:
            raise ValueError(f"{path}: unexpected indentation at {rows[position][1]!r}")
        return result, position

    value, position = node(0, rows[0][0])
    if position != len(rows):
        raise ValueError(f"{path}: could not read past {rows[position][1]!r}")
    return value


def _strip_comment(text):
    """``value  # comment`` -> ``value`` (a ``#`` inside quotes is kept)."""
    quote = None
    for i, char in enumerate(text):
        if quote:
            if char == quote:
                quote = None
        elif char in "\"'":
            quote = char
        elif char == "#" and (i == 0 or text[i - 1] in " \t"):
            return text[:i].rstrip()
    return text
