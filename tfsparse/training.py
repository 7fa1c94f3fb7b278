"""Training helpers shared by `tfsparse prune` and `tfsparse demo`.

Example:

>>> from tfsparse.training import pruning_steps
>>> pruning_steps(num_samples=1000, batch_size=100, epochs=3, start_step=0)
{'begin_step': 0, 'end_step': 20, 'frequency': 1}
"""

from __future__ import annotations

import ast
import difflib
import inspect
import keyword
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


#: Keys of `--strategy_args` that are flags of `tfsparse prune` of their own.
FLAG_ARGUMENTS = ("target_sparsity",)

_OPENING, _CLOSING = "([{", ")]}"


def _invalid_args(text, problem):
    return ValueError(
        "Invalid value received for argument `strategy_args`. Expected `key=value` items separated by commas, "
        "each value a Python literal (number, 'string', True/False/None, list, tuple, dict) or a bare word; "
        f"{problem}. Received: strategy_args={text}"
    )


def _split_top_level(text, separator):
    """Splits `text` at `separator` outside quotes and brackets; `None` for unbalanced brackets or quotes."""
    parts, depth, quote, start, index = [], [], None, 0, 0
    while index < len(text):
        char = text[index]
        if quote:
            if char == "\\":
                index += 1
            elif char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char in _OPENING:
            depth.append(_CLOSING[_OPENING.index(char)])
        elif char in _CLOSING:
            if not depth or depth.pop() != char:
                return None
        elif char == separator and not depth:
            parts.append(text[start:index])
            start = index + 1
        index += 1
    if quote or depth:
        return None
    parts.append(text[start:])
    return parts


class _BareWords(ast.NodeTransformer):
    """Turns bare names (`erk`, `[conv1, conv2]`) into strings."""

    def visit_Name(self, node):
        return ast.copy_location(ast.Constant(node.id), node)


def _parse_value(text, key, value):
    try:
        node = ast.parse(value, mode="eval").body
    except SyntaxError:
        node = None
    if node is not None:
        try:
            return ast.literal_eval(_BareWords().visit(node))
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            pass
    if value[0] in _OPENING + "'\"":  # meant as a list, tuple, dict or string: not a bare word
        raise _invalid_args(text, f"the value of `{key}` is not a valid Python literal: {value}")
    return value  # a bare word, a path or a regex: the text as it is


def parse_strategy_args(text, *, flags=FLAG_ARGUMENTS) -> dict:
    """Parses `--strategy_args` text, `key=value,key=value`, into keyword arguments.

    Values are Python literals (numbers, strings, booleans, `None`, lists,
    tuples, dicts), read with `ast.literal_eval`; a bare word (`scope=erk`,
    also inside lists: `layers=[conv1,conv2]`) or any other text that is not
    Python (`log_dir=/tmp/run`, `layers=conv.*`) is a string. Commas inside
    brackets or quotes do not split items.

    Args:
        text: The text, or `None`/`""` for no arguments.
        flags: Keys refused because they have a command-line flag of their
            own (`--target_sparsity`). Defaults to `("target_sparsity",)`.

    Raises:
        ValueError: naming `strategy_args`, for an item without `key=`, a key
            that is not an identifier, a key given twice, a malformed value,
            or a key in `flags`.

    Example:

    >>> parse_strategy_args("layers=['conv1','conv2'],exclude=['fc'],scope=erk,frequency=5")
    {'layers': ['conv1', 'conv2'], 'exclude': ['fc'], 'scope': 'erk', 'frequency': 5}
    """
    text = (text or "").strip()
    if not text:
        return {}
    items = _split_top_level(text, ",")
    if items is None:
        raise _invalid_args(text, "its brackets or quotes are not balanced")
    result = {}
    for item in (item.strip() for item in items):
        if not item:
            continue
        pieces = _split_top_level(item, "=")
        key = pieces[0].strip() if pieces and len(pieces) > 1 else None
        if key is None:
            raise _invalid_args(text, f"`{item}` has no `key=` (positional values are not accepted)")
        if not key.isidentifier() or keyword.iskeyword(key):
            raise _invalid_args(text, f"`{key}` in `{item}` is not an argument name")
        value = item[item.index("=") + 1:].strip()
        if not value:
            raise _invalid_args(text, f"`{key}=` has no value (write {key}='' for an empty string)")
        if key in result:
            raise _invalid_args(text, f"`{key}` is given twice")
        if key == "steps":  # make_strategy's own argument
            raise _invalid_args(text, "`steps` is not a strategy argument: give begin_step=, end_step=, frequency=")
        result[key] = _parse_value(text, key, value)
        if key in flags:
            raise ValueError(
                f"Invalid value received for argument `strategy_args`. `{key}` is a flag of its own: pass "
                f"--{key}={result[key]} instead of putting it in --strategy_args. Received: strategy_args={text}"
            )
    return result


ALTERNATIVE_TARGETS = ("target_macs", "target_experts", "schedule")


def strategy_arguments(cls):
    """The keyword arguments a strategy class accepts, in order, inherited `Strategy` ones included.

    Follows `**kwargs` up the base classes' constructors; `None` when some
    constructor passes `**kwargs` on to one that takes anything.

    >>> from tfsparse.strategies.nm import NM
    >>> strategy_arguments(NM)[:3], strategy_arguments(NM)[-4:]
    (['n', 'm', 'begin_step'], ['layers', 'exclude', 'policy', 'log_dir'])
    """
    names = []
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        try:
            parameters = list(inspect.signature(init).parameters.values())[1:]  # without `self`
        except (TypeError, ValueError):
            return None
        keywords = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        names.extend(p.name for p in parameters if p.kind in keywords and p.name not in names)
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
            return names
    return None


def make_strategy(name, /, *, target_sparsity=None, steps=None, **strategy_args):
    """Instantiates a registered strategy with the arguments it accepts.

    `target_sparsity` and `steps` (`begin_step`, `end_step`, `frequency`) are
    passed only when the strategy's constructor takes them; explicit
    `strategy_args` win, and a target given another way in them
    (`target_macs`, `target_experts`, `schedule`) replaces `target_sparsity`.

    Raises:
        ValueError: for a `strategy_args` key the strategy does not accept
            (listing those it accepts, with the closest match), or arguments
            its constructor rejects.
    """
    cls = registry.get_strategy(name)
    names = strategy_arguments(cls)
    accepted = names if names is not None else inspect.signature(cls.__init__).parameters
    unknown = [key for key in strategy_args if names is not None and key not in names]
    if unknown:
        described = []
        for key in unknown:
            close = difflib.get_close_matches(key, names, n=1)
            described.append(f"`{key}`" + (f" (did you mean `{close[0]}`?)" if close else ""))
        raise ValueError(
            f"Invalid value received for argument `strategy_args`. Strategy {name!r} does not accept "
            f"{', '.join(described)}; it accepts: {', '.join(names)}. Received: strategy_args={strategy_args}"
        )
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
