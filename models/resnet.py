"""Small CIFAR-style ResNet classifiers (He et al. 2016, section 4.2).

A 3x3 Conv-BN-ReLU stem, then one stage per entry of `blocks`, each made
of that many basic residual blocks: two 3x3 convolutions (Conv-BN-ReLU,
Conv-BN) added to the block's input, then a ReLU. The first stage keeps the
stem's resolution, every later stage halves it in its first block and
doubles the channels (16, 32, 64, ... at width 1.0); where a block changes
the shape, its shortcut is a 1x1 projection convolution (stride 2 where
the block downsamples) with its BatchNormalization, else the identity. A
global average pooling and a dense classifier end the network. With
`blocks=(2, 2, 2)` this is a ResNet-14 (3 stages of 2 blocks); `(3, 3, 3)`
is the paper's ResNet-20.

The residual `Add`s tie channels together: the stem, the second
convolution of every block of a stage and that stage's projection must
keep the same channels, so channel pruning (`tfsparse.get_strategy
("channel")`) removes them as one group per stage, and the first
convolution of each block as a group of its own.

Layer names (S = stage 1.., B = block 1.. within the stage): `stem_conv`;
`stageS_blockB_conv1`, `stageS_blockB_conv2`, `stageS_blockB_shortcut`
(the projection, only where the shape changes), `stageS_blockB_add`
(the residual `Add`) and `stageS_blockB_relu` (after it); `pool`;
`logits`. Batch normalizations and the ReLUs inside a block take the
convolution's name plus `_bn` and `_relu`.

Load it from the command line as `models/resnet.py:resnet`.

Example:

>>> model = resnet(input_shape=(32, 32, 3), num_classes=10, width=0.5)
>>> model.output_shape
(None, 10)
>>> [layer.name for layer in model.layers if layer.name.endswith("_add")][:3]
['stage1_block1_add', 'stage1_block2_add', 'stage2_block1_add']
"""

import keras
from keras import layers

BASE_FILTERS = 16  # channels of the stem and the first stage at width 1.0


def _filters(base, width):
    return max(8, int(base * width + 4) // 8 * 8)


def _invalid(argument, expected, value):
    return ValueError(
        f"Invalid value received for argument `{argument}`. Expected {expected}. Received: {argument}={value!r}"
    )


def _conv_bn(x, filters, kernel_size, stride, name, relu=True):
    x = layers.Conv2D(filters, kernel_size, strides=stride, padding="same", use_bias=False, name=name)(x)
    x = layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x) if relu else x


def _basic_block(x, filters, stride, name):
    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        shortcut = _conv_bn(x, filters, 1, stride, f"{name}_shortcut", relu=False)
    y = _conv_bn(x, filters, 3, stride, f"{name}_conv1")
    y = _conv_bn(y, filters, 3, 1, f"{name}_conv2", relu=False)
    y = layers.Add(name=f"{name}_add")([shortcut, y])
    return layers.ReLU(name=f"{name}_relu")(y)


def resnet(input_shape=(32, 32, 3), num_classes=10, width=1.0, blocks=(2, 2, 2), dropout=0.0):
    """Builds the network.

    Args:
        input_shape: `(height, width, channels)`. Defaults to `(32, 32, 3)`.
        num_classes: Output units (logits). Defaults to `10`.
        width: Width multiplier (channels are rounded to multiples of 8, at
            least 8). Defaults to `1.0`: 16, 32, 64, ... channels.
        blocks: Basic blocks per stage, one entry per stage. Defaults to
            `(2, 2, 2)` (ResNet-14).
        dropout: Dropout rate before the classifier (0 for none). Defaults
            to `0.0`.

    Returns:
        A functional `keras.Model` with outputs as logits.

    Raises:
        ValueError: for an `input_shape` that is not `(height, width,
            channels)`, `num_classes` below 1, a `width` that is not
            positive, `blocks` that is not a non-empty sequence of positive
            integers, or a `dropout` outside [0, 1).
    """
    if len(tuple(input_shape)) != 3 or any(not isinstance(d, int) or d < 1 for d in input_shape):
        raise _invalid("input_shape", "(height, width, channels), positive integers", input_shape)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise _invalid("num_classes", "an integer >= 1", num_classes)
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not width > 0:
        raise _invalid("width", "a positive number", width)
    if (isinstance(blocks, (str, bytes)) or not hasattr(blocks, "__len__") or not len(blocks)
            or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in blocks)):
        raise _invalid("blocks", "a non-empty sequence of positive integers (blocks per stage), e.g. (2, 2, 2)",
                       blocks)
    if not 0 <= dropout < 1:
        raise _invalid("dropout", "a rate in [0, 1)", dropout)
    inputs = keras.Input(tuple(input_shape), name="image")
    x = _conv_bn(inputs, _filters(BASE_FILTERS, width), 3, 1, "stem_conv")
    for stage, repeats in enumerate(blocks, start=1):
        filters = _filters(BASE_FILTERS * 2 ** (stage - 1), width)
        for block in range(1, repeats + 1):
            stride = 2 if stage > 1 and block == 1 else 1
            x = _basic_block(x, filters, stride, f"stage{stage}_block{block}")
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, name="logits")(x)
    depth = 2 * sum(blocks) + 2
    return keras.Model(inputs, outputs, name=f"resnet{depth}_{width:g}")
