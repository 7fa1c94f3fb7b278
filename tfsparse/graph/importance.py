"""Channel importance criteria: one score per channel of a `Group`, low means pruned first.

A criterion scores the channels of a group (`tfsparse.graph.Group`) from its
`"out"` members, the weights that make each channel's value, summed over the
group's layers: the filters of every convolution coupled by an `Add` count
together. Scores are raw sums (not normalised per member), so for a lone
convolution `l1` is exactly its filter norms; `scope="global"` in the
`channel` strategy normalises them per group before ranking across groups.

Built-in criteria (`get_criterion(name)`):

- `"l1"` (`L1Norm`): the L1 norm of each channel's slice of the out
  *kernels* (weights of rank >= 2: convolution and Dense kernels, depthwise
  kernels, embeddings; biases and BatchNormalization parameters are left
  out): the filter norm of Li et al. (2017), "Pruning Filters for Efficient
  ConvNets".
- `"bn_gamma"` (`BNGamma`): `|gamma|` of the BatchNormalization layers that
  scale the channel: network slimming (Liu et al. 2017). A group without a
  BatchNormalization `gamma` falls back to `l1`, with a logged warning.
- `"taylor"` (`Taylor`): the first-order Taylor estimate of the change of the
  loss when the channel is removed, computed in weight space (Molchanov et
  al. 2019, "Importance Estimation for Neural Network Pruning", the group
  form): `|sum of w * dL/dw|` over every out weight of the channel (kernels,
  biases, gamma, beta), averaged over calibration batches. It needs the
  model and data: `taylor(group, model=model, data=(x, y))`.
- `"random"` (`Random`): a seeded baseline, the same scores for a group on
  every call.

A custom criterion is any callable `fn(group, **context) -> scores` (the
strategy passes `model` and `data` to the ones that accept them), or a
`Criterion` subclass, which can also score many groups at once.

Example:

>>> import keras, numpy as np, tfsparse
>>> from tfsparse.graph import importance
>>> inputs = keras.Input((6, 6, 2))
>>> x = keras.layers.Conv2D(3, 3, name="conv")(inputs)
>>> model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(x)))
>>> kernel = np.ones((3, 3, 2, 3), "float32") * np.array([1.0, 0.1, 2.0], "float32")
>>> _ = model.get_layer("conv").kernel.assign(kernel)
>>> group = tfsparse.graph.trace(model).prunable()[0]
>>> importance.l1(group).round(2).tolist()
[18.0, 1.8, 36.0]
>>> importance.get_criterion("l1") is importance.l1
True
"""

from __future__ import annotations

import inspect

import keras
import numpy as np
from absl import logging

from tfsparse.errors import invalid_argument as _invalid



def _values(variable) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(variable.value), np.float64)


def per_channel(values, member, channels, reduce="sum_abs") -> np.ndarray:
    """Reduces `values` (an array of `member`'s weight shape) to one number per group channel.

    Positions of the member axis that belong to another group (`channels ==
    -1`) are skipped; positions of the same channel (a depthwise multiplier)
    add up.

    Args:
        values: Array of the member variable's shape.
        member: The `Member` (its `axis`).
        channels: Its group channel per position (from `Group.members`).
        reduce: `"sum_abs"` (sum of `|values|` over the slice) or `"sum"`.

    Returns:
        float64 array of length `channels.max() + 1` or more, indexed by channel.
    """
    moved = np.moveaxis(np.asarray(values, np.float64), member.axis, 0)
    moved = moved.reshape(moved.shape[0], -1)
    per_position = np.abs(moved).sum(axis=1) if reduce == "sum_abs" else moved.sum(axis=1)
    inside = channels >= 0
    out = np.zeros(int(channels.max()) + 1 if inside.any() else 0)
    np.add.at(out, channels[inside], per_position[inside])
    return out


def _accumulate(scores, values) -> None:
    scores[: values.size] += values


def _is_kernel(member) -> bool:
    return len(member.variable.shape) >= 2


def _is_gamma(member) -> bool:
    layer = member.layer
    return isinstance(layer, keras.layers.BatchNormalization) and member.variable is getattr(layer, "gamma", None)


class Criterion:
    """Base class of channel importance criteria.

    Subclasses implement `score_group(group, *, model=None, data=None)`, or
    `score(groups, ...)` when the groups share work (one backward pass for
    all of them). Calling a criterion scores one group.

    Attributes:
        name: The registry name (`None` for an unregistered criterion).
        needs_data: Whether `model` and `data` are required.
    """

    name = None
    needs_data = False

    def __call__(self, group, *, model=None, data=None) -> np.ndarray:
        return self.score([group], model=model, data=data)[0]

    def score(self, groups, *, model=None, data=None) -> list:
        """One float64 score array (length `group.size`) per group."""
        return [self.score_group(group, model=model, data=data) for group in groups]

    def score_group(self, group, *, model=None, data=None) -> np.ndarray:
        raise NotImplementedError("Criterion subclasses implement score_group() or score().")  # abstract

    def get_config(self) -> dict:
        """Constructor arguments (empty for the built-in parameterless criteria)."""
        return {}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class L1Norm(Criterion):
    """Sum over the group's out kernels of each channel's L1 norm (Li et al. 2017).

    A group whose out members are all of rank 1 (no kernel) is scored from
    them instead.

    Example:

    >>> import keras, numpy as np, tfsparse
    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="a"), keras.layers.Dense(1)])
    >>> _ = model.get_layer("a").kernel.assign(np.array([[1, -2], [1, 0], [1, 0]], "float32"))
    >>> L1Norm()(tfsparse.graph.trace(model).prunable()[0]).tolist()
    [3.0, 2.0]
    """

    name = "l1"

    def score_group(self, group, *, model=None, data=None):
        members = [(m, c) for m, c in group.out_members() if _is_kernel(m)] or group.out_members()
        scores = np.zeros(group.size)
        for member, channels in members:
            _accumulate(scores, per_channel(_values(member.variable), member, channels))
        return scores


class BNGamma(Criterion):
    """`|gamma|` of the group's BatchNormalization layers, summed (network slimming, Liu et al. 2017).

    A group without a BatchNormalization `gamma` (no BatchNormalization, or
    `scale=False`) is scored by `l1`, with a warning logged once per group.

    Example:

    >>> import keras, numpy as np, tfsparse
    >>> inputs = keras.Input((4, 4, 1))
    >>> x = keras.layers.Conv2D(3, 1, name="conv")(inputs)
    >>> x = keras.layers.BatchNormalization(name="bn")(x)
    >>> model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(x)))
    >>> _ = model.get_layer("bn").gamma.assign(np.array([0.5, -2.0, 1.0], "float32"))
    >>> BNGamma()(tfsparse.graph.trace(model).prunable()[0]).tolist()
    [0.5, 2.0, 1.0]
    """

    name = "bn_gamma"

    def __init__(self):
        self._warned = set()

    def score_group(self, group, *, model=None, data=None):
        members = [(m, c) for m, c in group.out_members() if _is_gamma(m)]
        if not members:
            key = (group.sources, id(group.out_members()[0][0].variable) if group.out_members() else None)
            if key not in self._warned:
                self._warned.add(key)
                logging.warning(
                    "tfsparse bn_gamma: channel group of %s has no BatchNormalization gamma; "
                    "scoring it by the L1 norm of its filters instead.",
                    ", ".join(group.sources),
                )
            return l1.score_group(group)
        scores = np.zeros(group.size)
        for member, channels in members:
            _accumulate(scores, per_channel(_values(member.variable), member, channels))
        return scores


class Random(Criterion):
    """Seeded random scores: the baseline every criterion should beat.

    A group gets the same scores on every call (seeded by `seed` and the
    group's index), so the order in which its channels go is fixed.

    Args:
        seed: Integer seed. Defaults to `0`.

    Example:

    >>> import keras, tfsparse
    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.Dense(1)])
    >>> group = tfsparse.graph.trace(model).prunable()[0]
    >>> bool((Random(seed=1)(group) == Random(seed=1)(group)).all()), len(Random()(group))
    (True, 4)
    """

    name = "random"

    def __init__(self, seed=0):
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise _invalid("seed", "an integer >= 0", seed)
        self.seed = seed

    def score_group(self, group, *, model=None, data=None):
        return np.random.default_rng([self.seed, group.index]).random(group.size)

    def get_config(self):
        return {"seed": self.seed}


class Taylor(Criterion):
    """First-order Taylor importance in weight space (Molchanov et al. 2019).

    Removing channel `c` sets its out weights `W_c` (kernel slices, bias,
    gamma, beta) to zero; to first order the loss changes by
    `-sum(W_c * dL/dW_c)`. The score is the absolute value of that sum,
    computed on each calibration batch (inference mode: BatchNormalization
    uses its moving statistics, dropout is off) and averaged over the
    batches. Masked (already removed) channels score 0. One backward pass
    per batch serves every group of a `score(groups, ...)` call.

    Args:
        loss: The loss `loss(y_true, y_pred)` (a Keras loss, its name or a
            callable). `None` uses the model's compiled loss (with its
            regularization losses). Defaults to `None`.
        batch_size: Batch size when `data` is given as `(x, y)` arrays.
            Defaults to `32`.

    Calling it needs `model=` (a built Keras model) and `data=`: `(x, y)` or
    `(x, y, sample_weight)` arrays, or an iterable of such batches (e.g. a
    `tf.data.Dataset`; use this form for a model with several inputs).

    Example:

    >>> import keras, numpy as np, tfsparse
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, name="a"), keras.layers.Dense(1, name="b")])
    >>> _ = model.get_layer("a").kernel.assign(np.eye(2, dtype="float32"))
    >>> _ = model.get_layer("b").kernel.assign(np.array([[1.0], [0.0]], "float32"))  # unit 1 is not used
    >>> model.compile(loss="mse")
    >>> x = np.random.default_rng(0).normal(size=(16, 2)).astype("float32")
    >>> scores = Taylor()(tfsparse.graph.trace(model).prunable()[0], model=model, data=(x, x[:, :1] * 3))
    >>> bool(scores[0] > 0), float(scores[1])
    (True, 0.0)
    """

    name = "taylor"
    needs_data = True

    def __init__(self, loss=None, batch_size=32):
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise _invalid("batch_size", "an integer >= 1", batch_size)
        self.loss = loss
        self._loss_fn = None if loss is None else keras.losses.get(loss)
        self.batch_size = batch_size

    def get_config(self):
        loss = self.loss
        if loss is not None and not isinstance(loss, str):
            loss = keras.losses.serialize(loss) if isinstance(loss, keras.losses.Loss) else loss
        return {"loss": loss, "batch_size": self.batch_size}

    def score(self, groups, *, model=None, data=None):
        if model is None or not isinstance(model, keras.Model):
            raise _invalid("model", "the Keras model the groups were traced from (taylor computes its gradients)",
                           model)
        if data is None:
            raise _invalid("data", "calibration batches `(x, y)` for the taylor criterion (a few batches of "
                           "training data)", data)
        if self._loss_fn is None and getattr(model, "loss", None) is None:
            raise _invalid("model", "a compiled model (taylor uses its loss) or Taylor(loss=...)", model.name)
        if keras.backend.backend() != "tensorflow":
            raise _invalid("model", "a model on the TensorFlow backend (taylor computes gradients with "
                           "tf.GradientTape)", keras.backend.backend())
        variables = list({id(m.variable): m.variable for g in groups for m, _ in g.out_members()}.values())
        totals = [np.zeros(group.size) for group in groups]
        batches = 0
        for batch in _batches(data, self.batch_size):
            grads = self._gradients(model, variables, batch)
            products = {id(v): _values(v) * g for v, g in zip(variables, grads)}
            for group, total in zip(groups, totals):
                signed = np.zeros(group.size)
                for member, channels in group.out_members():
                    _accumulate(signed, per_channel(products[id(member.variable)], member, channels, reduce="sum"))
                total += np.abs(signed)
            batches += 1
        if not batches:
            raise _invalid("data", "at least one calibration batch", data)
        return [total / batches for total in totals]

    def _gradients(self, model, variables, batch):
        import tensorflow as tf  # the TensorFlow backend's autodiff

        x, y, sample_weight = (tuple(batch) + (None,))[:3]
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            for variable in variables:
                tape.watch(variable.value)
            y_pred = model(x, training=False)
            if self._loss_fn is not None:
                loss = self._loss_fn(y, y_pred, sample_weight) if sample_weight is not None else self._loss_fn(
                    y, y_pred)
            else:
                loss = model.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=False)
            loss = tf.reduce_mean(tf.cast(loss, "float32"))
        grads = tape.gradient(loss, [variable.value for variable in variables])
        return [np.zeros(v.shape) if g is None else np.asarray(keras.ops.convert_to_numpy(g), np.float64)
                for v, g in zip(variables, grads)]


def _batches(data, batch_size):
    """Yields `(x, y)` or `(x, y, sample_weight)` tuples from arrays or an iterable of batches."""
    if isinstance(data, (tuple, list)) and len(data) in (2, 3) and hasattr(data[0], "shape"):
        arrays = [np.asarray(a) if a is not None else None for a in data]
        size = len(arrays[0])
        for start in range(0, size, batch_size):
            yield tuple(a if a is None else a[start:start + batch_size] for a in arrays)
        return
    try:
        iterator = iter(data)
    except TypeError:
        raise _invalid("data", "`(x, y)` arrays or an iterable of `(x, y)` batches", type(data).__name__) from None
    for batch in iterator:
        if not isinstance(batch, (tuple, list)) or len(batch) not in (2, 3):
            raise _invalid("data", "batches of `(x, y)` or `(x, y, sample_weight)`", type(batch).__name__)
        yield tuple(batch)


class _Function(Criterion):
    """A plain callable `fn(group, **context)`; only the context it accepts is passed."""

    def __init__(self, fn):
        self.fn = fn
        self.name = None
        try:
            parameters = inspect.signature(fn).parameters.values()
        except (TypeError, ValueError):  # a builtin without a signature: group only
            parameters = []
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
            self.accepts = {"model", "data"}
        else:
            self.accepts = {p.name for p in parameters if p.name in ("model", "data")}
        self.needs_data = bool(getattr(fn, "needs_data", False))

    def score_group(self, group, *, model=None, data=None):
        context = {"model": model, "data": data}
        return self.fn(group, **{key: value for key, value in context.items() if key in self.accepts})

    def __repr__(self):
        return f"{getattr(self.fn, '__qualname__', repr(self.fn))}"


l1 = L1Norm()
bn_gamma = BNGamma()
taylor = Taylor()
random = Random()

_CRITERIA = {"l1": L1Norm, "bn_gamma": BNGamma, "taylor": Taylor, "random": Random}
_DEFAULTS = {"l1": l1, "bn_gamma": bn_gamma, "taylor": taylor, "random": random}
NAMES = tuple(_CRITERIA)


def get_criterion(identifier) -> Criterion:
    """Returns a `Criterion` from a name, a serialized dict, a `Criterion` or a callable.

    Args:
        identifier: One of `NAMES` (`"l1"`, `"bn_gamma"`, `"taylor"`,
            `"random"`), `{"name": ..., "config": {...}}` (see
            `serialize_criterion`), a `Criterion`, or a callable
            `fn(group, **context) -> scores`.

    Raises:
        ValueError: for an unknown name (the message lists the known ones)
            or anything else.

    Example:

    >>> get_criterion("random").name, get_criterion({"name": "random", "config": {"seed": 3}}).seed
    ('random', 3)
    >>> get_criterion("l2")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: Invalid value ... Expected one of ('l1', 'bn_gamma', 'taylor', 'random'), ... Received: criterion='l2'
    """
    expected = f"one of {NAMES}, a Criterion or a callable fn(group, **context) -> scores"
    if isinstance(identifier, Criterion):
        return identifier
    if isinstance(identifier, str):
        if identifier not in _DEFAULTS:
            raise _invalid("criterion", expected, identifier)
        return _DEFAULTS[identifier]
    if isinstance(identifier, dict):
        name, config = identifier.get("name"), identifier.get("config") or {}
        if name not in _CRITERIA or not isinstance(config, dict):
            raise _invalid("criterion", expected, identifier)
        return _CRITERIA[name](**config)
    if callable(identifier) and not isinstance(identifier, type):
        return _Function(identifier)
    raise _invalid("criterion", expected, identifier)


def serialize_criterion(criterion):
    """A JSON-friendly form: the name of a default built-in, else `{"name": ..., "config": ...}`.

    Raises:
        ValueError: for a custom callable or criterion (it cannot be saved in
            a config).
    """
    if isinstance(criterion, str):
        get_criterion(criterion)
        return criterion
    if isinstance(criterion, Criterion) and type(criterion) is _CRITERIA.get(criterion.name):
        config = criterion.get_config()
        if config == _DEFAULTS[criterion.name].get_config():
            return criterion.name
        return {"name": criterion.name, "config": config}
    raise _invalid("criterion", f"one of {NAMES} (a custom criterion cannot be saved in a config; pass it again "
                   "when rebuilding the strategy)", criterion)


def check_scores(scores, group, criterion) -> np.ndarray:
    """Validates a criterion's output for `group`: finite floats, one per channel."""
    try:
        values = np.asarray(scores, np.float64)
    except (TypeError, ValueError):
        values = None
    if values is None or values.shape != (group.size,) or not np.all(np.isfinite(values)):
        raise ValueError(
            f"The criterion {criterion!r} returned {np.shape(scores) if values is not None else type(scores).__name__} "
            f"for the group of {', '.join(group.sources)}; a criterion must return {group.size} finite scores, one "
            "per channel."
        )
    return values


__all__ = ["BNGamma", "Criterion", "L1Norm", "NAMES", "Random", "Taylor", "bn_gamma", "check_scores",
           "get_criterion", "l1", "per_channel", "random", "serialize_criterion", "taylor"]
