"""What produced a result: library versions, the machine, and the keras-gen source revision.

Written into export manifests (``versions``), ``keras-gen evaluate`` reports and the benchmarks' JSON
(``environment``, via `write_report`), so that two numbers can be told apart by more than their dates::

    >>> from keras_gen import provenance
    >>> provenance.environment()
    {'keras_gen': '0.1.0', 'tensorflow': '2.21.0', 'keras': '3.15.1', 'backend': 'tensorflow',
     'python': '3.11.2', 'platform': 'Linux-...-x86_64-with-glibc2.36', 'processor': 'AMD EPYC', 'cpu_count': 2,
     'source': {'commit': '83416c2...', 'dirty': False}}
"""

import functools
import os
import platform
import subprocess
import sys

__all__ = ["versions", "environment", "source_revision", "processor", "command_line", "write_report"]

_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def versions():
    """``{"keras_gen", "tensorflow", "keras"}`` version strings: what an artifact needs to be read back."""
    import keras
    import tensorflow as tf

    from keras_gen.version import __version__

    return {"keras_gen": __version__, "tensorflow": tf.__version__, "keras": keras.__version__}


@functools.lru_cache(maxsize=None)
def source_revision(root=_PACKAGE_ROOT):
    """``{"commit", "dirty"}`` of the git checkout keras-gen is imported from, or ``None``.

    ``None`` when keras-gen is installed from a wheel (its folder's parent, site-packages, is not the root of a
    checkout, and a virtual environment inside some other repository is not mistaken for keras-gen's), or when
    git is missing or slow. ``dirty`` is True when tracked files differ from the commit, so the commit alone does
    not name the code that ran. Computed once per process: a long run reports the code it started with (if its
    first call comes at the start).
    """
    if not os.path.exists(os.path.join(root, ".git")):  # git -C would find any repository above
        return None

    def git(*args):
        done = subprocess.run(["git", "-C", root, *args], capture_output=True, text=True, timeout=10, check=True)
        return done.stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": dirty}


def processor(cpuinfo="/proc/cpuinfo"):
    """The CPU's model name, e.g. ``"Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz"``: what a timing was taken on.

    ``platform.processor()`` is empty on most Linux systems (and only ``"x86_64"`` on others), so the
    ``model name`` line of ``/proc/cpuinfo`` is read first; where there is none, ``platform.processor()`` or, failing
    that, ``platform.machine()``.
    """
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment():
    """`versions` plus the Keras backend, Python, platform, `processor`, CPU count and `source_revision`
    (``source``)."""
    import keras

    source = source_revision()
    return {
        **versions(),
        "backend": keras.backend.backend(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": processor(),
        "cpu_count": os.cpu_count(),
        "source": None if source is None else dict(source),  # a copy: the cached one stays as it was
    }


def command_line(script, argv=None):
    """``python SCRIPT ARG ...``: how to run ``script`` again with ``argv`` (default ``sys.argv[1:]``), the form a
    benchmark report and the README quote it in."""
    return " ".join(["python", script, *(sys.argv[1:] if argv is None else argv)])


def write_report(path, report, allow_nan=True):
    """Writes ``report`` to ``path`` as indented JSON, with the `environment` it was made in where it names none.

    The file is written under a temporary name and renamed, so an interrupted write leaves the previous report
    whole: ``mode_collapse.py --merge`` reads it back. ``allow_nan=False`` refuses NaN and infinities, which
    strict JSON readers reject. Returns ``path``.
    """
    from keras_gen.files import write_json

    report = report if "environment" in report else {**report, "environment": environment()}
    return write_json(path, report, allow_nan=allow_nan)
