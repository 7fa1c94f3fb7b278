"""Renders the demo's `REPORT.md` from its measured figures.

Example:

>>> from tfsparse.demo_report import accuracy_delta
>>> accuracy_delta({"dense_accuracy": 0.91, "pruned_accuracy": 0.905})
'-0.50 points'
"""

from __future__ import annotations


def accuracy_delta(figures) -> str:
    delta = 100 * (figures["pruned_accuracy"] - figures["dense_accuracy"])
    return f"{delta:+.2f} points"


def render_report(figures, report, timing, arm=None) -> str:
    """Markdown with accuracy, sparsity, sizes, verification and latency."""
    config = figures["config"]
    dense, sparse = figures["dense_export"], figures["sparse_export"]
    return f"""# tfsparse demo report

MobileNet-V1-style network (width {config['width']}, XNNPACK-friendly form) on Fashion-MNIST
(32x32, grayscale replicated to 3 channels): {figures['train_images']} training and
{figures['test_images']} test images. Dense training for {config['dense_epochs']} epoch(s), then GMP
to {config['target_sparsity']:.0%} on the 1x1 convolutions with fine-tuning for
{config['prune_epochs']} epoch(s) ({config['dense_epochs'] + config['prune_epochs']} epochs in all for
the pruned model). Took {figures['seconds']:.0f} s.

Before pruning, `tfsparse.xnnpack.check` found {len(figures['xnnpack_plan']['sparse_layers'])} 1x1 convolutions that
XNNPACK can run sparse, {figures['xnnpack_plan']['sparse_macs_share']:.1%} of the model's MACs: at
{config['target_sparsity']:.0%} sparsity the speedup is at most {figures['xnnpack_plan']['amdahl_bound']:.2f}x
(Amdahl bound). GMP ran with `policy="xnnpack"`, so only those weights were pruned.

## Accuracy (test set)
| model | accuracy |
|---|---|
| dense ({config['dense_epochs']} epochs) | {figures['dense_accuracy']:.4f} |
| pruned ({figures['pruned_1x1_sparsity']:.1%} of 1x1 weights zero) | {figures['pruned_accuracy']:.4f} |
| difference | {accuracy_delta(figures)} |

![accuracy](accuracy.png)

## Sparsity
1x1 convolutions: {figures['pruned_1x1_sparsity']:.2%} zeros; all prunable weights:
{figures['model_sparsity']:.2%}.

![sparsity](sparsity.png)

```
{report}
```

## .tflite files
| file | bytes | sparse-encoded tensors | verification (max abs error vs Keras) |
|---|---|---|---|
| dense.tflite | {dense['size_bytes']} | {len(dense.get('sparse_tensors', []))} | {_verification(dense)} |
| sparse.tflite | {sparse['size_bytes']} | {len(sparse.get('sparse_tensors', []))} | {_verification(sparse)} |

The sparse file is {sparse['size_bytes'] / dense['size_bytes']:.1%} of the dense one.

![size](size.png)

## Latency on this machine (LiteRT, 1 thread, interleaved runs)
```
{timing}
```
This machine is x86: XNNPACK disables its sparse kernels on x86 CPUs with AVX on purpose, so no
speedup is expected here. The sparse speedup shows on ARM.

## XNNPACK sparse path (linter prediction for sparse.tflite)
{_lint(figures)}

## Emulated aarch64 (XNNPACK, 1 thread, interleaved runs)
{_arm(figures, arm)}
"""


def _arm(figures, arm) -> str:
    if arm is None:
        return (f"Not measured: {figures.get('arm_skipped')}\n\nAfter `tfsparse emulator setup`, run\n"
                "`tfsparse bench sparse.tflite --target=arm-emu --compare=dense.tflite --threads=1 --runs=10`.")
    bound = figures["xnnpack_plan"]["amdahl_bound"]
    return (f"```\n{arm}\n```\nMeasured speedup {arm.speedup:.2f}x = {arm.speedup / bound:.0%} of the Amdahl bound "
            f"({bound:.2f}x). Emulated (qemu) ratios overstate real devices; treat them as a signal, not a device time.")


def _lint(figures) -> str:
    verdict = figures.get("xnnpack_lint") or {}
    if verdict.get("fires"):
        return "Predicted to fire: every rule holds."
    return "Predicted NOT to fire:\n" + "\n".join(f"- {reason}" for reason in verdict.get("reasons", []))


def _verification(export) -> str:
    verification = export.get("verification") or {}
    error = verification.get("max_abs_error")
    return "not run" if error is None else f"{error:.2e} ({'pass' if verification.get('passed', True) else 'FAIL'})"
