import keras
import numpy as np
import pytest
from gradients import gradient

import tfsparse
from tfsparse import masks
from tfsparse.backend_state import before_writes
from tfsparse.strategies.l1 import L1, SoftThreshold
from tfsparse.training import make_strategy

SCE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _soft_threshold(w, t):
    return np.sign(w) * np.maximum(np.abs(w) - t, 0)


class _ZeroRecorder(keras.callbacks.Callback):
    """Records the zero pattern of the given variables after every step."""

    def __init__(self, variables):
        super().__init__()
        self.variables = variables
        self.patterns = []

    def on_train_batch_end(self, batch, logs=None):
        before_writes(self.model)  # JAX empties the variables mid-epoch: sync them before reading (backend_state)
        self.patterns.append(np.concatenate([keras.ops.convert_to_numpy(v).ravel() == 0 for v in self.variables]))


def _kernels(model):
    return [layer.kernel for layer in model.layers if hasattr(layer, "kernel")]


LEARNING_RATES = {
    "float": lambda: 0.3,
    "exponential": lambda: keras.optimizers.schedules.ExponentialDecay(0.5, decay_steps=1, decay_rate=0.5),
    "piecewise": lambda: keras.optimizers.schedules.PiecewiseConstantDecay([0], [0.6, 0.2]),
}


@pytest.mark.parametrize("jit_compile", [False, True])
@pytest.mark.parametrize("lr_kind", sorted(LEARNING_RATES))
def test_step_is_soft_threshold_at_the_scheduled_learning_rate(lr_kind, jit_compile):
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(16, 4)).astype("float32"), rng.normal(size=(16, 3)).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    optimizer = keras.optimizers.SGD(LEARNING_RATES[lr_kind]())
    model.compile(optimizer, "mse", jit_compile=jit_compile)
    lam = 0.4
    l1 = L1(l1=lam, frequency=1)
    model.fit(x, y, batch_size=16, verbose=0, callbacks=[l1])  # step 0
    kernel = model.layers[0].kernel
    assert isinstance(kernel.constraint.inner, SoftThreshold)
    before, mask = kernel.numpy(), masks.get_mask(kernel).numpy()
    assert np.all(before[mask == 0] == 0) and np.any(before == 0)  # zeros of step 0 are in the mask
    grad = gradient(lambda: keras.losses.MeanSquaredError()(y, model(x)), kernel)
    lr = float(keras.ops.convert_to_numpy(optimizer.learning_rate))  # at iteration 1
    assert lr == pytest.approx({"float": 0.3, "exponential": 0.25, "piecewise": 0.2}[lr_kind])
    model.fit(x, y, batch_size=16, verbose=0, callbacks=[l1])  # step 1
    expected = _soft_threshold(before - lr * grad, lr * lam) * mask
    np.testing.assert_allclose(kernel.numpy(), expected, atol=1e-6)
    np.testing.assert_array_equal(kernel.numpy() == 0, expected == 0)


@pytest.mark.parametrize(
    "optimizer, lam",
    [(lambda: keras.optimizers.SGD(0.1, momentum=0.9), 0.05), (lambda: keras.optimizers.Adam(0.01), 0.3)],
    ids=["sgd", "adam"],
)
def test_zeros_appear_and_stay_zero(optimizer, lam, mlp, classification_data):
    x, y = classification_data
    mlp.compile(optimizer(), SCE, jit_compile=True)
    # TensorFlow and PyTorch record a zero in its mask inside the step that makes it; JAX's jitted step cannot
    # write a mask, so the callback records the zeros at each update step (l1's docstring): there a zero stays
    # zero at every step when every step is an update step.
    l1 = L1(l1=lam, frequency=1 if keras.backend.backend() == "jax" else 4)
    recorder = _ZeroRecorder(_kernels(mlp))
    mlp.fit(x, y, batch_size=32, epochs=3, verbose=0, callbacks=[l1, recorder])
    patterns = recorder.patterns
    assert patterns[-1].mean() > 0.2
    for earlier, later in zip(patterns, patterns[1:]):
        assert np.all(later[earlier])  # a zero stays zero, at every step
    for kernel in _kernels(mlp):  # the masks hold them
        np.testing.assert_array_equal(masks.get_mask(kernel).numpy() == 0, kernel.numpy() == 0)
    # Further training without the callback: the penalty is off, the zeros stay.
    mlp.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[recorder])
    np.testing.assert_array_equal(recorder.patterns[-1], patterns[-1])


def test_a_new_instance_on_a_compiled_model_takes_effect(mlp, classification_data):
    x, y = classification_data
    mlp.compile(keras.optimizers.SGD(0.1), SCE)
    first = mlp.fit(x, y, batch_size=32, verbose=0, callbacks=[L1(l1=0.0)])
    assert first.history["sparsity"] == [0.0]
    second = mlp.fit(x, y, batch_size=32, verbose=0, callbacks=[L1(l1=0.5)])  # same compiled step
    assert second.history["sparsity"][-1] > 0.2


def test_lambda_schedule_and_begin_step(mlp, classification_data):
    x, y = classification_data
    mlp.compile(keras.optimizers.SGD(0.1), SCE)
    ramp = keras.optimizers.schedules.PolynomialDecay(0.0, decay_steps=8, end_learning_rate=0.4, power=1.0)
    l1 = L1(l1=ramp, begin_step=4, frequency=1)
    recorder = _ZeroRecorder(_kernels(mlp))
    history = mlp.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[l1, recorder])
    assert [l1.lambda_at(s) for s in (0, 3)] == [0.0, 0.0]
    assert l1.lambda_at(4) == pytest.approx(0.2) and l1.lambda_at(12) == pytest.approx(0.4)
    assert not any(p.any() for p in recorder.patterns[:4])  # no penalty before begin_step
    assert recorder.patterns[-1].any()
    assert history.history["l1_lambda"] == pytest.approx([0.35, 0.4])


def test_logs_hold_penalty_lambda_and_sparsity(mlp, classification_data):
    x, y = classification_data
    mlp.compile(keras.optimizers.Adam(0.01), SCE)
    l1 = L1(l1=0.2, frequency=2)
    history = mlp.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[l1])
    kernels = [k.numpy() for k in _kernels(mlp)]
    assert history.history["l1_penalty"][-1] == pytest.approx(0.2 * sum(np.abs(k).sum() for k in kernels), rel=1e-5)
    assert history.history["l1_lambda"] == [0.2, 0.2]
    zeros = sum(k.size - np.count_nonzero(k) for k in kernels) / sum(k.size for k in kernels)
    assert history.history["sparsity"][-1] == pytest.approx(zeros) and zeros > 0
    assert history.history["l1_penalty"][0] > history.history["l1_penalty"][-1]


def test_target_mode_reaches_target_and_freezes_mask(mlp, classification_data):
    x, y = classification_data
    mlp.compile(keras.optimizers.Adam(0.01), SCE)
    l1 = L1(target_sparsity=0.5, begin_step=0, end_step=40, frequency=2)
    history = mlp.fit(x, y, batch_size=32, epochs=6, verbose=0, callbacks=[l1])  # steps 0..47
    assert l1.history[-1][0] == 40
    assert 0.4 <= l1.reached_sparsity <= 0.6  # lambda did the work; magnitude only tops up
    kernels = _kernels(mlp)
    frozen = [masks.get_mask(k).numpy().copy() for k in kernels]
    mask_sparsity = 1 - sum(m.sum() for m in frozen) / sum(m.size for m in frozen)
    assert abs(mask_sparsity - 0.5) <= 0.01
    assert abs(history.history["sparsity"][-1] - 0.5) <= 0.01
    assert history.history["l1_lambda"][-1] == 0.0 and history.history["l1_penalty"][-1] == 0.0
    # Fine-tuning: the mask is frozen and its zeros stay zero.
    mlp.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[l1])
    for kernel, mask in zip(kernels, frozen):
        np.testing.assert_array_equal(masks.get_mask(kernel).numpy(), mask)
        assert np.all(kernel.numpy()[mask == 0] == 0)
    assert abs(l1.current_sparsity() - 0.5) <= 0.01


def test_target_mode_from_make_strategy(mlp, classification_data):
    x, y = classification_data
    l1 = make_strategy("l1", target_sparsity=0.5, steps={"begin_step": 0, "end_step": 8, "frequency": 2})
    assert isinstance(l1, L1) and l1.target_sparsity == 0.5 and l1.schedule.end_step == 8
    mlp.compile(keras.optimizers.Adam(0.01), SCE)
    mlp.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[l1])
    assert abs(l1.current_sparsity() - 0.5) <= 0.01
    fixed = make_strategy("l1", l1=0.001)
    assert fixed.l1 == 0.001 and fixed.target_sparsity is None


def test_bn_gamma_zeroes_only_gammas():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 8, 8, 3)).astype("float32")
    y = rng.integers(0, 2, size=64).astype("int32")
    inputs = keras.Input((8, 8, 3))
    h = keras.layers.Conv2D(16, 3, name="conv1")(inputs)
    h = keras.layers.BatchNormalization(name="bn1")(h)
    h = keras.layers.ReLU()(h)
    h = keras.layers.Conv2D(16, 3, name="conv2")(h)
    h = keras.layers.BatchNormalization(name="bn2")(h)
    h = keras.layers.GlobalAveragePooling2D()(keras.layers.ReLU()(h))
    model = keras.Model(inputs, keras.layers.Dense(2)(h))
    model.compile(keras.optimizers.SGD(0.1), SCE)
    l1 = L1(l1=2.0, weights="bn_gamma", frequency=1)
    history = model.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[l1])
    assert [w.path for w in l1.weights] == ["bn1/gamma", "bn2/gamma"]
    gammas = [model.get_layer(n).gamma.numpy() for n in ("bn1", "bn2")]
    assert all((g == 0).any() for g in gammas) and history.history["sparsity"][-1] > 0
    for name in ("conv1", "conv2"):
        assert np.count_nonzero(model.get_layer(name).kernel.numpy()) == model.get_layer(name).kernel.numpy().size
        assert not masks.has_mask(model.get_layer(name).kernel)
    only = L1(l1=1.0, weights="bn_gamma", layers="bn2")
    only.attach(model)
    assert [w.path for w in only.weights] == ["bn2/gamma"]


def test_bn_gamma_needs_batch_normalization(mlp):
    mlp.compile("sgd", SCE)
    with pytest.raises(ValueError, match="BatchNormalization gamma"):
        L1(l1=0.1, weights="bn_gamma").attach(mlp)


def test_gradient_accumulation_thresholds_only_on_update_steps(mlp, classification_data):
    x, y = classification_data
    mlp.compile(keras.optimizers.SGD(0.1, gradient_accumulation_steps=2), SCE)
    before = [k.numpy() for k in _kernels(mlp)]
    mlp.fit(x[:32], y[:32], batch_size=32, verbose=0, callbacks=[L1(l1=1.0)])  # accumulates only
    for kernel, value in zip(_kernels(mlp), before):
        np.testing.assert_array_equal(kernel.numpy(), value)
    mlp.fit(x[:32], y[:32], batch_size=32, verbose=0, callbacks=[L1(l1=1.0)])  # updates
    assert any((k.numpy() == 0).any() for k in _kernels(mlp))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"l1": -1}, r"argument `l1`.*Received: l1=-1"),
        ({"l1": float("nan")}, "argument `l1`"),
        ({"l1": "big"}, "argument `l1`"),
        ({"l1": True}, "argument `l1`"),
        ({}, r"argument `l1`.*target_sparsity"),
        ({"target_sparsity": 1.0, "end_step": 10}, r"target_sparsity.*Received: target_sparsity=1.0"),
        ({"target_sparsity": 1.5, "end_step": 10}, "target_sparsity"),
        ({"target_sparsity": 0.0, "end_step": 10}, "target_sparsity"),
        ({"target_sparsity": 0.5}, "end_step"),
        ({"target_sparsity": 0.5, "end_step": 10, "l1": 0.0}, "argument `l1`"),
        ({"target_sparsity": 0.5, "end_step": 10, "l1": keras.optimizers.schedules.CosineDecay(0.1, 10)}, "l1"),
        ({"l1": 0.1, "weights": "bias"}, "argument `weights`"),
        ({"l1": 0.1, "weights": "bn_gamma", "policy": "xnnpack"}, "argument `policy`"),
    ],
)
def test_bad_arguments_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        L1(**kwargs)


def test_unreachable_target_is_refused_when_training_starts(classification_data):
    model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(2, name="tiny")])  # 32 weights
    model.compile("sgd", "mse")
    with pytest.raises(ValueError, match=r"keeps at least one of the 32 selected weights"):
        L1(target_sparsity=0.99, end_step=4).attach(model)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"l1": 0.01},
        {"l1": keras.optimizers.schedules.PolynomialDecay(0.0, 100, 0.01), "begin_step": 5, "layers": "hidden"},
        {"target_sparsity": 0.8, "end_step": 100, "frequency": 10, "weights": "bn_gamma"},
    ],
)
def test_config_round_trip(kwargs):
    l1 = L1(**kwargs)
    config = l1.get_config()
    clone = L1.from_config(config)
    assert clone.get_config() == config
    assert type(clone.l1) is type(l1.l1)
    assert tfsparse.get_strategy("l1") is L1
