"""Strategies on every Keras 3 backend installed give what they promise: exact zeros, removed channels, pruned experts.

The README's GMP example and 2:4 N:M give exact zeros; l1 reaches its target with zeros exactly where its masks
are; l0 freezes exactly its target of gates and finalize folds them; channel pruning (to a target, and to a MACs
target with regularize="growing") zeroes whole channels that finalize removes; moe_expert (when the plugin imports)
prunes experts to zero.

Each backend runs in its own process (`KERAS_BACKEND` is read once per
process) through `backend_run.py`. TensorFlow always runs; JAX and PyTorch
when installed (`tools/setup.sh` installs JAX).
"""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

RUNNER = os.path.join(os.path.dirname(__file__), "backend_run.py")
BACKENDS = [pytest.param(name, marks=pytest.mark.skipif(
    module is not None and importlib.util.find_spec(module) is None, reason=f"{module} is not installed"))
    for name, module in (("tensorflow", None), ("jax", "jax"), ("torch", "torch"))]


@pytest.fixture(scope="module", params=BACKENDS)
def run(request, tmp_path_factory):
    env = dict(os.environ, KERAS_BACKEND=request.param, TF_CPP_MIN_LOG_LEVEL="3")
    if request.param == "jax":  # every retrace compiles again: XLA's optimizations cost more than these tiny steps
        env["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_backend_optimization_level=0".strip()
    done = subprocess.run([sys.executable, RUNNER, str(tmp_path_factory.mktemp(request.param))], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["backend"] == request.param
    return result


def test_gmp_leaves_exact_zeros_where_the_masks_say(run):
    assert run["gmp_zeros"] == run["gmp_masks"]
    for path, zeros in run["gmp_zeros"].items():
        assert 0.9 <= zeros < 0.93, (path, zeros)  # each weight within one element of 90%


def test_the_kept_weights_still_train(run):
    assert run["kept_weights_trained"] > 0.95


def test_a_resumed_fit_and_a_keras_file_keep_the_zeros(run):
    assert run["resumed_zeros"] == run["gmp_zeros"]
    assert sorted(run["loaded_zeros"].values()) == sorted(run["gmp_zeros"].values())


def test_nm_gives_exact_2_4(run):
    assert run["nm_2_4"] and set(run["nm_zeros"].values()) == {0.5}


def test_l1_reaches_its_target_with_zeros_where_the_masks_are(run):
    assert run["l1"]["sparsity"] == 0.5 and run["l1"]["zeros_are_the_masks"]
    assert 0.3 < run["l1"]["reached"] < 0.7  # the controller got near it before the mask froze


def test_l0_freezes_its_target_and_finalize_folds_the_gates(run):
    l0 = run["l0"]
    assert l0["closed"] == 0.5 and l0["abs_log_alpha"] == [30.0]  # held at +-30 through the fine-tuning
    assert l0["finalized_gates"] == 0 and l0["finalized_units"] == [*l0["open"], 3]
    assert l0["finalize_difference"] < 1e-4


@pytest.mark.parametrize("name, removed, kept", [("channel", 8, 8), ("channel_growing", 5, 11)])
def test_channel_pruning_zeroes_whole_channels_and_finalize_removes_them(run, name, removed, kept):
    result = run[name]
    assert result["sparsity"] == pytest.approx(removed / 16) and result["masks_binary"]
    assert set(result["zero_channels"].values()) == {removed}  # kernels, biases, BN gamma and beta alike
    assert result["finalized_filters"] == [kept, kept] and result["finalize_difference"] < 1e-4


def test_growing_regularization_removal_at_the_end_of_fit_holds_in_a_later_fit(run):
    assert run["channel_growing"]["target_sparsity"] == pytest.approx(0.3125)  # target_macs=0.5, resolved
    assert run["channel_growing"]["zero_c1_channels_after_plain_fit"] == 5


def test_moe_expert_pruning_zeroes_the_pruned_experts(run):
    moe = run["moe"]
    if "skipped" in moe:
        pytest.skip(f"tfsparse_moe does not import: {moe['skipped']}")
    assert moe["kept"] == 6 == moe["finalized_experts"]
    assert moe["pruned_experts_zero"] and moe["router_columns_zero"]
    assert moe["tokens_per_batch"] == [24.0]  # statistics read and reset after every batch (4 sequences of 6)
