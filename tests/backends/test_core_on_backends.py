"""The core unit tests on JAX and PyTorch, each backend in a pytest process of its own (`-n 0`).

The whole core set (tests/strategies, test_masks, test_schedules, test_l0_gate,
test_mask_training, test_strategy, test_selection, test_report, test_prunable,
test_allocation, test_oneshot, test_registry, test_strategy_args,
test_learning_rate, test_distillation, test_nm_check and the moe plugin's
test_strategy) passes on all three backends (README "Backends and scaling
out" has the command), but takes 4 to 5 minutes a backend with `-n 2`, twice
that with `-n 0`: too much for CI's 2 cores next to the rest of the suite.
`CORE` takes about 2 minutes a backend and covers masks, schedules, reports
and every strategy:

- whole files: masks (`test_masks`), the schedules, the report, `gmp`, `nm`
  (and GMP's block masks: exact whole blocks, a `.keras` round trip and resume)
  (with its `.tflite` export through the TensorFlow subprocess) and the
  `L0Gate` layer (gradients, closed form, folding, export);
- `l1`: the proximal step at the scheduled learning rate, a new instance on a
  compiled model, a `lambda` schedule with `begin_step`, logs,
  `target_sparsity`, BatchNormalization gammas, gradient accumulation;
- `l0`: gate placement (Sequential, Functional after BatchNormalization, a
  subclassed model), a fixed `lambda`, freezing that keeps a gate open;
- `channel`: target counts with `round_to` and the step cap, exact zero
  channels in coupled convolutions, `finalize`'s shrink, channels already
  zero, the random criterion, `taylor` refused off TensorFlow;
- `moe_expert`: routing statistics, zeroed and never-routed experts, logs and
  report, the weight_l1 criterion;
- the mask engine under Adam and gradient accumulation (`test_mask_training`).

Left out here (they pass on every backend in the whole core set): the long
trainings (l0's target modes, 500 steps, 40 to 80 s each on PyTorch;
channel pruning's digits accuracy; `test_channel_recovery`'s growing
regularization; one-shot SparseGPT against magnitude; distillation), l1's
`test_zeros_appear_and_stay_zero` and the other `jit_compile=True` variants
(a compilation per step on JAX, `torch.compile` on PyTorch: about 20 s a
test), the remaining tests of the files above (argument errors, config round
trips, schedules of the plugin: NumPy-side logic that does not depend on the
backend), and the files whose subject is not a strategy: selection, prunable
weights, allocation, registry, strategy arguments, learning rates,
`inspect --nm` and the `Strategy` contract tests.

Nothing may be skipped except tests marked `tensorflow_only` (tests/conftest.py),
and the run must show it: every skip reason reads "TensorFlow-only: ...", and
they add up to the skipped count of the last line.

The rest of the suite runs on TensorFlow (its export, emulator and tool tests
need it); `test_backends.py` checks every strategy's result on each backend.
"""

import importlib.util
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
L1 = "tests/strategies/test_l1.py::"
L0 = "tests/strategies/test_l0.py::"
CHANNEL = "tests/strategies/test_channel.py::"
MOE = "plugins/moe/tests/test_strategy.py::"
MASK_TRAINING = "tests/test_mask_training.py::test_masked_weights_stay_exactly_zero"
CORE = [
    "tests/test_masks.py",
    "tests/test_schedules.py",
    "tests/test_report.py",
    "tests/strategies/test_gmp.py",
    "tests/strategies/test_nm.py",
    "tests/strategies/test_block_sparse.py::test_dense_masks_are_whole_blocks_of_input_rows_with_exact_counts",
    "tests/strategies/test_block_sparse.py::test_keras_save_load_resume_keeps_whole_blocks",
    "tests/test_l0_gate.py",
    *(f"{L1}test_step_is_soft_threshold_at_the_scheduled_learning_rate[{kind}-False]"
      for kind in ("float", "exponential", "piecewise")),
    f"{L1}test_a_new_instance_on_a_compiled_model_takes_effect",
    f"{L1}test_lambda_schedule_and_begin_step",
    f"{L1}test_logs_hold_penalty_lambda_and_sparsity",
    f"{L1}test_target_mode_reaches_target_and_freezes_mask",
    f"{L1}test_bn_gamma_zeroes_only_gammas",
    f"{L1}test_gradient_accumulation_thresholds_only_on_update_steps",
    f"{L0}test_prepare_sequential_moves_the_activation_into_the_gate_and_keeps_predictions",
    f"{L0}test_prepare_functional_puts_the_gate_after_batch_normalization_and_closed_channels_are_zero",
    f"{L0}test_subclassed_model_with_user_placed_gates_is_found_and_trained",
    f"{L0}test_fixed_lambda_closes_gates_and_logs",
    f"{L0}test_freezing_never_closes_the_last_open_gate_of_a_layer",
    f"{CHANNEL}test_reaches_target_counts_with_round_to_and_step_cap",
    f"{CHANNEL}test_masked_channels_are_exactly_zero_after_fit_and_coupled_convs_agree",
    f"{CHANNEL}test_finalize_detaches_masks_and_shrinks",
    f"{CHANNEL}test_already_zero_channels_stay_removed",
    f"{CHANNEL}test_taylor_and_random_criteria_train",
    f"{CHANNEL}test_taylor_is_refused_off_tensorflow_with_the_backend_named",
    f"{MOE}test_prunes_the_least_frequently_routed_experts",
    f"{MOE}test_pruned_experts_are_zeroed_masked_and_never_routed_while_training_goes_on",
    f"{MOE}test_logs_and_report",
    f"{MOE}test_weight_l1_criterion_can_prune_before_any_statistics",
    f"{MASK_TRAINING}[adam]",
    f"{MASK_TRAINING}[gradient_accumulation]",
]


@pytest.mark.slow
@pytest.mark.parametrize("backend", [
    pytest.param(name, marks=pytest.mark.skipif(importlib.util.find_spec(name) is None, reason=f"{name} is not installed"))
    for name in ("jax", "torch")])
def test_core_tests_pass_on(backend):
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    if backend == "jax":  # every retrace compiles again: XLA's optimizations cost more than these tiny steps
        env["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_backend_optimization_level=0".strip()
    env.pop("PYTEST_XDIST_WORKER", None)
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider", "-rs", *CORE],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stdout[-4000:]
    last = done.stdout.strip().splitlines()[-1]
    assert " passed" in last, last
    assert not re.search(r"\b(failed|errors?|xfailed|xpassed|deselected)\b", last), last
    skips = re.findall(r"^SKIPPED \[(\d+)\] (\S+): (.*)$", done.stdout, re.MULTILINE)
    not_tensorflow_only = [(where, why) for _, where, why in skips if not why.startswith("TensorFlow-only: ")]
    assert not not_tensorflow_only, not_tensorflow_only
    skipped = re.search(r"(\d+) skipped", last)
    assert (int(skipped.group(1)) if skipped else 0) == sum(int(count) for count, _, _ in skips), last
