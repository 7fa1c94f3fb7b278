"""The plugin contract, checked for every registered strategy."""

import re

import keras
import numpy as np
import pytest

import tfsparse
from tfsparse.training import make_strategy

NAMES = [info.name for info in tfsparse.list_strategies()]
#: tfsparse's own strategies prune any model; a plugin's may need its own layers (moe_expert: MoE layers), so its
#: distribution tests training with them.
CORE_NAMES = [info.name for info in tfsparse.list_strategies() if info.distribution == "tfsparse"]


def _strategy(name):
    return make_strategy(name, target_sparsity=0.5, steps={"begin_step": 0, "end_step": 8, "frequency": 2})


@pytest.mark.parametrize("name", NAMES)
def test_is_a_callback_with_name_and_config_round_trip(name):
    strategy = _strategy(name)
    assert isinstance(strategy, tfsparse.Strategy) and isinstance(strategy, keras.callbacks.Callback)
    assert strategy.name == name
    clone = type(strategy).from_config(strategy.get_config())
    assert clone.get_config() == strategy.get_config()


def test_core_strategies_are_listed_with_their_distribution():
    assert {"gmp", "l1", "l0", "nm", "channel"} <= set(CORE_NAMES)


@pytest.mark.parametrize("name", CORE_NAMES)
def test_trains_reports_sparsity_and_finalizes(name, mlp, classification_data):
    x, y = classification_data
    strategy = _strategy(name)
    model = strategy.prepare(mlp)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[strategy])
    assert "sparsity" in history.history and history.history["sparsity"][-1] > 0
    deployable = type(strategy).finalize(model)
    assert deployable is not model
    np.testing.assert_allclose(deployable.predict(x[:8], verbose=0), model.predict(x[:8], verbose=0), atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("bad", [object(), "model.keras"])
def test_prepare_rejects_non_keras_models(name, bad):
    with pytest.raises(ValueError, match="Expected a Keras 3 model"):
        _strategy(name).prepare(bad)


@pytest.mark.parametrize("name", NAMES)
def test_prepare_rejects_unbuilt_models(name):
    with pytest.raises(ValueError, match="not built"):
        _strategy(name).prepare(keras.Sequential([keras.layers.Dense(2)]))


#: The strategy that shares a weight with each core strategy: gmp masks the kernels; l0's gates are its own.
PARTNER = {"gmp": "gmp", "nm": "gmp", "l1": "gmp", "channel": "gmp", "l0": "l0"}
CLASS_NAMES = {"gmp": "GMP", "nm": "NM", "l1": "L1", "channel": "ChannelPruning", "l0": "L0"}


@pytest.mark.parametrize("name", sorted(PARTNER))
def test_two_strategies_on_one_weight_in_one_fit_are_refused(name, mlp, classification_data):
    x, y = classification_data
    first, second = _strategy(name), _strategy(PARTNER[name])
    model = second.prepare(first.prepare(mlp))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    mine, theirs = f"{CLASS_NAMES[name]} ('{name}')", f"{CLASS_NAMES[PARTNER[name]]} ('{PARTNER[name]}')"
    both = f"two {mine} strategies" if mine == theirs else f"{mine} and {theirs}"
    with pytest.raises(ValueError, match=rf"Expected one pruning strategy per weight, but {re.escape(both)} both "
                                         r"act on \S*hidden\S* .*give them disjoint `layers=`/`exclude=`"):
        model.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[first, second])
    # The refused fit leaves no stale claim: the first strategy alone trains the same model.
    alone = _strategy(name)
    model.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[alone])
    assert alone.current_sparsity() > 0
