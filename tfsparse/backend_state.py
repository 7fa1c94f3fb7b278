"""Writing variables from callbacks on every Keras 3 backend.

TensorFlow and PyTorch train on the variables themselves: a callback's
`assign` is seen by the next step, and a mask constraint reads the mask
variable inside the compiled step. JAX trains statelessly: the fit loop
carries the state from step to step, so a callback must first pull that
state into the variables (`model.jax_state_sync()`, which also makes the next
step read the variables again) before it writes them, and the jitted step
holds a mask constraint's mask as a constant of its trace, so it is traced
again after the masks change.

Example:

>>> import keras
>>> from tfsparse.backend_state import before_writes, after_mask_change
>>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
>>> before_writes(model)  # nothing to do outside a JAX fit
>>> after_mask_change(model)
"""

from __future__ import annotations

import keras


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
