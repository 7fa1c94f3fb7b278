"""The `channel` strategy's growing regularization (`regularize="growing"`) and MAC targets (`target_macs`)."""

import logging

import keras
import numpy as np
import pytest

import tfsparse
from tfsparse.strategies.channel import ChannelPruning, growing

L = keras.layers
END, FREQUENCY = 40, 5  # 10 steps an epoch: the schedule ends in epoch 4
LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def cnn(width=16):
    """conv-BN-ReLU x3, global average pooling, a Dense head (4 classes)."""
    inputs = keras.Input((8, 8, 3))
    x = inputs
    for i in range(3):
        x = L.Conv2D(width, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = L.BatchNormalization(momentum=0.9, name=f"bn{i}")(x)
        x = L.ReLU(name=f"relu{i}")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, L.Dense(4, name="head")(x))


def _compiled(model, learning_rate=0.01):
    model.compile(keras.optimizers.Adam(learning_rate), LOSS)
    return model


@pytest.fixture(scope="module")
def task():
    """Labels of a random wider teacher (balanced), and the weights of a student trained on them to a low loss."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(320, 8, 8, 3)).astype("float32")
    keras.utils.set_random_seed(123)
    logits = cnn(32).predict(x, verbose=0)
    y = ((logits - logits.mean(0)) / logits.std(0)).argmax(1).astype("int32")
    keras.utils.set_random_seed(0)
    student = _compiled(cnn())
    student.fit(x, y, batch_size=32, epochs=30, verbose=0)
    keras.utils.clear_session()
    return x, y, student.get_weights()


def _pretrained(task, learning_rate=0.01):
    keras.utils.set_random_seed(0)
    model = _compiled(cnn(), learning_rate)
    model.set_weights(task[2])
    return model


def _prune(task, epochs=6, **kwargs):
    """Trains the pretrained student with a channel strategy (and `Trace` after it); returns model, strategy, trace."""
    x, y, _ = task
    model = _pretrained(task, learning_rate=0.002)  # fine-tuning: a fifth of the training rate
    strategy = ChannelPruning(**{"target_sparsity": 0.5, "begin_step": 0, "end_step": END, "frequency": FREQUENCY,
                                 **kwargs})
    trace = Trace(strategy, x[:64])
    model.fit(x, y, batch_size=32, epochs=epochs, verbose=0, shuffle=False, callbacks=[strategy, trace])
    return model, strategy, trace


class Trace(keras.callbacks.Callback):
    """After every step: group 0's chosen channels, the norms of bn0's (gamma, beta) and of conv0's filters.

    Also the output change (inference mode, on `probe`) each mask update causes: the strategy runs before this
    callback, so `on_train_batch_begin` compares with the outputs after the previous step.
    """

    def __init__(self, strategy, probe):
        super().__init__()
        self.strategy, self.probe = strategy, probe
        self.norms, self.kernels, self.scheduled, self.removed = {}, {}, {}, {}  # step -> per channel of group 0
        self.shocks = {}  # update step -> max |output change| it caused
        self._outputs, self._updates = None, 0

    def _norms(self):
        bn, kernel = self.model.get_layer("bn0"), self.model.get_layer("conv0").kernel.numpy()
        return np.hypot(bn.gamma.numpy(), bn.beta.numpy()), np.sqrt((kernel ** 2).sum(axis=(0, 1, 2)))

    def on_train_begin(self, logs=None):
        self.norms[0], self.kernels[0] = self._norms()
        self._outputs = keras.ops.convert_to_numpy(self.model(self.probe, training=False))

    def on_train_batch_begin(self, batch, logs=None):
        if len(self.strategy.history) > self._updates:
            self._updates = len(self.strategy.history)
            outputs = keras.ops.convert_to_numpy(self.model(self.probe, training=False))
            self.shocks[self.strategy.history[-1][0]] = float(np.abs(outputs - self._outputs).max())

    def on_train_batch_end(self, batch, logs=None):
        step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        state = self.strategy.groups[0]
        self.norms[step], self.kernels[step] = self._norms()
        self.scheduled[step], self.removed[step] = state.scheduled.copy(), state.removed.copy()
        self._outputs = keras.ops.convert_to_numpy(self.model(self.probe, training=False))


def _channel_slices(model, channels):
    """The values of `channels` in every weight that makes group 0's channels (conv0 kernel, bn0 gamma and beta)."""
    bn = model.get_layer("bn0")
    return [model.get_layer("conv0").kernel.numpy()[..., channels], bn.gamma.numpy()[channels],
            bn.beta.numpy()[channels]]


# ------------------------------------------------------------ growing regularization
def test_growing_fades_the_chosen_channels_and_zeroes_them_at_end_step(task):
    model, strategy, trace = _prune(task, regularize="growing")
    chosen = trace.scheduled[1]  # chosen at the first update (step 0), one update ahead of the schedule
    assert chosen.any() and not trace.removed[1].any()
    start = np.linalg.norm(trace.norms[0][chosen])
    first, middle = np.linalg.norm(trace.norms[1][chosen]), np.linalg.norm(trace.norms[END // 2][chosen])
    assert 0.5 * start < first < start  # d(0) = 1e-3 ** (1 / 40) per step: a fade, not a cut
    assert 0 < middle < first
    before_end = trace.norms[END][chosen]  # after step END - 1, before the update at end_step
    assert np.all(before_end > 0) and np.linalg.norm(before_end) < 0.05 * start
    # conv0's filters go on only into bn0, which would undo their fade: they are left whole until end_step
    assert np.all(trace.kernels[END][chosen] > 0.5 * trace.kernels[0][chosen])
    assert trace.scheduled[END].sum() == 8 and not trace.removed[END].any()
    removed = trace.removed[END + 1]  # the update at end_step: exact zeros
    assert removed.sum() == 8 and not trace.scheduled[END + 1].any()
    assert np.array_equal(removed, trace.scheduled[END])
    for values in _channel_slices(model, removed):
        assert np.all(values == 0)
    assert np.all(trace.kernels[END + 1][removed] == 0) and np.all(trace.norms[END + 1][removed] == 0)
    # masks are exactly 0/1 after end_step
    for weight in strategy.weights:
        mask = tfsparse.masks.get_mask(weight.variable).numpy()
        assert np.all((mask == 0) | (mask == 1)), weight.path


@pytest.mark.filterwarnings("ignore:.*schedule ends at step:UserWarning")  # one epoch of the schedule on purpose
def test_without_regularization_chosen_channels_are_zero_right_after_their_update(task):
    model, strategy, trace = _prune(task, epochs=1)
    assert not any(scheduled.any() for scheduled in trace.scheduled.values())
    first = min(step for step, removed in trace.removed.items() if removed.any())
    assert first == FREQUENCY + 1  # the update at step 5 (the schedule's sparsity at step 0 is 0)
    assert np.all(trace.norms[first][trace.removed[first]] == 0)
    assert np.all(trace.norms[first - 1][trace.removed[first]] > 0)


@pytest.mark.filterwarnings("ignore:.*schedule ends at step:UserWarning")  # stops while channels fade, on purpose
def test_sparsity_log_counts_scheduled_channels(task):
    x, y, _ = task
    model = _pretrained(task)
    strategy = ChannelPruning(target_sparsity=0.5, end_step=END, frequency=FREQUENCY, regularize="growing")
    history = model.fit(x, y, batch_size=32, epochs=2, verbose=0, shuffle=False, callbacks=[strategy])
    assert not any(state.removed.any() for state in strategy.groups)
    assert strategy.current_sparsity() > 0.4
    assert history.history["sparsity"][-1] == pytest.approx(strategy.current_sparsity())
    assert tfsparse.sparsity_report(model).sparsity == 0  # nothing is zero yet: the chosen channels fade


def test_the_fade_goes_on_normalizations_not_on_the_kernels_they_normalize():
    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(8, 1, name="expand")(inputs)
    x = L.ReLU(name="expand_relu")(L.BatchNormalization(name="expand_bn")(x))
    x = L.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = L.ReLU(name="dw_relu")(L.BatchNormalization(name="dw_bn")(x))
    x = L.Conv2D(8, 1, name="plain")(x)  # no normalization after it
    y = L.Conv2D(8, 1, name="skip")(inputs)
    x = L.Add(name="add")([x, y])
    model = keras.Model(inputs, L.Dense(2, name="head")(L.GlobalAveragePooling2D()(x)))
    names = {layer.name for layer in growing.fading_layers(tfsparse.graph.trace(model)).values()}
    assert {"dw_bn", "plain", "skip", "head"} <= names
    assert not {"expand", "expand_bn", "dw"} & names


def test_finalize_shrinks_the_growing_model_without_changing_its_outputs(task):
    model, strategy, trace = _prune(task, epochs=4, regularize="growing")  # fit ends at end_step exactly
    assert trace.scheduled[END].sum() == 8 and strategy.groups[0].removed.sum() == 8  # removed when fit ends
    assert [state.kept for state in strategy.groups] == [8, 8, 8]
    assert not any(state.scheduled.any() for state in strategy.groups)
    deployable = tfsparse.finalize(model)
    assert [deployable.get_layer(f"conv{i}").filters for i in range(3)] == [8, 8, 8]
    assert tuple(deployable.get_layer("head").kernel.shape) == (8, 4)
    x = task[0][:64]
    np.testing.assert_allclose(deployable.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)


def test_growing_removal_is_near_lossless_and_ends_with_a_lower_loss(task):
    """The point of the feature: the same schedule, channels faded instead of cut."""
    x, y, _ = task
    results = {}
    for regularize in (None, "growing"):
        model, _, trace = _prune(task, regularize=regularize)
        results[regularize] = (trace, model.evaluate(x, y, verbose=0))
    abrupt, fading = results[None][0], results["growing"][0]
    cuts = [shock for step, shock in abrupt.shocks.items() if shock > 0]  # the updates that removed channels
    assert len(cuts) >= 3 and abrupt.removed[END].sum() == 8
    assert not fading.removed[END].any() and fading.removed[END + 1].sum() == 8  # all removed at end_step
    # that removal (exact zeros) barely changes the outputs; every abrupt cut changes them a lot
    assert 0 < fading.shocks[END] < 0.05 * min(cuts)
    assert results["growing"][1] <= results[None][1]


# ------------------------------------------------------------------- MAC targets
def test_target_macs_gives_half_the_macs_after_finalize(task, caplog):
    x, y, _ = task
    model = _pretrained(task)
    full = tfsparse.flops(model).macs
    strategy = ChannelPruning(target_macs=0.5, end_step=END, frequency=FREQUENCY, round_to=1)
    with caplog.at_level(logging.INFO, logger="absl"):  # whatever verbosity an earlier test left absl at
        strategy.prepare(model)
        model.fit(x, y, batch_size=32, epochs=5, verbose=0, callbacks=[strategy])
    resolved = [record for record in caplog.records if "resolves to target_sparsity" in record.getMessage()]
    assert len(resolved) == 1  # once, although prepare and training start both see the model
    # 11 of 16 channels a layer keep 0.491 of the MACs, 12 keep 0.579: the sparsity keeps 11
    assert 5 / 16 - 1 / 32 < strategy.target_sparsity <= 5 / 16 + 1 / 32
    assert [state.kept for state in strategy.groups] == [11, 11, 11]
    macs = tfsparse.flops(tfsparse.finalize(model)).macs
    assert macs == strategy.predicted_macs[0] and strategy.predicted_macs[1] == full
    assert macs / full == pytest.approx(0.5, abs=0.02)


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_target_macs_on_a_wider_model(scope):
    keras.utils.set_random_seed(1)
    model = _compiled(cnn(width=32))
    x = np.random.default_rng(1).normal(size=(64, 8, 8, 3)).astype("float32")
    y = np.arange(64) % 4
    strategy = ChannelPruning(target_macs=0.5, end_step=16, frequency=2, scope=scope, round_to=1,
                              max_step_fraction=0.5)
    model.fit(x, y, batch_size=16, epochs=5, verbose=0, callbacks=[strategy])
    macs, full = tfsparse.flops(tfsparse.finalize(model)).macs, tfsparse.flops(model).macs
    assert macs / full == pytest.approx(0.5, abs=0.03)
    if scope == "layer":  # 22 of 32 channels a layer keep 0.482 of the MACs, 23 keep 0.526
        assert macs == strategy.predicted_macs[0] and [state.kept for state in strategy.groups] == [22, 22, 22]
    else:  # an estimate: the ranking is replayed with the scores at the start
        assert macs / full == pytest.approx(strategy.predicted_macs[0] / full, abs=0.01)


def test_mac_counter_matches_flops_of_the_shrunk_model():
    from tfsparse.strategies.channel.macs import MacCounter

    model = cnn()
    graph = tfsparse.graph.trace(model)
    count = MacCounter(graph)
    assert count({}) == tfsparse.flops(model).macs
    kept = {1: 16, 2: 5, 3: 9}  # group 0 is the model input, 4 the head's outputs
    assert sorted(group.index for group in graph.prunable()) == sorted(kept)
    for group in graph.prunable():
        for member, channels in group.out_members():  # zero channels >= kept: what shrink removes
            values = np.moveaxis(member.variable.numpy(), member.axis, 0)
            values[channels >= kept[group.index]] = 0.0
            member.variable.assign(np.moveaxis(values, 0, member.axis))
    shrunk = tfsparse.graph.shrink(model)
    assert [shrunk.get_layer(f"conv{i}").filters for i in range(3)] == [16, 5, 9]
    assert count(kept) == tfsparse.flops(shrunk).macs < count({})


# --------------------------------------------------------------------- arguments
def test_config_round_trip_with_the_new_options():
    for kwargs in (dict(target_macs=0.4, end_step=10, regularize="growing"),
                   dict(target_sparsity=0.3, end_step=10, regularize=None, scope="global")):
        strategy = ChannelPruning(**kwargs)
        config = strategy.get_config()
        assert {key: config[key] for key in kwargs} == kwargs
        assert ChannelPruning.from_config(config).get_config() == config
    config = ChannelPruning(target_macs=0.4, end_step=10).get_config()
    assert config["target_sparsity"] is None and config["regularize"] is None


def test_target_macs_is_saved_not_the_sparsity_it_resolved_to():
    model = cnn()
    strategy = ChannelPruning(target_macs=0.5, end_step=10, round_to=1)
    strategy.prepare(model)
    assert 0 < strategy.target_sparsity < 1 and strategy.schedule.final_sparsity == strategy.target_sparsity
    clone = ChannelPruning.from_config(strategy.get_config())
    assert clone.target_macs == 0.5 and clone.target_sparsity is None


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match=r"argument `target_macs`. Expected None when target_sparsity=0.5 is given"):
        ChannelPruning(target_sparsity=0.5, target_macs=0.5, end_step=4)
    with pytest.raises(ValueError, match="argument `target_sparsity`.*or target_macs="):
        ChannelPruning(end_step=4)
    for bad in (0, 0.0, 1, 1.0, -0.5, 1.5, float("nan"), True, "half"):
        with pytest.raises(ValueError, match=r"argument `target_macs`. Expected a float in \(0, 1\)"):
            ChannelPruning(target_macs=bad, end_step=4)
    for bad in ("Growing", "l2", True, 1, ["growing"]):
        message = ("Invalid value received for argument `regularize`. Expected one of (None, 'growing'). "
                   f"Received: regularize={bad!r}")
        with pytest.raises(ValueError) as error:
            ChannelPruning(target_sparsity=0.5, end_step=4, regularize=bad)
        assert str(error.value) == message
    with pytest.raises(ValueError, match=r"argument `target_macs`. Expected at least 0\.0"):
        ChannelPruning(target_macs=0.01, end_step=4, min_channels=4).prepare(cnn())
