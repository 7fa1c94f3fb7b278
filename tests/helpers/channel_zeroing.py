"""Test helper: zero channels of a model's prunable groups the way a channel strategy's masks do."""

import numpy as np

import tfsparse


def zero_channels(model, fraction, seed=0):
    """Zeroes `fraction` of the channels (at least one kept) of every prunable group; returns `{group: channels}`."""
    rng = np.random.default_rng(seed)
    removed = {}
    for group in tfsparse.graph.trace(model).prunable():
        count = min(group.size - 1, int(round(fraction * group.size)))
        if count <= 0:
            continue
        channels = np.sort(rng.choice(group.size, count, replace=False))
        for member, located in group.out_members():
            values = np.asarray(member.variable.numpy()).copy()
            positions = np.flatnonzero(np.isin(located, channels))
            index = [slice(None)] * values.ndim
            index[member.axis] = positions
            values[tuple(index)] = 0.0
            member.variable.assign(values)
        removed[group.index] = channels.tolist()
    return removed


def randomize_batch_norm(model, seed=0):
    """Non-trivial BatchNormalization statistics, so that equivalence checks are not vacuous."""
    rng = np.random.default_rng(seed)
    for layer in model._flatten_layers(include_self=False):
        if type(layer).__name__ == "BatchNormalization":
            for variable in (layer.moving_mean, layer.moving_variance, layer.beta):
                if variable is not None:
                    shape = variable.shape
                    variable.assign(rng.uniform(0.5, 1.5, shape).astype("float32") if variable is layer.moving_variance
                                    else rng.normal(0, 0.3, shape).astype("float32"))
