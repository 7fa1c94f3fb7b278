"""`BenchResult`: latencies of one or two `.tflite` files, and their ratio.

Example:

>>> from tfsparse.bench import BenchResult, ModelTiming
>>> result = BenchResult(
...     models=(ModelTiming("sparse.tflite", (1.0, 2.0, 3.0)), ModelTiming("dense.tflite", (4.0, 5.0, 6.0))),
...     target="local", threads=1, runs=3, warmup=1)
>>> result.speedup
2.5
>>> print(result)  # doctest: +NORMALIZE_WHITESPACE
LiteRT latency (local, 1 thread, 3 interleaved runs after 1 warm-up run per model)
model          median ms  min ms  max ms
sparse.tflite  2.000      1.000   3.000
dense.tflite   5.000      4.000   6.000
speedup of sparse.tflite vs dense.tflite: 2.50x
  (dense.tflite median / sparse.tflite median; > 1 means sparse.tflite is faster)
"""

from __future__ import annotations

import dataclasses
import os
import statistics

SPEEDUP_DEFINITION = "compare median / path median; > 1 means path is faster"


@dataclasses.dataclass(frozen=True)
class ModelTiming:
    """The timed invokes of one model.

    Attributes:
        path: The `.tflite` file.
        times_ms: Each timed invoke in milliseconds, in run order.
    """

    path: str
    times_ms: tuple

    @property
    def median_ms(self) -> float:
        return float(statistics.median(self.times_ms))

    @property
    def min_ms(self) -> float:
        return float(min(self.times_ms))

    @property
    def max_ms(self) -> float:
        return float(max(self.times_ms))

    def to_dict(self) -> dict:
        return {"path": self.path, "median_ms": self.median_ms, "min_ms": self.min_ms, "max_ms": self.max_ms,
                "runs": len(self.times_ms), "times_ms": list(self.times_ms)}

    @classmethod
    def from_dict(cls, config) -> ModelTiming:
        """The inverse of `to_dict` (the derived statistics are recomputed)."""
        return cls(path=config["path"], times_ms=tuple(float(t) for t in config["times_ms"]))


@dataclasses.dataclass(frozen=True)
class BenchResult:
    """What `tfsparse.bench.bench` measured.

    Attributes:
        models: `ModelTiming` of `path`, then of `compare` if given.
        target: Where it ran (`"local"`).
        threads: Interpreter threads.
        runs: Timed invokes per model.
        warmup: Untimed invokes per model before timing.
        details: Extra facts about the runner (runtime version, machine).
    """

    models: tuple
    target: str
    threads: int
    runs: int
    warmup: int
    details: dict = dataclasses.field(default_factory=dict)

    @property
    def speedup(self) -> float | None:
        """`compare` median / `path` median: above 1 when `path` is faster; `None` without `compare`."""
        if len(self.models) < 2:
            return None
        model, compare = self.models[:2]
        return compare.median_ms / model.median_ms if model.median_ms > 0 else float("inf")

    def _labels(self):
        names = [os.path.basename(m.path) for m in self.models]
        return names if len(set(names)) == len(names) else [m.path for m in self.models]

    def __str__(self):
        labels = self._labels()
        header = ("model", "median ms", "min ms", "max ms")
        rows = [(label, f"{m.median_ms:.3f}", f"{m.min_ms:.3f}", f"{m.max_ms:.3f}")
                for label, m in zip(labels, self.models)]
        widths = [max(len(row[c]) for row in [header, *rows]) for c in range(4)]
        lines = [
            f"LiteRT latency ({self.target}, {self.threads} thread{'s' * (self.threads != 1)}, {self.runs} "
            f"{'interleaved ' * (len(self.models) > 1)}run{'s' * (self.runs != 1)} after {self.warmup} warm-up "
            f"run{'s' * (self.warmup != 1)} per model)",
            *("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [header, *rows]),
        ]
        if self.speedup is not None:
            lines.append(
                f"speedup of {labels[0]} vs {labels[1]}: {self.speedup:.2f}x\n  ({labels[1]} median / "
                f"{labels[0]} median; > 1 means {labels[0]} is faster)"
            )
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """A JSON-ready dict; `speedup` is `compare` median / `path` median."""
        return {
            "target": self.target, "threads": self.threads, "runs": self.runs, "warmup": self.warmup,
            "models": [m.to_dict() for m in self.models],
            "speedup": self.speedup,
            "speedup_definition": None if self.speedup is None else SPEEDUP_DEFINITION,
            **({"details": dict(self.details)} if self.details else {}),
        }

    @classmethod
    def from_dict(cls, config) -> BenchResult:
        """The inverse of `to_dict`, e.g. for a result saved as JSON.

        Example:

        >>> import json
        >>> from tfsparse.bench import BenchResult, ModelTiming
        >>> result = BenchResult(models=(ModelTiming("a.tflite", (1.5,)),), target="local", threads=1, runs=1,
        ...                      warmup=0)
        >>> BenchResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result
        True
        """
        return cls(
            models=tuple(ModelTiming.from_dict(m) for m in config["models"]), target=config["target"],
            threads=config["threads"], runs=config["runs"], warmup=config["warmup"],
            details=dict(config.get("details", {})),
        )
