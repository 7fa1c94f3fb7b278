"""Masked weights stay exactly zero inside the compiled train step.

Covers every optimizer setting the mask engine promises to support; each test
trains with a GMP strategy and checks that the zero pattern of the final
weights equals the masks while the kept weights did train.
"""

import json
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from tfsparse import masks
from tfsparse.strategies.gmp import GMP

SETTINGS = {
    "sgd_momentum": dict(optimizer=lambda: keras.optimizers.SGD(0.05, momentum=0.9)),
    "adam": dict(optimizer=lambda: keras.optimizers.Adam(0.01)),
    "adamw": dict(optimizer=lambda: keras.optimizers.AdamW(0.01, weight_decay=0.5)),
    "jit_compile": dict(optimizer=lambda: keras.optimizers.Adam(0.01), compile=dict(jit_compile=True)),
    "steps_per_execution": dict(optimizer=lambda: keras.optimizers.Adam(0.01), compile=dict(steps_per_execution=3)),
    "mixed_float16": dict(optimizer=lambda: keras.optimizers.Adam(0.01), policy="mixed_float16"),
    # optimizer.iterations counts applied updates: 3 batches make one step.
    "gradient_accumulation": dict(optimizer=lambda: keras.optimizers.Adam(0.01, gradient_accumulation_steps=3), epochs=6),
}


def _check_exact_zeros(strategy, before):
    for weight, initial in zip(strategy.weights, before):
        value = weight.variable.numpy()
        mask = masks.get_mask(weight.variable).numpy()
        assert value.dtype == np.float32
        np.testing.assert_array_equal(value == 0, mask == 0, err_msg=weight.path)
        kept = mask != 0
        assert not np.allclose(value[kept], initial[kept]), f"{weight.path} did not train"


# Keras' PyTorch trainer refuses steps_per_execution > 1 ("must be 1 with the PyTorch backend"): not a setting there.
_BACKEND_SETTINGS = sorted(name for name in SETTINGS
                           if not (name == "steps_per_execution" and keras.backend.backend() == "torch"))


@pytest.mark.parametrize("setting", _BACKEND_SETTINGS)
def test_masked_weights_stay_exactly_zero(setting, classification_data):
    spec = SETTINGS[setting]
    if "policy" in spec:
        keras.mixed_precision.set_global_policy(spec["policy"])
    x, y = classification_data
    model = keras.Sequential(
        [keras.Input((16,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(3)]
    )
    model.compile(
        spec["optimizer"](),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        **spec.get("compile", {}),
    )
    gmp = GMP(target_sparsity=0.8, begin_step=0, end_step=12, frequency=3)
    before = [layer.kernel.numpy().copy() for layer in model.layers]
    model.fit(x, y, batch_size=16, epochs=spec.get("epochs", 2), verbose=0, callbacks=[gmp])
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) > 12
    _check_exact_zeros(gmp, before)
    for weight in gmp.weights:
        assert masks.sparsity(weight.variable.numpy()) == pytest.approx(0.8, abs=1 / np.prod(weight.variable.shape))


MIRRORED_SCRIPT = textwrap.dedent(
    """
    import json, numpy as np, tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from tfsparse import masks
    from tfsparse.strategies.gmp import GMP
    keras.utils.set_random_seed(0)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(3)])
        model.compile(keras.optimizers.SGD(0.05, momentum=0.9), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = np.random.default_rng(0).normal(size=(256, 16)).astype("float32")
    y = x[:, :3].argmax(axis=1)
    gmp = GMP(target_sparsity=0.75, begin_step=0, end_step=10, frequency=2)
    model.fit(x, y, batch_size=32, epochs=3, verbose=0, callbacks=[gmp])
    out = []
    for w in gmp.weights:
        value = w.variable.numpy()
        replicas = [np.asarray(v) for v in w.variable.value.values]
        out.append({
            "replicas": len(replicas),
            "replicas_equal": all(np.array_equal(r, replicas[0]) for r in replicas),
            "zeros_match_mask": bool(np.array_equal(value == 0, masks.get_mask(w.variable).numpy() == 0)),
            "sparsity": float(masks.sparsity(value)),
        })
    print("RESULT" + json.dumps(out))
    """
)


@pytest.mark.tensorflow_only("tf.distribute.MirroredStrategy")
def test_masked_weights_stay_zero_under_mirrored_strategy():
    proc = subprocess.run([sys.executable, "-c", MIRRORED_SCRIPT], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(l for l in proc.stdout.splitlines() if l.startswith("RESULT"))
    results = json.loads(line[len("RESULT"):])
    assert len(results) == 2
    for result in results:
        assert result["replicas"] == 2
        assert result["replicas_equal"]
        assert result["zeros_match_mask"]
        assert result["sparsity"] == pytest.approx(0.75, abs=0.01)


def test_masks_hold_when_the_model_was_trained_before_without_the_callback():
    """A train step traced before the strategy attached its masks must be retraced."""
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16), keras.layers.Dense(1)])
    model.compile("adam", "mse")
    rng = np.random.default_rng(0)
    x, y = rng.random((64, 8), dtype=np.float32), rng.random((64, 1), dtype=np.float32)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    gmp = GMP(target_sparsity=0.5, begin_step=0, end_step=8, frequency=8)
    model.fit(x, y, batch_size=8, epochs=3, verbose=0, callbacks=[gmp])
    kernel = model.layers[0].kernel.numpy()
    assert np.count_nonzero(kernel == 0) == kernel.size // 2
