"""The `nm` strategy: N:M blocks along the reduction axis, ramp-up, bad input."""

import keras
import numpy as np
import pytest

import tfsparse
from tfsparse.nm import check, nm_mask
from tfsparse.strategies.nm import NM
from tfsparse.training import make_strategy


def _compiled(model):
    model.compile(keras.optimizers.Adam(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _block_nonzeros(kernel, axis, m=4):
    """Non-zeros of every block of m entries along `axis` (independent of tfsparse.nm)."""
    moved = np.moveaxis(kernel, axis, -1)
    return (moved.reshape(*moved.shape[:-1], moved.shape[-1] // m, m) != 0).sum(axis=-1)


def _cnn():
    inputs = keras.Input((6, 6, 4))
    x = keras.layers.Conv2D(8, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.Flatten()(x)
    return keras.Model(inputs, keras.layers.Dense(3, name="fc")(x))


def test_every_block_holds_at_most_n_after_training_in_keras_and_tflite(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(128, 6, 6, 4)).astype("float32"), rng.integers(0, 3, 128)
    model = _cnn()
    nm = NM(n=2, m=4, begin_step=0)
    history = _compiled(model).fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[nm])
    assert history.history["sparsity"] == [0.5, 0.5]
    conv, fc = model.get_layer("conv").kernel.numpy(), model.get_layer("fc").kernel.numpy()
    assert _block_nonzeros(conv, 2).max() == 2 and _block_nonzeros(fc, 0).max() == 2  # (kh, kw, in, out), (in, out)
    assert _block_nonzeros(fc, 1, m=3).max() == 3  # along outputs there is no pattern: the axis matters
    deployable = NM.finalize(model)
    path = tmp_path / "nm.tflite"
    tfsparse.export(deployable, path, target="dense", verify=False)
    report = check(path, n=2, m=4)
    assert report.ok and len(report.tensors) == 2, str(report)
    assert sum(t.blocks for t in report.tensors) == conv.size // 4 + fc.size // 4


def test_masks_keep_the_n_largest_magnitudes_at_the_switch(mlp):
    nm = NM(n=1, m=4, begin_step=0)
    nm.attach(mlp)
    before = mlp.get_layer("hidden").kernel.numpy()
    nm.update_masks(0)
    after = mlp.get_layer("hidden").kernel.numpy()
    blocks = np.abs(before).reshape(4, 4, 32)  # (in=16, out=32): 4 blocks of 4 input channels
    kept = (after.reshape(4, 4, 32) != 0)
    np.testing.assert_array_equal(kept, blocks == blocks.max(axis=1, keepdims=True))
    assert nm.current_sparsity() == 0.75


def test_dense_until_begin_step_then_nm_and_frozen(mlp, classification_data):
    x, y = classification_data  # 8 steps per epoch at batch size 32
    nm = NM(begin_step=8)
    history = _compiled(mlp).fit(x, y, batch_size=32, epochs=3, verbose=0, callbacks=[nm])
    assert history.history["sparsity"] == [0.0, 0.5, 0.5]
    assert nm.history == [(8, 0.5)]  # switched once, then no more updates


def _three_dense():
    return keras.Sequential([keras.Input((16,)), keras.layers.Dense(32, name="a"), keras.layers.Dense(16, name="b"),
                             keras.layers.Dense(4, name="c")])


def test_layerwise_switches_one_weight_at_a_time(classification_data):
    x, y = classification_data
    model = _three_dense()
    nm = NM(begin_step=1, frequency=3, layerwise=True)
    _compiled(model).fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[nm])  # steps 0..7
    sizes = [16 * 32, 32 * 16, 16 * 4]
    expected = [(1, 0.5 * sizes[0] / sum(sizes)), (4, 0.5 * sum(sizes[:2]) / sum(sizes)), (7, 0.5)]
    assert nm.history == [(step, pytest.approx(value)) for step, value in expected]
    deadline = NM(begin_step=0, end_step=2, frequency=100, layerwise=True)
    _compiled(_three_dense()).fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[deadline])
    assert [step for step, _ in deadline.history] == [0, 2] and deadline.history[-1][1] == 0.5


def test_resumed_training_keeps_the_pattern(mlp, classification_data, tmp_path):
    x, y = classification_data
    _compiled(mlp).fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[NM()])
    path = tmp_path / "pruned.keras"
    mlp.save(path)
    zeros = mlp.get_layer("hidden").kernel.numpy() == 0
    model = keras.models.load_model(path)
    resumed = NM()
    model.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[resumed])
    np.testing.assert_array_equal(model.get_layer("hidden").kernel.numpy() == 0, zeros)
    assert check(model).ok


@pytest.mark.parametrize("n,m,match", [(4, 4, r"Expected 1 <= n < m.*Received: n=4, m=4"),
                                       (0, 4, "Received: n=0, m=4"), (5, 4, "Received: n=5, m=4"),
                                       (2.0, 4, "Expected an integer"), (2, None, "Received: m=None")])
def test_rejects_bad_n_and_m(n, m, match):
    with pytest.raises(ValueError, match=match):
        NM(n=n, m=m)


def test_rejects_bad_options():
    with pytest.raises(ValueError, match="non_multiple"):
        NM(non_multiple="ignore")
    with pytest.raises(ValueError, match="layerwise"):
        NM(layerwise="yes")
    with pytest.raises(ValueError, match="end_step"):
        NM(begin_step=5, end_step=5)


def test_non_multiple_reduction_axis_errors_or_pads(classification_data):
    x, y = classification_data
    x = x[:, :7]  # 7 input channels: one block of 4 and a partial block of 3
    model = keras.Sequential([keras.Input((7,)), keras.layers.Dense(8, name="odd"), keras.layers.Dense(3, name="out")])
    with pytest.raises(ValueError, match=r"odd/kernel \(7 along axis 0\) is not a multiple of m=4.*exclude"):
        _compiled(model).fit(x, y, epochs=1, verbose=0, callbacks=[NM()])
    nm = NM(non_multiple="pad")
    with pytest.warns(UserWarning, match="odd/kernel.*keeps at most 2"):
        nm.select(model)
    model.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[nm])  # warned once, not again
    kernel = model.get_layer("odd").kernel.numpy()
    assert (kernel[:4] != 0).sum(axis=0).max() == 2 and (kernel[4:] != 0).sum(axis=0).max() == 2
    assert check(model).ok
    excluded = NM(exclude="odd")
    model.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[excluded])
    assert [w.layer.name for w in excluded.weights] == ["out"]


def test_depthwise_kernels_are_left_dense():
    inputs = keras.Input((6, 6, 4))
    x = keras.layers.DepthwiseConv2D(3, name="dw")(inputs)
    x = keras.layers.Conv2D(8, 1, name="pw")(x)
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))
    model.compile("sgd", "mse")
    nm = NM()
    model.fit(np.ones((4, 6, 6, 4)), np.ones((4, 8)), verbose=0, callbacks=[nm])
    assert [w.layer.name for w in nm.weights] == ["pw"] and [p.split("/")[-2] for p in nm.skipped] == ["dw"]
    assert np.count_nonzero(model.get_layer("dw").kernel.numpy()) == 3 * 3 * 4
    with pytest.raises(ValueError, match="has a reduction axis"):
        model.fit(np.ones((4, 6, 6, 4)), np.ones((4, 8)), verbose=0, callbacks=[NM(layers="dw")])


def test_config_round_trip_and_make_strategy():
    nm = NM(n=1, m=8, begin_step=3, end_step=9, frequency=2, layerwise=True, non_multiple="pad", layers="hidden")
    config = nm.get_config()
    assert {k: config[k] for k in ("n", "m", "begin_step", "end_step", "frequency", "layerwise")} == {
        "n": 1, "m": 8, "begin_step": 3, "end_step": 9, "frequency": 2, "layerwise": True}
    assert NM.from_config(config).get_config() == config
    made = make_strategy("nm", target_sparsity=0.5, steps={"begin_step": 0, "end_step": 8, "frequency": 2})
    assert isinstance(made, NM) and (made.n, made.m, made.schedule.end_step) == (2, 4, 8)
    assert make_strategy("nm", n=1, m=4).get_config()["n"] == 1
    assert tfsparse.get_strategy("nm") is NM


def test_nm_mask_matches_what_training_applies(mlp):
    nm = NM()
    nm.attach(mlp)
    kernels = [w.variable.numpy() for w in nm.weights]
    masks = nm.compute_masks(0, nm.weights)
    for kernel, mask in zip(kernels, masks):
        np.testing.assert_array_equal(mask, nm_mask(kernel, 2, 4, 0))
