"""`make_compatible`: asymmetric stride-2 SAME padding rewritten as ZeroPadding2D + 'valid'.

Explicit ZeroPadding2D + 'valid' pairs, nested models, squeeze-and-excitation gates and Keras Applications are
in test_make_compatible_applications.py.
"""

import warnings

import keras
import numpy as np
import pytest

import tfsparse
from tfsparse import masks
from tfsparse.xnnpack import lint
from tfsparse.xnnpack.compatible import make_compatible

L = keras.layers
REWROTE = "rewrote .* before pruning and fine-tuning"


def _strided(layer_class, name, explicit_padding, kernel=3, **kwargs):
    """A stride-2 layer with SAME padding, or the ZeroPadding2D + 'valid' form make_compatible should produce."""
    if not explicit_padding:
        return [layer_class(kernel_size=kernel, strides=2, padding="same", name=name, **kwargs)]
    return [L.ZeroPadding2D(kernel // 2, name=f"{name}_xnnpack_pad"),
            layer_class(kernel_size=kernel, strides=2, padding="valid", name=name, **kwargs)]


def _mobilenet_like(explicit_padding=False, size=32):
    inputs = keras.Input((size, size, 3), name="image")
    x = inputs
    for layer in [*_strided(L.Conv2D, "stem", explicit_padding, filters=8),
                  L.BatchNormalization(name="stem_bn"), L.ReLU(name="stem_relu"),
                  *_strided(L.DepthwiseConv2D, "dw", explicit_padding),
                  L.Conv2D(16, 1, activation="relu", name="pw"),
                  *_strided(L.SeparableConv2D, "sep", explicit_padding, kernel=5, filters=16),
                  L.GlobalAveragePooling2D(name="pool"), L.Dense(10, name="logits")]:
        x = layer(x)
    return keras.Model(inputs, x, name="mobilenet_like")


def _residual(explicit_padding=False, size=16):
    inputs = keras.Input((size, size, 3), name="image")
    x = L.Conv2D(8, 1, name="expand")(inputs)
    for layer in _strided(L.Conv2D, "stem", explicit_padding, filters=8):
        x = layer(x)
    y = L.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = L.Add(name="add")([x, y])
    shortcut = L.MaxPooling2D(name="shortcut")(x)
    for layer in _strided(L.DepthwiseConv2D, "dw_down", explicit_padding):
        x = layer(x)
    x = L.Concatenate(name="concat")([shortcut, x])
    return keras.Model(inputs, L.Conv2D(4, 1, name="head")(x), name="residual")


def _randomize(model):
    """Non-trivial weights everywhere, BatchNormalization moving statistics included."""
    rng = np.random.default_rng(1)
    for variable in model.weights:
        value = rng.normal(size=variable.shape).astype("float32")
        variable.assign(np.abs(value) + 0.5 if "variance" in variable.path else value)
    return model


def _copy_weights_by_name(source, target):
    for layer in target.layers:
        if layer.weights:
            layer.set_weights(source.get_layer(layer.name).get_weights())
    return target


def _input(model, batch=2):
    return np.random.default_rng(2).normal(size=(batch, *model.input.shape[1:])).astype("float32")


def _rewrite(model, match=REWROTE):
    with pytest.warns(UserWarning, match=match):
        return make_compatible(model)


def test_mobilenet_like_stride_2_layers_become_explicit_padding():
    model = _randomize(_mobilenet_like())
    compatible = _rewrite(model, match=r"'stem' \(padded \(0, 1, 0, 1\), now \(1, 1, 1, 1\)\).*'dw'.*'sep'")
    reference = _mobilenet_like(explicit_padding=True)

    assert compatible.name == model.name
    assert [(type(layer), layer.name) for layer in compatible.layers] == [
        (type(layer), layer.name) for layer in reference.layers]
    for name, kernel in (("stem", 3), ("dw", 3), ("sep", 5)):
        assert compatible.get_layer(name).padding == "valid"
        assert compatible.get_layer(f"{name}_xnnpack_pad").padding == ((kernel // 2,) * 2,) * 2
    for layer in model.layers[1:]:
        clone = compatible.get_layer(layer.name)
        assert clone.output.shape == layer.output.shape
        for weight, copied in zip(layer.get_weights(), clone.get_weights(), strict=True):
            np.testing.assert_array_equal(weight, copied)

    x = _input(model)
    expected = _copy_weights_by_name(model, reference)(x)
    np.testing.assert_allclose(compatible(x), expected, rtol=1e-5, atol=1e-5)
    assert not np.allclose(compatible(x), model(x), atol=1e-3)  # the one-pixel shift changes the function


def test_a_single_layer_computes_the_original_on_a_shifted_input():
    """With the last row and column zero, the rewrite equals SAME on the input moved down-right by one pixel."""
    inputs = keras.Input((16, 16, 3))
    model = keras.Model(inputs, L.Conv2D(4, 3, strides=2, padding="same")(inputs))
    compatible = _rewrite(model)
    x = _input(model)
    x[:, -1, :, :] = 0.0
    x[:, :, -1, :] = 0.0
    shifted = np.roll(x, shift=(1, 1), axis=(1, 2))
    np.testing.assert_allclose(compatible(x), model(shifted), rtol=1e-5, atol=1e-5)


def _prune_1x1(model, sparsity=0.9):
    for layer in model.layers:
        if isinstance(layer, L.Conv2D) and tuple(layer.kernel_size) == (1, 1):
            masks.attach(layer.kernel)
            value = np.abs(layer.kernel.numpy())
            masks.set_mask(layer.kernel, value >= np.quantile(value, sparsity))
    return model


def _same_padding_v1(size=32):
    inputs = keras.Input((size, size, 3))
    x = L.Conv2D(16, 3, strides=2, padding="same", activation="relu")(inputs)
    x = L.DepthwiseConv2D(3, strides=2, padding="same", activation="relu")(x)
    x = L.Conv2D(64, 1, activation="relu")(x)
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, L.Dense(10)(x))


def _padding_problems(report):
    return [reason for reason in report.reasons if "padding" in reason]


def test_tflite_lint_padding_problems_before_and_none_after(tmp_path):
    model = _same_padding_v1()
    compatible = _prune_1x1(_rewrite(model))
    before, after = tmp_path / "before.tflite", tmp_path / "after.tflite"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tfsparse.export(_prune_1x1(model), before, target="xnnpack", verify=False, allow_ineligible=True)
    tfsparse.export(compatible, after, target="xnnpack", verify=False)

    assert any("stem padding is (0, 1, 0, 1)" in reason for reason in _padding_problems(lint(str(before))))
    report = lint(str(after))
    assert _padding_problems(report) == [] and report.fires, report.reasons


def _untouched_cases():
    def model(layer, size=15):
        inputs = keras.Input((size, size, 3))
        return keras.Model(inputs, layer(inputs))

    return {
        "odd_input": lambda: model(L.Conv2D(4, 3, strides=2, padding="same")),
        "odd_input_depthwise_5x5": lambda: model(L.DepthwiseConv2D(5, strides=2, padding="same")),
        "stride_1": lambda: model(L.DepthwiseConv2D(3, padding="same"), size=16),
        "valid": lambda: model(L.Conv2D(4, 3, strides=2), size=16),
        "stride_2_1x1": lambda: model(L.Conv2D(4, 1, strides=2, padding="same"), size=16),
        "already_explicit": lambda: _mobilenet_like(explicit_padding=True),
    }


@pytest.mark.parametrize("case", sorted(_untouched_cases()))
def test_compatible_models_are_copied_without_a_warning(case):
    model = _randomize(_untouched_cases()[case]())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compatible = make_compatible(model)
    assert compatible is not model
    assert [layer.get_config() for layer in compatible.layers] == [layer.get_config() for layer in model.layers]
    x = _input(model)
    np.testing.assert_array_equal(compatible(x), model(x))


def test_residual_add_and_concatenate_are_rebuilt():
    model = _randomize(_residual())
    compatible = _rewrite(model, match="'stem'.*'dw_down'")
    producers = {layer.name: [t._keras_history.operation.name for t in keras.tree.flatten(layer.input)]
                 for layer in compatible.layers if isinstance(layer, (L.Add, L.Concatenate))}
    assert producers == {"add": ["stem", "dw"], "concat": ["shortcut", "dw_down"]}
    assert compatible.get_layer("dw").padding == "same"  # stride 1: already symmetric
    x = _input(model)
    reference = _copy_weights_by_name(model, _residual(explicit_padding=True))
    np.testing.assert_allclose(compatible(x), reference(x), rtol=1e-5, atol=1e-5)


def test_the_input_model_is_not_modified():
    model = _randomize(_residual())
    configs = [layer.get_config() for layer in model.layers]
    weights = [w.copy() for w in model.get_weights()]
    nodes = [len(layer._inbound_nodes) for layer in model.layers]
    x = _input(model)
    outputs = model(x)

    compatible = _rewrite(model)

    assert [layer.get_config() for layer in model.layers] == configs
    assert [len(layer._inbound_nodes) for layer in model.layers] == nodes
    for weight, now in zip(weights, model.get_weights(), strict=True):
        np.testing.assert_array_equal(weight, now)
    np.testing.assert_array_equal(model(x), outputs)
    assert not set(map(id, compatible.weights)) & set(map(id, model.weights))


def test_sequential_stays_sequential():
    model = _randomize(keras.Sequential([keras.Input((16, 16, 3)), L.Conv2D(4, 3, strides=2, padding="same", name="c"),
                                         L.Flatten(name="flat")], name="seq"))
    compatible = _rewrite(model)
    assert isinstance(compatible, keras.Sequential) and compatible.name == "seq"
    assert [layer.name for layer in compatible.layers] == ["c_xnnpack_pad", "c", "flat"]
    x = np.zeros((1, 16, 16, 3), "float32")
    assert compatible(x).shape == model(x).shape


def test_layers_that_cannot_be_rewritten_are_left_and_named():
    inputs = keras.Input((15, 15, 3))
    x = L.Conv2D(4, 4, strides=2, padding="same", name="even_kernel")(inputs)  # odd input, even kernel: (1, 2)
    model = keras.Model(inputs, x)
    with pytest.warns(UserWarning, match=r"Not rewritten.*'even_kernel': its kernel \(4, 4\) is even") as caught:
        compatible = make_compatible(model)
    assert "rewrote" not in str(caught[0].message)
    assert compatible.get_layer("even_kernel").padding == "same" and len(compatible.layers) == 2

    dynamic = keras.Input((None, None, 3))
    model = keras.Model(dynamic, L.Conv2D(4, 3, strides=2, padding="same", name="dynamic")(dynamic))
    with pytest.warns(UserWarning, match="'dynamic': its input height or width is unknown"):
        assert make_compatible(model).get_layer("dynamic").padding == "same"

    channels_first = keras.Input((3, 16, 16))
    layer = L.Conv2D(4, 3, strides=2, padding="same", data_format="channels_first", name="nchw")
    model = keras.Model(channels_first, layer(channels_first))
    with pytest.warns(UserWarning, match="'nchw': data_format='channels_first' is not supported"):
        assert make_compatible(model).get_layer("nchw").padding == "same"


def test_subclassed_model_is_refused():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.conv = L.Conv2D(4, 3, strides=2, padding="same")

        def call(self, x):
            return self.conv(x)

    model = Net()
    model(np.zeros((1, 16, 16, 3), "float32"))
    with pytest.raises(ValueError, match="Expected a functional or Sequential keras.Model.*ZeroPadding2D.*Received"):
        make_compatible(model)


def test_masked_model_is_refused():
    model = _prune_1x1(_same_padding_v1(16))
    with pytest.raises(ValueError, match="before attaching a pruning strategy"):
        make_compatible(model)


def test_result_round_trips_through_a_keras_file(tmp_path):
    compatible = _rewrite(_randomize(_mobilenet_like()))
    compatible.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in compatible.layers]
    x = _input(compatible)
    np.testing.assert_allclose(loaded(x), compatible(x), rtol=1e-6, atol=1e-6)


def test_is_exported_as_tfsparse_xnnpack_make_compatible():
    import tfsparse.xnnpack.compatible  # noqa: F401  (no submodule may shadow a function of the package)

    assert tfsparse.xnnpack.make_compatible is make_compatible
    assert callable(tfsparse.xnnpack.lint) and callable(tfsparse.xnnpack.check)
