"""Masks on every Keras 3 backend installed: the README's GMP example and 2:4 N:M give exact zeros.

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
