"""The adb target, against a fake `adb` executable put first on PATH.

The fake (a Python script) logs every argv, answers `devices -l` and
`getprop` from a config file, keeps pushed files under `device/` (so that the
cleanup can be checked on the "device" itself) and prints a configured
`benchmark_model` output for each run.
"""

import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import textwrap

import pytest

from tfsparse.bench import bench
from tfsparse.bench.adb import REMOTE_DIR, benchmark_command, parse_target
from tfsparse.bench.adb_device import AdbDevice, AdbError, parse_devices, select_device
from tfsparse.cli.main import main

GOLDEN = pathlib.Path(__file__).parent / "golden"
PIXEL = "R58M123ABC"
PIXEL_LINE = f"{PIXEL}         device usb:1-1 product:panther model:Pixel_7 device:panther transport_id:3\n"
DEVICES_ONE = f"List of devices attached\n{PIXEL_LINE}\n"
ARM64 = {"ro.product.cpu.abi": "arm64-v8a", "ro.product.cpu.abilist64": "arm64-v8a"}

FAKE_ADB = textwrap.dedent("""\
    #!{python}
    import json, os, shutil, sys
    here = os.path.dirname(os.path.abspath(__file__))
    config = json.load(open(os.path.join(here, "config.json")))
    args = sys.argv[1:]
    with open(os.path.join(here, "calls.jsonl"), "a") as log:
        log.write(json.dumps(args) + "\\n")
    root = os.path.join(here, "device")
    if args[:1] == ["-s"]:
        args = args[2:]
    if args == ["devices", "-l"]:
        sys.stdout.write(config["devices"])
        sys.exit(0)
    if args[0] == "push":
        destination = root + args[2]
        if not os.path.isdir(os.path.dirname(destination)):
            print("adb: error: failed to copy: remote No such file or directory")
            sys.exit(1)
        shutil.copy(args[1], destination)
        print(args[1] + ": 1 file pushed, 0 skipped. 12.3 MB/s (1024 bytes in 0.001s)")
        sys.exit(0)
    command = args[1:]
    if command[0] == "getprop":
        print(config["props"].get(command[1], ""))
    elif command[:2] == ["mkdir", "-p"]:
        os.makedirs(root + command[2], exist_ok=True)
    elif command[:2] == ["chmod", "+x"]:
        sys.exit(0 if os.path.exists(root + command[2]) else 1)
    elif command[:2] == ["rm", "-rf"]:
        shutil.rmtree(root + command[2], ignore_errors=True)
        sys.exit(config.get("rm_exit", 0))
    elif command[0].endswith("benchmark_model"):
        graph = [a for a in command if a.startswith("--graph=")][0].split("=", 1)[1]
        if not os.path.exists(root + command[0]) or not os.path.exists(root + graph):
            print("/system/bin/sh: " + command[0] + ": not found")
            sys.exit(127)
        outputs = config["runs"][os.path.basename(graph)]
        count_file = os.path.join(here, os.path.basename(graph) + ".count")
        count = int(open(count_file).read()) if os.path.exists(count_file) else 0
        open(count_file, "w").write(str(count + 1))
        run = outputs[min(count, len(outputs) - 1)]
        sys.stdout.write(run["text"])
        sys.exit(run.get("exit", 0))
    """)


def current_output(avg_us, peak_mb=20.0):
    text = (GOLDEN / "benchmark_model_current.txt").read_text()
    text = text.replace("Inference (avg): 2987.35", f"Inference (avg): {avg_us}")
    return text.replace("via periodic monitoring: 19.7852", f"via periodic monitoring: {peak_mb}")


@pytest.fixture
def fake_adb(tmp_path, monkeypatch):
    """Installs the fake adb; returns a namespace to configure it and read its calls."""
    directory = tmp_path / "fake_adb_bin"
    directory.mkdir()
    script = directory / "adb"
    script.write_text(FAKE_ADB.format(python=sys.executable))
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{directory}{os.pathsep}{os.environ.get('PATH', '')}")

    class Fake:
        path = str(script)
        device = directory / "device"

        @staticmethod
        def configure(devices=DEVICES_ONE, props=ARM64, runs=None, rm_exit=0):
            runs = runs or {"model_0.tflite": [{"text": current_output(1000)}],
                            "model_1.tflite": [{"text": current_output(3000)}]}
            (directory / "config.json").write_text(json.dumps(
                {"devices": devices, "props": props, "runs": runs, "rm_exit": rm_exit}))

        @staticmethod
        def calls():
            log = directory / "calls.jsonl"
            return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    Fake.configure()
    return Fake


def elf(path, machine=183):
    path.write_bytes(b"\x7fELF\x02\x01\x01" + bytes(11) + machine.to_bytes(2, "little") + bytes(100))
    return str(path)


@pytest.fixture
def files(tmp_path, tiny_tflite_bytes):
    """A fake arm64 benchmark_model binary and two small .tflite files (only pushed, never loaded)."""
    (tmp_path / "a").mkdir()
    sparse, dense = tmp_path / "a" / "sparse.tflite", tmp_path / "dense.tflite"
    sparse.write_bytes(tiny_tflite_bytes[0])
    dense.write_bytes(tiny_tflite_bytes[1])
    return {"binary": elf(tmp_path / "benchmark_model"), "sparse": str(sparse), "dense": str(dense)}


def test_benchmark_command_argv():
    assert benchmark_command("/data/local/tmp/tfsparse/model_1.tflite", threads=4, runs=50, warmup=5) == [
        "/data/local/tmp/tfsparse/benchmark_model", "--graph=/data/local/tmp/tfsparse/model_1.tflite",
        "--use_xnnpack=true", "--num_threads=4", "--num_runs=50", "--warmup_runs=5",
        "--report_peak_memory_footprint=true"]


def test_interleaved_rounds_exact_commands_and_result(fake_adb, files):
    fake_adb.configure(runs={"model_0.tflite": [{"text": current_output(t, 20 + i)} for i, t in
                                                enumerate([1000, 1100, 900, 1000, 1000])],
                             "model_1.tflite": [{"text": current_output(t)} for t in [3000, 3300, 2900, 3000, 3000]]})
    result = bench(files["sparse"], compare=files["dense"], target="adb", benchmark_binary=files["binary"],
                   threads=4, runs=50, warmup=5)
    adb, s = fake_adb.path, ["-s", PIXEL]
    run = [adb, *s, "shell", "/data/local/tmp/tfsparse/benchmark_model"]
    options = ["--use_xnnpack=true", "--num_threads=4", "--num_runs=50", "--warmup_runs=5",
               "--report_peak_memory_footprint=true"]
    a = [*run, "--graph=/data/local/tmp/tfsparse/model_0.tflite", *options]
    b = [*run, "--graph=/data/local/tmp/tfsparse/model_1.tflite", *options]
    assert fake_adb.calls() == [
        ["devices", "-l"],
        [*s, "shell", "getprop", "ro.product.cpu.abi"],
        [*s, "shell", "getprop", "ro.product.cpu.abilist64"],
        [*s, "shell", "mkdir", "-p", REMOTE_DIR],
        [*s, "push", files["binary"], "/data/local/tmp/tfsparse/benchmark_model"],
        [*s, "push", files["sparse"], "/data/local/tmp/tfsparse/model_0.tflite"],
        [*s, "push", files["dense"], "/data/local/tmp/tfsparse/model_1.tflite"],
        [*s, "shell", "chmod", "+x", "/data/local/tmp/tfsparse/benchmark_model"],
        *[a[1:], b[1:]] * 5,
        [*s, "shell", "rm", "-rf", REMOTE_DIR],
    ]
    assert not (fake_adb.device / REMOTE_DIR.lstrip("/")).exists()
    assert result.target == "adb" and (result.threads, result.runs, result.warmup) == (4, 50, 5)
    assert [m.path for m in result.models] == [files["sparse"], files["dense"]]
    assert result.models[0].times_ms == (1.0, 1.1, 0.9, 1.0, 1.0)
    assert (result.models[0].median_ms, result.models[0].min_ms, result.models[0].max_ms) == (1.0, 0.9, 1.1)
    assert result.speedup == pytest.approx(3.0)
    details = result.details
    assert (details["device"], details["abi"], details["rounds"]) == (PIXEL, "arm64-v8a", 5)
    assert "model:Pixel_7" in details["device_info"]
    assert details["memory_mb"][files["sparse"]] == {"init_delta_median": 12.3516, "overall_delta_median": 15.0625,
                                                     "peak_max": 24.0}
    assert "speedup of sparse.tflite vs dense.tflite: 3.00x" in str(result)
    assert json.loads(json.dumps(result.to_dict()))["details"]["memory_mb"][files["dense"]]["peak_max"] == 20.0


def test_crashed_run_reports_output_tail_and_still_cleans_up(fake_adb, files):
    crash = (GOLDEN / "benchmark_model_crash.txt").read_text()
    fake_adb.configure(runs={"model_0.tflite": [{"text": current_output(1000)}],
                             "model_1.tflite": [{"text": crash, "exit": 1}]})
    with pytest.raises(RuntimeError, match=r"(?s)benchmark_model failed on .*dense.tflite \(round 1/5, exit status "
                                           r"1\).*Didn't find op for builtin opcode.*Benchmarking failed\."):
        bench(files["sparse"], compare=files["dense"], target="adb", benchmark_binary=files["binary"])
    calls = fake_adb.calls()
    assert calls[-1] == ["-s", PIXEL, "shell", "rm", "-rf", REMOTE_DIR]
    assert sum("--graph=" in " ".join(c) for c in calls) == 2
    assert not (fake_adb.device / REMOTE_DIR.lstrip("/")).exists()


def test_run_without_timing_line_is_an_error_even_with_exit_zero(fake_adb, files, caplog):
    fake_adb.configure(runs={"model_0.tflite": [{"text": "Segmentation fault\n"}]}, rm_exit=1)
    with pytest.raises(RuntimeError, match="(?s)no timing line.*Segmentation fault"):
        bench(files["sparse"], target="adb", benchmark_binary=files["binary"])
    assert fake_adb.calls()[-1][-3:] == ["rm", "-rf", REMOTE_DIR]


def test_serial_picks_one_of_several_devices(fake_adb, files):
    fake_adb.configure(devices=f"List of devices attached\nemulator-5554 device product:sdk model:sdk\n{PIXEL_LINE}")
    result = bench(files["sparse"], target=f"adb:{PIXEL}", benchmark_binary=files["binary"], runs=3, warmup=1)
    assert result.target == f"adb:{PIXEL}" and result.details["device"] == PIXEL
    assert all(call[:2] == ["-s", PIXEL] for call in fake_adb.calls()[1:])


@pytest.mark.parametrize("devices, props, problem", [
    ("List of devices attached\n\n", ARM64, "No Android device is attached"),
    ("* daemon not running; starting now at tcp:5037\n* daemon started successfully\nList of devices attached\n",
     ARM64, "No Android device is attached"),
    ("List of devices attached\nAAA device usb:1\nBBB device usb:2\n", ARM64,
     r"(?s)2 Android devices are attached:.*AAA.*BBB.*--target=adb:SERIAL"),
    (f"List of devices attached\n{PIXEL} unauthorized usb:1-1 transport_id:2\n", ARM64,
     "has not authorized this computer. Unlock the phone and accept the 'Allow USB debugging\\?' prompt"),
    (f"List of devices attached\n{PIXEL} offline transport_id:2\n", ARM64, "is offline. Reconnect"),
    (DEVICES_ONE, {"ro.product.cpu.abi": "armeabi-v7a", "ro.product.cpu.abilist64": ""},
     "is 32-bit only \\(ABI armeabi-v7a, no 64-bit ABIs\\).*Use a 64-bit \\(arm64-v8a\\) device"),
])
def test_device_problems(fake_adb, files, devices, props, problem):
    fake_adb.configure(devices=devices, props=props)
    with pytest.raises(AdbError, match=problem):
        bench(files["sparse"], target="adb", benchmark_binary=files["binary"])
    assert not any("push" in call for call in fake_adb.calls())


def test_parse_devices_and_select():
    devices = parse_devices("List of devices attached\nAAA\tdevice\nBBB   no permissions (user in plugdev group; are "
                            "your udev rules wrong?); see [http://example.invalid]\n"
                            "192.168.1.7:5555 device product:x\n")
    assert devices == [AdbDevice("AAA", "device", ""),
                       AdbDevice("BBB", "no permissions",
                                 "(user in plugdev group; are your udev rules wrong?); see [http://example.invalid]"),
                       AdbDevice("192.168.1.7:5555", "device", "product:x")]
    assert select_device(devices, "192.168.1.7:5555").serial == "192.168.1.7:5555"
    with pytest.raises(RuntimeError, match="no permissions.*udev rules"):
        select_device(devices, "BBB")
    with pytest.raises(RuntimeError, match="(?s)No attached Android device has the serial 'CCC'.*AAA"):
        select_device(devices, "CCC")
    with pytest.raises(RuntimeError, match="in state 'recovery'"):
        select_device([AdbDevice("AAA", "recovery")])


def test_wrong_binaries_and_targets(fake_adb, files, tmp_path):
    with pytest.raises(ValueError, match="argument `benchmark_binary`. Expected the path of an existing Android "
                                         "benchmark_model.*Received: benchmark_binary=None"):
        bench(files["sparse"], target="adb")
    (tmp_path / "script").write_text("#!/bin/sh\n")
    with pytest.raises(ValueError, match="this file is not ELF"):
        bench(files["sparse"], target="adb", benchmark_binary=tmp_path / "script")
    with pytest.raises(ValueError, match=r"device ABI arm64-v8a \(arm64 \(aarch64\)\); this one is for x86_64"):
        bench(files["sparse"], target="adb", benchmark_binary=elf(tmp_path / "bm_x86", machine=62))
    assert not any("push" in call for call in fake_adb.calls())
    with pytest.raises(ValueError, match="Expected 'adb' or 'adb:SERIAL'.*Received: target='adb:'"):
        bench(files["sparse"], target="adb:", benchmark_binary=files["binary"])
    with pytest.raises(ValueError, match="argument `benchmark_binary`. Expected `None` unless target='adb'"):
        bench(files["sparse"], benchmark_binary=files["binary"])
    with pytest.raises(ValueError, match="Expected one of 'local'.*'adb' or 'adb:SERIAL'.*Received: target='adbx'"):
        bench(files["sparse"], target="adbx")
    assert (parse_target("adb"), parse_target("adb:emulator-5554")) == (None, "emulator-5554")


def test_missing_adb_names_the_debian_package(tmp_path, monkeypatch, files):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="`apt-get install -y adb`"):
        bench(files["sparse"], target="adb", benchmark_binary=files["binary"])


def test_cli_passes_benchmark_binary(fake_adb, files, capsys):
    status = main(["tfsparse", "bench", files["sparse"], f"--compare={files['dense']}", "--target=adb",
                   f"--benchmark_binary={files['binary']}", "--threads=2", "--runs=7", "--json"])
    assert status == 0
    result = json.loads(capsys.readouterr().out)
    assert result["speedup"] == pytest.approx(3.0) and result["details"]["abi"] == "arm64-v8a"
    assert "--num_threads=2" in fake_adb.calls()[8] and "--num_runs=7" in fake_adb.calls()[8]


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_real_adb_without_device(files, monkeypatch):
    """The Debian `adb` (tools/setup.sh installs it) on a machine with no phone attached."""
    adb = shutil.which("adb")
    if adb is None:
        if os.environ.get("CI"):
            pytest.fail("adb is not installed; run tools/setup.sh (it installs the Debian package adb).")
        pytest.skip("adb is not installed (apt-get install -y adb)")
    port = str(_free_port())  # a private adb server, so that no other adb server is touched
    monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", port)
    try:
        with pytest.raises(RuntimeError, match="No Android device is attached"):
            bench(files["sparse"], target="adb", benchmark_binary=files["binary"])
    finally:
        subprocess.run([adb, "kill-server"], env={**os.environ, "ANDROID_ADB_SERVER_PORT": port},
                       capture_output=True, timeout=60, check=False)


def test_cli_reports_device_problems_without_traceback(fake_adb, files, capsys):
    fake_adb.configure(devices=f"List of devices attached\n{PIXEL} unauthorized usb:1-1\n")
    status = main(["tfsparse", "bench", files["sparse"], "--target=adb", f"--benchmark_binary={files['binary']}"])
    err = capsys.readouterr().err
    assert status == 1 and f"tfsparse bench: error: The Android device {PIXEL} has not authorized" in err
    assert "Traceback" not in err
