"""The seeded class-balanced subset behind `load(..., limit=N)`."""

import numpy as np
import pytest

from tfsparse.data.subset import balanced_indices


def test_classes_are_balanced_and_indices_unique_and_sorted():
    labels = np.repeat(np.arange(10), [500, 50, 300, 300, 300, 300, 300, 300, 300, 300])
    picked = balanced_indices(labels, 205, seed=0)
    assert len(picked) == 205 and len(set(picked.tolist())) == 205
    assert (np.diff(picked) > 0).all()
    counts = np.bincount(labels[picked], minlength=10)
    assert counts.max() - counts.min() <= 1


def test_a_small_class_gives_all_it_has():
    labels = np.array([0] * 90 + [1] * 5 + [2] * 30)
    counts = np.bincount(labels[balanced_indices(labels, 30, seed=0)])
    assert counts.tolist() == [13, 5, 12] or counts.tolist() == [12, 5, 13]


def test_seeded():
    labels = np.arange(1000) % 4
    assert (balanced_indices(labels, 40, seed=1) == balanced_indices(labels, 40, seed=1)).all()
    assert (balanced_indices(labels, 40, seed=1) != balanced_indices(labels, 40, seed=2)).any()


def test_limit_at_or_above_the_size_keeps_everything():
    np.testing.assert_array_equal(balanced_indices(np.zeros(7), 7), np.arange(7))
    np.testing.assert_array_equal(balanced_indices(np.zeros(7), 100), np.arange(7))


@pytest.mark.parametrize("limit", [0, -1, 2.0, True, "10"])
def test_bad_limit(limit):
    with pytest.raises(ValueError, match=r"Invalid value received for argument `limit`.*positive integer"):
        balanced_indices(np.zeros(7), limit)
