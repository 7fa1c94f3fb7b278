"""Training helpers shared by `tfsparse prune` and `tfsparse demo`.

Example:

>>> from tfsparse.training import pruning_steps
>>> pruning_steps(num_samples=1000, batch_size=100, epochs=3, start_step=0)
{'begin_step': 0, 'end_step': 20, 'frequency': 1}
"""

from __future__ import annotations

import inspect
import math

import keras

from tfsparse import registry


def outputs_probabilities(model) -> bool:
    """Whether the model ends in a softmax (probabilities, not logits)."""
    last = model.layers[-1] if getattr(model, "layers", None) else None
    activation = getattr(last, "activation", None)
    return getattr(activation, "__name__", "") == "softmax" or isinstance(last, keras.layers.Softmax)


def compile_classifier(model, *, learning_rate=1e-3, optimizer=None):
    """Compiles `model` for integer labels with Adam and accuracy."""
    model.compile(
        optimizer=optimizer or keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=not outputs_probabilities(model)),
        metrics=["accuracy"],
    )
    return model


def pruning_steps(*, num_samples, batch_size, epochs, start_step=0, prune_fraction=2 / 3) -> dict:
    """Schedule steps: prune over the first `prune_fraction` of training.

    About 20 mask updates; the rest of training fine-tunes the frozen mask.
    """
    total = math.ceil(num_samples / batch_size) * epochs
    end = start_step + max(1, int(total * prune_fraction))
    return {"begin_step": start_step, "end_step": end, "frequency": max(1, (end - start_step) // 20)}


def parse_strategy_args(text) -> dict:
    """Parses `key=value,key=value` (values as Python literals when possible)."""
    import ast

    result = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(
                "Invalid value received for argument `strategy_args`. Expected "
                f"`key=value,key=value`. Received: strategy_args={text}"
            )
        try:
            result[key.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            result[key.strip()] = value.strip()
    return result


ALTERNATIVE_TARGETS = ("target_macs", "target_experts", "schedule")


def make_strategy(name, *, target_sparsity=None, steps=None, **strategy_args):
    """Instantiates a registered strategy with the arguments it accepts.

    `target_sparsity` and `steps` (`begin_step`, `end_step`, `frequency`) are
    passed only when the strategy's constructor takes them; explicit
    `strategy_args` win, and a target given another way in them
    (`target_macs`, `target_experts`, `schedule`) replaces `target_sparsity`.
    """
    cls = registry.get_strategy(name)
    accepted = inspect.signature(cls.__init__).parameters
    kwargs = {}
    other_target = any(key in strategy_args for key in ALTERNATIVE_TARGETS)
    if target_sparsity is not None and "target_sparsity" in accepted and not other_target:
        kwargs["target_sparsity"] = target_sparsity
    for key, value in (steps or {}).items():
        if key in accepted:
            kwargs[key] = value
    kwargs.update(strategy_args)
    try:
        return cls(**kwargs)
    except TypeError as error:
        raise ValueError(
            f"Invalid value received for argument `strategy_args`. Strategy "
            f"{name!r} rejected the arguments ({error}); see its docstring. "
            f"Received: strategy_args={strategy_args}"
        ) from error
