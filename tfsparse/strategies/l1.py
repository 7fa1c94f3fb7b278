"""L1 regularization by proximal steps, registered as `l1`.

A plain L1 penalty on the loss only pushes weights near zero, where they
oscillate. This strategy takes the proximal step instead: after every
optimizer update the selected weights are soft-thresholded,
`w <- sign(w) * max(|w| - lr * lambda, 0)`, which gives exact zeros. The step
is a variable constraint (`SoftThreshold`) placed inside the weight's mask
constraint, so it runs in the compiled train step (`jit_compile` included)
and reads the optimizer's learning rate there: a float, a variable or a
`keras.optimizers.schedules.LearningRateSchedule` at the step being taken.
`lambda` is a non-trainable variable the callback sets between steps, so
changing it never recompiles. `loss + l1_penalty` is the objective; the
penalty (`lambda * sum|w|`), `l1_lambda` and `sparsity` appear in `logs`,
refreshed at each update step (every `frequency` steps) and epoch end.

Two modes:
- Fixed `l1` (a float, or a Keras `LearningRateSchedule` of the step for a
  warm-up or ramp): a weight the step zeroes is recorded in its mask at once
  (inside the train step), so it stays zero.
- `target_sparsity`: `l1` is only the starting value (default: chosen from the
  weights' magnitudes and the learning rate). At each update step `lambda` is
  multiplied up or down toward the sparsity a linear ramp asks for at the
  next update step; zeros may come back until `end_step`, which the controller
  needs to settle. At `end_step` the mask is set to exactly the target by
  magnitude over all selected weights (one threshold, as one `lambda` is):
  it tops up with the smallest weights, or keeps zeros alive, when the
  controller ended a little off (`reached_sparsity` holds where it ended).
  Then `lambda` is 0 and training fine-tunes under the frozen mask.

In both modes the penalty acts from `begin_step` until `end_step` (`None`:
for all of training) and stops when `fit` ends, so a later `fit` without the
callback is not regularized; the masks stay.

`weights="bn_gamma"` acts on the `gamma` of every BatchNormalization layer
instead of kernels: the first half of network slimming (Liu et al. 2017),
whose zero channels structured pruning then removes.

On JAX (`tfsparse.backend_state`) the jitted step holds `lambda`, the lock
and the masks as constants and drops the zeros it records in a mask: a
`LearningRateSchedule` `l1` is evaluated inside the step at
`optimizer.iterations` instead (no retrace per step), a float `lambda` or a
controller's change retraces the step, and with a fixed `l1` the callback
records the zeros in the masks at each update step and when `fit` ends (a
weight zeroed in between may come back until then).

With adaptive optimizers (Adam, RMSprop...) the update is not a plain
gradient step, so soft-thresholding by `lr * lambda` is the common
approximation of the proximal operator, not the exact one; with SGD
(momentum aside) it is the exact proximal gradient step.

Example:

>>> import keras, numpy as np, tfsparse
>>> keras.utils.set_random_seed(0)
>>> x = np.random.default_rng(0).normal(size=(64, 8)).astype("float32")
>>> model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1, use_bias=False)])
>>> model.compile(keras.optimizers.SGD(0.1), "mse")
>>> l1 = tfsparse.get_strategy("l1")(l1=0.1, frequency=1)
>>> history = model.fit(x, 2 * x[:, :1], batch_size=16, epochs=10, verbose=0, callbacks=[l1])
>>> np.flatnonzero(model.layers[0].kernel.numpy()).tolist(), history.history["sparsity"][-1]
([0], 0.875)
>>> sorted(history.history)
['l1_lambda', 'l1_penalty', 'loss', 'sparsity']
"""

from __future__ import annotations

import math

import keras
import numpy as np
from absl import logging
from keras import ops

from tfsparse import masks, schedules
from tfsparse.backend_state import after_mask_change, before_writes, is_stateless_backend
from tfsparse.prunable import PrunableWeight, check_model, iter_layers
from tfsparse.selection import select_from
from tfsparse.strategies.gmp import keep_largest
from tfsparse.strategy import Strategy, _distribution_scope

WEIGHTS = ("kernel", "bn_gamma")
_EPS = 0.02  # keeps the controller's ratio finite near zero sparsity
_MAX_FACTOR = 4.0  # largest change of lambda at one update step


def _invalid(argument, expected, value):
    return ValueError(
        f"Invalid value received for argument `{argument}`. Expected {expected}. Received: {argument}={value!r}"
    )


class SoftThreshold(keras.constraints.Constraint):
    """The proximal step of L1: `sign(w) * max(|w| - lr * lambda, 0)`.

    Placed by `L1` as the `inner` of a weight's `MaskConstraint`, so it runs
    after the weight's own constraint and before the mask. Where `lock` is 1
    a weight it zeroes is also zeroed in `mask`. With gradient accumulation
    it only acts on the steps that update the weights. Not serializable,
    like `MaskConstraint`.

    Args:
        optimizer: The optimizer whose learning rate scales the threshold.
        lam: Scalar float32 `keras.Variable`, the L1 strength.
        lock: Scalar float32 `keras.Variable`, 1 to record zeros in `mask`.
        mask: The weight's mask variable.
        inner: The constraint the weight had before. Defaults to `None`.

    Attributes:
        lam_schedule: `None` (read `lam`), or `(schedule, begin_step,
            end_step)`: `lambda` is `schedule(iterations)` from `begin_step`
            until `end_step` (`None`: no end), 0 outside, computed in the step
            from the optimizer's `iterations`. `L1` sets it on JAX for a
            `LearningRateSchedule` `l1`, where `lam` would be a constant of
            the jitted step.
    """

    def __init__(self, optimizer, lam, lock, mask, inner=None):
        self.optimizer = optimizer
        self.lam = lam
        self.lock = lock
        self.mask = mask
        self.inner = inner
        self.lam_schedule = None

    def lambda_value(self):
        """`lambda` for the step being taken (a float32 scalar tensor)."""
        if self.lam_schedule is None:
            return ops.cast(ops.convert_to_tensor(self.lam), "float32")
        schedule, begin, end = self.lam_schedule
        step = ops.convert_to_tensor(self.optimizer.iterations)
        active = ops.greater_equal(step, begin)
        if end is not None:
            active = ops.logical_and(active, ops.less(step, end))
        return ops.where(active, ops.cast(schedule(step), "float32"), ops.zeros((), "float32"))

    def threshold(self):
        """`lr * lambda` for the step being taken (a scalar tensor)."""
        lr = ops.cast(self.optimizer.learning_rate, "float32")
        value = lr * self.lambda_value()
        base = getattr(self.optimizer, "inner_optimizer", self.optimizer)  # LossScaleOptimizer
        steps = getattr(base, "gradient_accumulation_steps", None)
        if steps:  # `iterations` counts updates then; `_iterations` counts batches
            batches = getattr(base, "_iterations", base.iterations)
            value = value * ops.cast(ops.equal((batches + 1) % steps, 0), "float32")
        return value

    def __call__(self, w):
        if self.inner is not None:
            w = self.inner(w)
        w = ops.convert_to_tensor(w)  # the optimizer passes the variable: JAX's functions take no keras.Variable
        threshold = ops.cast(self.threshold(), w.dtype)
        out = w - ops.clip(w, -threshold, threshold)  # sign(w) * max(|w| - t, 0), with +0.0
        zeroed = ops.logical_and(ops.not_equal(w, 0), ops.equal(out, 0))
        lock = ops.logical_and(zeroed, ops.greater(ops.convert_to_tensor(self.lock), 0))
        mask = ops.convert_to_tensor(self.mask)  # a tensor: JAX's functions take no keras.Variable
        self.mask.assign(ops.where(lock, ops.zeros_like(mask), mask))  # lost on JAX: the callback records zeros
        return out

    def get_config(self):
        raise TypeError(
            "SoftThreshold is attached to a variable by tfsparse's `l1` strategy "
            "and is not serializable; call `tfsparse.finalize(model)` first."
        )


def _check_l1(l1, *, target_mode):
    if isinstance(l1, dict):
        l1 = keras.optimizers.schedules.deserialize(l1)
    if l1 is None and target_mode:
        return None
    if isinstance(l1, keras.optimizers.schedules.LearningRateSchedule) and not target_mode:
        return l1
    expected = (
        "a float > 0 (the starting lambda) or None (chosen from the weights)"
        if target_mode
        else "a float >= 0 or a keras.optimizers.schedules.LearningRateSchedule of the step"
    )
    if isinstance(l1, bool) or not isinstance(l1, (int, float)) or not math.isfinite(l1):
        raise _invalid("l1", expected, l1)
    if l1 < 0 or (target_mode and l1 == 0):
        raise _invalid("l1", expected, l1)
    return float(l1)


class L1(Strategy):
    """L1 regularization by proximal soft-thresholding, with exact zeros.

    Args:
        l1: The L1 strength `lambda` (>= 0), or a Keras
            `LearningRateSchedule` giving it at each step (warm-up, ramp). With
            `target_sparsity` it is the starting value (> 0), `None` choosing
            one from the weights and learning rate. Required without
            `target_sparsity`. Defaults to `None`.
        target_sparsity: Sparsity in (0, 1) to reach at `end_step` by adapting
            `lambda`, after which the mask is frozen. Defaults to `None`.
        begin_step: Step at which the penalty starts. Defaults to `0`.
        end_step: Step at which it stops (the mask is then frozen); required
            with `target_sparsity`. `None` runs it to the end of training.
            Defaults to `None`.
        frequency: Steps between updates (logged penalty and sparsity; lambda
            adaptation in target mode). Defaults to `100`.
        weights: `"kernel"` (the prunable weights, see `tfsparse.prunable`)
            or `"bn_gamma"` (every BatchNormalization `gamma`). Defaults to
            `"kernel"`.
        **kwargs: `layers`, `exclude`, `policy`, `log_dir` of
            `tfsparse.Strategy` (`layers`/`exclude` match the BatchNormalization
            layers with `weights="bn_gamma"`).

    Raises:
        ValueError: for a negative or non-numeric `l1`, a `target_sparsity`
            outside (0, 1) or that would prune every selected weight, or
            `target_sparsity` without `end_step`.
    """

    name = "l1"

    def __init__(
        self,
        l1=None,
        *,
        target_sparsity=None,
        begin_step=0,
        end_step=None,
        frequency=100,
        weights="kernel",
        **kwargs,
    ):
        super().__init__(**kwargs)
        target_mode = target_sparsity is not None
        if not target_mode and l1 is None:
            raise _invalid("l1", "a float >= 0 or a LearningRateSchedule, or pass target_sparsity", l1)
        self.l1 = _check_l1(l1, target_mode=target_mode)
        if weights not in WEIGHTS:
            raise _invalid("weights", f"one of {WEIGHTS}", weights)
        if weights == "bn_gamma" and self.policy is not None:
            raise _invalid("policy", 'None with weights="bn_gamma"', self.policy)
        self.weight_kind = weights
        if target_mode:
            target = schedules.check_sparsity("target_sparsity", target_sparsity, allow_zero=False)
            if end_step is None:
                raise _invalid("end_step", "the step at which target_sparsity is reached", end_step)
            self.schedule = schedules.PolynomialDecay(
                final_sparsity=target, begin_step=begin_step, end_step=end_step, frequency=frequency, power=1
            )
        else:
            self.schedule = schedules.Schedule(begin_step=begin_step, end_step=end_step, frequency=frequency)
        self.target_sparsity = target_sparsity if target_sparsity is None else float(target_sparsity)
        self.reached_sparsity = None  # target mode: the sparsity the controller reached by end_step
        self._lambda = self.l1 if isinstance(self.l1, float) else None  # target mode: the controller's value
        self._previous = None  # target mode: sparsity at the previous update step
        self._states = []  # distinct (lam, lock) variable pairs of the installed thresholds
        self._assigned = None
        self._penalty = 0.0
        self._traced_lambda = None  # JAX: the lambda the jitted step holds (a float l1 or the controller's)
        self._thresholded = False  # JAX, fixed l1: a step thresholded since the zeros were last recorded

    # ------------------------------------------------------------ selection
    def select(self, model):
        if self.weight_kind == "kernel":
            return super().select(model)
        candidates = [
            PrunableWeight(layer, layer.gamma)
            for layer in iter_layers(model)
            if isinstance(layer, keras.layers.BatchNormalization)
            and getattr(layer, "gamma", None) is not None
            and layer.gamma.trainable
            and layer.trainable
        ]
        if not candidates:
            raise _invalid("model", "a model with trainable BatchNormalization gamma weights", model.name)
        return select_from(candidates, layers=self.layers, exclude=self.exclude)

    def attach(self, model):
        check_model(model)
        trainer = self.model if self.model is not None else model  # a Distiller trains (and steps) its student
        optimizer = getattr(trainer, "optimizer", None)
        if optimizer is None:
            raise _invalid("model", "a compiled model (the step reads its optimizer)", model.name)
        super().attach(model)
        if self.target_sparsity is not None:
            size = sum(int(np.prod(w.variable.shape)) for w in self.weights)
            if size - round(self.target_sparsity * size) <= 0:
                raise _invalid(
                    "target_sparsity",
                    f"a value that keeps at least one of the {size} selected weights",
                    self.target_sparsity,
                )
        constraints = [w.variable.constraint for w in self.weights]  # MaskConstraints now
        existing = [c.inner for c in constraints if isinstance(c.inner, SoftThreshold)]
        with _distribution_scope(model):
            if existing:  # a compiled step may hold these variables: reuse them
                lam, lock = existing[0].lam, existing[0].lock
            else:
                lam = keras.Variable(0.0, trainable=False, dtype="float32", name="tfsparse_l1_lambda")
                lock = keras.Variable(0.0, trainable=False, dtype="float32", name="tfsparse_l1_lock")
        for constraint in constraints:
            if not isinstance(constraint.inner, SoftThreshold):
                constraint.inner = SoftThreshold(optimizer, lam, lock, constraint.mask, inner=constraint.inner)
            constraint.inner.optimizer = optimizer
        self._states = list({id(c.inner.lam): (c.inner.lam, c.inner.lock) for c in constraints}.values())
        self._assigned = None
        self._set_state(0.0, lock=self.target_sparsity is None)
        self._refresh(0.0)
        return self.weights

    # ----------------------------------------------------------- the steps
    def _values(self):
        return [np.asarray(ops.convert_to_numpy(w.variable.value)) for w in self.weights]

    def current_sparsity(self) -> float:
        """Fraction of exact zeros over the selected weights (their values).

        In target mode the proximal step makes zeros the mask does not hold
        until `end_step`, so values, not masks, are counted.
        """
        values = self._values()
        total = sum(v.size for v in values)
        return float(sum(v.size - np.count_nonzero(v) for v in values) / total) if total else 0.0

    def lambda_at(self, step: int) -> float:
        """The `lambda` the step `step` uses (0 outside begin/end steps)."""
        if step < self.schedule.begin_step or self.schedule.is_frozen(step):
            return 0.0
        if isinstance(self.l1, keras.optimizers.schedules.LearningRateSchedule):
            return float(ops.convert_to_numpy(self.l1(step)))
        return float(self._lambda or 0.0)

    def compute_masks(self, step, weights):
        current = [ops.convert_to_numpy(masks.get_mask(w.variable).value) for w in weights]
        if self.target_sparsity is None:
            return current
        values = [np.asarray(ops.convert_to_numpy(w.variable.value)) for w in weights]
        if self.schedule.is_frozen(step):
            return self._freeze(step, values)
        self._adapt(step, values)
        return current

    def _adapt(self, step, values):
        flat = np.abs(np.concatenate([v.ravel() for v in values]))
        sparsity = 1.0 - np.count_nonzero(flat) / flat.size
        previous, self._previous = self._previous, sparsity
        if self._lambda is None:  # shrink the target quantile of |w| to zero over the steps left
            lr = float(ops.convert_to_numpy(self.model.optimizer.learning_rate))
            window = self.schedule.end_step - step
            self._lambda = max(float(np.quantile(flat, self.target_sparsity)), 1e-12) / (max(lr, 1e-12) * window)
            return
        # Zeros respond to lambda with a lag: extrapolate the last change, aim at the next update.
        expected = min(1.0, max(0.0, 2 * sparsity - previous)) if previous is not None else sparsity
        wanted = self.schedule.sparsity(min(step + self.schedule.frequency, self.schedule.end_step))
        factor = (wanted + _EPS) / (expected + _EPS)
        self._lambda *= float(np.clip(factor, 1.0 / _MAX_FACTOR, _MAX_FACTOR))

    def _freeze(self, step, values):
        flat = np.concatenate([v.ravel() for v in values])
        self.reached_sparsity = float(1.0 - np.count_nonzero(flat) / flat.size)
        keep = flat.size - round(self.target_sparsity * flat.size)
        mask = keep_largest(flat, keep)
        splits = np.cumsum([v.size for v in values])[:-1]
        logging.info(
            "tfsparse l1: step %d, lambda reached sparsity %.4f; mask frozen at target %.4f "
            "(%+d zeros by magnitude), fine-tuning without penalty.",
            step,
            self.reached_sparsity,
            self.target_sparsity,
            round(self.target_sparsity * flat.size) - (flat.size - np.count_nonzero(flat)),
        )
        return [m.reshape(v.shape) for m, v in zip(np.split(mask, splits), values)]

    def _set_state(self, lam, *, lock=None):
        if lam != self._assigned:
            for lam_var, _ in self._states:
                lam_var.assign(lam)
            self._assigned = lam
        if lock is not None:
            for _, lock_var in self._states:
                lock_var.assign(1.0 if lock else 0.0)

    def _penalty_value(self, lam):
        return float(lam * sum(np.abs(v).sum(dtype=np.float64) for v in self._values()))

    def _refresh(self, lam):
        self._sparsity = self.current_sparsity()
        self._penalty = self._penalty_value(lam)

    # ------------------------------------------------- JAX (see backend_state)
    def _thresholds(self):
        """The distinct `SoftThreshold`s of the selected weights."""
        found = {}
        for weight in self.weights:
            inner = getattr(weight.variable.constraint, "inner", None)
            if isinstance(inner, SoftThreshold):
                found[id(inner)] = inner
        return list(found.values())

    def _lambda_in_step(self) -> bool:
        """Whether the JAX step computes `lambda` itself (a `LearningRateSchedule` `l1`)."""
        return is_stateless_backend() and isinstance(self.l1, keras.optimizers.schedules.LearningRateSchedule)

    def _mask_values(self):
        return [np.array(ops.convert_to_numpy(masks.get_mask(w.variable).value)) for w in self.weights]

    def _record_zeros(self) -> bool:
        """JAX, fixed `l1`: zeroes the masks where the steps since the last call zeroed weights; True if one changed.

        On TensorFlow and PyTorch the step records them itself; JAX's jitted
        step cannot write a mask (it is not part of the carried state).
        """
        if self.target_sparsity is not None or not self._thresholded:
            return False
        self._thresholded = False
        changed = False
        for weight in self.weights:
            mask = np.asarray(ops.convert_to_numpy(masks.get_mask(weight.variable).value))
            values = np.asarray(ops.convert_to_numpy(weight.variable.value))
            recorded = np.where(values == 0, 0.0, mask).astype("float32")
            if not np.array_equal(recorded, mask):
                masks.set_mask(weight.variable, recorded)
                changed = True
        return changed

    # ----------------------------------------------------------- callbacks
    def schedule_end(self):
        """`end_step` in target mode; a fixed `l1` has no target to reach."""
        return None if self.target_sparsity is None else self.schedule.end_step

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if is_stateless_backend():
            spec = (self.l1, self.schedule.begin_step, self.schedule.end_step) if self._lambda_in_step() else None
            for threshold in self._thresholds():
                threshold.lam_schedule = spec
            # the step holds lambda, the lock and the masks as constants: one traced in an earlier fit may hold others
            after_mask_change(self.model)
            self._traced_lambda = self._assigned
            self._thresholded = False

    def on_train_batch_begin(self, batch, logs=None):
        self.check_ownership()
        step = int(ops.convert_to_numpy(self.model.optimizer.iterations))
        update_step = self.due_update(step)
        stateless = is_stateless_backend()
        retrace = False
        if update_step is not None:
            before_writes(self.model)
            before = self._mask_values() if stateless else None
            self.update_masks(update_step)  # the controller sets lambda (target mode)
            if stateless:
                self._record_zeros()
                retrace = any(not np.array_equal(a, b) for a, b in zip(before, self._mask_values()))
        lam = self.lambda_at(step)
        if lam != self._assigned:
            before_writes(self.model)
        self._set_state(lam)
        if update_step is not None:
            self._penalty = self._penalty_value(lam)
        if stateless:
            if not self._lambda_in_step() and self._assigned != self._traced_lambda:
                retrace = True  # a float lambda is a constant of the jitted step
            if retrace:
                after_mask_change(self.model)
                self._traced_lambda = self._assigned
            self._thresholded = self._thresholded or lam > 0

    def on_train_batch_end(self, batch, logs=None):
        super().on_train_batch_end(batch, logs)
        if logs is not None:
            logs["l1_penalty"] = self._penalty
            logs["l1_lambda"] = self._assigned

    def on_epoch_end(self, epoch, logs=None):
        self._refresh(self._assigned or 0.0)
        super().on_epoch_end(epoch, logs)
        if logs is not None:
            logs["l1_penalty"] = self._penalty
            logs["l1_lambda"] = self._assigned

    def on_train_end(self, logs=None):
        before_writes(self.model)
        retrace = False
        if is_stateless_backend():  # a later fit (without this callback) must not threshold, and keeps the zeros
            retrace = self._record_zeros() or self._lambda_in_step() or bool(self._traced_lambda)
            for threshold in self._thresholds():
                threshold.lam_schedule = None
        self._set_state(0.0)
        if retrace:
            after_mask_change(self.model)
            self._traced_lambda = 0.0
        if self.target_sparsity is not None and self.reached_sparsity is None:
            logging.warning(
                "tfsparse l1: training ended at step %d, before end_step=%d: target_sparsity=%s "
                "was not reached and the mask is not frozen (sparsity %.4f).",
                int(ops.convert_to_numpy(self.model.optimizer.iterations)),
                self.schedule.end_step,
                self.target_sparsity,
                self.current_sparsity(),
            )
        super().on_train_end(logs)

    # ------------------------------------------------------- serialization
    def get_config(self):
        l1 = self.l1
        if isinstance(l1, keras.optimizers.schedules.LearningRateSchedule):
            l1 = keras.optimizers.schedules.serialize(l1)
        return {
            "l1": l1,
            "target_sparsity": self.target_sparsity,
            "begin_step": self.schedule.begin_step,
            "end_step": self.schedule.end_step,
            "frequency": self.schedule.frequency,
            "weights": self.weight_kind,
            **super().get_config(),
        }
