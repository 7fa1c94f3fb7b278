"""Parses the text printed by LiteRT's `benchmark_model` tool.

Both summary formats are understood: the current
`Inference timings in us: Init: I, First inference: F, Warmup (avg): W, Inference (avg): A`
and the legacy `Average inference timings in us: Warmup: W, Init: I, Inference: A`.
Statistics lines are `key=value` pairs in any order (`count= first= curr=
min= max= avg= std=`, optionally `p5= median= p95=`); numbers may be written
as `5.8147e+06` or `nan`.

Example:

>>> from tfsparse.bench.benchmark_model_output import parse_benchmark_output
>>> output = parse_benchmark_output(
...     "count=50 first=1300 curr=1210 min=1190 max=1400 avg=1250.5 std=40\\n"
...     "Inference timings in us: Init: 2100, First inference: 1500, Warmup (avg): 1.3e+03, "
...     "Inference (avg): 1250.5\\n"
...     "Overall peak memory footprint (MB) via periodic monitoring: 12.5\\n")
>>> output.inference_avg_ms, output.peak_memory_mb, output.stats[-1]["count"]
(1.2505, 12.5, 50.0)
"""

from __future__ import annotations

import dataclasses
import re

_NUMBER = r"[-+]?(?:nan|inf(?:inity)?|(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?)"
_CURRENT = re.compile(
    rf"Inference timings in us:\s*Init:\s*(?P<init>{_NUMBER}),\s*First inference:\s*(?P<first>{_NUMBER}),"
    rf"\s*Warmup \(avg\):\s*(?P<warmup>{_NUMBER}),\s*Inference \(avg\):\s*(?P<avg>{_NUMBER})", re.IGNORECASE)
_LEGACY = re.compile(
    rf"Average inference timings in us:\s*Warmup:\s*(?P<warmup>{_NUMBER}),\s*Init:\s*(?P<init>{_NUMBER}),"
    rf"\s*(?:Inference|no stats):\s*(?P<avg>{_NUMBER})", re.IGNORECASE)
_STAT = re.compile(rf"\b([a-z][a-z0-9_]*)=({_NUMBER})(?=\s|$)", re.IGNORECASE)
_MEMORY_DELTA = re.compile(
    r"(?:Memory footprint delta from the start of the tool|Peak memory footprint) \(MB\):"
    rf"\s*init=(?P<init>{_NUMBER})\s+"
    rf"overall=(?P<overall>{_NUMBER})", re.IGNORECASE)
_PEAK = re.compile(rf"Overall peak memory footprint \(MB\) via periodic monitoring:\s*(?P<peak>{_NUMBER})",
                   re.IGNORECASE)
#: Keys of statistics lines; a line is one if it has `count` and another of these.
STAT_KEYS = frozenset({"count", "first", "curr", "min", "max", "avg", "std", "p5", "median", "p95"})


@dataclasses.dataclass(frozen=True)
class BenchmarkOutput:
    """What one `benchmark_model` run reported.

    Attributes:
        inference_avg_us: Average latency of the timed runs, in microseconds.
        init_us: Initialization time in microseconds.
        warmup_avg_us: Average latency of the warm-up runs, in microseconds.
        first_inference_us: The first inference, in microseconds (`None` in the legacy format).
        stats: Each statistics line as a `{key: float}` dict, in output order (the last one is
            normally the timed runs).
        init_memory_mb: Memory footprint delta after initialization (MB), or `None`.
        overall_memory_mb: Memory footprint delta at the end (MB), or `None`.
        peak_memory_mb: Peak memory footprint from periodic monitoring (MB), or `None`.
        legacy: Whether the legacy summary line was found.
    """

    inference_avg_us: float
    init_us: float
    warmup_avg_us: float
    first_inference_us: float | None = None
    stats: tuple = ()
    init_memory_mb: float | None = None
    overall_memory_mb: float | None = None
    peak_memory_mb: float | None = None
    legacy: bool = False

    @property
    def inference_avg_ms(self) -> float:
        """`inference_avg_us` in milliseconds."""
        return self.inference_avg_us / 1000.0


def _float(text) -> float:
    return float(text)


def parse_stats_line(line) -> dict | None:
    """The `key=value` pairs of one statistics line, or `None` if it is none.

    Example:

    >>> from tfsparse.bench.benchmark_model_output import parse_stats_line
    >>> parse_stats_line("std=nan avg=5.8147e+06 count=1 curr=5814700")["avg"]
    5814700.0
    """
    pairs = {key.lower(): _float(value) for key, value in _STAT.findall(line)}
    return pairs if "count" in pairs and len(STAT_KEYS & set(pairs)) >= 2 else None


def parse_benchmark_output(text) -> BenchmarkOutput:
    """Parses the combined stdout/stderr of one `benchmark_model` run.

    Args:
        text: The whole output, as a string.

    Returns:
        A `BenchmarkOutput`; the memory fields are `None` when not printed.

    Raises:
        ValueError: if no timing summary line (current or legacy) is in `text`,
            e.g. because the run crashed.

    Example:

    >>> from tfsparse.bench.benchmark_model_output import parse_benchmark_output
    >>> parse_benchmark_output(
    ...     "Average inference timings in us: Warmup: 5.8147e+06, Init: 900, Inference: nan").legacy
    True
    """
    if not isinstance(text, str):
        raise ValueError(
            "Invalid value received for argument `text`. Expected the output of benchmark_model as a "
            f"string (decode bytes first). Received: text={type(text).__name__}"
        )
    matches = list(_CURRENT.finditer(text))
    legacy = not matches
    if legacy:
        matches = list(_LEGACY.finditer(text))
    if not matches:
        raise ValueError(
            "The benchmark_model output has no timing line ('Inference timings in us: ...' or 'Average "
            "inference timings in us: ...'): the run probably failed. Read its output for the cause."
        )
    summary = matches[-1]
    stats = tuple(s for s in map(parse_stats_line, text.splitlines()) if s is not None)
    delta = list(_MEMORY_DELTA.finditer(text))
    peak = list(_PEAK.finditer(text))
    return BenchmarkOutput(
        inference_avg_us=_float(summary["avg"]),
        init_us=_float(summary["init"]),
        warmup_avg_us=_float(summary["warmup"]),
        first_inference_us=None if legacy else _float(summary["first"]),
        stats=stats,
        init_memory_mb=_float(delta[-1]["init"]) if delta else None,
        overall_memory_mb=_float(delta[-1]["overall"]) if delta else None,
        peak_memory_mb=_float(peak[-1]["peak"]) if peak else None,
        legacy=legacy,
    )
