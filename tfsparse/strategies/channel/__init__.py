"""Structured channel pruning over the channel graph, registered as `channel`.

The model's channel groups (`tfsparse.graph.trace`: channels that must go
together, such as the filters of two convolutions joined by an `Add`) are
pruned gradually: at each update step of a `PolynomialDecay` schedule (as in
`gmp`) every selected group is brought toward the schedule's fraction of
removed channels, dropping its lowest-scored channels by `criterion`
(`tfsparse.graph.importance`). A removed channel is masked in every weight
that makes its value (filters, bias, BatchNormalization gamma and beta,
depthwise kernels), so it is exactly zero downstream and stays removed;
`finalize` (`tfsparse.finalize`, which shrinks last) then removes it
physically (`tfsparse.graph.shrink`). The stem's input channels and the
classifier's output units are never pruned (the graph blocks model inputs
and outputs), nor is a group the graph cannot prune (see
`tfsparse inspect --channels`).

Channel counts:
- `scope="layer"`: each group keeps `size * (1 - sparsity)` channels;
  `scope="global"`: scores are divided by their group's mean (over channels
  still kept) and the lowest channels across all groups go until the
  selected groups as a whole reach the sparsity.
- A group keeps a multiple of `round_to` channels (the nearest one), never
  fewer than `min_channels` (rounded up to a multiple of `round_to`) and
  never more than it has: a group with fewer channels than that is left whole.
- One update removes at most `max_step_fraction` of a group's remaining
  channels (at least one, so that small groups still progress; then the count
  may be between two multiples of `round_to` for a while). If this cap keeps
  a group above its target at `end_step`, pruning goes on every `frequency`
  steps after it until the target is reached.

`regularize="growing"` (Wang et al. 2021, "Neural Pruning via Growing
Regularization"; the rule is in `tfsparse.strategies.channel.growing`): the
channels chosen at an update (same criterion, counts and scope) are not zeroed
but fade. At update step `u < end_step` the mask entries of every chosen, not
yet removed channel are set to `d(u) = 1e-3 ** (1 / (end_step - u))`; the
mask multiplies the weight after every optimizer step, so those weights decay
by `d(u)` per step, a decay that grows as `end_step` nears and, on its own,
brings any chosen channel below 1e-3 of its value at selection by `end_step`
(the optimizer pushes back about `learning_rate * d / (1 - d)` per weight,
which the strong last decay keeps small). Weights whose channel goes on only
into BatchNormalization (the filters of a conv-BN pair) keep mask 1 while the
normalization's `gamma` and `beta` fade: the normalization would undo their
fade. At `end_step` every out weight of the chosen channels becomes exact
zero and they are removed as without regularization; the rest of the network
adapts while they fade, so the removal is near lossless. A chosen channel
stays chosen (a fading one scores ever lower anyway), and the choice looks
one update ahead (at `u` the channels of the next update step's sparsity are
chosen), so none is chosen and zeroed at `end_step` at once. Masks hold
exact 0/1 values from `end_step` on (channels the per-step cap pushes past
`end_step` are zeroed at once); a fit that ends at `end_step` exactly applies
that last update when it ends. Training must reach `end_step`: channels still
fading are not zero, and `finalize` keeps them (a warning says so).

`target_macs` (instead of `target_sparsity`): the fraction of the model's
MACs to keep. When the model is known (`prepare`, or training start) it
becomes `self.target_sparsity`, logged once: the sparsity whose final kept
counts (under `scope`, `round_to`, `min_channels`) give the MACs fraction
nearest `target_macs`, found by bisection on the sparsity with
`tfsparse.strategies.channel.macs.MacCounter` (`tfsparse.flops`' per-call
count with each call's channel axes shortened to the kept channels, i.e. the
MACs of the model `finalize` makes; `self.predicted_macs` is `(kept MACs,
model MACs)`). With `scope="layer"` the prediction is exact for the counts
reached, and the fraction is as near `target_macs` as `round_to` allows: 0.491
for a 3-layer CNN 16 channels wide (`round_to=1`; 12 channels a layer would
keep 0.579), 0.512 for Keras' MobileNetV2 (`round_to=4`). With
`scope="global"` the counts come from replaying the global ranking over the
schedule with the scores when the model is known; training re-scores, so
the finalized MACs differ from the prediction (by 0.2 to 0.3 percentage
points on the small CNNs of the tests).

`sparsity` in `logs` is the fraction of the selected groups' channels chosen
for removal: removed, or (`regularize="growing"`) scheduled and still fading.

Example:

>>> import keras, numpy as np, tfsparse
>>> inputs = keras.Input((6, 6, 1))
>>> x = keras.layers.Conv2D(8, 3, activation="relu", name="conv")(inputs)
>>> x = keras.layers.GlobalAveragePooling2D()(x)
>>> model = keras.Model(inputs, keras.layers.Dense(2, name="head")(x))
>>> model.compile("adam", "mse")
>>> channel = tfsparse.get_strategy("channel")(target_sparsity=0.5, begin_step=0, end_step=6, frequency=1)
>>> x = np.random.default_rng(0).random((16, 6, 6, 1)).astype("float32")
>>> history = model.fit(x, np.ones((16, 2)), batch_size=2, epochs=1, verbose=0, callbacks=[channel])
>>> kernel = model.get_layer("conv").kernel.numpy()
>>> int(np.any(kernel != 0, axis=(0, 1, 2)).sum()), history.history["sparsity"][-1]
(4, 0.5)
"""

from tfsparse.strategies.channel.common import GroupState, _nearest_multiple
from tfsparse.strategies.channel.growing import REGULARIZERS
from tfsparse.strategies.channel.pruning import SCOPES, ChannelPruning

__all__ = ["REGULARIZERS", "SCOPES", "ChannelPruning", "GroupState"]
