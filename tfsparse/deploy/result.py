"""`ExportResult`: what `tfsparse.export` wrote and how it checked it.

Example:

>>> from tfsparse.deploy import ExportResult
>>> result = ExportResult(path="m.tflite", target="sparse", size_bytes=500,
...                       dense_fp32_bytes=2000, sparse_tensors=("w",))
>>> result.compression, result.to_dict()["sparse_tensors"]
(4.0, ['w'])
"""

from __future__ import annotations

import dataclasses
import json


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """The outcome of one export.

    Attributes:
        path: The `.tflite` file written.
        target: The export target (`dense`, `sparse`, `xnnpack`, `int8`).
        size_bytes: The size of the file written.
        dense_fp32_bytes: The size of a plain dense float32 conversion of the
            same model (measured: converted in memory, not written).
        sparse_tensors: Names of the tensors stored sparse-encoded.
        densified_tensors: `{name: reason}` for the tensors the converter
            encoded sparse that were stored dense instead: sparse was not
            smaller, or the runtime cannot run it (see
            `tfsparse.deploy.encoding`).
        operators: `(op_name, count)` pairs of the file.
        input_shapes: `{input_name: shape}` of the file (-1 = dynamic).
        verification: The `Verification` figures, or `None` if not verified.
        xnnpack_lint: For target `xnnpack`, `tfsparse.xnnpack.lint`'s verdict
            on the file: `{"fires": bool, "reasons": [str, ...]}` (`fires`
            is `False` only when exported with `allow_ineligible=True`);
            `None` for the other targets.
        fc_lint: For targets `sparse-fc` and `sparse-fc-int8`,
            `tfsparse.sparse_fc.lint`'s verdict on the file: `{"fires":
            bool, "kernel": the target's kernel, "runtime": name, "reasons":
            [str, ...], "ops": [{"index", "weight", "kernel", "reasons"},
            ...]}` (`fires`: at least one `FULLY_CONNECTED` runs `kernel`
            and none is `unsupported`; `False` only with
            `allow_ineligible=True`); `None` for the other targets.
    """

    path: str
    target: str
    size_bytes: int
    dense_fp32_bytes: int
    sparse_tensors: tuple = ()
    densified_tensors: dict = dataclasses.field(default_factory=dict)
    operators: tuple = ()
    input_shapes: dict = dataclasses.field(default_factory=dict)
    verification: object = None
    xnnpack_lint: dict | None = None
    fc_lint: dict | None = None

    @property
    def compression(self) -> float:
        """`dense_fp32_bytes / size_bytes` (higher is smaller)."""
        return self.dense_fp32_bytes / self.size_bytes if self.size_bytes else 0.0

    def to_dict(self) -> dict:
        """A JSON-serializable dict of the result."""
        return {
            "path": self.path,
            "target": self.target,
            "size_bytes": self.size_bytes,
            "dense_fp32_bytes": self.dense_fp32_bytes,
            "compression": self.compression,
            "sparse_tensors": list(self.sparse_tensors),
            "densified_tensors": dict(self.densified_tensors),
            "operators": dict(self.operators),
            "input_shapes": {k: list(v) for k, v in self.input_shapes.items()},
            "verification": None if self.verification is None else self.verification.to_dict(),
            "xnnpack_lint": None if self.xnnpack_lint is None else {
                "fires": bool(self.xnnpack_lint["fires"]), "reasons": list(self.xnnpack_lint["reasons"])},
            "fc_lint": None if self.fc_lint is None else _jsonable(self.fc_lint),
        }

    def __str__(self) -> str:
        rows = [
            ("file", self.path),
            ("target", self.target),
            ("size", f"{self.size_bytes:,} bytes ({self.size_bytes / max(self.dense_fp32_bytes, 1):.1%} "
                     f"of dense float32: {self.dense_fp32_bytes:,} bytes)"),
            ("sparse tensors", f"{len(self.sparse_tensors)}"
                               + (f" ({len(self.densified_tensors)} more stored dense, see densified_tensors)"
                                  if self.densified_tensors else "")),
            ("operators", ", ".join(f"{name} x{count}" for name, count in self.operators)),
            ("inputs", ", ".join(f"{k} {list(v)}" for k, v in self.input_shapes.items())),
            ("verification", "skipped" if self.verification is None else str(self.verification)),
        ]
        if self.xnnpack_lint is not None:
            rows.append(("XNNPACK sparse", "predicted to fire" if self.xnnpack_lint["fires"] else
                         "will NOT fire: " + "; ".join(self.xnnpack_lint["reasons"])))
        if self.fc_lint is not None:
            runs = sum(op["kernel"] == self.fc_lint["kernel"] for op in self.fc_lint["ops"])
            rows.append(("sparse FC", f"{runs} of {len(self.fc_lint['ops'])} FULLY_CONNECTED run "
                                      f"{self.fc_lint['kernel']} on {self.fc_lint['runtime']}" if self.fc_lint["fires"]
                         else f"will NOT run {self.fc_lint['kernel']}: " + "; ".join(self.fc_lint["reasons"])))
        width = max(len(label) for label, _ in rows)
        return "\n".join(f"{label.ljust(width)}  {value}" for label, value in rows)


def _jsonable(value):
    """A deep copy of a dict of JSON types (lists, not tuples)."""
    return json.loads(json.dumps(value))
