"""tools/bench_backends.py: one process per backend, the table it writes."""

import pytest

from tools import bench_backends


def test_a_missing_backend_is_listed_not_measured(monkeypatch):
    monkeypatch.setattr(bench_backends.importlib.util, "find_spec", lambda name: None)
    assert bench_backends.measure("torch", 0.25, 1, 4) == {"missing": "torch is not installed"}


def test_render_writes_a_row_per_backend_with_the_command():
    body = bench_backends.render({
        "tensorflow": {"dense_ms": 50.0, "gmp_ms": 55.0, "ratio": 1.1, "low": 1.05, "high": 1.2, "keras": "3"},
        "torch": {"missing": "torch is not installed"},
    }, "python tools/bench_backends.py --rounds=1")
    assert "`python tools/bench_backends.py --rounds=1`" in body
    assert "| tensorflow | 50.0 ms | 55.0 ms | 1.100x | 1.050x-1.200x |" in body
    assert "| torch | not measured: torch is not installed |" in body


def test_unknown_backend_is_refused():
    with pytest.raises(SystemExit):
        bench_backends.main(["--backends=theano"])


@pytest.mark.slow
def test_a_real_run_on_tensorflow_writes_the_section(tmp_path):
    output = tmp_path / "BENCHMARKS.md"
    bench_backends.main(["--width=0.25", "--rounds=1", "--steps=4", "--backends=tensorflow", f"--output={output}"])
    text = output.read_text()
    assert "## Backends" in text and "| tensorflow | " in text and "x-" in text
