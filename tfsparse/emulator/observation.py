"""`observe(path)`: did XNNPACK's sparse path fire for a sparse-encoded `.tflite`?

A dense twin of the file (`tfsparse.emulator.densify.densify_all`: the same
weights, stored dense) and the file itself run once each under emulated
aarch64 XNNPACK on identical seeded inputs. The sparse (NCHW) kernels
accumulate in another order than the dense ones, so if the path fired the
outputs differ in the last bits; if it did not, both files run the same
dense kernels on the same values and the outputs are bit-identical (see
`shared/design/xnnpack-sparse.md`). A file with no sparse-encoded weight is
not eligible.

Example:

>>> from tfsparse.emulator.observation import Observation
>>> print(Observation("m.tflite", eligible=False, fired=False, reason="not eligible: no sparse-encoded weights"))
m.tflite: not eligible: no sparse-encoded weights
"""

from __future__ import annotations

import base64
import dataclasses
import os
import tempfile

import numpy as np

from tfsparse.emulator.densify import densify_all, sparse_tensor_names

#: The reason given for a file without sparse-encoded weights.
NOT_ELIGIBLE = "not eligible: no sparse-encoded weights"


@dataclasses.dataclass(frozen=True)
class Observation:
    """Whether XNNPACK's sparse path fired for one `.tflite` file.

    Attributes:
        path: The `.tflite` file.
        eligible: Whether it has sparse-encoded weights at all.
        fired: Whether the outputs differ from its dense twin's (the sparse
            path ran).
        reason: One line saying which, and why.
        max_abs_diff: Largest absolute difference between the outputs of the
            file and of its dense twin (`None` when not run).
        output_scale: Largest absolute output of the dense twin, to judge
            `max_abs_diff` against (`None` when not run).
        sparse_tensors: Names of its sparse-encoded tensors.
        runtime: The emulated runtime that ran it.
        conclusive: `False` when the outputs could not show it: bit-identical
            outputs that are also constant (an untrained network whose
            activations vanish gives the same output for any input, whichever
            kernels ran).
    """

    path: str
    eligible: bool
    fired: bool
    reason: str
    max_abs_diff: float | None = None
    output_scale: float | None = None
    sparse_tensors: tuple = ()
    runtime: str | None = None
    conclusive: bool = True

    def to_dict(self) -> dict:
        """The observation as a JSON-compatible dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, config) -> Observation:
        """The inverse of `to_dict` (e.g. for a `BenchResult` saved as JSON).

        Example:

        >>> from tfsparse.emulator.observation import NOT_ELIGIBLE, Observation
        >>> observation = Observation("m.tflite", eligible=True, fired=True, reason="fired",
        ...                           max_abs_diff=1e-6, output_scale=2.0, sparse_tensors=("w",))
        >>> Observation.from_dict(observation.to_dict()) == observation
        True
        """
        names = {field.name for field in dataclasses.fields(cls)}
        values = {key: value for key, value in config.items() if key in names}
        values["sparse_tensors"] = tuple(values.get("sparse_tensors") or ())
        return cls(**values)

    def __str__(self):
        return f"{self.path}: {self.reason}"


def _array(output) -> np.ndarray:
    return np.frombuffer(base64.b64decode(output["base64"]), dtype=np.dtype(output["dtype"])).reshape(output["shape"])


def compare_outputs(sparse_outputs, dense_outputs) -> tuple:
    """`(bit_identical, max_abs_diff, output_scale)` of two output lists from `emulated_runner.py`.

    Example:

    >>> import base64, numpy as np
    >>> from tfsparse.emulator.observation import compare_outputs
    >>> def out(values):
    ...     array = np.asarray(values, np.float32)
    ...     return {"dtype": array.dtype.str, "shape": list(array.shape), "sha256": str(hash(array.tobytes())),
    ...             "base64": base64.b64encode(array.tobytes()).decode()}
    >>> compare_outputs([out([1.0, 2.0])], [out([1.0, 2.5])])
    (False, 0.5, 2.5)
    """
    identical, largest, scale = True, 0.0, 0.0
    for sparse, dense in zip(sparse_outputs, dense_outputs, strict=True):
        identical = identical and sparse["sha256"] == dense["sha256"]
        a, b = _array(sparse).astype(np.float64), _array(dense).astype(np.float64)
        if a.size:
            largest = max(largest, float(np.max(np.abs(a - b))))
            scale = max(scale, float(np.max(np.abs(b))))
    return identical, largest, scale


def outputs_are_constant(outputs) -> bool:
    """Whether every output tensor of more than one value holds a single repeated value (so outputs cannot tell
    kernels apart); `False` when no output has more than one value.

    Example:

    >>> import base64, numpy as np
    >>> from tfsparse.emulator.observation import outputs_are_constant
    >>> def out(values):
    ...     array = np.asarray(values, np.float32)
    ...     return {"dtype": array.dtype.str, "shape": list(array.shape), "base64": base64.b64encode(array.tobytes()).decode()}
    >>> outputs_are_constant([out([0.1, 0.1, 0.1])]), outputs_are_constant([out([0.1, 0.2])]), outputs_are_constant([out([0.3])])
    (True, False, False)
    """
    arrays = [array for array in map(_array, outputs) if array.size > 1]
    return bool(arrays) and all(np.unique(array).size <= 1 for array in arrays)


def observe(path, *, threads=1, seed=0, cache_dir=None, timeout=600) -> Observation:
    """Runs `path` and its dense twin under emulation and tells whether the sparse path fired.

    Args:
        path: A `.tflite` file (e.g. from `tfsparse.export(..., target="xnnpack")`).
        threads: Interpreter threads. Defaults to `1`.
        seed: Seed of the random inputs. Defaults to `0`.
        cache_dir: The emulator cache. Defaults to `None`
            (`$TFSPARSE_CACHE_DIR`, else `~/.cache/tfsparse/arm64`).
        timeout: Seconds before qemu is killed. Defaults to `600`.

    Returns:
        An `Observation`.

    Raises:
        ValueError: if `path` is not a `.tflite` file.
        FileNotFoundError: if it does not exist.
        EmulatorError: if the emulator is not set up (naming
            `tfsparse emulator setup`) or the run fails.
    """
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path).lower().endswith(".tflite"):
        raise ValueError("Invalid value received for argument `path`. Expected the path of a .tflite file "
                         f"(export one with `tfsparse export --target=xnnpack`). Received: path={path!r}")
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"The .tflite file {path} (argument `path`) does not exist. Check the path.")
    with open(path, "rb") as file:
        content = file.read()
    names = tuple(sparse_tensor_names(content))
    if not names:
        return Observation(path, eligible=False, fired=False, reason=NOT_ELIGIBLE)
    from tfsparse.emulator.bench_runner import run_emulated

    with tempfile.TemporaryDirectory(prefix="tfsparse-observe-") as directory:
        twin = os.path.join(directory, "dense_twin.tflite")
        with open(twin, "wb") as file:
            file.write(densify_all(content))
        report = run_emulated([path, twin], threads=threads, runs=1, warmup=0, seed=seed, cache_dir=cache_dir,
                              timeout=timeout)
    identical, largest, scale = compare_outputs(report["models"][0]["outputs"], report["models"][1]["outputs"])
    count = f"{len(names)} sparse-encoded tensor{'s' if len(names) != 1 else ''}"
    if identical and outputs_are_constant(report["models"][1]["outputs"]):
        reason = (f"inconclusive: the outputs are constant ({count}), the same for any input whichever kernels run "
                  "(e.g. an untrained network whose activations vanish): recalibrate it (tfsparse.recalibrate) or "
                  "train it, then observe again, or compare timings")
        return Observation(path, eligible=True, fired=False, reason=reason, max_abs_diff=largest, output_scale=scale,
                           sparse_tensors=names, runtime=report.get("runtime"), conclusive=False)
    if identical:
        reason = (f"sparse path not taken: outputs bit-identical to the dense twin ({count}); check the "
                  "XNNPACK rules in shared/design/xnnpack-sparse.md (symmetric padding, batch 1, >2/3 zeros "
                  "over the 1x1 convolutions)")
    else:
        reason = (f"sparse path fired: outputs differ from the dense twin by at most {largest:.3g} "
                  f"(largest output {scale:.3g}; {count})")
    return Observation(path, eligible=True, fired=not identical, reason=reason, max_abs_diff=largest,
                       output_scale=scale, sparse_tensors=names, runtime=report.get("runtime"))
