"""`tfsparse inspect --channels`: the channel groups of a .keras model, with its MACs and parameters."""

import json

import keras
import pytest

import tfsparse

L = keras.layers


@keras.saving.register_keras_serializable(package="tfsparse_tests_inspect_channels")
class _Subclassed(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = L.Dense(2)

    def build(self, input_shape):
        self.dense.build(input_shape)

    def call(self, x):
        return self.dense(x)


@pytest.fixture
def residual_file(tmp_path):
    inputs = keras.Input((8, 8, 3))
    a = L.Conv2D(4, 1, name="a")(inputs)
    b = L.Conv2D(4, 3, padding="same", name="b")(inputs)
    x = L.LayerNormalization(name="ln")(L.Conv2D(5, 1, name="c")(L.Add(name="add")([a, b])))
    outputs = L.Dense(2, name="head")(L.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, outputs, name="residual")
    path = tmp_path / "residual.keras"
    model.save(path)
    return path, model


def test_channels_prints_one_line_per_group_and_the_flops(cli, residual_file):
    path, model = residual_file
    status, out, err = cli("inspect", path, "--channels")
    assert status == 0, err
    lines = out.strip().splitlines()
    assert lines[0] == "residual: 4 channel groups, 1 prunable (4 of 14 channels)"
    assert lines[1:5] == [
        "  group 0: 3 channels, layers a, b (not pruned: a model input)",
        "  group 1: 4 channels, layers a, b, c (prunable)",
        "  group 2: 5 channels, layers c, ln, head (not pruned: 'ln' (LayerNormalization) computes statistics over "
        "the channel axis: removing channels would change them)",
        "  group 3: 2 channels, layers head (not pruned: a model output)",
    ]
    report = tfsparse.flops(model)
    assert lines[5:] == [str(report)]
    assert report.macs == 64 * 3 * 4 + 64 * 9 * 3 * 4 + 64 * 4 * 5 + 5 * 2


def test_channels_json(cli, residual_file):
    path, model = residual_file
    status, out, err = cli("inspect", path, "--channels", "--json")
    assert status == 0, err
    result = json.loads(out)
    assert result["model"] == "residual"
    assert [(g["channels"], g["prunable"]) for g in result["groups"]] == [(3, False), (4, True), (5, False), (2, False)]
    assert result["groups"][1]["layers"] == ["a", "b", "c"] and result["groups"][1]["blocked"] is None
    assert result["groups"][2]["blocked"].startswith("'ln' (LayerNormalization)")
    assert result["params"] == model.count_params()
    assert result["macs"] == sum(result["per_layer"].values()) and set(result["per_layer"]) == {"a", "b", "c", "head"}


def test_channels_of_a_tflite_is_a_clear_error(cli, tmp_path):
    path = tmp_path / "model.tflite"
    path.write_bytes(b"TFL3")
    status, out, err = cli("inspect", path, "--channels")
    assert status == 1 and out == ""
    assert "--channels traces the layer graph of a `.keras`" in err and "model.tflite" in err


def test_channels_of_a_subclassed_model_is_a_clear_error(cli, tmp_path):
    model = _Subclassed()
    model.build((None, 3))
    path = tmp_path / "subclassed.keras"
    model.save(path)
    status, _, err = cli("inspect", path, "--channels")
    assert status == 1
    assert "subclassed model" in err and "Weight-level strategies" in err


def test_channels_is_a_separate_check(cli, residual_file):
    path, _ = residual_file
    status, _, err = cli("inspect", path, "--channels", "--xnnpack")
    assert status == 1 and "run it without --xnnpack" in err
    status, _, err = cli("inspect", path, "--channels", "--nm=2:4")
    assert status == 1 and "run it without --nm" in err
    status, _, err = cli("inspect", path, "--channels", "--sparsity=0")
    assert status == 1 and "run it without --sparsity" in err


def test_help_lists_the_flag(cli):
    status, out, _ = cli("inspect", "--help")
    assert status == 0 and "--[no]channels" in out
