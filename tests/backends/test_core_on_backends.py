"""The core unit tests (masks, GMP, N:M) on JAX and PyTorch, each in a pytest process of its own.

The rest of the suite runs on TensorFlow (its export, emulator and tool tests
need it); `test_backends.py` checks every strategy's result on each backend.
"""

import importlib.util
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORE = ["tests/test_masks.py", "tests/strategies/test_gmp.py", "tests/strategies/test_nm.py"]


@pytest.mark.slow
@pytest.mark.parametrize("backend", [
    pytest.param(name, marks=pytest.mark.skipif(importlib.util.find_spec(name) is None, reason=f"{name} is not installed"))
    for name in ("jax", "torch")])
def test_core_tests_pass_on(backend):
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("PYTEST_XDIST_WORKER", None)
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider", *CORE], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stdout[-4000:]
    assert " passed" in done.stdout and "skipped" not in done.stdout.splitlines()[-1]
