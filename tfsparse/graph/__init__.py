"""Channel dependency graph and physical shrink (the shape of Torch-Pruning's DepGraph).

- `trace(model)`: the `ChannelGraph` of a Sequential or Functional model, its
  `Group`s of channels that must be removed together.
- `register_handler(layer_cls, handler)`: teach it a custom layer.
"""

from tfsparse.graph.cost import flops
from tfsparse.graph.graph import ChannelGraph, trace
from tfsparse.graph.group import Group
from tfsparse.graph.handlers import Handler, get_handler, register_handler
from tfsparse.graph.node import ChannelMap, Member
from tfsparse.graph.shrinking import ShrinkPlan, plan_shrink, shrink

__all__ = ["ChannelGraph", "ChannelMap", "Group", "Handler", "Member", "ShrinkPlan", "flops", "get_handler",
           "plan_shrink", "register_handler", "shrink", "trace"]
