"""`tfsparse.deploy`: finalize, convert, verify and inspect `.tflite` files.

- `finalize(model)`: the deployable copy (no masks; strategies' finalizers
  applied), registered with `register_finalizer`.
- `export(model, path, target=...)`: a verified `.tflite` file
  (`dense`, `sparse`, `xnnpack`, `int8`), returns an `ExportResult`;
  `xnnpack` is refused (`IneligibleError`) when XNNPACK's sparse path
  would not fire, unless `allow_ineligible=True`.
- `inspect_tflite(path)`: operators, tensors and sparse encodings of a file.

TensorFlow is imported only by `export` (and the modules it uses), so
`finalize` and `inspect_tflite` stay light. `export` works on every Keras
backend: on JAX or PyTorch it converts in a TensorFlow-backend subprocess
(`tfsparse.deploy.cross_backend`) and verifies the file against the model
on the current backend.

Example:

>>> import os, tempfile, keras
>>> from tfsparse.deploy import export, inspect_tflite
>>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
>>> path = os.path.join(tempfile.mkdtemp(), "model.tflite")
>>> result = export(model, path, target="dense")
>>> inspect_tflite(path).op_counts
{'FULLY_CONNECTED': 1}
"""

import importlib

from tfsparse.deploy.errors import ExportError, IneligibleError, VerificationError
from tfsparse.deploy.finalize import finalize, list_finalizers, register_finalizer, unregister_finalizer
from tfsparse.deploy.result import ExportResult
from tfsparse.deploy.tflite_file import TensorInfo, TfliteSummary, inspect_tflite

_LAZY = {
    "export": "tfsparse.deploy.convert",
    "Verification": "tfsparse.deploy.verify",
    "verify_tflite": "tfsparse.deploy.verify",
}

__all__ = [
    "ExportError",
    "ExportResult",
    "IneligibleError",
    "TensorInfo",
    "TfliteSummary",
    "Verification",
    "VerificationError",
    "export",
    "finalize",
    "inspect_tflite",
    "list_finalizers",
    "register_finalizer",
    "unregister_finalizer",
    "verify_tflite",
]


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tfsparse.deploy' has no attribute {name!r}")


def __dir__():
    return __all__
