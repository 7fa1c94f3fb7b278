"""`L0`, the `l0` strategy (see the package docstring)."""

from __future__ import annotations

import math

import keras
import numpy as np
from absl import logging
from keras import ops

from tfsparse import masks, schedules
from tfsparse.backend_state import after_mask_change, before_writes
from tfsparse.prunable import check_model
from tfsparse.strategies.l0.gate import _check_l0, _invalid, check_log_alpha_scale
from tfsparse.strategies.l0.insert import find_gates, insert_gates
from tfsparse.strategy import Strategy, _distribution_scope

DEFAULT_LOG_ALPHA_SCALE = 10.0  # the smallest automatic scale: 10x faster under Adam than the paper's
MAX_AUTO_SCALE = 1000.0
CLOSING_DISTANCE = 5.0  # how far log_alpha falls from an open gate (2.5) to a closed one (about -2.4)
FROZEN_LOG_ALPHA = 30.0  # |log_alpha| of frozen gates: 0 or 1 even with training noise
DEFAULT_START = 0.1  # target mode: the starting lambda
_EPS = 0.02  # keeps the controller's ratio finite near zero sparsity
_MAX_FACTOR = 4.0  # largest change of lambda at one update step


class FreezeGates(masks.OwnedConstraint):
    """Holds `log_alpha` at `+-FROZEN_LOG_ALPHA` (by sign) while `frozen` is 1.

    Placed on every gate's `log_alpha` weight by `L0` when training starts;
    not serializable, like tfsparse's masks. Its `owner` is the `L0` strategy
    that claimed the gate (see `tfsparse.Strategy.check_ownership`).

    Args:
        frozen: Scalar float32 `keras.Variable`, 1 once the gates are frozen.
        inner: The constraint the variable had before. Defaults to `None`.
        scale: The gate's `log_alpha_scale` (the weight holds
            `log_alpha / scale`). Defaults to `1.0`.
    """

    def __init__(self, frozen, inner=None, scale=1.0):
        self.frozen = frozen
        self.inner = inner
        self.scale = scale

    def __call__(self, w):
        if self.inner is not None:
            w = self.inner(w)
        w = ops.convert_to_tensor(w)  # the optimizer passes the variable: JAX's functions take no keras.Variable
        held = FROZEN_LOG_ALPHA / self.scale
        snapped = ops.where(w > 0, held, -held)
        frozen = ops.convert_to_tensor(self.frozen)  # a tensor: JAX's functions take no keras.Variable
        return ops.where(ops.greater(frozen, 0), ops.cast(snapped, w.dtype), w)

    def get_config(self):
        raise TypeError("FreezeGates is attached to a variable by tfsparse's `l0` strategy and is not serializable.")


class L0(Strategy):
    """L0 regularization with hard-concrete gates on channels and units.

    Args:
        l0: The penalty strength `lambda` (>= 0; a fully open network costs
            `lambda`). Required without `target_sparsity`, where it is the
            starting value (> 0, `None` for 0.1). Defaults to `None`.
        target_sparsity: Fraction of closed gates in (0, 1) to reach at
            `end_step` by adapting `lambda`. Defaults to `None`.
        begin_step: Step at which the penalty starts. Defaults to `0`.
        end_step: Step at which the gates are frozen and the penalty stops;
            required with `target_sparsity`. `None` runs the penalty to the
            end of training without freezing. Defaults to `None`.
        frequency: Steps between updates (logged values; lambda adaptation
            in target mode). Defaults to `100`.
        log_alpha_scale: `"auto"`, or the `log_alpha_scale` (> 0) of the
            gates `prepare` inserts (gates placed by hand keep theirs). With
            `"auto"` every gate's scale is set when training starts, from the
            learning rate and the schedule (see above). Defaults to `"auto"`.
        **kwargs: `layers`, `exclude`, `log_dir` of `tfsparse.Strategy`
            (`policy` must stay `None`).

    Raises:
        ValueError: for a negative or non-numeric `l0`, a `target_sparsity`
            outside (0, 1), or one that would close every gate or none
            (checked by `prepare` and when training starts), `target_sparsity`
            without `end_step`, or a `policy`.
    """

    name = "l0"

    def __init__(self, l0=None, *, target_sparsity=None, begin_step=0, end_step=None, frequency=100,
                 log_alpha_scale="auto", **kwargs):
        super().__init__(**kwargs)
        if self.policy is not None:
            raise _invalid("policy", "None (L0 gates channels, XNNPACK's policy is about sparse 1x1 kernels)",
                           self.policy)
        target_mode = target_sparsity is not None
        if l0 is None and not target_mode:
            raise _invalid("l0", "a float >= 0, or pass target_sparsity", l0)
        self.l0 = None if l0 is None else _check_l0(l0)
        if target_mode and self.l0 == 0:
            raise _invalid("l0", "a float > 0 (the starting lambda) or None with target_sparsity", l0)
        if target_mode:
            target = schedules.check_sparsity("target_sparsity", target_sparsity, allow_zero=False)
            if end_step is None:
                raise _invalid("end_step", "the step at which target_sparsity is reached", end_step)
        self.schedule = schedules.Schedule(begin_step=begin_step, end_step=end_step, frequency=frequency)
        self.target_sparsity = target if target_mode else None
        self.log_alpha_scale = log_alpha_scale if log_alpha_scale == "auto" else _check_scale(log_alpha_scale)
        self.reached_sparsity = None  # at end_step: the fraction of closed gates before freezing
        self.gates = []
        self._lambda = self.l0 if self.l0 is not None else DEFAULT_START
        self._previous = None
        self._frozen = None
        self._assigned = None
        self._penalty = 0.0

    # ----------------------------------------------------------- prepare
    def prepare(self, model):
        """Returns a copy of `model` with `L0Gate`s after the selected layers.

        A model that already has gates (placed by hand, or prepared before)
        is returned as it is.

        Raises:
            ValueError: for a model that is not a built Keras model, a
                subclassed model without gates, a selected layer that cannot
                take a gate (the message says why), or no layer to gate.
        """
        check_model(model)
        gates = find_gates(model)
        if not gates:
            model = insert_gates(model, layers=self.layers, exclude=self.exclude,
                                 log_alpha_scale=self._initial_scale())
            gates = find_gates(model)
        self._check_target(sum(gate.units for gate in gates))
        return model

    def _initial_scale(self):
        return DEFAULT_LOG_ALPHA_SCALE if self.log_alpha_scale == "auto" else self.log_alpha_scale

    def _set_gate_speed(self):
        """Sets (auto) or checks (fixed) the gates' `log_alpha_scale`; True if a scale changed."""
        step = int(ops.convert_to_numpy(self.model.optimizer.iterations))
        window = None if self.schedule.end_step is None else self.schedule.end_step - max(self.schedule.begin_step, step)
        learning_rate = float(ops.convert_to_numpy(self.model.optimizer.learning_rate))
        if window is None or window <= 0:
            return False
        if self.log_alpha_scale != "auto":
            slowest = min(gate.log_alpha_scale for gate in self.gates)
            if slowest * learning_rate * window < CLOSING_DISTANCE:
                logging.warning(
                    "tfsparse l0: with log_alpha_scale=%g, learning rate %g and %d steps before end_step, log_alpha can "
                    "move about %.2f, and a gate closes after about %g: few or no gates will close before the freeze. "
                    "Use log_alpha_scale=%g or 'auto'.", slowest, learning_rate, window,
                    slowest * learning_rate * window, CLOSING_DISTANCE, auto_log_alpha_scale(learning_rate, window))
            return False
        scale = auto_log_alpha_scale(learning_rate, window)
        changed = False
        for gate in self.gates:
            if gate.log_alpha_scale != scale:
                log_alpha = gate.get_log_alpha()
                gate.log_alpha_scale = scale
                gate.set_log_alpha(log_alpha)
                changed = True
        if changed:
            logging.info("tfsparse l0: log_alpha_scale=%g for %d steps at learning rate %g.", scale, window,
                         learning_rate)
        return changed

    def _check_target(self, total):
        if self.target_sparsity is None:
            return
        closed = round(self.target_sparsity * total)
        if closed == 0 or closed == total:
            raise _invalid("target_sparsity", f"a fraction of the model's {total} gates that closes at least one "
                           "and keeps at least one open", self.target_sparsity)

    # ----------------------------------------------------------- the steps
    def current_sparsity(self) -> float:
        """The fraction of closed gates (`z == 0` at inference)."""
        total = sum(gate.units for gate in self.gates)
        return float(sum(int(gate.closed().sum()) for gate in self.gates) / total) if total else 0.0

    def lambda_at(self, step: int) -> float:
        """The `lambda` the step `step` uses (0 outside begin/end steps)."""
        if step < self.schedule.begin_step or self.schedule.is_frozen(step):
            return 0.0
        return float(self._lambda)

    def compute_masks(self, step, weights):
        raise NotImplementedError("L0 gates channels; it has no masks.")  # not called: update_masks is overridden

    def update_masks(self, step):
        """At an update step: adapts `lambda` (target mode), or freezes the gates at `end_step`.

        Returns:
            Whether it froze the gates: the freeze flag is a constant of a
            JAX step (see `tfsparse.backend_state`), `lambda` is not.
        """
        froze = False
        if self.schedule.is_frozen(step):
            self._freeze(step)
            froze = True
        elif self.target_sparsity is not None:
            self._adapt(step)
        self._last_update = step
        self._sparsity = self.current_sparsity()
        self.history.append((int(step), float(self._sparsity)))
        return froze

    def _adapt(self, step):
        # Closing lags lambda by hundreds of steps (log_alpha moves about a learning rate per step), so the
        # controller looks ahead: the gates that would be closed at end_step at their current speeds.
        log_alpha = np.concatenate([gate.get_log_alpha().astype(np.float64) for gate in self.gates])
        bound = np.concatenate([np.full(gate.units, gate.log_alpha_bounds()[0]) for gate in self.gates])
        previous, self._previous = self._previous, (step, log_alpha)
        velocity = 0.0 if previous is None else (log_alpha - previous[1]) / max(step - previous[0], 1)
        predicted = float(np.mean(log_alpha + velocity * (self.schedule.end_step - step) <= bound))
        factor = (self.target_sparsity + _EPS) / (predicted + _EPS)
        self._lambda *= float(np.clip(factor, 1.0 / _MAX_FACTOR, _MAX_FACTOR))

    def _freeze(self, step):
        log_alpha = [gate.get_log_alpha() for gate in self.gates]
        closed = [gate.closed() for gate in self.gates]
        flat_closed = np.concatenate(closed)
        self.reached_sparsity = float(flat_closed.mean())
        if self.target_sparsity is not None:
            closed = _close_lowest(log_alpha, round(self.target_sparsity * sum(g.units for g in self.gates)))
            flat_closed = np.concatenate(closed)
        for gate, shut in zip(self.gates, closed):
            gate.set_log_alpha(np.where(shut, -FROZEN_LOG_ALPHA, FROZEN_LOG_ALPHA))
        self._frozen.assign(1.0)
        logging.info("tfsparse l0: step %d, %.4f of the gates closed; frozen with %.4f closed, fine-tuning without "
                     "penalty.", step, self.reached_sparsity, float(flat_closed.mean()))

    def _set_lambda(self, lam):
        if lam != self._assigned:
            total = sum(gate.units for gate in self.gates)
            for gate in self.gates:
                gate.l0.assign(lam / total)
            self._assigned = lam

    def _refresh(self):
        self._sparsity = self.current_sparsity()
        total = sum(gate.units for gate in self.gates)
        expected = sum(float(ops.convert_to_numpy(gate.expected_l0())) for gate in self.gates)
        self._penalty = float((self._assigned or 0.0) * expected / total)

    # ----------------------------------------------------------- callbacks
    def on_train_begin(self, logs=None):
        check_model(self.target_model)
        self.gates = find_gates(self.target_model)
        if not self.gates:
            raise _invalid("model", "a model with L0Gate layers: train the model returned by `prepare(model)`, "
                           "or place tfsparse.layers.L0Gate layers in a subclassed model", self.target_model.name)
        self._check_target(sum(gate.units for gate in self.gates))
        existing = [g.log_alpha.constraint for g in self.gates if isinstance(g.log_alpha.constraint, FreezeGates)]
        if existing:  # a compiled step may hold this variable: reuse it
            self._frozen = existing[0].frozen
        else:
            with _distribution_scope(self.model):
                self._frozen = keras.Variable(0.0, trainable=False, dtype="float32", name="tfsparse_l0_frozen")
        changed = self._set_gate_speed()
        for gate in self.gates:
            if not isinstance(gate.log_alpha.constraint, FreezeGates):
                gate.log_alpha.constraint = FreezeGates(self._frozen, inner=gate.log_alpha.constraint,
                                                        scale=gate.log_alpha_scale)
                changed = True
            gate.log_alpha.constraint.frozen = self._frozen
            gate.log_alpha.constraint.scale = gate.log_alpha_scale
            gate.log_alpha.constraint.owner = self  # claims the gate (see `Strategy.check_ownership`)
        if changed and getattr(self.model, "train_function", None) is not None:
            self.model.make_train_function(force=True)  # a step traced before would miss the constraints
        self._assigned = None
        self._set_lambda(0.0)
        self._refresh()
        if self.log_dir:
            import tensorflow as tf  # only needed for TensorBoard files

            self._writer = tf.summary.create_file_writer(self.log_dir)
        self.fit_started()

    def owned_variables(self):
        """The gates' `log_alpha` weights (L0 has no masks)."""
        return [gate.log_alpha for gate in self.gates]

    def schedule_end(self):
        """`end_step` in target mode; a fixed `l0` has no target to reach."""
        return None if self.target_sparsity is None else self.schedule.end_step

    def on_train_batch_begin(self, batch, logs=None):
        self.check_ownership()
        step = int(ops.convert_to_numpy(self.model.optimizer.iterations))
        update_step = self.due_update(step)
        if update_step is not None:
            before_writes(self.model)  # the freeze writes log_alpha
            if self.update_masks(update_step):
                after_mask_change(self.model)  # FreezeGates' flag is a constant of a JAX step
        lam = self.lambda_at(step)
        if lam != self._assigned:
            before_writes(self.model)  # each gate's `l0` is a weight (state on JAX): no retrace
            self._set_lambda(lam)
        if update_step is not None:
            self._refresh()

    def on_train_batch_end(self, batch, logs=None):
        super().on_train_batch_end(batch, logs)
        if logs is not None:
            logs["l0_penalty"] = self._penalty
            logs["l0_lambda"] = self._assigned

    def on_epoch_end(self, epoch, logs=None):
        self._refresh()
        super().on_epoch_end(epoch, logs)
        if logs is not None:
            logs["l0_penalty"] = self._penalty
            logs["l0_lambda"] = self._assigned

    def on_train_end(self, logs=None):
        before_writes(self.model)
        self._set_lambda(0.0)
        if self.target_sparsity is not None and self.reached_sparsity is None:
            logging.warning(
                "tfsparse l0: training ended at step %d, before end_step=%d: target_sparsity=%s was not reached "
                "and the gates are not frozen (%.4f closed).",
                int(ops.convert_to_numpy(self.model.optimizer.iterations)), self.schedule.end_step,
                self.target_sparsity, self.current_sparsity())
        super().on_train_end(logs)

    def _write_scalars(self):
        import tensorflow as tf

        step = int(ops.convert_to_numpy(self.model.optimizer.iterations))
        with self._writer.as_default():
            tf.summary.scalar("sparsity/total", self._sparsity, step=step)
            tf.summary.scalar("l0/lambda", self._assigned or 0.0, step=step)
            for gate in self.gates:
                tf.summary.scalar(f"sparsity/{gate.name}", float(gate.closed().mean()), step=step)
        self._writer.flush()

    # ------------------------------------------------------- serialization
    def get_config(self):
        return {
            "l0": self.l0,
            "target_sparsity": self.target_sparsity,
            "begin_step": self.schedule.begin_step,
            "end_step": self.schedule.end_step,
            "frequency": self.schedule.frequency,
            "log_alpha_scale": self.log_alpha_scale,
            **super().get_config(),
        }


def auto_log_alpha_scale(learning_rate: float, steps: int) -> float:
    """The `log_alpha_scale` with which Adam can move `log_alpha` twice the closing distance in `steps` steps.

    `max(10, 2 * 5 / (learning_rate * steps))`, rounded up to an integer, at
    most 1000.

    >>> auto_log_alpha_scale(1e-3, 500), auto_log_alpha_scale(1e-3, 5000), auto_log_alpha_scale(5e-4, 400)
    (20.0, 10.0, 50.0)
    """
    needed = 2 * CLOSING_DISTANCE / (max(learning_rate, 1e-12) * max(steps, 1))
    return float(min(MAX_AUTO_SCALE, max(DEFAULT_LOG_ALPHA_SCALE, math.ceil(needed - 1e-9))))


def _check_scale(scale):
    try:
        return check_log_alpha_scale(scale)
    except ValueError:
        raise _invalid("log_alpha_scale", "'auto' or a float > 0", scale) from None


def _close_lowest(log_alpha, count):
    """Per gate layer, which gates to close: the `count` lowest `log_alpha`, keeping one open gate per layer."""
    flat = np.concatenate(log_alpha)
    layer_of = np.repeat(np.arange(len(log_alpha)), [values.size for values in log_alpha])
    open_left = np.array([values.size for values in log_alpha])
    closed = np.zeros(flat.size, bool)
    for index in np.argsort(flat, kind="stable"):
        if count == 0:
            break
        if open_left[layer_of[index]] > 1:
            closed[index] = True
            open_left[layer_of[index]] -= 1
            count -= 1
    return np.split(closed, np.cumsum([values.size for values in log_alpha])[:-1])
