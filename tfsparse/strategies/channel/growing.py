"""Growing regularization before removal (`regularize="growing"`), after Wang et al. 2021.

"Neural Pruning via Growing Regularization" (ICLR 2021) does not cut the
unimportant weights at once: it puts a penalty on them that grows over
training, so they shrink while the rest of the network adapts, and prunes them
when they no longer matter. Here the penalty is a multiplicative decay through
the mask: a channel chosen for removal at update step `u` (before `end_step`)
is not zeroed; its mask entries are set to

    d(u) = RESIDUAL ** (1 / (end_step - u))

and, as the mask multiplies the weight after every optimizer step
(`tfsparse.masks.MaskConstraint`), each of its weights decays by `d(u)` per
step until the next update sets `d` again. The per-step strength `-ln d(u) =
ln(1 / RESIDUAL) / (end_step - u)` grows as `end_step` nears (hyperbolically,
the "growing" penalty), and at any `u` it is the rate that brings a channel to
`RESIDUAL` of its value by `end_step` on its own: every chosen channel, early
or late, has faded below `RESIDUAL` of its magnitude at selection by
`end_step`, while an early one fades slowly at first (with `end_step - u =
1000`, `d = 0.9931`). The optimizer pushes back (Adam by about the learning
rate a step, so a weight settles near `learning_rate * d / (1 - d)`), which
the strong last decay (`RESIDUAL ** (1 / frequency)` a step) keeps small. At
`end_step` the mask entries become exact zeros and the channels are removed as
without regularization.

Only the weights whose scaling reaches the network fade: a kernel (or bias,
or BatchNormalization `gamma`/`beta`) whose channel goes on only into
BatchNormalization layers, through channel-wise layers (activations,
depthwise convolutions, `Add`...), would be undone by the normalization while
training and would skew its moving statistics in inference, so its mask stays
1 until `end_step` (`fading_layers`); the normalization after it fades
instead. In a MobileNet-V2 block only the depthwise BatchNormalization of an
expanded channel fades; without normalization every out weight fades.

So that a channel is never chosen and zeroed at one and the same update, the
selection looks one update ahead: at update `u < end_step` the chosen channels
reach the schedule's sparsity of the next update step (`min(u + frequency,
end_step)`), so the target's last channels are chosen one update before
`end_step`.

Example:

>>> import keras, tfsparse
>>> from tfsparse.strategies.channel import growing
>>> [round(growing.decay(step, end_step=100), 4) for step in (0, 50, 90, 99)]
[0.9333, 0.871, 0.5012, 0.001]
>>> inputs = keras.Input((8, 8, 3))
>>> x = keras.layers.Conv2D(8, 3, name="conv")(inputs)
>>> x = keras.layers.ReLU()(keras.layers.BatchNormalization(name="bn")(x))
>>> model = keras.Model(inputs, keras.layers.Dense(2, name="head")(keras.layers.GlobalAveragePooling2D()(x)))
>>> sorted(layer.name for layer in growing.fading_layers(tfsparse.graph.trace(model)).values())
['bn', 'head']
"""

from __future__ import annotations

import keras
import numpy as np

#: What is left of a chosen channel by `end_step` (relative to its value when chosen, without gradients).
RESIDUAL = 1e-3

#: The accepted values of `regularize`.
REGULARIZERS = (None, "growing")


def decay(step, end_step) -> float:
    """The mask value of a scheduled channel set at update `step < end_step`: `RESIDUAL ** (1 / (end_step - step))`."""
    if step >= end_step:
        return 0.0
    return float(RESIDUAL ** (1.0 / (end_step - step)))


def selection_step(schedule, step) -> int:
    """The step whose sparsity the channels chosen at update `step` reach: the next update step, or `end_step`."""
    end = schedule.end_step
    return step if step >= end else min(step + schedule.frequency, end)


def fading_layers(graph) -> dict:
    """`{id(layer): layer}` of the layers with weights whose out weights fade (see the module docstring).

    A layer fades unless every path from its outputs, through layer calls
    that pass channels on (their outputs carry input channels: activations,
    BatchNormalization, depthwise convolutions, merges), ends at a
    BatchNormalization before it reaches a layer that mixes channels, a
    model output, or a tensor the graph does not follow (a nested model's
    boundary).
    """
    consumers = {}
    for call in graph.calls:
        for tensor in keras.tree.flatten(call.node.input_tensors):
            consumers.setdefault(id(tensor), []).append(call)
    escapes = {}  # id(tensor) -> whether its channels reach the network un-normalized

    def reaches(tensor) -> bool:
        key = id(tensor)
        if key not in escapes:
            escapes[key] = True  # a cycle cannot happen in a layer graph; this only guards recursion
            escapes[key] = not consumers.get(key) or any(_escapes_through(call, reaches)
                                                         for call in consumers[key])
        return escapes[key]

    fading = {}
    for call in graph.calls:
        if call.layer.weights and any(reaches(tensor) for tensor in keras.tree.flatten(call.node.outputs)):
            fading[id(call.layer)] = call.layer
    return fading


def _escapes_through(call, reaches) -> bool:
    if isinstance(call.layer, keras.layers.BatchNormalization):
        return False
    ins = np.concatenate([cmap.atoms for cmap in call.inputs]) if call.inputs else np.zeros(0, np.int64)
    outs = np.concatenate([cmap.atoms for cmap in call.outputs]) if call.outputs else np.zeros(0, np.int64)
    if outs.size == 0 or not np.isin(outs, ins).all():  # it makes new channels: mixes them
        return True
    return any(reaches(tensor) for tensor in keras.tree.flatten(call.node.outputs))
