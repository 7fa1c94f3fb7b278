"""The Strategy base class as a plugin author uses it."""

import keras
import numpy as np
import pytest

import tfsparse
from tfsparse import schedules


class KeepFirstHalf(tfsparse.Strategy):
    """A toy plugin: keeps the first half of every weight's entries."""

    name = "keep_first_half"

    def __init__(self, *, begin_step=2, **kwargs):
        super().__init__(**kwargs)
        self.schedule = schedules.Constant(0.5, begin_step=begin_step, end_step=begin_step + 1, frequency=1)

    def compute_masks(self, step, weights):
        out = []
        for weight in weights:
            mask = np.zeros(int(np.prod(weight.variable.shape)), "float32")
            mask[: mask.size // 2] = 1
            out.append(mask.reshape(weight.variable.shape))
        return out


def test_custom_strategy_runs_through_the_base_class(mlp, classification_data):
    x, y = classification_data
    strategy = KeepFirstHalf(layers="hidden")
    mlp.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = mlp.fit(x, y, batch_size=64, epochs=2, verbose=0, callbacks=[strategy])
    kernel = mlp.get_layer("hidden").kernel.numpy().ravel()
    assert (kernel[kernel.size // 2:] == 0).all() and (kernel[: kernel.size // 2] != 0).all()
    assert np.count_nonzero(mlp.get_layer("out").kernel.numpy()) == 32 * 3  # not selected
    assert [step for step, _ in strategy.history] == [2, 3]
    assert history.history["sparsity"] == [0.5, 0.5]


def test_strategy_without_schedule_says_what_to_do(mlp, classification_data):
    class NoSchedule(tfsparse.Strategy):
        def compute_masks(self, step, weights):
            return []

    x, y = classification_data
    mlp.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    with pytest.raises(TypeError, match="self.schedule"):
        mlp.fit(x, y, epochs=1, verbose=0, callbacks=[NoSchedule()])


def test_predicate_selector_cannot_be_saved_in_config():
    strategy = KeepFirstHalf(layers=lambda layer: True)
    with pytest.raises(ValueError, match="predicate"):
        strategy.get_config()
