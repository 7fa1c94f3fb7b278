"""The Strategy base class as a plugin author uses it."""

import warnings

import keras
import numpy as np
import pytest

import tfsparse
from tfsparse import masks, schedules
from tfsparse.strategies.gmp import GMP
from tfsparse.strategies.nm import NM


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


def _schedule_warnings(fit):
    """Runs `fit()` and returns the messages of the schedule warnings it raised (other warnings are dropped)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit()
    return [str(w.message) for w in caught if issubclass(w.category, UserWarning) and "schedule ends" in str(w.message)]


def test_strategies_share_a_fit_on_disjoint_layers_but_not_on_one_weight(mlp, classification_data):
    x, y = classification_data
    mlp.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    gmp = GMP(target_sparsity=0.5, begin_step=0, end_step=4, frequency=2)
    nm = NM(begin_step=0, layers="hidden")
    with pytest.raises(ValueError, match=r"GMP \('gmp'\) and NM \('nm'\) both act on \S*/hidden/kernel in this fit"):
        mlp.fit(x, y, batch_size=64, epochs=2, verbose=0, callbacks=[gmp, nm])
    disjoint = [GMP(target_sparsity=0.5, begin_step=0, end_step=4, frequency=2, exclude="hidden"), nm]
    mlp.fit(x, y, batch_size=64, epochs=2, verbose=0, callbacks=disjoint)
    assert disjoint[0].current_sparsity() == pytest.approx(0.5, abs=0.02) and nm.current_sparsity() == 0.5
    hidden = mlp.get_layer("hidden").kernel.numpy()  # (16, 32): 2:4 blocks along the inputs
    assert (hidden.reshape(4, 4, 32) != 0).sum(axis=1).max() == 2


def test_successive_fits_may_use_different_strategies(mlp, classification_data):
    x, y = classification_data
    mlp.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    first, second = GMP(target_sparsity=0.8, begin_step=0, end_step=4, frequency=2), GMP(
        target_sparsity=0.5, begin_step=0, end_step=4, frequency=2)
    with pytest.raises(ValueError, match=r"two GMP \('gmp'\) strategies both act on \S*/hidden/kernel \(and 1 more "
                                         r"weight\).*Use one strategy per weight"):
        mlp.fit(x, y, batch_size=64, epochs=2, verbose=0, callbacks=[first, second])
    mlp.fit(x, y, batch_size=64, epochs=2, verbose=0, callbacks=[second])  # the refused fit left no stale claim
    assert second.current_sparsity() == pytest.approx(0.5, abs=0.02)
    nm = NM(begin_step=0)
    mlp.fit(x, y, batch_size=64, epochs=1, verbose=0, callbacks=[nm])  # a later fit with another strategy
    assert masks.owner_of(mlp.get_layer("hidden").kernel) is nm
    mlp.fit(x, y, batch_size=64, epochs=1, verbose=0, callbacks=[second])  # and back


def test_schedule_ending_after_the_fit_warns_once_and_only_then(mlp, classification_data):
    x, y = classification_data
    mlp.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    gmp = GMP(target_sparsity=0.8, begin_step=0, end_step=5000, frequency=100)
    fit = lambda: mlp.fit(x, y, batch_size=64, epochs=2, verbose=0, callbacks=[gmp])  # noqa: E731; 8 steps
    assert _schedule_warnings(fit) == [
        "GMP's schedule ends at step 5000 but this fit stops at step 8: the model will finish at sparsity 0.0% "
        "instead of the target 80.0%. Lower end_step or train longer."
    ]
    assert _schedule_warnings(fit) == []  # once per strategy
    nm = NM(begin_step=100, layers="hidden")
    assert _schedule_warnings(lambda: mlp.fit(x, y, batch_size=64, epochs=1, verbose=0, callbacks=[nm])) == [
        "NM's schedule ends at step 100 but this fit stops at step 20: the model will finish at sparsity 0.0% "
        "instead of the target 50.0%. Lower end_step or train longer."
    ]
    ends_in_time = GMP(target_sparsity=0.8, begin_step=20, end_step=23, frequency=1)  # steps 20..23
    assert _schedule_warnings(lambda: mlp.fit(x, y, batch_size=64, epochs=1, verbose=0, callbacks=[ends_in_time])) == []
    assert ends_in_time.current_sparsity() == pytest.approx(0.8, abs=0.01)

    def batches():  # a generator: Keras does not know the fit's length
        yield from ((x[i:i + 64], y[i:i + 64]) for i in range(0, 128, 64))

    unknown = GMP(target_sparsity=0.8, begin_step=0, end_step=5000, frequency=100)
    assert _schedule_warnings(lambda: mlp.fit(batches(), epochs=1, verbose=0, callbacks=[unknown])) == []
    past = GMP(target_sparsity=0.8, begin_step=0, end_step=9, frequency=1)  # a resumed fit after end_step
    assert _schedule_warnings(lambda: mlp.fit(x, y, batch_size=64, epochs=1, verbose=0, callbacks=[past])) == []
