"""Routing statistics: collected in the compiled train step, windowed by the strategy, scored by criteria."""

import keras
import numpy as np
import pytest
from keras import ops

from tfsparse_moe import ExpertStatistics, MoE, MoEExpertPruning
from tfsparse_moe import criteria


def frozen_model(num_experts=4, top_k=2, masking=False):
    """A model whose weights never change in `fit` (SGD with learning rate 0)."""
    inputs = keras.Input((6, 4))
    x = keras.layers.Masking(0.0)(inputs) if masking else inputs
    outputs = MoE(num_experts=num_experts, hidden_units=5, top_k=top_k, name="moe")(x)
    model = keras.Model(inputs, outputs)
    layer = model.get_layer("moe")
    rng = np.random.default_rng(3)
    layer.router_kernel.assign(rng.normal(size=(4, num_experts)).astype("float32") * 3)
    layer.router_bias.assign(np.linspace(1.0, -1.0, num_experts).astype("float32"))
    model.compile(keras.optimizers.SGD(0.0), "mse")
    return model


def expected_statistics(layer, x, weights):
    route = {k: ops.convert_to_numpy(v).astype(np.float64) for k, v in layer.routing(x).items()}
    out = ops.convert_to_numpy(layer.experts(ops.convert_to_tensor(x.reshape(-1, 4)))).astype(np.float64)
    w = weights.reshape(-1, 1)
    return {
        "tokens": weights.sum(),
        "routed": (route["routed"] * w).sum(0),
        "gate": (route["gates"] * w).sum(0),
        "output_norm": (route["gates"] * np.linalg.norm(out, axis=-1) * w).sum(0),
    }


@pytest.mark.parametrize("masking", [False, True])
def test_train_step_accumulates_per_expert_statistics(masking):
    model = frozen_model(masking=masking)
    x = np.random.default_rng(0).normal(size=(16, 6, 4)).astype("float32")
    x[:, 4:] = 0.0  # padding at the end of every sequence
    model.fit(x, np.zeros_like(x), batch_size=8, epochs=1, verbose=0)  # two compiled steps
    layer = model.get_layer("moe")
    weights = np.ones((16, 6)) if not masking else np.any(x != 0, axis=-1).astype(float)
    expected = expected_statistics(layer, x, weights)
    stats = layer.read_statistics(reset=True)
    assert stats["tokens"] == expected["tokens"] == (96 if not masking else 64)
    for key in ("routed", "gate", "output_norm"):
        np.testing.assert_allclose(stats[key], expected[key], rtol=1e-4)
    assert stats["routed"].sum() == 2 * expected["tokens"]  # top_k = 2 experts per token
    assert layer.read_statistics()["tokens"] == 0.0  # reset


def test_evaluate_and_predict_do_not_collect():
    model = frozen_model()
    x = np.random.default_rng(0).normal(size=(8, 6, 4)).astype("float32")
    model.evaluate(x, x, verbose=0)
    model.predict(x, verbose=0)
    assert model.get_layer("moe").read_statistics()["tokens"] == 0.0


@pytest.mark.filterwarnings("ignore:.*schedule ends at step:UserWarning")  # it only collects statistics
def test_strategy_keeps_a_window_of_recent_batches():
    model = frozen_model()
    x = np.random.default_rng(0).normal(size=(40, 6, 4)).astype("float32")
    pruner = MoEExpertPruning(3, begin_step=100, end_step=200, frequency=50, window=3)
    model.fit(x, x, batch_size=8, epochs=1, verbose=0, shuffle=False, callbacks=[pruner])  # 5 batches
    stats = pruner.statistics(model.get_layer("moe"))
    assert stats.batches == 3 and stats.tokens == 3 * 8 * 6
    expected = expected_statistics(model.get_layer("moe"), x[16:], np.ones((24, 6)))
    np.testing.assert_allclose(stats.routed, expected["routed"], rtol=1e-5)
    np.testing.assert_allclose(stats.frequency, expected["routed"] / (144 * 2), rtol=1e-5)


def test_strategy_weight_l1_statistic():
    model = frozen_model()
    layer = model.get_layer("moe")
    pruner = MoEExpertPruning(3, begin_step=100, end_step=200, frequency=50)
    l1 = sum(np.abs(ops.convert_to_numpy(v)).reshape(4, -1).sum(1) for v in layer.expert_variables())
    np.testing.assert_allclose(pruner.statistics(layer).weight_l1, l1, rtol=1e-6)


def stats_example():
    return ExpertStatistics(tokens=10.0, routed=np.array([8.0, 2.0, 10.0, 0.0]),
                            gate=np.array([3.0, 1.0, 6.0, 0.0]), output_norm=np.array([4.0, 4.0, 6.0, 0.0]),
                            weight_l1=np.array([2.0, 1.0, 3.0, 4.0]), top_k=2)


@pytest.mark.parametrize("name, expected", [
    ("frequency", [0.4, 0.1, 0.5, 0.0]),
    ("gate", [0.3, 0.1, 0.6, 0.0]),
    ("reap", [0.5, 2.0, 0.6, 0.0]),
    ("weight_l1", [2.0, 1.0, 3.0, 4.0]),
])
def test_criteria_values(name, expected):
    np.testing.assert_allclose(criteria.get(name)(stats_example()), expected)


def test_combined_criteria_are_normalized_over_kept_experts():
    stats = ExpertStatistics(**{**stats_example().__dict__, "kept": np.array([True, True, True, False])})
    combined = criteria.get({"frequency": 2.0, "weight_l1": 1.0})(stats)
    expected = 2.0 * np.array([0.4, 0.1, 0.5, 0.0]) / 0.5 + np.array([2.0, 1.0, 3.0, 4.0]) / 3.0
    np.testing.assert_allclose(combined, expected)
    np.testing.assert_allclose(criteria.get(["gate", "reap"])(stats),
                               np.array([0.3, 0.1, 0.6, 0]) / 0.6 + np.array([0.5, 2.0, 0.6, 0]) / 2.0)


def test_callable_criterion_and_config():
    def negative_index(stats):
        return -np.arange(len(stats.kept), dtype=float)

    assert criteria.get(negative_index)(stats_example()).tolist() == [0.0, -1.0, -2.0, -3.0]
    assert criteria.get(negative_index).needs_statistics and not criteria.get("weight_l1").needs_statistics
    assert criteria.get("gate").get_config() == "gate"
    assert criteria.get({"gate": 1.0, "reap": 0.5}).get_config() == {"gate": 1.0, "reap": 0.5}


@pytest.mark.parametrize("bad", ["popularity", {"gate": -1.0}, {"gate": 0.0}, [], 3])
def test_unknown_criterion(bad):
    with pytest.raises(ValueError, match="Invalid value received for argument `criterion`"):
        criteria.get(bad)
