"""What gets exported from each kind of model: its networks and the named endpoints built on them.

An exporter never sees a training wrapper's losses, optimizers or discriminator (house habit 10): a
`ModelAdapter` picks the inference networks out of a model and describes each endpoint as a TensorFlow-traceable
function with an explicit, named input signature. The writers (`savedmodel`, `tflite`, `onnx`) only ever talk to
adapters. `get_adapter` takes a model's family adapter (registered by class, for models with endpoints of their
own) or else the adapter of its kind (`keras_gen.model_kind`), so a new model that samples from a latent exports
with no adapter of its own:

- `LatentModelAdapter`: any model of kind ``latent`` / ``coded``: its `decode_latent` and `latent_spec`.
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

The latent's inputs come from the model's `keras_gen.latent_spec.LatentSpec`: one input per latent part, named
after it (``z`` for the one-part latent of most models; InfoGAN-style models add their codes, int32 for a
categorical part). ``sample`` draws the parts with `LatentSpec.sample` (``z = keras_gen.rng.normal((n, *D),
seed=[seed, 0])`` for a standard normal ``z``, ``rng.uniform`` for the PixelCNN models, whose latent is Gumbel-max
noise), the draw `GenerativeModel.generate(n, seed=seed)` makes, so it reproduces ``model.generate(n, labels,
seed)`` exactly, and returns every part beside the samples. A conditional model's ``sample`` takes one label per
sample (the default of `generate`, ``arange(n) % K``, is the caller's to send; `keras_gen.export.load` does it).
It holds stateless random ops, which TFLite cannot convert and ONNX Runtime refuses (``docs/export.md``), so it is a
SavedModel-only endpoint: mobile and ONNX callers draw the parts themselves, by the spec recorded in
``manifest.json`` (`keras_gen.export.load` and the server do), and call ``generate``.

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
    "LatentModelAdapter",
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

    Subclasses call ``__init__`` with the model's description and implement `decode` (``z[, label] -> samples`` as
    a float32 tensor, inference mode, ``z`` as the network takes it); they may add endpoints in `extra_endpoints`.

    Attributes:
        family: ``"gan"``, ``"vae"``, ... (which adapter wrote the export).
        kind: the model's kind (`keras_gen.model_kind.KINDS`), and ``operations`` what it offers.
        model_class: the Python class name of what was exported.
        networks: ``{role: keras.Model or layer}`` of the networks the endpoints use (their weights are exported).
        latent_spec: the model's `keras_gen.latent_spec.LatentSpec`: the parts ``generate`` takes and ``sample``
            draws, and the label; no parts for a model that cannot sample (a VQ-VAE without a prior), which then
            has no ``generate`` / ``sample`` endpoints.
        latent_shape: the network input's shape of one latent, e.g. ``(100,)`` (None without parts).
        num_classes: classes of a conditional model, or None.
        sample_shape: shape of one sample, e.g. ``(28, 28, 1)``.
        value_range: ``(low, high)`` of the samples.
    """

    family = "generic"
    onnx_generate = True
    """Whether ``generate`` converts to ONNX (tf2onnx 1.17 writes an invalid graph for the PixelCNN loop)."""
    quantize_generate = True
    """Whether ``generate`` goes into the fp16 / int8 TFLite files (not when it samples by argmax)."""

    def __init__(self, model_class, networks, latent_spec, sample_shape, value_range=(-1.0, 1.0), kind="latent",
                 operations=None):
        from keras_gen import model_kind
        from keras_gen.latent_spec import LatentSpec

        self.model_class = model_class
        self.networks = dict(networks)
        for role, net in self.networks.items():
            _check_built(net, role)
        self.latent_spec = LatentSpec.from_dict(latent_spec)
        if kind not in model_kind.KINDS:
            raise ValueError(f"Unknown model kind {kind!r}. Valid: {', '.join(model_kind.KINDS)}.")
        self.kind = kind
        self.operations = frozenset(model_kind.KINDS[kind].operations if operations is None else operations)
        self.sample_shape = tuple(int(s) for s in sample_shape)
        self.value_range = (float(value_range[0]), float(value_range[1]))
        if not self.value_range[0] < self.value_range[1]:
            raise ValueError(f"`value_range` must be (low, high) with low < high, got {value_range!r}.")

    @classmethod
    def describing(cls, model, networks):
        """The keyword arguments of `__init__` that describe a keras-gen ``model`` (its spec, kind, operations)."""
        return dict(
            model_class=type(model).__name__,
            networks=networks,
            latent_spec=model.latent_spec,
            sample_shape=model.sample_shape,
            value_range=getattr(model, "value_range", (-1.0, 1.0)),
            kind=model.kind,
            operations=model.operations,
        )

    # ---------------------------------------------------------------- metadata
    @property
    def latent_shape(self):
        return self.latent_spec.network_shape

    @property
    def num_classes(self):
        return self.latent_spec.num_classes

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
        """The model part of the manifest: ``latent`` is the `LatentSpec` (`LatentSpec.to_dict`); ``latent_shape``
        and ``latent_dim`` are the network input's, kept for readers of older manifests."""
        return {
            "kind": self.kind,
            "operations": sorted(self.operations),
            "family": self.family,
            "class": self.model_class,
            "networks": sorted(self.networks),
            "latent": self.latent_spec.to_dict(),
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

    # ---------------------------------------------------------------- specs
    def _specs(self, first):
        import tensorflow as tf

        specs = [first]
        if self.conditional:
            specs.append(tf.TensorSpec((None,), tf.int32, name="label"))
        return tuple(specs)

    def z_specs(self):
        """The inputs of ``generate``: one per latent part (`LatentSpec.tensor_specs`), then the label."""
        return self.latent_spec.tensor_specs()

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

    def check_parts(self, parts):
        """In-graph checks of given latent parts (SavedModel endpoints): classes of categorical parts in range and
        every part with the first one's batch size. Returns the parts with the checks as control dependencies."""
        import tensorflow as tf

        if self.latent_spec.single:
            return parts
        first = next(iter(parts.values()))
        checked = {}
        for part in self.latent_spec.parts:
            value = parts[part.name]
            checks = [tf.debugging.assert_equal(tf.shape(value)[0], tf.shape(first)[0],
                                                message=f"latent parts need one batch size ({part.name})")]
            if part.categorical:
                k = part.params["num_classes"]
                checks += [
                    tf.debugging.assert_non_negative(value, message=f"{part.name} classes must be >= 0"),
                    tf.debugging.assert_less(value, tf.constant(k, tf.int32),
                                             message=f"{part.name} classes must be < {k}"),
                ]
            with tf.control_dependencies(checks):
                checked[part.name] = tf.identity(value)
        return checked

    # ---------------------------------------------------------------- endpoints
    def endpoints(self):
        """All endpoints, in order; the first one is also the SavedModel's ``serving_default``."""
        return self.common_endpoints() + self.extra_endpoints()

    def common_endpoints(self):
        import tensorflow as tf

        spec = self.latent_spec
        if not spec.parts:
            return []
        out = self.output_name
        value_range = self.value_range
        names = spec.names

        def generate_builder(uint8):
            def build(checked):
                def fn(*args):  # the parts in order, then the label of a conditional model
                    parts = dict(zip(names, args))
                    label = args[len(names)] if self.conditional else None
                    if checked:
                        parts = self.check_parts(parts)
                    if checked and label is not None:
                        label = self.check_label(label, tf.shape(args[0])[0])
                    x = self.decode(spec.network_input(parts), label)  # (B, *sample_shape)
                    return {out: uint8_pixels(x, value_range) if uint8 else x}

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
                    parts = spec.sample(n, seed_pair)  # {name: (n, *shape)}, as the model's sample_latent draws
                    x = self.decode(spec.network_input(parts), label)
                    return {out: uint8_pixels(x, value_range) if uint8 else x, **parts}

                if not self.conditional:
                    return lambda n, seed: draw(n, seed, None)
                return draw

            return build

        flags = {"onnx": self.onnx_generate, "fp16": self.quantize_generate}
        sampled = (out,) + names
        endpoints = [
            Endpoint("generate", self.z_specs(), (out,), generate_builder(False), int8=self.quantize_generate, **flags)
        ]
        if self.is_image:
            endpoints.append(
                Endpoint("generate_uint8", self.z_specs(), (out,), generate_builder(True), uint8=True, **flags)
            )
        endpoints.append(Endpoint("sample", self.sample_specs(), sampled, sample_builder(False), random=True))
        if self.is_image:
            endpoints.append(
                Endpoint("sample_uint8", self.sample_specs(), sampled, sample_builder(True), random=True, uint8=True)
            )
        return endpoints

    def aliases(self):
        """``{alias: endpoint}``: extra SavedModel signature names for an endpoint."""
        return {}

    # ---------------------------------------------------------------- inputs for parity checks
    def example_inputs(self, endpoint, batch, seed):
        """NumPy inputs of ``endpoint`` for a batch of ``batch``: latent parts from their distributions, random
        labels, images uniform in the value range; ``n = batch`` and a seed for ``sample``."""
        generator = np.random.default_rng(seed)
        inputs = {}
        parts = {part.name: part for part in self.latent_spec.parts}
        for spec in endpoint.inputs:
            if spec.name in parts:
                inputs[spec.name] = parts[spec.name].example(batch, generator)
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
            if set(self.latent_spec.names) & set(item):
                drawn = self.latent_spec.sample(batch, seed + i)
                item.update({name: np.asarray(value) for name, value in drawn.items() if name in item})
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
        latent_spec: the `LatentSpec` of ``z`` (default: one standard normal part of the generator's input shape,
            and the label when ``num_classes`` is set).
        kind, operations: the model's (default: a ``"latent"`` model that samples).
    """

    family = "gan"

    def __init__(self, generator, num_classes=None, value_range=(-1.0, 1.0), model_class=None, latent_spec=None,
                 kind="latent", operations=None):
        from keras_gen.latent_spec import Condition, LatentSpec

        _check_built(generator, "generator")
        expected = 1 if num_classes is None else 2
        if len(generator.inputs) != expected:
            raise ValueError(
                f"The generator takes {len(generator.inputs)} input(s); with num_classes={num_classes!r} it should "
                f"take {expected} (z{'' if num_classes is None else ', label'})."
            )
        if len(generator.outputs) != 1:
            raise ValueError(f"The generator must have one output, it has {len(generator.outputs)}.")
        if latent_spec is None:
            label = () if num_classes is None else (Condition("label", "label", num_classes=num_classes),)
            latent_spec = LatentSpec.normal(tuple(generator.inputs[0].shape[1:]), conditions=label)
        self.generator = generator
        super().__init__(
            model_class or type(generator).__name__,
            {"generator": generator},
            latent_spec=latent_spec,
            sample_shape=generator.outputs[0].shape[1:],
            value_range=value_range,
            kind=kind,
            operations=operations,
        )

    @classmethod
    def from_model(cls, model):
        return cls(
            model.generator,
            num_classes=model.num_classes,
            value_range=getattr(model, "value_range", (-1.0, 1.0)),
            model_class=type(model).__name__,
            latent_spec=model.latent_spec,
            kind=model.kind,
            operations=model.operations,
        )

    def decode(self, z, label):
        import tensorflow as tf

        inputs = z if label is None else [z, label]
        return tf.cast(self.generator(inputs, training=False), tf.float32)


class LatentModelAdapter(ModelAdapter):
    """Any keras-gen model that samples from a latent (`GenerativeModel`): ``decode`` is the model's own
    `decode_latent`, in float32, and the endpoints are the common ones, from its `latent_spec`. The adapter of a
    model kind that no family adapter specializes, so a new model exports without writing one.

    Args:
        model: the model.
        networks: ``{role: network}`` whose weights the endpoints use (default: the model's
            `GenerativeModel.inference_networks`).
    """

    family = "latent"

    def __init__(self, model, networks=None):
        self.model = model
        super().__init__(**self.describing(model, model.inference_networks() if networks is None else networks))

    @classmethod
    def from_model(cls, model):
        return cls(model)

    def decode(self, z, label):
        import tensorflow as tf

        return tf.cast(self.model.decode_latent(z, label), tf.float32)


class VAEAdapter(LatentModelAdapter):
    """A VAE's decoder (``generate``, ``sample``, alias ``decode``) and encoder (``encode``, ``reconstruct``).

    The functions are the model's own tensor functions, `VAE.decode_latent` (decoder, then the likelihood's
    mapping to images: ``2 sigmoid(logits) - 1`` or clipped means) and `VAE.posterior` (encoder -> mean, log
    variance), so the exported graphs hold the two networks and those few ops, nothing of training.
    """

    family = "vae"

    def __init__(self, model):
        super().__init__(model, {"decoder": model.decoder, "encoder": model.encoder})

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


class VQVAEAdapter(LatentModelAdapter):
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

    family = "vqvae"
    onnx_generate = False
    quantize_generate = False

    def __init__(self, model):
        networks = {"encoder": model.encoder, "decoder": model.decoder, "quantizer": model.quantizer}
        if model.prior is not None:
            networks["prior"] = model.prior.network
        self.code_shape = tuple(int(s) for s in model.code_shape[:2])
        self.num_codes = int(model.num_codes)
        super().__init__(model, networks)

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


class PixelCNNAdapter(LatentModelAdapter):
    """A PixelCNN: ``generate`` runs its compiled sampling loop on given Gumbel-max noise ``z`` ``(B, H, W, L)``
    (uniform, as `PixelCNN.sample_latent` draws it) and maps the levels to images. SavedModel and TFLite only:
    tf2onnx 1.17 cannot convert the loop, and the argmax of the loop does not survive int8 quantization."""

    family = "pixelcnn"
    onnx_generate = False
    quantize_generate = False

    def __init__(self, model):
        super().__init__(model, {"pixel_cnn": model.network})


_ADAPTERS = {"GAN": GANAdapter, "VAE": VAEAdapter, "VQVAE": VQVAEAdapter, "PixelCNN": PixelCNNAdapter}
"""Family adapters, by model class name (looked up along the class's MRO): models with endpoints of their own."""

_KIND_ADAPTERS = {"latent": LatentModelAdapter, "coded": LatentModelAdapter}
"""The adapter of a model of each kind (`keras_gen.model_kind.KINDS`) that no family adapter specializes."""


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
        adapter = _KIND_ADAPTERS.get(model.kind)
        if adapter is None:
            raise ValueError(
                f"No exporter knows {model.kind!r} models such as {type(model).__name__} yet (families: "
                f"{', '.join(sorted(_ADAPTERS))}; kinds: {', '.join(sorted(_KIND_ADAPTERS))}); write a ModelAdapter "
                "for it and `register_adapter` it."
            )
        return adapter.from_model(model)
    # A bare network: treat it as a generator.
    return GANAdapter(model, num_classes=num_classes)
