"""`policy="xnnpack"`: prune exactly the weights XNNPACK can run sparse.

XNNPACK's sparse path only speeds up the 1x1 convolutions of its region
(see `tfsparse.xnnpack.check`); zeros anywhere else cost accuracy and buy no
time. With `policy="xnnpack"` a strategy acts on the kernels of those 1x1
convolutions only (narrowed further by `layers`/`exclude` if given) and leaves
the stem, depthwise and classifier weights dense. A model XNNPACK cannot run
sparse is refused with the planner's reasons, before any training.

Example:

>>> import keras, tfsparse
>>> L = keras.layers
>>> inputs = keras.Input((32, 32, 3))
>>> x = L.Conv2D(8, 3, strides=2)(L.ZeroPadding2D(1)(inputs))
>>> x = L.Conv2D(32, 1, name="pw")(x)
>>> model = keras.Model(inputs, L.Dense(2, name="head")(L.GlobalAveragePooling2D()(x)))
>>> gmp = tfsparse.get_strategy("gmp")(target_sparsity=0.9, end_step=10, policy="xnnpack")
>>> [(w.layer.name, w.name) for w in gmp.select(model)]
[('pw', 'kernel')]
"""

from __future__ import annotations

import warnings

from tfsparse.prunable import iter_layers
from tfsparse.xnnpack.planner import MIN_SPARSITY, check

#: Values of a strategy's `policy` argument.
POLICIES = (None, "xnnpack")


def check_policy(policy):
    """Returns `policy` if it is one of `POLICIES`, else raises `ValueError`."""
    if policy not in POLICIES:
        raise ValueError(
            "Invalid value received for argument `policy`. Expected None (the weights chosen by `layers`/`exclude`) "
            f"or 'xnnpack' (only the 1x1 convolutions XNNPACK can run sparse). Received: policy={policy!r}"
        )
    return policy


def warn_if_not_sparse_enough(final_sparsity) -> None:
    """Warns when a schedule's final sparsity cannot make XNNPACK take the sparse path."""
    if final_sparsity <= MIN_SPARSITY:
        warnings.warn(
            f"policy='xnnpack' with a final sparsity of {final_sparsity:.0%}: XNNPACK runs the 1x1 convolutions "
            "sparse only above 2/3 zeros pooled, so the exported model will run dense. Use target_sparsity >= 0.7.",
            UserWarning,
            stacklevel=3,
        )


def xnnpack_weights(model, candidates):
    """The `candidates` (`PrunableWeight`s) that XNNPACK can run sparse.

    Args:
        model: The functional or Sequential Keras model being pruned.
        candidates: The weights `layers`/`exclude` selected.

    Returns:
        The kernels of the region's 1x1 convolutions among `candidates`.

    Raises:
        ValueError: if XNNPACK cannot run the model sparse (with the planner's
            reasons and fixes), or no selected weight is a 1x1 kernel there.
    """
    plan = check(model)
    if not plan.eligible:
        reasons = "\n".join(f"  - {reason}" for reason in plan.reasons)
        raise ValueError(
            "Invalid value received for argument `policy`. policy='xnnpack' prunes the 1x1 convolutions XNNPACK "
            f"runs sparse, but XNNPACK cannot run model {model.name!r} sparse:\n{reasons}\nFix the model (see "
            "tfsparse.xnnpack.check(model) and tfsparse.xnnpack.make_compatible), or use policy=None to prune for "
            "size only. Received: policy='xnnpack'"
        )
    allowed = set(plan.sparse_layers)
    chosen = [w for w in candidates if w.layer.name in allowed and w.variable is w.layer.kernel]
    if not chosen:
        raise ValueError(
            "Invalid value received for argument `layers`. With policy='xnnpack' it selects none of the 1x1 "
            f"convolutions XNNPACK runs sparse ({', '.join(plan.sparse_layers)}): widen `layers`/`exclude` or "
            "leave them unset. Received: policy='xnnpack'"
        )
    _warn_if_frozen(model, plan)
    return chosen


def _warn_if_frozen(model, plan):
    """Warns about frozen 1x1 kernels of the region: they are not pruned, yet XNNPACK pools their zeros."""
    sparse = set(plan.sparse_layers)
    frozen = [layer.name for layer in iter_layers(model) if layer.name in sparse and not layer.kernel.trainable]
    if frozen:
        warnings.warn(
            f"policy='xnnpack': {len(frozen)} of the {len(sparse)} 1x1 convolutions XNNPACK runs sparse are frozen "
            f"(trainable=False) and will not be pruned ({', '.join(frozen[:5])}{', ...' if len(frozen) > 5 else ''}); "
            "XNNPACK pools the zeros of all of them, so the path may not fire. Set `layer.trainable = True` on "
            "each of them (for a nested backbone, on its layers) before fitting.",
            UserWarning,
            stacklevel=4,
        )
