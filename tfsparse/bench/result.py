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

On the emulated target the table says so, and `observations` (from
`bench(..., target="arm-emu")`) tell whether XNNPACK's sparse path fired:

>>> import dataclasses
>>> from tfsparse.emulator import Observation
>>> print(dataclasses.replace(result, target="arm-emu", observations=(
...     Observation("sparse.tflite", eligible=True, fired=True, reason="sparse path fired", max_abs_diff=3.1e-6),
...     Observation("dense.tflite", eligible=False, fired=False,
...                 reason="not eligible: no sparse-encoded weights"))))  # doctest: +NORMALIZE_WHITESPACE
Emulated aarch64 tflite-runtime XNNPACK latency (arm-emu, 1 thread, 3 interleaved runs after 1 warm-up run per
model)
model          median ms  min ms  max ms
sparse.tflite  2.000      1.000   3.000
dense.tflite   5.000      4.000   6.000
speedup of sparse.tflite vs dense.tflite: 2.50x
  (dense.tflite median / sparse.tflite median; > 1 means sparse.tflite is faster)
Emulated (qemu) ratios overstate real devices.
XNNPACK sparse path: sparse.tflite fired (outputs differ from its dense twin by 3.1e-06); dense.tflite not
eligible: no sparse-encoded weights
"""

from __future__ import annotations

import dataclasses
import os
import statistics

SPEEDUP_DEFINITION = "compare median / path median; > 1 means path is faster"
#: Printed with every emulated figure (see the benchmarks design notes).
EMULATED_NOTE = "Emulated (qemu) ratios overstate real devices."


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
        observations: Whether XNNPACK's sparse path fired, one
            `tfsparse.emulator.Observation` per model (same order as
            `models`), or `()` when not observed (see `bench(observe=...)`).
    """

    models: tuple
    target: str
    threads: int
    runs: int
    warmup: int
    details: dict = dataclasses.field(default_factory=dict)
    observations: tuple = ()

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

    @property
    def emulated(self) -> bool:
        """Whether the times come from an emulated CPU (`"arm-emu"`)."""
        return self.target == "arm-emu"

    def _what(self) -> str:
        """What was timed, for the table's title."""
        if self.emulated:
            return "Emulated aarch64 tflite-runtime XNNPACK latency"
        if self.target == "adb" or self.target.startswith("adb:"):
            device = self.details.get("device") or self.target.partition(":")[2] or "an Android device"
            return f"benchmark_model on {device} latency"
        if self.target == "local":
            return "LiteRT latency"
        return "Latency"

    def _observation_line(self, labels) -> str:
        parts, seen = [], set()
        for label, observation in zip(labels, self.observations):
            if label in seen:
                continue
            seen.add(label)
            if observation.fired:
                difference = ("" if observation.max_abs_diff is None else
                              f" by {observation.max_abs_diff:.2g}")
                parts.append(f"{label} fired (outputs differ from its dense twin{difference})")
            elif observation.eligible and observation.conclusive:
                parts.append(f"{label} not taken (outputs bit-identical to its dense twin)")
            else:
                parts.append(f"{label} {observation.reason}")
        return "XNNPACK sparse path: " + "; ".join(parts)

    def __str__(self):
        labels = self._labels()
        header = ("model", "median ms", "min ms", "max ms")
        rows = [(label, f"{m.median_ms:.3f}", f"{m.min_ms:.3f}", f"{m.max_ms:.3f}")
                for label, m in zip(labels, self.models)]
        widths = [max(len(row[c]) for row in [header, *rows]) for c in range(4)]
        lines = [
            f"{self._what()} ({self.target}, {self.threads} thread{'s' * (self.threads != 1)}, {self.runs} "
            f"{'interleaved ' * (len(self.models) > 1)}run{'s' * (self.runs != 1)} after {self.warmup} warm-up "
            f"run{'s' * (self.warmup != 1)} per model)",
            *("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [header, *rows]),
        ]
        if self.speedup is not None:
            lines.append(
                f"speedup of {labels[0]} vs {labels[1]}: {self.speedup:.2f}x\n  ({labels[1]} median / "
                f"{labels[0]} median; > 1 means {labels[0]} is faster)"
            )
        if self.emulated:
            lines.append(EMULATED_NOTE)
        if self.observations:
            lines.append(self._observation_line(labels))
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """A JSON-ready dict; `speedup` is `compare` median / `path` median."""
        return {
            "target": self.target, "threads": self.threads, "runs": self.runs, "warmup": self.warmup,
            "models": [m.to_dict() for m in self.models],
            "speedup": self.speedup,
            "speedup_definition": None if self.speedup is None else SPEEDUP_DEFINITION,
            **({"details": dict(self.details)} if self.details else {}),
            "observations": [o.to_dict() for o in self.observations],
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
        observations = ()
        if config.get("observations"):
            from tfsparse.emulator.observation import Observation  # imports TensorFlow's schema: only if needed

            observations = tuple(Observation.from_dict(o) for o in config["observations"])
        return cls(
            models=tuple(ModelTiming.from_dict(m) for m in config["models"]), target=config["target"],
            threads=config["threads"], runs=config["runs"], warmup=config["warmup"],
            details=dict(config.get("details", {})), observations=observations,
        )
