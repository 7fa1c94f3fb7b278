"""GMP with `scope="erk"`, `"latency"` and a capped `"global"` on a small functional conv model."""

import keras
import numpy as np
import pytest

import tfsparse
from tfsparse import allocation, masks
from tfsparse.strategies.gmp import GMP, macs_per_weight

TARGET = 0.8
STEPS = dict(begin_step=0, end_step=6, frequency=2)


def _conv_model():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="stem")(inputs)  # 432 scalars, 64 MACs each
    x = keras.layers.Conv2D(64, 1, activation="relu", name="pw")(x)  # 1024 scalars, 64 MACs each
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(3, name="head")(x)  # 192 scalars, 1 MAC each
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.Adam(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


class _MaskRecorder(keras.callbacks.Callback):
    """The masks of `gmp`'s weights before every batch (after GMP's update, which runs first)."""

    def __init__(self, gmp):
        super().__init__()
        self.gmp, self.masks = gmp, []

    def on_train_batch_begin(self, batch, logs=None):
        self.masks.append([masks.get_mask(w.variable).numpy().copy() for w in self.gmp.weights])


def _train(gmp):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 8, 8, 3)).astype("float32")
    y = (x[:, 0, 0, :].argmax(axis=1)).astype("int32")
    model = _conv_model()
    recorder = _MaskRecorder(gmp)
    model.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[gmp, recorder])  # 8 steps: updates at 0, 2, 4, 6
    sparsity = {w.layer.name: 1 - np.count_nonzero(w.variable.numpy()) / w.variable.numpy().size for w in gmp.weights}
    return model, sparsity, recorder.masks


def _check_pooled_and_monotone(gmp, history):
    values = [w.variable.numpy() for w in gmp.weights]
    total = sum(v.size for v in values)
    assert sum(v.size - np.count_nonzero(v) for v in values) == round(TARGET * total)
    assert [step for step, _ in gmp.history] == [0, 2, 4, 6]
    assert len({tuple(int(m.sum()) for m in step) for step in history}) == 4  # the masks changed at each update
    for before, after in zip(history, history[1:]):
        for old, new in zip(before, after):
            assert (new <= old).all()  # a pruned weight is never regrown


def test_erk_scope_matches_the_allocation_and_keeps_the_head_denser():
    gmp = GMP(target_sparsity=TARGET, scope="erk", **STEPS)
    _, sparsity, history = _train(gmp)
    _check_pooled_and_monotone(gmp, history)
    expected = allocation.erk([tuple(w.variable.shape) for w in gmp.weights], TARGET)
    assert [sparsity[w.layer.name] for w in gmp.weights] == pytest.approx(expected, abs=1e-9)
    # density ~ sum(shape) / prod(shape): stem 25 / 432 < pw 82 / 1024 < head 67 / 192
    assert sparsity["stem"] > sparsity["pw"] > TARGET > sparsity["head"] + 0.2


def test_latency_scope_prunes_the_convolutions_harder_than_the_head():
    gmp = GMP(target_sparsity=TARGET, scope="latency", max_layer_sparsity=0.9, **STEPS)
    _, sparsity, history = _train(gmp)
    _check_pooled_and_monotone(gmp, history)
    assert max(sparsity.values()) <= 0.9
    assert min(sparsity["stem"], sparsity["pw"]) > TARGET > sparsity["head"] + 0.2


def test_latency_costs_are_macs_per_weight_of_each_layer_nested_models_included():
    inputs = keras.Input((4, 4, 8))
    block_in = keras.Input((2, 2, 8))
    block = keras.Model(block_in, keras.layers.Conv2D(8, 1, name="inner")(block_in), name="block")
    x = keras.layers.SeparableConv2D(8, 3, padding="same", name="sep")(inputs)  # 16 positions
    x = block(keras.layers.MaxPooling2D()(x))  # 4 positions
    outputs = keras.layers.Dense(2, name="fc")(keras.layers.Flatten()(x))
    model = keras.Model(inputs, outputs)
    gmp = GMP(target_sparsity=0.5, scope="latency", end_step=4)
    gmp.attach(model)
    costs = macs_per_weight(model, gmp.weights)
    assert {w.path: costs[id(w.variable)] for w in gmp.weights} == {
        "sep/depthwise_kernel": 16, "sep/pointwise_kernel": 16, "inner/kernel": 4, "fc/kernel": 1}
    assert gmp._costs == costs


def test_latency_on_a_subclassed_model_warns_and_costs_one():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.conv = keras.layers.Conv2D(4, 1)

        def call(self, x):
            return self.conv(x)

    model = Net()
    model(np.zeros((1, 4, 4, 3), "float32"))
    with pytest.warns(UserWarning, match="subclassed model"):
        assert macs_per_weight(model, tfsparse.prunable_weights(model)) == {}


def test_capped_global_scope():
    uncapped = GMP(target_sparsity=TARGET, scope="global", **STEPS)
    _, free, _ = _train(uncapped)
    keras.utils.clear_session()
    keras.utils.set_random_seed(0)
    gmp = GMP(target_sparsity=TARGET, scope="global", max_layer_sparsity=0.85, **STEPS)
    _, sparsity, history = _train(gmp)
    _check_pooled_and_monotone(gmp, history)
    assert max(free.values()) > 0.85  # the cap matters here
    assert max(sparsity.values()) <= 0.85
    assert 0.85 - 1 / 432 < max(sparsity.values())  # the layer that would be sparser sits at the cap


@pytest.mark.parametrize("scope, cap", [("erk", None), ("latency", 0.95), ("global", 0.9), ("layer", None)])
def test_config_round_trip(scope, cap):
    gmp = GMP(target_sparsity=TARGET, scope=scope, max_layer_sparsity=cap, layers=["stem", "pw"], **STEPS)
    config = gmp.get_config()
    assert config["max_layer_sparsity"] == cap and config["scope"] == scope
    clone = GMP.from_config(config)
    assert clone.get_config() == config and clone._cap == gmp._cap


def test_saved_model_keeps_exact_zeros(tmp_path):
    gmp = GMP(target_sparsity=TARGET, scope="erk", **STEPS)
    model, _, _ = _train(gmp)
    path = tmp_path / "erk.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    for name in ("stem", "pw", "head"):
        before, after = model.get_layer(name).kernel.numpy(), loaded.get_layer(name).kernel.numpy()
        np.testing.assert_array_equal(after == 0, before == 0)
        np.testing.assert_array_equal(after, before)
    assert sum(int((loaded.get_layer(n).kernel.numpy() == 0).sum()) for n in ("stem", "pw", "head")) == round(
        TARGET * (432 + 1024 + 192))


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(scope="erk", max_layer_sparsity=1.0),
        dict(scope="latency", max_layer_sparsity=0),
        dict(scope="global", max_layer_sparsity="0.9"),
        dict(scope="global", max_layer_sparsity=True),
        dict(scope="global", max_layer_sparsity=0.7),  # below the final sparsity
        dict(scope="layer", max_layer_sparsity=0.7),
    ],
)
def test_bad_max_layer_sparsity(kwargs):
    with pytest.raises(ValueError, match="argument `max_layer_sparsity`"):
        GMP(target_sparsity=TARGET, **STEPS, **kwargs)


def test_default_cap_of_erk_and_latency_must_allow_the_target():
    with pytest.raises(ValueError, match="argument `max_layer_sparsity`.*caps at 0.98"):
        GMP(target_sparsity=0.99, scope="erk", end_step=10)
    assert GMP(target_sparsity=0.99, scope="latency", end_step=10, max_layer_sparsity=0.995)._cap == 0.995
    assert GMP(target_sparsity=0.99, scope="global", end_step=10)._cap is None
