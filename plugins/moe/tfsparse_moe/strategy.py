"""Progressive expert pruning for `MoE` layers, registered as `moe_expert`.

While the model trains, every `MoE` layer sums per-expert routing statistics
in its training calls (inside the compiled step); after each batch the
strategy reads and resets them and keeps the last `window` batches. At each
update step of the schedule a layer drops its least important kept experts
(see `tfsparse_moe.criteria`) down to the scheduled number (`tfsparse_moe.plan`:
from all experts at `begin_step` to `target_experts` at `end_step`, at most 20%
of the remaining experts per step, never fewer than `max(top_k + 1,
min_experts)`). A pruned expert gets `expert_mask` 0 (the router never
chooses it) and its weights (kernels, biases, router column) are held at
zero by `tfsparse.masks` while fine-tuning continues. With `merge=True` it is
first merged into its most similar kept expert (`tfsparse_moe.merging`).

`logs` get `experts_kept` (all selected layers) and `sparsity` (the
fraction of experts pruned); `report()` gives the per-expert statistics.
`tfsparse.finalize` (and `tfsparse.export`) then removes the pruned experts
physically (`tfsparse_moe.remove_pruned_experts`).

Example:

>>> import keras, numpy as np, tfsparse
>>> from tfsparse_moe import MoE
>>> model = keras.Sequential([keras.Input((4, 8)), MoE(num_experts=6, hidden_units=8, top_k=1, name="moe")])
>>> model.compile("adam", "mse")
>>> pruner = tfsparse.get_strategy("moe_expert")(target_experts=3, begin_step=2, end_step=8, frequency=2)
>>> x = np.random.default_rng(0).normal(size=(40, 4, 8)).astype("float32")
>>> history = model.fit(x, x, batch_size=4, verbose=0, callbacks=[pruner])
>>> history.history["experts_kept"], int(model.get_layer("moe").kept_experts().sum())
([3], 3)
"""

from __future__ import annotations

import collections
import contextlib

import keras
import numpy as np
from absl import logging

from tfsparse import masks, schedules
from tfsparse.backend_state import before_writes, retrace_if_changed, traced_constants
from tfsparse.prunable import PrunableWeight, check_model, iter_layers
from tfsparse.selection import select_from
from tfsparse.strategy import Strategy
from tfsparse_moe import criteria as criteria_lib, plan
from tfsparse_moe.expert_report import ExpertLayerReport
from tfsparse_moe.layer import MoE
from tfsparse_moe.merging import merge_expert, most_similar


def _invalid(argument, expected, value):
    return ValueError(
        f"Invalid value received for argument `{argument}`. Expected {expected}. Received: {argument}={value!r}"
    )


def find_moe_layers(model) -> list:
    """The `MoE` layers of `model`, nested ones included, in order."""
    return [layer for layer in iter_layers(model) if isinstance(layer, MoE)]


class MoEExpertPruning(Strategy):
    """Progressive expert pruning (see the module docstring).

    Args:
        target_experts: Experts each selected layer keeps at `end_step`: an
            integer, or a float in (0, 1) for a fraction of each layer's.
        target_sparsity: Instead of `target_experts`, the fraction of each
            layer's experts removed at `end_step` (a float in (0, 1)), as
            `tfsparse prune --sparsity` passes it. Pass one of the two.
        criterion: Importance criterion: `"frequency"`, `"gate"`, `"reap"`,
            `"weight_l1"`, a callable `f(ExpertStatistics) -> scores`, a list
            of those or a dict `{name: weight}`. Defaults to `"frequency"`.
        begin_step: First pruning step (it already prunes); `None` waits
            for a full `window` of statistics. Defaults to `None`.
        end_step: Step at which `target_experts` is reached. Required.
        frequency: Steps between pruning steps. Defaults to `100`.
        window: Recent batches whose statistics are kept. Defaults to `50`.
        power: Exponent of the schedule (1: linear, 3: fast early).
            Defaults to `1`.
        min_experts: Fewest experts a layer keeps, raising the floor
            `top_k + 1`. Defaults to `None`.
        merge: Merge each pruned expert into its most similar kept expert.
            Defaults to `False`.
        **kwargs: `layers`, `exclude` (selecting MoE layers by name, regex,
            class or predicate) and `log_dir` of `tfsparse.Strategy`.

    Raises:
        ValueError: for invalid arguments here; for a model without `MoE`
            layers, a target below a layer's floor or an unreachable
            schedule in `prepare` and when training starts; when pruning is
            due before any statistics were collected.
    """

    name = "moe_expert"

    def __init__(self, target_experts=None, *, target_sparsity=None, criterion="frequency", begin_step=None,
                 end_step=None, frequency=100, window=50, power=1, min_experts=None, merge=False, **kwargs):
        super().__init__(**kwargs)
        if self.policy is not None:
            raise _invalid("policy", "None (expert pruning removes whole experts)", self.policy)
        self.target_experts = plan.check_target(plan.target_from_sparsity(target_experts, target_sparsity))
        self.criterion = criteria_lib.get(criterion)
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise _invalid("window", "an integer >= 1 (batches)", window)
        self.window = window
        if isinstance(power, bool) or not isinstance(power, (int, float)) or not power > 0:
            raise _invalid("power", "a number > 0", power)
        self.power = power
        if min_experts is not None and (isinstance(min_experts, bool) or not isinstance(min_experts, int)
                                        or min_experts < 2):
            raise _invalid("min_experts", "None or an integer >= 2", min_experts)
        self.min_experts = min_experts
        if not isinstance(merge, bool):
            raise _invalid("merge", "True or False", merge)
        self.merge = merge
        if end_step is None:
            raise _invalid("end_step", "the step at which target_experts is reached", end_step)
        if begin_step is None and isinstance(end_step, int) and end_step <= window:
            raise _invalid("end_step", f"a step after begin_step, which is window={window} when begin_step=None "
                           "(pass begin_step or a smaller window)", end_step)
        self.schedule = schedules.Schedule(begin_step=window if begin_step is None else begin_step,
                                           end_step=end_step, frequency=frequency)
        self.begin_step_arg = begin_step
        self.moe_layers = []
        self.targets = {}  # id(layer) -> experts kept at the end
        self.events = {}  # id(layer) -> list of (step, expert, merged into or None)
        self._windows = {}  # id(layer) -> deque of per-batch statistics
        self._start_step = 0  # optimizer.iterations when training began

    # ----------------------------------------------------------- contract
    def prepare(self, model):
        """Checks that `model` has MoE layers this strategy can prune; returns it unchanged."""
        self._select(model)
        return model

    def select_layers(self, model) -> list:
        """The selected `MoE` layers of `model`."""
        check_model(model)
        found = find_moe_layers(model)
        if not found:
            raise _invalid("model", "a model with tfsparse_moe.MoE layers (expert pruning has nothing else to "
                           "prune)", model.name)
        candidates = [PrunableWeight(layer, layer.router_kernel) for layer in found]
        return [weight.layer for weight in select_from(candidates, layers=self.layers, exclude=self.exclude)]

    def _select(self, model):
        layers = self.select_layers(model)
        targets = {}
        for layer in layers:
            floor = plan.expert_floor(layer.top_k, self.min_experts)
            targets[id(layer)] = plan.resolve_target(self.target_experts, num_experts=layer.num_experts,
                                                     floor=floor, layer=layer.name)
            kept = int(layer.kept_experts().sum())
            if kept > targets[id(layer)]:
                plan.check_reachable(self.schedule, num_experts=kept, target=targets[id(layer)], floor=floor,
                                     layer=layer.name, power=self.power)
        return layers, targets

    def compute_masks(self, step, weights):
        raise NotImplementedError("moe_expert masks whole experts; see update_masks.")  # update_masks is overridden

    # ------------------------------------------------------------- pruning
    def statistics(self, layer) -> criteria_lib.ExpertStatistics:
        """The `ExpertStatistics` of `layer` over the current window."""
        batches = list(self._windows.get(id(layer), ()))
        total = {key: sum(batch[key] for batch in batches) if batches else np.zeros(layer.num_experts)
                 for key in ("routed", "gate", "output_norm")}
        l1 = np.zeros(layer.num_experts)
        for variable in layer.expert_variables():
            values = np.abs(np.asarray(keras.ops.convert_to_numpy(variable), np.float64))
            l1 += values.reshape(layer.num_experts, -1).sum(axis=1)
        return criteria_lib.ExpertStatistics(tokens=float(sum(b["tokens"] for b in batches)), weight_l1=l1,
                                             top_k=layer.top_k, kept=layer.kept_experts(), batches=len(batches),
                                             **total)

    def update_masks(self, step):
        """At an update step: prunes (and merges) each selected layer's least important experts.

        A resumed fit whose first batch is due for pruning waits one batch
        for statistics; a fresh one due before any statistics raises.

        Returns:
            Whether an expert was pruned: the masks are constants of a JAX
            step (see `tfsparse.backend_state`), traced again only then.
        """
        due = []
        for layer in self.moe_layers:
            scheduled = plan.scheduled_experts(step, num_experts=layer.num_experts, target=self.targets[id(layer)],
                                               begin_step=self.schedule.begin_step,
                                               end_step=self.schedule.end_step,
                                               frequency=self.schedule.frequency, power=self.power)
            count = plan.prune_count(kept=int(layer.kept_experts().sum()), scheduled=scheduled,
                                     floor=plan.expert_floor(layer.top_k, self.min_experts))
            if count:
                due.append((layer, count, self.statistics(layer)))
        missing = [layer.name for layer, _, stats in due if self.criterion.needs_statistics and stats.tokens <= 0]
        if missing and self._start_step > 0 and not any(self._windows[id(layer)] for layer in self.moe_layers):
            logging.info("tfsparse moe_expert: resumed at step %d with pruning due; waiting one batch for routing "
                         "statistics.", step)
            return False
        if missing:
            raise _invalid("begin_step", f"a step after some training batches: pruning layers {missing} is due at "
                           f"step {step} but no routing statistics were collected yet (criterion "
                           f"{self.criterion.get_config()!r} needs them). Leave begin_step=None (it waits for "
                           "`window` batches), start later, or use criterion='weight_l1'", self.begin_step_arg)
        for layer, count, stats in due:
            self._prune(layer, step, count, stats)
        self._last_update = step
        self._sparsity = self.current_sparsity()
        self.history.append((int(step), float(self._sparsity)))
        return bool(due)

    def _prune(self, layer, step, count, stats):
        kept = stats.kept.copy()
        scores = np.asarray(self.criterion(stats), np.float64)
        order = [int(i) for i in np.argsort(np.where(kept, scores, np.inf), kind="stable")]
        pruned = order[:count]
        kept[pruned] = False
        variables = layer.expert_variables()
        if self.merge:
            arrays = [keras.ops.convert_to_numpy(v) for v in variables]
            weights = stats.frequency.copy()
            for source in pruned:
                target = most_similar(arrays, source, candidates=np.flatnonzero(kept))
                arrays = merge_expert(arrays, source=source, target=target, source_weight=weights[source],
                                      target_weight=weights[target])
                weights[target] += weights[source]
                self.events.setdefault(id(layer), []).append((int(step), source, int(target)))
            for variable, array in zip(variables, arrays):
                variable.assign(array)
        else:
            self.events.setdefault(id(layer), []).extend((int(step), source, None) for source in pruned)
        self._apply(layer, kept)
        logging.info("tfsparse moe_expert: step %d, layer %r: pruned experts %s (%s), %d kept.", step, layer.name,
                     pruned, "merged" if self.merge else "dropped", int(kept.sum()))

    def _apply(self, layer, kept):
        layer.expert_mask.assign(kept.astype("float32"))
        for variable in layer.expert_variables():
            masks.set_mask(variable, np.broadcast_to(kept.reshape((-1,) + (1,) * (len(variable.shape) - 1)),
                                                     variable.shape))
        masks.set_mask(layer.router_kernel, np.broadcast_to(kept, layer.router_kernel.shape))
        masks.set_mask(layer.router_bias, kept)

    def current_sparsity(self) -> float:
        """The fraction of the selected layers' experts that are pruned."""
        total = sum(layer.num_experts for layer in self.moe_layers)
        kept = sum(int(layer.kept_experts().sum()) for layer in self.moe_layers)
        return float(1.0 - kept / total) if total else 0.0

    def experts_kept(self) -> int:
        """The experts kept over all selected layers."""
        return sum(int(layer.kept_experts().sum()) for layer in self.moe_layers)

    def report(self) -> list:
        """One `ExpertLayerReport` per selected layer (statistics over the current window)."""
        return [ExpertLayerReport.build(layer, self.statistics(layer), self.criterion, self.targets[id(layer)],
                                        self.events.get(id(layer), [])) for layer in self.moe_layers]

    # ----------------------------------------------------------- callbacks
    def on_train_begin(self, logs=None):
        self.moe_layers, self.targets = self._select(self.target_model)
        self._start_step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        before = {id(v): v.constraint for v in self.model.trainable_variables}
        constants = traced_constants(self.model)  # JAX: a step traced before also holds the masks' values
        self.weights = []
        with _distribution_scope(self.model):
            for layer in self.moe_layers:
                for variable in [*layer.expert_variables(), layer.router_kernel, layer.router_bias]:
                    masks.attach(variable, owner=self)  # claims it (see `Strategy.check_ownership`)
                    self.weights.append(PrunableWeight(layer, variable))
                self._apply(layer, layer.kept_experts())  # expert_mask (saved with the model) is the truth
                layer.reset_statistics()
                self._windows[id(layer)] = collections.deque(maxlen=self.window)
        changed = any(v.constraint is not before.get(id(v)) for v in self.model.trainable_variables)
        if changed and getattr(self.model, "train_function", None) is not None:
            self.model.make_train_function(force=True)  # a step traced before would miss the mask constraints
        elif not changed:
            retrace_if_changed(self.model, constants)
        self._sparsity = self.current_sparsity()
        if self.log_dir:
            import tensorflow as tf  # only needed for TensorBoard files

            self._writer = tf.summary.create_file_writer(self.log_dir)
        self.fit_started()

    def on_train_batch_end(self, batch, logs=None):
        before_writes(self.model)  # JAX: the statistics are state the fit loop carries; read and reset them here
        for layer in self.moe_layers:
            self._windows[id(layer)].append(layer.read_statistics(reset=True))
        if logs is not None:
            logs["sparsity"] = self._sparsity
            logs["experts_kept"] = self.experts_kept()

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if logs is not None:
            logs["experts_kept"] = self.experts_kept()

    def _write_scalars(self):
        import tensorflow as tf

        step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        with self._writer.as_default():
            tf.summary.scalar("sparsity/total", self._sparsity, step=step)
            for layer in self.moe_layers:
                tf.summary.scalar(f"experts_kept/{layer.name}", int(layer.kept_experts().sum()), step=step)
        self._writer.flush()

    # ------------------------------------------------------- serialization
    def get_config(self):
        return {
            "target_experts": self.target_experts,
            "criterion": self.criterion.get_config(),
            "begin_step": self.begin_step_arg,
            "end_step": self.schedule.end_step,
            "frequency": self.schedule.frequency,
            "window": self.window,
            "power": self.power,
            "min_experts": self.min_experts,
            "merge": self.merge,
            **super().get_config(),
        }


def _distribution_scope(model):
    strategy = getattr(model, "distribute_strategy", None)
    return strategy.scope() if strategy is not None else contextlib.nullcontext()
