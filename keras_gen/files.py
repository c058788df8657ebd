"""Files the package writes whole or not at all: `atomic_write` (a temporary name, then a rename) and `write_json`,
the one JSON writer of configs, dataset descriptions, reports and classifier records."""

import json
import os
import tempfile

__all__ = ["atomic_write", "write_json"]


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
