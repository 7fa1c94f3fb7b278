"""L0 regularization with hard-concrete gates (Louizos et al. 2018), registered as `l0`.

`prepare(model)` returns a copy of a Sequential or Functional model (nested
models included, all weights kept) with a `tfsparse.layers.L0Gate` after each
selected layer, one gate per output channel or unit (`tfsparse.strategies.l0.insert`):
after the BatchNormalization that follows a convolution, otherwise on the
layer's pre-activation (its activation moves into the gate), so that a closed
gate zeroes its channel downstream and folds exactly into the weights. By
default every Dense and convolution layer is gated except the last ones before
the model's outputs; with `layers=...` a selected layer that cannot take a
gate is an error. A subclassed model has no graph to rewrite: place `L0Gate`
layers in its code; the strategy finds them (as it finds those of a model
prepared before, which `prepare` returns unchanged).

While training, the loss gets `lambda * (sum of P(gate open)) / (number of
gates)`: the penalty is normalized by the number of gates, so `lambda` is what
a fully open network costs, whatever its size. Each gate holds `lambda / N` in
its non-trainable `l0` weight, set between steps (no retracing). `sparsity`
in `logs` is the fraction of closed gates (`z == 0` at inference);
`l0_penalty` and `l0_lambda` are logged too.

Two modes, as for `l1`:
- fixed `l0` (`lambda` >= 0), from `begin_step` until `end_step` (`None`: all
  of training);
- `target_sparsity`: `l0` is the starting `lambda` (default 0.1). A gate
  closes hundreds of steps after the pressure starts (`log_alpha` must fall
  by about 5 and moves about a learning rate per step under Adam), so at
  every update step `lambda` is multiplied up or down (at most 4x) by how far
  the fraction of gates that would be closed at `end_step`, at their current
  speeds, is from the target. Give the gates time: with Adam, about
  `5 / learning_rate` steps before `end_step`.

At `end_step` (when given) the gates are frozen: closed ones at
`log_alpha = -30`, open ones at `+30` (deterministic 0 or 1 in training too),
held there by a constraint; in target mode exactly `round(target * N)` gates,
those with the lowest `log_alpha` but never the last open gate of a layer (a
layer with every channel closed would cut the network), are closed (`reached_sparsity` holds where
the controller ended). Then `lambda` is 0 and training fine-tunes.

`finalize` (and `tfsparse.export`) folds the inference gates into the weights
(see `tfsparse.strategies.l0.fold`); closed channels become zeros, and the structured
shrink that `tfsparse.finalize` applies last removes them (`tfsparse.graph.shrink`).

Example:

>>> import keras, numpy as np, tfsparse
>>> keras.utils.set_random_seed(0)
>>> model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(2)])
>>> l0 = tfsparse.get_strategy("l0")(target_sparsity=0.5, end_step=8, frequency=2)
>>> gated = l0.prepare(model)
>>> [type(layer).__name__ for layer in gated.layers]
['Dense', 'L0Gate', 'Dense']
>>> gated.compile("adam", "mse")
>>> history = gated.fit(np.ones((32, 8)), np.ones((32, 2)), batch_size=4, epochs=2, verbose=0, callbacks=[l0])
>>> history.history["sparsity"][-1]
0.5
>>> [type(layer).__name__ for layer in l0.finalize(gated).layers]
['Dense', 'Dense']
"""

from tfsparse.strategies.l0.fold import FoldReport, fold_l0_gates
from tfsparse.strategies.l0.gate import L0Gate
from tfsparse.strategies.l0.insert import find_gates, insert_gates
from tfsparse.strategies.l0.strategy import FROZEN_LOG_ALPHA, L0, FreezeGates, auto_log_alpha_scale

__all__ = ["FROZEN_LOG_ALPHA", "FoldReport", "FreezeGates", "L0", "L0Gate", "auto_log_alpha_scale", "find_gates",
           "fold_l0_gates", "insert_gates"]
