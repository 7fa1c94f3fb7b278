"""Masks as variable constraints: the core of every mask-based strategy.

A mask is a non-trainable `keras.Variable` of the weight's shape holding 0s
and 1s (`set_mask`; a strategy that fades weights before removing them may
hold values in [0, 1] for a while, `set_soft_mask`). The weight's `constraint` multiplies by it, and Keras 3 optimizers
apply `variable.constraint` after every update inside the compiled train step,
so a masked weight stays exactly zero whatever the optimizer does (momentum,
Adam moments, AdamW weight decay, XLA, mixed precision, accumulation).

Changing the mask variable takes effect at the next step without recompiling.
The mask itself is not saved: pruned weights are exact zeros, so the mask is
recovered from the zero pattern when a strategy attaches to a loaded model.

Example:

>>> import keras, numpy as np
>>> from tfsparse import masks
>>> layer = keras.layers.Dense(4)
>>> layer.build((None, 3))
>>> mask = masks.attach(layer.kernel)
>>> masks.set_mask(layer.kernel, np.eye(3, 4))
>>> int(np.count_nonzero(layer.kernel.numpy()))
3
>>> masks.detach(layer.kernel)

Ownership: a strategy passes itself as `owner` when it attaches a mask
(`attach(variable, owner=strategy)`), which claims the weight; the last claim
wins and `owner_of` says who holds it. Strategies claim their weights when a
fit starts and check on its first batch that they still hold them, so two
strategies masking one weight in the same fit fail loudly instead of undoing
each other's masks (see `tfsparse.Strategy.check_ownership`).
"""

from __future__ import annotations

import weakref

import keras
import numpy as np
from keras import ops


class OwnedConstraint(keras.constraints.Constraint):
    """A tfsparse constraint that records which strategy owns its variable.

    `owner` is held through a weak reference, so a claim never keeps a
    strategy (and the model it holds) alive, and a claim left by a fit that
    was interrupted is simply replaced by the next strategy's claim.
    """

    _owner_ref = None

    @property
    def owner(self):
        """The strategy that claimed the variable last, or `None`."""
        return None if self._owner_ref is None else self._owner_ref()

    @owner.setter
    def owner(self, value):
        self._owner_ref = None if value is None else weakref.ref(value)


class MaskConstraint(OwnedConstraint):
    """Multiplies a weight by its mask, after an optional inner constraint.

    Not serialized on purpose: it lives on the variable, not in the layer
    config, so saved models never depend on tfsparse to load.

    Args:
        mask: The non-trainable mask variable (same shape as the weight).
        inner: The constraint the weight had before, applied first.
            Defaults to `None`.
        owner: The strategy that owns the mask (see `attach`), or `None`.
            Defaults to `None`.
    """

    def __init__(self, mask, inner=None, owner=None):
        self.mask = mask
        self.inner = inner
        self.owner = owner

    def __call__(self, w):
        if self.inner is not None:
            w = self.inner(w)
        return w * ops.cast(self.mask, w.dtype)

    def get_config(self):
        raise TypeError(
            "MaskConstraint is attached to a variable by tfsparse and is not "
            "serializable; call `tfsparse.finalize(model)` before exporting "
            "a layer config that would contain it."
        )


def get_mask(variable):
    """Returns the mask variable of `variable`, or `None` if it has none."""
    constraint = getattr(variable, "constraint", None)
    return constraint.mask if isinstance(constraint, MaskConstraint) else None


def has_mask(variable) -> bool:
    """Whether `variable` carries a tfsparse mask."""
    return get_mask(variable) is not None


def _mask_name(variable) -> str:
    return variable.path.replace("/", "_") + "_tfsparse_mask"


def owner_of(variable):
    """The strategy that claimed `variable` last (see `attach`), or `None`."""
    constraint = getattr(variable, "constraint", None)
    return constraint.owner if isinstance(constraint, OwnedConstraint) else None


def claim(variable, owner) -> None:
    """Records `owner` (a strategy) as the owner of `variable`'s tfsparse constraint.

    Raises:
        ValueError: if `variable` has no tfsparse constraint (a mask, see
            `attach`).
    """
    constraint = getattr(variable, "constraint", None)
    if not isinstance(constraint, OwnedConstraint):
        raise ValueError(
            "Invalid value received for argument `variable`. Expected a weight with a tfsparse mask; "
            f"call `tfsparse.masks.attach` first. Received: variable={variable.path}"
        )
    constraint.owner = owner


def attach(variable, owner=None):
    """Gives `variable` a mask constraint, or returns the one it has.

    The new mask starts from the weight's current zero pattern (so a resumed
    run keeps its pruned weights pruned); a weight that is entirely zero gets
    an all-ones mask, as it carries no pattern.

    Args:
        variable: A `keras.Variable` (a layer weight).
        owner: The strategy attaching the mask: it claims the weight,
            replacing an earlier claim (see `owner_of`). `None` leaves the
            claim as it is. Defaults to `None`.

    Returns:
        The mask `keras.Variable` (non-trainable, float32).
    """
    existing = get_mask(variable)
    if existing is not None:
        if owner is not None:
            claim(variable, owner)
        return existing
    value = np.asarray(keras.ops.convert_to_numpy(variable.value))
    initial = (value != 0).astype("float32")
    if not initial.any():
        initial = np.ones_like(initial)
    mask = keras.Variable(
        initial,
        trainable=False,
        dtype="float32",
        name=_mask_name(variable),
        aggregation="only_first_replica",
    )
    variable.constraint = MaskConstraint(mask, inner=variable.constraint, owner=owner)
    return mask


def set_mask(variable, values) -> None:
    """Sets the mask of `variable` and zeroes the masked weights now.

    Args:
        variable: A weight with a mask (see `attach`).
        values: Array-like of the weight's shape; non-zero means "keep".

    Raises:
        ValueError: if `variable` has no mask or the shape differs.
    """
    _assign(variable, (np.asarray(values) != 0).astype("float32"))


def set_soft_mask(variable, values) -> None:
    """Sets a mask of factors in [0, 1] and multiplies the weight by it now.

    For strategies that fade weights before removing them (the `channel`
    strategy's `regularize="growing"`): a factor `d < 1` multiplies the
    weight after every optimizer step, so it decays by `d` per step. Such a
    strategy sets exact 0/1 masks with `set_mask` once the fade is over;
    `set_mask` itself stays binary.

    Args:
        variable: A weight with a mask (see `attach`).
        values: Array-like of the weight's shape, every value in [0, 1].

    Raises:
        ValueError: if `variable` has no mask, the shape differs, or a value
            is outside [0, 1] (or not finite).

    Example:

    >>> import keras, numpy as np
    >>> from tfsparse import masks
    >>> layer = keras.layers.Dense(2, kernel_initializer="ones")
    >>> layer.build((None, 1))
    >>> _ = masks.attach(layer.kernel)
    >>> masks.set_soft_mask(layer.kernel, [[1.0, 0.5]])
    >>> layer.kernel.numpy().tolist()
    [[1.0, 0.5]]
    """
    values = np.asarray(values, dtype="float32")
    if not np.all((values >= 0) & (values <= 1)):  # also false for NaN
        raise ValueError(
            "Invalid value received for argument `values`. Expected factors in [0, 1]. "
            f"Received: values with min={np.nanmin(values) if values.size else None}, "
            f"max={np.nanmax(values) if values.size else None}"
        )
    _assign(variable, values)


def _assign(variable, values) -> None:
    mask = get_mask(variable)
    if mask is None:
        raise ValueError(
            f"Invalid value received for argument `variable`. Expected a "
            f"weight with a tfsparse mask; call `tfsparse.masks.attach` "
            f"first. Received: variable={variable.path}"
        )
    if values.shape != tuple(variable.shape):
        raise ValueError(
            f"Invalid value received for argument `values`. Expected shape "
            f"{tuple(variable.shape)} (the shape of {variable.path}). "
            f"Received: values.shape={values.shape}"
        )
    mask.assign(values)
    apply(variable)


def apply(variable) -> None:
    """Multiplies `variable` by its mask now (outside the train step)."""
    mask = get_mask(variable)
    if mask is not None:
        weight = keras.ops.convert_to_numpy(variable.value)
        mask_value = keras.ops.convert_to_numpy(mask.value)
        variable.assign((weight * mask_value).astype(weight.dtype))


def detach(variable) -> None:
    """Removes the mask constraint and restores the previous constraint."""
    constraint = getattr(variable, "constraint", None)
    if isinstance(constraint, MaskConstraint):
        variable.constraint = constraint.inner


def detach_all(model) -> int:
    """Removes every tfsparse mask from `model`'s weights.

    Returns:
        The number of masks removed.
    """
    count = 0
    for variable in model.weights:
        if has_mask(variable):
            detach(variable)
            count += 1
    return count


def sparsity(values) -> float:
    """Fraction of exact zeros in `values` (0.0 for an empty array)."""
    values = np.asarray(values)
    if values.size == 0:
        return 0.0
    return 1.0 - np.count_nonzero(values) / values.size
