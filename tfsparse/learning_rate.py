"""`RecoverySchedule`: a learning rate fitted to a pruning schedule.

Pruning with a learning rate that decays from the start (the usual cosine)
leaves the last mask updates, the ones that remove the most, to a learning
rate too small to recover from them. Learning-rate rewinding (Renda et al.
2020) fixes that by training again at a high rate after pruning. This
schedule does both in one run:

- pruning phase, `begin_step` to `end_step`: constant `pruning_rate`;
- recovery phase, from `end_step`: back up to `peak_rate` (the rewind) and a
  cosine decay to `final_fraction * peak_rate` at `total_steps`.

`RecoverySchedule.fit_to(steps, total_steps, peak_rate)` builds it from the
step dictionary a strategy takes (`tfsparse.training.pruning_steps`).

Example:

>>> import keras, tfsparse
>>> steps = {"begin_step": 0, "end_step": 60, "frequency": 3}
>>> schedule = tfsparse.RecoverySchedule.fit_to(steps, total_steps=100, peak_rate=1e-3)
>>> [round(float(schedule(step)), 6) for step in (0, 59, 60, 80, 100)]
[0.0005, 0.0005, 0.001, 0.000505, 1e-05]
>>> optimizer = keras.optimizers.Adam(schedule)
"""

from __future__ import annotations

import math

import keras
from keras import ops

from tfsparse.errors import invalid_argument as _invalid



def _positive(argument, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise _invalid(argument, "a finite number > 0", value)
    return float(value)


def _step(argument, value, minimum):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _invalid(argument, f"an integer >= {minimum}", value)
    return value


@keras.saving.register_keras_serializable(package="tfsparse")
class RecoverySchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Constant while pruning, then a rewind to `peak_rate` and a cosine decay.

    Args:
        pruning_rate: Learning rate from step 0 to `end_step` (exclusive).
        peak_rate: Learning rate at `end_step`, where recovery starts.
        end_step: The pruning schedule's last update step.
        total_steps: The last training step; the rate reaches
            `final_fraction * peak_rate` there and stays.
        final_fraction: End of the cosine, as a fraction of `peak_rate`, in
            [0, 1]. Defaults to `0.01`.

    Raises:
        ValueError: for non-positive rates, `total_steps <= end_step` or a
            `final_fraction` outside [0, 1].
    """

    def __init__(self, pruning_rate, peak_rate, end_step, total_steps, final_fraction=0.01):
        self.pruning_rate = _positive("pruning_rate", pruning_rate)
        self.peak_rate = _positive("peak_rate", peak_rate)
        self.end_step = _step("end_step", end_step, 0)
        self.total_steps = _step("total_steps", total_steps, end_step + 1)
        if (isinstance(final_fraction, bool) or not isinstance(final_fraction, (int, float))
                or not 0 <= final_fraction <= 1):
            raise _invalid("final_fraction", "a float in [0, 1]", final_fraction)
        self.final_fraction = float(final_fraction)

    @classmethod
    def fit_to(cls, steps, *, total_steps, peak_rate, pruning_fraction=0.5, final_fraction=0.01):
        """The schedule for a strategy's `steps` (`begin_step`, `end_step`, ...).

        Args:
            steps: The strategy's step dictionary (`end_step` is used), as
                returned by `tfsparse.training.pruning_steps`.
            total_steps: The last training step (e.g. steps per epoch times
                epochs, plus the start step of a resumed fit).
            peak_rate: The rewind rate, typically the rate the dense model
                was trained with.
            pruning_fraction: `pruning_rate` as a fraction of `peak_rate`.
                Defaults to `0.5`.
            final_fraction: As in the constructor. Defaults to `0.01`.
        """
        if not isinstance(steps, dict) or "end_step" not in steps:
            raise _invalid("steps", "a dict with `end_step`, such as tfsparse.training.pruning_steps(...)", steps)
        peak = _positive("peak_rate", peak_rate)
        return cls(peak * _positive("pruning_fraction", pruning_fraction), peak, steps["end_step"], total_steps,
                   final_fraction)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        progress = ops.clip((step - self.end_step) / (self.total_steps - self.end_step), 0.0, 1.0)
        cosine = 0.5 * (1.0 + ops.cos(math.pi * progress))
        recovery = self.peak_rate * (self.final_fraction + (1.0 - self.final_fraction) * cosine)
        return ops.where(step < self.end_step, self.pruning_rate, recovery)

    def get_config(self):
        return {"pruning_rate": self.pruning_rate, "peak_rate": self.peak_rate, "end_step": self.end_step,
                "total_steps": self.total_steps, "final_fraction": self.final_fraction}
