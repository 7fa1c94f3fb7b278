"""Expert importance criteria: one score per expert, higher means keep.

Each criterion is a function `criterion(stats) -> np.ndarray of shape [E]`
of an `ExpertStatistics` (sums over a window of recent training batches):

- `"frequency"`: the fraction of routing assignments that went to the
  expert (tokens x `top_k` in all);
- `"gate"`: its mean gate over all tokens, the gate-weighted frequency of
  Chen et al. 2022 ("Task-specific expert pruning for sparse MoE");
- `"reap"`: the mean of `gate * ||expert output||` over the tokens routed to
  it (router-weighted expert activation, as in REAP, Lasby et al. 2025);
- `"weight_l1"`: the L1 norm of its weights (the only one that needs no
  routing statistics).

`get(identifier)` accepts a name, a callable, a list of those (equal
weights) or a dict `{name or callable: weight}`; several criteria are
combined as the weighted sum of each score divided by its largest absolute
value over the kept experts, so no criterion dominates by its scale.

Example:

>>> import numpy as np
>>> from tfsparse_moe.criteria import ExpertStatistics, get
>>> stats = ExpertStatistics(tokens=10.0, routed=np.array([8.0, 2.0, 10.0]), gate=np.array([3.0, 1.0, 6.0]),
...                          output_norm=np.array([4.0, 4.0, 6.0]), weight_l1=np.array([2.0, 1.0, 3.0]), top_k=2)
>>> get("frequency")(stats).tolist()
[0.4, 0.1, 0.5]
>>> get({"gate": 1.0, "weight_l1": 1.0})(stats).round(3).tolist()
[1.167, 0.5, 2.0]
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class ExpertStatistics:
    """Per-expert statistics of one MoE layer, summed over recent batches.

    Attributes:
        tokens: Tokens seen (padding excluded).
        routed: `[E]` tokens routed to each expert.
        gate: `[E]` summed gates.
        output_norm: `[E]` summed `gate * ||expert output||`.
        weight_l1: `[E]` L1 norm of each expert's weights.
        top_k: Experts per token.
        kept: `[E]` booleans, the experts still kept (all by default).
        batches: Batches summed. Defaults to `0`.
    """

    tokens: float
    routed: np.ndarray
    gate: np.ndarray
    output_norm: np.ndarray
    weight_l1: np.ndarray
    top_k: int
    kept: np.ndarray = None
    batches: int = 0

    def __post_init__(self):
        if self.kept is None:
            object.__setattr__(self, "kept", np.ones(len(self.weight_l1), bool))

    @property
    def frequency(self) -> np.ndarray:
        """`routed / (tokens * top_k)`: each expert's share of the routing assignments."""
        return np.asarray(self.routed, np.float64) / max(self.tokens * self.top_k, 1e-12)


def frequency(stats):
    """Share of the routing assignments (tokens x top_k) that went to each expert."""
    return stats.frequency


def gate(stats):
    """Mean gate over all tokens (gate-weighted frequency, Chen et al. 2022)."""
    return np.asarray(stats.gate, np.float64) / max(stats.tokens, 1e-12)


def reap(stats):
    """Mean `gate * ||expert output||` over the tokens routed to each expert (0 if none)."""
    routed = np.asarray(stats.routed, np.float64)
    return np.where(routed > 0, np.asarray(stats.output_norm, np.float64) / np.maximum(routed, 1e-12), 0.0)


def weight_l1(stats):
    """L1 norm of each expert's weights."""
    return np.asarray(stats.weight_l1, np.float64)


CRITERIA = {"frequency": frequency, "gate": gate, "reap": reap, "weight_l1": weight_l1}
#: Criteria that read nothing but the weights: usable before any statistics are collected.
WEIGHT_ONLY = ("weight_l1",)


class Criterion:
    """A weighted combination of criteria; call it on `ExpertStatistics`.

    Attributes:
        terms: `((name or callable, weight), ...)`.
    """

    def __init__(self, terms):
        self.terms = tuple(terms)

    @property
    def needs_statistics(self) -> bool:
        """Whether any term reads routing statistics (every callable is assumed to)."""
        return any(not (isinstance(term, str) and term in WEIGHT_ONLY) for term, _ in self.terms)

    def __call__(self, stats) -> np.ndarray:
        functions = [(CRITERIA[t] if isinstance(t, str) else t, w) for t, w in self.terms]
        if len(functions) == 1:
            return np.asarray(functions[0][0](stats), np.float64) * functions[0][1]
        total = np.zeros(len(stats.kept), np.float64)
        for function, weight in functions:
            score = np.asarray(function(stats), np.float64)
            scale = np.abs(score[stats.kept]).max() if stats.kept.any() else 0.0
            total += weight * (score / scale if scale > 0 else np.zeros_like(score))
        return total

    def get_config(self):
        """A JSON-friendly form: a name, or `{name: weight}` (callables cannot be saved)."""
        if any(not isinstance(term, str) for term, _ in self.terms):
            raise ValueError("Invalid value received for argument `criterion`. A callable criterion cannot be "
                             f"saved in a config; use criterion names. Received: criterion={self.terms!r}")
        if len(self.terms) == 1 and self.terms[0][1] == 1.0:
            return self.terms[0][0]
        return {term: weight for term, weight in self.terms}

    def __repr__(self):
        return f"Criterion({self.terms!r})"


def _invalid(value):
    return ValueError(
        "Invalid value received for argument `criterion`. Expected one of "
        f"{sorted(CRITERIA)}, a callable `f(stats) -> scores`, a list of those, or a dict "
        f"{{name: weight}} with weights >= 0 not all zero. Received: criterion={value!r}"
    )


def _term(term):
    if isinstance(term, str) and term in CRITERIA:
        return term
    if callable(term) and not isinstance(term, str):
        return term
    raise _invalid(term)


def get(identifier) -> Criterion:
    """Returns a `Criterion` from a name, callable, list, dict or `Criterion`.

    Raises:
        ValueError: for an unknown name, a negative weight or nothing at all.
    """
    if isinstance(identifier, Criterion):
        return identifier
    if isinstance(identifier, dict):
        terms = []
        for term, weight in identifier.items():
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight >= 0:
                raise _invalid(identifier)
            terms.append((_term(term), float(weight)))
    elif isinstance(identifier, (list, tuple)):
        terms = [(_term(term), 1.0) for term in identifier]
    else:
        terms = [(_term(identifier), 1.0)]
    if not terms or not any(weight > 0 for _, weight in terms):
        raise _invalid(identifier)
    return Criterion(terms)
