"""The interleaved timing loop shared by the benchmark runners.

Models are invoked in turn (A, B, A, B, ...) so that drifts of the machine
(frequency scaling, other load) hit both alike; the same holds for the
warm-up invokes.

Example:

>>> from tfsparse.bench.timing import interleaved
>>> order = []
>>> times = interleaved([lambda: order.append("A"), lambda: order.append("B")], runs=2, warmup=1)
>>> order, [len(t) for t in times]
(['A', 'B', 'A', 'B', 'A', 'B'], [2, 2])
"""

from __future__ import annotations

import time

from absl import logging

#: Seconds between progress messages.
PROGRESS_SECONDS = 10.0


def interleaved(invokes, *, runs, warmup, clock=None, labels=None) -> list:
    """Calls each of `invokes` in turn, `warmup` untimed then `runs` timed rounds.

    Args:
        invokes: Callables taking no arguments (one per model).
        runs: Timed rounds.
        warmup: Untimed rounds first.
        clock: A seconds clock. Defaults to `None` (`time.perf_counter`).
        labels: Names for progress messages. Defaults to `None`.

    Returns:
        One list per callable of its `runs` durations in milliseconds.

    Example:

    >>> from tfsparse.bench.timing import interleaved
    >>> ticks = iter(range(100))
    >>> interleaved([lambda: None], runs=3, warmup=0, clock=lambda: next(ticks) / 1000)
    [[1.0, 1.0, 1.0]]
    """
    clock = clock or time.perf_counter
    labels = labels or [f"model {i}" for i in range(len(invokes))]
    for _ in range(warmup):
        for invoke in invokes:
            invoke()
    times = [[] for _ in invokes]
    started = last_report = clock()
    for run in range(runs):
        for invoke, durations in zip(invokes, times):
            start = clock()
            invoke()
            durations.append((clock() - start) * 1000.0)
        now = clock()
        if now - last_report >= PROGRESS_SECONDS and run + 1 < runs:
            last_report = now
            medians = ", ".join(f"{label} median {sorted(t)[len(t) // 2]:.3f} ms" for label, t in zip(labels, times))
            logging.info("bench: %d/%d runs in %.0f s (%s)", run + 1, runs, now - started, medians)
    return times
