"""`check_fits`: does a dataset fit a model's input shape and output units?

Example:

>>> import keras
>>> from tfsparse import data
>>> model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
>>> data.check_fits(data.load("digits"), model)
"""

from __future__ import annotations


def _shape(model, attribute):
    try:
        return getattr(model, attribute)
    except (AttributeError, ValueError, RuntimeError):  # e.g. a subclassed model not built yet
        return None


def _fits(expected, actual) -> bool:
    return len(expected) == len(actual) and all(e is None or e == a for e, a in zip(expected, actual))


def _shape_hint(expected, sample, name) -> str:
    """Which load/CLI options make `sample` fit `expected`, if any do."""
    if len(expected) != 3 or len(sample) != 3:
        return f"Use a model whose input is {sample}, or a dataset with samples of shape {expected}."
    options = []
    height, width, channels = expected
    if (height, width) != sample[:2] and None not in (height, width):
        if height == width and height >= max(sample[:2]):
            options.append(("image_size", height))
        else:
            return (f"Images cannot be cropped or resized to {height}x{width}: use a model built for "
                    f"{sample[0]}x{sample[1]} inputs, or another dataset.")
    if channels is not None and channels != sample[2]:
        if sample[2] != 1:
            return f"Use a model with {sample[2]} input channels, or another dataset."
        options.append(("channels", channels))
    flags = " ".join(f"--{key}={value}" for key, value in options)
    kwargs = ", ".join(f"{key}={value}" for key, value in options)
    return f"Pass {flags} (load({name!r}, {kwargs}) in Python), or use a model built for {sample} inputs."


def check_fits(dataset, model) -> None:
    """Raises a clear error when `dataset` cannot train or evaluate `model`.

    The sample shape must match the model's input shape (unknown dimensions
    match anything) and the model's last output dimension must be at least
    the number of classes (one score per class; extra units are allowed). A
    model whose shapes are not known yet (an unbuilt subclassed model) is
    not checked.

    Args:
        dataset: A `tfsparse.data.Dataset`.
        model: A Keras model with one input and one output.

    Raises:
        ValueError: naming the mismatch and the fix (which `--image_size` /
            `--channels` to pass, or a different model).

    Example:

    >>> import keras
    >>> from tfsparse import data
    >>> model = keras.Sequential([keras.Input((10, 10, 3)), keras.layers.Flatten(), keras.layers.Dense(10)])
    >>> data.check_fits(data.load("digits"), model)
    Traceback (most recent call last):
    ...
    ValueError: Invalid value received for argument `model`. ... Pass --image_size=10 --channels=3 ...
    """
    sample = tuple(dataset.x_train.shape[1:])
    label = getattr(model, "name", type(model).__name__)
    input_shape, output_shape = _shape(model, "input_shape"), _shape(model, "output_shape")
    if input_shape is not None:
        if isinstance(input_shape, list) or (input_shape and isinstance(input_shape[0], (tuple, list))):
            raise ValueError(
                f"Invalid value received for argument `model`. Expected a model with one input to train on "
                f"dataset {dataset.name!r}; model {label!r} has inputs {input_shape}. Received: model={label!r}"
            )
        expected = tuple(input_shape[1:])
        if not _fits(expected, sample):
            raise ValueError(
                f"Invalid value received for argument `model`. Dataset {dataset.name!r} has samples of shape "
                f"{sample} but model {label!r} expects inputs of shape {expected}. "
                f"{_shape_hint(expected, sample, dataset.name)} Received: model={label!r}"
            )
    if output_shape is None:
        return
    if isinstance(output_shape, list) or (output_shape and isinstance(output_shape[0], (tuple, list))):
        raise ValueError(
            f"Invalid value received for argument `model`. Expected one output of class scores for "
            f"dataset {dataset.name!r}; model {label!r} has outputs {output_shape}. Received: model={label!r}"
        )
    units = output_shape[-1] if output_shape else None
    if units is not None and units < dataset.num_classes:
        raise ValueError(
            f"Invalid value received for argument `model`. Dataset {dataset.name!r} has "
            f"{dataset.num_classes} classes but model {label!r} outputs only {units} units. Use a model with "
            f"at least {dataset.num_classes} output units (builders get num_classes={dataset.num_classes}), "
            f"or another dataset. Received: model={label!r}"
        )
