"""Server-side batching: concurrent requests to one signature are run as one batch, as TF Serving's
``--enable_batching`` does with its ``BatchingParameters``.

Which requests batch, as in TF Serving (``docs/serving.md`` has the source lines): with batching on, every
signature of every model goes through its batcher (``WrapSessionForBatching`` wraps the whole session). A request
is one task of as many rows as its inputs' 0th dimension, which all inputs must share; so a signature whose
inputs include a scalar cannot run at all there: ``sample`` / ``sample_uint8`` (scalar ``n``, ``seed``) are
refused with INVALID_ARGUMENT ("Batching Run() input tensors must have at least one dimension"), and every output
must have the batch's rows along axis 0 (else FAILED_PRECONDITION). The ``z`` signatures (``generate``,
``generate_uint8``, ``serving_default``) batch. With per-model batching parameters
(``--enable_per_model_batching_parameters``, `read_model_batching`) only the versions whose folder holds a
``batching_params.pbtxt`` are batched, with that file's queue parameters; the others keep ``sample``. The server's
own parameters then give only the batch threads, which all batched models share.

How a batch forms (one per model version and signature at a time): the first request to arrive opens a batch;
the batch closes when it holds ``max_batch_size`` rows or ``batch_timeout_micros`` have passed since it opened,
whichever comes first, and one of the ``num_batch_threads`` run slots is free (while all slots are busy the
batch keeps filling). Inputs are concatenated along axis 0, the model runs once, and each request gets its own
rows back. A request larger than ``max_batch_size`` is refused with INVALID_ARGUMENT, as TF Serving refuses it,
unless ``enable_large_batch_splitting`` is on (TF Serving then splits it over several batches; here it runs
alone, with the same answer). With ``allowed_batch_sizes`` the batch is padded (repeating its first row) up to
the next allowed size. If a batch of several requests fails, each request is re-run alone, so one bad request
cannot fail the others. When more than ``max_enqueued_batches`` full batches are waiting, new requests are refused
with UNAVAILABLE.

The parameters file has TF Serving's format (``batching.config`` in this folder)::

    max_batch_size { value: 64 }
    batch_timeout_micros { value: 2000 }
    max_enqueued_batches { value: 100 }
    num_batch_threads { value: 2 }

A field the file leaves out takes this class's default, which is not TF Serving's for every field (TF Serving's:
``max_batch_size`` 1000, ``batch_timeout_micros`` 0, ``max_enqueued_batches`` 10, ``num_batch_threads`` the
number of cores): give every field to get the same behaviour from both servers.
"""

import dataclasses
import os
import threading
import time

import numpy as np

from keras_gen.serving.errors import RequestError, ServerUnavailableError, error_for

__all__ = ["BatchingParameters", "Batcher", "MODEL_BATCHING_FILE", "read_model_batching"]

MODEL_BATCHING_FILE = "batching_params.pbtxt"
"""The per-model batching parameters file TF Serving reads from a version folder
(``--enable_per_model_batching_parameters``)."""


@dataclasses.dataclass(frozen=True)
class BatchingParameters:
    """TF Serving's batching parameters (the fields of its ``BatchingParameters`` proto that apply here).

    Attributes:
        max_batch_size: the most images in one batch.
        batch_timeout_micros: how long an open batch waits for more requests, in microseconds.
        max_enqueued_batches: the most full batches waiting before requests are refused (UNAVAILABLE).
        num_batch_threads: batches run at the same time.
        allowed_batch_sizes: if given, batches are padded up to the next of these sizes (ascending; the last
            must equal ``max_batch_size``).
        enable_large_batch_splitting: take requests larger than ``max_batch_size`` (TF Serving splits them over
            several batches; here they run alone) instead of refusing them.
    """

    max_batch_size: int = 64
    batch_timeout_micros: int = 2000
    max_enqueued_batches: int = 100
    num_batch_threads: int = 1
    allowed_batch_sizes: tuple = ()
    enable_large_batch_splitting: bool = False

    _FIELDS = ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads",
               "allowed_batch_sizes", "enable_large_batch_splitting")
    _IGNORED = ("pad_variable_length_inputs", "thread_pool_name", "max_execution_batch_size")

    def __post_init__(self):
        for name, low in (("max_batch_size", 1), ("batch_timeout_micros", 0), ("max_enqueued_batches", 1),
                          ("num_batch_threads", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"Batching parameter `{name}` must be an integer >= {low}, got {value!r}.")
            object.__setattr__(self, name, int(value))
        sizes = tuple(int(s) for s in self.allowed_batch_sizes)
        if sizes and (list(sizes) != sorted(set(sizes)) or sizes[0] < 1 or sizes[-1] != self.max_batch_size):
            raise ValueError(
                f"`allowed_batch_sizes` must be increasing positive integers ending with max_batch_size "
                f"({self.max_batch_size}), got {list(self.allowed_batch_sizes)}."
            )
        object.__setattr__(self, "allowed_batch_sizes", sizes)
        if not isinstance(self.enable_large_batch_splitting, (bool, np.bool_)):
            raise ValueError(
                f"Batching parameter `enable_large_batch_splitting` must be true or false, got "
                f"{self.enable_large_batch_splitting!r}."
            )
        object.__setattr__(self, "enable_large_batch_splitting", bool(self.enable_large_batch_splitting))

    @property
    def batch_timeout(self):
        """``batch_timeout_micros`` in seconds."""
        return self.batch_timeout_micros / 1e6

    @classmethod
    def from_text(cls, text):
        """Parses TF Serving's batching parameters text format."""
        from keras_gen.serving.config import parse_text_proto

        fields = parse_text_proto(text)
        kwargs = {}
        for name, values in fields.items():
            if name in cls._IGNORED:
                continue
            if name not in cls._FIELDS:
                raise ValueError(f"Unknown batching parameter {name!r}. Valid: {', '.join(cls._FIELDS)}.")
            if name == "allowed_batch_sizes":
                kwargs[name] = tuple(_unwrap(v) for v in values)
            elif name == "enable_large_batch_splitting":
                kwargs[name] = _unwrap(values[-1], bool)
            else:
                kwargs[name] = _unwrap(values[-1])
        return cls(**kwargs)

    @classmethod
    def from_file(cls, path):
        """Reads a batching parameters file (``--batching_parameters_file``)."""
        with open(os.fspath(path)) as f:
            return cls.from_text(f.read())

    def to_text(self):
        """The parameters in TF Serving's text format."""
        lines = [
            f"max_batch_size {{ value: {self.max_batch_size} }}",
            f"batch_timeout_micros {{ value: {self.batch_timeout_micros} }}",
            f"max_enqueued_batches {{ value: {self.max_enqueued_batches} }}",
            f"num_batch_threads {{ value: {self.num_batch_threads} }}",
        ]
        lines += [f"allowed_batch_sizes: {s}" for s in self.allowed_batch_sizes]
        if self.enable_large_batch_splitting:
            lines.append("enable_large_batch_splitting { value: true }")
        return "\n".join(lines) + "\n"


def read_model_batching(version_path):
    """The per-model batching parameters of a version folder (its ``batching_params.pbtxt``, which TF Serving
    reads when a version loads under ``--enable_per_model_batching_parameters``), or None without that file.

    Raises:
        ValueError: the file does not parse (the version then fails to load, as in TF Serving).
    """
    path = os.path.join(os.fspath(version_path), MODEL_BATCHING_FILE)
    if not os.path.isfile(path):
        return None
    try:
        return BatchingParameters.from_file(path)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def _unwrap(value, kind=int):
    """``{"value": [128]}`` (a wrapper message) or ``128`` -> 128 (``kind``: int, or bool for a BoolValue)."""
    if isinstance(value, dict):
        if set(value) != {"value"}:
            raise ValueError(f"Expected `{{ value: N }}`, got {value!r}.")
        value = value["value"][-1]
    if kind is bool:
        if not isinstance(value, bool):
            raise ValueError(f"Expected true or false, got {value!r}.")
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"Batching parameters are integers, got {value!r}.")
    return value


class _Task:
    __slots__ = ("inputs", "size", "done", "outputs", "error")

    def __init__(self, inputs, size):
        self.inputs = inputs
        self.size = size
        self.done = threading.Event()
        self.outputs = None
        self.error = None


class _Batch:
    __slots__ = ("tasks", "size", "opened")

    def __init__(self):
        self.tasks = []
        self.size = 0
        self.opened = time.monotonic()


class Batcher:
    """Runs ``run(inputs) -> outputs`` on batches of concurrent requests (see the module docstring).

    No thread of its own: the request that opens a batch leads it. The leader waits until the batch is full or
    ``batch_timeout`` has passed, then until one of the ``num_batch_threads`` run slots is free (the batch keeps
    taking requests meanwhile: while the model is busy, the next batch fills), closes the batch and runs it in
    its own thread; the other requests of the batch wait for their rows. A request alone at low load therefore
    costs ``batch_timeout`` and no thread switch; under load batches fill while the previous one runs.

    Args:
        run: the model call: ``{name: array (B, ...)} -> {name: array (B, ...)}``.
        parameters: a `BatchingParameters`.
        name: for messages.
        slots: a ``threading.Semaphore`` of run slots shared with other batchers (TF Serving's batch threads serve
            every batched model); by default this batcher's own ``num_batch_threads``.
    """

    def __init__(self, run, parameters, name="batcher", slots=None):
        self._run = run
        self.parameters = parameters
        self.name = name
        self._cond = threading.Condition()
        self._slots = slots if slots is not None else threading.Semaphore(parameters.num_batch_threads)
        self._open = None  # the batch taking requests
        self._queued = 0  # images waiting in batches not yet running
        self._closed = False
        self.batches = 0
        self.tasks = 0
        self.largest = 0

    def stats(self):
        """``{"batches", "tasks", "largest"}``: batches run, requests served, the largest batch (images)."""
        with self._cond:
            return {"batches": self.batches, "tasks": self.tasks, "largest": self.largest}

    def batch_size(self, inputs):
        """The rows of one request: the 0th dimension its inputs share (TF Serving's ``ComputeTensorBatchSize``).

        Raises:
            RequestError: INVALID_ARGUMENT for no inputs, a scalar input, or inputs of different 0th dimensions.
        """
        if not inputs:
            raise RequestError("INVALID_ARGUMENT", "Batching Run() must have at least one input tensor")
        scalars = sorted(key for key, value in inputs.items() if np.ndim(value) == 0)
        if scalars:
            raise RequestError(
                "INVALID_ARGUMENT",
                f"Batching Run() input tensors must have at least one dimension: {self.name} takes the scalar "
                f"input(s) {', '.join(repr(k) for k in scalars)}. Batching (as TF Serving's) takes every signature "
                "of a batched model, and one with scalar inputs (such as `sample`'s n and seed) cannot run there: "
                "serve it from a model that is not batched (per-model batching: a batching_params.pbtxt only in "
                "the version folders to batch).",
            )
        sizes = {key: int(np.shape(value)[0]) for key, value in inputs.items()}
        if len(set(sizes.values())) > 1:
            described = ", ".join(f"{k}: {v}" for k, v in sorted(sizes.items()))
            raise RequestError(
                "INVALID_ARGUMENT", f"Batching Run() input tensors must have equal 0th-dimension size ({described})."
            )
        return next(iter(sizes.values()))

    def submit(self, inputs):
        """Runs one request (its rows: `batch_size`) in a batch and returns its outputs.

        Raises:
            RequestError: INVALID_ARGUMENT for inputs that cannot be batched (`batch_size`) or a request larger than
                ``max_batch_size`` without ``enable_large_batch_splitting``; FAILED_PRECONDITION for outputs
                without the batch's rows along axis 0.
            ServerUnavailableError: the batcher is closed, or more than ``max_enqueued_batches`` batches wait.
            Exception: whatever the model call raised for this request.
        """
        p = self.parameters
        size = self.batch_size(inputs)
        if size > p.max_batch_size:
            if not p.enable_large_batch_splitting:
                raise RequestError(
                    "INVALID_ARGUMENT",
                    f"Task size {size} is larger than maximum input batch size {p.max_batch_size} (batching "
                    f"parameters of {self.name}): send at most {p.max_batch_size} rows per request, or turn on "
                    "enable_large_batch_splitting.",
                )
            return self._run_alone(inputs, size)
        task = _Task(inputs, size)
        with self._cond:
            if self._closed:
                raise ServerUnavailableError("UNAVAILABLE", f"{self.name} is shutting down.")
            if self._queued + size > p.max_enqueued_batches * p.max_batch_size:
                raise ServerUnavailableError(
                    "UNAVAILABLE",
                    f"The batch queue of {self.name} is full ({p.max_enqueued_batches} batches of "
                    f"{p.max_batch_size}); retry later.",
                )
            batch = self._open
            leader = batch is None or (batch.tasks and batch.size + size > p.max_batch_size)
            if leader:
                batch = self._open = _Batch()
            batch.tasks.append(task)
            batch.size += size
            self._queued += size
            if batch.size >= p.max_batch_size:
                self._cond.notify_all()  # wake its leader
        if not leader:
            task.done.wait()
        else:
            self._lead(batch)
        if task.error is not None:
            raise task.error
        return task.outputs

    def _lead(self, batch):
        p = self.parameters
        with self._cond:
            deadline = batch.opened + p.batch_timeout
            while batch.size < p.max_batch_size and not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
        with self._slots:  # at most num_batch_threads batches run at once; this one fills while it waits
            with self._cond:
                if self._open is batch:
                    self._open = None
                self._queued -= batch.size
            self._execute(batch.tasks)

    def close(self):
        """Refuses new requests; batches already formed still run."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _run_alone(self, inputs, size):
        """A request larger than ``max_batch_size`` with large-batch splitting on: one call of its own."""
        with self._cond:
            if self._closed:
                raise ServerUnavailableError("UNAVAILABLE", f"{self.name} is shutting down.")
        with self._slots:
            outputs = _check_outputs(self._run(inputs), size)
        with self._cond:
            self.batches += 1
            self.tasks += 1
            self.largest = max(self.largest, size)
        return outputs

    def _execute(self, tasks):
        size = sum(t.size for t in tasks)
        try:
            if len(tasks) == 1:
                outputs = [_check_outputs(self._run(tasks[0].inputs), size)]
            else:
                outputs = self._run_batch(tasks, size)
        except Exception as exc:  # noqa: BLE001 - handed to the waiting request(s)
            if len(tasks) == 1:
                tasks[0].error = exc
            else:
                for task in tasks:  # re-run alone: one bad request must not fail the others
                    try:
                        task.outputs = _check_outputs(self._run(task.inputs), task.size)
                    except Exception as single:  # noqa: BLE001
                        task.error = single
            outputs = None
        if outputs is not None:
            for task, out in zip(tasks, outputs):
                task.outputs = out
        with self._cond:
            self.batches += 1
            self.tasks += len(tasks)
            self.largest = max(self.largest, size)
        for task in tasks:
            task.done.set()

    def _run_batch(self, tasks, size):
        names = list(tasks[0].inputs)
        batch = {name: np.concatenate([t.inputs[name] for t in tasks], axis=0) for name in names}  # (sum B_i, ...)
        padded = size
        for allowed in self.parameters.allowed_batch_sizes:
            if allowed >= size:
                padded = allowed
                break
        if padded > size:
            batch = {k: np.concatenate([v, np.repeat(v[:1], padded - size, axis=0)], axis=0) for k, v in batch.items()}
        out = _check_outputs(self._run(batch), padded)
        results, start = [], 0
        for task in tasks:
            results.append({k: v[start : start + task.size] for k, v in out.items()})
            start += task.size
        return results


def _check_outputs(outputs, rows):
    """Every output has the batch's ``rows`` along axis 0, so that each request can get its own rows back (TF
    Serving's ``SplitOutputTensors``: FAILED_PRECONDITION otherwise)."""
    for key, value in outputs.items():
        shape = np.shape(value)
        if not shape:
            raise error_for("FAILED_PRECONDITION", f"Batched output tensor has 0 dimensions (output {key!r}).")
        if shape[0] != rows:
            raise error_for(
                "FAILED_PRECONDITION",
                f"Batched output tensor's 0th dimension does not equal the sum of the 0th dimension sizes of the "
                f"input tensors (output {key!r}: {shape[0]} rows for a batch of {rows}).",
            )
    return outputs
