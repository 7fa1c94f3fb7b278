"""Emulated aarch64 runtime: XNNPACK's ARM kernels under qemu-user on x86.

On x86 with AVX, XNNPACK keeps its sparse (NCHW) kernels off, so whether a
sparse `.tflite` is faster can only be seen on ARM. This package builds, once,
an arm64 Debian root file system with tflite-runtime (`setup`), reports
whether it is there (`status`), runs its Python under `qemu-aarch64`
(`run_python`), benchmarks on it (the `"arm-emu"` target of
`tfsparse.bench`), tells whether the sparse path fired for a file
(`observe`), and which kernel ran each `FULLY_CONNECTED` of a file
(`observe_fc`). Command line: `tfsparse emulator setup|status`.

Example:

>>> import tempfile
>>> from tfsparse import emulator
>>> emulator.status(tempfile.mkdtemp()).ready
False
"""

from tfsparse.emulator.build import setup
from tfsparse.emulator.errors import EmulatorError
from tfsparse.emulator.qemu import run_python
from tfsparse.emulator.status import EmulatorStatus, status


def __getattr__(name):
    # `observe` imports TensorFlow's flatbuffer schema: loaded on first use only.
    if name in ("Observation", "observe"):
        import importlib

        return getattr(importlib.import_module("tfsparse.emulator.observation"), name)
    if name in ("FcObservation", "observe_fc"):
        import importlib

        return getattr(importlib.import_module("tfsparse.emulator.fc_observation"), name)
    raise AttributeError(f"module 'tfsparse.emulator' has no attribute {name!r}")

__all__ = ["EmulatorError", "EmulatorStatus", "FcObservation", "Observation", "observe", "observe_fc", "run_python",
           "setup", "status"]
