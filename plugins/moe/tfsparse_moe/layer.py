"""`MoE`: a mixture-of-experts feed-forward layer with top-k routing.

Every token `x` (the last axis, of size `d`) goes through a router, a Dense
layer to `E` logits, then a softmax; the `top_k` most probable experts take
it (`top_k=1`: Switch Transformer, `top_k=2`: Mixtral). Their gates are the
router probabilities, renormalized to sum to 1 over the chosen experts
(`normalize_gates`, the default for `top_k >= 2`; with `top_k=1` a
renormalized gate would always be 1 and the router would only learn from the
auxiliary loss, so Switch keeps the probability). The output is
`sum_e gate_e * expert_e(x)`, where each expert is a feed-forward network
`d -> h -> d` (`gelu`, `relu`, or `swiglu`: `(silu(x W_gate) * x W_in) W_out`).
The experts are stacked kernels: `expert_kernel_in` `[E, d, h]`,
`expert_kernel_out` `[E, h, d]` (and `expert_kernel_gate` for swiglu), with
biases `[E, h]` and `[E, d]`.

Cost: to convert to TFLite with standard operators only, every expert is
computed for every token and weighted by the sparse gates (zero for the
experts a token does not use). Compute and memory traffic are those of `E`
dense feed-forward networks, `E / top_k` times what sparse dispatch would
cost; what the experts save is parameters per token of quality, not time.
Removing experts (`tfsparse_moe.remove_pruned_experts`, applied by
`tfsparse.finalize`) shrinks both linearly.

Training adds to the loss the Switch load-balancing loss
`load_balance_weight * E' * sum_e f_e * P_e` (`f_e`: fraction of the routing
assignments, over tokens and their `top_k` choices, that go to expert `e`;
`P_e`: its mean router probability; `E'`: the number of kept experts, so a
perfectly balanced router gives `load_balance_weight`), and the router
z-loss `router_z_loss_weight * mean(logsumexp(logits) ** 2)` (ST-MoE).
Padded tokens (a Keras mask, e.g. from `Embedding(mask_zero=True)`) count in
neither, nor in the statistics.

Expert pruning: the non-trainable weight `expert_mask` (1 = kept, saved with
the model) adds -1e9 (finite, so TFLite-safe) to the router logits of
removed experts, so they get probability 0 and are never chosen. Training
calls also add per-expert routing statistics to non-trainable weights
(`read_statistics()`), which the `moe_expert` strategy reads and resets.

Example:

>>> import keras, numpy as np
>>> from tfsparse_moe import MoE
>>> layer = MoE(num_experts=4, hidden_units=8, top_k=2)
>>> x = np.random.default_rng(0).normal(size=(2, 5, 6)).astype("float32")
>>> tuple(layer(x).shape)
(2, 5, 6)
>>> gates = keras.ops.convert_to_numpy(layer.routing(x)["gates"])  # [10 tokens, 4 experts]
>>> (gates > 0).sum(axis=-1).tolist() == [2] * 10, np.allclose(gates.sum(axis=-1), 1.0)
(True, True)
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

NEG_LOGIT = -1e9  # added to the router logits of removed experts: exp() underflows to 0, finite for TFLite
ACTIVATIONS = ("gelu", "relu", "swiglu")
EXPERT_WEIGHTS = ("expert_kernel_in", "expert_bias_in", "expert_kernel_gate", "expert_kernel_out", "expert_bias_out")
STATISTICS = ("stat_tokens", "stat_routed", "stat_gate", "stat_output_norm")


def _invalid(argument, expected, value):
    return ValueError(
        f"Invalid value received for argument `{argument}`. Expected {expected}. Received: {argument}={value!r}"
    )


def _check_int(argument, value, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise _invalid(argument, f"an integer >= {minimum}", value)
    return int(value)


def _check_weight(argument, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value < 0:
        raise _invalid(argument, "a float >= 0", value)
    return float(value)


def _stacked(initializer, count, offset):
    """An initializer of `[count, *shape]` drawing each slice as an independent `shape` weight.

    A seeded initializer gives slice `i` the seed `seed + offset + i`, so
    experts (and their kernels) differ but stay reproducible.
    """

    def initialize(shape, dtype=None):
        config = initializer.get_config()
        parts = []
        for index in range(count):
            if config.get("seed") is not None:
                config = {**config, "seed": initializer.get_config()["seed"] + offset + index}
            parts.append(initializer.__class__.from_config(config)(tuple(shape[1:]), dtype=dtype))
        return ops.stack(parts)

    return initialize


@keras.saving.register_keras_serializable(package="tfsparse_moe")
class MoE(keras.layers.Layer):
    """Mixture-of-experts feed-forward layer (see the module docstring).

    Args:
        num_experts: `E`, the number of experts, >= 2.
        hidden_units: `h`, the hidden width of each expert.
        top_k: Experts per token, in [1, E). Defaults to `2`.
        activation: `"gelu"`, `"relu"` or `"swiglu"`. Defaults to `"gelu"`.
        normalize_gates: Renormalize the chosen gates to sum to 1; `None`
            means `top_k >= 2`. Defaults to `None`.
        load_balance_weight: Weight of the load-balancing loss (>= 0).
            Defaults to `0.01`.
        router_z_loss_weight: Weight of the router z-loss (>= 0). Defaults
            to `0.0`.
        use_bias: Expert biases. Defaults to `True`.
        kernel_initializer: Initializer of each expert's kernels. Defaults
            to `"glorot_uniform"`.
        router_initializer: Initializer of the router kernel. Defaults to
            `RandomNormal(stddev=0.02)`.
        seed: Seed of the initializers (each expert gets its own). Defaults
            to `None`.
        **kwargs: `keras.layers.Layer` arguments (`name`, `dtype`...).

    Raises:
        ValueError: for `num_experts < 2`, `top_k` outside [1, num_experts),
            an unknown activation or a negative loss weight.
    """

    def __init__(self, *, num_experts, hidden_units, top_k=2, activation="gelu", normalize_gates=None,
                 load_balance_weight=0.01, router_z_loss_weight=0.0, use_bias=True,
                 kernel_initializer="glorot_uniform", router_initializer=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.num_experts = _check_int("num_experts", num_experts, 2)
        self.hidden_units = _check_int("hidden_units", hidden_units, 1)
        if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or not 1 <= top_k < self.num_experts:
            raise _invalid("top_k", f"an integer in [1, num_experts={self.num_experts}) (a token must leave "
                           "some experts out)", top_k)
        self.top_k = int(top_k)
        if activation not in ACTIVATIONS:
            raise _invalid("activation", f"one of {ACTIVATIONS}", activation)
        self.activation = activation
        if normalize_gates is not None and not isinstance(normalize_gates, bool):
            raise _invalid("normalize_gates", "True, False or None", normalize_gates)
        self.normalize_gates = normalize_gates
        self.load_balance_weight = _check_weight("load_balance_weight", load_balance_weight)
        self.router_z_loss_weight = _check_weight("router_z_loss_weight", router_z_loss_weight)
        self.use_bias = bool(use_bias)
        self.seed = seed
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.router_initializer = keras.initializers.get(
            router_initializer or keras.initializers.RandomNormal(stddev=0.02, seed=seed))
        if seed is not None and "seed" in self.kernel_initializer.get_config() and (
                self.kernel_initializer.get_config()["seed"] is None):
            self.kernel_initializer = self.kernel_initializer.__class__.from_config(
                {**self.kernel_initializer.get_config(), "seed": seed})
        self.supports_masking = True

    @property
    def renormalizes(self) -> bool:
        """Whether the chosen gates are renormalized (`normalize_gates`, or `top_k >= 2` when it is `None`)."""
        return self.top_k >= 2 if self.normalize_gates is None else self.normalize_gates

    def build(self, input_shape):
        d = input_shape[-1]
        if d is None:
            raise _invalid("inputs", "a known last (feature) dimension", tuple(input_shape))
        self.input_dim = int(d)
        e, h = self.num_experts, self.hidden_units
        self.router_kernel = self.add_weight(shape=(d, e), initializer=self.router_initializer, name="router_kernel")
        self.router_bias = self.add_weight(shape=(e,), initializer="zeros", name="router_bias")
        init = self.kernel_initializer
        self.expert_kernel_in = self.add_weight(shape=(e, d, h), initializer=_stacked(init, e, 0),
                                                name="expert_kernel_in")
        self.expert_bias_in = self.add_weight(shape=(e, h), initializer="zeros",
                                              name="expert_bias_in") if self.use_bias else None
        self.expert_kernel_gate = self.add_weight(shape=(e, d, h), initializer=_stacked(init, e, 2 * e),
                                                  name="expert_kernel_gate") if self.activation == "swiglu" else None
        self.expert_kernel_out = self.add_weight(shape=(e, h, d), initializer=_stacked(init, e, e),
                                                 name="expert_kernel_out")
        self.expert_bias_out = self.add_weight(shape=(e, d), initializer="zeros",
                                               name="expert_bias_out") if self.use_bias else None
        self.expert_mask = self.add_weight(shape=(e,), initializer="ones", name="expert_mask", trainable=False,
                                           dtype="float32", autocast=False)
        for name, shape in zip(STATISTICS, [(), (e,), (e,), (e,)]):
            setattr(self, name, self.add_weight(shape=shape, initializer="zeros", name=name, trainable=False,
                                                dtype="float32", autocast=False))

    # -------------------------------------------------------------- forward
    def routing(self, inputs, mask=None):
        """Routing of `inputs` (tokens on the last axis), flattened to `[N, ...]`.

        Returns:
            A dict of tensors: `logits` (`[N, E]`, removed experts at -1e9),
            `probs` (softmax), `gates` (`[N, E]`, zero off the chosen
            experts), `routed` (`[N, E]`, 1 where chosen) and `weights`
            (`[N]`, 0 for masked tokens).
        """
        x = ops.cast(ops.reshape(inputs, (-1, self.input_dim)), "float32")
        logits = ops.matmul(x, ops.cast(self.router_kernel, "float32")) + ops.cast(self.router_bias, "float32")
        logits = logits + (1.0 - self.expert_mask) * NEG_LOGIT
        probs = ops.softmax(logits, axis=-1)
        top_values, top_indices = ops.top_k(probs, self.top_k)
        if self.renormalizes:
            top_values = top_values / ops.sum(top_values, axis=-1, keepdims=True)
        chosen = ops.one_hot(top_indices, self.num_experts, dtype="float32")  # [N, k, E]
        gates = ops.sum(chosen * ops.expand_dims(top_values, -1), axis=1)
        routed = ops.sum(chosen, axis=1)
        weights = ops.ones_like(logits[:, 0]) if mask is None else ops.cast(ops.reshape(mask, (-1,)), "float32")
        return {"logits": logits, "probs": probs, "gates": gates, "routed": routed, "weights": weights}

    def experts(self, x):
        """Every expert's output for tokens `x` `[N, d]`: `[N, E, d]`."""
        e, d, h = self.num_experts, self.input_dim, self.hidden_units
        n = ops.shape(x)[0]

        def project(kernel, bias):  # [N, d] x [E, d, h] -> [N, E, h] as one matmul
            flat = ops.reshape(ops.transpose(ops.cast(kernel, x.dtype), (1, 0, 2)), (d, e * h))
            out = ops.reshape(ops.matmul(x, flat), (n, e, h))
            return out if bias is None else out + ops.cast(bias, x.dtype)

        hidden = project(self.expert_kernel_in, self.expert_bias_in)
        if self.activation == "swiglu":
            hidden = ops.silu(project(self.expert_kernel_gate, None)) * hidden
        else:
            hidden = ops.gelu(hidden, approximate=False) if self.activation == "gelu" else ops.relu(hidden)
        out = ops.matmul(ops.transpose(hidden, (1, 0, 2)), ops.cast(self.expert_kernel_out, x.dtype))  # [E, N, d]
        out = ops.transpose(out, (1, 0, 2))
        return out if self.expert_bias_out is None else out + ops.cast(self.expert_bias_out, x.dtype)

    def call(self, inputs, training=None, mask=None):
        route = self.routing(inputs, mask)
        x = ops.reshape(inputs, (-1, self.input_dim))
        expert_out = self.experts(x)
        gates = ops.cast(route["gates"], expert_out.dtype)
        outputs = ops.sum(ops.expand_dims(gates, -1) * expert_out, axis=1)
        if training:
            self._add_losses(route)
            self._collect(route, expert_out)
        return ops.reshape(outputs, ops.shape(inputs))

    def _add_losses(self, route):
        weights = route["weights"]
        tokens = ops.maximum(ops.sum(weights), 1.0)
        if self.load_balance_weight > 0:
            fraction = ops.sum(route["routed"] * weights[:, None], axis=0) / (tokens * self.top_k)
            probability = ops.sum(route["probs"] * weights[:, None], axis=0) / tokens
            kept = ops.sum(self.expert_mask)
            self.add_loss(self.load_balance_weight * kept * ops.sum(fraction * probability))
        if self.router_z_loss_weight > 0:
            z = ops.logsumexp(route["logits"], axis=-1)
            self.add_loss(self.router_z_loss_weight * ops.sum(weights * z * z) / tokens)

    def _collect(self, route, expert_out):
        weights = ops.stop_gradient(route["weights"])[:, None]
        gates = ops.stop_gradient(route["gates"])
        norms = ops.sqrt(ops.sum(ops.square(ops.cast(ops.stop_gradient(expert_out), "float32")), axis=-1))
        self.stat_tokens.assign_add(ops.sum(weights))
        self.stat_routed.assign_add(ops.sum(ops.stop_gradient(route["routed"]) * weights, axis=0))
        self.stat_gate.assign_add(ops.sum(gates * weights, axis=0))
        self.stat_output_norm.assign_add(ops.sum(gates * norms * weights, axis=0))

    def compute_output_shape(self, input_shape):
        return input_shape

    def compute_mask(self, inputs, mask=None):
        return mask

    # ---------------------------------------------------- pruning interface
    def kept_experts(self) -> np.ndarray:
        """A boolean numpy array: which experts are kept (`expert_mask != 0`)."""
        return ops.convert_to_numpy(self.expert_mask) != 0

    def expert_variables(self) -> list:
        """The variables with one slice per expert on their first axis (kernels and biases)."""
        return [v for v in (getattr(self, name) for name in EXPERT_WEIGHTS) if v is not None]

    def read_statistics(self, *, reset=False) -> dict:
        """The routing statistics summed since the last reset, as numpy float64.

        Returns:
            `{"tokens": float, "routed": [E], "gate": [E], "output_norm": [E]}`:
            tokens seen, tokens routed to each expert, their summed gates, and
            their summed `gate * ||expert output||`.
        """
        values = {name[5:]: np.asarray(ops.convert_to_numpy(getattr(self, name)), np.float64)
                  for name in STATISTICS}
        if reset:
            self.reset_statistics()
        return values

    def reset_statistics(self) -> None:
        """Sets the routing statistics to zero."""
        for name in STATISTICS:
            variable = getattr(self, name)
            variable.assign(ops.zeros(variable.shape, "float32"))

    def sliced_weights(self, keep) -> dict:
        """`{weight name: numpy array}` with only the experts where `keep` is true (a mask of all ones)."""
        keep = np.asarray(keep, bool)
        if keep.shape != (self.num_experts,) or keep.sum() <= self.top_k:
            raise _invalid("keep", f"a boolean mask of {self.num_experts} experts keeping more than "
                           f"top_k={self.top_k}", keep.tolist())
        per_expert = {*EXPERT_WEIGHTS, "router_bias", *STATISTICS[1:]}
        values = {}
        for variable in self.weights:
            array = np.asarray(ops.convert_to_numpy(variable))
            if variable.name == "router_kernel":
                array = array[:, keep]
            elif variable.name == "expert_mask":
                array = np.ones(int(keep.sum()), array.dtype)
            elif variable.name in per_expert:
                array = array[keep]
            values[variable.name] = array
        return values

    def get_config(self):
        return {
            **super().get_config(),
            "num_experts": self.num_experts,
            "hidden_units": self.hidden_units,
            "top_k": self.top_k,
            "activation": self.activation,
            "normalize_gates": self.normalize_gates,
            "load_balance_weight": self.load_balance_weight,
            "router_z_loss_weight": self.router_z_loss_weight,
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "router_initializer": keras.initializers.serialize(self.router_initializer),
            "seed": self.seed,
        }
