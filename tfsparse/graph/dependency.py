"""Dependencies between channels: a union-find over channel atoms, and the builder handlers call.

Two atoms are *coupled* when removing one forces removing the other: the
inputs of an `Add` position by position, a weight shared by two calls, a
squeeze-excitation `Multiply`. The builder records sources, couplings,
weight members and blocked atoms (with the reason) while the graph is traced.

Example:

>>> from tfsparse.graph.dependency import Builder
>>> builder = Builder()
>>> a, b = builder.source("conv_a", 3), builder.source("conv_b", 3)
>>> builder.couple(a, b)
>>> builder.find(a.atoms[1]) == builder.find(b.atoms[1]), builder.find(a.atoms[0]) == builder.find(b.atoms[1])
(True, False)
"""

from __future__ import annotations

import numpy as np

from tfsparse.graph.node import IN, ROLES, ChannelMap, Member


class Builder:
    """Collects atoms, couplings, members and blocks while a model is traced."""

    def __init__(self):
        self.parent = []
        self.owner = []  # atom -> the key of its source layer (id of the layer, or the name of a model input)
        self.names = {}  # key -> the layer's name
        self.blocked = {}  # atom -> reason
        self.members = []
        self._by_weight = {}  # (id(variable), axis) -> the first Member registered on it

    # ------------------------------------------------------------- atoms
    def source(self, layer, size: int, reason: str | None = None) -> ChannelMap:
        """`size` new atoms owned by `layer` (a layer or a name); blocked with `reason` if given."""
        start = len(self.parent)
        key = layer if isinstance(layer, str) else id(layer)  # two layers may share a name (nested models)
        self.names[key] = layer if isinstance(layer, str) else layer.name
        self.parent.extend(range(start, start + size))
        self.owner.extend([key] * size)
        cmap = ChannelMap(np.arange(start, start + size))
        if reason is not None:
            self.block(cmap, reason)
        return cmap

    def find(self, atom) -> int:
        atom = int(atom)
        root = atom
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[atom] != root:
            self.parent[atom], atom = root, self.parent[atom]
        return root

    def union(self, a, b) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def couple(self, a: ChannelMap, b: ChannelMap) -> None:
        """Couples two channel maps position by position (they must have the same length)."""
        if len(a) != len(b):
            raise ValueError(f"Cannot couple channel maps of lengths {len(a)} and {len(b)}.")
        for x, y in zip(a.atoms, b.atoms):
            self.union(x, y)

    def block(self, cmap: ChannelMap, reason: str, positions=None, *, first=False) -> None:
        """Marks the atoms of `cmap` (or of its `positions`) as not prunable, for `reason`.

        An atom keeps the first reason given, unless `first=True` puts this one first.
        """
        atoms = cmap.atoms if positions is None else cmap.atoms[positions]
        for atom in atoms:
            if first:
                self.blocked[int(atom)] = reason
            else:
                self.blocked.setdefault(int(atom), reason)

    # ----------------------------------------------------------- weights
    def weight(self, layer, variable, axis: int, cmap: ChannelMap, role: str, *, bias=None) -> None:
        """Registers `variable`'s `axis` as indexed by `cmap` (one position per entry of that axis).

        A weight registered again on the same axis (a shared layer called
        twice) couples the two maps. An `"in"` member whose positions hold a
        non-zero constant when pruned is blocked unless `bias` names the
        attribute the constant folds into.
        """
        if role not in ROLES:
            raise ValueError(f"Unknown member role {role!r}; expected one of {ROLES}.")
        axis = axis % len(variable.shape)
        if int(variable.shape[axis]) != len(cmap):
            raise ValueError(f"{variable.path}: axis {axis} has {variable.shape[axis]} entries, the channel map "
                             f"{len(cmap)}.")
        key = (id(variable), axis)
        first = self._by_weight.get(key)
        if role == IN and np.any(cmap.const != 0):
            if bias is None:
                self.block(cmap, f"{layer.name!r} ({type(layer).__name__}) takes channels that hold a non-zero "
                           "constant when pruned (an activation with f(0) != 0 before it) and has no bias to fold it "
                           "into", positions=cmap.const != 0)
            elif first is not None and not np.array_equal(first.const, cmap.const):
                self.block(cmap, f"{layer.name!r} ({type(layer).__name__}) is called on channels whose constants when "
                           "pruned differ between calls; one bias cannot fold both", positions=cmap.const != 0)
        if first is not None:
            if role == IN and np.any(first.const != 0) and not np.array_equal(first.const, cmap.const):
                self.block(ChannelMap(first.atoms), f"{layer.name!r} ({type(layer).__name__}) is called on channels "
                           "whose constants when pruned differ between calls", positions=first.const != 0)
            self.couple(ChannelMap(first.atoms), cmap)
            return
        member = Member(layer, variable, axis, cmap.atoms, role, cmap.const if role == IN else None, bias)
        self._by_weight[key] = member
        self.members.append(member)
