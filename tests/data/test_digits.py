"""The scikit-learn 8x8 digits with a fixed stratified 80/20 split."""

import sys

import numpy as np
import pytest

from tfsparse import data


def test_digits_shapes_scale_and_split():
    dataset = data.load("digits")
    assert dataset.x_train.shape == (1437, 8, 8, 1) and dataset.x_test.shape == (360, 8, 8, 1)
    assert dataset.x_train.dtype == np.float32 and dataset.x_train.min() == 0.0 and dataset.x_train.max() == 1.0
    assert dataset.num_classes == 10 and dataset.name == "digits"
    test_counts = np.bincount(dataset.y_test)
    assert test_counts.min() >= 35 and test_counts.max() <= 37  # stratified: ~36 of each digit
    from sklearn.datasets import load_digits

    everything = (load_digits().images / 16.0).astype(np.float32).reshape(-1, 64)
    both = np.concatenate([dataset.x_train, dataset.x_test]).reshape(-1, 64)
    assert sorted(map(bytes, both)) == sorted(map(bytes, everything))  # a partition of all 1,797 images


def test_digits_split_is_fixed_and_independent_of_seed():
    first, second = data.load("digits", seed=0), data.load("digits", seed=5)
    np.testing.assert_array_equal(first.x_test, second.x_test)
    np.testing.assert_array_equal(first.y_train, second.y_train)


def test_digits_without_scikit_learn_names_the_fix(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)  # makes `import sklearn` fail
    with pytest.raises(ImportError, match="pip install scikit-learn"):
        data.load("digits")
