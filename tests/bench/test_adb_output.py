"""`parse_benchmark_output` on golden `benchmark_model` outputs of both formats."""

import math
import pathlib
import random

import pytest

from tfsparse.bench.benchmark_model_output import BenchmarkOutput, parse_benchmark_output, parse_stats_line

GOLDEN = pathlib.Path(__file__).parent / "golden"


def test_current_format():
    output = parse_benchmark_output((GOLDEN / "benchmark_model_current.txt").read_text())
    assert isinstance(output, BenchmarkOutput) and not output.legacy
    assert (output.init_us, output.first_inference_us, output.warmup_avg_us, output.inference_avg_us) == (
        38412.0, 5814.7, 3106.4, 2987.35)
    assert output.inference_avg_ms == pytest.approx(2.98735)
    assert (output.init_memory_mb, output.overall_memory_mb, output.peak_memory_mb) == (12.3516, 15.0625, 19.7852)
    warmup, timed = output.stats
    assert warmup == {"count": 161, "first": 5814.7, "curr": 2873, "min": 2790, "max": 5814.7, "avg": 3106.4,
                      "std": 401, "p5": 2801, "median": 2990, "p95": 3650}
    assert math.isnan(timed.pop("std"))
    assert timed == {"count": 336, "first": 2950, "curr": 2881, "min": 2779, "max": 4012, "avg": 2987.35,
                     "p5": 2791, "median": 2954, "p95": 3377}


def test_legacy_format_with_exponents_and_nan():
    output = parse_benchmark_output((GOLDEN / "benchmark_model_legacy.txt").read_text())
    assert output.legacy and output.first_inference_us is None
    assert (output.warmup_avg_us, output.init_us, output.inference_avg_us) == (5814700.0, 120310.0, 5754200.0)
    assert output.inference_avg_ms == pytest.approx(5754.2)
    assert (output.init_memory_mb, output.overall_memory_mb, output.peak_memory_mb) == (3.0625, 68.4883, None)
    warmup, timed = output.stats
    assert warmup == {"count": 1, "curr": 5814700}
    assert timed["first"] == 5814700.0 and timed["avg"] == 5754200.0 and math.isnan(timed["std"])
    assert "p5" not in timed


def test_crashed_run_has_no_timing_line():
    with pytest.raises(ValueError, match="no timing line .*the run probably failed"):
        parse_benchmark_output((GOLDEN / "benchmark_model_crash.txt").read_text())
    with pytest.raises(ValueError, match="Expected the output of benchmark_model as a string"):
        parse_benchmark_output(b"Inference timings in us: ...")


def test_statistics_keys_in_any_order():
    pairs = ["count=50", "first=1.2e+03", "curr=1100", "min=1000", "max=1.5e3", "avg=1250.5", "std=nan",
             "p5=1010", "median=1200", "p95=1450"]
    expected = parse_stats_line(" ".join(pairs))
    for seed in range(5):
        random.Random(seed).shuffle(pairs)
        shuffled = parse_stats_line("INFO: " + " ".join(pairs))
        assert math.isnan(shuffled.pop("std"))
        assert shuffled == {k: v for k, v in expected.items() if k != "std"}
    assert expected["first"] == 1200.0 and expected["max"] == 1500.0
    assert parse_stats_line("Memory footprint delta from the start of the tool (MB): init=3 overall=4") is None
    assert parse_stats_line("Min num runs: [50]") is None


def test_nan_and_exponent_summary_numbers():
    output = parse_benchmark_output(
        "Inference timings in us: Init: 1.5E+04, First inference: nan, Warmup (avg): -nan, Inference (avg): 8.1e2")
    assert output.init_us == 15000.0 and output.inference_avg_us == 810.0
    assert math.isnan(output.first_inference_us) and math.isnan(output.warmup_avg_us)
    assert output.stats == () and output.peak_memory_mb is None
