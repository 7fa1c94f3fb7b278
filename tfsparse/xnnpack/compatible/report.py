"""What `make_compatible` changed in a model, and what it left alone and why.

Example:

>>> from tfsparse.xnnpack.compatible.report import Change, CompatibilityReport
>>> report = CompatibilityReport("net", [Change("stem", (0, 1, 0, 1), (1, 1, 1, 1), "inserted ZeroPadding2D "
...                                             "'stem_xnnpack_pad', padding='valid'")], [])
>>> print(report)
make_compatible on model 'net': 1 layer(s) rewritten, 0 left alone
  stem: padding (0, 1, 0, 1) -> (1, 1, 1, 1) (top, bottom, left, right): inserted ZeroPadding2D 'stem_xnnpack_pad', padding='valid'
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Change:
    """One rewritten layer: its padding before and after, and how.

    Attributes:
        layer: The layer's name (`"nested_model/layer"` inside a nested model).
        before: Its `(top, bottom, left, right)` padding before the rewrite
            (for `kind="gate scale"`: the constant the gate multiplied by).
        after: Its padding after the rewrite (`kind="gate scale"`: `1.0`).
        how: One line: what was inserted, replaced, merged or folded.
        kind: `"padding"` or `"gate scale"`.
    """

    layer: str
    before: object
    after: object
    how: str
    kind: str = "padding"

    def __str__(self) -> str:
        if self.kind == "padding":
            return f"{self.layer}: padding {self.before} -> {self.after} (top, bottom, left, right): {self.how}"
        return f"{self.layer}: gate scale {self.before:.4g} -> {self.after:g}: {self.how}"


@dataclasses.dataclass(frozen=True)
class Skipped:
    """A layer XNNPACK could not run sparse as it is, left unchanged, and why."""

    layer: str
    reason: str


@dataclasses.dataclass
class CompatibilityReport:
    """What `tfsparse.xnnpack.make_compatible` did to a model.

    Attributes:
        model: The model's name.
        changes: A `Change` per rewritten layer, in graph order.
        skipped: A `Skipped` per layer left alone although XNNPACK's sparse path
            cannot run it as it is.
    """

    model: str
    changes: list
    skipped: list

    @property
    def changed(self) -> bool:
        """Whether the model computes something else now (a layer was rewritten)."""
        return bool(self.changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def __str__(self) -> str:
        lines = [f"make_compatible on model {self.model!r}: {len(self.changes)} layer(s) rewritten, "
                 f"{len(self.skipped)} left alone"]
        lines += [f"  {change}" for change in self.changes]
        lines += [f"  {s.layer}: left alone: {s.reason}" for s in self.skipped]
        return "\n".join(lines)

    def warning_text(self) -> str:
        """The `UserWarning` make_compatible emits (empty when nothing was rewritten or skipped)."""
        lines = []
        padded = [c for c in self.changes if c.kind == "padding"]
        folded = [c for c in self.changes if c.kind != "padding"]
        if padded:
            described = ", ".join(f"'{c.layer}' (padded {c.before}, now {c.after})" for c in padded)
            lines.append(
                f"make_compatible rewrote {len(padded)} layer(s) of model {self.model!r} with symmetric "
                f"explicit padding for XNNPACK's sparse path: {described}. This shifts their sampling grid by one "
                "pixel and changes the model's outputs: apply make_compatible before pruning and fine-tuning (and "
                "fine-tune after it).")
        if folded:
            described = ", ".join(f"'{c.layer}'" for c in folded)
            lines.append(f"Folded the constant scale of {len(folded)} squeeze-and-excitation gate(s) into the next "
                         f"layers' kernels (the same function): {described}.")
        if self.skipped:
            described = "; ".join(f"'{s.layer}': {s.reason}" for s in self.skipped)
            lines.append(f"Not rewritten, so XNNPACK's sparse path cannot run them: {described}.")
        return " ".join(lines)
