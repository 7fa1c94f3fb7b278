"""tfsparse-moe: Mixture-of-Experts layers and expert pruning for tfsparse.

A plugin distribution: it registers the strategy `moe_expert` in the
`tfsparse.strategies` entry-point group, and importing it registers the
`moe_experts` finalizer with `tfsparse.register_finalizer`, which removes
pruned experts physically in `tfsparse.finalize` and `tfsparse.export`.
tfsparse itself never imports it. Import it before loading a `.keras` file
with `MoE` layers.

- `MoE`: the mixture-of-experts feed-forward layer (`tfsparse_moe.layer`).
- `MoEExpertPruning` (`moe_expert`): progressive expert pruning.
- `remove_pruned_experts`: the finalizer.
- `load_movie_reviews`, `Vocabulary`, `moe_text_classifier`,
  `train_reference`, `train_bow_baseline`: the sentiment reference model.

Example:

>>> import tfsparse, tfsparse_moe
>>> tfsparse.get_strategy("moe_expert") is tfsparse_moe.MoEExpertPruning
True
>>> "moe_experts" in tfsparse.deploy.list_finalizers()
True
"""

from tfsparse_moe.criteria import ExpertStatistics
from tfsparse_moe.expert_report import ExpertLayerReport, format_report
from tfsparse_moe.layer import MoE
from tfsparse_moe.removal import remove_pruned_experts
from tfsparse_moe.strategy import MoEExpertPruning, find_moe_layers
from tfsparse_moe.text_model import TokenAndPositionEmbedding, moe_text_classifier
from tfsparse_moe.tokenizer import Vocabulary
from tfsparse_moe.vader import load_movie_reviews

_LAZY = {  # imported on first use, so that `python -m tfsparse_moe.reference` runs it fresh
    "train_bow_baseline": "tfsparse_moe.reference",
    "train_reference": "tfsparse_moe.reference",
}

__version__ = "0.1.0"

__all__ = [
    "ExpertLayerReport",
    "ExpertStatistics",
    "MoE",
    "MoEExpertPruning",
    "TokenAndPositionEmbedding",
    "Vocabulary",
    "find_moe_layers",
    "format_report",
    "load_movie_reviews",
    "moe_text_classifier",
    "remove_pruned_experts",
    "train_bow_baseline",
    "train_reference",
]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tfsparse_moe' has no attribute {name!r}")


def __dir__():
    return __all__
