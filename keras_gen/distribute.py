"""`tf.distribute` for the package's models: strategies by name, chief/worker roles, what XLA supports.

The models are distribution-ready by construction: losses are divided by the replica count before the
gradients (the optimizer sums them over replicas), random draws are taken for the global batch and sliced per
replica (`keras_gen.rng`), and batch normalization can be synchronized across replicas. Build and compile under
``strategy.scope()``; `keras_gen.runs.train_run` does it for a `RunConfig` with ``strategy`` set.

Multi-worker training reads the cluster from ``TF_CONFIG``, e.g. for worker 0 of two on one machine::

    TF_CONFIG='{"cluster": {"worker": ["127.0.0.1:12345", "127.0.0.1:12346"]},
                "task": {"type": "worker", "index": 0}}' keras-gen train dcgan --strategy multiworker --out RUN

Every worker runs the same command; the chief (worker 0) writes ``RUN``, the others write scratch folders
``RUN.workers/<type>-<index>`` beside it (two writers of one backup folder collide on its file lock).
"""

import json
import logging
import os

__all__ = ["STRATEGIES", "make_strategy", "is_chief", "worker_run_dir", "jit_supported", "num_replicas"]

logger = logging.getLogger("keras_gen")

STRATEGIES = ("default", "mirrored", "multiworker")


def make_strategy(name="default"):
    """A `tf.distribute.Strategy` by name: ``"default"`` (one device), ``"mirrored"`` (all local GPUs, or the
    local logical devices), ``"multiworker"`` (MultiWorkerMirroredStrategy over the ``TF_CONFIG`` cluster)."""
    import tensorflow as tf

    if name not in STRATEGIES:
        raise ValueError(f"Unknown strategy {name!r}. Valid: {', '.join(STRATEGIES)}.")
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    if "TF_CONFIG" not in os.environ:
        raise ValueError(
            "--strategy multiworker needs the TF_CONFIG environment variable (the cluster and this worker's task); "
            "see keras_gen.distribute's docstring."
        )
    try:
        json.loads(os.environ["TF_CONFIG"])
    except json.JSONDecodeError as exc:
        raise ValueError(f"TF_CONFIG is not valid JSON: {exc}.") from exc
    return tf.distribute.MultiWorkerMirroredStrategy()


def num_replicas(strategy=None):
    import tensorflow as tf

    return (strategy or tf.distribute.get_strategy()).num_replicas_in_sync


def _task(strategy):
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return None, 0
    return resolver.task_type, int(resolver.task_id or 0)


def is_chief(strategy):
    """True for the process that writes the run folder: the only one, the ``chief`` task, or worker 0 of a
    cluster without a chief."""
    task_type, index = _task(strategy)
    if task_type is None:
        return True
    if task_type == "chief":
        return True
    cluster = strategy.cluster_resolver.cluster_spec().as_dict()
    return task_type == "worker" and index == 0 and "chief" not in cluster


def worker_run_dir(run_dir, strategy):
    """``run_dir`` for the chief; ``run_dir.workers/<type>-<index>`` for the other workers."""
    if is_chief(strategy):
        return run_dir
    task_type, index = _task(strategy)
    return os.path.join(os.fspath(run_dir).rstrip(os.sep) + ".workers", f"{task_type}-{index}")


def jit_supported(strategy):
    """``(ok, reason)``: XLA-compiling the train step fails with MirroredStrategy on CPU (cross-device resource
    access) and with multi-worker CPU collectives; on GPUs it works."""
    import tensorflow as tf

    if strategy.num_replicas_in_sync == 1 and not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True, ""
    if tf.config.list_logical_devices("GPU"):
        return True, ""
    return False, (
        f"{type(strategy).__name__} with {strategy.num_replicas_in_sync} CPU replicas cannot run an XLA-compiled "
        "train step (cross-device resource access); training without jit_compile"
    )
