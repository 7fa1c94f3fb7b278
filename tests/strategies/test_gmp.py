import keras
import numpy as np
import pytest

import tfsparse
from tfsparse import masks, schedules
from tfsparse.strategies.gmp import GMP, keep_largest


def _compiled(model, optimizer=None):
    model.compile(optimizer or keras.optimizers.Adam(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _sparsities(model):
    return {r.path: (r.sparsity, r.size) for r in tfsparse.sparsity_report(model).rows}


@pytest.mark.parametrize("target", [0.0, 0.33, 0.5, 0.9, 0.97])
def test_layer_scope_reaches_target_within_one_weight(target, mlp, classification_data):
    x, y = classification_data
    gmp = GMP(target_sparsity=target, begin_step=0, end_step=8, frequency=2)
    _compiled(mlp).fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[gmp])
    for sparsity, size in _sparsities(mlp).values():
        assert abs(sparsity - target) * size <= 1.0


def test_global_scope_uses_one_threshold(classification_data):
    x, y = classification_data
    model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(64), keras.layers.Dense(3)])
    gmp = GMP(target_sparsity=0.8, begin_step=0, end_step=6, frequency=2, scope="global")
    _compiled(model).fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[gmp])
    values = [w.variable.numpy() for w in gmp.weights]
    total = sum(v.size for v in values)
    zeros = sum(v.size - np.count_nonzero(v) for v in values)
    assert abs(zeros / total - 0.8) * total <= 1.0
    # One threshold: every kept weight is at least as large as every weight pruned at the last update.
    smallest_kept = min(np.abs(v[v != 0]).min() for v in values)
    assert smallest_kept > 0
    per_layer = [1 - np.count_nonzero(v) / v.size for v in values]
    assert per_layer[0] != pytest.approx(per_layer[1], abs=1e-3)  # layers differ under global scope


@pytest.mark.filterwarnings("ignore:.*schedule ends at step:UserWarning")  # the first fit stops early on purpose
def test_mask_is_frozen_after_end_step_and_history_follows_schedule(mlp, classification_data):
    x, y = classification_data
    gmp = GMP(target_sparsity=0.75, begin_step=2, end_step=10, frequency=4)
    _compiled(mlp).fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[gmp])  # 8 steps
    mlp.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[gmp])  # steps 8..15: continues
    assert [step for step, _ in gmp.history] == [2, 6, 10]
    frozen = [w.variable.numpy() == 0 for w in gmp.weights]
    gmp_late = GMP(target_sparsity=0.75, begin_step=2, end_step=10, frequency=4)
    mlp.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[gmp_late])
    for weight, zero in zip(gmp_late.weights, frozen):
        np.testing.assert_array_equal(weight.variable.numpy() == 0, zero)


def test_logs_and_progress_show_sparsity(mlp, classification_data):
    x, y = classification_data
    gmp = GMP(target_sparsity=0.5, begin_step=0, end_step=4, frequency=2)
    history = _compiled(mlp).fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[gmp])
    assert history.history["sparsity"][-1] == pytest.approx(0.5, abs=0.01)


def test_tensorboard_scalars_are_written(tmp_path, mlp, classification_data):
    x, y = classification_data
    gmp = GMP(target_sparsity=0.5, begin_step=0, end_step=4, frequency=2, log_dir=str(tmp_path))
    _compiled(mlp).fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[gmp])
    import tensorflow as tf

    files = list(tmp_path.glob("events.out.tfevents.*"))
    assert files
    tags = {v.tag for e in tf.compat.v1.train.summary_iterator(str(files[0])) for v in e.summary.value}
    assert "sparsity/total" in tags
    assert any(tag.endswith("hidden/kernel") for tag in tags)


@pytest.mark.filterwarnings("ignore:.*schedule ends at step:UserWarning")  # the first fit stops early on purpose
def test_save_load_resume_keeps_pattern_and_schedule_position(tmp_path, mlp, classification_data):
    x, y = classification_data
    config = dict(target_sparsity=0.9, begin_step=0, end_step=24, frequency=4)
    _compiled(mlp).fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[GMP(**config)])  # 16 steps
    path = tmp_path / "pruned.keras"
    mlp.save(path)
    zeros_before = {r.layer: r.nonzeros for r in tfsparse.sparsity_report(mlp).rows}

    loaded = keras.models.load_model(path)
    assert int(loaded.optimizer.iterations.numpy()) == 16
    assert {r.layer: r.nonzeros for r in tfsparse.sparsity_report(loaded).rows} == zeros_before
    old_zero = [layer.kernel.numpy() == 0 for layer in loaded.layers]
    resumed = GMP(**config)
    loaded.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[resumed])
    assert resumed.history[0][0] == 16  # continued the schedule, did not restart at 0
    for layer, zero in zip(loaded.layers, old_zero):
        now = layer.kernel.numpy()
        assert (now[zero] == 0).all()  # old zeros stay zero
        assert masks.sparsity(now) == pytest.approx(0.9, abs=1 / now.size)


def test_config_round_trip():
    gmp = GMP(target_sparsity=0.8, begin_step=5, end_step=50, frequency=5, scope="global",
              layers=["a.*", keras.layers.Conv2D], exclude="logits")
    clone = GMP.from_config(gmp.get_config())
    assert clone.get_config() == gmp.get_config()
    assert clone.schedule == gmp.schedule and clone.layers == gmp.layers
    custom = GMP(schedule=schedules.Constant(0.5, begin_step=3))
    assert GMP.from_config(custom.get_config()).schedule == custom.schedule


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        (dict(target_sparsity=1.0, end_step=10), "target_sparsity"),
        (dict(target_sparsity=-0.5, end_step=10), "target_sparsity"),
        (dict(end_step=10), "target_sparsity"),
        (dict(target_sparsity=0.5), "end_step"),
        (dict(target_sparsity=0.5, begin_step=10, end_step=5), "end_step"),
        (dict(target_sparsity=0.5, end_step=10, frequency=0), "frequency"),
        (dict(target_sparsity=0.5, end_step=10, scope="model"), "scope"),
        (dict(target_sparsity=0.5, schedule=schedules.Constant(0.5)), "target_sparsity"),
    ],
)
def test_bad_arguments(kwargs, argument):
    with pytest.raises(ValueError, match=f"argument `{argument}`"):
        GMP(**kwargs)


def test_selector_matching_nothing_fails_when_training_starts(mlp, classification_data):
    x, y = classification_data
    gmp = GMP(target_sparsity=0.5, end_step=4, layers="hiden")
    with pytest.raises(ValueError, match="matches no prunable weight"):
        _compiled(mlp).fit(x, y, epochs=1, verbose=0, callbacks=[gmp])


def test_keep_largest_prefers_existing_zeros_for_pruning():
    values = np.array([0.0, 0.5, -0.1, 0.0, 2.0])
    np.testing.assert_array_equal(keep_largest(values, 3), [0, 1, 1, 0, 1])
    np.testing.assert_array_equal(keep_largest(values, 0), np.zeros(5))


def test_prepare_returns_the_same_model(mlp):
    assert GMP(target_sparsity=0.5, end_step=4).prepare(mlp) is mlp
