"""N:M structured sparsity (default 2:4), registered as `nm`.

In every block of M consecutive weights along the reduction axis (the input
channels: axis 0 of a Dense kernel, axis -2 of a Conv kernel, the innermost
axis of the TFLite layout; see `tfsparse.nm.axes`) only the N largest
magnitudes are kept. The model trains dense until `begin_step`, then each
weight switches to N:M in one step (its N:M mask taken from the magnitudes
at that step) and training fine-tunes the kept weights. With
`layerwise=True` the weights switch one after another, `frequency` steps
apart in model order, so the network adapts to one pruned layer at a time;
`end_step` switches every remaining weight at once.

The mask of a weight is fixed once it has switched: pruned weights are exact
zeros (the mask constraint), so recomputing the N:M mask from magnitudes
would select the same entries. The strategy stops updating once every weight
has switched.

Not every weight takes part: depthwise kernels and embeddings have no
reduction axis and are left dense (a depthwise filter never sums across
channels; 2:4 hardware runs matrix multiplications and regular
convolutions). A weight whose reduction axis is not a multiple of M (e.g. a
stem convolution over 3 or 1 input channels) is refused by default with the
fix; `non_multiple="pad"` prunes it as if the axis were zero-padded to a
multiple of M (the last, partial block keeps at most N), with a warning.

TFLite and XNNPACK on CPU do not accelerate N:M: a 2:4 model exports and
runs like a dense one there, and 50% sparsity is far below what XNNPACK's
unstructured sparse path needs. N:M targets accelerators with 2:4 support
(e.g. sparse tensor cores). `tfsparse inspect --nm=2:4 PATH` checks that a
`.keras` or `.tflite` file holds the pattern.

Example:

>>> import keras, numpy as np, tfsparse
>>> model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])
>>> model.compile("sgd", "mse")
>>> nm = tfsparse.get_strategy("nm")(n=2, m=4, begin_step=0)
>>> _ = model.fit(np.ones((8, 8)), np.ones((8, 4)), batch_size=2, verbose=0, callbacks=[nm])
>>> kernel = model.layers[0].kernel.numpy()  # (in=8, out=4): blocks along `in`
>>> int((kernel.reshape(2, 4, 4) != 0).sum(axis=1).max()), nm.current_sparsity()
(2, 0.5)
"""

from __future__ import annotations

import warnings

import keras
import numpy as np

from tfsparse import schedules
from tfsparse.nm.axes import reduction_axis
from tfsparse.nm.pattern import check_nm, nm_mask
from tfsparse.strategy import Strategy
from tfsparse.xnnpack.policy import warn_if_not_sparse_enough

NON_MULTIPLE = ("error", "pad")


class NM(Strategy):
    """N:M structured sparsity along the reduction axis.

    Args:
        n: Weights kept in every block, `1 <= n < m`. Defaults to `2`.
        m: Block size. Defaults to `4`.
        begin_step: The step at which the (first) weights switch to N:M;
            training is dense before it. Defaults to `0`.
        end_step: With `layerwise=True`, the step at which every remaining
            weight switches; must be greater than `begin_step`. `None`: no
            such deadline. Defaults to `None`.
        frequency: With `layerwise=True`, steps between two weights
            switching (weight `i` in model order switches at
            `begin_step + i * frequency`). Defaults to `100`.
        layerwise: Switch the weights one at a time instead of all at
            `begin_step`. Defaults to `False`.
        non_multiple: What to do with a weight whose reduction axis is not a
            multiple of `m`: `"error"` (a `ValueError` naming the weights,
            raised when training starts) or `"pad"` (prune it as if
            zero-padded to a multiple of `m`, with a `UserWarning`).
            Defaults to `"error"`.
        **kwargs: `layers`, `exclude`, `policy`, `log_dir` of
            `tfsparse.Strategy`.

    Raises:
        ValueError: for `n`/`m` outside `1 <= n < m`, bad steps, or an
            unknown `non_multiple`.
    """

    name = "nm"

    def __init__(self, n=2, m=4, *, begin_step=0, end_step=None, frequency=100, layerwise=False,
                 non_multiple="error", **kwargs):
        super().__init__(**kwargs)
        self.n, self.m = check_nm(n, m)
        self.schedule = schedules.Constant(
            1.0 - self.n / self.m, begin_step=begin_step, end_step=end_step, frequency=frequency
        )
        if not isinstance(layerwise, bool):
            raise ValueError(
                f"Invalid value received for argument `layerwise`. Expected True or False. "
                f"Received: layerwise={layerwise!r}"
            )
        if non_multiple not in NON_MULTIPLE:
            raise ValueError(
                f"Invalid value received for argument `non_multiple`. Expected one of "
                f"{NON_MULTIPLE}. Received: non_multiple={non_multiple!r}"
            )
        self.layerwise = layerwise
        self.non_multiple = non_multiple
        self.axes = []  # the reduction axis of each selected weight
        self.skipped = []  # paths of selected weights without a reduction axis
        self._warned = None
        if self.policy == "xnnpack":
            warn_if_not_sparse_enough(1.0 - self.n / self.m)

    def select(self, model):
        """The selected weights that have a reduction axis (see module doc)."""
        chosen, self.axes, self.skipped, ragged = [], [], [], []
        for weight in super().select(model):
            axis = reduction_axis(weight.layer, weight.variable)
            if axis is None:
                self.skipped.append(weight.path)
                continue
            if weight.variable.shape[axis] % self.m:
                ragged.append(f"{weight.path} ({weight.variable.shape[axis]} along axis {axis})")
            chosen.append(weight)
            self.axes.append(axis)
        if not chosen:
            raise ValueError(
                "Invalid value received for argument `layers`. None of the selected weights has a "
                "reduction axis for N:M blocks (depthwise kernels and embeddings have none); select "
                f"Dense or Conv layers. Received: layers={self.layers!r} (skipped: {self.skipped})"
            )
        if ragged and self.non_multiple == "error":
            raise ValueError(
                f"Invalid value received for argument `non_multiple`. The reduction axis of "
                f"{', '.join(ragged)} is not a multiple of m={self.m}. Leave these weights dense with "
                "`exclude=[...]`, or pass non_multiple='pad' to prune them as if zero-padded. "
                f"Received: non_multiple={self.non_multiple!r}"
            )
        if ragged and ragged != self._warned:  # once, not at every fit
            self._warned = ragged
            warnings.warn(
                f"N:M {self.n}:{self.m}: the reduction axis of {', '.join(ragged)} is not a multiple of "
                f"{self.m}; the last block of each is partial and keeps at most {self.n} "
                "(the pattern holds once the axis is zero-padded).",
                UserWarning,
                stacklevel=2,
            )
        return chosen

    def switched(self, step: int, count: int) -> int:
        """How many of `count` weights (in model order) are N:M at `step`."""
        schedule = self.schedule
        if step < schedule.begin_step:
            return 0
        if not self.layerwise or (schedule.end_step is not None and step >= schedule.end_step):
            return count
        return min(count, (step - schedule.begin_step) // schedule.frequency + 1)

    def due_update(self, step):
        if self._last_update is not None and self.switched(self._last_update, len(self.weights)) == len(self.weights):
            return None  # every weight is N:M and its mask final (see the module docstring)
        return super().due_update(step)

    def schedule_end(self):
        """The step at which the last weight switches to N:M."""
        schedule = self.schedule
        if not self.layerwise:
            return schedule.begin_step
        last = schedule.begin_step + max(len(self.weights) - 1, 0) * schedule.frequency
        return last if schedule.end_step is None else min(last, schedule.end_step)

    def sparsity_after(self, step):
        """`(sparsity, target)` once step `step` was taken: the switched weights are N:M."""
        sizes = [int(np.prod(weight.variable.shape)) for weight in self.weights]
        target = 1.0 - self.n / self.m
        done = self.switched(step, len(sizes))
        return (target * sum(sizes[:done]) / sum(sizes) if sum(sizes) else 0.0), target

    def compute_masks(self, step, weights):
        done = self.switched(step, len(weights))
        result = []
        for i, (weight, axis) in enumerate(zip(weights, self.axes)):
            if i < done:
                result.append(nm_mask(keras.ops.convert_to_numpy(weight.variable.value), self.n, self.m, axis))
            else:
                result.append(np.ones(tuple(weight.variable.shape), dtype="float32"))
        return result

    def get_config(self):
        return {
            "n": self.n,
            "m": self.m,
            "begin_step": self.schedule.begin_step,
            "end_step": self.schedule.end_step,
            "frequency": self.schedule.frequency,
            "layerwise": self.layerwise,
            "non_multiple": self.non_multiple,
            **super().get_config(),
        }
