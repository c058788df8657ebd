"""Files the package writes whole or not at all: `atomic_write` (a temporary name, then a rename) and `write_json`,
the one JSON writer of configs, dataset descriptions, reports and classifier records; and `stderr_discarded`, which
drops what C++ libraries write to file descriptor 2 for a block."""

import contextlib
import json
import os
import sys
import tempfile

__all__ = ["atomic_write", "write_json", "stderr_discarded", "cpp_logs_hidden"]


@contextlib.contextmanager
def stderr_discarded(discard=True):
    """Points file descriptor 2 at the null device for the block (when ``discard``): what C++ code writes there is
    dropped. Python's own ``sys.stderr`` is flushed first, so nothing written before the block is lost."""
    if not discard:
        yield
        return
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr to redirect
        yield
        return
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def cpp_logs_hidden():
    """Whether ``TF_CPP_MIN_LOG_LEVEL`` hides informational C++ log lines (set and not 0), as `keras-gen` sets it
    unless asked for them: the libraries beside TensorFlow that log on their own (LiteRT) are then kept as quiet."""
    return os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0").strip() not in ("", "0")


def _read_umask():
    mask = os.umask(0)  # the only way to read it sets it: read once, at import, before any thread writes files
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def atomic_write(path, write_fn, suffix=None):
    """Calls ``write_fn(tmp_path)`` and renames the result onto ``path``, so ``path`` is never half-written."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    suffix = suffix if suffix is not None else os.path.splitext(path)[1]
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=suffix)
    os.close(fd)
    try:
        write_fn(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the mode open() would
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def write_json(path, data, *, sort_keys=False, allow_nan=True, default=None, indent=2):
    """Writes ``data`` to ``path`` as indented JSON with a final newline, atomically (`atomic_write`).

    The text is made before anything is written, so data that does not serialize (or a NaN with
    ``allow_nan=False``, which strict JSON readers reject) leaves the previous file whole. Returns ``path``.
    """
    text = json.dumps(data, indent=indent, sort_keys=sort_keys, allow_nan=allow_nan, default=default) + "\n"

    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

    return atomic_write(path, write)
