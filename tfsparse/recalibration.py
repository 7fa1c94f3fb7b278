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

`RecalibrateBatchNorm(data)` does it from `model.fit`: before every
validation whose masks changed since the last recalibration (so validation
scores the model you would export), and when training ends (so the trained
model, its `.keras` file and its export carry statistics of the final
masks).

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

from tfsparse.calibration import check_batching, input_batches
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
    check_batching(batch_size, steps)
    norms = [layer for layer in iter_layers(model) if isinstance(layer, keras.layers.BatchNormalization)]
    if not norms:
        raise ValueError("Invalid value received for argument `model`. Expected a model with BatchNormalization "
                         f"layers to recalibrate. Received: model={model.name!r} has none")
    count = 0
    with _batch_statistics(model, norms):
        for batch in input_batches(data, batch_size, steps):
            for layer in norms:  # moving = moving * m + batch * (1 - m): m = k / (k + 1) keeps the exact average
                layer.momentum = count / (count + 1)
            model(batch, training=True)
            count += 1
    if not count:
        raise ValueError("Invalid value received for argument `data`. Expected at least one batch of inputs. "
                         "Received: an empty dataset")
    return count


class RecalibrateBatchNorm(keras.callbacks.Callback):
    """Recalibrates BatchNormalization statistics during and after `fit`.

    Training-mode BatchNormalization follows pruning only slowly (its moving
    averages lag the masks by about `1 / (1 - momentum)` steps), so a model
    evaluated or exported right after its last mask update is normalized
    with statistics of weights it no longer has. This callback runs
    `tfsparse.recalibrate(model, data, ...)` (the student's, for a
    `tfsparse.Distiller`) before each validation when any mask changed since
    the last recalibration, and always when training ends.

    Args:
        data: Calibration inputs, as for `tfsparse.recalibrate` (a few
            hundred training images are plenty).
        batch_size: Batch size for array data. Defaults to `32`.
        steps: Batches per recalibration. Defaults to `20`.

    Example:

    >>> import keras, numpy as np, tfsparse
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.BatchNormalization()])
    >>> model.compile("sgd", "mse")
    >>> x = np.random.default_rng(0).normal(2.0, 1.0, (64, 4)).astype("float32")
    >>> callback = tfsparse.RecalibrateBatchNorm(x, steps=2)
    >>> _ = model.fit(x, np.zeros((64, 3)), epochs=1, verbose=0, callbacks=[callback])
    >>> callback.count
    1
    """

    def __init__(self, data, *, batch_size=32, steps=20):
        super().__init__()
        self.data, self.batch_size, self.steps = data, batch_size, steps
        self.count = 0  # recalibrations done
        self._masks_seen = None
        self._training = False

    def _target(self):
        from tfsparse.distillation import pruning_target_of

        return pruning_target_of(self.model)

    def _mask_state(self):
        """A fingerprint of every mask of the model: (path, zeros, sum) per mask (sum: soft masks fading)."""
        from tfsparse import masks

        state = []
        for variable in self._target().weights:
            mask = masks.get_mask(variable)
            if mask is not None:
                values = keras.ops.convert_to_numpy(mask.value)
                state.append((variable.path, int(values.size - np.count_nonzero(values)), float(values.sum())))
        return tuple(state)

    def recalibrate(self):
        recalibrate(self._target(), self.data, batch_size=self.batch_size, steps=self.steps)
        self.count += 1
        self._masks_seen = self._mask_state()

    def on_train_begin(self, logs=None):
        self._training = True
        self._masks_seen = self._mask_state()

    def on_test_begin(self, logs=None):
        if self._training and self._mask_state() != self._masks_seen:
            self.recalibrate()

    def on_train_end(self, logs=None):
        self._training = False
        self.recalibrate()


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
