"""MobileNet-V2-style classifiers in the form XNNPACK can run sparse.

Inverted residual blocks (Sandler et al. 2018): a 1x1 expansion convolution
(6x the input channels, none in the first block), a 3x3 depthwise
convolution, and a linear 1x1 projection (no activation after it), with a
residual `Add` when the block keeps stride 1 and its channel count; the
standard (t, c, n, s) table; a 1x1 head convolution to 1280 channels, global
average pooling and a dense classifier. Channels are rounded like Keras'
`MobileNetV2` (multiples of 8, never below 90% of the exact value).

XNNPACK's sparse (NCHW) path needs symmetric padding (see
`shared/design/xnnpack-sparse.md`): Keras' `padding="same"` on a stride-2
layer pads 0 before and 1 after on even sizes, and Keras Applications'
`MobileNetV2` pads `((0, 1), (0, 1))`, both of which keep the path off. So
the stem and every stride-2 depthwise are `ZeroPadding2D(1)` followed by
`padding="valid"`; stride-1 depthwise layers use `padding="same"`, which is
symmetric for 3x3.

Layer names (N = 1..17, block 1 being the t=1 block):
`stem_conv`; `blockN_expand` (1x1 expansion, absent in block 1),
`blockN_dw` (depthwise), `blockN_project` (1x1 linear bottleneck),
`blockN_add` (residual); `head_pw` (the 1x1 head convolution); `logits`.
Batch normalizations and activations take the layer's name plus `_bn` and
`_relu`. The 1x1 convolutions, the weights XNNPACK runs sparse, are the
layers whose names end in `_expand`, `_project` or `_pw`
(`pointwise_layers(model)`).

Load it from the command line as `models/mobilenet_v2.py:mobilenet_v2`.

Example:

>>> model = mobilenet_v2(input_shape=(32, 32, 3), num_classes=10, width=0.35)
>>> model.output_shape
(None, 10)
>>> pointwise_layers(model)[:3]
['block1_project', 'block2_expand', 'block2_project']
"""

import keras
from keras import layers

# (expansion t, output channels c at width 1.0, repeats n, first stride s).
BLOCKS = (
    (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
    (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1),
)
HEAD_FILTERS = 1280
POINTWISE_SUFFIXES = ("_expand", "_project", "_pw")


def _make_divisible(value, divisor=8):
    """Keras' `MobileNetV2` rounding: a multiple of `divisor`, at least 90% of `value`."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _bn(x, name):
    return layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)


def _bn_relu(x, name):
    return layers.ReLU(6.0, name=f"{name}_relu")(_bn(x, name))


def _inverted_residual(x, expansion, filters, stride, name):
    in_channels = x.shape[-1]
    y = x
    if expansion != 1:
        y = layers.Conv2D(in_channels * expansion, 1, use_bias=False, name=f"{name}_expand")(y)
        y = _bn_relu(y, f"{name}_expand")
    if stride == 2:
        y = layers.ZeroPadding2D(1, name=f"{name}_pad")(y)
    y = layers.DepthwiseConv2D(
        3, strides=stride, padding="valid" if stride == 2 else "same", use_bias=False, name=f"{name}_dw"
    )(y)
    y = _bn_relu(y, f"{name}_dw")
    y = layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_project")(y)
    y = _bn(y, f"{name}_project")  # linear bottleneck: no activation
    if stride == 1 and in_channels == filters:
        y = layers.Add(name=f"{name}_add")([x, y])
    return y


def mobilenet_v2(input_shape=(224, 224, 3), num_classes=1000, width=1.0, dropout=0.2, min_feature_size=2):
    """Builds the network.

    Args:
        input_shape: `(height, width, 3)`. Defaults to `(224, 224, 3)`.
        num_classes: Output units (logits). Defaults to `1000`.
        width: Width multiplier of every layer but the head, which keeps
            1280 channels unless `width > 1` (as in Keras' `MobileNetV2`).
            Defaults to `1.0`.
        dropout: Dropout rate before the classifier (0 for none). Defaults
            to `0.2`.
        min_feature_size: A stride-2 block that would shrink the feature map
            below this size keeps stride 1. At 2 (the default) the global
            average pooling always sees at least a 2x2 map, so it survives
            conversion as the `MEAN` that ends XNNPACK's sparse region (on a
            1x1 map the converter folds it away and the sparse path cannot
            fire).

    Returns:
        A functional `keras.Model` with outputs as logits.

    Raises:
        ValueError: if `input_shape` does not have 3 channels.
    """
    if input_shape[-1] != 3:
        raise ValueError(
            "Invalid value received for argument `input_shape`. XNNPACK's sparse "
            "path needs a stem over 3 channels; replicate grayscale images to 3 "
            f"channels. Received: input_shape={input_shape}"
        )
    inputs = keras.Input(input_shape, name="image")
    x = layers.ZeroPadding2D(1, name="stem_pad")(inputs)
    x = layers.Conv2D(_make_divisible(32 * width), 3, strides=2, use_bias=False, name="stem_conv")(x)
    x = _bn_relu(x, "stem")
    size = min(input_shape[0], input_shape[1]) // 2
    index = 0
    for expansion, channels, repeats, first_stride in BLOCKS:
        filters = _make_divisible(channels * width)
        for repeat in range(repeats):
            index += 1
            stride = first_stride if repeat == 0 else 1
            if stride == 2 and (size + 1) // 2 < min_feature_size:
                stride = 1
            size = (size + 1) // 2 if stride == 2 else size
            x = _inverted_residual(x, expansion, filters, stride, f"block{index}")
    head = _make_divisible(HEAD_FILTERS * width) if width > 1.0 else HEAD_FILTERS
    x = layers.Conv2D(head, 1, use_bias=False, name="head_pw")(x)
    x = _bn_relu(x, "head_pw")
    x = layers.GlobalAveragePooling2D(keepdims=True, name="pool")(x)
    x = layers.Flatten(name="flatten")(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name=f"mobilenet_v2_{width:g}")


def pointwise_layers(model):
    """Names of the 1x1 convolutions (the weights XNNPACK runs sparse)."""
    return [layer.name for layer in model.layers if layer.name.endswith(POINTWISE_SUFFIXES)]
