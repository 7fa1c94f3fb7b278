"""Writing variables from callbacks on every Keras 3 backend.

TensorFlow and PyTorch train on the variables themselves: a callback's
`assign` is seen by the next step, and a mask constraint reads the mask
variable inside the compiled step. JAX trains statelessly: the fit loop
carries the state from step to step, so a callback must first pull that
state into the variables (`model.jax_state_sync()`, which also makes the next
step read the variables again) before it writes them, and the jitted step
holds a mask constraint's mask as a constant of its trace, so it is traced
again after the masks change.

What the jitted step holds as constants: every variable it does not carry in
its state, i.e. any `keras.Variable` that is not a weight of the model, of its
optimizer or of its metrics: tfsparse's masks and the settings of its
constraints (`l1`'s lambda, `l0`'s freeze flag). A write to such a variable
inside the step is lost as well. A layer weight (an `L0Gate`'s `l0`, an
`MoE`'s `expert_mask`, BatchNormalization `gamma`) is state: a callback's
write to it needs `before_writes` but no retrace.

Reading: in the middle of an epoch the fit loop empties the model's variables
(their values live in the carried state; reading one raises in Keras 3.15).
Keras syncs them when a callback reads `self.model` (`Callback.model` calls
`jax_state_sync()`); a callback that reads variables through references it
holds (a layer, a weight) before touching `self.model` calls `before_writes`
first.

Example:

>>> import keras
>>> from tfsparse.backend_state import before_writes, after_mask_change
>>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
>>> before_writes(model)  # nothing to do outside a JAX fit
>>> after_mask_change(model)
"""

from __future__ import annotations

import keras
import numpy as np

from tfsparse import masks


def is_stateless_backend() -> bool:
    """Whether the fit loop carries the state outside the variables (JAX)."""
    return keras.backend.backend() == "jax"


def before_writes(model) -> None:
    """Makes the variables of `model` current and the next training step read them (JAX); no-op elsewhere."""
    if is_stateless_backend() and model is not None and hasattr(model, "jax_state_sync"):
        model.jax_state_sync()


def after_mask_change(model) -> None:
    """Retraces the training step of `model` so it sees new masks (JAX); no-op elsewhere."""
    if is_stateless_backend() and model is not None and getattr(model, "train_function", None) is not None:
        model.make_train_function(force=True)


def traced_constants(model):
    """What a jitted train step of `model` holds from tfsparse's constraints (JAX); `None` elsewhere.

    For every trainable variable: the variable, its constraint chain (the
    constraint and its `inner` ones, compared by identity) and its mask's
    values. Compare two snapshots with `retrace_if_changed`.
    """
    if not is_stateless_backend() or model is None:
        return None
    snapshot = []
    for variable in model.trainable_variables:
        chain, constraint = [], getattr(variable, "constraint", None)
        while constraint is not None:
            chain.append(constraint)
            constraint = getattr(constraint, "inner", None)
        mask = masks.get_mask(variable)
        values = None if mask is None else np.array(keras.ops.convert_to_numpy(mask.value))
        snapshot.append((variable, chain, values))
    return snapshot


def _same(a, b) -> bool:
    (variable_a, chain_a, values_a), (variable_b, chain_b, values_b) = a, b
    if variable_a is not variable_b or len(chain_a) != len(chain_b):
        return False
    if any(x is not y for x, y in zip(chain_a, chain_b)):
        return False
    if values_a is None or values_b is None:
        return values_a is None and values_b is None
    return np.array_equal(values_a, values_b)


def retrace_if_changed(model, before) -> bool:
    """Retraces the training step (`after_mask_change`) if `traced_constants(model)` differs from `before`.

    Returns:
        Whether it retraced (always `False` outside JAX).
    """
    if before is None:
        return False
    after = traced_constants(model)
    same = len(after) == len(before) and all(_same(a, b) for a, b in zip(after, before))
    if not same:
        after_mask_change(model)
    return not same
