import re

import keras
import pytest

from tfsparse.selection import deserialize_selector, select_weights, serialize_selector
from tfsparse.strategies.gmp import GMP

L = keras.layers


@pytest.fixture
def convnet():
    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(8, 3, name="stem")(inputs)
    x = L.DepthwiseConv2D(3, name="block1_dw")(x)
    x = L.Conv2D(8, 1, name="block1_pw")(x)
    x = L.SeparableConv2D(8, 3, name="sep")(x)
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, L.Dense(2, name="logits")(x))


def _names(weights):
    return [f"{w.layer.name}.{w.name}" for w in weights]


def test_default_selects_everything(convnet):
    assert len(select_weights(convnet)) == 6


def test_regex_type_predicate_and_union(convnet):
    assert _names(select_weights(convnet, layers="block.*_pw")) == ["block1_pw.kernel"]
    assert _names(select_weights(convnet, layers=".*/pointwise_kernel")) == ["sep.pointwise_kernel"]
    assert _names(select_weights(convnet, layers=L.DepthwiseConv2D)) == ["block1_dw.kernel"]
    is_1x1 = lambda layer: isinstance(layer, L.Conv2D) and tuple(layer.kernel_size) == (1, 1)  # noqa: E731
    assert _names(select_weights(convnet, layers=is_1x1)) == ["block1_pw.kernel"]
    assert _names(select_weights(convnet, layers=["stem", "logits"])) == ["stem.kernel", "logits.kernel"]


def test_exclude(convnet):
    names = _names(select_weights(convnet, exclude=["stem", L.Dense]))
    assert "stem.kernel" not in names and "logits.kernel" not in names and len(names) == 4


def test_selector_matching_nothing_is_an_error_listing_layers(convnet):
    with pytest.raises(ValueError, match=r"matches no prunable weight.*block1_pw"):
        select_weights(convnet, layers="blok1_pw")
    with pytest.raises(ValueError, match="`exclude`"):
        select_weights(convnet, exclude="nothing_here")


def test_excluding_everything_is_an_error(convnet):
    with pytest.raises(ValueError, match="removes every selected weight"):
        select_weights(convnet, layers="stem", exclude="stem")


def test_malformed_selectors(convnet):
    with pytest.raises(ValueError, match="valid regular expression"):
        select_weights(convnet, layers="conv[")
    with pytest.raises(ValueError, match="layer name or regex"):
        select_weights(convnet, layers=3)


def test_model_without_prunable_weights():
    model = keras.Sequential([keras.Input((3,)), L.BatchNormalization()])
    with pytest.raises(ValueError, match="no prunable weights.*register_prunable"):
        select_weights(model)


def test_selector_serialization_round_trip():
    selector = ["stem", L.Conv2D, ".*_pw"]
    assert deserialize_selector(serialize_selector(selector)) == selector
    with pytest.raises(ValueError, match="predicate"):
        serialize_selector(lambda layer: True)


@pytest.mark.parametrize("empty", [[], ()])
def test_empty_layers_selector_is_an_error_not_everything(convnet, empty):
    expected = (r"Invalid value received for argument `layers`. Expected at least one layer name/pattern .*; to "
                r"prune every prunable layer, pass layers=None \(the default\). Received: layers="
                + re.escape(repr(empty)))
    with pytest.raises(ValueError, match=expected):
        select_weights(convnet, layers=empty)
    with pytest.raises(ValueError, match=expected):  # refused when the strategy is made, before any training
        GMP(target_sparsity=0.5, end_step=10, layers=empty)
    assert len(select_weights(convnet, exclude=empty)) == 6  # an empty exclude excludes nothing


def test_selector_matching_nothing_suggests_close_names_and_lists_a_few():
    inputs = keras.Input((4,))
    x = inputs
    for index in range(30):
        x = L.Dense(4, name=f"dense_{index:02d}")(x)
    model = keras.Model(inputs, x)
    with pytest.raises(ValueError) as error:
        select_weights(model, layers=["dense_01", "dnse_07"])
    message = str(error.value)
    assert "'dnse_07' matches no prunable weight (did you mean 'dense_07'?)" in message
    assert "dense_00, dense_01" in message and "dense_19 ... (10 more)" in message and "dense_25" not in message
    assert message.endswith("Received: layers=['dense_01', 'dnse_07']")
    with pytest.raises(ValueError, match=r"removes every selected weight \(of dense_00, .*dense_19 \.\.\. \(10 more\)"):
        select_weights(model, exclude="dense_.*")
