"""`Strategy`: the plugin contract, a `keras.callbacks.Callback`.

A strategy selects weights, attaches masks to them when training starts,
updates the masks at its schedule's steps (read from `optimizer.iterations`,
so a resumed fit continues the schedule), and reports `sparsity` in `logs`
(the progress bar and History show it). With `log_dir` it also writes
per-weight sparsity scalars for TensorBoard.

Two hooks complete the contract:
- `prepare(model) -> model`, called by the user before `compile`. Mask-only
  strategies return the same model; strategies that insert layers return a
  modified copy with all weights kept.
- `finalize(model) -> model` (a class method) turns a trained model into the
  deployable one; the base version is `tfsparse.finalize`.

Subclasses set `self.schedule` and implement
`compute_masks(step, weights) -> list[np.ndarray]`; they may override
`due_update(step)`. An `update_masks(step)` override may return `False`
when it changed nothing the compiled train step holds as a constant (masks,
constraint settings): on JAX this spares retracing the step (see
`tfsparse.backend_state`); any other return value counts as a change.

One strategy per weight: each strategy claims the weights it masks when a fit
starts (`tfsparse.masks.attach(variable, owner=self)`) and, on the fit's first
batch, checks that it still owns them (`check_ownership`); two strategies on
one weight in the same fit raise a `ValueError` naming both. Strategies on
disjoint weights, and different strategies in successive fits, are fine. A
schedule that ends after the fit's last step is reported with a
`UserWarning` when the fit starts. A subclass overriding `on_train_begin`
claims its weights (`masks.attach(..., owner=self)`) and then calls
`self.fit_started()`; one overriding `on_train_batch_begin` calls
`self.check_ownership()` first.

Example:

>>> import keras, numpy as np, tfsparse
>>> model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])
>>> model.compile("sgd", "mse")
>>> gmp = tfsparse.get_strategy("gmp")(target_sparsity=0.5, begin_step=0, end_step=4, frequency=2)
>>> _ = model.fit(np.ones((8, 8)), np.ones((8, 4)), batch_size=1, verbose=0, callbacks=[gmp])
>>> float(tfsparse.sparsity_report(model).sparsity)
0.5
"""

from __future__ import annotations

import contextlib
import warnings

import keras
import numpy as np

from tfsparse import masks
from tfsparse.backend_state import after_mask_change, before_writes, retrace_if_changed, traced_constants
from tfsparse.distillation import pruning_target_of
from tfsparse.prunable import check_model
from tfsparse.selection import check_layers_argument, deserialize_selector, select_weights, serialize_selector
from tfsparse.xnnpack.policy import check_policy, xnnpack_weights


class Strategy(keras.callbacks.Callback):
    """Base class of every pruning or regularization strategy.

    Args:
        layers: Which weights to act on (see `tfsparse.selection`); `None`
            means every prunable weight. Defaults to `None`.
        exclude: Weights to leave alone, same forms. Defaults to `None`.
        policy: `None`, or `"xnnpack"` to act only on the 1x1 convolutions
            XNNPACK's sparse path speeds up (see `tfsparse.xnnpack.policy`);
            a model XNNPACK cannot run sparse is then refused with the
            reasons. Defaults to `None`.
        log_dir: Directory for TensorBoard scalars (per-weight sparsity),
            or `None`. Defaults to `None`.
    """

    #: Registry name, set by subclasses.
    name = None

    def __init__(self, *, layers=None, exclude=None, policy=None, log_dir=None):
        super().__init__()
        check_layers_argument(layers)
        self.layers = layers
        self.exclude = exclude
        self.policy = check_policy(policy)
        self.log_dir = log_dir
        self.schedule = None  # set by subclasses (a tfsparse.schedules.Schedule)
        self.weights = []
        self.history = []  # (step, overall sparsity) at every mask update
        self._last_update = None
        self._sparsity = 0.0
        self._writer = None
        self._ownership_checked = True  # False from the start of a fit to its first batch
        self._schedule_warned = False

    # ----------------------------------------------------------- contract
    def prepare(self, model):
        """Returns the model to compile and train (the same one here)."""
        check_model(model)
        return model

    @classmethod
    def finalize(cls, model):
        """Returns the deployable model (see `tfsparse.finalize`)."""
        from tfsparse.deploy import finalize

        return finalize(model)

    def select(self, model):
        """Returns the `PrunableWeight`s this strategy acts on."""
        weights = select_weights(model, layers=self.layers, exclude=self.exclude)
        return xnnpack_weights(model, weights) if self.policy == "xnnpack" else weights

    def due_update(self, step: int):
        """The schedule step whose masks are due before training step `step`.

        Returns `None` when the masks are current. The default follows
        `self.schedule` (a `tfsparse.schedules.Schedule`); it also catches up
        on update steps the callback did not see (`steps_per_execution > 1`)
        and on a resumed fit.
        """
        if self.schedule is None:
            raise TypeError(
                f"{type(self).__name__} sets no `self.schedule`; set one in __init__ "
                "or override `due_update(step)`."
            )
        update_step = self.schedule.last_update_step(step)
        return None if update_step == self._last_update else update_step

    def compute_masks(self, step: int, weights):
        """Returns one 0/1 numpy mask per weight in `weights` for `step`."""
        raise NotImplementedError("Strategy subclasses implement compute_masks().")  # abstract

    # ------------------------------------------------------------ helpers
    @property
    def target_model(self):
        """The model whose weights this strategy prunes.

        `self.model` (the model `fit` runs), or the model it names as its
        `pruning_target`: the student of a `tfsparse.Distiller`.
        """
        return pruning_target_of(self.model)

    def attach(self, model):
        """Selects weights and attaches masks (from their zero patterns), claiming them."""
        check_model(model)
        self.weights = self.select(model)
        with _distribution_scope(model):
            for weight in self.weights:
                masks.attach(weight.variable, owner=self)
        self._sparsity = self.current_sparsity()
        return self.weights

    def current_sparsity(self) -> float:
        """Fraction of zeros over all selected weights, from their masks."""
        zeros = total = 0
        for weight in self.weights:
            mask = keras.ops.convert_to_numpy(masks.get_mask(weight.variable).value)
            zeros += mask.size - np.count_nonzero(mask)
            total += mask.size
        return float(zeros / total) if total else 0.0

    def update_masks(self, step: int) -> None:
        """Computes and applies new masks for `step`, and records it."""
        new_masks = self.compute_masks(step, self.weights)
        for weight, mask in zip(self.weights, new_masks):
            masks.set_mask(weight.variable, mask)
        self._last_update = step
        self._sparsity = self.current_sparsity()
        self.history.append((int(step), float(self._sparsity)))

    # ---------------------------------------------------------- ownership
    def owned_variables(self):
        """The variables this strategy claims in a fit: those of `self.weights`."""
        return [weight.variable for weight in self.weights]

    def check_ownership(self) -> None:
        """Raises if another strategy claimed one of this strategy's weights in this fit.

        Every strategy claims its weights when the fit starts (the last claim
        wins); on the first batch each one checks its claims, so the first of
        two strategies on one weight raises. Later batches skip the check.

        Raises:
            ValueError: naming both strategies and the weight.
        """
        if self._ownership_checked:
            return
        self._ownership_checked = True
        conflicts = []
        for variable in self.owned_variables():
            owner = masks.owner_of(variable)
            if owner is not None and owner is not self:
                conflicts.append((variable, owner))
        if not conflicts:
            return
        variable, other = conflicts[0]
        mine, theirs = _describe(self), _describe(other)
        both = f"two {mine} strategies" if mine == theirs else f"{mine} and {theirs}"
        others = len(conflicts) - 1
        more = f" (and {others} more weight{'s' if others > 1 else ''})" if others else ""
        raise ValueError(
            f"Invalid value received for argument `callbacks`. Expected one pruning strategy per weight, but "
            f"{both} both act on {variable.path}{more} in this fit, so each would undo the other's masks. "
            "Use one strategy per weight: give them disjoint `layers=`/`exclude=` (or run them in separate "
            f"fits). Received: callbacks with {both} on {variable.path}"
        )

    # ------------------------------------------------------ schedule check
    def schedule_end(self):
        """The step at which the strategy reaches its target: `schedule.end_step` (`None`: no target step)."""
        return None if self.schedule is None else self.schedule.end_step

    def sparsity_after(self, step: int):
        """`(sparsity, target)` once training step `step` was taken, or `None` when the schedule cannot say."""
        schedule = self.schedule
        try:
            update = schedule.last_update_step(step)
            reached = 0.0 if update is None else float(schedule.sparsity(update))
            return reached, float(schedule.sparsity(self.schedule_end()))
        except NotImplementedError:  # a schedule without sparsities (l0's, moe_expert's)
            return None

    def _last_applied_step(self, stop: int) -> int:
        """The last step whose update a fit stopping at step `stop` applies (its last batch's)."""
        return stop - 1

    def warn_if_schedule_outlasts_fit(self) -> None:
        """Warns (once) when the schedule ends after the last step of the fit that starts.

        Uses `self.params` (`steps` per epoch, `epochs`) and the optimizer's
        `iterations`; a fit of unknown length is not checked.
        """
        if self._schedule_warned or self.model is None or getattr(self.model, "optimizer", None) is None:
            return
        params = self.params or {}
        steps, epochs = params.get("steps"), params.get("epochs")
        end = self.schedule_end()
        if not steps or not epochs or end is None:
            return
        optimizer = self.model.optimizer
        start = int(keras.ops.convert_to_numpy(optimizer.iterations))
        batches = int(steps) * int(epochs)
        accumulation = getattr(getattr(optimizer, "inner_optimizer", optimizer), "gradient_accumulation_steps", None)
        stop = start + (batches // accumulation if accumulation else batches)  # `iterations` when the fit ends
        last = self._last_applied_step(stop)
        if end <= last:
            return
        outcome = self.sparsity_after(last)
        if outcome is not None and outcome[0] >= outcome[1]:
            return
        self._schedule_warned = True
        finish = ("the model will not reach the strategy's target" if outcome is None else
                  f"the model will finish at sparsity {outcome[0]:.1%} instead of the target {outcome[1]:.1%}")
        warnings.warn(
            f"{type(self).__name__}'s schedule ends at step {end} but this fit stops at step {stop}: {finish}. "
            "Lower end_step or train longer.",
            UserWarning,
            stacklevel=2,
        )

    def fit_started(self) -> None:
        """Arms the ownership check of the first batch and checks the schedule against the fit's length.

        `on_train_begin` calls it once the weights are claimed; a subclass
        that overrides `on_train_begin` without calling it calls this last.
        """
        self._ownership_checked = False
        self.warn_if_schedule_outlasts_fit()

    # ---------------------------------------------------------- callbacks
    def on_train_begin(self, logs=None):
        before = {id(v): v.constraint for v in self.model.trainable_variables}
        constants = traced_constants(self.model)  # JAX: a step traced before also holds the masks' values
        self.attach(self.target_model)
        changed = any(v.constraint is not before.get(id(v)) for v in self.model.trainable_variables)
        if changed and getattr(self.model, "train_function", None) is not None:
            self.model.make_train_function(force=True)  # a step traced before would miss the mask constraints
        elif not changed:
            retrace_if_changed(self.model, constants)
        if self.log_dir:
            import tensorflow as tf  # only needed for TensorBoard files

            self._writer = tf.summary.create_file_writer(self.log_dir)
        self.fit_started()

    def on_train_batch_begin(self, batch, logs=None):
        self.check_ownership()
        step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        update_step = self.due_update(step)
        if update_step is not None:
            before_writes(self.model)
            if self.update_masks(update_step) is not False:
                after_mask_change(self.model)

    def on_train_batch_end(self, batch, logs=None):
        if logs is not None:
            logs["sparsity"] = self._sparsity

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["sparsity"] = self._sparsity
        if self._writer is not None:
            self._write_scalars()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _write_scalars(self):
        import tensorflow as tf

        step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        with self._writer.as_default():
            tf.summary.scalar("sparsity/total", self._sparsity, step=step)
            for weight in self.weights:
                value = masks.sparsity(keras.ops.convert_to_numpy(weight.variable.value))
                tf.summary.scalar(f"sparsity/{weight.path}", value, step=step)
        self._writer.flush()

    # ------------------------------------------------------- serialization
    def get_config(self) -> dict:
        return {
            "layers": serialize_selector(self.layers),
            "exclude": serialize_selector(self.exclude),
            "policy": self.policy,
            "log_dir": self.log_dir,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["layers"] = deserialize_selector(config.get("layers"))
        config["exclude"] = deserialize_selector(config.get("exclude"))
        return cls(**config)


def _describe(strategy) -> str:
    """`GMP ('gmp')`: a strategy's class and registry name, for messages."""
    name = getattr(strategy, "name", None)
    return f"{type(strategy).__name__} ({name!r})" if name else type(strategy).__name__


def _distribution_scope(model):
    """The model's `tf.distribute` scope, so masks are mirrored like weights."""
    strategy = getattr(model, "distribute_strategy", None)
    return strategy.scope() if strategy is not None else contextlib.nullcontext()
