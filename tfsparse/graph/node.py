"""What the channel graph knows about one tensor and one weight.

A *channel atom* is one output channel of one *source* (a layer that makes new
channels: a convolution's filters, a Dense layer's units, an Embedding's
dimensions, a model input). Every tensor's last (channel) axis is described by
a `ChannelMap`: which atom each position carries, and the constant value the
position holds when its atom is pruned (0 after a masked filter; `f(0)` after
an activation with `f(0) != 0`). A `Member` is one axis of one weight indexed
by atoms: pruning an atom slices (and while training, masks) those positions.

Example:

>>> import numpy as np
>>> from tfsparse.graph.node import ChannelMap
>>> cmap = ChannelMap(np.array([4, 5, 6]))
>>> cmap.tile(2).atoms.tolist(), cmap.repeat(2).atoms.tolist()
([4, 5, 6, 4, 5, 6], [4, 4, 5, 5, 6, 6])
"""

from __future__ import annotations

import dataclasses

import numpy as np

OUT = "out"  # the weight makes the channel's value: zeroed when the channel is pruned (masks), then sliced
IN = "in"  # the weight consumes the channel: sliced (a non-zero constant is folded into the bias)
STAT = "stat"  # per-channel state that is only sliced (BatchNormalization moving mean and variance)
ROLES = (OUT, IN, STAT)


@dataclasses.dataclass(frozen=True)
class ChannelMap:
    """The channels of one tensor.

    Attributes:
        atoms: int array, one atom id per position of the channel axis.
        const: float array of the same length: the value a position holds
            when its atom is pruned. Defaults to zeros.
    """

    atoms: np.ndarray
    const: np.ndarray = None

    def __post_init__(self):
        atoms = np.asarray(self.atoms, np.int64).reshape(-1)
        const = np.zeros(atoms.size) if self.const is None else np.asarray(self.const, np.float64).reshape(-1)
        object.__setattr__(self, "atoms", atoms)
        object.__setattr__(self, "const", np.broadcast_to(const, atoms.shape).copy())

    def __len__(self):
        return int(self.atoms.size)

    def with_const(self, const) -> "ChannelMap":
        return ChannelMap(self.atoms, const)

    def tile(self, times: int) -> "ChannelMap":
        """Positions `[p0 .. pC, p0 .. pC, ...]` (Flatten of channels-last data)."""
        return ChannelMap(np.tile(self.atoms, times), np.tile(self.const, times))

    def repeat(self, times: int) -> "ChannelMap":
        """Positions `[p0, p0, p1, p1, ...]` (a depthwise convolution's depth multiplier)."""
        return ChannelMap(np.repeat(self.atoms, times), np.repeat(self.const, times))

    @staticmethod
    def concat(maps) -> "ChannelMap":
        maps = list(maps)
        return ChannelMap(np.concatenate([m.atoms for m in maps]), np.concatenate([m.const for m in maps]))


@dataclasses.dataclass
class Member:
    """One axis of one weight, indexed by channel atoms.

    Attributes:
        layer: The layer owning the weight.
        variable: The `keras.Variable`.
        axis: The axis (non-negative) of the weight that the atoms index.
        atoms: int array, the atom of each position along `axis`.
        role: `"out"`, `"in"` or `"stat"` (see the module constants).
        const: For `"in"`: the value each position holds when pruned
            (non-zero values are folded into `bias` at shrink).
        bias: For `"in"`: the layer's bias attribute name when a constant
            can be folded into it, else `None`.
    """

    layer: object
    variable: object
    axis: int
    atoms: np.ndarray
    role: str
    const: np.ndarray | None = None
    bias: str | None = None

    @property
    def weight_name(self) -> str:
        return self.variable.path.rsplit("/", 1)[-1]
