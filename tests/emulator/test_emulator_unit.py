"""Emulator tests that need no emulator: paths, commands, status, errors, setup logic."""

import json
import os

import pytest

from tfsparse import emulator
from tfsparse.bench import TARGETS, bench
from tfsparse.emulator import build, paths, qemu
from tfsparse.emulator.bench_runner import SCRIPT, parse_report, runner_arguments
from tfsparse.emulator.errors import EmulatorError
from tfsparse.emulator.mirror import configured_mirror, parse_sources


def _fake_builder(calls):
    def builder(directory, progress):
        calls.append(directory)
        os.makedirs(os.path.join(directory, "usr", "bin"))
        with open(os.path.join(directory, paths.PYTHON), "w") as file:
            file.write("")
        os.makedirs(os.path.join(directory, "site"))
        return {"suite": "bookworm", "wheels": "fake"}

    return builder


def test_cache_dir_default_env_and_argument(monkeypatch, tmp_path):
    monkeypatch.delenv(paths.CACHE_ENV, raising=False)
    assert paths.resolve_cache_dir() == os.path.expanduser("~/.cache/tfsparse/arm64")
    monkeypatch.setenv(paths.CACHE_ENV, str(tmp_path / "env"))
    assert paths.resolve_cache_dir() == str(tmp_path / "env")
    assert paths.resolve_cache_dir(tmp_path / "arg") == str(tmp_path / "arg")
    with pytest.raises(ValueError, match="Invalid value received for argument `cache_dir`"):
        paths.resolve_cache_dir(3)


def test_python_command_construction():
    command, env = qemu.python_command("/c", ["script.py", "{}"], qemu="/usr/bin/qemu-aarch64",
                                       base_env={"PYTHONHOME": "/host", "PATH": "/bin"})
    assert command == ["/usr/bin/qemu-aarch64", "/c/usr/bin/python3.11", "script.py", "{}"]
    assert env["QEMU_LD_PREFIX"] == "/c" and env["PYTHONPATH"] == "/c/site"
    assert "PYTHONHOME" not in env and env["PATH"] == "/bin"


def test_runner_arguments_and_report_parsing(tmp_path):
    arguments = runner_arguments([tmp_path / "a.tflite"], threads=2, runs=3, warmup=1, seed=4)
    assert arguments == {"paths": [str(tmp_path / "a.tflite")], "threads": 2, "runs": 3, "warmup": 1, "seed": 4}
    assert os.path.isfile(SCRIPT)
    assert parse_report('noise\n{"models": []}\n') == {"models": []}
    with pytest.raises(EmulatorError, match="no JSON report"):
        parse_report("Segmentation fault\n")


def test_status_of_empty_cache_names_setup(tmp_path):
    state = emulator.status(tmp_path)
    assert not state.ready and not state.built
    assert "tfsparse emulator setup" in state.reason
    assert state.python == str(tmp_path / "usr" / "bin" / "python3.11")
    assert "not ready" in str(state)
    json.dumps(state.to_dict())


def test_run_without_setup_names_setup(tmp_path, monkeypatch):
    with pytest.raises(EmulatorError, match="tfsparse emulator setup"):
        emulator.run_python("-c", "print(1)", cache_dir=tmp_path)
    monkeypatch.setenv(paths.CACHE_ENV, str(tmp_path))
    with pytest.raises(EmulatorError, match="tfsparse emulator setup"):
        TARGETS["arm-emu"]([str(tmp_path / "m.tflite")], threads=1, runs=1, warmup=0, seed=0)


def test_bench_arm_emu_without_setup(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.CACHE_ENV, str(tmp_path / "cache"))
    model = tmp_path / "m.tflite"
    model.write_bytes(b"TFL3")
    with pytest.raises(EmulatorError, match="tfsparse emulator setup"):
        bench(str(model), target="arm-emu", runs=1)


def test_setup_is_idempotent_and_atomic(tmp_path):
    calls = []
    cache = tmp_path / "arm64"
    state = emulator.setup(cache, builder=_fake_builder(calls), progress=None)
    assert state.built and state.versions["wheels"] == "fake"
    manifest = json.loads((cache / paths.MANIFEST_NAME).read_text())
    assert manifest["manifest_version"] == paths.MANIFEST_VERSION
    emulator.setup(cache, builder=_fake_builder(calls), progress=None)
    assert len(calls) == 1  # second run instant
    emulator.setup(cache, builder=_fake_builder(calls), progress=None, force=True)
    assert len(calls) == 2
    assert sorted(os.listdir(tmp_path)) == ["arm64"]  # no temporary folders left


def test_setup_failure_leaves_no_cache(tmp_path):
    def failing(directory, progress):
        open(os.path.join(directory, "partial"), "w").close()
        raise EmulatorError("boom")

    with pytest.raises(EmulatorError, match="boom"):
        emulator.setup(tmp_path / "arm64", builder=failing, progress=None)
    assert os.listdir(tmp_path) == []
    assert not emulator.status(tmp_path / "arm64").built


def test_setup_rebuilds_an_old_manifest(tmp_path):
    calls = []
    cache = tmp_path / "arm64"
    emulator.setup(cache, builder=_fake_builder(calls), progress=None)
    (cache / paths.MANIFEST_NAME).write_text(json.dumps({"manifest_version": 0}))
    assert "another tfsparse version" in emulator.status(cache).reason
    emulator.setup(cache, builder=_fake_builder(calls), progress=None)
    assert len(calls) == 2 and emulator.status(cache).built


def test_setup_refuses_a_foreign_folder(tmp_path):
    (tmp_path / "mine.txt").write_text("x")
    with pytest.raises(EmulatorError, match="Invalid value received for argument `cache_dir`"):
        emulator.setup(tmp_path, builder=_fake_builder([]), progress=None)


def test_missing_tools_are_named(monkeypatch):
    monkeypatch.setattr(build.shutil, "which", lambda name: None)
    monkeypatch.setattr(build.os.path, "exists", lambda name: False)
    with pytest.raises(EmulatorError, match="apt-get install -y qemu-user debootstrap"):
        build.check_tools()


def test_mirror_parsing(tmp_path):
    deb822 = "Types: deb\nURIs: http://m.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n"
    assert parse_sources(deb822, "bookworm") == "http://m.example/debian"
    security = "Types: deb\nURIs: http://m.example/sec\nSuites: bookworm-security\n"
    assert parse_sources(security, "bookworm") is None
    assert parse_sources("deb [arch=amd64] http://m.example/d bookworm main\n", "bookworm") == "http://m.example/d"
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(security + "\n" + deb822)
    assert configured_mirror("bookworm", apt_dir=str(tmp_path)) == "http://m.example/debian"
    with pytest.raises(EmulatorError, match="No Debian mirror"):
        configured_mirror("trixie", apt_dir=str(tmp_path))


def test_cli_status_and_bad_action(tmp_path, capsys):
    from tfsparse.cli.main import main

    assert main(["tfsparse", "emulator", "status", f"--cache_dir={tmp_path}"]) == 0
    assert "tfsparse emulator setup" in capsys.readouterr().out
    assert main(["tfsparse", "emulator", "build"]) == 1
    assert "Expected one of setup, status" in capsys.readouterr().err
