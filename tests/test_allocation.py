import math

import numpy as np
import pytest

from tfsparse import allocation
from tfsparse.strategies.gmp import keep_largest

SHAPES = [(3, 3, 3, 16), (1, 1, 64, 256), (256, 10), (3, 3, 16, 1)]


def _zeros(sparsities, sizes):
    counts = [s * n for s, n in zip(sparsities, sizes)]
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-9)  # whole scalars
    return [round(c) for c in counts]


def _rigl_erk(shapes, target):
    """RigL's ERK (no cap): layers denser than 1 are fixed dense and eps re-solved over the rest."""
    sizes = [math.prod(s) for s in shapes]
    dense = set()
    while True:
        free = [i for i in range(len(shapes)) if i not in dense]
        kept = (1 - target) * sum(sizes) - sum(sizes[i] for i in dense)
        eps = kept / sum(sum(shapes[i]) for i in free)
        over = {i for i in free if eps * sum(shapes[i]) / sizes[i] > 1}
        if not over:
            return [0.0 if i in dense else 1 - eps * sum(shapes[i]) / sizes[i] for i in range(len(shapes))]
        dense |= over


@pytest.mark.parametrize("target", [0.0, 0.3, 0.5, 0.8, 0.9, 0.95])
def test_erk_pooled_count_is_exact_and_matches_rigl_within_one_scalar(target):
    sizes = [math.prod(s) for s in SHAPES]
    sparsities = allocation.erk(SHAPES, target, max_sparsity=None)
    assert sum(_zeros(sparsities, sizes)) == round(target * sum(sizes))
    for ours, rigl, size in zip(sparsities, _rigl_erk(SHAPES, target), sizes):
        assert abs(ours - rigl) * size <= 1.0


def test_erk_keeps_small_layers_denser_than_big_ones():
    # density ~ sum(shape) / prod(shape): the 16384-scalar pointwise conv is sparsest, the 144-scalar depthwise one
    # nearly dense.
    stem, pointwise, head, depthwise = allocation.erk(SHAPES, 0.8)
    assert pointwise > 0.8 > stem > head > depthwise
    assert depthwise < 0.05
    assert allocation.erk([(1, 1, 64, 256), (3, 3, 16, 1)], 0.5) == [8264 / 16384, 0.0]  # too dense: fixed dense


def test_erk_cap_fixes_the_layer_and_re_solves_the_rest():
    sizes = [math.prod(s) for s in SHAPES]
    free = allocation.erk(SHAPES, 0.9, max_sparsity=None)
    capped = allocation.erk(SHAPES, 0.9, max_sparsity=0.92)
    assert free[1] > 0.92
    assert capped[1] == math.floor(0.92 * sizes[1]) / sizes[1]
    assert all(c > f for i, (c, f) in enumerate(zip(capped, free)) if i != 1)  # the others take the zeros
    assert max(capped) <= 0.92
    assert sum(_zeros(capped, sizes)) == round(0.9 * sum(sizes))


def test_erk_counts_never_drop_as_the_target_rises():
    sizes = [math.prod(s) for s in SHAPES]
    previous = [0] * len(SHAPES)
    for target in np.linspace(0.0, 0.95, 96):
        zeros = _zeros(allocation.erk(SHAPES, float(target)), sizes)
        assert all(z >= p for z, p in zip(zeros, previous))
        previous = zeros


@pytest.mark.parametrize(
    "shapes, target, cap",
    [
        ([(3,), (3,)], 0.5, 0.5),  # whole scalars: at most 1 zero of 3 in each, 3 needed
        ([(10, 10)], 0.95, 0.9),  # the cap is below the target
    ],
)
def test_erk_unreachable_target_under_the_cap_raises(shapes, target, cap):
    with pytest.raises(ValueError, match="argument `max_sparsity`"):
        allocation.erk(shapes, target, max_sparsity=cap)


def test_global_magnitude_without_cap_is_one_threshold_over_the_concatenation():
    rng = np.random.default_rng(0)
    values = [np.round(rng.normal(size=shape), 1) for shape in [(4, 8), (50,), (3, 3, 2)]]  # many ties
    values[1][:10] = 0.0
    flat = np.concatenate([v.ravel() for v in values])
    for target in (0.2, 0.5, 0.9):
        mask = keep_largest(flat, flat.size - round(target * flat.size))
        expected = np.split(mask, np.cumsum([v.size for v in values])[:-1])
        sparsities = allocation.global_magnitude(values, target)
        for value, sparsity, want in zip(values, sparsities, expected):
            # per-weight keep_largest with the allocated count picks the very same scalars
            np.testing.assert_array_equal(keep_largest(value, value.size - round(sparsity * value.size)).ravel(), want)


def test_global_magnitude_caps_and_re_thresholds_the_rest():
    rng = np.random.default_rng(1)
    values = [0.01 * rng.normal(size=200), 0.1 * rng.normal(size=200), rng.normal(size=100)]
    sizes = [v.size for v in values]
    free = allocation.global_magnitude(values, 0.6)
    capped = allocation.global_magnitude(values, 0.6, max_sparsity=0.8)
    assert free[0] > 0.8
    assert capped[0] == 0.8 and max(capped) <= 0.8
    assert capped[1] > free[1] and capped[2] >= free[2]
    assert sum(_zeros(capped, sizes)) == round(0.6 * sum(sizes))
    # one threshold over the weights that are not capped
    masks = [keep_largest(v, v.size - round(s * v.size)) for v, s in zip(values, capped)]
    pruned = max(np.abs(v[m == 0]).max() for v, m in zip(values[1:], masks[1:]))
    kept = min(np.abs(v[m == 1]).min() for v, m in zip(values[1:], masks[1:]))
    assert pruned <= kept


def test_global_magnitude_cap_cascades():
    # Capping the tiny weight pushes its zeros onto the small one, which then exceeds the cap too.
    values = [np.full(100, 0.001), np.full(100, 0.01) + np.linspace(0, 1e-3, 100), np.linspace(1, 2, 100)]
    assert allocation.global_magnitude(values, 0.6, max_sparsity=0.7) == [0.7, 0.7, 0.4]


def test_latency_aware_prunes_the_costly_layer_harder_at_equal_magnitudes():
    rng = np.random.default_rng(2)
    same = rng.normal(size=300)
    values = [same, same.copy(), same[:100].copy()]
    sizes = [v.size for v in values]
    sparsities = allocation.latency_aware(values, [64, 1, 1], 0.7)
    assert sparsities[0] > sparsities[1] + 0.2
    assert sparsities[0] <= allocation.DEFAULT_MAX_SPARSITY
    assert sum(_zeros(sparsities, sizes)) == round(0.7 * sum(sizes))
    uniform_cost = allocation.latency_aware(values, [5, 5, 5], 0.7)
    assert abs(uniform_cost[0] - uniform_cost[1]) * 300 <= 1 + 1e-9  # equal costs: ties only


def test_latency_aware_is_relative_to_each_layers_magnitude_and_the_mean_cost():
    rng = np.random.default_rng(3)
    values = [rng.normal(size=(8, 8)), rng.normal(size=(16, 4)), rng.normal(size=50)]
    costs = [16, 4, 1]
    reference = allocation.latency_aware(values, costs, 0.8, max_sparsity=None)
    scaled = [100 * values[0], values[1], 0.01 * values[2]]
    assert allocation.latency_aware(scaled, [2 * c for c in costs], 0.8, max_sparsity=None) == reference
    # a scalar's score is |w| / mean |w| of its layer / (cost / mean cost): check against a direct threshold
    scores = np.concatenate([np.abs(v).ravel() / np.abs(v).mean() / (c / np.mean(costs)) for v, c in
                             zip(values, costs)])
    kept = keep_largest(scores, scores.size - round(0.8 * scores.size))
    expected = [1 - m.mean() for m in np.split(kept, np.cumsum([v.size for v in values])[:-1])]
    np.testing.assert_allclose(reference, expected)


def test_latency_aware_prunes_existing_zeros_first_and_respects_the_cap():
    rng = np.random.default_rng(4)
    values = [rng.normal(size=100), rng.normal(size=100)]
    values[1][:30] = 0.0  # pruned before, in the cheap layer
    sparsities = allocation.latency_aware(values, [100, 1], 0.5, max_sparsity=0.6)
    assert sparsities == [0.6, 0.4]  # the costly one is capped; the cheap one keeps its 30 zeros and takes 10 more
    mask = keep_largest(values[1], round(0.6 * 100))
    assert (mask[:30] == 0).all()


def test_uniform():
    assert allocation.uniform([10, 3], 0.5) == [0.5, 0.5]


@pytest.mark.parametrize(
    "call, argument",
    [
        (lambda: allocation.uniform([10, 0], 0.5), "sizes"),
        (lambda: allocation.uniform([10], 1.0), "target"),
        (lambda: allocation.erk([], 0.5), "shapes"),
        (lambda: allocation.erk([(3, 0)], 0.5), "shapes"),
        (lambda: allocation.erk("3x3", 0.5), "shapes"),
        (lambda: allocation.erk([(3, 3)], -0.1), "target"),
        (lambda: allocation.erk([(3, 3)], True), "target"),
        (lambda: allocation.erk([(3, 3)], 0.5, max_sparsity=1.0), "max_sparsity"),
        (lambda: allocation.erk([(3, 3)], 0.5, max_sparsity=0.4), "max_sparsity"),
        (lambda: allocation.global_magnitude([], 0.5), "values"),
        (lambda: allocation.global_magnitude([np.zeros(0)], 0.5), "values"),
        (lambda: allocation.global_magnitude([np.array([np.nan])], 0.5), "values"),
        (lambda: allocation.global_magnitude([np.ones(4)], 0.5, max_sparsity=0.0), "max_sparsity"),
        (lambda: allocation.latency_aware([np.ones(4)], [1, 2], 0.5), "costs"),
        (lambda: allocation.latency_aware([np.ones(4)], [0], 0.5), "costs"),
        (lambda: allocation.latency_aware([np.ones(4)], [float("inf")], 0.5), "costs"),
        (lambda: allocation.latency_aware([np.ones(4)], [1], "0.5"), "target"),
    ],
)
def test_bad_arguments_name_the_argument(call, argument):
    with pytest.raises(ValueError, match=f"Invalid value received for argument `{argument}`. Expected .* "
                                         f"Received: {argument}="):
        call()
