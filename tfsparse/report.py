"""`sparsity_report(model)`: per-weight zeros, as a table or a dict.

Example:

>>> import keras, tfsparse
>>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, kernel_initializer="zeros")])
>>> report = tfsparse.sparsity_report(model)
>>> report.sparsity, report.to_dict()["rows"][0]["nonzeros"]
(1.0, 0)
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np

from tfsparse import masks
from tfsparse.prunable import prunable_weights


@dataclasses.dataclass(frozen=True)
class WeightSparsity:
    """One row of the report."""

    layer: str
    weight: str
    path: str
    shape: tuple
    size: int
    nonzeros: int
    masked: bool

    @property
    def sparsity(self) -> float:
        return 1.0 - self.nonzeros / self.size if self.size else 0.0


@dataclasses.dataclass(frozen=True)
class SparsityReport:
    """Per-weight sparsity of a model plus totals."""

    model: str
    rows: tuple

    @property
    def size(self) -> int:
        return sum(r.size for r in self.rows)

    @property
    def nonzeros(self) -> int:
        return sum(r.nonzeros for r in self.rows)

    @property
    def sparsity(self) -> float:
        return 1.0 - self.nonzeros / self.size if self.size else 0.0

    def to_dict(self) -> dict:
        """A JSON-serializable dict: rows and totals."""
        rows = [
            {**dataclasses.asdict(r), "shape": list(r.shape), "sparsity": r.sparsity} for r in self.rows
        ]
        return {
            "model": self.model,
            "rows": rows,
            "total": {"size": self.size, "nonzeros": self.nonzeros, "sparsity": self.sparsity},
        }

    def __str__(self) -> str:
        header = ("layer", "weight", "shape", "non-zeros", "sparsity")
        lines = [
            (r.layer, r.weight + (" *" if r.masked else ""), "x".join(map(str, r.shape)),
             f"{r.nonzeros}/{r.size}", f"{r.sparsity:.1%}")
            for r in self.rows
        ]
        lines.append(("TOTAL", "", "", f"{self.nonzeros}/{self.size}", f"{self.sparsity:.1%}"))
        widths = [max(len(str(row[i])) for row in [header, *lines]) for i in range(len(header))]
        fmt = "  ".join(f"{{:<{w}}}" for w in widths)
        out = [f"Sparsity of {self.model} (* = masked by a strategy)", fmt.format(*header)]
        out.append("  ".join("-" * w for w in widths))
        out.extend(fmt.format(*row) for row in lines)
        return "\n".join(out)


def sparsity_report(model, *, weights=None) -> SparsityReport:
    """Measures the exact zeros of `model`'s prunable (and masked) weights.

    Args:
        model: A built Keras model.
        weights: `PrunableWeight`s to report instead of the defaults.
            Defaults to `None` (every prunable weight, plus any weight that
            carries a tfsparse mask).

    Returns:
        A `SparsityReport`; `str(report)` is a table.
    """
    if weights is None:
        weights = prunable_weights(model)
    rows, seen = [], set()
    for w in weights:
        seen.add(id(w.variable))
        rows.append(_row(w.layer.name, w.variable))
    for variable in model.weights:
        if id(variable) not in seen and masks.has_mask(variable):
            rows.append(_row(variable.path.rsplit("/", 2)[-2] if "/" in variable.path else "", variable))
    return SparsityReport(model=model.name, rows=tuple(rows))


def _row(layer_name, variable) -> WeightSparsity:
    value = np.asarray(keras.ops.convert_to_numpy(variable.value))
    return WeightSparsity(
        layer=layer_name,
        weight=variable.name,
        path=variable.path,
        shape=tuple(value.shape),
        size=int(value.size),
        nonzeros=int(np.count_nonzero(value)),
        masked=masks.has_mask(variable),
    )
