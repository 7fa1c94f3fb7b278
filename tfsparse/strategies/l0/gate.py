"""`L0Gate`: hard-concrete channel gates (Louizos, Welling & Kingma 2018).

One gate `z` per channel multiplies its input along `axis`. The gate is a
stretched hard-concrete variable with a trainable location `log_alpha`:

- training: `u ~ U(eps, 1 - eps)`,
  `s = sigmoid((log u - log(1 - u) + log_alpha) / beta)`,
  `z = clip(s * (zeta - gamma) + gamma, 0, 1)` (a fresh sample per call);
- inference: `z = clip(sigmoid(log_alpha) * (zeta - gamma) + gamma, 0, 1)`,
  deterministic, exactly 0 (closed) or exactly 1 at the ends.

The expected L0 norm, `sum_i P(z_i != 0) = sum_i sigmoid(log_alpha_i - beta *
log(-gamma / zeta))`, times the non-trainable scalar weight `l0`, is added to
the loss in training (`add_loss`; `evaluate` and `predict` report the data
loss only). The `l0` strategy sets `l0` for every gate of a model (the
strategy's `lambda` divided by the number of gates); on its own the layer uses
the constructor's value.

`activation` is applied after the gate, `activation(z * x)`: the `l0` strategy
moves a gated layer's activation into its gate, so the gate acts on the
pre-activation and folds exactly into the layer's weights, and a closed
channel is `activation(0) = 0`. The default `log_alpha` (2.5) opens every gate
at inference, so inserting gates leaves a model's predictions unchanged.

Speed: a gate closes when `log_alpha` falls from about +2.4 to -2.4, but Adam
(and RMSprop...) moves a weight by about one learning rate per step whatever
its gradient: at 1e-3 that is 5000 steps. `log_alpha_scale=s` stores the
trainable weight as `log_alpha / s`, so `log_alpha` moves s times faster
under Adam (s**2 under plain SGD); `s=1` is the paper's parametrization.
`get_log_alpha()` and `set_log_alpha()` read and write `log_alpha` itself.

Example:

>>> import keras, numpy as np
>>> from tfsparse.layers import L0Gate
>>> gate = L0Gate(log_alpha_initializer=keras.initializers.Constant([-5.0, 0.0, 5.0]))
>>> x = np.ones((2, 3), "float32")
>>> np.round(keras.ops.convert_to_numpy(gate(x)), 3).tolist()  # inference: deterministic
[[0.0, 0.5, 1.0], [0.0, 0.5, 1.0]]
>>> round(float(gate.expected_l0()), 3)  # sum of P(z != 0)
1.863
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

BETA, GAMMA, ZETA = 2.0 / 3.0, -0.1, 1.1
_EPS = 1e-6  # keeps log(u) and log(1 - u) finite
_DEFAULT_LOG_ALPHA = 2.5  # inference gate clip(1.0089) = 1: open


def _invalid(argument, expected, value):
    return ValueError(
        f"Invalid value received for argument `{argument}`. Expected {expected}. Received: {argument}={value!r}"
    )


def _check_l0(l0):
    if isinstance(l0, bool) or not isinstance(l0, (int, float)) or not math.isfinite(l0) or l0 < 0:
        raise _invalid("l0", "a float >= 0", l0)
    return float(l0)


@keras.saving.register_keras_serializable(package="tfsparse")
class L0Gate(keras.layers.Layer):
    """Multiplies each channel by a hard-concrete gate `z` in [0, 1].

    Args:
        axis: The channel axis of the input (one gate per entry). Defaults to
            `-1`.
        l0: Penalty per expected open gate: `l0 * sum_i P(z_i != 0)` is added
            to the loss in training. Stored as a non-trainable weight (the
            `l0` strategy changes it between steps). Defaults to `0.0`.
        activation: Activation applied after the gate, `activation(z * x)`.
            It must map 0 to 0, so a closed channel is exactly zero. Defaults
            to `None` (linear).
        beta: Temperature of the concrete distribution. Defaults to `2/3`.
        gamma: Lower end of the stretch, < 0. Defaults to `-0.1`.
        zeta: Upper end of the stretch, > 1. Defaults to `1.1`.
        log_alpha_initializer: Initializer of `log_alpha`. Defaults to
            `Constant(2.5)` (every gate open at inference).
        seed: Seed of the training noise. Defaults to `None`.
        log_alpha_scale: Stores the trainable weight as `log_alpha / scale`
            (> 0): larger values open and close gates faster under adaptive
            optimizers. Defaults to `1.0`.
        **kwargs: `keras.layers.Layer` arguments (`name`, `dtype`...).

    Raises:
        ValueError: for a negative `l0`, `beta <= 0`, `gamma >= 0`,
            `zeta <= 1`, `log_alpha_scale <= 0`, or an activation with
            `activation(0) != 0`.
    """

    def __init__(
        self,
        axis=-1,
        l0=0.0,
        activation=None,
        beta=BETA,
        gamma=GAMMA,
        zeta=ZETA,
        log_alpha_initializer=None,
        seed=None,
        log_alpha_scale=1.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise _invalid("axis", "an integer", axis)
        self.axis = axis
        self.initial_l0 = _check_l0(l0)
        self.activation = keras.activations.get(activation)
        check_activation(self.activation, f"the activation of {self.name!r}")
        if not beta > 0:
            raise _invalid("beta", "a float > 0", beta)
        if not gamma < 0:
            raise _invalid("gamma", "a float < 0", gamma)
        if not zeta > 1:
            raise _invalid("zeta", "a float > 1", zeta)
        self.beta, self.gamma, self.zeta = float(beta), float(gamma), float(zeta)
        self.log_alpha_scale = check_log_alpha_scale(log_alpha_scale)
        self.log_alpha_initializer = keras.initializers.get(
            log_alpha_initializer or keras.initializers.Constant(_DEFAULT_LOG_ALPHA)
        )
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True

    def build(self, input_shape):
        rank = len(input_shape)
        if not -rank <= self.axis < rank or self.axis % rank == 0:
            raise _invalid("axis", f"a channel axis of inputs of shape {tuple(input_shape)} (not the batch axis)",
                           self.axis)
        channels = input_shape[self.axis]
        if channels is None:
            raise _invalid("axis", f"an axis of known size; inputs have shape {tuple(input_shape)}", self.axis)
        self._shape = [1] * rank
        self._shape[self.axis] = channels
        initializer, scale = self.log_alpha_initializer, self.log_alpha_scale

        def stored_initializer(shape, dtype=None):
            return ops.divide(initializer(shape, dtype=dtype), scale)

        self.log_alpha = self.add_weight(shape=(channels,), initializer=stored_initializer, name="log_alpha",
                                         trainable=True)
        self.l0 = self.add_weight(
            shape=(), initializer=keras.initializers.Constant(self.initial_l0), name="l0", trainable=False
        )

    @property
    def units(self) -> int:
        """The number of gates."""
        return int(self.log_alpha.shape[0])

    def _location(self):
        return ops.cast(self.log_alpha, "float32") * self.log_alpha_scale

    def get_log_alpha(self) -> np.ndarray:
        """`log_alpha` (the trainable weight times `log_alpha_scale`) as a float32 numpy array."""
        return np.asarray(ops.convert_to_numpy(self._location()), np.float32)

    def set_log_alpha(self, values) -> None:
        """Sets `log_alpha` (stores `values / log_alpha_scale`)."""
        self.log_alpha.assign(np.asarray(values, np.float32) / np.float32(self.log_alpha_scale))

    def inference_gates(self):
        """The deterministic gates `clip(sigmoid(log_alpha) * (zeta - gamma) + gamma, 0, 1)`."""
        s = ops.sigmoid(self._location())
        return ops.clip(s * (self.zeta - self.gamma) + self.gamma, 0.0, 1.0)

    def sample_gates(self):
        """One training sample of the gates (stochastic)."""
        log_alpha = self._location()
        u = keras.random.uniform(ops.shape(log_alpha), _EPS, 1.0 - _EPS, seed=self.seed_generator)
        s = ops.sigmoid((ops.log(u) - ops.log(1.0 - u) + log_alpha) / self.beta)
        return ops.clip(s * (self.zeta - self.gamma) + self.gamma, 0.0, 1.0)

    def open_probability(self):
        """`P(z_i != 0) = sigmoid(log_alpha_i - beta * log(-gamma / zeta))` per gate."""
        shift = self.beta * math.log(-self.gamma / self.zeta)
        return ops.sigmoid(self._location() - shift)

    def expected_l0(self):
        """The expected number of open gates, `sum_i P(z_i != 0)`."""
        return ops.sum(self.open_probability())

    def log_alpha_bounds(self) -> tuple:
        """`(closed_below, open_above)`: the inference gate is 0 at `log_alpha <= closed_below`, 1 at `>= open_above`."""
        span = self.zeta - self.gamma
        return _logit(-self.gamma / span), _logit((1.0 - self.gamma) / span)

    def closed(self) -> np.ndarray:
        """A boolean numpy array: which gates are closed (0) at inference."""
        return ops.convert_to_numpy(self.inference_gates()) == 0

    def call(self, inputs, training=None):
        if training:
            z = self.sample_gates()
            self.add_loss(ops.cast(self.l0, "float32") * self.expected_l0())
        else:
            z = self.inference_gates()
        outputs = inputs * ops.cast(ops.reshape(z, self._shape), inputs.dtype)
        return self.activation(outputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        l0 = self.initial_l0
        if self.built:
            l0 = float(ops.convert_to_numpy(self.l0))
        return {
            **super().get_config(),
            "axis": self.axis,
            "l0": l0,
            "activation": keras.activations.serialize(self.activation),
            "beta": self.beta,
            "gamma": self.gamma,
            "zeta": self.zeta,
            "log_alpha_initializer": keras.initializers.serialize(self.log_alpha_initializer),
            "seed": self.seed,
            "log_alpha_scale": self.log_alpha_scale,
        }


def check_log_alpha_scale(scale) -> float:
    """Returns `scale` as a float, or raises a `ValueError` unless it is a finite number > 0."""
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale <= 0:
        raise _invalid("log_alpha_scale", "a float > 0", scale)
    return float(scale)


def _logit(p):
    return math.log(p) - math.log1p(-p)


def check_activation(activation, what) -> None:
    """Raises a `ValueError` unless `activation(0) == 0` (a closed channel stays zero)."""
    value = ops.convert_to_numpy(activation(ops.zeros((1, 2), "float32")))
    if np.any(value != 0):
        name = getattr(activation, "__name__", repr(activation))
        raise ValueError(
            f"Invalid value received for argument `activation`. Expected an activation with f(0) = 0 for "
            f"{what}, so that a closed gate zeroes its channel; {name}(0) = {float(np.ravel(value)[0]):g}. "
            f"Received: activation={name}"
        )
