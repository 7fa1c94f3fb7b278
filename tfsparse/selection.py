"""Choosing which prunable weights a strategy acts on.

A selector is one of:
- a string: a regular expression that must fully match a layer name or a
  weight path (`"conv_pw_.*"`, `".*/pointwise_kernel"`);
- a layer class: every layer that is an instance of it (`keras.layers.Conv2D`);
- a callable `predicate(layer) -> bool`;
- a list of the above (their union).

`exclude` takes the same forms and removes weights after `layers` selected
them. Each selector must match something: a typo fails loudly (with the
closest layer names), and so does an empty `layers=[]` (`layers=None` selects
every prunable weight) or an `exclude` that leaves nothing.

Example:

>>> import keras
>>> from tfsparse.selection import select_weights
>>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="a"), keras.layers.Dense(2, name="b")])
>>> [(w.layer.name, w.name) for w in select_weights(model, layers="a")]
[('a', 'kernel')]
"""

from __future__ import annotations

import difflib
import importlib
import re

from tfsparse.prunable import prunable_weights


def _as_list(selector):
    if selector is None:
        return []
    if isinstance(selector, (list, tuple)):
        return list(selector)
    return [selector]


def _matches(selector, weight) -> bool:
    if isinstance(selector, str):
        pattern = re.compile(selector)
        return bool(pattern.fullmatch(weight.layer.name) or pattern.fullmatch(weight.path))
    if isinstance(selector, type):
        return isinstance(weight.layer, selector)
    return bool(selector(weight.layer))


def _check_selector(argument, selector):
    if isinstance(selector, str):
        try:
            re.compile(selector)
        except re.error as error:
            raise ValueError(
                f"Invalid value received for argument `{argument}`. Expected a valid "
                f"regular expression ({error}). Received: {argument}={selector!r}"
            ) from None
    elif not (isinstance(selector, type) or callable(selector)):
        raise ValueError(
            f"Invalid value received for argument `{argument}`. Expected a layer "
            "name or regex, a layer class, a predicate `f(layer) -> bool`, or a "
            f"list of those. Received: {argument}={selector!r}"
        )


#: The most layer names an error message lists.
MAX_LISTED = 20


def check_layers_argument(layers) -> None:
    """Refuses an empty `layers` selector (`[]`, `()`), which would select nothing.

    Raises:
        ValueError: for an empty list or tuple.
    """
    if isinstance(layers, (list, tuple)) and not layers:
        raise ValueError(
            "Invalid value received for argument `layers`. Expected at least one layer name/pattern (a "
            "name or regex, a layer class or a predicate); to prune every prunable layer, pass layers=None "
            f"(the default). Received: layers={layers!r}"
        )


def _listing(names) -> str:
    """`names` joined, at most `MAX_LISTED` of them."""
    shown = ", ".join(names[:MAX_LISTED])
    return shown if len(names) <= MAX_LISTED else f"{shown} ... ({len(names) - MAX_LISTED} more)"


def _apply(argument, selectors, candidates, available, received):
    chosen = []
    for selector in selectors:
        _check_selector(argument, selector)
        hits = [w for w in candidates if _matches(selector, w)]
        if not hits:
            close = difflib.get_close_matches(selector, available, n=1) if isinstance(selector, str) else []
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(
                f"Invalid value received for argument `{argument}`. Expected selectors that each match a "
                f"prunable layer, but {selector!r} matches no prunable weight{hint}. Prunable layers are: "
                f"{_listing(available)}. Fix the name or regex (it must match a whole layer name or weight "
                f"path). Received: {argument}={received!r}"
            )
        chosen.extend(w for w in hits if w not in chosen)
    return chosen


def select_weights(model, *, layers=None, exclude=None):
    """Returns the prunable weights of `model` chosen by `layers`/`exclude`.

    Args:
        model: A built Keras model.
        layers: Selector(s) of what to prune; `None` selects every prunable
            weight. Defaults to `None`.
        exclude: Selector(s) of what to leave dense. Defaults to `None`.

    Returns:
        A list of `tfsparse.prunable.PrunableWeight` in model order.

    Raises:
        ValueError: if a selector is malformed or matches nothing, or if
            nothing is left to prune.
    """
    candidates = prunable_weights(model)
    if not candidates:
        raise ValueError(
            "Invalid value received for argument `model`. It has no prunable "
            "weights (kernels of Dense, Conv, Embedding, RNN ... layers). For a "
            "custom layer, add a `get_prunable_weights()` method or call "
            "`tfsparse.register_prunable(LayerClass, weights=[...])`. "
            f"Received: model={model.name}"
        )
    return select_from(candidates, layers=layers, exclude=exclude)


def select_from(candidates, *, layers=None, exclude=None):
    """Returns the `candidates` (`PrunableWeight`s) chosen by `layers`/`exclude`.

    `select_weights` with the candidates given, for strategies acting on
    other weights than the prunable kernels (e.g. BatchNormalization gammas).

    Raises:
        ValueError: if a selector is malformed or matches nothing, or if
            nothing is left.
    """
    check_layers_argument(layers)
    available = list(dict.fromkeys(w.layer.name for w in candidates))  # model order
    selectors = _as_list(layers)
    chosen = _apply("layers", selectors, candidates, available, layers) if selectors else list(candidates)
    excluded = _apply("exclude", _as_list(exclude), candidates, available, exclude)
    remaining = [w for w in candidates if w in chosen and w not in excluded]
    if not remaining:
        selected = list(dict.fromkeys(w.layer.name for w in chosen))
        raise ValueError(
            "Invalid value received for argument `exclude`. Expected it to leave at least one selected "
            f"weight to prune, but it removes every selected weight (of {_listing(selected)}); to prune "
            "nothing, leave the strategy out. Received: "
            f"exclude={exclude!r}{'' if layers is None else f' with layers={layers!r}'}"
        )
    return remaining


def serialize_selector(selector):
    """Returns a JSON-friendly form of a selector (strings and classes only)."""
    if selector is None or isinstance(selector, str):
        return selector
    if isinstance(selector, (list, tuple)):
        return [serialize_selector(s) for s in selector]
    if isinstance(selector, type):
        return {"layer_type": f"{selector.__module__}:{selector.__qualname__}"}
    raise ValueError(
        "Invalid value received for argument `layers`. A predicate function "
        "cannot be saved in a config; use layer names, regular expressions or "
        f"layer classes instead. Received: layers={selector!r}"
    )


def deserialize_selector(config):
    """Inverse of `serialize_selector`."""
    if config is None or isinstance(config, str):
        return config
    if isinstance(config, list):
        return [deserialize_selector(c) for c in config]
    module, _, qualname = config["layer_type"].partition(":")
    target = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part)
    return target
