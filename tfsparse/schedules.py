"""Sparsity schedules: small, validated, serializable value objects.

A schedule maps a training step (`optimizer.iterations`, so a resumed fit
continues where it stopped) to a target sparsity, and says on which steps the
mask is updated: `begin_step`, every `frequency` steps after it, and
`end_step`. Between update steps the mask is left alone; after `end_step` it is
frozen.

Example:

>>> from tfsparse import schedules
>>> s = schedules.PolynomialDecay(final_sparsity=0.9, begin_step=0, end_step=100, frequency=10)
>>> round(s.sparsity(100), 3), s.is_update_step(10), s.is_update_step(11)
(0.9, True, False)
>>> schedules.deserialize(schedules.serialize(s)) == s
True
"""

from __future__ import annotations

import math


def _invalid(argument, expected, value):
    return ValueError(
        f"Invalid value received for argument `{argument}`. Expected "
        f"{expected}. Received: {argument}={value!r}"
    )


def check_sparsity(argument, value, *, allow_zero=True):
    """Validates a sparsity in [0, 1) and returns it as a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise _invalid(argument, "a float in [0, 1)", value)
    if not (0.0 <= value < 1.0) or (not allow_zero and value == 0):
        raise _invalid(argument, "a float in [0, 1)" if allow_zero else "a float in (0, 1)", value)
    return float(value)


def _check_int(argument, value, minimum):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _invalid(argument, f"an integer >= {minimum}", value)
    return value


class Schedule:
    """Base class: the update steps and the sparsity at a step.

    Subclasses implement `sparsity(step)` and a flat `get_config()`.

    Args:
        begin_step: First step at which the mask is updated. Defaults to `0`.
        end_step: Last update step; `None` means update forever (only for
            constant schedules). Defaults to `None`.
        frequency: Steps between updates. Defaults to `100`.
    """

    def __init__(self, *, begin_step=0, end_step=None, frequency=100):
        self.begin_step = _check_int("begin_step", begin_step, 0)
        if end_step is not None:
            _check_int("end_step", end_step, 0)
            if end_step <= begin_step:
                raise ValueError(
                    "Invalid value received for argument `end_step`. Expected an "
                    f"integer greater than begin_step={begin_step}; pruning needs "
                    f"at least one step. Received: end_step={end_step}"
                )
        self.end_step = end_step
        self.frequency = _check_int("frequency", frequency, 1)

    def sparsity(self, step: int) -> float:
        """The target sparsity at `step` (0.0 before `begin_step`)."""
        raise NotImplementedError("Schedule subclasses implement sparsity(step).")  # abstract

    def is_update_step(self, step: int) -> bool:
        """Whether the mask is recomputed at exactly `step`."""
        if step < self.begin_step or (self.end_step is not None and step > self.end_step):
            return False
        return (step - self.begin_step) % self.frequency == 0 or step == self.end_step

    def last_update_step(self, step: int):
        """The latest update step <= `step`, or `None` before `begin_step`.

        Used when the callback does not see every step (e.g. with
        `steps_per_execution > 1`): the mask is brought to the schedule's
        value at the update step it missed.
        """
        if step < self.begin_step:
            return None
        if self.end_step is not None and step >= self.end_step:
            return self.end_step
        return self.begin_step + (step - self.begin_step) // self.frequency * self.frequency

    def is_frozen(self, step: int) -> bool:
        """Whether the mask never changes again after `step`."""
        return self.end_step is not None and step >= self.end_step

    def get_config(self) -> dict:
        return {"begin_step": self.begin_step, "end_step": self.end_step, "frequency": self.frequency}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class Constant(Schedule):
    """The same sparsity at every update step from `begin_step` on.

    Args:
        target_sparsity: Sparsity in [0, 1).
        begin_step: First update step. Defaults to `0`.
        end_step: Last update step, or `None` for no end. Defaults to `None`.
        frequency: Steps between updates. Defaults to `100`.

    Example:

    >>> Constant(0.5, begin_step=10).sparsity(10), Constant(0.5, begin_step=10).sparsity(9)
    (0.5, 0.0)
    """

    def __init__(self, target_sparsity, *, begin_step=0, end_step=None, frequency=100):
        super().__init__(begin_step=begin_step, end_step=end_step, frequency=frequency)
        self.target_sparsity = check_sparsity("target_sparsity", target_sparsity)

    def sparsity(self, step):
        return self.target_sparsity if step >= self.begin_step else 0.0

    def get_config(self):
        return {"target_sparsity": self.target_sparsity, **super().get_config()}


class PolynomialDecay(Schedule):
    """Zhu & Gupta (2017) gradual schedule.

    `s_t = s_f + (s_i - s_f) * (1 - (t - t0) / (t1 - t0)) ** power` for
    `t0 <= t <= t1`; `s_i` before `t0` is 0 (dense), `s_f` after `t1`.

    Args:
        final_sparsity: Sparsity reached at `end_step`, in [0, 1).
        begin_step: `t0`. Defaults to `0`.
        end_step: `t1`, greater than `begin_step`. Required.
        initial_sparsity: `s_i`, in [0, 1). Defaults to `0.0`.
        power: Exponent, >= 1 makes pruning fast early. Defaults to `3`.
        frequency: Steps between updates. Defaults to `100`.

    Example:

    >>> s = PolynomialDecay(final_sparsity=0.8, begin_step=0, end_step=10, frequency=5)
    >>> [round(s.sparsity(t), 2) for t in (0, 5, 10, 20)]
    [0.0, 0.7, 0.8, 0.8]
    """

    def __init__(self, *, final_sparsity, end_step, begin_step=0, initial_sparsity=0.0, power=3, frequency=100):
        if end_step is None:
            raise _invalid("end_step", "an integer greater than begin_step", end_step)
        super().__init__(begin_step=begin_step, end_step=end_step, frequency=frequency)
        self.final_sparsity = check_sparsity("final_sparsity", final_sparsity)
        self.initial_sparsity = check_sparsity("initial_sparsity", initial_sparsity)
        if self.initial_sparsity > self.final_sparsity:
            raise _invalid(
                "initial_sparsity", f"a value <= final_sparsity={self.final_sparsity}", initial_sparsity
            )
        if isinstance(power, bool) or not isinstance(power, (int, float)) or power <= 0:
            raise _invalid("power", "a positive number", power)
        self.power = power

    def sparsity(self, step):
        if step < self.begin_step:
            return 0.0
        progress = min(1.0, (step - self.begin_step) / (self.end_step - self.begin_step))
        value = self.final_sparsity + (self.initial_sparsity - self.final_sparsity) * (1.0 - progress) ** self.power
        return min(self.final_sparsity, max(self.initial_sparsity, value))

    def get_config(self):
        return {
            "final_sparsity": self.final_sparsity,
            "initial_sparsity": self.initial_sparsity,
            "power": self.power,
            **super().get_config(),
        }


_CLASSES = {cls.__name__: cls for cls in (Constant, PolynomialDecay)}


def serialize(schedule: Schedule) -> dict:
    """Returns `{"class_name": ..., "config": ...}` for `schedule`."""
    return {"class_name": type(schedule).__name__, "config": schedule.get_config()}


def deserialize(config: dict) -> Schedule:
    """Rebuilds a schedule from `serialize`'s output."""
    if not isinstance(config, dict) or config.get("class_name") not in _CLASSES:
        raise _invalid("config", f"a dict with class_name in {sorted(_CLASSES)}", config)
    return _CLASSES[config["class_name"]].from_config(config["config"])


def get(identifier) -> Schedule:
    """Returns a schedule from an instance or a `serialize` dict."""
    if isinstance(identifier, Schedule):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    raise _invalid("schedule", "a tfsparse.schedules.Schedule or its serialized dict", identifier)
