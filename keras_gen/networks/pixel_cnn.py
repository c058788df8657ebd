"""PixelCNN networks: masked convolutions, gated residual blocks, an optional per-class bias.

PixelCNN (van den Oord et al. 2016, https://arxiv.org/abs/1601.06759 and the gated, conditional version
https://arxiv.org/abs/1606.05328) models an image of categorical pixels autoregressively in raster order,

    p(x | y) = prod_i p(x_i | x_<i, y),

with convolutions whose kernels are masked so that the logits at pixel ``i`` see only the pixels before ``i``:

- a **type A** mask (first layer) hides the centre and everything after it: the output at ``i`` does not
  depend on ``x_i`` nor on any later pixel;
- a **type B** mask (later layers) also lets the centre through: the hidden features at ``i`` already depend
  only on ``x_<i``, so passing them on keeps the property.

For a ``k x k`` kernel with centre ``c = k // 2`` the mask keeps the rows above the centre and, in the centre
row, the columns left of the centre (type A) or up to and including it (type B)::

    type A, k=5       type B, k=5
    1 1 1 1 1         1 1 1 1 1
    1 1 1 1 1         1 1 1 1 1
    1 1 0 0 0         1 1 1 0 0
    0 0 0 0 0         0 0 0 0 0
    0 0 0 0 0         0 0 0 0 0

Every pixel holds one categorical variable (binary pixels, grey levels, or VQ-VAE code indices), so there is
no masking between colour channels. This is the single-stack PixelCNN with the gated activations of
van den Oord et al. 2016b; it keeps the "blind spot" (pixels up and to the right outside the stacked
receptive field are not seen) that the two-stack (vertical/horizontal) variant removes.

The network takes the one-hot encoding of the pixels, ``(B, H, W, L)`` float, so its causality can be checked
with gradients, and returns logits ``(B, H, W, L)`` in float32 (also under mixed precision).
"""

import keras
import numpy as np
from keras import ops

from keras_gen import checks

__all__ = ["MaskedConv2D", "GatedActivation", "causal_mask", "pixel_cnn"]

MASK_TYPES = ("A", "B")


def causal_mask(kernel_size, mask_type):
    """The ``(k, k)`` NumPy 0/1 mask of a PixelCNN convolution (see the module docstring).

    Args:
        kernel_size: odd kernel side ``k``.
        mask_type: ``"A"`` (hides the centre) or ``"B"`` (keeps it).
    """
    if mask_type not in MASK_TYPES:
        raise ValueError(f"`mask_type` must be 'A' or 'B', got {mask_type!r}.")
    k = int(kernel_size)
    if k < 1 or k % 2 == 0:
        raise ValueError(f"A masked convolution needs an odd kernel size, got {kernel_size!r}.")
    c = k // 2
    mask = np.zeros((k, k), dtype="float32")
    mask[:c, :] = 1.0
    mask[c, : c + (1 if mask_type == "B" else 0)] = 1.0
    return mask


@keras.saving.register_keras_serializable(package="keras_gen")
class MaskedConv2D(keras.layers.Conv2D):
    """A ``same``-padded, stride-1 `Conv2D` whose kernel is multiplied by a PixelCNN `causal_mask`.

    ``y = conv(x, W * M)`` with ``M`` of shape ``(k, k, 1, 1)`` broadcast over the channels: the masked taps
    receive no gradient and never influence the output.

    Args:
        filters: output channels.
        kernel_size: an odd int (square kernels only).
        mask_type: ``"A"`` for the first layer, ``"B"`` after it.
        **kwargs: other `keras.layers.Conv2D` arguments (``activation``, ``use_bias``, initializers, ...);
            ``strides``, ``padding`` and ``dilation_rate`` are fixed.
    """

    def __init__(self, filters, kernel_size, mask_type="B", **kwargs):
        fixed = {"strides": (1, (1, 1), [1, 1]), "padding": ("same",), "dilation_rate": (1, (1, 1), [1, 1]),
                 "groups": (1,), "data_format": (None, "channels_last")}
        for arg, allowed in fixed.items():
            if arg in kwargs and kwargs.pop(arg) not in allowed:
                raise ValueError(f"MaskedConv2D fixes `{arg}` to {allowed[0]!r} (channels_last, same, stride 1).")
        if isinstance(kernel_size, (tuple, list)):
            if len(kernel_size) != 2 or kernel_size[0] != kernel_size[1]:
                raise ValueError(f"MaskedConv2D needs a square kernel, got {kernel_size!r}.")
            kernel_size = kernel_size[0]
        mask = causal_mask(kernel_size, mask_type)[:, :, None, None]  # (k, k, 1, 1); validates both
        super().__init__(filters, int(kernel_size), padding="same", data_format="channels_last", **kwargs)
        self.mask_type = mask_type
        self._mask = mask

    def convolution_op(self, inputs, kernel):
        return super().convolution_op(inputs, kernel * ops.cast(self._mask, kernel.dtype))

    def get_config(self):
        config = super().get_config()
        for fixed in ("strides", "padding", "dilation_rate", "data_format", "groups"):
            config.pop(fixed, None)
        config["mask_type"] = self.mask_type
        return config


@keras.saving.register_keras_serializable(package="keras_gen")
class GatedActivation(keras.layers.Layer):
    """The gated unit of the conditional PixelCNN: ``tanh(f + b_f) * sigmoid(g + b_g)``.

    Called on ``a`` of shape ``(B, H, W, 2C)`` (``f`` and ``g`` are its two halves) or on ``[a, bias]`` with a
    per-sample conditioning bias ``(B, 2C)`` (the class embedding) broadcast over the pixels. Returns
    ``(B, H, W, C)``.
    """

    def call(self, inputs):
        if isinstance(inputs, (list, tuple)):
            a, bias = inputs
            a = a + ops.cast(bias, a.dtype)[:, None, None, :]  # (B, 2C) -> (B, 1, 1, 2C)
        else:
            a = inputs
        f, g = ops.split(a, 2, axis=-1)
        return ops.tanh(f) * ops.sigmoid(g)

    def compute_output_shape(self, input_shape):
        conditioned = isinstance(input_shape, (list, tuple)) and isinstance(input_shape[0], (list, tuple))
        shape = input_shape[0] if conditioned else input_shape
        if shape[-1] is None or shape[-1] % 2:
            raise ValueError(f"GatedActivation needs an even number of channels, got shape {tuple(shape)}.")
        return tuple(shape[:-1]) + (shape[-1] // 2,)




def pixel_cnn(
    input_shape,
    num_levels,
    width=64,
    num_blocks=5,
    first_kernel_size=7,
    kernel_size=3,
    head_width=None,
    num_classes=None,
    name="pixel_cnn",
):
    """A gated PixelCNN over ``H x W`` maps of categorical pixels with ``num_levels`` values.

    Layout (widths in parentheses)::

        one-hot (L) -> MaskedConv A k1 (C)
                    -> num_blocks x [ h + Conv1x1(C)( tanh(f) * sigmoid(g) ),
                                      (f, g) = MaskedConv B k (2C)(h) + class bias (2C) ]
                    -> ReLU -> Conv1x1 (head) -> ReLU -> Conv1x1 (L) logits, float32

    The class bias (van den Oord et al. 2016b, https://arxiv.org/abs/1606.05328) is a learned vector per class
    and block, added before the gate; it exists only when ``num_classes`` is set.

    Args:
        input_shape: ``(H, W)`` (a trailing ``1`` is accepted).
        num_levels: values per pixel ``L`` (2 for binarized pixels, K for VQ-VAE codes).
        width: hidden channels ``C``.
        num_blocks: gated residual blocks.
        first_kernel_size: odd kernel of the type-A convolution.
        kernel_size: odd kernel of the blocks' type-B convolutions.
        head_width: channels of the output head (default ``C``).
        num_classes: classes for the conditional model; ``None`` for an unconditional one.
        name: model name.

    Returns:
        A functional `keras.Model`: ``inputs`` one-hot ``(B, H, W, L)`` (and ``label`` ``(B,)`` int32 when
        conditional) -> logits ``(B, H, W, L)``.
    """
    shape = tuple(input_shape)
    if len(shape) == 3 and shape[-1] == 1:
        shape = shape[:2]
    if len(shape) != 2 or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1 for s in shape):
        raise ValueError(f"`input_shape` must be (H, W) with positive ints, got {tuple(input_shape)!r}.")
    num_levels = checks.integer(num_levels, "num_levels", 1)
    if num_levels < 2:
        raise ValueError(f"`num_levels` must be at least 2, got {num_levels}.")
    width = checks.integer(width, "width", 1)
    num_blocks = int(num_blocks)
    if num_blocks < 0:
        raise ValueError(f"`num_blocks` must be >= 0, got {num_blocks!r}.")
    head_width = width if head_width is None else checks.integer(head_width, "head_width", 1)
    if num_classes is not None:
        num_classes = checks.integer(num_classes, "num_classes", 1)

    inputs = keras.Input(shape + (num_levels,), name="inputs")  # (B, H, W, L) one-hot
    model_inputs = [inputs]
    label = None
    if num_classes is not None:
        label = keras.Input((), dtype="int32", name="label")
        model_inputs.append(label)
    h = MaskedConv2D(width, first_kernel_size, mask_type="A", name="conv_a")(inputs)  # (B, H, W, C)
    for i in range(num_blocks):
        a = MaskedConv2D(2 * width, kernel_size, mask_type="B", name=f"block{i}_conv_b")(h)  # (B, H, W, 2C)
        if label is not None:
            bias = keras.layers.Embedding(
                num_classes, 2 * width, embeddings_initializer="zeros", name=f"block{i}_class_bias"
            )(label)  # (B, 2C)
            gated = GatedActivation(name=f"block{i}_gate")([a, bias])
        else:
            gated = GatedActivation(name=f"block{i}_gate")(a)  # (B, H, W, C)
        h = keras.layers.Add(name=f"block{i}_residual")([h, keras.layers.Conv2D(width, 1, name=f"block{i}_out")(gated)])
    h = keras.layers.Activation("relu", name="head_relu0")(h)
    h = keras.layers.Conv2D(head_width, 1, activation="relu", name="head_hidden")(h)
    logits = keras.layers.Conv2D(num_levels, 1, dtype="float32", name="logits")(h)  # (B, H, W, L)
    return keras.Model(model_inputs if label is not None else inputs, logits, name=name)
