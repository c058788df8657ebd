"""Which model versions are loaded, and the switch from one version to the next without dropping a request.

`ModelManager` keeps, for every `ModelSource`, the state of each version folder it has seen, with TF Serving's
states (``START``, ``LOADING``, ``AVAILABLE``, ``UNLOADING``, ``END``). `ModelManager.poll` (called every
``poll_interval`` seconds by the server, as TF Serving's ``--file_system_poll_wait_seconds``) compares the
integer folders on disk with each source's version policy and:

1. loads the versions the policy wants that are not loaded (load, then warm-up), and only then
2. unloads the versions it no longer wants: each is taken out of routing at once (new requests go to the newest
   available version), and closed when the requests that already hold it have finished.

A request holds its version through `ModelManager.acquire` from lookup to answer, so a switch never fails a
request in flight. A version that fails to load stays in ``END`` with its error (in GetModelStatus) and is not
retried until its folder changes; the versions already serving keep serving.
"""

import contextlib
import logging
import os
import threading
import time

from keras_gen.serving.errors import RequestError, from_exception

__all__ = ["STATES", "ModelManager", "VersionStatus"]

STATES = ("START", "LOADING", "AVAILABLE", "UNLOADING", "END")

logger = logging.getLogger("keras_gen.serving")


class VersionStatus:
    """The state of one version: ``version``, ``state`` (one of `STATES`), ``error_code`` and
    ``error_message`` (``"OK"`` and ``""`` unless its load failed)."""

    __slots__ = ("version", "state", "error_code", "error_message", "servable", "in_flight", "path", "stamp")

    def __init__(self, version, path):
        self.version = version
        self.path = path
        self.state = "START"
        self.error_code = "OK"
        self.error_message = ""
        self.servable = None
        self.in_flight = 0
        self.stamp = None

    def as_dict(self):
        return {"version": self.version, "state": self.state, "error_code": self.error_code,
                "error_message": self.error_message}

    def __repr__(self):
        return f"VersionStatus(version={self.version}, state={self.state!r}, error_code={self.error_code!r})"


def _stamp(path):
    """What changes when a version folder is rewritten: its own and its files' modification times."""
    try:
        parts = [os.stat(path).st_mtime_ns]
        for directory, _, files in os.walk(path):
            parts.extend(os.stat(os.path.join(directory, name)).st_mtime_ns for name in sorted(files))
        return tuple(parts)
    except OSError:
        return None


class ModelManager:
    """Loads, routes to and unloads model versions (see the module docstring).

    Args:
        sources: the `ModelSource` s to serve, or a callable returning them (re-evaluated at every poll, so
            model folders created under a base path later are picked up).
        load: ``load(name, version, path) -> Servable`` (loads and warms up).
        unload_timeout: seconds `close` waits for requests in flight.
    """

    def __init__(self, sources, load, unload_timeout=30.0):
        self._sources_fn = sources if callable(sources) else (lambda: list(sources))
        self._load = load
        self.unload_timeout = unload_timeout
        self._lock = threading.Condition()
        self._sources = {}
        self._versions = {}  # name -> {version: VersionStatus}
        self._poll_lock = threading.Lock()
        self._unloaders = []
        self._closed = False
        self._missing_reported = set()

    # ------------------------------------------------------------------------------------------- polling
    def poll(self):
        """One pass over the sources: load what the policies want, then unload what they no longer want."""
        with self._poll_lock:
            if self._closed:
                return
            sources = {s.name: s for s in self._sources_fn()}
            with self._lock:
                self._sources = sources
                for name in sources:
                    self._versions.setdefault(name, {})
            for source in sources.values():
                self._poll_source(source)

    def _poll_source(self, source):
        on_disk = {}
        try:
            names = os.listdir(source.base_path)
        except OSError:
            if source.name not in self._missing_reported:
                logger.warning("Model %s: base path %s does not exist (yet); polling it.", source.name,
                               source.base_path)
                self._missing_reported.add(source.name)
            names = []
        for entry in names:
            path = os.path.join(source.base_path, entry)
            if entry.isdigit() and os.path.isdir(path):
                on_disk[int(entry)] = path
        with self._lock:
            known = self._versions[source.name]
            failed = {v for v, s in known.items() if s.state == "END" and s.error_code != "OK"}
        # A failed version is retried only once its folder has changed.
        loadable = [v for v in on_disk if v not in failed or _stamp(on_disk[v]) != known[v].stamp]
        while True:
            wanted = set(source.select(loadable))
            newly_failed = []
            for version in sorted(wanted, reverse=True):
                with self._lock:
                    status = known.get(version)
                    if status is not None and status.state in ("LOADING", "AVAILABLE"):
                        continue
                if not self._load_version(source, version, on_disk[version]):
                    newly_failed.append(version)
            if not newly_failed:
                break
            # A version the policy wanted cannot load: the policy picks among the rest (e.g. the previous one).
            loadable = [v for v in loadable if v not in newly_failed]
        with self._lock:
            available = [v for v, s in known.items() if s.state == "AVAILABLE"]
            # Keep an old version while nothing the policy wants could be loaded (the model stays up).
            wanted_available = [v for v in available if v in wanted]
            retire = [v for v in available if v not in wanted] if wanted_available else []
            for version in retire:
                known[version].state = "UNLOADING"
        for version in retire:
            self._start_unload(source.name, known[version])

    def _load_version(self, source, version, path):
        status = VersionStatus(version, path)
        status.stamp = _stamp(path)
        status.state = "LOADING"
        with self._lock:
            self._versions[source.name][version] = status
        logger.info("Loading %s version %d from %s", source.name, version, path)
        start = time.perf_counter()
        try:
            servable = self._load(source.name, version, path)
        except Exception as exc:  # noqa: BLE001 - recorded in the status, the server keeps running
            error = from_exception(exc)
            with self._lock:
                status.state = "END"
                status.error_code = error.code if error.code != "INTERNAL" else "UNKNOWN"
                status.error_message = f"{type(exc).__name__}: {exc}"
            logger.error("Failed to load %s version %d: %s: %s", source.name, version, type(exc).__name__, exc)
            return False
        with self._lock:
            if self._closed:
                status.state = "END"
                closing = True
            else:
                status.servable = servable
                status.state = "AVAILABLE"
                closing = False
        if closing:
            servable.close()
            return True
        logger.info("Serving %s version %d (%s, loaded and warmed up in %.2f s)", source.name, version,
                    servable.backend, time.perf_counter() - start)
        return True

    def _start_unload(self, name, status):
        thread = threading.Thread(target=self._unload, args=(name, status), name=f"unload-{name}-{status.version}",
                                  daemon=True)
        self._unloaders = [t for t in self._unloaders if t.is_alive()] + [thread]
        thread.start()

    def _unload(self, name, status, timeout=None):
        timeout = self.unload_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        with self._lock:
            while status.in_flight and time.monotonic() < deadline:
                self._lock.wait(max(0.0, deadline - time.monotonic()))
            left = status.in_flight
        if left:
            logger.warning("Unloading %s version %d with %d request(s) still running.", name, status.version, left)
        servable = status.servable
        if servable is not None:
            servable.close()
        with self._lock:
            status.servable = None
            status.state = "END"
        logger.info("Unloaded %s version %d", name, status.version)

    # ------------------------------------------------------------------------------------------- requests
    @contextlib.contextmanager
    def acquire(self, name, version=None, label=None):
        """Holds one available version for a request: the given ``version``, the one ``label`` names, or the
        newest available.

        Raises:
            RequestError: NOT_FOUND for an unknown model or a version that is not available; INVALID_ARGUMENT for
                an unknown label.
        """
        with self._lock:
            known = self._versions.get(name)
            if label:
                source = self._sources.get(name)
                labels = source.label_map if source is not None else {}
                if label not in labels:
                    raise RequestError("INVALID_ARGUMENT", f"Unrecognized servable version label: {label}")
                version = labels[label]
            if version is None:
                available = [v for v, s in (known or {}).items() if s.state == "AVAILABLE"]
                if not available:
                    raise RequestError("NOT_FOUND", f"Servable not found for request: Latest({name})")
                status = known[max(available)]
            else:
                status = (known or {}).get(int(version))
                if status is None or status.state != "AVAILABLE":
                    raise RequestError("NOT_FOUND", f"Servable not found for request: Specific({name}, {version})")
            status.in_flight += 1
            servable = status.servable
        try:
            yield servable
        finally:
            with self._lock:
                status.in_flight -= 1
                if not status.in_flight:
                    self._lock.notify_all()

    def status(self, name, version=None):
        """``[VersionStatus.as_dict()]`` of a model's versions (newest first), or of one version.

        Raises:
            RequestError: NOT_FOUND, with TF Serving's messages.
        """
        with self._lock:
            known = self._versions.get(name) or {}
            if version is not None:
                if int(version) not in known:
                    raise RequestError("NOT_FOUND", f"Could not find version {version} of model {name}")
                return [known[int(version)].as_dict()]
            if not known:
                raise RequestError("NOT_FOUND", f"Could not find any versions of model {name}")
            return [known[v].as_dict() for v in sorted(known, reverse=True)]

    def models(self):
        """``{name: [available versions]}``."""
        with self._lock:
            return {
                name: sorted(v for v, s in known.items() if s.state == "AVAILABLE")
                for name, known in self._versions.items()
            }

    def servables(self):
        """The loaded servables (for statistics)."""
        with self._lock:
            return [s.servable for known in self._versions.values() for s in known.values() if s.servable is not None]

    def close(self, timeout=None):
        """Unloads every version, waiting up to ``timeout`` seconds for requests in flight."""
        with self._poll_lock:
            with self._lock:
                self._closed = True
                loaded = [(name, s) for name, known in self._versions.items() for s in known.values()
                          if s.state in ("AVAILABLE", "UNLOADING") and s.servable is not None]
                for _, status in loaded:
                    status.state = "UNLOADING"
            for name, status in loaded:
                self._unload(name, status, timeout)
            for thread in self._unloaders:
                thread.join(timeout)
