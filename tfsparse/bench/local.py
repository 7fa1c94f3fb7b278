"""The local runner: LiteRT (`ai_edge_litert`) on this machine's CPU.

Each model gets random inputs of its input tensors' shapes and dtypes (a
dynamic batch dimension is resized to 1; the same seed for every model, so
equal inputs for equal signatures); the models are then timed interleaved
by `tfsparse.bench.timing.interleaved`.

Example:

>>> import os, pathlib, tempfile, keras, tensorflow as tf
>>> from tfsparse.bench.local import LocalModel
>>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
>>> directory = tempfile.mkdtemp()
>>> model.export(directory, format="tf_saved_model", verbose=False)
>>> path = os.path.join(directory, "m.tflite")
>>> _ = pathlib.Path(path).write_bytes(tf.lite.TFLiteConverter.from_saved_model(directory).convert())
>>> LocalModel(path, threads=1).inputs[0].shape
(1, 4)
"""

from __future__ import annotations

import platform

import numpy as np

from tfsparse.bench.result import ModelTiming
from tfsparse.bench.timing import interleaved


def random_input(detail, rng) -> np.ndarray:
    """A random array for one LiteRT input tensor.

    Floats are uniform in [0, 1); quantized integer inputs cover their whole
    range; other integers (indices, token ids) are 0 or 1 so that any lookup
    stays in range; booleans are random.

    Args:
        detail: One entry of `Interpreter.get_input_details()`.
        rng: A `numpy.random.Generator`.

    Returns:
        An array of `detail["shape"]` and `detail["dtype"]`.

    Raises:
        ValueError: for string or other unsupported input dtypes.

    Example:

    >>> import numpy as np
    >>> from tfsparse.bench.local import random_input
    >>> random_input({"shape": np.array([1, 3]), "dtype": np.int32, "quantization": (0.0, 0)},
    ...              np.random.default_rng(0)).dtype
    dtype('int32')
    """
    shape, dtype = tuple(int(d) for d in detail["shape"]), np.dtype(detail["dtype"])
    scale = (detail.get("quantization") or (0.0, 0))[0]
    if np.issubdtype(dtype, np.floating):
        return rng.random(shape).astype(dtype)
    if dtype == np.bool_:
        return rng.random(shape) < 0.5
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        low, high = (info.min, info.max) if scale else (0, 1)
        return rng.integers(low, high, size=shape, endpoint=True).astype(dtype)
    raise ValueError(
        f"Cannot benchmark input {detail.get('name')!r} of dtype {dtype}: only numeric and boolean "
        "inputs can be filled with random values. Benchmark a model without string inputs."
    )


def _unloadable(path, error) -> ValueError:
    return ValueError(
        f"LiteRT cannot load {path}: {error}. Check that it is a complete .tflite file "
        "(re-export it with `tfsparse export`)."
    )


def fixed_shape(detail, path="model") -> tuple:
    """The shape an input is run with: a dynamic batch dimension becomes 1.

    Args:
        detail: One entry of `Interpreter.get_input_details()`.
        path: The file, for error messages. Defaults to `"model"`.

    Returns:
        The input shape as a tuple of ints, batch 1 where it was dynamic.

    Raises:
        ValueError: if a dimension other than the batch is dynamic.

    Example:

    >>> import numpy as np
    >>> from tfsparse.bench.local import fixed_shape
    >>> fixed_shape({"shape": np.array([1, 4]), "shape_signature": np.array([-1, 4])})
    (1, 4)
    """
    signature = detail.get("shape_signature")
    signature = [int(d) for d in (detail["shape"] if signature is None or len(signature) == 0 else signature)]
    if any(d < 0 for d in signature[1:]):
        raise ValueError(
            f"Cannot benchmark input {detail.get('name')!r} of {path}: its shape {tuple(signature)} has a "
            "dynamic dimension besides the batch (-1). Export the model with a fixed input shape, e.g. "
            "keras.Input((32, 32, 3)) instead of keras.Input((None, None, 3))."
        )
    return tuple(1 if i == 0 and d < 0 else d for i, d in enumerate(signature))


class LocalModel:
    """A `.tflite` file loaded in a LiteRT interpreter with random inputs set.

    Args:
        path: The `.tflite` file.
        threads: Interpreter threads.
        seed: Seed of the random inputs. Defaults to `0`.

    Raises:
        ValueError: if LiteRT cannot load or prepare the file.
    """

    def __init__(self, path, *, threads, seed=0):
        from ai_edge_litert.interpreter import Interpreter

        self.path = path
        try:
            self.interpreter = Interpreter(model_path=path, num_threads=threads)
        except (ValueError, RuntimeError) as error:
            raise _unloadable(path, error) from error
        details = self.interpreter.get_input_details()
        shapes = {detail["index"]: fixed_shape(detail, path) for detail in details}
        try:
            for detail in details:
                if -1 in [int(d) for d in detail.get("shape_signature", ())]:
                    self.interpreter.resize_tensor_input(detail["index"], list(shapes[detail["index"]]))
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as error:
            raise _unloadable(path, error) from error
        rng = np.random.default_rng(seed)
        self.inputs = []
        for detail in sorted(self.interpreter.get_input_details(), key=lambda d: d["index"]):
            value = random_input(detail, rng)
            self.interpreter.set_tensor(detail["index"], value)
            self.inputs.append(value)

    def invoke(self) -> None:
        """Runs the model once on its inputs."""
        self.interpreter.invoke()


def run_local(paths, *, threads, runs, warmup, seed=0) -> tuple:
    """Times `paths` interleaved with LiteRT here; returns (timings, details).

    Arguments are assumed checked (see `tfsparse.bench.bench`).

    Example:

    >>> import os, pathlib, tempfile, keras, tensorflow as tf
    >>> from tfsparse.bench.local import run_local
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> directory = tempfile.mkdtemp()
    >>> model.export(directory, format="tf_saved_model", verbose=False)
    >>> path = os.path.join(directory, "m.tflite")
    >>> _ = pathlib.Path(path).write_bytes(tf.lite.TFLiteConverter.from_saved_model(directory).convert())
    >>> timings, details = run_local([path], threads=1, runs=3, warmup=1)
    >>> len(timings[0].times_ms), details["machine"] == __import__("platform").machine()
    (3, True)
    """
    from importlib import metadata

    models = [LocalModel(path, threads=threads, seed=seed) for path in paths]
    times = interleaved([m.invoke for m in models], runs=runs, warmup=warmup, labels=list(paths))
    try:
        runtime = f"ai-edge-litert {metadata.version('ai-edge-litert')}"
    except metadata.PackageNotFoundError:
        runtime = "ai-edge-litert"
    details = {"runtime": runtime, "machine": platform.machine()}
    return tuple(ModelTiming(path, tuple(t)) for path, t in zip(paths, times)), details
