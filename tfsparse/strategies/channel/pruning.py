"""`ChannelPruning`, the `channel` strategy (see the package docstring)."""

from __future__ import annotations

import math

import keras
import numpy as np
from absl import logging

from tfsparse import masks, schedules
from tfsparse.backend_state import after_mask_change, before_writes
from tfsparse.graph import importance
from tfsparse.prunable import PrunableWeight, check_model
from tfsparse.strategies.channel import growing, macs
from tfsparse.strategies.channel.common import (GroupState, _check_fraction, _check_int, _invalid, rounded_count,
                                                wanted_count)
from tfsparse.strategy import Strategy, _distribution_scope

SCOPES = ("layer", "global")


class ChannelPruning(Strategy):
    """Gradual structured pruning of whole channels.

    Args:
        target_sparsity: Fraction of the selected channels to remove by
            `end_step`, in (0, 1). Give it or `target_macs`, not both.
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
        target_macs: Instead of `target_sparsity`: the fraction of the
            model's MACs (`tfsparse.flops`) to keep, in (0, 1); `0.5` means
            half the MACs. When the model is known (`prepare` or training
            start) it is turned into the `target_sparsity` whose kept counts
            give the nearest MACs fraction (see the module docstring), set
            as `self.target_sparsity` and logged. Defaults to `None`.
        regularize: `None` (chosen channels are zeroed at once) or
            `"growing"` (they fade through a growing decay and are zeroed at
            `end_step`, see the module docstring). Defaults to `None`.
        **kwargs: `layers`, `exclude`, `log_dir` of `tfsparse.Strategy`.
            A group is selected when one of its source layers (the layers
            making its channels: convolutions, Dense...) is.

    Attributes:
        target_sparsity: The fraction of channels removed by `end_step`
            (with `target_macs`: `None` until the model is known).
        predicted_macs: With `target_macs`, `(kept MACs, model MACs)` the
            resolved sparsity gives; else `None`.
        groups: A `GroupState` per selected group, once training started.

    Raises:
        ValueError: for a `target_sparsity` or `target_macs` outside (0, 1),
            both or neither of them, an unknown `regularize` or criterion,
            `"taylor"` without `calibration_data`, bad counts or fractions, a
            `policy` (channel pruning is dense), and, when the model is
            prepared or training starts, a subclassed model, a selection with
            no prunable group, a group smaller than `min_channels`, or a
            `target_macs` below the fewest MACs channel pruning can reach.
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
        target_macs=None,
        regularize=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if self.policy is not None:
            raise _invalid("policy", "None (channel pruning keeps the weights dense; the xnnpack policy is for "
                           "sparse weights)", self.policy)
        if target_sparsity is None and target_macs is None:
            raise _invalid("target_sparsity", "a float in (0, 1), the fraction of channels to remove (or "
                           "target_macs=, the fraction of MACs to keep)", None)
        if target_sparsity is not None and target_macs is not None:
            raise _invalid("target_macs", f"None when target_sparsity={target_sparsity!r} is given (pass exactly "
                           "one of target_sparsity and target_macs)", target_macs)
        target = None
        if target_sparsity is not None:
            target = schedules.check_sparsity("target_sparsity", target_sparsity, allow_zero=False)
        else:
            target_macs = _check_fraction("target_macs", target_macs, "a float in (0, 1), the fraction of the "
                                          "model's MACs to keep")
        if end_step is None:
            raise _invalid("end_step", "the step at which target_sparsity is reached, greater than begin_step",
                           end_step)
        # with target_macs, the final sparsity is set when the model is known (`_resolve_target`)
        self.schedule = schedules.PolynomialDecay(
            final_sparsity=target or 0.0, begin_step=begin_step, end_step=end_step, frequency=frequency, power=power
        )
        self.target_sparsity = target
        self.target_macs = target_macs
        self.criterion = criterion
        self._criterion = importance.get_criterion(criterion)
        if scope not in SCOPES:
            raise _invalid("scope", f"one of {SCOPES}", scope)
        self.scope = scope
        if not (regularize is None or (isinstance(regularize, str) and regularize in growing.REGULARIZERS)):
            raise _invalid("regularize", f"one of {growing.REGULARIZERS}", regularize)
        self.regularize = regularize
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
        self._targets = []  # (variable, [(axis, channels, GroupState)], fades) per masked weight
        self._base = {}  # id(variable) -> the mask it had before (another strategy's), or None
        self._capped = False  # the last update was held back by max_step_fraction
        self._decay = 0.0  # mask value of the scheduled channels (regularize="growing")
        self._scored_model = None  # the model attach() was given: the one the criterion scores
        self._resolved_for = None  # id of the model target_macs was resolved on
        self.predicted_macs = None  # (kept MACs, model MACs) for the resolved target_macs

    # ----------------------------------------------------------- selection
    def select_groups(self, model) -> list:
        """The prunable `tfsparse.graph.Group`s this strategy acts on.

        Raises:
            ValueError: for a subclassed model, a selection without a
                prunable group, or a selected group smaller than
                `min_channels`.
        """
        return self._select(model)[1]

    def _select(self, model):
        """`(graph, groups)`: the traced graph and the selected groups (see `select_groups`)."""
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
        return graph, groups

    def _min_keep(self, group) -> int:
        return min(group.size, math.ceil(self.min_channels / self.round_to) * self.round_to)

    def _states(self, groups) -> list:
        states = []
        for group in groups:
            removed = group.zero_channels()
            if removed.all():  # an all-zero group carries no pattern (e.g. zeros initializer)
                removed = np.zeros(group.size, bool)
            states.append(GroupState(group, removed, self._min_keep(group)))
        return states

    def prepare(self, model):
        """Checks that `model` can be channel-pruned (and resolves `target_macs`); returns it.

        Masks are attached when training starts.
        """
        graph, groups = self._select(model)
        if self.target_macs is not None:
            self._resolve_target(model, graph, self._states(groups))
        return model

    # ------------------------------------------------------------ targets
    def _resolve_target(self, model, graph, states):
        """Sets `target_sparsity` (and the schedule) from `target_macs` for `model`, once per model."""
        if self._resolved_for == id(model):
            return
        counter = macs.MacCounter(graph)
        total = counter({})
        iterations = macs.ITERATIONS
        if self.scope == "global":
            end, frequency = self.schedule.end_step, self.schedule.frequency
            steps = [*range(self.schedule.begin_step, end, frequency), end]
            if self.regularize == "growing":
                steps = [growing.selection_step(self.schedule, step) for step in steps]
            kept_counts = macs.global_counts(states, self._scores(states, model), self.round_to,
                                             macs.schedule_rounds(self.schedule, steps))
            # the count only moves when the kept total does: 1 / (channels) resolves the sparsity enough
            iterations = math.ceil(math.log2(sum(state.group.size for state in states))) + 10
        else:
            kept_counts = macs.layer_counts(states, self.round_to)
        sparsity, fraction = macs.resolve(lambda r: counter(kept_counts(r)) / total, self.target_macs, iterations)
        if sparsity is None:
            raise _invalid("target_macs", f"at least {fraction:.4f}: the fewest MACs channel pruning reaches on "
                           f"{model.name!r} with this selection, min_channels={self.min_channels} and "
                           f"round_to={self.round_to} (unpruned groups, such as the stem's input channels and the "
                           "classifier's outputs, keep their MACs)", self.target_macs)
        self.target_sparsity = sparsity
        self.schedule = schedules.PolynomialDecay(
            final_sparsity=sparsity, begin_step=self.schedule.begin_step, end_step=self.schedule.end_step,
            frequency=self.schedule.frequency, power=self.schedule.power)
        self.predicted_macs = (counter(kept_counts(sparsity)), total)
        self._resolved_for = id(model)
        logging.info("tfsparse channel: target_macs=%s on %r resolves to target_sparsity=%.6f (scope=%r): %d of %d "
                     "MACs, a fraction of %.4f.", self.target_macs, model.name, sparsity, self.scope,
                     self.predicted_macs[0], total, fraction)

    # --------------------------------------------------------------- masks
    def attach(self, model):
        """Traces `model`, selects groups and masks every out weight of them (already zero channels stay removed)."""
        graph, groups = self._select(model)
        self.groups = self._states(groups)
        self._scored_model = model
        if self.target_macs is not None:
            self._resolve_target(model, graph, self.groups)
        targets = {}
        for state in self.groups:
            for member, channels in state.group.out_members():
                entry = targets.setdefault(id(member.variable), (member.layer, member.variable, []))
                entry[2].append((member.axis, channels, state))
        fading = growing.fading_layers(graph) if self.regularize == "growing" else {}
        self._targets, self._base, self.weights = [], {}, []
        with _distribution_scope(model):
            for layer, variable, parts in targets.values():
                existing = masks.get_mask(variable)
                self._base[id(variable)] = (  # binary: a fade left by an unfinished fit is not kept
                    None if existing is None else (keras.ops.convert_to_numpy(existing.value) != 0).astype("float32")
                )
                masks.attach(variable, owner=self)  # claims it (see `Strategy.check_ownership`)
                self._targets.append((variable, parts, id(layer) in fading))
                self.weights.append(PrunableWeight(layer, variable))
        self._apply_masks()
        self._sparsity = self.current_sparsity()
        return self.weights

    def _apply_masks(self):
        for variable, parts, fades in self._targets:
            keep = np.ones(tuple(variable.shape), np.float32)
            for axis, channels, state in parts:
                inside = channels >= 0
                index = [slice(None)] * keep.ndim
                if fades and state.scheduled.any():
                    index[axis] = np.flatnonzero(inside & state.scheduled[np.where(inside, channels, 0)])
                    keep[tuple(index)] = np.minimum(keep[tuple(index)], self._decay)
                index[axis] = np.flatnonzero(inside & state.removed[np.where(inside, channels, 0)])
                keep[tuple(index)] = 0.0
            base = self._base.get(id(variable))
            values = keep if base is None else keep * base
            if np.all((values == 0) | (values == 1)):
                masks.set_mask(variable, values)
            else:
                masks.set_soft_mask(variable, values)

    def current_sparsity(self) -> float:
        """Fraction of the selected groups' channels chosen for removal: removed, or scheduled and fading."""
        total = sum(state.group.size for state in self.groups)
        return float(sum(int(state.chosen.sum()) for state in self.groups) / total) if total else 0.0

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
        """Chooses channels for `step` (see the module docstring) and sets the masks.

        Returns:
            Whether the masks changed (on JAX, where they are constants of the
            jitted step, the step is traced again only then).
        """
        fading = self.regularize == "growing" and step < self.schedule.end_step
        changed = False
        if self.regularize == "growing":
            changed = fading or sum(state.harden() for state in self.groups) > 0
            self._decay = growing.decay(step, self.schedule.end_step)
            sparsity = self.schedule.sparsity(growing.selection_step(self.schedule, step))
        else:
            sparsity = self.schedule.sparsity(step)
        plan, scores = self._plan_global(sparsity) if self.scope == "global" else self._plan_layer(sparsity)
        if any(plan):
            if scores is None:
                scores = self._scores([state for state, count in zip(self.groups, plan) if count])
            for state, count in zip(self.groups, plan):
                if count:
                    alive = np.flatnonzero(~state.chosen)
                    order = alive[np.argsort(scores[id(state)][alive], kind="stable")]
                    (state.scheduled if fading else state.removed)[order[:count]] = True
            changed = True
        if changed:
            self._apply_masks()
        self._last_update = step
        self._sparsity = self.current_sparsity()
        self.history.append((int(step), float(self._sparsity)))
        if self._capped and step >= self.schedule.end_step:
            logging.info("tfsparse channel: step %d, the per-step cap (max_step_fraction=%s) keeps some groups above "
                         "the target; pruning goes on every %d steps.", step, self.max_step_fraction,
                         self.schedule.frequency)
        return changed

    def _scores(self, states, model=None) -> dict:
        groups = [state.group for state in states]
        model = model or self._scored_model or self.model
        raw = self._criterion.score(groups, model=model, data=self.calibration_data)
        return {id(state): importance.check_scores(values, state.group, self.criterion)
                for state, values in zip(states, raw)}

    def _lower(self, state) -> int:
        """The fewest channels `state` may keep after this update."""
        cap = max(1, math.floor(self.max_step_fraction * state.kept))
        return min(state.kept, max(state.min_keep, state.kept - cap))

    def _plan_layer(self, sparsity):
        """Channels to remove from each group now (`scope="layer"`), and no scores."""
        plan, capped = [], False
        for state in self.groups:
            wanted = wanted_count(state.group.size, state.min_keep, self.round_to, sparsity)
            lower = self._lower(state)
            capped |= wanted < lower
            keep = rounded_count(max(wanted, lower), state.kept, lower, self.round_to)
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
            alive = np.flatnonzero(~state.chosen)
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
        plan = [state.kept - rounded_count(state.kept - count, state.kept, lower, self.round_to) if count else 0
                for state, count, lower in zip(self.groups, picked, lowers)]
        return plan, scores

    def _last_applied_step(self, stop):
        """With `regularize="growing"`, a fit stopping at `end_step` applies it in `on_train_end`."""
        return stop if self.regularize == "growing" else stop - 1

    def sparsity_after(self, step):
        """`(channel sparsity, target)` once step `step` was taken; fading channels (`"growing"`) are not zero."""
        if self.regularize == "growing" and step < self.schedule.end_step:
            return 0.0, float(self.schedule.sparsity(self.schedule.end_step))
        return super().sparsity_after(step)

    # ---------------------------------------------------------- callbacks
    def on_train_end(self, logs=None):
        if self.regularize == "growing" and self.model is not None:  # fit ran exactly to end_step: remove now
            update = self.due_update(int(keras.ops.convert_to_numpy(self.model.optimizer.iterations)))
            if update is not None and update >= self.schedule.end_step:
                before_writes(self.model)
                if self.update_masks(update):
                    after_mask_change(self.model)  # JAX: a later fit must not run a step holding the fading masks
        if self._capped and self._last_update is not None and self._last_update >= self.schedule.end_step:
            logging.warning(
                "tfsparse channel: training ended with the per-step cap (max_step_fraction=%s) still holding groups "
                "above target_sparsity=%s (channel sparsity %.4f); train longer or raise max_step_fraction.",
                self.max_step_fraction, self.target_sparsity, self._sparsity)
        fading = sum(int(state.scheduled.sum()) for state in self.groups)
        if fading:
            logging.warning(
                "tfsparse channel: training ended before end_step=%d with %d channels still fading "
                "(regularize='growing'); they are not zero, so finalize keeps them. Train to end_step.",
                self.schedule.end_step, fading)
        super().on_train_end(logs)

    # ------------------------------------------------------- serialization
    def get_config(self):
        """The constructor arguments, `calibration_data` excepted.

        With `target_macs`, `target_sparsity` is `None` (the resolved value
        depends on the model). For `criterion="taylor"` pass the data again:
        `ChannelPruning.from_config({**config, "calibration_data": data})`.
        A callable criterion cannot be saved (a `ValueError`).
        """
        return {
            "target_sparsity": None if self.target_macs is not None else self.target_sparsity,
            "target_macs": self.target_macs,
            "regularize": self.regularize,
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
