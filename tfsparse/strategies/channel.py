"""Structured channel pruning over the channel graph, registered as `channel`.

The model's channel groups (`tfsparse.graph.trace`: channels that must go
together, such as the filters of two convolutions joined by an `Add`) are
pruned gradually: at each update step of a `PolynomialDecay` schedule (as in
`gmp`) every selected group is brought toward the schedule's fraction of
removed channels, dropping its lowest-scored channels by `criterion`
(`tfsparse.graph.importance`). A removed channel is masked in every weight
that makes its value (filters, bias, BatchNormalization gamma and beta,
depthwise kernels), so it is exactly zero downstream and stays removed;
`finalize` (`tfsparse.finalize`, which shrinks last) then removes it
physically (`tfsparse.graph.shrink`). The stem's input channels and the
classifier's output units are never pruned (the graph blocks model inputs
and outputs), nor is a group the graph cannot prune (see
`tfsparse inspect --channels`).

Channel counts:
- `scope="layer"`: each group keeps `size * (1 - sparsity)` channels;
  `scope="global"`: scores are divided by their group's mean (over channels
  still kept) and the lowest channels across all groups go until the
  selected groups as a whole reach the sparsity.
- A group keeps a multiple of `round_to` channels (the nearest one), never
  fewer than `min_channels` (rounded up to a multiple of `round_to`) and
  never more than it has: a group with fewer channels than that is left whole.
- One update removes at most `max_step_fraction` of a group's remaining
  channels (at least one, so that small groups still progress; then the count
  may be between two multiples of `round_to` for a while). If this cap keeps
  a group above its target at `end_step`, pruning goes on every `frequency`
  steps after it until the target is reached.

`sparsity` in `logs` is the fraction of removed channels over the selected
groups.

Example:

>>> import keras, numpy as np, tfsparse
>>> inputs = keras.Input((6, 6, 1))
>>> x = keras.layers.Conv2D(8, 3, activation="relu", name="conv")(inputs)
>>> x = keras.layers.GlobalAveragePooling2D()(x)
>>> model = keras.Model(inputs, keras.layers.Dense(2, name="head")(x))
>>> model.compile("adam", "mse")
>>> channel = tfsparse.get_strategy("channel")(target_sparsity=0.5, begin_step=0, end_step=6, frequency=1)
>>> x = np.random.default_rng(0).random((16, 6, 6, 1)).astype("float32")
>>> history = model.fit(x, np.ones((16, 2)), batch_size=2, epochs=1, verbose=0, callbacks=[channel])
>>> kernel = model.get_layer("conv").kernel.numpy()
>>> int(np.any(kernel != 0, axis=(0, 1, 2)).sum()), history.history["sparsity"][-1]
(4, 0.5)
"""

from __future__ import annotations

import dataclasses
import math

import keras
import numpy as np
from absl import logging

from tfsparse import masks, schedules
from tfsparse.graph import importance
from tfsparse.prunable import PrunableWeight, check_model
from tfsparse.strategy import Strategy, _distribution_scope

SCOPES = ("layer", "global")


def _invalid(argument, expected, value):
    return ValueError(
        f"Invalid value received for argument `{argument}`. Expected {expected}. Received: {argument}={value!r}"
    )


def _check_int(argument, value, minimum):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _invalid(argument, f"an integer >= {minimum}", value)
    return value


def _nearest_multiple(value, multiple) -> int:
    return int(math.floor(value / multiple + 0.5)) * multiple


@dataclasses.dataclass
class GroupState:
    """One selected group while it is pruned.

    Attributes:
        group: The `tfsparse.graph.Group`.
        removed: Boolean array, the removed channels.
        min_keep: The fewest channels it may keep.
    """

    group: object
    removed: np.ndarray
    min_keep: int

    @property
    def kept(self) -> int:
        return int(self.group.size - self.removed.sum())


class ChannelPruning(Strategy):
    """Gradual structured pruning of whole channels.

    Args:
        target_sparsity: Fraction of the selected channels to remove by
            `end_step`, in (0, 1).
        begin_step: First pruning step. Defaults to `0`.
        end_step: Step at which `target_sparsity` is reached (see the
            module docstring for the per-step cap). Required.
        frequency: Steps between updates. Defaults to `100`.
        power: Exponent of the polynomial schedule (as in `gmp`). Defaults
            to `3`.
        criterion: `"l1"`, `"bn_gamma"`, `"taylor"`, `"random"`, a
            `tfsparse.graph.importance.Criterion` or a callable
            `fn(group, **context) -> scores` (see
            `tfsparse.graph.importance`). Defaults to `"l1"`.
        scope: `"layer"` (every group loses the same fraction) or
            `"global"` (channels ranked across groups by their score divided
            by their group's mean). Defaults to `"layer"`.
        min_channels: The fewest channels a group keeps, >= 1. Defaults
            to `1`.
        round_to: Kept channel counts are multiples of it (hardware-friendly
            widths). Defaults to `4`.
        max_step_fraction: At most this fraction of a group's remaining
            channels is removed per update, in (0, 1]. Defaults to `0.2`.
        calibration_data: For `criterion="taylor"`: `(x, y)` arrays or an
            iterable of `(x, y)` batches (a few batches of training data),
            scored again at every update. Not part of `get_config`.
        **kwargs: `layers`, `exclude`, `log_dir` of `tfsparse.Strategy`.
            A group is selected when one of its source layers (the layers
            making its channels: convolutions, Dense...) is.

    Raises:
        ValueError: for a `target_sparsity` outside (0, 1), an unknown
            criterion, `"taylor"` without `calibration_data`, bad counts or
            fractions, a `policy` (channel pruning is dense), and, when the
            model is prepared or training starts, a subclassed model, a
            selection with no prunable group, or a group smaller than
            `min_channels`.
    """

    name = "channel"

    def __init__(
        self,
        target_sparsity=None,
        *,
        begin_step=0,
        end_step=None,
        frequency=100,
        power=3,
        criterion="l1",
        scope="layer",
        min_channels=1,
        round_to=4,
        max_step_fraction=0.2,
        calibration_data=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if self.policy is not None:
            raise _invalid("policy", "None (channel pruning keeps the weights dense; the xnnpack policy is for "
                           "sparse weights)", self.policy)
        if target_sparsity is None:
            raise _invalid("target_sparsity", "a float in (0, 1), the fraction of channels to remove", None)
        target = schedules.check_sparsity("target_sparsity", target_sparsity, allow_zero=False)
        if end_step is None:
            raise _invalid("end_step", "the step at which target_sparsity is reached, greater than begin_step",
                           end_step)
        self.schedule = schedules.PolynomialDecay(
            final_sparsity=target, begin_step=begin_step, end_step=end_step, frequency=frequency, power=power
        )
        self.target_sparsity = target
        self.criterion = criterion
        self._criterion = importance.get_criterion(criterion)
        if scope not in SCOPES:
            raise _invalid("scope", f"one of {SCOPES}", scope)
        self.scope = scope
        self.min_channels = _check_int("min_channels", min_channels, 1)
        self.round_to = _check_int("round_to", round_to, 1)
        if (isinstance(max_step_fraction, bool) or not isinstance(max_step_fraction, (int, float))
                or not 0 < max_step_fraction <= 1):
            raise _invalid("max_step_fraction", "a float in (0, 1]", max_step_fraction)
        self.max_step_fraction = float(max_step_fraction)
        if self._criterion.needs_data and calibration_data is None:
            raise _invalid("calibration_data", f"`(x, y)` batches for criterion={criterion!r} (it scores "
                           "channels from the loss's gradients on them)", calibration_data)
        self.calibration_data = calibration_data
        self.groups = []  # GroupState of every selected group, after attach
        self._targets = []  # (variable, [(axis, channels, GroupState)]) per masked weight
        self._base = {}  # id(variable) -> the mask it had before (another strategy's), or None
        self._capped = False  # the last update was held back by max_step_fraction

    # ----------------------------------------------------------- selection
    def select_groups(self, model) -> list:
        """The prunable `tfsparse.graph.Group`s this strategy acts on.

        Raises:
            ValueError: for a subclassed model, a selection without a
                prunable group, or a selected group smaller than
                `min_channels`.
        """
        from tfsparse.graph import trace

        check_model(model)
        graph = trace(model)
        names = {weight.layer.name for weight in self.select(model)}
        prunable = graph.prunable()
        groups = [group for group in prunable if names.intersection(group.sources)]
        if not groups:
            described = "; ".join(group.describe() for group in prunable) or "none"
            raise _invalid("layers", f"a selection with a prunable channel group (prunable groups: {described})",
                           self.layers)
        for group in groups:
            if group.size < self.min_channels:
                raise _invalid("min_channels", f"at most {group.size}, the channels of the group of "
                               f"{', '.join(group.sources)} (exclude that group or lower min_channels)",
                               self.min_channels)
        if all(self._min_keep(group) >= group.size for group in groups):
            raise _invalid("round_to", f"a value that lets a selected group lose a channel: with "
                           f"min_channels={self.min_channels} no group of {[g.size for g in groups]} channels can be "
                           "pruned", self.round_to)
        return groups

    def _min_keep(self, group) -> int:
        return min(group.size, math.ceil(self.min_channels / self.round_to) * self.round_to)

    def prepare(self, model):
        """Checks that `model` can be channel-pruned and returns it (masks are attached when training starts)."""
        self.select_groups(model)
        return model

    # --------------------------------------------------------------- masks
    def attach(self, model):
        """Traces `model`, selects groups and masks every out weight of them (already zero channels stay removed)."""
        groups = self.select_groups(model)
        self.groups = []
        for group in groups:
            removed = group.zero_channels()
            if removed.all():  # an all-zero group carries no pattern (e.g. zeros initializer)
                removed = np.zeros(group.size, bool)
            self.groups.append(GroupState(group, removed, self._min_keep(group)))
        targets = {}
        for state in self.groups:
            for member, channels in state.group.out_members():
                entry = targets.setdefault(id(member.variable), (member.layer, member.variable, []))
                entry[2].append((member.axis, channels, state))
        self._targets, self._base, self.weights = [], {}, []
        with _distribution_scope(model):
            for layer, variable, parts in targets.values():
                existing = masks.get_mask(variable)
                self._base[id(variable)] = (
                    None if existing is None else np.asarray(keras.ops.convert_to_numpy(existing.value))
                )
                masks.attach(variable)
                self._targets.append((variable, parts))
                self.weights.append(PrunableWeight(layer, variable))
        self._apply_masks()
        self._sparsity = self.current_sparsity()
        return self.weights

    def _apply_masks(self):
        for variable, parts in self._targets:
            keep = np.ones(tuple(variable.shape), np.float32)
            for axis, channels, state in parts:
                inside = channels >= 0
                positions = np.flatnonzero(inside & state.removed[np.where(inside, channels, 0)])
                index = [slice(None)] * keep.ndim
                index[axis] = positions
                keep[tuple(index)] = 0.0
            base = self._base.get(id(variable))
            masks.set_mask(variable, keep if base is None else keep * base)

    def current_sparsity(self) -> float:
        """Fraction of removed channels over the selected groups."""
        total = sum(state.group.size for state in self.groups)
        return float(sum(int(state.removed.sum()) for state in self.groups) / total) if total else 0.0

    # ------------------------------------------------------------ schedule
    def due_update(self, step):
        """The schedule's update steps, then every `frequency` steps after `end_step` while the step cap held back."""
        end, frequency = self.schedule.end_step, self.schedule.frequency
        if self._last_update is not None and self._last_update >= end and step >= end:
            if not self._capped:
                return None
            update = end + (step - end) // frequency * frequency
            return None if update == self._last_update else update
        return super().due_update(step)

    def update_masks(self, step):
        """Removes channels for `step` (see the module docstring) and sets the masks."""
        sparsity = self.schedule.sparsity(step)
        plan, scores = self._plan_global(sparsity) if self.scope == "global" else self._plan_layer(sparsity)
        if any(plan):
            if scores is None:
                scores = self._scores([state for state, count in zip(self.groups, plan) if count])
            for state, count in zip(self.groups, plan):
                if count:
                    alive = np.flatnonzero(~state.removed)
                    order = alive[np.argsort(scores[id(state)][alive], kind="stable")]
                    state.removed[order[:count]] = True
            self._apply_masks()
        self._last_update = step
        self._sparsity = self.current_sparsity()
        self.history.append((int(step), float(self._sparsity)))
        if self._capped and step >= self.schedule.end_step:
            logging.info("tfsparse channel: step %d, the per-step cap (max_step_fraction=%s) keeps some groups above "
                         "the target; pruning goes on every %d steps.", step, self.max_step_fraction,
                         self.schedule.frequency)

    def _scores(self, states) -> dict:
        groups = [state.group for state in states]
        raw = self._criterion.score(groups, model=self.model, data=self.calibration_data)
        return {id(state): importance.check_scores(values, state.group, self.criterion)
                for state, values in zip(states, raw)}

    def _lower(self, state) -> int:
        """The fewest channels `state` may keep after this update."""
        cap = max(1, math.floor(self.max_step_fraction * state.kept))
        return min(state.kept, max(state.min_keep, state.kept - cap))

    def _round(self, keep, state, lower) -> int:
        """`keep` moved to the nearest multiple of `round_to` in `[lower, kept)`, or kept as is if none fits."""
        current = state.kept
        if keep >= current:
            return current
        first = math.ceil(lower / self.round_to) * self.round_to
        options = [current, *range(first, current, self.round_to)]
        if len(options) == 1:  # no multiple fits under the cap: progress by `keep`
            return keep
        return min(options, key=lambda option: (abs(option - keep), option))

    def _plan_layer(self, sparsity):
        """Channels to remove from each group now (`scope="layer"`), and no scores."""
        plan, capped = [], False
        for state in self.groups:
            size = state.group.size
            wanted = min(size, max(state.min_keep, _nearest_multiple(size * (1.0 - sparsity), self.round_to)))
            lower = self._lower(state)
            capped |= wanted < lower
            keep = self._round(max(wanted, lower), state, lower)
            plan.append(state.kept - keep)
        self._capped = capped
        return plan, None

    def _plan_global(self, sparsity):
        """Channels to remove from each group now (`scope="global"`), and the scores it ranked."""
        total = sum(state.group.size for state in self.groups)
        excess = sum(state.kept for state in self.groups) - round(total * (1.0 - sparsity))
        self._capped = False
        if excess <= 0:
            return [0] * len(self.groups), None
        scores = self._scores(self.groups)
        candidates = []
        for index, state in enumerate(self.groups):
            alive = np.flatnonzero(~state.removed)
            values = scores[id(state)][alive]
            mean = values.mean() if values.size else 0.0
            normalized = values / mean if mean > 0 else values
            candidates.extend((value, index, channel) for value, channel in zip(normalized, alive))
        lowers = [self._lower(state) for state in self.groups]
        picked = [0] * len(self.groups)
        for _, index, _ in sorted(candidates, key=lambda c: (float(c[0]), c[1], c[2])):
            if excess <= 0:
                break
            state = self.groups[index]
            if state.kept - picked[index] > lowers[index]:
                picked[index] += 1
                excess -= 1
            elif lowers[index] > state.min_keep:
                self._capped = True
        plan = [state.kept - self._round(state.kept - count, state, lower) if count else 0
                for state, count, lower in zip(self.groups, picked, lowers)]
        return plan, scores

    # ---------------------------------------------------------- callbacks
    def on_train_end(self, logs=None):
        if self._capped and self._last_update is not None and self._last_update >= self.schedule.end_step:
            logging.warning(
                "tfsparse channel: training ended with the per-step cap (max_step_fraction=%s) still holding groups "
                "above target_sparsity=%s (channel sparsity %.4f); train longer or raise max_step_fraction.",
                self.max_step_fraction, self.target_sparsity, self._sparsity)
        super().on_train_end(logs)

    # ------------------------------------------------------- serialization
    def get_config(self):
        """The constructor arguments, `calibration_data` excepted.

        For `criterion="taylor"` pass it again:
        `ChannelPruning.from_config({**config, "calibration_data": data})`.
        A callable criterion cannot be saved (a `ValueError`).
        """
        return {
            "target_sparsity": self.target_sparsity,
            "begin_step": self.schedule.begin_step,
            "end_step": self.schedule.end_step,
            "frequency": self.schedule.frequency,
            "power": self.schedule.power,
            "criterion": importance.serialize_criterion(self._criterion),
            "scope": self.scope,
            "min_channels": self.min_channels,
            "round_to": self.round_to,
            "max_step_fraction": self.max_step_fraction,
            **super().get_config(),
        }
