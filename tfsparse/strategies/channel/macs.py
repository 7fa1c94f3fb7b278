"""`target_macs`: the channel fraction that keeps a given share of a model's MACs.

MACs are counted per layer call as `tfsparse.flops` counts them
(`tfsparse.xnnpack.macs.call_macs` on each call's input and output shapes),
with each call's channel axes shortened to the channels kept: the channel
graph (`tfsparse.graph.trace`) says which group channel every position of a
call's input and output carries. This is the count `tfsparse.flops` gives the
model `tfsparse.graph.shrink` makes with those counts, so for the counts the
strategy reaches it is exact (removing channels `0..n-1` or the lowest-scored
`n` only differs for a layer that sees some channels of a group and not others,
which the graph does not produce for the usual layers).

Example:

>>> import keras, tfsparse
>>> from tfsparse.strategies.channel import macs
>>> inputs = keras.Input((8, 8, 3))
>>> x = keras.layers.Conv2D(8, 3, padding="same", name="a")(inputs)
>>> x = keras.layers.Conv2D(8, 3, padding="same", name="b")(x)
>>> model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x)))
>>> graph = tfsparse.graph.trace(model)
>>> count = macs.MacCounter(graph)
>>> count({}) == tfsparse.flops(model).macs
True
>>> a, b = graph.prunable()
>>> count({a.index: 4})  # a: 64 positions x 9 x 3 x 4, b: 64 x 9 x 4 x 8, head: 8 x 2
25360
>>> count({a.index: 4, b.index: 4})  # b: 64 x 9 x 4 x 4, head: 4 x 2
16136
"""

from __future__ import annotations

import keras
import numpy as np

from tfsparse.strategies.channel.common import rounded_count, wanted_count
from tfsparse.xnnpack.macs import MAC_LAYERS, call_macs

ITERATIONS = 60  # bisection steps: the sparsity to ~1e-18, far below any change of a count


class MacCounter:
    """`counter(kept) -> MACs` of `graph`'s model when group `i` keeps `kept[i]` channels (others all).

    Args:
        graph: A `tfsparse.graph.ChannelGraph`.
    """

    def __init__(self, graph):
        located = graph.class_of(np.arange(len(graph.builder.parent)))
        self._sizes = np.array([group.size for group in graph.groups], np.int64)
        self._calls = []
        for call in graph.calls:
            node = call.node
            if not isinstance(call.layer, MAC_LAYERS) or not call.inputs or not call.outputs:
                continue
            if not node.input_tensors or not node.outputs:
                continue
            in_shape = tuple(node.input_tensors[0].shape)
            out_shape = tuple(keras.tree.flatten(node.outputs)[0].shape)
            self._calls.append((call.layer, in_shape, out_shape, located[call.inputs[0].atoms],
                                located[call.outputs[0].atoms]))

    def __call__(self, kept) -> int:
        limits = self._sizes.copy()
        for index, count in kept.items():
            limits[index] = count
        total = 0
        for layer, in_shape, out_shape, ins, outs in self._calls:
            channels_in = int(np.count_nonzero(ins[:, 1] < limits[ins[:, 0]]))
            channels_out = int(np.count_nonzero(outs[:, 1] < limits[outs[:, 0]]))
            total += call_macs(layer, (*in_shape[:-1], channels_in), (*out_shape[:-1], channels_out))
        return int(total)


def layer_counts(states, round_to):
    """`fn(sparsity) -> {group index: kept}`: the counts `scope="layer"` reaches at the end of the schedule."""
    def counts(sparsity):
        return {state.group.index: min(state.kept, wanted_count(state.group.size, state.min_keep, round_to, sparsity))
                for state in states}
    return counts


def global_counts(states, scores, round_to, rounds=(1.0,)):
    """`fn(sparsity) -> {group index: kept}` for `scope="global"`, with the scores fixed (`{id(state): scores}`).

    Replays the global ranking at the schedule's updates: `rounds` are the
    fractions of the final sparsity reached at them (increasing, the last
    1). At each, the channels with the lowest score over their group's mean
    (over the channels still kept: the mean rises as a group loses its weak
    channels, so pruning concentrates) go, down to each group's `min_keep`;
    at the end each count is rounded to a multiple of `round_to`. The
    strategy re-scores at every update and caps each step, so this is an
    estimate of the counts it reaches.
    """
    total = sum(state.group.size for state in states)
    floors = np.array([state.min_keep for state in states])
    values = [np.asarray(scores[id(state)], np.float64) for state in states]

    def counts(sparsity):
        alive = [~state.chosen for state in states]
        for fraction in rounds:
            excess = sum(int(a.sum()) for a in alive) - round(total * (1.0 - sparsity * fraction))
            if excess > 0:
                _drop_lowest(alive, values, floors, excess)
        return {state.group.index: rounded_count(int(a.sum()), state.kept, state.min_keep, round_to)
                for state, a in zip(states, alive)}
    return counts


def _drop_lowest(alive, values, floors, excess):
    """Marks the `excess` lowest normalized channels as gone (in `alive`), no group below its floor."""
    normalized, group_of, channel_of = [], [], []
    for index, (kept, scores) in enumerate(zip(alive, values)):
        channels = np.flatnonzero(kept)
        mean = scores[channels].mean() if channels.size else 0.0
        normalized.append(scores[channels] / mean if mean > 0 else scores[channels])
        group_of.append(np.full(channels.size, index))
        channel_of.append(channels)
    normalized, group_of, channel_of = map(np.concatenate, (normalized, group_of, channel_of))
    order = np.lexsort((channel_of, group_of, normalized))
    groups = group_of[order]
    by_group = np.argsort(groups, kind="stable")  # rank of each candidate within its group, in score order
    starts = np.searchsorted(groups[by_group], groups[by_group])
    rank = np.empty(order.size, np.int64)
    rank[by_group] = np.arange(order.size) - starts
    quota = np.array([int(kept.sum()) for kept in alive]) - floors
    for position in order[rank < quota[groups]][:excess]:
        alive[group_of[position]][channel_of[position]] = False


def schedule_rounds(schedule, steps, most=10) -> tuple:
    """The fractions of the final sparsity at `steps` (a `PolynomialDecay`'s), at most `most` of them, the last 1."""
    fractions = sorted({1.0 - (1.0 - min(1.0, (step - schedule.begin_step) / (schedule.end_step -
                                                                              schedule.begin_step))) ** schedule.power
                        for step in steps} - {0.0})
    if len(fractions) > most:
        fractions = [fractions[round(i * (len(fractions) - 1) / (most - 1))] for i in range(most)]
    return tuple(fractions)


def resolve(fraction_of, target, iterations=ITERATIONS) -> tuple:
    """The sparsity `r` in (0, 1) whose MACs fraction `fraction_of(r)` is nearest `target`, and that fraction.

    `fraction_of` is non-increasing (a step function: counts are integers).
    Bisection finds the step where it crosses `target`; of the fractions on
    either side the nearer wins (a tie: the smaller, so the target is met),
    but never `r` with nothing pruned. `r` is the middle of its flat step, so
    the schedule's float arithmetic gives the same counts at `end_step`.

    Returns:
        `(r, fraction)`, or `(None, lowest)` when even `r -> 1` keeps more
        than `target` (`lowest` is the fewest MACs reachable).
    """
    top = float(np.nextafter(1.0, 0.0))
    lowest = fraction_of(top)
    if lowest > target:
        return None, lowest
    above, below = 0.0, top  # fraction_of(above) > target >= fraction_of(below)
    for _ in range(iterations):
        middle = 0.5 * (above + below)
        if fraction_of(middle) <= target:
            below = middle
        else:
            above = middle
    high, low = fraction_of(above), fraction_of(below)
    if high < 1.0 and high - target < target - low:
        return _middle(fraction_of, above, 0.0, above, iterations), high
    return _middle(fraction_of, below, below, top, iterations), low


def _middle(fraction_of, r, lower, upper, iterations) -> float:
    """The middle of the interval of sparsities around `r` in `[lower, upper]` with `r`'s fraction."""
    value = fraction_of(r)
    start, end = lower, r  # the first sparsity with `value`: in (start, end]
    if fraction_of(start) != value:
        for _ in range(iterations):
            middle = 0.5 * (start + end)
            start, end = (start, middle) if fraction_of(middle) == value else (middle, end)
    else:
        end = start
    first = end
    start, end = r, upper  # the last sparsity with `value`: in [start, end)
    if fraction_of(end) != value:
        for _ in range(iterations):
            middle = 0.5 * (start + end)
            start, end = (middle, end) if fraction_of(middle) == value else (start, middle)
    else:
        start = end
    return 0.5 * (first + start)
