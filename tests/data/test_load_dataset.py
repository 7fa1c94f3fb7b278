"""`tfsparse.data.load`: name resolution, the `limit` subset, errors."""

import numpy as np
import pytest

from tfsparse import data


def test_limit_subsets_only_the_training_split():
    dataset = data.load("digits", limit=100, seed=3)
    full = data.load("digits")
    assert len(dataset.x_train) == 100 and len(dataset.x_test) == len(full.x_test)
    assert np.bincount(dataset.y_train).tolist() == [10] * 10
    rows = {row.tobytes() for row in full.x_train.reshape(len(full.x_train), -1)}
    assert all(row.tobytes() in rows for row in dataset.x_train.reshape(100, -1))
    assert not np.array_equal(dataset.x_train, data.load("digits", limit=100, seed=4).x_train)
    np.testing.assert_array_equal(dataset.x_train, data.load("digits", limit=100, seed=3).x_train)


@pytest.mark.parametrize("name", ["Digits", "DIGITS"])
def test_names_are_case_insensitive(name):
    assert data.load(name).name == "digits"


@pytest.mark.parametrize("name, hint", [("fashion", "Did you mean 'fashion_mnist'?"),
                                        ("digit", "Did you mean 'digits'?"), ("cifar10", "fashion_mnist, digits")])
def test_unknown_name_lists_the_choices(name, hint):
    with pytest.raises(ValueError, match="Invalid value received for argument `name_or_path`") as error:
        data.load(name)
    assert hint in str(error.value) and f"Received: name_or_path='{name}'" in str(error.value)


@pytest.mark.parametrize("value", [None, "", 3])
def test_name_must_be_a_string_or_path(value):
    with pytest.raises(ValueError, match="Invalid value received for argument `name_or_path`"):
        data.load(value)


def test_data_dir_only_applies_to_fashion_mnist(tmp_path):
    with pytest.raises(ValueError, match="Invalid value received for argument `data_dir`"):
        data.load("digits", data_dir=tmp_path)


def test_dataset_prints_a_short_summary():
    dataset = data.load("digits", channels=3)
    assert str(dataset) == "digits: 1437 train / 360 test samples of shape (8, 8, 3) float32, 10 classes"
    assert len(repr(dataset)) < 200 and dataset.sample_shape == (8, 8, 3)
