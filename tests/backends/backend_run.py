"""Trains with masks on the backend in `KERAS_BACKEND` and prints what came out, as JSON (run by test_backends.py).

Usage: KERAS_BACKEND=jax python backend_run.py OUTPUT_DIR
"""

import json
import os
import sys

import keras
import numpy as np

import tfsparse
from tfsparse import masks
from tfsparse.nm import check as check_nm


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(512, 16)).astype("float32")
    return x, x[:, :3].argmax(axis=1).astype("int32")


def _model():
    model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(64, activation="relu", name="hidden"),
                              keras.layers.Dense(8, activation="relu", name="middle"), keras.layers.Dense(3, name="out")])
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def _zeros(strategy):
    return {w.path: float(np.mean(keras.ops.convert_to_numpy(w.variable.value) == 0)) for w in strategy.weights}


def main(output):
    x, y = _data()
    result = {"backend": keras.backend.backend()}

    model = _model()  # the README's GMP example, scaled to 80 steps
    initial = [keras.ops.convert_to_numpy(w) for w in model.trainable_weights]
    gmp = tfsparse.get_strategy("gmp")(target_sparsity=0.9, begin_step=0, end_step=40, frequency=10)
    model.fit(x, y, batch_size=32, epochs=5, verbose=0, callbacks=[gmp])
    result["gmp_zeros"] = _zeros(gmp)
    result["gmp_masks"] = {w.path: float(np.mean(keras.ops.convert_to_numpy(masks.get_mask(w.variable).value) == 0))
                           for w in gmp.weights}
    final = [keras.ops.convert_to_numpy(w) for w in model.trainable_weights]
    kept = [(a != b)[b != 0] for a, b in zip(initial, final)]
    result["kept_weights_trained"] = float(np.mean(np.concatenate([k.ravel() for k in kept])))
    result["accuracy"] = float(model.evaluate(x, y, verbose=0, return_dict=True)["accuracy"])

    again = tfsparse.get_strategy("gmp")(target_sparsity=0.9, begin_step=0, end_step=40, frequency=10)
    model.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[again])  # a resumed fit keeps the zeros
    result["resumed_zeros"] = _zeros(again)
    path = os.path.join(output, "gmp.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    result["loaded_zeros"] = {w.path: float(np.mean(keras.ops.convert_to_numpy(w) == 0))
                              for w in loaded.trainable_weights if len(w.shape) == 2}

    model = _model()
    nm = tfsparse.get_strategy("nm")(n=2, m=4, frequency=4)
    model.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[nm])
    result["nm_2_4"] = bool(check_nm(model, n=2, m=4).ok)
    result["nm_zeros"] = _zeros(nm)
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1])
