"""The CIFAR-style ResNet builder: shapes, residual blocks, parameter count, channel groups, argument errors."""

import keras
import numpy as np
import pytest

import tfsparse
from tfsparse.model_source import load_builder, load_model_source

SPEC = "models/resnet.py:resnet"


def _build(**kwargs):
    return load_model_source(SPEC, **kwargs)


def _expected_params(channels_in, stages, classes):
    """Parameters of the documented architecture: 3x3 convolutions without bias, BN (4 per channel), projections."""
    stem = stages[0][0]
    total = 9 * channels_in * stem + 4 * stem
    previous = stem
    for filters, repeats in stages:
        for block in range(repeats):
            total += 9 * previous * filters + 9 * filters * filters + 2 * 4 * filters
            if previous != filters:
                total += previous * filters + 4 * filters  # the 1x1 projection and its BN
            previous = filters
    return total + previous * classes + classes


def test_default_builder_is_a_cifar_resnet14():
    model = load_builder(SPEC)()
    assert (model.input_shape, model.output_shape) == ((None, 32, 32, 3), (None, 10))
    assert model.name == "resnet14_1"
    # 16, 32, 64 channels: 176,378 parameters (the paper's ResNet-20, blocks=(3, 3, 3), has about 0.27M).
    assert model.count_params() == _expected_params(3, [(16, 2), (32, 2), (64, 2)], 10) == 176_378
    assert load_builder(SPEC)(blocks=(3, 3, 3)).count_params() == pytest.approx(0.27e6, rel=0.02)
    report = tfsparse.flops(model)
    assert report.params == model.count_params()
    assert 20e6 < report.macs < 35e6


def test_shapes_width_and_stage_resolution():
    model = _build(input_shape=(64, 64, 1), num_classes=7, width=0.5, blocks=(1, 1, 1, 1))
    assert model.output_shape == (None, 7)
    assert model.count_params() == _expected_params(1, [(8, 1), (16, 1), (32, 1), (64, 1)], 7)
    # The first stage keeps the input resolution, every later one halves it.
    sizes = [model.get_layer(f"stage{s}_block1_add").output.shape[1:] for s in range(1, 5)]
    assert sizes == [(64, 64, 8), (32, 32, 16), (16, 16, 32), (8, 8, 64)]
    x = np.random.default_rng(0).random((2, 64, 64, 1)).astype("float32")
    assert model.predict(x, verbose=0).shape == (2, 7)


def test_basic_blocks_add_and_project_only_where_the_shape_changes():
    model = _build(blocks=(2, 3, 2))
    adds = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Add)]
    assert len(adds) == 7
    shortcuts = sorted(layer.name for layer in model.layers if layer.name.endswith("_shortcut"))
    assert shortcuts == ["stage2_block1_shortcut", "stage3_block1_shortcut"]
    projection = model.get_layer("stage2_block1_shortcut")
    assert tuple(projection.kernel_size) == (1, 1) and projection.strides == (2, 2)
    add = model.get_layer("stage2_block2_add")
    assert {node.operation.name for node in add._inbound_nodes[0].parent_nodes} == {
        "stage2_block1_relu", "stage2_block2_conv2_bn"}  # identity shortcut + Conv-BN
    assert isinstance(model.get_layer("pool"), keras.layers.GlobalAveragePooling2D)
    assert isinstance(model.layers[-1], keras.layers.Dense) and model.layers[-1].name == "logits"


def test_channel_groups_one_per_stage_and_one_per_block():
    groups = tfsparse.graph.trace(_build(width=0.5)).prunable()
    # Each stage's residual stream (stem or projection, every conv2, tied by the Adds), plus each conv1.
    assert len(groups) == 3 + 6
    streams = [g for g in groups if any(name.endswith("_conv2") for name in g.sources)
               and any(name.endswith(("_shortcut", "stem_conv")) for name in g.sources)]
    assert [g.size for g in streams] == [8, 16, 32]


@pytest.mark.parametrize("kwargs, argument", [
    ({"width": 0}, "width"),
    ({"width": -1.0}, "width"),
    ({"blocks": ()}, "blocks"),
    ({"blocks": (2, 0)}, "blocks"),
    ({"blocks": "22"}, "blocks"),
    ({"blocks": (2.0, 2)}, "blocks"),
    ({"num_classes": 0}, "num_classes"),
    ({"input_shape": (32, 32)}, "input_shape"),
    ({"input_shape": (32, 0, 3)}, "input_shape"),
    ({"dropout": 1.0}, "dropout"),
])
def test_bad_arguments_are_named(kwargs, argument):
    with pytest.raises(ValueError, match=rf"Invalid value received for argument `{argument}`"):
        load_builder(SPEC)(**kwargs)
