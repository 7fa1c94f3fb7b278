"""`moe_expert`: progressive schedule, choice of experts, masking, merging, logs, report, errors."""

import keras
import numpy as np
import pytest
from keras import ops

import tfsparse
from tfsparse import masks
from tfsparse_moe import MoE, MoEExpertPruning, format_report, plan


def moe_model(num_experts=8, top_k=2, learning_rate=0.0, layers=1):
    inputs = keras.Input((6, 4))
    x = inputs
    for index in range(layers):
        x = MoE(num_experts=num_experts, hidden_units=5, top_k=top_k, name=f"moe_{index}")(x)
    model = keras.Model(inputs, x)
    model.compile(keras.optimizers.SGD(learning_rate) if learning_rate == 0 else keras.optimizers.Adam(learning_rate),
                  "mse")
    return model


def data(samples=64):
    x = np.random.default_rng(0).normal(size=(samples, 6, 4)).astype("float32")
    return x, x


def test_prune_count_respects_the_cap_and_the_floor():
    for kept in range(3, 65):
        for floor in range(3, kept + 1):
            for scheduled in range(1, kept + 1):
                count = plan.prune_count(kept=kept, scheduled=scheduled, floor=floor)
                assert count <= max(1, int(0.2 * kept + 1e-9))
                assert kept - count >= floor
                assert count == 0 or kept - count >= scheduled


def test_schedule_goes_from_all_experts_to_the_target():
    kept = [plan.scheduled_experts(step, num_experts=16, target=4, begin_step=10, end_step=20, frequency=2, power=3)
            for step in range(0, 25)]
    assert kept[:10] == [16] * 10 and kept[10] < 16 and kept[20:] == [4] * 5
    assert kept == sorted(kept, reverse=True)


def test_progressive_pruning_in_training_respects_cap_and_floor():
    model = moe_model(num_experts=16, top_k=2, learning_rate=1e-3)
    pruner = MoEExpertPruning(3, begin_step=2, end_step=14, frequency=1, window=4)
    history = model.fit(*data(), batch_size=4, epochs=1, verbose=0, callbacks=[pruner])  # 16 steps
    steps = {}
    for step, expert, _ in pruner.events[id(model.get_layer("moe_0"))]:
        steps.setdefault(step, []).append(expert)
    kept = 16
    for step in sorted(steps):
        assert len(steps[step]) <= max(1, int(0.2 * kept))
        kept -= len(steps[step])
    assert kept == 3 == int(model.get_layer("moe_0").kept_experts().sum())
    assert max(steps) <= 14 and min(steps) >= 2
    assert history.history["experts_kept"] == [3] and history.history["sparsity"] == [pytest.approx(13 / 16)]


def test_prunes_the_least_frequently_routed_experts():
    model = moe_model(num_experts=6, top_k=1)
    layer = model.get_layer("moe_0")
    layer.router_kernel.assign(3 * np.random.default_rng(1).normal(size=(4, 6)).astype("float32"))
    layer.router_bias.assign([0.0, 0.0, 0.0, 0.0, -30.0, -20.0])  # 4 and 5 are never chosen
    pruner = MoEExpertPruning(4, begin_step=2, end_step=4, frequency=2)
    model.fit(*data(), batch_size=8, epochs=1, verbose=0, shuffle=False, callbacks=[pruner])
    assert layer.kept_experts().tolist() == [True, True, True, True, False, False]
    assert [step for step, _, _ in pruner.events[id(layer)]] == [2, 4]


def test_pruned_experts_are_zeroed_masked_and_never_routed_while_training_goes_on():
    model = moe_model(num_experts=6, top_k=2, learning_rate=1e-2)
    pruner = MoEExpertPruning(3, begin_step=1, end_step=5, frequency=1, window=2)
    x, y = data()
    model.fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[pruner])
    layer = model.get_layer("moe_0")
    pruned = ~layer.kept_experts()
    assert pruned.sum() == 3
    for variable in layer.expert_variables():
        values = ops.convert_to_numpy(variable)
        assert np.all(values[pruned] == 0) and np.any(values[~pruned] != 0)
        assert masks.has_mask(variable)
    assert np.all(ops.convert_to_numpy(layer.router_kernel)[:, pruned] == 0)
    gates = ops.convert_to_numpy(layer.routing(x)["gates"])
    assert np.all(gates[:, pruned] == 0)
    assert pruner.statistics(layer).routed[pruned].sum() == 0  # also while training


def test_merge_averages_into_the_most_similar_expert_by_frequency():
    model = moe_model(num_experts=4, top_k=1)
    layer = model.get_layer("moe_0")
    layer.router_kernel.assign(3 * np.random.default_rng(1).normal(size=(4, 4)).astype("float32"))
    layer.router_bias.assign([0.0, 0.0, 0.0, -4.0])  # expert 3 is rarely chosen
    rng = np.random.default_rng(5)
    base = {v.name: rng.normal(size=v.shape).astype("float32") for v in layer.expert_variables()}
    base = {name: np.stack([a[0], a[1], a[2], a[1] + 0.1 * a[3]]) for name, a in base.items()}  # 3 looks like 1
    for variable in layer.expert_variables():
        variable.assign(base[variable.name])
    x, y = data()
    routed = ops.convert_to_numpy(layer.routing(x[8:24])["routed"]).sum(0)  # the window at step 3: batches 1, 2
    assert 0 < routed[3] < routed[:3].min()
    pruner = MoEExpertPruning(3, begin_step=2, end_step=3, frequency=1, merge=True, window=2)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False, callbacks=[pruner])
    assert layer.kept_experts().tolist() == [True, True, True, False]
    assert pruner.events[id(layer)] == [(3, 3, 1)]
    for variable in layer.expert_variables():
        a = base[variable.name]
        expected = (routed[1] * a[1] + routed[3] * a[3]) / (routed[1] + routed[3])
        np.testing.assert_allclose(ops.convert_to_numpy(variable)[1], expected, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(ops.convert_to_numpy(variable)[0], a[0])


def test_merge_weights_by_frequency(monkeypatch):
    from tfsparse_moe import merging

    arrays = [np.array([[1.0, 2.0], [3.0, 4.0], [-1.0, 0.0]])]
    merged = merging.merge_expert(arrays, source=0, target=1, source_weight=0.2, target_weight=0.6)
    np.testing.assert_allclose(merged[0][1], 0.75 * np.array([3.0, 4.0]) + 0.25 * np.array([1.0, 2.0]))
    np.testing.assert_array_equal(arrays[0][1], [3.0, 4.0])  # inputs untouched
    even = merging.merge_expert(arrays, source=0, target=2, source_weight=0.0, target_weight=0.0)
    np.testing.assert_allclose(even[0][2], [0.0, 1.0])
    assert merging.most_similar(arrays, 0, candidates=[1, 2]) == 1
    assert merging.cosine_similarity(np.array([[0.0, 0.0], [1.0, 0.0]]), 0).tolist() == [0.0, 0.0]


def test_logs_and_report():
    model = moe_model(num_experts=8, layers=2)
    pruner = MoEExpertPruning(0.5, begin_step=1, end_step=9, frequency=2, window=3)
    history = model.fit(*data(), batch_size=4, epochs=1, verbose=0, callbacks=[pruner])
    assert history.history["experts_kept"] == [8]
    report = pruner.report()
    assert [r.layer for r in report] == ["moe_0", "moe_1"] and [r.target for r in report] == [4, 4]
    row = report[0]
    assert sum(row.kept) == 4 and sum(p is not None for p in row.pruned_at) == 4
    assert row.batches == 3 and row.tokens == 3 * 4 * 6
    assert sum(row.frequency) == pytest.approx(1.0, abs=0.5e-6 * len(row.frequency))  # the report rounds to 6 decimals
    assert row.to_dict()["layer"] == "moe_0"
    text = format_report(report)
    assert "layer moe_0: 4 of 8 experts kept (target 4)" in text and "weight_l1" in text


def test_only_selected_layers_are_pruned():
    model = moe_model(num_experts=8, layers=2)
    pruner = MoEExpertPruning(6, begin_step=1, end_step=3, frequency=2, layers="moe_1")
    model.fit(*data(), batch_size=8, epochs=1, verbose=0, callbacks=[pruner])
    assert model.get_layer("moe_0").kept_experts().all()
    assert model.get_layer("moe_1").kept_experts().sum() == 6


def test_weight_l1_criterion_can_prune_before_any_statistics():
    model = moe_model(num_experts=10, top_k=1)
    layer = model.get_layer("moe_0")
    scale = np.ones(10, "float32")
    scale[[2, 7]] = [0.01, 0.1]
    for variable in layer.expert_variables():  # all of experts 2 and 7: the two smallest L1 norms, whatever the init
        variable.assign(ops.convert_to_numpy(variable) * scale.reshape((-1,) + (1,) * (len(variable.shape) - 1)))
    pruner = MoEExpertPruning(8, criterion="weight_l1", begin_step=0, end_step=1, frequency=1)
    model.fit(*data(16), batch_size=8, epochs=1, verbose=0, callbacks=[pruner])
    assert pruner.events[id(layer)] == [(0, 2, None), (1, 7, None)]
    assert np.flatnonzero(~layer.kept_experts()).tolist() == [2, 7]


@pytest.mark.filterwarnings("ignore:.*schedule ends at step:UserWarning")  # the first fit stops early on purpose
def test_resumed_training_keeps_the_pruned_experts_and_waits_for_statistics(tmp_path):
    model = moe_model(num_experts=6, learning_rate=1e-3)
    pruner = MoEExpertPruning(3, begin_step=1, end_step=4, frequency=1, window=2)
    model.fit(*data(32), batch_size=8, epochs=1, verbose=0, callbacks=[pruner])  # steps 0-3: stops before end_step
    before = model.get_layer("moe_0").kept_experts()
    assert before.sum() == 4
    path = str(tmp_path / "pruned.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    again = MoEExpertPruning(3, begin_step=1, end_step=4, frequency=1, window=2)
    loaded.fit(*data(32), batch_size=8, epochs=1, verbose=0, callbacks=[again])  # due at step 4, no statistics yet
    after = loaded.get_layer("moe_0").kept_experts()
    assert after.sum() == 3 == again.experts_kept() and not (after & ~before).any()
    ((step, expert, _),) = again.events[id(loaded.get_layer("moe_0"))]
    assert step == 4 and before[expert]


def test_get_config_round_trip():
    pruner = MoEExpertPruning(0.25, criterion={"gate": 1.0, "reap": 2.0}, begin_step=None, end_step=300,
                              frequency=30, window=20, power=3, min_experts=4, merge=True, layers="moe_.*")
    clone = MoEExpertPruning.from_config(pruner.get_config())
    assert clone.get_config() == pruner.get_config()
    assert clone.schedule.begin_step == 20


def test_model_without_moe_layers_is_refused():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile("sgd", "mse")
    pruner = MoEExpertPruning(2, begin_step=1, end_step=10)
    with pytest.raises(ValueError, match="argument `model`. Expected a model with tfsparse_moe.MoE layers"):
        pruner.prepare(model)
    with pytest.raises(ValueError, match="tfsparse_moe.MoE layers"):
        model.fit(np.ones((4, 4)), np.ones((4, 2)), verbose=0, callbacks=[pruner])


@pytest.mark.parametrize("target", [2, 0.25])
def test_target_below_top_k_plus_one_is_refused(target):
    model = moe_model(num_experts=8, top_k=2)
    with pytest.raises(ValueError, match=r"argument `target_experts`. Expected at least 3 experts for layer 'moe_0'"):
        MoEExpertPruning(target, begin_step=1, end_step=10).prepare(model)


def test_min_experts_raises_the_floor():
    with pytest.raises(ValueError, match="at least 5 experts"):
        MoEExpertPruning(4, begin_step=1, end_step=10, min_experts=5).prepare(moe_model(num_experts=8))


def test_pruning_due_before_statistics_is_refused():
    model = moe_model(num_experts=10)
    pruner = MoEExpertPruning(5, begin_step=0, end_step=4, frequency=1)
    with pytest.raises(ValueError, match="argument `begin_step`.*no routing statistics were collected yet"):
        model.fit(*data(), batch_size=8, verbose=0, callbacks=[pruner])


def test_unreachable_schedule_is_refused():
    with pytest.raises(ValueError, match="argument `frequency`.*at most 20%.*end with 5 experts instead of 3"):
        MoEExpertPruning(3, begin_step=0, end_step=2, frequency=1).prepare(moe_model(num_experts=8))


@pytest.mark.parametrize("kwargs, argument", [
    ({"end_step": 10}, "target_experts"),
    ({"target_experts": 1, "end_step": 10}, "target_experts"),
    ({"target_experts": 1.5, "end_step": 10}, "target_experts"),
    ({"target_experts": 4}, "end_step"),
    ({"target_experts": 4, "end_step": 50}, "end_step"),
    ({"target_experts": 4, "end_step": 10, "window": 0}, "window"),
    ({"target_experts": 4, "end_step": 10, "merge": "yes"}, "merge"),
    ({"target_experts": 4, "end_step": 10, "min_experts": 1}, "min_experts"),
    ({"target_experts": 4, "end_step": 10, "policy": "xnnpack"}, "policy"),
    ({"target_experts": 4, "end_step": 10, "criterion": "loudness"}, "criterion"),
    ({"target_experts": 4, "target_sparsity": 0.5, "end_step": 10}, "target_sparsity"),
    ({"target_sparsity": 1.0, "end_step": 10}, "target_sparsity"),
])
def test_invalid_arguments(kwargs, argument):
    with pytest.raises(ValueError, match=f"Invalid value received for argument `{argument}`"):
        MoEExpertPruning(**kwargs)


def test_target_sparsity_is_the_fraction_of_experts_removed():
    model = moe_model(num_experts=8, top_k=2)
    pruner = MoEExpertPruning(target_sparsity=0.5, begin_step=0, end_step=16, frequency=2, criterion="weight_l1")
    assert pruner.target_experts == 0.5
    model.fit(*data(), batch_size=8, epochs=3, verbose=0, callbacks=[pruner])
    assert int(model.get_layer("moe_0").kept_experts().sum()) == 4


def test_command_line_sparsity_reaches_the_strategy():
    from tfsparse.training import make_strategy

    pruner = make_strategy("moe_expert", target_sparsity=0.25, steps={"begin_step": 0, "end_step": 8, "frequency": 2})
    assert (pruner.target_experts, pruner.schedule.end_step) == (0.75, 8)


def test_registered_as_moe_expert():
    assert tfsparse.get_strategy("moe_expert") is MoEExpertPruning


def test_two_expert_pruners_on_one_moe_layer_in_one_fit_are_refused():
    model = moe_model(num_experts=6, learning_rate=1e-3, layers=2)
    first = MoEExpertPruning(3, begin_step=1, end_step=4, frequency=1, window=2)
    second = MoEExpertPruning(4, begin_step=1, end_step=4, frequency=1, window=2, layers="moe_0")
    with pytest.raises(ValueError, match=r"two MoEExpertPruning \('moe_expert'\) strategies both act on \S*moe_0\S* "
                                         r"\(and \d+ more weights\) in this fit.*disjoint `layers=`/`exclude=`"):
        model.fit(*data(64), batch_size=8, epochs=1, verbose=0, callbacks=[first, second])
    disjoint = [MoEExpertPruning(3, begin_step=1, end_step=4, frequency=1, window=2, layers="moe_1"), second]
    model.fit(*data(64), batch_size=8, epochs=1, verbose=0, callbacks=disjoint)
    assert int(model.get_layer("moe_1").kept_experts().sum()) == 3 == second.experts_kept() - 1
