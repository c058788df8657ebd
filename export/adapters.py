"""What gets exported from each kind of model: its networks and the named endpoints built on them.

An exporter never sees a training wrapper's losses, optimizers or discriminator (house habit 10): a
`ModelAdapter` picks the inference networks out of a model and describes each endpoint as a TensorFlow-traceable
function with an explicit, named input signature. The writers (`savedmodel`, `tflite`, `onnx`) only ever talk to
adapters, so supporting a new model kind means writing one adapter class (and `register_adapter`):

- `GANAdapter` (`keras_gen.models.GAN`, or a bare generator network): the generator.
- `VAEAdapter` (`keras_gen.models.VAE`): the decoder, plus the encoder for ``encode`` / ``reconstruct``.
- `VQVAEAdapter` (`keras_gen.models.VQVAE`): encoder, codebook, decoder, and the PixelCNN prior for sampling.
- `PixelCNNAdapter` (`keras_gen.models.PixelCNN`): the network, run by the compiled sampling loop.

Endpoints every adapter that can sample has (``B`` is the dynamic batch size, ``D`` the latent shape, ``K`` the
number of classes):

===================  =============================================  ==========================================
endpoint             inputs                                         outputs
===================  =============================================  ==========================================
``generate``         ``z`` float32 (B, *D) [, ``label`` int32 (B,)]  ``images`` float32 (B, H, W, C), in range
``generate_uint8``   same                                           ``images`` uint8 (B, H, W, C)
``sample``           ``n`` int32 (), ``seed`` int64 ()               ``images`` float32, ``z`` float32 (n, *D)
                     [, ``label`` int32 (n,)]
``sample_uint8``     same                                           ``images`` uint8, ``z``
===================  =============================================  ==========================================

``sample`` draws ``z = keras_gen.rng.normal((n, *D), seed=[seed, 0])`` (``rng.uniform`` for the PixelCNN
models, whose latent is Gumbel-max noise), the draw `GenerativeModel.generate(n, seed=seed)` makes, so it
reproduces ``model.generate(n, labels, seed)`` exactly. A conditional model's ``sample`` takes one label per
sample (the default of `generate`, ``arange(n) % K``, is the caller's to send; `keras_gen.export.load` does it).
It holds stateless random ops, which TFLite cannot convert and ONNX Runtime refuses (``STACK.md``), so it is a
SavedModel-only endpoint: mobile and ONNX callers draw ``z`` themselves and call ``generate``.

The uint8 endpoints map the range ``[low, high]`` to pixels as `keras_gen.images.to_uint8` does:
``clip(round((x - low) / (high - low) * 255), 0, 255)``. Models whose samples are not images (the 2-D point
MLPs) have no uint8 endpoints and name their output ``samples``.

`VAEAdapter` adds ``encode`` (``images`` [, ``label``] -> ``z_mean``, ``z_log_var``), ``reconstruct`` (``images``
[, ``label``] -> ``reconstructions``, the decoded posterior mean; not ``images``, which ONNX would take for the
input of the same name) with ``reconstruct_uint8``, and ``decode`` (an alias of ``generate`` in the SavedModel).
`VQVAEAdapter` adds ``encode`` (``images`` -> ``codes`` int32 (B, h, w)), ``decode_codes`` (``codes`` ->
``images``, the VQ-VAE decoder) and ``reconstruct``, with uint8 variants.
"""

import dataclasses

import numpy as np

__all__ = [
    "Endpoint",
    "ModelAdapter",
    "GANAdapter",
    "VAEAdapter",
    "VQVAEAdapter",
    "PixelCNNAdapter",
    "get_adapter",
    "register_adapter",
    "uint8_pixels",
]


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """One exported function.

    Attributes:
        name: the signature name (``generate``, ``sample_uint8``, ``encode``, ...).
        inputs: ``tf.TensorSpec`` s in call order; their names are the input names.
        outputs: output names, in the order of the returned dict.
        build: ``build(checked) -> fn``: ``fn(*inputs) -> {output name: tensor}``. With ``checked=True`` the
            function validates its inputs in the graph (labels in range, one label per sample); those assert ops
            go into the SavedModel only, the mobile formats get ``checked=False``.
        random: the function draws random numbers (stateless ops): SavedModel only.
        uint8: its image output is uint8 pixels.
        int8: also written into the full-integer TFLite model (float in, float out).
        fp16: also written into the fp16 and dynamic-range TFLite models (False for endpoints with an argmin or
            argmax, a VQ-VAE's code choice or a PixelCNN's sampling, which reduced precision flips).
        onnx: written as ONNX (False where tf2onnx cannot convert it, e.g. a PixelCNN sampling loop).
    """

    name: str
    inputs: tuple
    outputs: tuple
    build: object
    random: bool = False
    uint8: bool = False
    int8: bool = False
    fp16: bool = True
    onnx: bool = True

    @property
    def input_names(self):
        return tuple(spec.name for spec in self.inputs)


def uint8_pixels(images, value_range):
    """Float images in ``value_range`` -> uint8 pixels, in the graph (same formula as `keras_gen.images.to_uint8`)."""
    import tensorflow as tf

    low, high = value_range
    scaled = (tf.cast(images, tf.float32) - low) / (high - low) * 255.0
    return tf.cast(tf.clip_by_value(tf.round(scaled), 0.0, 255.0), tf.uint8)


def _check_built(network, role):
    import keras

    if not isinstance(network, keras.layers.Layer):
        raise TypeError(f"The {role} must be a keras.Model, got {type(network).__name__}.")
    if not network.built or (isinstance(network, keras.Model) and not getattr(network, "inputs", None)):
        raise ValueError(
            f"The {role} {network.name!r} is not built: it has no input shape yet, so it cannot be exported with an "
            "explicit signature. Build it first (call it on a batch, or create it with keras.Input)."
        )
    return network


class ModelAdapter:
    """Base class: the metadata and endpoints shared by every generative model with a latent prior.

    Subclasses set the attributes below in ``__init__`` and implement `decode` (``z[, label] -> samples`` as a
    float32 tensor, inference mode); they may add endpoints in `extra_endpoints`.

    Attributes:
        kind: ``"gan"``, ``"vae"``, ...
        prior: ``"normal"`` (`keras_gen.rng.normal`, the default of `GenerativeModel.sample_latent`) or
            ``"uniform"`` (`keras_gen.rng.uniform`: the Gumbel-max noise of PixelCNN sampling).
        model_class: the Python class name of what was exported.
        networks: ``{role: keras.Model or layer}`` of the networks the endpoints use (their weights are exported).
        latent_shape: shape of one latent, e.g. ``(100,)``; None for a model that cannot sample (a VQ-VAE without
            a prior), which then has no ``generate`` / ``sample`` endpoints.
        num_classes: classes of a conditional model, or None.
        sample_shape: shape of one sample, e.g. ``(28, 28, 1)``.
        value_range: ``(low, high)`` of the samples.
    """

    kind = "generic"
    prior = "normal"
    onnx_generate = True
    """Whether ``generate`` converts to ONNX (tf2onnx 1.17 writes an invalid graph for the PixelCNN loop)."""
    quantize_generate = True
    """Whether ``generate`` goes into the fp16 / int8 TFLite files (not when it samples by argmax)."""

    def __init__(self, model_class, networks, latent_shape, num_classes, sample_shape, value_range=(-1.0, 1.0)):
        self.model_class = model_class
        self.networks = dict(networks)
        for role, net in self.networks.items():
            _check_built(net, role)
        self.latent_shape = None if latent_shape is None else tuple(int(s) for s in latent_shape)
        self.num_classes = None if num_classes is None else int(num_classes)
        self.sample_shape = tuple(int(s) for s in sample_shape)
        self.value_range = (float(value_range[0]), float(value_range[1]))
        if not self.value_range[0] < self.value_range[1]:
            raise ValueError(f"`value_range` must be (low, high) with low < high, got {value_range!r}.")

    # ---------------------------------------------------------------- metadata
    @property
    def is_image(self):
        """Samples are images ``(H, W, C)`` (then uint8 endpoints exist and the output is named ``images``)."""
        return len(self.sample_shape) == 3

    @property
    def output_name(self):
        return "images" if self.is_image else "samples"

    @property
    def conditional(self):
        return self.num_classes is not None

    def describe(self):
        """The model part of the manifest."""
        return {
            "kind": self.kind,
            "class": self.model_class,
            "networks": sorted(self.networks),
            "prior": self.prior,
            "latent_shape": None if self.latent_shape is None else list(self.latent_shape),
            "latent_dim": self.latent_shape[0] if self.latent_shape and len(self.latent_shape) == 1 else None,
            "num_classes": self.num_classes,
            "sample_shape": list(self.sample_shape),
            "value_range": list(self.value_range),
            "output": self.output_name,
        }

    # ---------------------------------------------------------------- the network functions (tensors in and out)
    def decode(self, z, label):
        """``z (B, *latent_shape)[, label (B,)]`` -> float32 samples ``(B, *sample_shape)``, inference mode."""
        raise NotImplementedError

    def extra_endpoints(self):
        """Kind-specific endpoints (after the common ones)."""
        return []

    def draw_latent(self, shape, seed):
        """Latents from the prior with `keras_gen.rng` (``seed``: an int or an int64 ``[2]`` tensor), exactly as
        the model's `sample_latent` draws them."""
        from keras_gen import rng

        return (rng.uniform if self.prior == "uniform" else rng.normal)(shape, seed)

    # ---------------------------------------------------------------- specs
    def _specs(self, first):
        import tensorflow as tf

        specs = [first]
        if self.conditional:
            specs.append(tf.TensorSpec((None,), tf.int32, name="label"))
        return tuple(specs)

    def z_specs(self):
        import tensorflow as tf

        return self._specs(tf.TensorSpec((None,) + self.latent_shape, tf.float32, name="z"))

    def image_specs(self):
        import tensorflow as tf

        return self._specs(tf.TensorSpec((None,) + self.sample_shape, tf.float32, name="images"))

    def sample_specs(self):
        import tensorflow as tf

        specs = [tf.TensorSpec((), tf.int32, name="n"), tf.TensorSpec((), tf.int64, name="seed")]
        if self.conditional:
            specs.append(tf.TensorSpec((None,), tf.int32, name="label"))
        return tuple(specs)

    def check_label(self, label, count=None):
        """In-graph checks of a label vector (SavedModel endpoints): ``0 <= label < K`` and, when ``count`` is
        given, one label per sample. Returns the label with the checks as control dependencies."""
        import tensorflow as tf

        checks = [
            tf.debugging.assert_non_negative(label, message="labels must be >= 0"),
            tf.debugging.assert_less(
                label, tf.constant(self.num_classes, tf.int32), message=f"labels must be < {self.num_classes}"
            ),
        ]
        if count is not None:
            checks.append(
                tf.debugging.assert_equal(
                    tf.shape(label)[0], tf.cast(count, tf.int32), message="one label per sample is needed"
                )
            )
        with tf.control_dependencies(checks):
            return tf.identity(label)

    # ---------------------------------------------------------------- endpoints
    def endpoints(self):
        """All endpoints, in order; the first one is also the SavedModel's ``serving_default``."""
        return self.common_endpoints() + self.extra_endpoints()

    def common_endpoints(self):
        import tensorflow as tf

        if self.latent_shape is None:
            return []
        out = self.output_name
        value_range = self.value_range

        def generate_builder(uint8):
            def build(checked):
                def images(z, label):
                    x = self.decode(z, label)  # (B, *sample_shape)
                    return {out: uint8_pixels(x, value_range) if uint8 else x}

                if not self.conditional:
                    return lambda z: images(z, None)

                def fn(z, label):
                    if checked:
                        label = self.check_label(label, tf.shape(z)[0])
                    return images(z, label)

                return fn

            return build

        def sample_builder(uint8):
            def build(checked):
                def draw(n, seed, label):
                    if checked:
                        with tf.control_dependencies([tf.debugging.assert_positive(n, message="n must be >= 1")]):
                            n = tf.identity(n)
                        if label is not None:
                            label = self.check_label(label, n)
                    seed_pair = tf.stack([tf.cast(seed, tf.int64), tf.constant(0, tf.int64)])
                    z = self.draw_latent((n,) + self.latent_shape, seed_pair)  # (n, *latent_shape), as sample_latent
                    x = self.decode(z, label)
                    return {out: uint8_pixels(x, value_range) if uint8 else x, "z": z}

                if not self.conditional:
                    return lambda n, seed: draw(n, seed, None)
                return draw

            return build

        flags = {"onnx": self.onnx_generate, "fp16": self.quantize_generate}
        endpoints = [
            Endpoint("generate", self.z_specs(), (out,), generate_builder(False), int8=self.quantize_generate, **flags)
        ]
        if self.is_image:
            endpoints.append(
                Endpoint("generate_uint8", self.z_specs(), (out,), generate_builder(True), uint8=True, **flags)
            )
        endpoints.append(Endpoint("sample", self.sample_specs(), (out, "z"), sample_builder(False), random=True))
        if self.is_image:
            endpoints.append(
                Endpoint("sample_uint8", self.sample_specs(), (out, "z"), sample_builder(True), random=True, uint8=True)
            )
        return endpoints

    def aliases(self):
        """``{alias: endpoint}``: extra SavedModel signature names for an endpoint."""
        return {}

    # ---------------------------------------------------------------- inputs for parity checks
    def example_inputs(self, endpoint, batch, seed):
        """NumPy inputs of ``endpoint`` for a batch of ``batch``: normal ``z``, random labels, images uniform in
        the value range; ``n = batch`` and a seed for ``sample``."""
        generator = np.random.default_rng(seed)
        inputs = {}
        for spec in endpoint.inputs:
            if spec.name == "z" and self.prior == "uniform":
                inputs["z"] = generator.uniform(1e-6, 1.0 - 1e-6, (batch,) + self.latent_shape).astype("float32")
            elif spec.name == "z":
                inputs["z"] = generator.standard_normal((batch,) + self.latent_shape).astype("float32")
            elif spec.name == "codes":
                shape = (batch,) + tuple(spec.shape[1:])
                inputs["codes"] = generator.integers(0, self.num_codes, size=shape).astype("int32")
            elif spec.name == "label":
                inputs["label"] = generator.integers(0, self.num_classes, size=(batch,)).astype("int32")
            elif spec.name == "images":
                low, high = self.value_range
                inputs["images"] = generator.uniform(low, high, (batch,) + self.sample_shape).astype("float32")
            elif spec.name == "n":
                inputs["n"] = np.array(batch, dtype="int32")
            elif spec.name == "seed":
                inputs["seed"] = np.array(seed, dtype="int64")
            else:  # pragma: no cover - an adapter that adds inputs adds their examples
                raise ValueError(f"No example values for input {spec.name!r} of endpoint {endpoint.name!r}.")
        return inputs

    def representative_inputs(self, endpoint, count=128, batch=16, seed=0):
        """Calibration batches of ``endpoint`` for full-integer TFLite quantization: latents from the prior (as
        `sample` draws them) and labels cycling through the classes."""
        batches = []
        for i in range((count + batch - 1) // batch):
            item = self.example_inputs(endpoint, batch, seed + i)
            if "z" in item:
                item["z"] = np.asarray(self.draw_latent((batch,) + self.latent_shape, seed + i), dtype="float32")
            if "label" in item:
                item["label"] = ((np.arange(batch) + i * batch) % self.num_classes).astype("int32")
            batches.append(item)
        return batches


class GANAdapter(ModelAdapter):
    """A GAN's generator (or a bare generator network taking ``z`` [and ``label``]).

    Args:
        generator: a built functional generator.
        num_classes: classes of a conditional generator (its second input is ``label``).
        value_range: range of the generated images.
        model_class: name recorded in the manifest.
    """

    kind = "gan"

    def __init__(self, generator, num_classes=None, value_range=(-1.0, 1.0), model_class=None):
        _check_built(generator, "generator")
        expected = 1 if num_classes is None else 2
        if len(generator.inputs) != expected:
            raise ValueError(
                f"The generator takes {len(generator.inputs)} input(s); with num_classes={num_classes!r} it should "
                f"take {expected} (z{'' if num_classes is None else ', label'})."
            )
        if len(generator.outputs) != 1:
            raise ValueError(f"The generator must have one output, it has {len(generator.outputs)}.")
        self.generator = generator
        super().__init__(
            model_class or type(generator).__name__,
            {"generator": generator},
            latent_shape=generator.inputs[0].shape[1:],
            num_classes=num_classes,
            sample_shape=generator.outputs[0].shape[1:],
            value_range=value_range,
        )

    @classmethod
    def from_model(cls, model):
        return cls(
            model.generator,
            num_classes=model.num_classes,
            value_range=getattr(model, "value_range", (-1.0, 1.0)),
            model_class=type(model).__name__,
        )

    def decode(self, z, label):
        import tensorflow as tf

        inputs = z if label is None else [z, label]
        return tf.cast(self.generator(inputs, training=False), tf.float32)


class _ModelWrapperAdapter(ModelAdapter):
    """An adapter over a keras-gen model that exposes ``decode_latent``, ``latent_shape``, ``num_classes`` and
    ``sample_shape``: ``decode`` is the model's own `decode_latent`, in float32."""

    def __init__(self, model, networks, latent_shape):
        self.model = model
        super().__init__(
            type(model).__name__,
            networks,
            latent_shape=latent_shape,
            num_classes=model.num_classes,
            sample_shape=model.sample_shape,
            value_range=getattr(model, "value_range", (-1.0, 1.0)),
        )

    @classmethod
    def from_model(cls, model):
        return cls(model)

    def decode(self, z, label):
        import tensorflow as tf

        return tf.cast(self.model.decode_latent(z, label), tf.float32)


class VAEAdapter(_ModelWrapperAdapter):
    """A VAE's decoder (``generate``, ``sample``, alias ``decode``) and encoder (``encode``, ``reconstruct``).

    The functions are the model's own tensor functions, `VAE.decode_latent` (decoder, then the likelihood's
    mapping to images: ``2 sigmoid(logits) - 1`` or clipped means) and `VAE.posterior` (encoder -> mean, log
    variance), so the exported graphs hold the two networks and those few ops, nothing of training.
    """

    kind = "vae"

    def __init__(self, model):
        super().__init__(model, {"decoder": model.decoder, "encoder": model.encoder}, model.latent_shape)

    def aliases(self):
        return {"decode": "generate"}

    def extra_endpoints(self):
        import tensorflow as tf

        value_range = self.value_range

        def posterior(images, label):
            mean, log_var = self.model.posterior(images, label, training=False)
            return {"z_mean": tf.cast(mean, tf.float32), "z_log_var": tf.cast(log_var, tf.float32)}

        def reconstruction(uint8):
            def run(images, label):
                mean, _ = self.model.posterior(images, label, training=False)
                x = self.decode(mean, label)
                return {"reconstructions": uint8_pixels(x, value_range) if uint8 else x}

            return run

        def builder(fn):
            def build(checked):
                if not self.conditional:
                    return lambda images: fn(images, None)

                def call(images, label):
                    if checked:
                        label = self.check_label(label, tf.shape(images)[0])
                    return fn(images, label)

                return call

            return build

        endpoints = [
            Endpoint("encode", self.image_specs(), ("z_mean", "z_log_var"), builder(posterior)),
            Endpoint("reconstruct", self.image_specs(), ("reconstructions",), builder(reconstruction(False))),
        ]
        if self.is_image:
            endpoints.append(
                Endpoint(
                    "reconstruct_uint8", self.image_specs(), ("reconstructions",), builder(reconstruction(True)),
                    uint8=True,
                )
            )
        return endpoints


class VQVAEAdapter(_ModelWrapperAdapter):
    """A VQ-VAE: encoder, codebook and decoder, plus its PixelCNN prior for ``generate`` / ``sample``.

    Endpoints besides the common ones (which exist only with a prior; their ``z`` is the prior's uniform
    Gumbel-max noise ``(B, h, w, K)``, as `VQVAE.sample_latent` draws it, and ``generate`` runs the prior's
    sampling loop, ``h * w`` network calls, then decodes):

    - ``encode``: ``images`` -> ``codes`` int32 ``(B, h, w)``, the nearest codebook entries;
    - ``decode_codes`` (+ ``_uint8``): ``codes`` -> ``images``: the VQ-VAE decoder, the endpoint the full-integer
      TFLite file holds;
    - ``reconstruct`` (+ ``_uint8``): ``images`` -> ``reconstructions``.

    tf2onnx 1.17 turns the prior's sampling loop into an invalid ONNX graph (a OneHot inside the Loop), so the
    ONNX files hold the autoencoder endpoints only; sample through the SavedModel or TFLite.
    """

    kind = "vqvae"
    prior = "uniform"
    onnx_generate = False
    quantize_generate = False

    def __init__(self, model):
        networks = {"encoder": model.encoder, "decoder": model.decoder, "quantizer": model.quantizer}
        if model.prior is not None:
            networks["prior"] = model.prior.network
        self.code_shape = tuple(int(s) for s in model.code_shape[:2])
        self.num_codes = int(model.num_codes)
        super().__init__(model, networks, None if model.prior is None else model.latent_shape)

    def describe(self):
        info = super().describe()
        info.update(code_shape=list(self.code_shape), num_codes=self.num_codes)
        return info

    def codes(self, images):
        """Nearest codebook entries of the encoder's outputs, ``(B, H, W, C) -> (B, h, w)`` int32: the arithmetic
        of `VectorQuantizer.nearest`, with ``tf.argmin`` for ``keras.ops.argmin``, whose TensorFlow lowering
        (a BitwiseAnd to order -0.0 before 0.0) LiteRT lacks."""
        import tensorflow as tf

        z_e = tf.cast(self.model.encoder(images, training=False), tf.float32)  # (B, h, w, D)
        codebook = tf.convert_to_tensor(self.model.quantizer.codebook)  # (K, D)
        flat = tf.reshape(z_e, (-1, codebook.shape[-1]))  # (N, D)
        distances = (
            tf.reduce_sum(tf.square(flat), axis=1, keepdims=True)
            - 2.0 * tf.matmul(flat, tf.transpose(codebook))
            + tf.reduce_sum(tf.square(codebook), axis=1)[None, :]
        )  # (N, K)
        indices = tf.argmin(distances, axis=1, output_type=tf.int32)  # (N,)
        return tf.reshape(indices, tf.shape(z_e)[:-1])  # (B, h, w)

    def extra_endpoints(self):
        import tensorflow as tf

        value_range = self.value_range
        images = (tf.TensorSpec((None,) + self.sample_shape, tf.float32, name="images"),)
        codes = (tf.TensorSpec((None,) + self.code_shape, tf.int32, name="codes"),)

        def unchecked(fn):
            return lambda checked: fn

        def encode(x):
            return {"codes": self.codes(x)}  # (B, h, w)

        def decode_codes(uint8):
            def run(c):
                x = tf.cast(self.model._decode_codes_tensor(c), tf.float32)  # (B, H, W, C)
                return {"images": uint8_pixels(x, value_range) if uint8 else x}

            return run

        def decode_codes_checked(uint8):
            def build(checked):
                run = decode_codes(uint8)
                if not checked:
                    return run

                def check(c):
                    with tf.control_dependencies([
                        tf.debugging.assert_non_negative(c, message="codes must be >= 0"),
                        tf.debugging.assert_less(c, tf.constant(self.num_codes, tf.int32),
                                                 message=f"codes must be < {self.num_codes}"),
                    ]):
                        return run(tf.identity(c))

                return check

            return build

        def reconstruct(uint8):
            def run(x):
                y = tf.cast(self.model._decode_codes_tensor(self.codes(x)), tf.float32)
                return {"reconstructions": uint8_pixels(y, value_range) if uint8 else y}

            return run

        return [
            Endpoint("encode", images, ("codes",), unchecked(encode), fp16=False),
            Endpoint("decode_codes", codes, ("images",), decode_codes_checked(False), int8=True),
            Endpoint("decode_codes_uint8", codes, ("images",), decode_codes_checked(True), uint8=True),
            Endpoint("reconstruct", images, ("reconstructions",), unchecked(reconstruct(False)), fp16=False),
            Endpoint(
                "reconstruct_uint8", images, ("reconstructions",), unchecked(reconstruct(True)), uint8=True, fp16=False
            ),
        ]


class PixelCNNAdapter(_ModelWrapperAdapter):
    """A PixelCNN: ``generate`` runs its compiled sampling loop on given Gumbel-max noise ``z`` ``(B, H, W, L)``
    (uniform, as `PixelCNN.sample_latent` draws it) and maps the levels to images. SavedModel and TFLite only:
    tf2onnx 1.17 cannot convert the loop, and the argmax of the loop does not survive int8 quantization."""

    kind = "pixelcnn"
    prior = "uniform"
    onnx_generate = False
    quantize_generate = False

    def __init__(self, model):
        super().__init__(model, {"pixel_cnn": model.network}, model.latent_shape)


_ADAPTERS = {"GAN": GANAdapter, "VAE": VAEAdapter, "VQVAE": VQVAEAdapter, "PixelCNN": PixelCNNAdapter}


def register_adapter(model_class_name, adapter_class):
    """Registers the adapter of a model class (by class name): ``adapter_class.from_model(model)`` builds it."""
    if not hasattr(adapter_class, "from_model"):
        raise TypeError(f"{adapter_class!r} needs a `from_model(model)` classmethod.")
    _ADAPTERS[model_class_name] = adapter_class


def get_adapter(model, num_classes=None):
    """The `ModelAdapter` of a model of this package, of a bare generator network, or an adapter itself.

    Args:
        model: a `keras_gen` model (`GAN`, `VAE`, ...), a built functional generator network (inputs ``z`` and,
            when ``num_classes`` is set, ``label``), or a `ModelAdapter`.
        num_classes: classes of a bare conditional generator network.

    Raises:
        TypeError: not a Keras model.
        ValueError: an unbuilt network, or a model kind no exporter knows (the message lists the known ones).
    """
    import keras

    if isinstance(model, ModelAdapter):
        return model
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"Expected a keras_gen model, a generator network or a ModelAdapter; got {type(model).__name__}."
        )
    for cls in type(model).__mro__:
        if cls.__name__ in _ADAPTERS:
            return _ADAPTERS[cls.__name__].from_model(model)
    from keras_gen.models.base import GenerativeModel

    if isinstance(model, GenerativeModel):
        raise ValueError(
            f"No exporter knows {type(model).__name__} models yet (known: {', '.join(sorted(_ADAPTERS))}); "
            "write a ModelAdapter for it and `register_adapter` it."
        )
    # A bare network: treat it as a generator.
    return GANAdapter(model, num_classes=num_classes)
