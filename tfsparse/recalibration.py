"""`recalibrate(model, data)`: BatchNormalization statistics re-estimated from data.

Pruning, `make_compatible` and fresh initialisations leave a network's
BatchNormalization moving statistics out of step with the activations they
normalize (an untrained `keras.applications` model's activations vanish
after a dozen layers; a pruned layer's outputs shrink). `recalibrate` runs
the model over `data` with every BatchNormalization layer computing batch
statistics and replaces the moving mean and variance with their exact
average over the batches. Nothing else changes: no weight is trained,
dropout is off, and each layer's `momentum` and `trainable` flags are
restored.

Example:

>>> import keras, numpy as np, tfsparse
>>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.BatchNormalization(name="bn")])
>>> x = np.random.default_rng(0).normal(3.0, 2.0, (256, 4)).astype("float32")
>>> _ = tfsparse.recalibrate(model, x, batch_size=64)
>>> bool(np.allclose(model.get_layer("bn").moving_mean, model.layers[0](x).numpy().mean(0), atol=1e-4))
True
"""

from __future__ import annotations

import contextlib

import keras
import numpy as np

from tfsparse.prunable import iter_layers


def recalibrate(model, data, *, batch_size=32, steps=None):
    """Re-estimates every BatchNormalization layer's moving statistics from `data`.

    Args:
        model: A built Keras model (nested models' layers included).
        data: Inputs only: a NumPy array (or a list of arrays for several
            inputs), or an iterable of input batches (a `tf.data.Dataset`
            of inputs or of `(inputs, targets)` tuples, whose targets are
            ignored).
        batch_size: Batch size when `data` is an array. Defaults to `32`.
        steps: Use at most this many batches. Defaults to `None` (all).

    Returns:
        The number of batches used.

    Raises:
        ValueError: if `data` is empty or not finite, `batch_size` or `steps`
            is not a positive integer, or the model has no BatchNormalization.
    """
    for name, value in (("batch_size", batch_size), ("steps", steps)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"Invalid value received for argument `{name}`. Expected a positive integer. "
                             f"Received: {name}={value!r}")
    norms = [layer for layer in iter_layers(model) if isinstance(layer, keras.layers.BatchNormalization)]
    if not norms:
        raise ValueError("Invalid value received for argument `model`. Expected a model with BatchNormalization "
                         f"layers to recalibrate. Received: model={model.name!r} has none")
    count = 0
    with _batch_statistics(model, norms):
        for batch in _batches(data, batch_size):
            if steps is not None and count >= steps:
                break
            for layer in norms:  # moving = moving * m + batch * (1 - m): m = k / (k + 1) keeps the exact average
                layer.momentum = count / (count + 1)
            model(batch, training=True)
            count += 1
    if not count:
        raise ValueError("Invalid value received for argument `data`. Expected at least one batch of inputs. "
                         "Received: an empty dataset")
    return count


def _batches(data, batch_size):
    if isinstance(data, (np.ndarray, list)):
        arrays = [np.asarray(a) for a in (data if isinstance(data, list) else [data])]
        for array in arrays:
            if array.dtype.kind == "f" and not np.isfinite(array).all():
                raise ValueError("Invalid value received for argument `data`. Expected finite values; it holds NaN "
                                 "or infinity. Clean or drop those samples.")
        for start in range(0, len(arrays[0]), batch_size):
            parts = [a[start:start + batch_size] for a in arrays]
            yield parts[0] if len(parts) == 1 else parts
        return
    for batch in data:
        yield batch[0] if isinstance(batch, tuple) else batch


@contextlib.contextmanager
def _batch_statistics(model, norms):
    """BatchNormalization layers trainable (so they use batch statistics); dropout off; flags restored."""
    dropouts = [layer for layer in iter_layers(model) if isinstance(layer, keras.layers.Dropout)]
    saved = [(layer, layer.momentum, layer.trainable) for layer in norms]
    rates = [(layer, layer.rate) for layer in dropouts]
    try:
        for layer in norms:
            layer.trainable = True
        for layer in dropouts:
            layer.rate = 0.0
        yield
    finally:
        for layer, momentum, trainable in saved:
            layer.momentum, layer.trainable = momentum, trainable
        for layer, rate in rates:
            layer.rate = rate
