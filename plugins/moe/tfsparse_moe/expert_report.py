"""`ExpertLayerReport`: per-expert statistics and pruning decisions of one MoE layer.

`MoEExpertPruning.report()` returns one per selected layer; `format_report`
prints them as a table, `to_dict()` gives JSON-friendly values.

Example:

>>> import numpy as np
>>> from tfsparse_moe.expert_report import ExpertLayerReport, format_report
>>> row = ExpertLayerReport(layer="moe", num_experts=2, target=1, kept=[True, False], score=[0.7, 0.3],
...                         frequency=[0.7, 0.3], gate=[0.6, 0.2], reap=[1.0, 0.5], weight_l1=[3.0, 0.0],
...                         pruned_at=[None, 10], merged_into=[None, 0], tokens=100.0, batches=5)
>>> print(format_report([row]))
layer moe: 1 of 2 experts kept (target 1), statistics over 5 batches (100 tokens)
expert  kept  score   frequency  gate    reap    weight_l1  pruned at  merged into
------  ----  ------  ---------  ------  ------  ---------  ---------  -----------
0       yes   0.7000  0.7000     0.6000  1.0000  3.0000     -          -
1       no    0.3000  0.3000     0.2000  0.5000  0.0000     10         0
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class ExpertLayerReport:
    """Per-expert values of one MoE layer (lists indexed by expert).

    Attributes:
        layer: Layer name.
        num_experts: Experts in the layer (kept or not).
        target: Experts it keeps at the end of the schedule.
        kept: Whether each expert is kept.
        score: The criterion's score (higher is more important).
        frequency: Share of the routing assignments.
        gate: Mean gate over all tokens.
        reap: Mean `gate * ||output||` over the tokens routed to it.
        weight_l1: L1 norm of its weights.
        pruned_at: Step at which it was pruned, or `None`.
        merged_into: The expert it was merged into, or `None`.
        tokens: Tokens in the statistics window.
        batches: Batches in the statistics window.
    """

    layer: str
    num_experts: int
    target: int
    kept: list
    score: list
    frequency: list
    gate: list
    reap: list
    weight_l1: list
    pruned_at: list
    merged_into: list
    tokens: float
    batches: int

    @classmethod
    def build(cls, layer, stats, criterion, target, events):
        """The report of `layer` from its `ExpertStatistics`, criterion and `(step, expert, merged into)` events."""
        from tfsparse_moe import criteria

        pruned_at, merged_into = [None] * layer.num_experts, [None] * layer.num_experts
        for step, expert, into in events:
            pruned_at[expert], merged_into[expert] = step, into
        values = {name: np.asarray(function(stats), float).round(6).tolist()
                  for name, function in criteria.CRITERIA.items()}
        return cls(layer=layer.name, num_experts=layer.num_experts, target=target, kept=stats.kept.tolist(),
                   score=np.asarray(criterion(stats), float).round(6).tolist(), pruned_at=pruned_at,
                   merged_into=merged_into, tokens=float(stats.tokens), batches=int(stats.batches), **values)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _cell(value):
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def format_report(reports) -> str:
    """A text table per layer."""
    header = ("expert", "kept", "score", "frequency", "gate", "reap", "weight_l1", "pruned at", "merged into")
    blocks = []
    for report in reports:
        rows = [tuple(_cell(v) for v in (e, report.kept[e], report.score[e], report.frequency[e], report.gate[e],
                                         report.reap[e], report.weight_l1[e], report.pruned_at[e],
                                         report.merged_into[e])) for e in range(report.num_experts)]
        widths = [max(len(row[c]) for row in [header, *rows]) for c in range(len(header))]
        fmt = "  ".join(f"{{:<{w}}}" for w in widths)
        title = (f"layer {report.layer}: {sum(report.kept)} of {report.num_experts} experts kept (target "
                 f"{report.target}), statistics over {report.batches} batches ({report.tokens:.0f} tokens)")
        lines = [title, fmt.format(*header), "  ".join("-" * w for w in widths), *(fmt.format(*r) for r in rows)]
        blocks.append("\n".join(line.rstrip() for line in lines))
    return "\n\n".join(blocks)
