"""Removing pruned experts physically: the `moe_experts` finalizer.

`remove_pruned_experts(model)` rebuilds every `MoE` layer whose
`expert_mask` has zeros with only its kept experts: the router kernel and
bias lose the pruned columns, the expert stacks their slices, and
`num_experts` is the kept count. The pruned experts had router logit -1e9
(probability 0), so the outputs equal the masked model's in inference mode
(to float rounding), while the `.keras` and `.tflite` files and the compute
shrink by the pruned fraction of the experts. The mask is read from the
layer's saved `expert_mask`, so this works on a model reloaded from `.keras`.

Importing `tfsparse_moe` registers it with `tfsparse.register_finalizer`
as `"moe_experts"`, so `tfsparse.finalize` and `tfsparse.export` apply it.
Sequential and Functional models (nested ones included) are rebuilt with
`keras.models.clone_model` (recursively); a subclassed model has no layer
graph to rebuild: it is returned unchanged (still correct, pruned experts
masked), with a logged warning.

Example:

>>> import keras, numpy as np
>>> from tfsparse_moe import MoE, remove_pruned_experts
>>> model = keras.Sequential([keras.Input((3, 4)), MoE(num_experts=4, hidden_units=8, name="moe")])
>>> _ = model.get_layer("moe").expert_mask.assign([1.0, 0.0, 1.0, 1.0])
>>> small = remove_pruned_experts(model)
>>> small.get_layer("moe").num_experts, small.count_params() < model.count_params()
(3, True)
>>> x = np.random.default_rng(0).normal(size=(2, 3, 4)).astype("float32")
>>> bool(np.allclose(small.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5))
True
"""

from __future__ import annotations

import keras
from absl import logging

from tfsparse.deploy import register_finalizer
from tfsparse.graph_insert import is_graph_model
from tfsparse.prunable import iter_layers
from tfsparse_moe.layer import MoE

FINALIZER_NAME = "moe_experts"


def remove_pruned_experts(model):
    """Returns `model` with the pruned experts of its `MoE` layers removed (see the module docstring).

    Args:
        model: A built `keras.Model`.

    Returns:
        A rebuilt model, or `model` itself when no expert is pruned (or it
        is subclassed).

    Raises:
        ValueError: if a layer would keep `top_k` experts or fewer.
    """
    keep = {id(layer): layer.kept_experts() for layer in iter_layers(model)
            if isinstance(layer, MoE) and not layer.kept_experts().all()}
    if not keep:
        return model
    if not is_graph_model(model):
        logging.warning("tfsparse_moe: model %r is subclassed, so its %d MoE layers with pruned experts cannot be "
                        "rebuilt smaller; the pruned experts stay in it, masked (outputs are unaffected). Build "
                        "it as a Functional or Sequential model to remove them.", model.name, len(keep))
        return model
    for layer in iter_layers(model):
        if id(layer) in keep and keep[id(layer)].sum() <= layer.top_k:
            raise ValueError(
                f"Invalid value received for argument `model`. MoE layer {layer.name!r} keeps "
                f"{int(keep[id(layer)].sum())} experts but routes each token to top_k={layer.top_k}; it must keep "
                f"more than top_k. Received: model={model.name!r}")

    small = _rebuild(model, keep)
    for layer in iter_layers(model):
        if id(layer) in keep:
            logging.info("tfsparse_moe: layer %r keeps %d of %d experts.", layer.name, int(keep[id(layer)].sum()),
                         layer.num_experts)
    return small


def _rebuild(model, keep):
    """A copy of the graph model `model` with the `MoE` layers in `keep` sliced to their kept experts."""
    pairs = []

    def clone_function(layer):
        config = layer.get_config()
        if id(layer) in keep:
            config["num_experts"] = int(keep[id(layer)].sum())
        clone = layer.__class__.from_config(config)
        pairs.append((layer, clone))
        return clone

    # tfsparse.graph_insert.rebuild would do, but it fails on graphs holding plain operations (the
    # `NotEqual` of a padding mask), so this clones with Keras directly.
    small = keras.models.clone_model(model, clone_function=clone_function, recursive=True)
    for original, clone in pairs:
        if not isinstance(clone, keras.layers.Layer) or is_graph_model(clone) or not clone.weights:
            continue
        if id(original) in keep:
            values = original.sliced_weights(keep[id(original)])
            clone.set_weights([values[variable.name] for variable in clone.weights])
        else:
            clone.set_weights(original.get_weights())
    if model.compiled:
        small.compile_from_config(model.get_compile_config())
    return small


register_finalizer(remove_pruned_experts, name=FINALIZER_NAME)
