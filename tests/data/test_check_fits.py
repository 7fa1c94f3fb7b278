"""`check_fits`: mismatches between a dataset and a model, and the fix offered."""

import keras
import numpy as np
import pytest

from tfsparse import data
from tfsparse.data import Dataset, check_fits


def _dataset(sample_shape, num_classes=10, name="toy"):
    x = np.zeros((4, *sample_shape), np.float32)
    y = np.arange(4, dtype=np.int32) % num_classes
    return Dataset(x_train=x, y_train=y, x_test=x, y_test=y, num_classes=num_classes, name=name)


def _model(input_shape, units=10, name="net"):
    inputs = keras.Input(input_shape)
    x = keras.layers.Flatten()(inputs) if None not in input_shape else keras.layers.GlobalAveragePooling2D()(inputs)
    return keras.Model(inputs, keras.layers.Dense(units)(x), name=name)


@pytest.mark.parametrize("sample, model_input", [((28, 28, 1), (28, 28, 1)), ((8, 8, 3), (None, None, 3)),
                                                 ((5,), (5,))])
def test_fitting_pairs_pass(sample, model_input):
    assert check_fits(_dataset(sample), _model(model_input)) is None


def test_padding_and_channels_are_suggested():
    with pytest.raises(ValueError) as error:
        check_fits(_dataset((28, 28, 1), name="fashion_mnist"), _model((32, 32, 3)))
    message = str(error.value)
    assert "Dataset 'fashion_mnist' has samples of shape (28, 28, 1)" in message
    assert "expects inputs of shape (32, 32, 3)" in message
    assert "--image_size=32 --channels=3" in message and "Received: model='net'" in message


def test_only_channels_suggested():
    with pytest.raises(ValueError, match=r"Pass --channels=3 \(load\('toy', channels=3\)"):
        check_fits(_dataset((8, 8, 1)), _model((8, 8, 3)))


@pytest.mark.parametrize("sample, model_input, fix", [
    ((28, 28, 1), (16, 16, 1), "cannot be cropped or resized to 16x16"),
    ((8, 8, 3), (8, 8, 1), "Use a model with 3 input channels"),
    ((8, 8, 1), (5,), r"Use a model whose input is \(8, 8, 1\)"),
])
def test_mismatches_that_options_cannot_fix(sample, model_input, fix):
    with pytest.raises(ValueError, match=fix):
        check_fits(_dataset(sample), _model(model_input))


def test_output_units_must_cover_every_class():
    with pytest.raises(ValueError, match=r"has 10 classes but model 'net' outputs only 3 units.*at least 10"):
        check_fits(_dataset((5,)), _model((5,), units=3))
    with pytest.raises(ValueError, match="outputs only 1 units"):
        check_fits(_dataset((5,), num_classes=2), _model((5,), units=1))


def test_extra_output_units_are_allowed():
    assert check_fits(_dataset((5,)), _model((5,), units=12)) is None


def test_real_digits_against_wrong_models_names_the_dataset():
    digits = data.load("digits")
    with pytest.raises(ValueError, match=r"Dataset 'digits' has samples of shape \(8, 8, 1\)") as error:
        check_fits(digits, _model((28, 28, 1)))
    assert "--image_size=28" in str(error.value) and "load('digits', image_size=28)" in str(error.value)
    with pytest.raises(ValueError, match="Dataset 'digits' has 10 classes"):
        check_fits(digits, _model((8, 8, 1), units=5))
    assert check_fits(data.load("digits", image_size=28), _model((28, 28, 1))) is None


def test_models_with_several_inputs_or_outputs_are_refused():
    a, b = keras.Input((5,)), keras.Input((5,))
    two_inputs = keras.Model([a, b], keras.layers.Dense(10)(keras.layers.Concatenate()([a, b])))
    with pytest.raises(ValueError, match="one input"):
        check_fits(_dataset((5,)), two_inputs)
    two_outputs = keras.Model(a, [keras.layers.Dense(10)(a), keras.layers.Dense(10)(a)])
    with pytest.raises(ValueError, match="one output"):
        check_fits(_dataset((5,)), two_outputs)


def test_unbuilt_subclassed_model_is_not_checked():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(3)

        def call(self, x):
            return self.dense(x)

    assert check_fits(_dataset((5,)), Net()) is None
