"""Server-side batching: concurrent requests to one signature are run as one batch, as TF Serving's
``--enable_batching`` does with its ``BatchingParameters``.

Only signatures whose inputs all have a leading batch axis are batched (``generate``, ``generate_uint8``,
``serving_default``: ``z`` [+ ``label``]); ``sample`` takes scalars (``n``, ``seed``) and runs on its own.

How a batch forms (one per model version and signature at a time): the first request to arrive opens a batch;
the batch closes when it holds ``max_batch_size`` images or ``batch_timeout_micros`` have passed since it opened,
whichever comes first, and one of the ``num_batch_threads`` run slots is free (while all slots are busy the
batch keeps filling). Inputs are concatenated along axis 0, the model runs once, and each request gets its own
rows back. A request larger than ``max_batch_size`` runs alone (TF
Serving would refuse it unless large-batch splitting is on). With ``allowed_batch_sizes`` the batch is padded
(repeating its first row) up to the next allowed size. If a batch of several requests fails, each request is
re-run alone, so one bad request cannot fail the others. When more than ``max_enqueued_batches`` full batches
are waiting, new requests are refused with UNAVAILABLE.

The parameters file has TF Serving's format (``batching.config`` in this folder)::

    max_batch_size { value: 64 }
    batch_timeout_micros { value: 2000 }
    max_enqueued_batches { value: 100 }
    num_batch_threads { value: 2 }
"""

import dataclasses
import os
import threading
import time

import numpy as np

from keras_gen.serving.errors import ServerUnavailableError

__all__ = ["BatchingParameters", "Batcher"]


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
    """

    max_batch_size: int = 64
    batch_timeout_micros: int = 2000
    max_enqueued_batches: int = 100
    num_batch_threads: int = 1
    allowed_batch_sizes: tuple = ()

    _FIELDS = ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads",
               "allowed_batch_sizes")
    _IGNORED = ("pad_variable_length_inputs", "thread_pool_name", "enable_large_batch_splitting",
                "max_execution_batch_size")

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
        return "\n".join(lines) + "\n"


def _unwrap(value):
    """``{"value": [128]}`` (a wrapper message) or ``128`` -> 128."""
    if isinstance(value, dict):
        if set(value) != {"value"}:
            raise ValueError(f"Expected `{{ value: N }}`, got {value!r}.")
        value = value["value"][-1]
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
    """

    def __init__(self, run, parameters, name="batcher"):
        self._run = run
        self.parameters = parameters
        self.name = name
        self._cond = threading.Condition()
        self._slots = threading.Semaphore(parameters.num_batch_threads)
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

    def submit(self, inputs, size):
        """Runs one request of ``size`` images in a batch and returns its outputs.

        Raises:
            ServerUnavailableError: the batcher is closed, or more than ``max_enqueued_batches`` batches wait.
            Exception: whatever the model call raised for this request.
        """
        p = self.parameters
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

    def _execute(self, tasks):
        size = sum(t.size for t in tasks)
        try:
            if len(tasks) == 1:
                outputs = [self._run(tasks[0].inputs)]
            else:
                outputs = self._run_batch(tasks, size)
        except Exception as exc:  # noqa: BLE001 - handed to the waiting request(s)
            if len(tasks) == 1:
                tasks[0].error = exc
            else:
                for task in tasks:  # re-run alone: one bad request must not fail the others
                    try:
                        task.outputs = self._run(task.inputs)
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
        out = self._run(batch)
        results, start = [], 0
        for task in tasks:
            results.append({k: v[start : start + task.size] for k, v in out.items()})
            start += task.size
        return results
