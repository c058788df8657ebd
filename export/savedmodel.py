"""SavedModel writer (TF Serving layout) and two ways of running one: TF2 `tf.saved_model.load`, and a TF1
session the way ``saved_model_cli run`` and TF Serving's C++ loader use it (feeds and fetches by tensor name).
"""

import os

import numpy as np

__all__ = ["write_savedmodel", "SavedModelRunner", "SessionRunner", "SERVING_DEFAULT"]

SERVING_DEFAULT = "serving_default"


def write_savedmodel(adapter, path):
    """Writes every endpoint of ``adapter`` (random ones included) as named signatures into ``path``.

    The first endpoint (``generate``) is also ``serving_default``; `ModelAdapter.aliases` add more names.
    Endpoints are built with ``checked=True``: labels out of range or one label too few fail with
    INVALID_ARGUMENT instead of reading another class's weights.

    Args:
        adapter: a `keras_gen.export.adapters.ModelAdapter`.
        path: the SavedModel directory to create (must not exist or be empty).
    """
    import keras

    archive = keras.export.ExportArchive()
    # Not `archive.track(network)`: the variables the endpoints capture are tracked anyway (the archive's
    # `_all_variables`), and tracking the Keras model as well stores every weight twice (docs/export.md).
    by_name = {}
    for endpoint in adapter.endpoints():
        archive.add_endpoint(endpoint.name, endpoint.build(True), input_signature=list(endpoint.inputs))
        by_name[endpoint.name] = endpoint
    for alias, target in adapter.aliases().items():
        endpoint = by_name[target]
        archive.add_endpoint(alias, endpoint.build(True), input_signature=list(endpoint.inputs))
    archive.write_out(os.fspath(path), verbose=False)
    return os.fspath(path)


def _spec_dict(spec):
    return {"dtype": spec.dtype.name, "shape": [None if d is None else int(d) for d in spec.shape]}


class SavedModelRunner:
    """Runs the signatures of a SavedModel loaded with `tf.saved_model.load`.

    ``runner(endpoint, {input name: array}) -> {output name: NumPy array}``.
    """

    format = "savedmodel"

    def __init__(self, path):
        import tensorflow as tf

        self.path = os.fspath(path)
        self.loaded = tf.saved_model.load(self.path)
        self._signatures = dict(self.loaded.signatures)

    @property
    def endpoints(self):
        return sorted(self._signatures)

    def signature(self, endpoint):
        fn = self._get(endpoint)
        inputs = fn.structured_input_signature[1]
        return {
            "inputs": {name: _spec_dict(spec) for name, spec in sorted(inputs.items())},
            "outputs": {name: _spec_dict(spec) for name, spec in sorted(fn.structured_outputs.items())},
        }

    def _get(self, endpoint):
        if endpoint not in self._signatures:
            raise ValueError(f"{self.path} has no signature {endpoint!r}; it has {', '.join(self.endpoints)}.")
        return self._signatures[endpoint]

    def __call__(self, endpoint, inputs):
        import tensorflow as tf

        fn = self._get(endpoint)
        specs = fn.structured_input_signature[1]
        feed = {name: tf.constant(np.asarray(inputs[name]), dtype=spec.dtype) for name, spec in specs.items()}
        return {name: value.numpy() for name, value in fn(**feed).items()}

    def close(self):
        self.loaded = None


class SessionRunner:
    """Runs a SavedModel's signatures in a TF1 `Session`, as ``saved_model_cli run`` and TF Serving do: the
    MetaGraph is imported with `tf.compat.v1.saved_model.loader.load`, inputs are fed and outputs fetched by the
    tensor names recorded in the ``SignatureDef``.
    """

    format = "savedmodel"

    def __init__(self, path, tags=("serve",)):
        import tensorflow as tf

        self.path = os.fspath(path)
        self._graph = tf.Graph()
        self._session = tf.compat.v1.Session(graph=self._graph)
        with self._graph.as_default():
            meta_graph = _quietly(tf.compat.v1.saved_model.loader.load, self._session, list(tags), self.path)
        self._signatures = dict(meta_graph.signature_def)

    @property
    def endpoints(self):
        return sorted(self._signatures)

    def _get(self, endpoint):
        if endpoint not in self._signatures:
            raise ValueError(f"{self.path} has no signature {endpoint!r}; it has {', '.join(self.endpoints)}.")
        return self._signatures[endpoint]

    def signature(self, endpoint):
        import tensorflow as tf

        sig = self._get(endpoint)

        def describe(info):
            shape = [None if d.size < 0 else int(d.size) for d in info.tensor_shape.dim]
            return {"dtype": tf.dtypes.as_dtype(info.dtype).name, "shape": shape}

        return {
            "inputs": {k: describe(v) for k, v in sorted(sig.inputs.items())},
            "outputs": {k: describe(v) for k, v in sorted(sig.outputs.items())},
        }

    def __call__(self, endpoint, inputs):
        sig = self._get(endpoint)
        feed = {info.name: np.asarray(inputs[name]) for name, info in sig.inputs.items()}
        fetches = {name: info.name for name, info in sig.outputs.items()}
        return self._session.run(fetches, feed)

    def close(self):
        self._session.close()


def _quietly(fn, *args):
    """Calls a deprecated TF1 API without its deprecation log line."""
    import tensorflow as tf

    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")
    try:
        return fn(*args)
    finally:
        logger.setLevel(level)
