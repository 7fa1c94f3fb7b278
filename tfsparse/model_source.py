"""Loading a model named on the command line.

A model source is either a saved `.keras` file or a builder function given as
`path/to/file.py:function` (e.g. `models/mobilenet_v1.py:mobilenet_v1`). A
builder is called with `input_shape` and `num_classes` when it accepts them,
so it fits the dataset.

Example:

>>> from tfsparse.model_source import load_model_source
>>> model = load_model_source("models/mobilenet_v1.py:mobilenet_v1", input_shape=(32, 32, 3), num_classes=10)
>>> model.output_shape
(None, 10)
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import os
import zipfile

import keras

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _invalid(value, problem):
    return ValueError(
        "Invalid value received for argument `model`. Expected a `.keras` file (or a legacy `.h5`) "
        f"or `FILE.py:FUNCTION`; {problem} Received: model={value}"
    )


def _check_file(path, what=None) -> None:
    """Names the problem: a directory where a file is expected, or nothing at all."""
    if os.path.isdir(path):
        raise _invalid(path, f"{what or 'it'} is a directory, not a file (a TF SavedModel folder? load it in "
                             "Keras 3 with `keras.layers.TFSMLayer` and save a `.keras` file).")
    if not os.path.isfile(path):
        raise _invalid(path, f"{what or 'the file'} does not exist (check the path).")


def load_h5_file(path):
    """Loads a legacy Keras `.h5` model (e.g. a pretrained one from a package), uncompiled, with clear errors."""
    _check_file(path)
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as error:  # h5py and Keras raise many types for bad files.
        raise _invalid(path, f"loading it as a legacy HDF5 model failed: {error}") from error


def load_keras_file(path, *, compile=True):
    """Loads a `.keras` file with clear errors for missing or corrupt files."""
    _check_file(path)
    if not zipfile.is_zipfile(path):
        raise _invalid(path, "the file is not a valid .keras archive (corrupt or another format).")
    import tfsparse.layers  # noqa: F401  (registers tfsparse layers for loading)
    from tfsparse import registry

    registry.list_strategies(check=True)  # imports the plugins, which register their layers (a broken one is skipped)

    try:
        return keras.models.load_model(path, compile=compile)
    except Exception as error:  # Keras raises many types for bad archives.
        raise _invalid(path, f"loading it failed: {error}") from error


def resolve_builder_path(path) -> str:
    """Finds a builder file as given, or relative to the tfsparse checkout."""
    for candidate in (path, os.path.join(REPO_ROOT, path)):
        if os.path.isfile(candidate):
            return candidate
        if os.path.isdir(candidate):
            _check_file(candidate, "the builder file")
    raise _invalid(path, "the builder file does not exist (paths are relative to the current directory or the tfsparse checkout).")


def load_builder(spec):
    """Returns the function named by `FILE.py:FUNCTION`."""
    path, _, name = spec.rpartition(":")
    if not path.endswith(".py") or not name:
        raise _invalid(spec, "a builder must be written `FILE.py:FUNCTION`.")
    path = resolve_builder_path(path)
    digest = hashlib.sha1(os.path.abspath(path).encode()).hexdigest()[:10]
    module_spec = importlib.util.spec_from_file_location(f"tfsparse_builder_{digest}", path)
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as error:  # the user's file: any error, with its location
        raise _invalid(spec, f"importing {path} failed: {_describe(error)}.") from error
    function = getattr(module, name, None)
    if not callable(function):
        raise _invalid(spec, f"{path} has no function `{name}`.")
    return function


def load_model_source(spec, *, input_shape=None, num_classes=None, compile=True, **builder_kwargs):
    """Loads a `.keras` file (or a legacy `.h5`, uncompiled) or builds a model from `FILE.py:FUNCTION`.

    Args:
        spec: The model source.
        input_shape: Passed to a builder that accepts it. Defaults to `None`.
        num_classes: Passed to a builder that accepts it. Defaults to `None`.
        compile: For `.keras` files: restore the compiled state (optimizer
            and its step counter). Defaults to `True`.
        **builder_kwargs: Other builder arguments (e.g. `width=0.5`).

    Returns:
        A `keras.Model`.
    """
    spec = os.fspath(spec)
    if spec.endswith(".keras"):
        return load_keras_file(spec, compile=compile)
    if spec.endswith((".h5", ".hdf5")):
        return load_h5_file(spec)
    if ":" not in spec:
        if os.path.isdir(spec):
            _check_file(spec)
        raise _invalid(spec, "the value is neither.")
    builder = load_builder(spec)
    accepted = inspect.signature(builder).parameters
    kwargs = dict(builder_kwargs)
    if input_shape is not None and "input_shape" in accepted:
        kwargs["input_shape"] = tuple(input_shape)
    if num_classes is not None and "num_classes" in accepted:
        kwargs["num_classes"] = num_classes
    try:
        model = builder(**kwargs)
    except Exception as error:  # the user's function: any error, with its location
        raise _invalid(spec, f"the builder raised {_describe(error)} (called with "
                             f"{', '.join(f'{k}={v!r}' for k, v in kwargs.items()) or 'no arguments'}).") from error
    if not isinstance(model, keras.Model):
        raise _invalid(spec, f"the builder returned {type(model).__name__}, not a keras.Model.")
    return model


def _describe(error) -> str:
    """`TypeError: message (file.py, line 12)` for an error raised in user code."""
    import traceback

    frames = traceback.extract_tb(error.__traceback__)
    where = f" ({os.path.basename(frames[-1].filename)}, line {frames[-1].lineno})" if frames else ""
    if isinstance(error, SyntaxError) and error.lineno:
        where = f" ({os.path.basename(error.filename or '')}, line {error.lineno})"
        return f"SyntaxError: {error.msg}{where}"
    return f"{type(error).__name__}: {error}{where}"
