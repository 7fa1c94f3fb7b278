"""PNG plots for reports (matplotlib's object API: no global pyplot state).

Example:

>>> import os, tempfile
>>> from tfsparse.plots import bar_chart
>>> path = os.path.join(tempfile.mkdtemp(), "bars.png")
>>> bar_chart({"dense": 1.0, "sparse": 0.4}, path, title="size", ylabel="MB")
>>> os.path.getsize(path) > 0
True
"""

from __future__ import annotations

from matplotlib.figure import Figure

from tfsparse.outputs import atomic_output


def _save(figure, path):
    figure.tight_layout()
    with atomic_output(path) as tmp:
        figure.savefig(tmp, format="png", dpi=110)


def sparsity_plot(history, report, path, *, title="Sparsity") -> None:
    """Two panels: sparsity over steps, and final sparsity per weight.

    Args:
        history: `(step, sparsity)` pairs (e.g. `Strategy.history`).
        report: A `tfsparse.report.SparsityReport`.
        path: The PNG file to write.
        title: Figure title. Defaults to `"Sparsity"`.
    """
    figure = Figure(figsize=(11, 4.5))
    over_time, per_weight = figure.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.6]})
    if history:
        steps, values = zip(*history)
        over_time.step(steps, [100 * v for v in values], where="post", marker=".")
    over_time.set_xlabel("training step")
    over_time.set_ylabel("sparsity of selected weights (%)")
    over_time.set_ylim(0, 100)
    over_time.grid(alpha=0.3)
    over_time.set_title("schedule")
    labels = [f"{r.layer}/{r.weight}" for r in report.rows]
    per_weight.bar(range(len(labels)), [100 * r.sparsity for r in report.rows],
                   color=["tab:blue" if r.masked else "tab:gray" for r in report.rows])
    per_weight.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
    per_weight.set_ylabel("sparsity (%)")
    per_weight.set_ylim(0, 100)
    per_weight.set_title("per weight (gray: not pruned)")
    figure.suptitle(title)
    _save(figure, path)


def bar_chart(values, path, *, title, ylabel) -> None:
    """A labelled bar chart of `{label: value}` written to `path`."""
    figure = Figure(figsize=(5, 4))
    axes = figure.subplots()
    bars = axes.bar(list(values), list(values.values()), color=["tab:gray", "tab:blue", "tab:orange", "tab:green"][: len(values)])
    axes.bar_label(bars, fmt="%.3g")
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    _save(figure, path)
