"""Shared pieces of the `channel` strategy: argument checks, channel counts, the per-group state."""

from __future__ import annotations

import dataclasses
import math

import numpy as np


def _invalid(argument, expected, value):
    return ValueError(
        f"Invalid value received for argument `{argument}`. Expected {expected}. Received: {argument}={value!r}"
    )


def _check_int(argument, value, minimum):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _invalid(argument, f"an integer >= {minimum}", value)
    return value


def _check_fraction(argument, value, expected):
    """`value` as a float in (0, 1) (open), else the error naming `expected`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:  # NaN fails too
        raise _invalid(argument, expected, value)
    return float(value)


def _nearest_multiple(value, multiple) -> int:
    return int(math.floor(value / multiple + 0.5)) * multiple


def wanted_count(size, min_keep, round_to, sparsity) -> int:
    """The channels a group of `size` keeps at `sparsity` (`scope="layer"`): the nearest multiple of `round_to`.

    >>> wanted_count(10, 4, 4, 0.5), wanted_count(10, 4, 4, 0.9), wanted_count(10, 4, 4, 0.0)
    (4, 4, 10)
    """
    return min(size, max(min_keep, _nearest_multiple(size * (1.0 - sparsity), round_to)))


def rounded_count(keep, current, lower, round_to) -> int:
    """`keep` moved to the nearest multiple of `round_to` in `[lower, current)`, or as is if none fits.

    `current` (no change) is an option too; a tie goes to the smaller count.

    >>> rounded_count(5, 16, 1, 4), rounded_count(14, 16, 14, 4), rounded_count(20, 16, 1, 4)
    (4, 14, 16)
    """
    if keep >= current:
        return current
    first = math.ceil(lower / round_to) * round_to
    options = [current, *range(first, current, round_to)]
    if len(options) == 1:  # no multiple fits: progress by `keep`
        return keep
    return min(options, key=lambda option: (abs(option - keep), option))


@dataclasses.dataclass
class GroupState:
    """One selected group while it is pruned.

    Attributes:
        group: The `tfsparse.graph.Group`.
        removed: Boolean array, the removed channels (masked with exact zeros).
        min_keep: The fewest channels it may keep.
        scheduled: Boolean array, the channels chosen for removal that are
            still fading (`regularize="growing"`), disjoint from `removed`.
            Defaults to none.
    """

    group: object
    removed: np.ndarray
    min_keep: int
    scheduled: np.ndarray = None

    def __post_init__(self):
        if self.scheduled is None:
            self.scheduled = np.zeros_like(self.removed, dtype=bool)

    @property
    def chosen(self) -> np.ndarray:
        """Boolean array: removed or scheduled."""
        return self.removed | self.scheduled

    @property
    def kept(self) -> int:
        """Channels neither removed nor scheduled for removal."""
        return int(self.group.size - self.chosen.sum())

    def harden(self) -> int:
        """Turns the scheduled channels into removed ones; returns how many."""
        count = int(self.scheduled.sum())
        self.removed |= self.scheduled
        self.scheduled[:] = False
        return count
