"""`tfsparse.graph.trace`: the channel groups of Sequential and Functional models, one behaviour per test."""

import keras
import numpy as np
import pytest
from subclassed_model import built_subclassed_model

import tfsparse
from tfsparse.graph import handlers, register_handler, trace

L = keras.layers
INPUT, OUTPUT = "a model input", "a model output"


def _members(group):
    """`{(layer, weight, role): channels list}` of a group."""
    return {(m.layer.name, m.weight_name, m.role): channels.tolist() for m, channels in group.members}


def _group(graph, layer, weight="kernel", role="out"):
    """The group holding `layer`'s `weight` member of `role` (there must be exactly one)."""
    found = [g for g in graph.groups for m, _ in g.members
             if (m.layer.name, m.weight_name, m.role) == (layer, weight, role)]
    assert len(found) == 1, [g.describe() for g in found]
    return found[0]


def _structure(graph):
    """`(size, layers, blocked)` of every group."""
    return [(g.size, g.layers, g.blocked) for g in graph.groups]


@pytest.fixture
def own_handlers(monkeypatch):
    """Handlers registered by the test are forgotten after it."""
    monkeypatch.setattr(handlers, "_HANDLERS", dict(handlers._HANDLERS))


def _head(x, units=2):
    return L.Dense(units, name="head")(L.GlobalAveragePooling2D()(x))


def test_sequential_cnn():
    model = keras.Sequential([
        keras.Input((8, 8, 3)), L.Conv2D(4, 3, name="c1"), L.BatchNormalization(name="bn"), L.ReLU(),
        L.MaxPooling2D(), L.Conv2D(6, 3, name="c2"), L.Flatten(), L.Dense(3, name="head")], name="cnn")
    graph = trace(model)
    assert _structure(graph) == [(3, ("c1",), INPUT), (4, ("c1", "bn", "c2"), None), (6, ("c2", "head"), None),
                                 (3, ("head",), OUTPUT)]
    assert [g.index for g in graph.prunable()] == [1, 2]
    assert graph.groups[1].sources == ("c1",) and graph.groups[2].sources == ("c2",)
    assert set(_members(graph.groups[1])) == {("c1", "kernel", "out"), ("c1", "bias", "out"), ("bn", "gamma", "out"),
                                              ("bn", "beta", "out"), ("bn", "moving_mean", "stat"),
                                              ("bn", "moving_variance", "stat"), ("c2", "kernel", "in")}
    assert graph.summary().splitlines()[0] == "cnn: 4 channel groups, 2 prunable (10 of 16 channels)"


def test_residual_add_couples_two_convolutions():
    inputs = keras.Input((8, 8, 3))
    a = L.Conv2D(4, 1, name="a")(inputs)
    b = L.Conv2D(4, 3, padding="same", name="b")(inputs)
    graph = trace(keras.Model(inputs, _head(L.Add()([a, b]))))
    group = _group(graph, "a")
    assert group is _group(graph, "b") and group.prunable
    assert group.size == 4 and group.sources == ("a", "b") and group.layers == ("a", "b", "head")
    assert _members(group)[("a", "kernel", "out")] == _members(group)[("b", "kernel", "out")] == [0, 1, 2, 3]


def test_concatenate_keeps_groups_apart_and_a_dense_after_it_is_in_both():
    inputs = keras.Input((4, 4, 3))
    a = L.Conv2D(2, 1, name="a")(inputs)
    b = L.Conv2D(3, 1, name="b")(inputs)
    graph = trace(keras.Model(inputs, L.Dense(5, name="dense")(L.Concatenate()([a, b]))))
    group_a, group_b = _group(graph, "a"), _group(graph, "b")
    assert group_a is not group_b and group_a.prunable and group_b.prunable
    assert (group_a.size, group_a.layers) == (2, ("a", "dense"))
    assert (group_b.size, group_b.layers) == (3, ("b", "dense"))
    assert _members(group_a)[("dense", "kernel", "in")] == [0, 1, -1, -1, -1]
    assert _members(group_b)[("dense", "kernel", "in")] == [-1, -1, 0, 1, 2]


def test_squeeze_excitation_couples_the_gate_with_the_conv_channels():
    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(6, 3, activation="relu", name="conv")(inputs)
    s = L.Dense(2, activation="relu", name="squeeze")(L.GlobalAveragePooling2D()(x))
    s = L.Reshape((1, 1, 6))(L.Dense(6, activation="sigmoid", name="excite")(s))
    graph = trace(keras.Model(inputs, _head(L.Multiply()([x, s]))))
    group = _group(graph, "conv")
    assert group is _group(graph, "excite") and group.prunable
    assert group.size == 6 and group.sources == ("conv", "excite")
    assert group.layers == ("conv", "squeeze", "excite", "head")
    members = _members(group)
    assert members[("excite", "kernel", "out")] == members[("conv", "kernel", "out")] == list(range(6))
    assert members[("squeeze", "kernel", "in")] == list(range(6))
    inner = _group(graph, "squeeze")
    assert (inner.size, inner.layers, inner.blocked) == (2, ("squeeze", "excite"), None)


def test_depthwise_with_depth_multiplier_two():
    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(4, 1, name="c1")(inputs)
    x = L.DepthwiseConv2D(3, depth_multiplier=2, name="dw")(x)
    graph = trace(keras.Model(inputs, L.Conv2D(2, 1, name="c2")(x)))
    group = _group(graph, "c1")
    assert (group.size, group.layers, group.blocked) == (4, ("c1", "dw", "c2"), None)
    members = _members(group)
    assert members[("dw", "kernel", "out")] == [0, 1, 2, 3]  # kernel (3, 3, 4, 2): axis 2 is the input channel
    assert members[("dw", "bias", "out")] == members[("c2", "kernel", "in")] == [0, 0, 1, 1, 2, 2, 3, 3]
    assert len(graph.groups) == 3  # the depthwise makes no channels of its own


def test_separable_conv():
    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(4, 1, name="c1")(inputs)
    x = L.SeparableConv2D(5, 3, depth_multiplier=2, name="sep")(x)
    graph = trace(keras.Model(inputs, L.Conv2D(2, 1, name="c2")(x)))
    before, after = _group(graph, "c1"), _group(graph, "sep", "pointwise_kernel")
    assert (before.size, before.layers, before.blocked) == (4, ("c1", "sep"), None)
    assert (after.size, after.layers, after.blocked) == (5, ("sep", "c2"), None)
    members = _members(before)
    assert members[("sep", "depthwise_kernel", "in")] == [0, 1, 2, 3]
    assert members[("sep", "pointwise_kernel", "in")] == [0, 0, 1, 1, 2, 2, 3, 3]


def test_conv2d_transpose():
    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(4, 1, name="c1")(inputs)
    x = L.Conv2DTranspose(5, 3, strides=2, name="up")(x)
    graph = trace(keras.Model(inputs, L.Conv2D(2, 1, name="c2")(x)))
    before, after = _group(graph, "c1"), _group(graph, "up")
    assert (before.size, before.layers, before.blocked) == (4, ("c1", "up"), None)
    assert (after.size, after.layers, after.blocked) == (5, ("up", "c2"), None)
    in_member = next(m for m, _ in before.members if m.layer.name == "up")
    out_member = next(m for m, _ in after.members if m.layer.name == "up" and m.weight_name == "kernel")
    assert (in_member.axis, out_member.axis) == (3, 2)  # a transpose's kernel is [..., out, in]


@pytest.mark.parametrize("conv, input_shape", [(L.Conv1D, (8, 3)), (L.Conv3D, (4, 4, 4, 3))])
def test_conv1d_and_conv3d(conv, input_shape):
    inputs = keras.Input(input_shape)
    x = conv(4, 3, name="c1")(inputs)
    graph = trace(keras.Model(inputs, conv(2, 1, name="c2")(x)))
    assert _structure(graph) == [(3, ("c1",), INPUT), (4, ("c1", "c2"), None), (2, ("c2",), OUTPUT)]
    assert _members(graph.groups[1])[("c2", "kernel", "in")] == [0, 1, 2, 3]


def test_flatten_tiles_the_channels_along_the_dense_rows():
    inputs = keras.Input((2, 2, 3))
    x = L.Conv2D(3, 1, name="conv")(inputs)
    graph = trace(keras.Model(inputs, L.Dense(2, name="dense")(L.Flatten()(x))))
    group = _group(graph, "conv")
    assert (group.size, group.layers, group.blocked) == (3, ("conv", "dense"), None)
    member, channels = next((m, c) for m, c in group.members if m.layer.name == "dense")
    assert (member.weight_name, member.axis, member.role) == ("kernel", 0, "in")
    np.testing.assert_array_equal(channels, np.tile(np.arange(3), 4))


def test_reshape_that_keeps_the_channel_axis():
    inputs = keras.Input((4, 4, 3))
    x = L.Conv2D(4, 1, name="conv")(inputs)
    graph = trace(keras.Model(inputs, L.Dense(2, name="dense")(L.Reshape((16, 4))(x))))
    group = _group(graph, "conv")
    assert (group.size, group.layers, group.blocked) == (4, ("conv", "dense"), None)


def test_reshape_that_moves_the_channel_axis_blocks():
    inputs = keras.Input((4, 4, 3))
    x = L.Conv2D(4, 1, name="conv")(inputs)
    graph = trace(keras.Model(inputs, L.Dense(2, name="dense")(L.Reshape((4, 16), name="reshape")(x))))
    before, after = _group(graph, "conv"), _group(graph, "dense", role="in")
    assert before is not after and (before.size, after.size) == (4, 16)
    for group in (before, after):
        assert "'reshape' (Reshape): it does not keep the channel axis last" in group.blocked
    assert graph.prunable() == []


@pytest.mark.parametrize("keepdims", [True, False])
def test_global_average_pooling(keepdims):
    inputs = keras.Input((4, 4, 3))
    x = L.Conv2D(4, 1, name="conv")(inputs)
    x = L.GlobalAveragePooling2D(keepdims=keepdims)(x)
    graph = trace(keras.Model(inputs, L.Dense(2, name="dense")(x)))
    assert _structure(graph) == [(3, ("conv",), INPUT), (4, ("conv", "dense"), None), (2, ("dense",), OUTPUT)]


def test_layer_normalization_blocks():
    inputs = keras.Input((8, 8, 3))
    x = L.LayerNormalization(name="ln")(L.Conv2D(4, 1, name="c1")(inputs))
    graph = trace(keras.Model(inputs, L.Conv2D(2, 1, name="c2")(x)))
    group = _group(graph, "c1")
    assert (group.size, group.layers) == (4, ("c1", "ln", "c2"))
    assert "'ln' (LayerNormalization) computes statistics over the channel axis" in group.blocked


def test_embedding_output_dimensions_form_a_group():
    inputs = keras.Input((5,), dtype="int32")
    x = L.Embedding(10, 4, name="emb")(inputs)
    graph = trace(keras.Model(inputs, L.Dense(2, name="dense")(L.GlobalAveragePooling1D()(x))))
    group = _group(graph, "emb", "embeddings")
    assert (group.size, group.layers, group.blocked, group.sources) == (4, ("emb", "dense"), None, ("emb",))
    member = next(m for m, _ in group.members if m.layer.name == "emb")
    assert member.axis == 1


def _backbone():
    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(4, 3, activation="relu", name="b_conv1")(inputs)
    return keras.Model(inputs, L.Conv2D(6, 1, name="b_conv2")(x), name="backbone")


def test_nested_functional_model():
    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(5, 1, name="proj")(_backbone()(inputs))
    graph = trace(keras.Model(inputs, _head(x)))
    assert _structure(graph) == [(3, ("b_conv1",), INPUT), (4, ("b_conv1", "b_conv2"), None),
                                 (6, ("b_conv2", "proj"), None), (5, ("proj", "head"), None), (2, ("head",), OUTPUT)]


def test_nested_sequential_model():
    backbone = keras.Sequential([keras.Input((8, 8, 3)), L.Conv2D(4, 3, name="s_conv1"), L.ReLU(),
                                 L.Conv2D(6, 1, name="s_conv2")], name="backbone")
    model = keras.Sequential([keras.Input((8, 8, 3)), backbone, L.GlobalAveragePooling2D(), L.Dense(3, name="head")])
    graph = trace(model)
    assert _structure(graph) == [(3, ("s_conv1",), INPUT), (4, ("s_conv1", "s_conv2"), None),
                                 (6, ("s_conv2", "head"), None), (3, ("head",), OUTPUT)]


def test_shared_layer_called_twice_couples_its_inputs():
    shared = L.Conv2D(4, 1, name="shared")
    first, second = keras.Input((4, 4, 3)), keras.Input((4, 4, 3))
    a = shared(L.Conv2D(3, 1, name="pa")(first))
    b = shared(L.Conv2D(3, 1, name="pb")(second))
    graph = trace(keras.Model([first, second], L.Concatenate()([a, b])))
    group = _group(graph, "pa")
    assert group is _group(graph, "pb") and group.prunable
    assert (group.size, set(group.layers)) == (3, {"pa", "pb", "shared"})
    assert set(group.sources) == {"pa", "pb"}
    assert _members(group)[("shared", "kernel", "in")] == [0, 1, 2]


@pytest.mark.parametrize("order", [
    "relu-first",
    "sigmoid-first",
])
def test_shared_conv_after_sigmoid_in_one_call_blocks_in_any_call_order(order):
    shared = L.Conv2D(2, 3, padding="same", name="shared")
    first, second = keras.Input((8, 8, 3)), keras.Input((8, 8, 3))
    a = L.Conv2D(4, 1, activation="relu", name="pa")(first)
    b = L.Conv2D(4, 1, activation="sigmoid", name="pb")(second)  # a pruned channel holds sigmoid(0) = 0.5
    outputs = [shared(a), shared(b)] if order == "relu-first" else [shared(b), shared(a)]
    graph = trace(keras.Model([first, second], L.Add()(outputs)))
    group = _group(graph, "pa")
    assert group is _group(graph, "pb")
    assert "'shared' (Conv2D) takes channels that hold a non-zero constant when pruned" in (group.blocked or "")


def test_layers_with_the_same_name_in_a_nested_model_stay_apart():
    backbone_in = keras.Input((8, 8, 3))
    backbone = keras.Model(backbone_in, L.Conv2D(4, 1, name="conv")(backbone_in), name="backbone")
    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(5, 1, name="mid")(backbone(inputs))
    graph = trace(keras.Model(inputs, L.Conv2D(2, 1, name="conv")(x)))
    assert [(g.size, g.prunable) for g in graph.groups] == [(3, False), (4, True), (5, True), (2, False)]

class _Doubler(L.Layer):
    def call(self, x):
        return 2.0 * x


def _around(layer):
    inputs = keras.Input((8, 8, 3))
    x = layer(L.Conv2D(4, 1, name="c1")(inputs))
    x = L.Conv2D(5, 1, name="c2")(x)
    return keras.Model(inputs, L.Conv2D(2, 1, name="c3")(x))


def test_unknown_layer_blocks_its_neighbours_and_says_how_to_register_one():
    graph = trace(_around(_Doubler(name="doubler")))
    before, after = _group(graph, "c1"), _group(graph, "c2", role="in")
    assert before is not after and (before.layers, after.layers) == (("c1",), ("c2",))
    for group in (before, after):
        assert "'doubler' (_Doubler): no channel handler" in group.blocked
        assert "tfsparse.graph.register_handler" in group.blocked
    assert [g.layers for g in graph.prunable()] == [("c2", "c3")]  # further groups are not affected


def test_failing_handler_blocks_instead_of_crashing(own_handlers):
    register_handler(_Doubler, lambda layer, inputs, node, builder: 1 / 0)
    graph = trace(_around(_Doubler(name="doubler")))
    assert "'doubler' (_Doubler): its channel handler failed (division by zero)" in _group(graph, "c1").blocked


def test_registered_custom_layer_passes_channels_through(own_handlers):
    register_handler(_Doubler, lambda layer, inputs, node, builder: [inputs[0]])
    graph = trace(_around(_Doubler(name="doubler")))
    assert _structure(graph) == [(3, ("c1",), INPUT), (4, ("c1", "c2"), None), (5, ("c2", "c3"), None),
                                 (2, ("c3",), OUTPUT)]


@pytest.mark.parametrize("layer_cls, handler, argument", [
    (int, lambda *args: None, "layer_cls"),
    ("Dense", lambda *args: None, "layer_cls"),
    (L.Dense(2), lambda *args: None, "layer_cls"),
    (_Doubler, 3, "handler"),
    (_Doubler, None, "handler"),
])
def test_register_handler_rejects_bad_arguments(own_handlers, layer_cls, handler, argument):
    with pytest.raises(ValueError, match=f"Invalid value received for argument `{argument}`"):
        register_handler(layer_cls, handler)


def test_subclassed_model_is_refused_with_a_pointer_to_weight_level_strategies():
    model = built_subclassed_model()
    with pytest.raises(ValueError, match="subclassed model") as error:
        trace(model)
    assert "Weight-level strategies" in str(error.value)


@pytest.mark.parametrize("fused", [False, True], ids=["Activation-layer", "fused-activation"])
@pytest.mark.parametrize("padding, kernel, blocked", [("same", 3, True), ("valid", 3, False), ("same", 1, False)])
def test_sigmoid_before_a_zero_padded_conv_blocks(fused, padding, kernel, blocked):
    inputs = keras.Input((8, 8, 3))
    if fused:
        x = L.Conv2D(4, 1, activation="sigmoid", name="c1")(inputs)
    else:
        x = L.Activation("sigmoid")(L.Conv2D(4, 1, name="c1")(inputs))
    graph = trace(keras.Model(inputs, L.Conv2D(2, kernel, padding=padding, name="c2")(x)))
    group = _group(graph, "c1")
    assert group.layers == ("c1", "c2")
    if blocked:
        assert "'c2' (Conv2D) takes channels that hold a non-zero constant when pruned" in group.blocked
    else:
        assert group.prunable  # sigmoid(0) folds into c2's bias


@pytest.mark.parametrize("fused", [False, True], ids=["Activation-layer", "fused-activation"])
def test_sigmoid_before_a_dense_folds_into_its_bias(fused):
    inputs = keras.Input((8,))
    if fused:
        x = L.Dense(4, activation="sigmoid", name="d1")(inputs)
    else:
        x = L.Activation("sigmoid")(L.Dense(4, name="d1")(inputs))
    graph = trace(keras.Model(inputs, L.Dense(2, name="d2")(x)))
    group = _group(graph, "d1")
    assert (group.size, group.layers, group.blocked) == (4, ("d1", "d2"), None)
    member = next(m for m, _ in group.members if m.layer.name == "d2")
    assert member.bias == "bias"
    np.testing.assert_allclose(member.const, 0.5)


@pytest.mark.parametrize("activation", ["softmax", "log_softmax"])
@pytest.mark.parametrize("fused", [False, True], ids=["Activation-layer", "fused-activation"])
def test_softmax_activation_mixes_channels_and_blocks(fused, activation):
    inputs = keras.Input((8,))
    if fused:
        x = L.Dense(4, activation=activation, name="d1")(inputs)
    else:
        x = L.Activation(activation)(L.Dense(4, name="d1")(inputs))
    graph = trace(keras.Model(inputs, L.Dense(2, name="d2")(x)))
    assert not _group(graph, "d1").prunable


_NORMALIZATION = "'normalization' (Normalization): no channel handler"


@pytest.mark.parametrize("application, allowed", [
    (keras.applications.MobileNetV2, ()),
    (keras.applications.ResNet50, ()),
    (keras.applications.DenseNet121, ()),
    (keras.applications.EfficientNetB0, (_NORMALIZATION,)),
], ids=lambda value: getattr(value, "__name__", None))
def test_keras_applications_trace_with_only_inputs_and_outputs_blocked(application, allowed):
    model = application(weights=None, input_shape=(32, 32, 3), classes=10)
    graph = trace(model)
    assert len(graph.prunable()) >= 20
    reasons = {g.blocked for g in graph.groups if not g.prunable}
    assert {INPUT, OUTPUT} <= reasons
    assert all(reason in (INPUT, OUTPUT) or reason.startswith(allowed) for reason in reasons), reasons
    weighted = {layer.name for layer in model.layers if layer.weights and not isinstance(layer, L.Normalization)}
    assert weighted <= {name for g in graph.groups for name in g.layers}  # every weight is in a group
    assert tfsparse.flops(model).params == model.count_params()
