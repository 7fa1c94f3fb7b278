import subprocess
import sys


def test_usage_lists_every_command(cli):
    status, out, _ = cli("--help")
    assert status == 0
    for command in ("list", "prune", "export", "inspect", "bench", "demo"):
        assert command in out


def test_unknown_command_exits_2(cli):
    status, _, err = cli("prnue")
    assert status == 2 and "unknown command 'prnue'" in err


def test_missing_required_flag_exits_2(cli):
    status, _, err = cli("export", "--output=x.tflite")
    assert status == 2 and "--model" in err


def test_bad_flag_value_exits_2(cli):
    status, _, err = cli("export", "--model=a.keras", "--output=b.tflite", "--target=fast")
    assert status == 2 and "target" in err


def test_command_help_shows_flags(cli):
    status, out, _ = cli("prune", "--help")
    assert status == 0 and "--target_sparsity" in out and "--strategy_args" in out


def test_console_script_is_installed():
    proc = subprocess.run([sys.executable, "-m", "tfsparse.cli.main", "list"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "gmp" in proc.stdout and "tfsparse.strategies.gmp:GMP" in proc.stdout


def test_flags_reset_between_invocations(cli, tmp_path):
    from tfsparse.cli import bench_command

    cli("bench", tmp_path / "missing.tflite", "--threads=3", "--runs=7")
    assert bench_command._THREADS.value == 3
    cli("bench", tmp_path / "missing.tflite")
    assert bench_command._THREADS.value == 1 and bench_command._RUNS.value == 20
