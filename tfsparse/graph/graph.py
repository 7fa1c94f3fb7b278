"""`trace(model)`: the channel dependency graph of a Sequential or Functional model.

Every layer call is traced by its handler (`tfsparse.graph.handlers`) in
graph order, nested Functional and Sequential models included (their inner
graphs are traced in place). Model inputs and outputs are blocked (the stem's
input channels and the classifier's output units are never pruned), as is
anything coupled to a layer with no handler. Groups are then the connected
sets of sources whose channels are coupled.

Example:

>>> import keras, tfsparse
>>> inputs = keras.Input((8, 8, 3))
>>> a = keras.layers.Conv2D(4, 1, name="a")(inputs)
>>> b = keras.layers.Conv2D(4, 3, padding="same", name="b")(inputs)
>>> x = keras.layers.Add(name="add")([a, b])
>>> y = keras.layers.Conv2D(6, 1, name="c")(x)
>>> outputs = keras.layers.Dense(2, name="head")(keras.layers.Flatten()(y))
>>> graph = tfsparse.graph.trace(keras.Model(inputs, outputs))
>>> for group in graph.groups:
...     print(group.describe())
group 0: 3 channels, layers a, b (not pruned: a model input)
group 1: 4 channels, layers a, b, c (prunable)
group 2: 6 channels, layers c, head (prunable)
group 3: 2 channels, layers head (not pruned: a model output)
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np

from tfsparse.graph.dependency import Builder
from tfsparse.graph.group import Group
from tfsparse.graph.handlers import get_handler
from tfsparse.graph.handlers.base import channels_of, unsupported
from tfsparse.graph_insert import functional_view, is_graph_model
from tfsparse.prunable import check_model


@dataclasses.dataclass
class LayerCall:
    """One traced call: the layer, its Keras node, and the channel maps of its inputs and outputs."""

    layer: object
    node: object
    inputs: list
    outputs: list


@dataclasses.dataclass
class ChannelGraph:
    """The groups of a model and what tracing recorded.

    Attributes:
        model: The traced model.
        groups: Every `Group`, prunable or not, in order of their first atom.
        calls: `LayerCall`s in graph order (nested models' inner calls included).
        builder: The `Builder` (atoms, couplings, members).
        tensor_maps: `{id(tensor): ChannelMap}` of every traced tensor.
    """

    model: object
    groups: list
    calls: list
    builder: Builder
    tensor_maps: dict

    def prunable(self) -> list:
        """The groups that can be pruned."""
        return [group for group in self.groups if group.prunable]

    def class_of(self, atoms) -> np.ndarray:
        """The `(group index, channel)` of each atom, as an `(n, 2)` int array."""
        return self._atom_channel[np.asarray(atoms, np.int64)]

    def summary(self) -> str:
        """One line per group (what `tfsparse inspect --channels` prints)."""
        prunable = self.prunable()
        lines = [f"{self.model.name}: {len(self.groups)} channel groups, {len(prunable)} prunable "
                 f"({sum(g.size for g in prunable)} of {sum(g.size for g in self.groups)} channels)"]
        return "\n".join(lines + [f"  {group.describe()}" for group in self.groups])


_BOUNDARIES = ("a model input", "a model output")


def trace(model) -> ChannelGraph:
    """Traces `model`'s channel dependencies (see the module docstring).

    Raises:
        ValueError: for a model that is not a built Sequential or Functional
            model (a subclassed model has no graph to trace; the message says
            that weight-level strategies still work on it).
    """
    check_model(model)
    if not is_graph_model(model):
        raise ValueError(
            "Invalid value received for argument `model`. Expected a Sequential or Functional model: channel pruning "
            f"traces the layer graph, and a subclassed model ({type(model).__name__}) has none (its `call` is Python "
            "code). Weight-level strategies (gmp, l1, nm, ...) still work on it. Received: model="
            f"{model.name!r}")
    builder = Builder()
    graph = functional_view(model)
    inputs = [builder.source(tensor._keras_history.operation.name, channels_of(tensor), "a model input")
              for tensor in keras.tree.flatten(graph.inputs)]
    calls, tensor_maps = [], {}
    for cmap in _trace(graph, inputs, builder, calls, tensor_maps):
        builder.block(cmap, "a model output", first=True)
    return _group(model, builder, calls, tensor_maps)


def _trace(graph, input_maps, builder, calls, maps):
    maps.update({id(tensor): cmap for tensor, cmap in zip(keras.tree.flatten(graph.inputs), input_maps)})
    nodes = [node for depth in sorted(graph._nodes_by_depth, reverse=True) for node in graph._nodes_by_depth[depth]]
    for node in nodes:
        layer = node.operation
        if layer is None or node.is_input:
            continue
        ins = []
        for tensor in node.input_tensors:
            if id(tensor) not in maps:  # a tensor from outside the traced graph
                maps[id(tensor)] = builder.source(layer, channels_of(tensor), "a tensor the graph does not trace")
            ins.append(maps[id(tensor)])
        if is_graph_model(layer):
            outs = _trace(functional_view(layer), ins, builder, calls, maps)
        else:
            try:
                outs = get_handler(layer).trace(layer, ins, node, builder)
            except Exception as error:  # noqa: BLE001 - a failing handler leaves its channels unpruned
                outs = unsupported(layer, node, builder, ins, f"its channel handler failed ({error})")
            calls.append(LayerCall(layer, node, ins, outs))
        for tensor, cmap in zip(node.outputs, outs):
            maps[id(tensor)] = cmap
    return [maps[id(tensor)] for tensor in keras.tree.flatten(graph.outputs)]


def _group(model, builder, calls, tensor_maps):
    size = len(builder.parent)
    roots = np.array([builder.find(atom) for atom in range(size)], np.int64)
    # sources whose channels share a class form one group
    owner_index = {}
    owners = np.array([owner_index.setdefault(key, len(owner_index)) for key in builder.owner], np.int64)
    parent = list(range(len(owner_index)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first_owner = {}
    for atom in range(size):
        other = first_owner.setdefault(roots[atom], owners[atom])
        a, b = find(other), find(owners[atom])
        if a != b:
            parent[max(a, b)] = min(a, b)
    names = {index: builder.names[key] for key, index in owner_index.items()}
    components = {}
    for root in sorted(set(roots.tolist())):
        components.setdefault(find(owners[root]), []).append(root)
    atom_channel = np.full((size, 2), -1, np.int64)
    groups = []
    for component_roots in components.values():
        index = len(groups)
        channel_of_root = {root: channel for channel, root in enumerate(component_roots)}
        in_group = np.isin(roots, component_roots)
        atom_channel[in_group, 0] = index
        atom_channel[in_group, 1] = [channel_of_root[r] for r in roots[in_group]]
        reasons = [builder.blocked[a] for a in np.flatnonzero(in_group) if a in builder.blocked]
        sources = tuple(dict.fromkeys(names[o] for o in owners[in_group]))
        reasons.sort(key=lambda reason: reason not in _BOUNDARIES)  # "a model output" says the most
        groups.append(Group(index, len(component_roots), sources, [], reasons[0] if reasons else None))
    for member in builder.members:
        located = atom_channel[member.atoms]
        for index in dict.fromkeys(located[:, 0].tolist()):
            channels = np.where(located[:, 0] == index, located[:, 1], -1)
            groups[index].members.append((member, channels))
    for group in groups:
        if group.prunable and not group.out_members():
            group.blocked = "no weight makes these channels"
    graph = ChannelGraph(model, groups, calls, builder, tensor_maps)
    graph._atom_channel = atom_channel
    return graph
