"""`keras.distribution.DataParallel` on JAX: masks identical on every replica, exact zeros.

Two CPU devices are simulated (`XLA_FLAGS=--xla_force_host_platform_device_count=2`),
in a process of its own since JAX reads the flag once. Masks are computed on the
host from the (replicated) weights and assigned with a replicated layout, so
every replica applies the same mask at every step. TensorFlow's
`MirroredStrategy` is covered in tests/test_mask_training.py.
"""

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")

SCRIPT = textwrap.dedent(
    """
    import json
    import keras
    import numpy as np
    import tfsparse
    from tfsparse import masks

    devices = keras.distribution.list_devices()
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(512, 16)).astype("float32")
    y = x[:, :3].argmax(axis=1).astype("int32")
    model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(64, activation="relu", name="hidden"),
                              keras.layers.Dense(3, name="out")])
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    gmp = tfsparse.get_strategy("gmp")(target_sparsity=0.9, begin_step=0, end_step=40, frequency=10)
    model.fit(x, y, batch_size=32, epochs=5, verbose=0, callbacks=[gmp])
    out = {"devices": len(devices), "weights": []}
    for weight in gmp.weights:
        mask_shards = [np.asarray(s.data) for s in masks.get_mask(weight.variable).value.addressable_shards]
        weight_shards = [np.asarray(s.data) for s in weight.variable.value.addressable_shards]
        out["weights"].append({
            "path": weight.path,
            "replicas": len(weight_shards),
            "masks_equal": all(np.array_equal(mask_shards[0], s) for s in mask_shards),
            "weights_equal": all(np.array_equal(weight_shards[0], s) for s in weight_shards),
            "zeros_match_mask": bool(np.array_equal(weight_shards[0] == 0, mask_shards[0] == 0)),
            "zeros": float(np.mean(weight_shards[0] == 0)),
        })
    print("RESULT" + json.dumps(out))
    """
)


def test_data_parallel_replicas_share_masks_and_exact_zeros():
    env = dict(os.environ, KERAS_BACKEND="jax", XLA_FLAGS="--xla_force_host_platform_device_count=2",
               TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("RESULT"))[len("RESULT"):])
    assert result["devices"] == 2 and len(result["weights"]) == 2
    for weight in result["weights"]:
        assert weight["replicas"] == 2
        assert weight["masks_equal"] and weight["weights_equal"] and weight["zeros_match_mask"], weight
        assert 0.9 <= weight["zeros"] < 0.93, weight
