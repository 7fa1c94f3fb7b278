"""Trains with masks on the backend in `KERAS_BACKEND` and prints what came out, as JSON (run by test_backends.py).

gmp (the README's example, a resumed fit, a .keras round trip), 2:4 N:M, l1 to a target, l0 to a target (and
finalize), channel pruning to a target and to a MACs target with regularize="growing" (and finalize), and moe_expert
when the tfsparse-moe plugin imports (this checkout's `plugins/moe` first).

Usage: KERAS_BACKEND=jax python backend_run.py OUTPUT_DIR
"""

import json
import os
import sys
import warnings

import keras
import numpy as np

import tfsparse
from tfsparse import masks
from tfsparse.nm import check as check_nm

PLUGIN = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "plugins", "moe")
SCE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


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


def _numpy(variable):
    return np.asarray(keras.ops.convert_to_numpy(variable.value))


def _max_difference(a, b, x):
    return float(np.max(np.abs(a.predict(x, verbose=0) - b.predict(x, verbose=0))))


def _l1(x, y):
    keras.utils.set_random_seed(0)
    model = _model()
    l1 = tfsparse.get_strategy("l1")(target_sparsity=0.5, end_step=40, frequency=10)  # few updates: JAX retraces
    model.fit(x, y, batch_size=32, epochs=4, verbose=0, callbacks=[l1])  # 64 steps: 40 adapting, 24 frozen
    values = [_numpy(w.variable) for w in l1.weights]
    kept = [_numpy(masks.get_mask(w.variable)) != 0 for w in l1.weights]
    return {"sparsity": float(np.mean(np.concatenate([v.ravel() == 0 for v in values]))),
            "zeros_are_the_masks": all(bool(np.array_equal(v != 0, k)) for v, k in zip(values, kept)),
            "reached": l1.reached_sparsity}


def _l0(x, y):
    keras.utils.set_random_seed(0)
    l0 = tfsparse.get_strategy("l0")(target_sparsity=0.5, end_step=32, frequency=8)
    model = l0.prepare(_model())
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss=SCE)
    model.fit(x, y, batch_size=32, epochs=4, verbose=0, callbacks=[l0])  # frozen at 32, fine-tuned to 64
    deployable = tfsparse.finalize(model)
    return {"closed": l0.current_sparsity(), "open": [int((~gate.closed()).sum()) for gate in l0.gates],
            "abs_log_alpha": sorted({float(v) for gate in l0.gates for v in np.abs(gate.get_log_alpha())}),
            "finalized_units": [layer.units for layer in deployable.layers if isinstance(layer, keras.layers.Dense)],
            "finalized_gates": sum(type(layer).__name__ == "L0Gate" for layer in deployable._flatten_layers()),
            "finalize_difference": _max_difference(model, deployable, x[:64])}


def _cnn():
    inputs = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(16, 3, padding="same", name="c1")(inputs)
    h = keras.layers.ReLU()(keras.layers.BatchNormalization(name="bn1")(h))
    h = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="c2")(h)
    model = keras.Model(inputs, keras.layers.Dense(10, name="head")(keras.layers.GlobalAveragePooling2D()(h)))
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss=SCE)
    return model


def _channels(model, strategy, x, y):
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[strategy])
    zero = {}
    for weight in strategy.weights:
        values = _numpy(weight.variable)
        per_channel = values.reshape(-1, values.shape[-1])  # the channel axis is the last of every masked weight here
        zero[f"{weight.layer.name}/{weight.variable.name}"] = int(np.sum(np.all(per_channel == 0, axis=0)))
    mask_values = np.concatenate([_numpy(masks.get_mask(w.variable)).ravel() for w in strategy.weights])
    deployable = tfsparse.finalize(model)
    return {"sparsity": strategy.current_sparsity(), "target_sparsity": strategy.target_sparsity,
            "zero_channels": zero, "masks_binary": bool(np.all((mask_values == 0) | (mask_values == 1))),
            "finalized_filters": [layer.filters for layer in deployable.layers
                                  if isinstance(layer, keras.layers.Conv2D)],
            "finalize_difference": _max_difference(model, deployable, x[:32])}


def _channel(x, y):
    keras.utils.set_random_seed(0)
    strategy = tfsparse.get_strategy("channel")(target_sparsity=0.5, end_step=8, frequency=4, round_to=1,
                                                max_step_fraction=1.0)
    return _channels(_cnn(), strategy, x, y)  # 16 steps: pruned at 4 and 8


def _channel_growing(x, y):
    keras.utils.set_random_seed(0)
    model = _cnn()
    strategy = tfsparse.get_strategy("channel")(target_macs=0.5, regularize="growing", end_step=12, frequency=4,
                                                round_to=1, max_step_fraction=1.0)
    result = _channels(model, strategy, x[:192], y[:192])  # 12 steps, fading from 0: the fit ends at end_step
    model.fit(x[:192], y[:192], batch_size=16, epochs=1, verbose=0)  # a plain fit after it keeps the zeros
    kernel = _numpy(model.get_layer("c1").kernel)
    result["zero_c1_channels_after_plain_fit"] = int(np.sum(np.all(kernel.reshape(-1, 16) == 0, axis=0)))
    return result


def _moe():
    sys.path.insert(0, PLUGIN)  # this checkout's plugin before an installed one
    try:
        from tfsparse_moe import MoE, MoEExpertPruning
    except ImportError as error:
        return {"skipped": str(error)}
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 4))
    model = keras.Model(inputs, MoE(num_experts=8, hidden_units=5, top_k=2, name="moe")(inputs))
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    x = np.random.default_rng(0).normal(size=(64, 6, 4)).astype("float32")
    pruner = MoEExpertPruning(6, begin_step=4, end_step=8, frequency=2, window=4)
    model.fit(x, x, batch_size=4, epochs=1, verbose=0, callbacks=[pruner])  # 16 steps: one expert pruned at 4, 6
    layer = model.get_layer("moe")
    kept = layer.kept_experts()
    pruned_zero = all(bool(np.all(_numpy(v)[~kept] == 0)) for v in layer.expert_variables())
    return {"kept": int(kept.sum()), "pruned_experts_zero": pruned_zero,
            "router_columns_zero": bool(np.all(_numpy(layer.router_kernel)[:, ~kept] == 0)),
            "tokens_per_batch": sorted({float(batch["tokens"]) for batch in pruner._windows[id(layer)]}),
            "finalized_experts": tfsparse.finalize(model).get_layer("moe").num_experts}


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

    result["l1"] = _l1(x, y)
    result["l0"] = _l0(x, y)
    rng = np.random.default_rng(0)
    images = rng.random((256, 8, 8, 1)).astype("float32")
    labels = (images.mean(axis=(1, 2, 3)) * 10).astype("int32") % 10
    result["channel"] = _channel(images, labels)
    result["channel_growing"] = _channel_growing(images, labels)
    result["moe"] = _moe()
    print(json.dumps(result))


if __name__ == "__main__":
    warnings.filterwarnings("ignore", message=".*schedule ends at step")  # l0/l1 fine-tune after end_step on purpose
    main(sys.argv[1])
