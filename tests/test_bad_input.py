"""Every bad input gives a clear error, and nothing is lost or left behind.

One table of command lines (run in-process through `tfsparse.cli.main`) and
one of API calls. For every case the harness checks, besides the expected
message:

- the exit status (1 for a bad value, 2 for a flag absl rejects) and no
  traceback (CLI), or the exception type (API);
- CLI messages name flags (`--limit`), never the API's argument names;
- the workspace holds exactly the files it held before, unchanged (no output
  folder, no hidden temporary file, no changed input), and the temporary
  directory is empty (no `tfsparse_export_*` folder).

Signals (SIGINT, SIGTERM) are tested on real processes at the end.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings

import keras
import numpy as np
import pytest

from tfsparse.cli.main import COMMANDS, main

UNWRITABLE = "/sys/kernel"  # refuses new files even for root
LONG = "n" * 300  # longer than any file system's name limit (255 bytes)


def _unwritable() -> bool:
    try:
        fd, probe = tempfile.mkstemp(dir=UNWRITABLE)
    except OSError:
        return True
    os.close(fd)
    os.remove(probe)
    return False


BUILDERS = textwrap.dedent(
    """
    import keras

    def tiny(input_shape=(8, 8, 1), num_classes=4):
        return keras.Sequential([keras.Input(input_shape), keras.layers.Conv2D(8, 3, name="conv"),
                                 keras.layers.Flatten(), keras.layers.Dense(num_classes, name="logits")])

    def broken(input_shape=(8, 8, 1), num_classes=4):
        raise TypeError("the builder's own bug")

    def returns_none(input_shape=(8, 8, 1), num_classes=4):
        return None

    def with_lambda(input_shape=(8, 8, 1), num_classes=4):
        return keras.Sequential([keras.Input(input_shape), keras.layers.Lambda(lambda t: t * 2.0),
                                 keras.layers.Flatten(), keras.layers.Dense(num_classes)])
    """
)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """Input files a user might hand tfsparse, good and bad, built once per module."""
    ws = tmp_path_factory.mktemp("bad_input")
    rng = np.random.default_rng(0)
    x, y = rng.random((40, 8, 8, 1), dtype=np.float32), np.arange(40) % 4
    np.savez(ws / "toy.npz", x_train=x, y_train=y, x_test=x[:8], y_test=y[:8])
    np.savez(ws / "empty_train.npz", x_train=x[:0], y_train=y[:0], x_test=x[:8], y_test=y[:8])
    np.savez(ws / "empty_test.npz", x_train=x, y_train=y, x_test=x[:0], y_test=y[:0])
    bad = x.copy()
    bad[3, 0, 0, 0] = np.nan
    np.savez(ws / "nonfinite.npz", x_train=bad, y_train=y, x_test=x[:8], y_test=y[:8])
    (ws / "garbage.npz").write_bytes(b"not an archive")
    (ws / "builders.py").write_text(BUILDERS)
    (ws / "syntax_error.py").write_text("def tiny(:\n")
    (ws / "notes.txt").write_text("not a model")
    for folder in ("folder.keras", "folder.npz", "folder.tflite", "folder_out", "with_report_folder/report.json"):
        (ws / folder).mkdir(parents=True)
    (ws / "done_run").mkdir()
    (ws / "done_run" / "pruned.keras").write_bytes(b"an earlier run's model")
    (ws / "a_file").write_text("a file where a directory is expected")

    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(8, 3, name="conv"),
                              keras.layers.Flatten(), keras.layers.Dense(4, name="logits")])
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=1, verbose=0)
    model.save(ws / "tiny.keras")
    from tfsparse.deploy import export

    export(model, ws / "tiny.tflite", target="dense", verify=False)
    content = (ws / "tiny.tflite").read_bytes()
    (ws / "truncated.tflite").write_bytes(content[:100])
    (ws / "text.tflite").write_text("this is not a flatbuffer")
    (ws / "existing.tflite").write_bytes(content)
    return ws


def _snapshot(root):
    """Every path under `root` with a hash of its content (folders as None)."""
    found = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            found[os.path.relpath(os.path.join(folder, name), root)] = None
        for name in files:
            path = os.path.join(folder, name)
            with open(path, "rb") as handle:
                found[os.path.relpath(path, root)] = hashlib.sha1(handle.read()).hexdigest()
    return found


@pytest.fixture
def untouched(workspace, tmp_path, monkeypatch):
    """Checks after the test that the workspace and the temporary directory are as before."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    monkeypatch.chdir(workspace)
    before = _snapshot(workspace)
    yield workspace
    assert _snapshot(workspace) == before, "the workspace changed: a file was left behind or modified"
    assert os.listdir(temp) == [], f"temporary files left behind: {os.listdir(temp)}"


@dataclasses.dataclass
class Case:
    """A command line and what it must print (every fragment, on stderr)."""

    id: str
    args: tuple
    expect: tuple
    status: int = 1
    needs_unwritable: bool = False

    def __post_init__(self):
        self.expect = (self.expect,) if isinstance(self.expect, str) else tuple(self.expect)


PRUNE = ("prune", "--model=builders.py:tiny", "--data=toy.npz", "--epochs=1", "--batch_size=16")
EXPORT = ("export", "--model=tiny.keras")
CLI_CASES = [
    # --- numbers
    Case("epochs-zero", PRUNE + ("--output=run", "--epochs=0"), ("flag --epochs", "positive integer", "--epochs=0")),
    Case("epochs-negative", PRUNE + ("--output=run", "--epochs=-1"), ("flag --epochs", "--epochs=-1")),
    Case("batch-size-zero", PRUNE + ("--output=run", "--batch_size=0"), ("flag --batch_size", "positive integer")),
    Case("batch-size-negative", PRUNE + ("--output=run", "--batch_size=-8"), "flag --batch_size"),
    Case("learning-rate-zero", PRUNE + ("--output=run", "--learning_rate=0"), ("flag --learning_rate", "greater than 0")),
    Case("learning-rate-nan", PRUNE + ("--output=run", "--learning_rate=nan"), "flag --learning_rate"),
    Case("limit-zero", PRUNE + ("--output=run", "--limit=0"), ("flag --limit", "--limit=0")),
    Case("image-size-zero", PRUNE + ("--output=run", "--image_size=0"), "flag --image_size"),
    Case("channels-zero", PRUNE + ("--output=run", "--channels=0"), "flag --channels"),
    Case("target-sparsity-above-one", PRUNE + ("--output=run", "--target_sparsity=1.5"), "--target_sparsity"),
    Case("target-sparsity-negative", PRUNE + ("--output=run", "--target_sparsity=-0.1"), "--target_sparsity"),
    Case("epochs-not-a-number", PRUNE + ("--output=run", "--epochs=three"), "--epochs", status=2),
    Case("unknown-flag", PRUNE + ("--output=run", "--epoch=3"), "epoch", status=2),
    Case("missing-output", PRUNE, "--output", status=2),
    # --- data
    Case("data-empty-train", ("prune", "--model=builders.py:tiny", "--data=empty_train.npz", "--output=run"),
         ("flag --data", "x_train is empty")),
    Case("data-empty-test", ("prune", "--model=builders.py:tiny", "--data=empty_test.npz", "--output=run"),
         ("flag --data", "x_test is empty")),
    Case("data-folder", ("prune", "--model=builders.py:tiny", "--data=folder.npz", "--output=run"),
         ("flag --data", "is a directory")),
    Case("data-missing", ("prune", "--model=builders.py:tiny", "--data=missing.npz", "--output=run"),
         "does not exist"),
    Case("data-not-an-archive", ("prune", "--model=builders.py:tiny", "--data=garbage.npz", "--output=run"),
         ("flag --data", "not a valid .npz")),
    Case("data-misspelt", ("prune", "--model=builders.py:tiny", "--data=fashion_mnsit", "--output=run"),
         ("flag --data", "Did you mean 'fashion_mnist'")),
    Case("data-not-finite", ("prune", "--model=builders.py:tiny", "--data=nonfinite.npz", "--output=run"), "nan"),
    Case("data-does-not-fit-model", ("prune", "--model=tiny.keras", "--data=toy.npz", "--image_size=16",
                                     "--output=run"), ("flag --model", "shape")),
    # --- model
    Case("model-folder", PRUNE[:1] + ("--model=folder.keras", "--data=toy.npz", "--output=run"),
         ("flag --model", "is a directory")),
    Case("model-missing", ("prune", "--model=missing.keras", "--data=toy.npz", "--output=run"),
         ("flag --model", "does not exist")),
    Case("model-neither", ("prune", "--model=notes.txt", "--data=toy.npz", "--output=run"), "flag --model"),
    Case("builder-raises", ("prune", "--model=builders.py:broken", "--data=toy.npz", "--output=run"),
         ("flag --model", "the builder raised TypeError: the builder's own bug", "builders.py, line")),
    Case("builder-syntax-error", ("prune", "--model=syntax_error.py:tiny", "--data=toy.npz", "--output=run"),
         ("flag --model", "SyntaxError", "line 1")),
    Case("builder-function-missing", ("prune", "--model=builders.py:nope", "--data=toy.npz", "--output=run"),
         "has no function `nope`"),
    Case("builder-returns-none", ("prune", "--model=builders.py:returns_none", "--data=toy.npz", "--output=run"),
         "not a keras.Model"),
    Case("builder-folder", ("prune", "--model=folder_out/x.py:tiny", "--data=toy.npz", "--output=run"),
         "does not exist"),
    Case("lambda-layer", ("prune", "--model=builders.py:with_lambda", "--data=toy.npz", "--output=run"),
         ("Lambda", "register_keras_serializable")),
    # --- strategy
    Case("strategy-unknown", PRUNE + ("--output=run", "--strategy=gmpp"), ("flag --strategy", "'gmp'")),
    Case("target-sparsity-in-strategy-args", PRUNE + ("--output=run", "--strategy_args=target_sparsity=0.5"),
         ("flag --strategy_args", "pass --target_sparsity=0.5")),
    Case("strategy-args-unknown", PRUNE + ("--output=run", "--strategy_args=scopee='erk'"),
         ("did you mean `scope`", "it accepts: ")),
    Case("strategy-args-list", PRUNE + ("--output=run", "--strategy_args=layers=['conv','nope']"),
         "'nope' matches no prunable weight"),
    Case("strategy-args-unbalanced", PRUNE + ("--output=run", "--strategy_args=layers=['conv'"),
         ("flag --strategy_args", "not balanced")),
    Case("oneshot-needs-gmp", PRUNE + ("--output=run", "--strategy=l1", "--oneshot=sparsegpt"), "flag --oneshot"),
    Case("teacher-without-distill", PRUNE + ("--output=run", "--teacher=tiny.keras"), "flag --teacher"),
    Case("distill-alpha", PRUNE + ("--output=run", "--distill", "--distill_alpha=2"), "flag --distill_alpha"),
    Case("distill-temperature", PRUNE + ("--output=run", "--distill", "--distill_temperature=0"),
         "flag --distill_temperature"),
    Case("recovery-lr-compiled", ("prune", "--model=tiny.keras", "--data=toy.npz", "--recovery_lr", "--output=run"),
         ("flag --recovery_lr", "compiled")),
    # --- outputs
    Case("output-is-a-file", PRUNE + ("--output=a_file",), ("flag --output", "it is a file")),
    Case("output-parent-missing", PRUNE + ("--output=missing/run",), ("flag --output", "does not exist")),
    Case("output-parent-is-a-file", PRUNE + ("--output=a_file/run",), ("flag --output", "is a file")),
    Case("output-unwritable", PRUNE + (f"--output={UNWRITABLE}/run",), ("flag --output", "not writable"),
         needs_unwritable=True),
    Case("output-name-too-long", PRUNE + (f"--output={LONG}",), ("flag --output", "bytes long")),
    Case("output-holds-folder", PRUNE + ("--output=with_report_folder", "--overwrite"),
         ("flag --output", "directory named report.json")),
    Case("output-holds-earlier-run", PRUNE + ("--output=done_run",), ("flag --output", "pruned.keras", "--overwrite")),
    # --- export
    Case("export-output-folder", EXPORT + ("--output=folder.tflite",), ("flag --output", "is a directory")),
    Case("export-output-exists", EXPORT + ("--output=existing.tflite",), ("flag --output", "--overwrite")),
    Case("export-output-unwritable", EXPORT + (f"--output={UNWRITABLE}/m.tflite",), ("flag --output", "not writable"),
         needs_unwritable=True),
    Case("export-output-too-long", EXPORT + (f"--output={LONG}.tflite",), ("flag --output", "bytes long")),
    Case("export-output-parent-missing", EXPORT + ("--output=missing/m.tflite",), ("flag --output", "does not exist")),
    Case("export-model-folder", ("export", "--model=folder.keras", "--output=m.tflite"), "is a directory"),
    Case("export-model-not-keras", ("export", "--model=notes.txt", "--output=m.tflite"), "flag --model"),
    Case("export-int8-without-data", EXPORT + ("--output=m.tflite", "--target=int8"), "--representative_data"),
    Case("export-int8-nonfinite-data", EXPORT + ("--output=m.tflite", "--target=int8",
                                                  "--representative_data=nonfinite.npz"), "nan"),
    Case("export-xnnpack-ineligible", EXPORT + ("--output=m.tflite", "--target=xnnpack"), "--allow_ineligible"),
    Case("export-unknown-target", EXPORT + ("--output=m.tflite", "--target=fp8"), "--target", status=2),
    # --- inspect and bench
    Case("inspect-truncated", ("inspect", "truncated.tflite"), ".tflite"),
    Case("inspect-not-a-flatbuffer", ("inspect", "text.tflite"), ".tflite"),
    Case("inspect-folder", ("inspect", "folder.tflite"), "is a directory"),
    Case("inspect-missing", ("inspect", "missing.tflite"), "does not exist"),
    Case("inspect-bad-nm", ("inspect", "tiny.keras", "--nm=5:4"), "--nm"),
    Case("bench-truncated", ("bench", "truncated.tflite"), ".tflite"),
    Case("bench-truncated-on-emulated-arm", ("bench", "truncated.tflite", "--target=arm-emu"),
         "not a valid .tflite flatbuffer"),
    Case("bench-compare-truncated", ("bench", "tiny.tflite", "--compare=truncated.tflite"),
         ("flag --compare", "not a valid .tflite flatbuffer")),
    Case("bench-runs-zero", ("bench", "tiny.tflite", "--runs=0"), "--runs"),
    Case("bench-threads-zero", ("bench", "tiny.tflite", "--threads=0"), "--threads"),
    Case("bench-compare-missing", ("bench", "tiny.tflite", "--compare=missing.tflite"), "does not exist"),
    # --- demo
    Case("demo-output-is-a-file", ("demo", "--quick", "--output=a_file"), ("flag --output", "it is a file")),
    Case("demo-output-parent-missing", ("demo", "--quick", "--output=missing/run"), ("flag --output", "does not exist")),
    # --- compatible
    Case("compatible-output-not-keras", ("compatible", "--model=tiny.keras", "--output=c.h5"),
         ("flag --output", ".keras")),
    Case("compatible-output-is-input", ("compatible", "--model=tiny.keras", "--output=tiny.keras", "--overwrite"),
         ("flag --output", "never replaced")),
]


def _api_names_in(message, command) -> list:
    """Flags of `command` that the message calls "argument `x`" instead of "--x"."""
    import importlib

    module = importlib.import_module(COMMANDS[command][0])
    names = set(module.FLAGS) | set(getattr(module, "ARGUMENT_FLAGS", {}))
    return [name for name in names if f"argument `{name}`" in message]


@pytest.mark.parametrize("case", CLI_CASES, ids=[case.id for case in CLI_CASES])
def test_command_line(case, untouched, capsys):
    if case.needs_unwritable and not _unwritable():
        pytest.skip(f"{UNWRITABLE} is writable here")
    status = main(["tfsparse", *case.args])
    err = capsys.readouterr().err
    assert status == case.status, err
    for fragment in case.expect:
        assert fragment in err, f"{fragment!r} not in: {err}"
    assert "Traceback" not in err
    if case.status == 1:  # one error, said once (a list of reasons may follow on indented lines)
        assert err.startswith(f"tfsparse {case.args[0]}: error: ") and err.count(" error: ") == 1, err
    assert _api_names_in(err, case.args[0]) == [], err


def test_there_are_at_least_sixty_cases():
    assert len(CLI_CASES) + len(API_CASES) >= 60


def test_verbose_adds_the_traceback(untouched, capsys):
    status = main(["tfsparse", *PRUNE, "--output=run", "--model=builders.py:broken", "--verbose"])
    err = capsys.readouterr().err
    assert status == 1 and "Traceback" in err and "the builder's own bug" in err


def test_an_unexpected_error_is_named_and_points_at_verbose(untouched, capsys, monkeypatch):
    from tfsparse.cli import list_command

    def fail(argv):
        raise RuntimeError("a bug")

    monkeypatch.setattr(list_command, "main", fail)
    status = main(["tfsparse", "list"])
    err = capsys.readouterr().err
    assert status == 1 and "RuntimeError: a bug" in err and "--verbose" in err and "Traceback" not in err


# ----------------------------------------------------------------- API cases
def _tiny():
    return keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(8, 3, name="conv"),
                             keras.layers.Flatten(), keras.layers.Dense(4, name="logits")])


def _fit(model, *callbacks, epochs=1):
    rng = np.random.default_rng(0)
    x, y = rng.random((32, 8, 8, 1), dtype=np.float32), np.arange(32) % 4
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=8, epochs=epochs, verbose=0, callbacks=list(callbacks))


def _nonfinite(value):
    x = np.random.default_rng(0).random((16, 8, 8, 1), dtype=np.float32)
    x[2, 1, 1, 0] = value
    return x


def _export_int8(value):
    from tfsparse.deploy import export

    export(_tiny(), "m.tflite", target="int8", representative_data=_nonfinite(value))


def _load(path):
    from tfsparse import data

    data.load(path)


def _recalibrate_nonfinite():
    from tfsparse import recalibrate

    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3), keras.layers.BatchNormalization()])
    recalibrate(model, _nonfinite(np.inf))


def _two_owners(*strategies):
    _fit(_tiny(), *strategies)


def _gmp(**kwargs):
    from tfsparse.strategies.gmp import GMP

    return GMP(**{"target_sparsity": 0.8, "begin_step": 0, "end_step": 2, "frequency": 1, **kwargs})


def _nm(layers=("logits",)):  # the convolution has one input channel: no 2:4 blocks
    from tfsparse.strategies.nm import NM

    return NM(n=2, m=4, layers=list(layers))


def _make_strategy(**kwargs):
    from tfsparse.training import make_strategy

    make_strategy("gmp", **kwargs)


def _parse(text):
    from tfsparse.training import parse_strategy_args

    parse_strategy_args(text)


def _output_path(path, **kwargs):
    from tfsparse.outputs import check_output_path

    check_output_path(path, **kwargs)


def _atomic_failure():
    from tfsparse.outputs import atomic_output

    with atomic_output("m.keras") as tmp:
        raise OSError(28, "No space left on device", tmp)


def _distiller(**kwargs):
    from tfsparse import Distiller

    Distiller(_tiny(), _tiny(), **kwargs)


API_CASES = [
    ("export-int8-nan", lambda: _export_int8(np.nan), ValueError, "finite"),
    ("export-int8-inf", lambda: _export_int8(np.inf), ValueError, "finite"),
    ("recalibrate-inf", _recalibrate_nonfinite, ValueError, "finite"),
    ("load-empty-train", lambda: _load("empty_train.npz"), ValueError, "x_train is empty"),
    ("load-folder", lambda: _load("folder.npz"), ValueError, "is a directory"),
    ("layers-empty-list", lambda: _fit(_tiny(), _gmp(layers=[])), ValueError, "layers=None"),
    ("layers-match-nothing", lambda: _fit(_tiny(), _gmp(layers=["nope"])), ValueError, "nope"),
    ("two-strategies-gmp-nm", lambda: _two_owners(_gmp(), _nm()), ValueError, "logits"),
    ("two-gmps", lambda: _two_owners(_gmp(), _gmp(target_sparsity=0.5)), ValueError, "layers="),
    ("unknown-strategy-argument", lambda: _make_strategy(scopee="erk"), ValueError, "scope"),
    ("strategy-args-syntax", lambda: _parse("layers=[conv"), ValueError, "strategy_args"),
    ("strategy-args-positional", lambda: _parse("0.5"), ValueError, "strategy_args"),
    ("strategy-args-duplicate", lambda: _parse("scope=erk,scope=global"), ValueError, "scope"),
    ("output-path-is-folder", lambda: _output_path("folder.tflite"), ValueError, "is a directory"),
    ("output-path-too-long", lambda: _output_path(LONG + ".tflite"), ValueError, "bytes long"),
    ("output-path-trailing-slash", lambda: _output_path("newdir/"), ValueError, "directory"),
    ("atomic-write-names-final-path", _atomic_failure, OSError, "m.keras: No space left on device"),
    ("distiller-alpha", lambda: _distiller(alpha=1.5), ValueError, "alpha"),
    ("distiller-temperature", lambda: _distiller(temperature=-1), ValueError, "temperature"),
]


@pytest.mark.parametrize("call, error, fragment", [case[1:] for case in API_CASES], ids=[case[0] for case in API_CASES])
def test_api(call, error, fragment, untouched):
    with pytest.raises(error) as raised:
        call()
    assert fragment in str(raised.value)
    if error is ValueError:
        assert re.search(r"Invalid value received for argument `\w+`|Invalid value", str(raised.value))


def test_strategy_args_take_lists():
    from tfsparse.training import parse_strategy_args

    assert parse_strategy_args("layers=['conv', 'logits'],scope=erk,max_layer_sparsity=0.9") == {
        "layers": ["conv", "logits"], "scope": "erk", "max_layer_sparsity": 0.9}


def test_a_schedule_that_ends_after_training_warns(untouched):
    with warnings.catch_warnings(record=True) as caught:  # pytest.warns would re-raise TensorFlow's own warnings
        warnings.simplefilter("always")
        _fit(_tiny(), _gmp(end_step=10_000))
    ours = [str(w.message) for w in caught if issubclass(w.category, UserWarning) and "ends at step" in str(w.message)]
    assert len(ours) == 1 and "10000" in ours[0], ours


def test_strategies_on_disjoint_layers_share_a_fit(untouched):
    _fit(_tiny(), _gmp(layers=["conv"]), _nm(layers=["logits"]))


def test_one_strategy_after_another_in_two_fits(untouched):
    model = _tiny()
    _fit(model, _gmp())
    _fit(model, _nm())


# ------------------------------------------------------------------ signals
def _start(args, cwd, tmp):
    env = dict(os.environ, TMPDIR=str(tmp), TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.Popen([sys.executable, "-m", "tfsparse.cli.main", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(condition, process, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        if process.poll() is not None:
            raise AssertionError(f"the command ended first: {process.communicate()}")
        time.sleep(0.05)
    process.kill()
    raise AssertionError("timed out")


@pytest.mark.slow
@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_a_signal_during_training_leaves_nothing(workspace, tmp_path, signum, status):
    temp = tmp_path / "tmp"
    temp.mkdir()
    before = _snapshot(workspace)
    process = _start(["prune", "--model=builders.py:tiny", "--data=toy.npz", "--epochs=100000", "--batch_size=4",
                      "--output=signal_run"], workspace, temp)
    _wait_for(lambda: (workspace / "signal_run").is_dir(), process)
    time.sleep(3)  # into training
    process.send_signal(signum)
    _, err = process.communicate(timeout=120)
    assert process.returncode == status, err
    assert "interrupted" in err and "Traceback" not in err
    assert _snapshot(workspace) == before
    assert os.listdir(temp) == []


@pytest.mark.slow
def test_sigterm_during_export_removes_the_temporary_savedmodel(workspace, tmp_path):
    temp = tmp_path / "tmp"
    temp.mkdir()
    before = _snapshot(workspace)
    process = _start(["export", "--model=tiny.keras", "--output=signal.tflite", "--target=int8",
                      "--representative_data=toy.npz"], workspace, temp)
    _wait_for(lambda: any(name.startswith("tfsparse_export_") for name in os.listdir(temp)), process)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 143, err
    assert "Traceback" not in err
    assert _snapshot(workspace) == before
    assert os.listdir(temp) == []
