"""tfsparse: sparsity and pruning for Keras 3 with TFLite export.

Example:

>>> import tfsparse
>>> "gmp" in [s.name for s in tfsparse.list_strategies()]
True

The public names are imported on first use, so `import tfsparse` stays cheap
and an export-only dependency is not loaded by training code.
"""

import importlib

__version__ = "0.1.0"

_LAZY = {
    "Strategy": "tfsparse.strategy",
    "get_strategy": "tfsparse.registry",
    "list_strategies": "tfsparse.registry",
    "register_strategy": "tfsparse.registry",
    "register_prunable": "tfsparse.prunable",
    "prunable_weights": "tfsparse.prunable",
    "select_weights": "tfsparse.selection",
    "sparsity_report": "tfsparse.report",
    "SparsityReport": "tfsparse.report",
    "finalize": "tfsparse.deploy",
    "register_finalizer": "tfsparse.deploy",
    "ExportError": "tfsparse.deploy",
    "IneligibleError": "tfsparse.deploy",
    "export": "tfsparse.deploy",
    "ExportResult": "tfsparse.deploy",
    "inspect_tflite": "tfsparse.deploy",
    "flops": "tfsparse.graph.cost",
    "shrink": "tfsparse.graph",
    "recalibrate": "tfsparse.recalibration",
    "RecalibrateBatchNorm": "tfsparse.recalibration",
    "Distiller": "tfsparse.distillation",
    "RecoverySchedule": "tfsparse.learning_rate",
}
_SUBMODULES = ("masks", "schedules", "data", "registry", "selection", "prunable", "strategies", "bench", "deploy",
               "xnnpack", "layers", "graph", "oneshot", "training", "allocation")

__all__ = sorted([*_LAZY, *_SUBMODULES])


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"tfsparse.{name}")
    else:
        raise AttributeError(f"module 'tfsparse' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return __all__
