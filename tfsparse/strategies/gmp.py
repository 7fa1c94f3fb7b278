"""Gradual magnitude pruning (Zhu & Gupta 2017), registered as `gmp`.

At each update step of the schedule the smallest-magnitude weights are masked
so that the schedule's sparsity is reached: per weight (`scope="layer"`, each
weight within one element of the target) or with one magnitude threshold
across all selected weights (`scope="global"`). Pruned weights are exact
zeros, so they stay the smallest and the masks only grow. After `end_step` the
masks are frozen and training fine-tunes the remaining weights.

Example:

>>> import keras, numpy as np, tfsparse
>>> model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(8)])
>>> model.compile("adam", "mse")
>>> gmp = tfsparse.get_strategy("gmp")(target_sparsity=0.75, begin_step=0, end_step=6, frequency=2)
>>> _ = model.fit(np.ones((16, 16)), np.ones((16, 8)), batch_size=2, verbose=0, callbacks=[gmp])
>>> int(np.count_nonzero(model.layers[0].kernel.numpy()))
32
"""

from __future__ import annotations

import keras
import numpy as np

from tfsparse import schedules
from tfsparse.strategy import Strategy
from tfsparse.xnnpack.policy import warn_if_not_sparse_enough

SCOPES = ("layer", "global")


def keep_largest(values, keep: int) -> np.ndarray:
    """A 0/1 mask keeping the `keep` largest `|values|` (ties: first wins).

    Zeros come first among equals, so a weight pruned before stays pruned.
    """
    flat = np.abs(np.asarray(values, dtype=np.float64)).ravel()
    mask = np.zeros(flat.size, dtype=np.float32)
    if keep > 0:
        order = np.argsort(-flat, kind="stable")
        mask[order[:keep]] = 1.0
    return mask.reshape(np.shape(values))


class GMP(Strategy):
    """Gradual magnitude pruning.

    Args:
        target_sparsity: Final sparsity in [0, 1) (used to build a
            `PolynomialDecay` schedule; omit when passing `schedule`).
        begin_step: First pruning step. Defaults to `0`.
        end_step: Step at which `target_sparsity` is reached; masks are frozen
            after it. Required unless `schedule` is given.
        frequency: Steps between mask updates. Defaults to `100`.
        initial_sparsity: Sparsity at `begin_step`. Defaults to `0.0`.
        power: Exponent of the polynomial schedule. Defaults to `3`.
        schedule: A `tfsparse.schedules.Schedule` instead of the arguments
            above. Defaults to `None`.
        scope: `"layer"` (every weight reaches the target) or `"global"` (one
            threshold across all selected weights). Defaults to `"layer"`.
        **kwargs: `layers`, `exclude`, `policy`, `log_dir` of
            `tfsparse.Strategy`. With `policy="xnnpack"` a final sparsity of
            2/3 or less warns: XNNPACK would still run dense.
    """

    name = "gmp"

    def __init__(
        self,
        target_sparsity=None,
        *,
        begin_step=0,
        end_step=None,
        frequency=100,
        initial_sparsity=0.0,
        power=3,
        schedule=None,
        scope="layer",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if schedule is not None:
            if target_sparsity is not None:
                raise ValueError(
                    "Invalid value received for argument `target_sparsity`. Pass "
                    "either `target_sparsity` (with begin/end steps) or `schedule`, "
                    f"not both. Received: target_sparsity={target_sparsity!r}"
                )
            self.schedule = schedules.get(schedule)
        else:
            if target_sparsity is None:
                raise ValueError(
                    "Invalid value received for argument `target_sparsity`. Expected "
                    "a float in [0, 1), e.g. 0.9. Received: target_sparsity=None"
                )
            if end_step is None:
                raise ValueError(
                    "Invalid value received for argument `end_step`. Expected the "
                    "step at which the target is reached, greater than begin_step "
                    "(e.g. two thirds of the training steps). Received: end_step=None"
                )
            self.schedule = schedules.PolynomialDecay(
                final_sparsity=schedules.check_sparsity("target_sparsity", target_sparsity),
                initial_sparsity=initial_sparsity,
                begin_step=begin_step,
                end_step=end_step,
                power=power,
                frequency=frequency,
            )
        if scope not in SCOPES:
            raise ValueError(
                f"Invalid value received for argument `scope`. Expected one of "
                f"{SCOPES}. Received: scope={scope!r}"
            )
        self.scope = scope
        if self.policy == "xnnpack":
            warn_if_not_sparse_enough(self.schedule.sparsity(np.iinfo(np.int64).max))

    def compute_masks(self, step, weights):
        target = self.schedule.sparsity(step)
        values = [keras.ops.convert_to_numpy(w.variable.value) for w in weights]
        if self.scope == "layer":
            return [keep_largest(v, v.size - round(target * v.size)) for v in values]
        flat = np.concatenate([v.ravel() for v in values])
        mask = keep_largest(flat, flat.size - round(target * flat.size))
        splits = np.cumsum([v.size for v in values])[:-1]
        return [m.reshape(v.shape) for m, v in zip(np.split(mask, splits), values)]

    def get_config(self):
        return {"schedule": schedules.serialize(self.schedule), "scope": self.scope, **super().get_config()}
