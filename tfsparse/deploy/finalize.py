"""`finalize(model)`: the deployable copy of a trained model.

A trained model carries tfsparse mask constraints on its variables (and,
for some strategies, layers that only matter during training). `finalize`
returns a copy with the same weights and no mask constraints, then applies
the finalizers that strategies register (folding L0 gates, shrinking pruned
channels, ...), in registration order. The input model is never modified:
it keeps its masks and can go on training.

Copies are made the Keras way: `keras.models.clone_model` for Sequential and
Functional models, `cls.from_config(model.get_config())` for subclassed
models; then the weights are copied with `set_weights`.

Example:

>>> import keras, numpy as np
>>> from tfsparse import masks
>>> from tfsparse.deploy import finalize
>>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
>>> _ = masks.attach(model.layers[0].kernel)
>>> deployable = finalize(model)
>>> masks.has_mask(deployable.layers[0].kernel), masks.has_mask(model.layers[0].kernel)
(False, True)
>>> bool(np.array_equal(deployable.layers[0].kernel.numpy(), model.layers[0].kernel.numpy()))
True
"""

from __future__ import annotations

import keras
import numpy as np
from absl import logging

from keras.src.models.functional import Functional

from tfsparse import masks

_FINALIZERS: dict = {}


def register_finalizer(fn, *, name):
    """Registers `fn(model) -> model`, applied by `finalize` after copying.

    Finalizers run in registration order on the copy (never on the user's
    model) and may return the same model or a new one. Strategies register
    theirs when their module is imported. Registering the same function
    again under its name is a no-op, so re-importing a module is harmless.

    Args:
        fn: A callable taking and returning a `keras.Model`.
        name: A unique name, shown in errors and logs.

    Returns:
        `fn`, unchanged.

    Raises:
        ValueError: if `fn` is not callable, or `name` is already taken by a
            different function.

    Example:

    >>> from tfsparse.deploy import register_finalizer, unregister_finalizer
    >>> def drop_nothing(model):
    ...     return model
    >>> _ = register_finalizer(drop_nothing, name="doc_example")
    >>> unregister_finalizer("doc_example")
    """
    if not callable(fn):
        raise ValueError(
            "Invalid value received for argument `fn`. Expected a callable "
            f"taking and returning a keras.Model. Received: fn={fn!r}"
        )
    if not isinstance(name, str) or not name:
        raise ValueError(
            "Invalid value received for argument `name`. Expected a non-empty "
            f"string. Received: name={name!r}"
        )
    existing = _FINALIZERS.get(name)
    if existing is not None and not _same_function(existing, fn):
        raise ValueError(
            f"Invalid value received for argument `name`. A different finalizer "
            f"is already registered as {name!r} ({_describe(existing)}); choose "
            f"another name or call `unregister_finalizer({name!r})` first. "
            f"Received: name={name!r}"
        )
    _FINALIZERS[name] = fn
    return fn


def unregister_finalizer(name) -> None:
    """Removes the finalizer registered as `name` (no error if absent)."""
    _FINALIZERS.pop(name, None)


def list_finalizers() -> tuple:
    """The registered finalizer names, in the order `finalize` applies them."""
    return tuple(_FINALIZERS)


def finalize(model, *, shrink=True):
    """Returns the deployable copy of `model`; `model` is left unchanged.

    Args:
        model: A built `keras.Model` (Sequential, Functional or subclassed).
        shrink: After the finalizers, remove the pruned channels of a
            Sequential or Functional model with `tfsparse.graph.shrink`
            (channels whose value-making weights are all zero; the outputs
            do not change). Defaults to `True`.

    Returns:
        A new `keras.Model` with the same weights (fewer channels where
        whole channels were zero), no tfsparse mask constraints, and every
        registered finalizer applied.

    Raises:
        ValueError: if `model` is not a built `keras.Model`, cannot be copied
            (a subclassed model without a working `get_config`/`from_config`),
            or a finalizer fails or returns something else than a model.

    Example:

    >>> import keras
    >>> from tfsparse.deploy import finalize
    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    >>> finalize(model) is model
    False
    """
    check_model(model)
    copy = _copy_model(model)
    masks.detach_all(copy)
    for name, fn in list(_FINALIZERS.items()):
        logging.info("tfsparse.finalize: applying finalizer %r", name)
        try:
            result = fn(copy)
        except Exception as error:
            raise ValueError(
                f"The finalizer {name!r} ({_describe(fn)}) failed on model "
                f"{model.name!r}: {error}. Fix or unregister it with "
                f"`tfsparse.deploy.unregister_finalizer({name!r})`."
            ) from error
        if not isinstance(result, keras.Model):
            raise ValueError(
                f"The finalizer {name!r} ({_describe(fn)}) returned "
                f"{type(result).__name__}; a finalizer must return a keras.Model."
            )
        copy = result
    if shrink:
        from tfsparse.graph.shrinking import shrink_pruned  # the graph package imports deploy's neighbours

        copy = shrink_pruned(copy)
    return copy


def check_model(model) -> None:
    """Raises a `ValueError` unless `model` is a built `keras.Model`."""
    if not isinstance(model, keras.Model):
        raise ValueError(
            "Invalid value received for argument `model`. Expected a "
            "`keras.Model` (Keras 3; load a `.keras` file with "
            f"`keras.saving.load_model`). Received: model={model!r} of type "
            f"{type(model).__name__}"
        )
    if not model.built:
        raise ValueError(
            "Invalid value received for argument `model`. Expected a built "
            "model; call it once on a batch of inputs or give it an "
            f"`keras.Input`. Received: model={model.name!r} (not built)"
        )


def check_copyable(model) -> None:
    """Raises the `ValueError` `finalize` would raise copying `model`, before any training."""
    _clone(model)


def _clone(model):
    if isinstance(model, keras.Sequential) or type(model) is Functional:
        try:
            return keras.models.clone_model(model)
        except Exception as error:
            raise ValueError(_clone_failure(model, error)) from error
    return _copy_subclassed(model)


def _clone_failure(model, error) -> str:
    from tfsparse.prunable import iter_layers

    lambdas = [layer.name for layer in iter_layers(model) if isinstance(layer, keras.layers.Lambda)]
    if lambdas:
        return (f"Cannot copy model {model.name!r}: it has `keras.layers.Lambda` layer(s) {', '.join(lambdas)}, and "
                "Keras refuses to rebuild a Lambda's Python function from its config in safe mode (a saved "
                "`.keras` with it would not load either). Replace each Lambda with a small subclassed layer "
                "decorated with `@keras.saving.register_keras_serializable()` (its `call` does what the lambda "
                "did), or with a built-in layer such as `keras.layers.Rescaling` or `keras.layers.Activation`.")
    return (f"Cannot copy model {model.name!r} with `keras.models.clone_model`: {error}. Every layer must "
            "implement `get_config()` and `from_config()` (register custom ones with "
            "`keras.saving.register_keras_serializable`).")


def _copy_model(model):
    copy = _clone(model)
    try:
        copy.set_weights(model.get_weights())
    except Exception as error:
        raise ValueError(
            f"The copy of model {model.name!r} does not have the same weights "
            f"as the original ({error}). Make `get_config()`/`from_config()` "
            "rebuild every layer with the same arguments."
        ) from error
    return copy


def _copy_subclassed(model):
    try:
        copy = model.__class__.from_config(model.get_config())
    except Exception as error:
        raise ValueError(
            f"Cannot copy the subclassed model {model.name!r} "
            f"({type(model).__name__}): {type(error).__name__}: {error}. Implement "
            "`get_config()` returning the constructor arguments and, if needed, "
            "`from_config(cls, config)`, so that "
            "`cls.from_config(model.get_config())` rebuilds it."
        ) from error
    if copy.built:  # e.g. a Functional subclass, built by its constructor
        return copy
    shapes = getattr(model, "_build_shapes_dict", None)
    if not shapes:
        raise ValueError(
            f"Cannot copy the subclassed model {model.name!r}: Keras did not "
            "record its input shapes. Call the model once on a batch of inputs "
            "before finalizing or exporting it."
        )

    def zeros(shape):
        return np.zeros([1 if d is None else d for d in shape], dtype=model.input_dtype)

    arguments = [keras.tree.map_shape_structure(zeros, value) for value in shapes.values()]
    try:
        copy(*arguments, training=False)
    except Exception as error:
        raise ValueError(
            f"Cannot build the copy of the subclassed model {model.name!r} by "
            f"calling it on inputs of shape {list(shapes.values())}: {error}. "
            "Make sure `from_config(get_config())` rebuilds the same model."
        ) from error
    return copy


def _same_function(a, b) -> bool:
    if a is b:
        return True
    key = lambda f: (getattr(f, "__module__", None), getattr(f, "__qualname__", None))  # noqa: E731
    return key(a) == key(b) and key(a) != (None, None)


def _describe(fn) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"
