"""`OneShotReport`: what one-shot pruning did to each layer, as fields and a table.

Example:

>>> report = OneShotReport("sparsegpt", 0.5, 128, (LayerResult("fc", "fc/kernel", (16, 8), 0.5, 0.12),))
>>> report["fc"].error, report.sparsity
(0.12, 0.5)
>>> print(report)  # doctest: +NORMALIZE_WHITESPACE
One-shot sparsegpt pruning to 50.0% (128 calibration samples)
layer  weight     shape  sparsity  relative error
-----  ---------  -----  --------  --------------
fc     fc/kernel  16x8   50.0%     0.1200
"""

from __future__ import annotations

import dataclasses
import math


@dataclasses.dataclass(frozen=True)
class LayerResult:
    """One pruned weight.

    Attributes:
        layer: The layer's name.
        weight: The variable's path.
        shape: The kernel's shape.
        sparsity: Fraction of exact zeros in the kernel after pruning.
        error: Relative reconstruction error of the layer's outputs on the
            calibration inputs it saw, `||X W - X W_hat||_F / ||X W||_F`
            (its inputs `X` computed with the earlier layers already pruned).
    """

    layer: str
    weight: str
    shape: tuple
    sparsity: float
    error: float


@dataclasses.dataclass(frozen=True)
class OneShotReport:
    """The result of `tfsparse.oneshot.prune`.

    Attributes:
        method: `"sparsegpt"` or `"magnitude"`.
        target: The requested sparsity.
        samples: Calibration samples used (rows of the first model input).
        layers: `LayerResult`s in the order the layers were pruned.
    """

    method: str
    target: float
    samples: int
    layers: tuple

    def __getitem__(self, name) -> LayerResult:
        """The `LayerResult` of the layer called `name`."""
        for result in self.layers:
            if result.layer == name:
                return result
        raise KeyError(f"No pruned layer named {name!r}; pruned: {[r.layer for r in self.layers]}")

    @property
    def sparsity(self) -> float:
        """Fraction of zeros over every pruned kernel."""
        sizes = [math.prod(r.shape) for r in self.layers]
        total = sum(sizes)
        return sum(r.sparsity * size for r, size in zip(self.layers, sizes)) / total if total else 0.0

    def __str__(self) -> str:
        header = ("layer", "weight", "shape", "sparsity", "relative error")
        rows = [(r.layer, r.weight, "x".join(map(str, r.shape)), f"{r.sparsity:.1%}", f"{r.error:.4f}")
                for r in self.layers]
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
        line = "  ".join(f"{{:<{w}}}" for w in widths)
        return "\n".join([
            f"One-shot {self.method} pruning to {self.target:.1%} ({self.samples} calibration samples)",
            line.format(*header).rstrip(),
            "  ".join("-" * w for w in widths),
            *(line.format(*row).rstrip() for row in rows),
        ])
