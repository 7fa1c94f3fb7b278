"""Finding `adb` and checking the Android device the adb target runs on.

Every `adb` call goes through a command runner `runner(argv) -> (returncode,
output)` (stdout and stderr together), so that tests can inject their own.

Example:

>>> from tfsparse.bench.adb_device import parse_devices
>>> parse_devices("List of devices attached\\nR58M123 device usb:1-1 model:Pixel_7\\n")
[AdbDevice(serial='R58M123', state='device', description='usb:1-1 model:Pixel_7')]
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess

#: Seconds before an `adb` call (a push, one benchmark_model run) is abandoned.
ADB_TIMEOUT_S = 600
#: ELF `e_machine` of the binaries each Android ABI runs.
ABI_MACHINES = {"arm64-v8a": 183, "x86_64": 62, "armeabi-v7a": 40, "armeabi": 40, "x86": 3}
_MACHINE_NAMES = {183: "arm64 (aarch64)", 62: "x86_64", 40: "32-bit ARM", 3: "32-bit x86"}


class AdbError(RuntimeError, OSError):
    """A problem with adb, the device, or a run on it (an `OSError`, so `tfsparse bench` reports it cleanly)."""


@dataclasses.dataclass(frozen=True)
class AdbDevice:
    """One line of `adb devices -l`.

    Attributes:
        serial: The device serial (what `adb -s` takes).
        state: `device` when usable; otherwise e.g. `unauthorized`, `offline`, `no permissions`.
        description: The rest of the line (`usb:... product:... model:...`).
    """

    serial: str
    state: str
    description: str = ""


def run_command(argv, timeout=ADB_TIMEOUT_S) -> tuple:
    """Runs `argv`; returns (returncode, stdout and stderr together as text).

    Example:

    >>> import sys
    >>> from tfsparse.bench.adb_device import run_command
    >>> run_command([sys.executable, "-c", "print('hi')"])
    (0, 'hi\\n')
    """
    try:
        completed = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout,
                                   check=False)
    except subprocess.TimeoutExpired as error:
        output = (error.stdout or b"").decode("utf-8", "replace")
        raise AdbError(
            f"`{' '.join(argv)}` did not finish within {timeout} s. Check that the device is responsive "
            f"(unlock it, reconnect the cable) and retry. Its output so far:\n{tail(output)}"
        ) from error
    return completed.returncode, completed.stdout.decode("utf-8", "replace")


def tail(text, lines=20) -> str:
    """The last `lines` lines of `text`, for error messages."""
    return "\n".join(text.rstrip().splitlines()[-lines:]) or "(no output)"


def find_adb(which=shutil.which) -> str:
    """The path of the `adb` executable on `PATH`.

    Raises:
        FileNotFoundError: if `adb` is not installed.

    Example:

    >>> from tfsparse.bench.adb_device import find_adb
    >>> find_adb(which=lambda name: "/usr/bin/" + name)
    '/usr/bin/adb'
    """
    path = which("adb")
    if not path:
        raise FileNotFoundError(
            "The adb target needs the Android Debug Bridge `adb`, which is not on PATH. Install it with "
            "`apt-get install -y adb` (Debian/Ubuntu) or from the Android SDK platform-tools, then retry."
        )
    return path


def parse_devices(text) -> list:
    """The devices listed by `adb devices -l` (daemon messages are skipped).

    Example:

    >>> from tfsparse.bench.adb_device import parse_devices
    >>> [d.state for d in parse_devices("* daemon started successfully\\nList of devices attached\\n"
    ...                                 "a unauthorized usb:1\\nb no permissions (udev); see [x]\\n")]
    ['unauthorized', 'no permissions']
    """
    devices = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("*") or line.lower().startswith("list of devices") or len(line.split()) < 2:
            continue
        serial, rest = line.split(None, 1)
        if rest.startswith("no permissions"):
            devices.append(AdbDevice(serial, "no permissions", rest[len("no permissions"):].strip()))
            continue
        state, _, description = rest.partition(" ")
        devices.append(AdbDevice(serial, state, description.strip()))
    return devices


def _listing(devices) -> str:
    return "\n".join(f"  {d.serial}  {d.state}  {d.description}".rstrip() for d in devices)


def select_device(devices, serial=None) -> AdbDevice:
    """The device to use: `serial`, or the only one attached.

    Raises:
        AdbError: if none (or not `serial`) is attached, several are and no
            serial was given, or the device is unauthorized, offline or not
            accessible.

    Example:

    >>> from tfsparse.bench.adb_device import AdbDevice, select_device
    >>> select_device([AdbDevice("a", "device"), AdbDevice("b", "device")], "b").serial
    'b'
    """
    if not devices:
        raise AdbError(
            "No Android device is attached (`adb devices -l` lists none). Connect the phone by USB, enable "
            "Developer options > USB debugging, accept the authorization prompt, and check `adb devices -l`."
        )
    if serial is None:
        if len(devices) > 1:
            raise AdbError(
                f"{len(devices)} Android devices are attached:\n{_listing(devices)}\nChoose one with "
                f"--target=adb:SERIAL (e.g. --target=adb:{devices[0].serial})."
            )
        device = devices[0]
    else:
        matches = [d for d in devices if d.serial == serial]
        if not matches:
            raise AdbError(
                f"No attached Android device has the serial {serial!r}. Attached:\n{_listing(devices)}\n"
                "Use one of these serials in --target=adb:SERIAL."
            )
        device = matches[0]
    problems = {
        "unauthorized": "has not authorized this computer. Unlock the phone and accept the 'Allow USB "
                        "debugging?' prompt (revoke USB debugging authorizations in Developer options and "
                        "reconnect if no prompt appears), then retry",
        "offline": "is offline. Reconnect the cable (or run `adb reconnect`), unlock the phone, and retry",
        "no permissions": "cannot be accessed by this user (no permissions). Set up the udev rules for "
                          "Android devices (or add yourself to the plugdev group) and reconnect",
    }
    if device.state != "device":
        problem = problems.get(device.state, f"is in state {device.state!r}, not 'device'. Reconnect it and "
                                              "check `adb devices -l`")
        raise AdbError(f"The Android device {device.serial} {problem}.")
    return device


def device_abi(runner, adb, serial) -> str:
    """The primary 64-bit ABI of the device (`arm64-v8a` on phones).

    Raises:
        AdbError: if `getprop` fails or the device is 32-bit only.
    """
    values = {}
    for prop in ("ro.product.cpu.abi", "ro.product.cpu.abilist64"):
        code, output = runner([adb, "-s", serial, "shell", "getprop", prop])
        if code != 0:
            raise AdbError(f"`adb shell getprop {prop}` failed on {serial} (exit {code}):\n{tail(output)}")
        values[prop] = output.strip()
    abi = values["ro.product.cpu.abi"]
    abilist64 = [a.strip() for a in values["ro.product.cpu.abilist64"].split(",") if a.strip()]
    if abilist64:
        return abi if abi in abilist64 else abilist64[0]
    if abi in ("arm64-v8a", "x86_64"):
        return abi
    raise AdbError(
        f"The Android device {serial} is 32-bit only (ABI {abi or 'unknown'}, no 64-bit ABIs): the adb target "
        "runs 64-bit benchmark_model binaries (android_arm64). Use a 64-bit (arm64-v8a) device."
    )


def check_binary(path, abi) -> str:
    """Checks that `path` is an executable for `abi`; returns `path`.

    Raises:
        ValueError: if `path` is not a file, not an ELF executable, or for another CPU.

    Example:

    >>> import pathlib, tempfile
    >>> from tfsparse.bench.adb_device import check_binary
    >>> path = pathlib.Path(tempfile.mkdtemp(), "benchmark_model")
    >>> _ = path.write_bytes(b"\\x7fELF\\x02\\x01\\x01" + bytes(11) + (183).to_bytes(2, "little"))
    >>> check_binary(path, "arm64-v8a") == str(path)
    True
    """
    import os

    if path is None or not isinstance(path, (str, os.PathLike)) or not os.path.isfile(path):
        raise ValueError(
            "Invalid value received for argument `benchmark_binary`. Expected the path of an existing Android "
            "benchmark_model executable (android_arm64; see the README section on the adb target). "
            f"Received: benchmark_binary={path!r}"
        )
    path = os.fspath(path)
    with open(path, "rb") as file:
        header = file.read(20)
    if len(header) < 20 or header[:4] != b"\x7fELF":
        raise ValueError(
            "Invalid value received for argument `benchmark_binary`. Expected an Android executable (ELF) such "
            f"as the prebuilt android_arm64 benchmark_model; this file is not ELF. Received: benchmark_binary={path}"
        )
    machine = int.from_bytes(header[18:20], "little" if header[5] == 1 else "big")
    expected = ABI_MACHINES.get(abi)
    if expected is not None and machine != expected:
        raise ValueError(
            f"Invalid value received for argument `benchmark_binary`. Expected a benchmark_model built for the "
            f"device ABI {abi} ({_MACHINE_NAMES[expected]}); this one is for "
            f"{_MACHINE_NAMES.get(machine, f'ELF machine {machine}')}. Received: benchmark_binary={path}"
        )
    return path
