"""How many experts a layer keeps at each step of progressive expert pruning.

The scheduled number of experts falls from `E` before `begin_step` to the
target at `end_step` along `E - (E - target) * (1 - (1 - progress) ** power)`
(rounded up), where `progress` is `(step - begin_step + frequency) /
(end_step - begin_step + frequency)`: the first update step, `begin_step`,
already prunes. At an update step a layer loses what it has above the
schedule, but at most 20% of its remaining experts (at least one, so a
small layer can still shrink: 1 of 4 experts is the smallest possible step)
and never goes below its floor `max(top_k + 1, min_experts)`.

Example:

>>> from tfsparse_moe.plan import prune_count, scheduled_experts
>>> [scheduled_experts(step, num_experts=16, target=6, begin_step=0, end_step=10, frequency=5) for step in (0, 5, 10)]
[13, 10, 6]
>>> prune_count(kept=16, scheduled=6, floor=3)  # 20% of 16
3
>>> prune_count(kept=4, scheduled=2, floor=3)  # the floor
1
"""

from __future__ import annotations

import math

MAX_PRUNE_FRACTION = 0.2  # of a layer's remaining experts, per pruning step


def _invalid(argument, expected, value):
    return ValueError(
        f"Invalid value received for argument `{argument}`. Expected {expected}. Received: {argument}={value!r}"
    )


def expert_floor(top_k: int, min_experts=None) -> int:
    """The fewest experts a layer may keep: `max(top_k + 1, min_experts)`."""
    return max(top_k + 1, min_experts or 0)


def target_from_sparsity(target_experts, target_sparsity):
    """`target_experts`, or the fraction of experts kept that `target_sparsity` (removed) means.

    >>> target_from_sparsity(None, 0.25), target_from_sparsity(4, None)
    (0.75, 4)
    """
    if target_sparsity is None:
        return target_experts
    if target_experts is not None:
        raise _invalid("target_sparsity", "None when target_experts is given (pass one of the two)", target_sparsity)
    if isinstance(target_sparsity, bool) or not isinstance(target_sparsity, (int, float)) or not (
            0.0 < target_sparsity < 1.0):
        raise _invalid("target_sparsity", "a float in (0, 1): the fraction of each layer's experts removed",
                       target_sparsity)
    return 1.0 - float(target_sparsity)


def check_target(target_experts):
    """Validates `target_experts`: an int >= 2 or a fraction in (0, 1); returns it."""
    if isinstance(target_experts, bool) or not isinstance(target_experts, (int, float)):
        raise _invalid("target_experts", "an integer >= 2 (experts kept per layer) or a float in (0, 1) (the "
                       "fraction of each layer's experts kept), or target_sparsity (the fraction removed)",
                       target_experts)
    if isinstance(target_experts, int) and target_experts < 2:
        raise _invalid("target_experts", "an integer >= 2 (a layer keeps at least top_k + 1 experts)",
                       target_experts)
    if isinstance(target_experts, float) and not 0.0 < target_experts < 1.0:
        raise _invalid("target_experts", "a float in (0, 1) or an integer >= 2", target_experts)
    return target_experts


def resolve_target(target_experts, *, num_experts: int, floor: int, layer: str) -> int:
    """The number of experts `layer` keeps at the end.

    Raises:
        ValueError: if it is below the floor or above `num_experts`.
    """
    if isinstance(target_experts, float):
        target = max(1, round(target_experts * num_experts))
    else:
        target = int(target_experts)
    if target < floor:
        raise _invalid("target_experts", f"at least {floor} experts for layer {layer!r} (top_k + 1, or "
                       f"min_experts: a token must have experts to choose from), here {target} of "
                       f"{num_experts}", target_experts)
    if target > num_experts:
        raise _invalid("target_experts", f"at most the {num_experts} experts of layer {layer!r}", target_experts)
    return target


def scheduled_experts(step, *, num_experts, target, begin_step, end_step, frequency, power=1) -> int:
    """The experts a layer should have at `step` (`num_experts` before `begin_step`)."""
    if step < begin_step:
        return num_experts
    progress = min(1.0, (step - begin_step + frequency) / (end_step - begin_step + frequency))
    removed = (num_experts - target) * (1.0 - (1.0 - progress) ** power)
    return max(target, math.ceil(num_experts - removed - 1e-9))


def prune_count(*, kept, scheduled, floor, max_fraction=MAX_PRUNE_FRACTION) -> int:
    """How many experts to prune now: down to the schedule, within the per-step cap and the floor."""
    wanted = kept - max(scheduled, floor)
    return max(0, min(wanted, max(1, math.floor(max_fraction * kept + 1e-9))))


def update_steps(schedule):
    """The update steps of a `tfsparse.schedules.Schedule` with an `end_step`."""
    steps = list(range(schedule.begin_step, schedule.end_step, schedule.frequency))
    return steps + [schedule.end_step]


def simulate(*, num_experts, target, floor, steps, begin_step, end_step, frequency, power=1) -> list:
    """`[(step, kept after it)]` over the update `steps`, as pruning would go."""
    kept, trace = num_experts, []
    for step in steps:
        scheduled = scheduled_experts(step, num_experts=num_experts, target=target, begin_step=begin_step,
                                      end_step=end_step, frequency=frequency, power=power)
        kept -= prune_count(kept=kept, scheduled=scheduled, floor=floor)
        trace.append((step, kept))
        if kept == target:
            break
    return trace


def check_reachable(schedule, *, num_experts, target, floor, layer, power=1) -> None:
    """Raises a `ValueError` if the schedule's update steps cannot reach `target` within the 20% cap."""
    trace = simulate(num_experts=num_experts, target=target, floor=floor, steps=update_steps(schedule),
                     begin_step=schedule.begin_step, end_step=schedule.end_step, frequency=schedule.frequency,
                     power=power)
    if trace and trace[-1][1] != target:
        raise _invalid("frequency", f"more update steps between begin_step={schedule.begin_step} and "
                       f"end_step={schedule.end_step}: layer {layer!r} can lose at most "
                       f"{MAX_PRUNE_FRACTION:.0%} of its experts per update and would end with {trace[-1][1]} "
                       f"experts instead of {target}; lower `frequency` or widen the steps",
                       schedule.frequency)
