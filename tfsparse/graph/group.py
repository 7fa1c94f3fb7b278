"""`Group`: channels that must be removed together, and the weights they index.

Channel `i` of a group is one class of coupled atoms (for a lone convolution,
its filter `i`; for convolutions joined by an `Add`, filter `i` of each).
`members` lists every weight axis indexed by the group: `channels[p]` is the
group channel of position `p` of that axis, or -1 for a position that belongs
to another group (a Dense layer after a Concatenate has rows of several).

Example:

>>> import keras, tfsparse
>>> inputs = keras.Input((8, 8, 3))
>>> x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
>>> x = keras.layers.BatchNormalization(name="bn")(x)
>>> model = keras.Model(inputs, keras.layers.Dense(2, name="head")(keras.layers.GlobalAveragePooling2D()(x)))
>>> group = tfsparse.graph.trace(model).prunable()[0]
>>> group.size, group.layers
(4, ('conv', 'bn', 'head'))
>>> [(m.layer.name, m.weight_name, m.role) for m, _ in group.members][:3]
[('conv', 'kernel', 'out'), ('conv', 'bias', 'out'), ('bn', 'gamma', 'out')]
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tfsparse.graph.node import OUT


@dataclasses.dataclass
class Group:
    """Coupled channels of a model.

    Attributes:
        index: The group's position in `ChannelGraph.groups`.
        size: The number of channels.
        sources: Names of the layers that make these channels.
        members: `(Member, channels)` pairs (see the module docstring).
        blocked: Why the group is not pruned, or `None` when it can be.
    """

    index: int
    size: int
    sources: tuple
    members: list
    blocked: str | None = None

    @property
    def prunable(self) -> bool:
        return self.blocked is None

    @property
    def layers(self) -> tuple:
        """Names of the layers with a weight in the group, in order of first appearance."""
        return tuple(dict.fromkeys(member.layer.name for member, _ in self.members))

    def out_members(self):
        """The `(Member, channels)` pairs whose weights make the channels' values (masked when pruned)."""
        return [(member, channels) for member, channels in self.members if member.role == OUT]

    def zero_channels(self) -> np.ndarray:
        """Boolean array: the channels whose value-making weights are all exactly zero (pruned)."""
        zero = np.ones(self.size, bool)
        for member, channels in self.out_members():
            values = np.moveaxis(np.asarray(member.variable.numpy()), member.axis, 0)
            nonzero = np.any(values.reshape(values.shape[0], -1) != 0, axis=1)
            inside = channels >= 0
            np.logical_and.at(zero, channels[inside], ~nonzero[inside])
        return zero if self.out_members() else np.zeros(self.size, bool)

    def describe(self) -> str:
        state = "prunable" if self.prunable else f"not pruned: {self.blocked}"
        return f"group {self.index}: {self.size} channels, layers {', '.join(self.layers)} ({state})"
