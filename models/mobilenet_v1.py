"""MobileNet-V1-style classifiers in the form XNNPACK can run sparse.

XNNPACK's sparse (NCHW) path needs: a 3x3 stride-2 stem convolution with
exactly one pixel of padding on every side over 3 input channels; inside the
region only 1x1 convolutions, 3x3 depthwise convolutions with symmetric
padding, and elementwise ops; and a global average pooling at the end. Keras'
`padding="same"` on a stride-2 layer pads 0 before and 1 after on even sizes,
which breaks the rule, so every stride-2 layer here is `ZeroPadding2D(1)`
followed by `padding="valid"`.

Load it from the command line as `models/mobilenet_v1.py:mobilenet_v1`.

Example:

>>> model = mobilenet_v1(input_shape=(32, 32, 3), num_classes=10, width=0.25)
>>> model.output_shape
(None, 10)
"""

import keras
from keras import layers

# (pointwise filters at width 1.0, depthwise stride) for the 13 blocks.
BLOCKS = (
    (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1),
)


def _filters(base, width):
    return max(8, int(base * width + 4) // 8 * 8)


def _bn_relu(x, name):
    x = layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
    return layers.ReLU(6.0, name=f"{name}_relu")(x)


def mobilenet_v1(input_shape=(32, 32, 3), num_classes=10, width=1.0, dropout=0.1, blocks=13, min_feature_size=2):
    """Builds the network.

    Args:
        input_shape: `(height, width, 3)`. Defaults to `(32, 32, 3)`.
        num_classes: Output units (logits). Defaults to `10`.
        width: Width multiplier (channels are rounded to multiples of 8).
            Defaults to `1.0`.
        dropout: Dropout rate before the classifier. Defaults to `0.1`.
        blocks: How many of the 13 depthwise-separable blocks to use.
            Defaults to `13`.
        min_feature_size: A stride-2 block that would shrink the feature map
            below this size keeps stride 1. At 2 (the default) a 32x32 input
            ends on a 2x2 map, so the global average pooling survives
            conversion as the `MEAN` that ends XNNPACK's sparse region (on a
            1x1 map the converter folds it away and the sparse path cannot
            fire).

    Returns:
        A functional `keras.Model` with outputs as logits.
    """
    if input_shape[-1] != 3:
        raise ValueError(
            "Invalid value received for argument `input_shape`. XNNPACK's sparse "
            "path needs a stem over 3 channels; replicate grayscale images to 3 "
            f"channels. Received: input_shape={input_shape}"
        )
    inputs = keras.Input(input_shape, name="image")
    x = layers.ZeroPadding2D(1, name="stem_pad")(inputs)
    x = layers.Conv2D(_filters(32, width), 3, strides=2, use_bias=False, name="stem_conv")(x)
    x = _bn_relu(x, "stem")
    size = min(input_shape[0], input_shape[1]) // 2
    for index, (filters, stride) in enumerate(BLOCKS[:blocks], start=1):
        name = f"block{index}"
        if stride == 2 and (size + 1) // 2 < min_feature_size:
            stride = 1
        size = (size + 1) // 2 if stride == 2 else size
        if stride == 2:
            x = layers.ZeroPadding2D(1, name=f"{name}_pad")(x)
        x = layers.DepthwiseConv2D(
            3, strides=stride, padding="valid" if stride == 2 else "same", use_bias=False, name=f"{name}_dw"
        )(x)
        x = _bn_relu(x, f"{name}_dw")
        x = layers.Conv2D(_filters(filters, width), 1, use_bias=False, name=f"{name}_pw")(x)
        x = _bn_relu(x, f"{name}_pw")
    x = layers.GlobalAveragePooling2D(keepdims=True, name="pool")(x)
    x = layers.Flatten(name="flatten")(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name=f"mobilenet_v1_{width:g}")


def pointwise_layers(model):
    """Names of the 1x1 convolutions (the weights XNNPACK runs sparse)."""
    return [layer.name for layer in model.layers if layer.name.endswith("_pw")]
