"""`bench(..., observe=...)`: the plumbing and printing of sparse-path observations (no emulator needed).

The arm-emu runner and `tfsparse.emulator.observe` are replaced by fakes;
`tests/emulator/test_emulated.py` runs the real ones.
"""

import json

import pytest

from tfsparse.bench import BenchResult, ModelTiming, bench, runner
from tfsparse.cli.main import main
from tfsparse.emulator import observation
from tfsparse.emulator.observation import NOT_ELIGIBLE, Observation

DETAILS = {"runtime": "tflite-runtime 2.14.0", "machine": "aarch64 (qemu-user)"}


@pytest.fixture
def files(tmp_path, tiny_tflite_bytes):
    paths = {}
    for name, content in zip(("sparse", "dense"), tiny_tflite_bytes):
        paths[name] = str(tmp_path / f"{name}.tflite")
        with open(paths[name], "wb") as handle:
            handle.write(content)  # valid, but never loaded: the runner is a fake
    return paths


def _fake_observation(path, *, threads=1, seed=0):
    if path.endswith("sparse.tflite"):
        return Observation(path, eligible=True, fired=True, reason="sparse path fired: ...", max_abs_diff=3.1e-6,
                           output_scale=4.0, sparse_tensors=("w1", "w2"), runtime="tflite-runtime 2.14.0")
    return Observation(path, eligible=False, fired=False, reason=NOT_ELIGIBLE)


@pytest.fixture
def fake_arm_emu(monkeypatch):
    """Replaces the arm-emu runner (sparse 1 ms, dense 4 ms) and `observe`; records the calls."""
    calls = {"run": [], "observe": []}

    def run(paths, *, threads, runs, warmup, seed=0):
        calls["run"].append(list(paths))
        return tuple(ModelTiming(p, (1.0,) * runs if "sparse" in p else (4.0,) * runs) for p in paths), dict(DETAILS)

    def observe(path, **kwargs):
        calls["observe"].append((path, kwargs))
        return _fake_observation(path, **kwargs)

    monkeypatch.setitem(runner.TARGETS, "arm-emu", run)
    monkeypatch.setattr(observation, "observe", observe)
    return calls


def test_arm_emu_observes_each_model_by_default(files, fake_arm_emu):
    result = bench(files["sparse"], compare=files["dense"], target="arm-emu", runs=3, warmup=1, seed=5)
    assert fake_arm_emu["run"] == [[files["sparse"], files["dense"]]]
    assert fake_arm_emu["observe"] == [(files["sparse"], {"threads": 1, "seed": 5}),
                                       (files["dense"], {"threads": 1, "seed": 5})]
    assert [o.path for o in result.observations] == [files["sparse"], files["dense"]]
    assert [(o.eligible, o.fired) for o in result.observations] == [(True, True), (False, False)]
    assert result.speedup == pytest.approx(4.0)


def test_same_file_twice_is_observed_once(files, fake_arm_emu):
    result = bench(files["sparse"], compare=files["sparse"], target="arm-emu", runs=2, warmup=0)
    assert len(fake_arm_emu["observe"]) == 1 and len(result.observations) == 2
    assert result.observations[0] is result.observations[1]
    assert str(result).count("fired (outputs differ") == 1


def test_noobserve_skips_the_observation(files, fake_arm_emu):
    result = bench(files["sparse"], compare=files["dense"], target="arm-emu", runs=2, warmup=0, observe=False)
    assert fake_arm_emu["observe"] == [] and result.observations == ()
    assert "XNNPACK sparse path" not in str(result) and result.to_dict()["observations"] == []
    assert "Emulated (qemu) ratios overstate real devices." in str(result)


def test_table_for_arm_emu_names_the_emulation_and_the_observations(files, fake_arm_emu):
    text = str(bench(files["sparse"], compare=files["dense"], target="arm-emu", runs=3, warmup=1))
    lines = text.splitlines()
    assert lines[0] == ("Emulated aarch64 tflite-runtime XNNPACK latency (arm-emu, 1 thread, 3 interleaved runs "
                        "after 1 warm-up run per model)")
    assert lines[-2] == "Emulated (qemu) ratios overstate real devices."
    assert lines[-3].startswith("  (dense.tflite median / sparse.tflite median")
    assert lines[-1] == ("XNNPACK sparse path: sparse.tflite fired (outputs differ from its dense twin by 3.1e-06); "
                         "dense.tflite not eligible: no sparse-encoded weights")


def test_not_taken_is_printed_as_such():
    result = BenchResult(models=(ModelTiming("s.tflite", (1.0,)),), target="arm-emu", threads=1, runs=1, warmup=0,
                         observations=(Observation("s.tflite", eligible=True, fired=False, reason="not taken ...",
                                                   max_abs_diff=0.0),))
    text = str(result)
    assert text.endswith("Emulated (qemu) ratios overstate real devices.\nXNNPACK sparse path: s.tflite not taken "
                         "(outputs bit-identical to its dense twin)")


def test_observations_round_trip_through_json(files, fake_arm_emu):
    result = bench(files["sparse"], compare=files["dense"], target="arm-emu", runs=2, warmup=0)
    data = json.loads(json.dumps(result.to_dict()))
    assert [o["fired"] for o in data["observations"]] == [True, False]
    assert data["observations"][0]["max_abs_diff"] == pytest.approx(3.1e-6)
    assert data["observations"][0]["sparse_tensors"] == ["w1", "w2"]
    assert BenchResult.from_dict(data) == result


def test_local_target_does_not_observe_by_default(tflite_files, monkeypatch):
    monkeypatch.setattr(observation, "observe", lambda *a, **k: pytest.fail("observed on the local target"))
    result = bench(tflite_files["small"], runs=1, warmup=0)
    assert result.observations == () and result.to_dict()["observations"] == []
    text = str(result)
    assert text.startswith("LiteRT latency (local, ") and "Emulated" not in text and "XNNPACK" not in text
    assert BenchResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result


@pytest.mark.parametrize("target", ["local", "adb", "adb:R58M123ABC"])
def test_observe_true_elsewhere_is_refused_before_any_run(files, monkeypatch, target):
    monkeypatch.setattr(runner.adb, "run_adb", lambda *a, **k: pytest.fail("ran"))
    with pytest.raises(ValueError, match=r"Invalid value received for argument `observe`\. .*needs the emulated "
                                         r"aarch64 XNNPACK \(target='arm-emu'\).*Received: observe=True with "
                                         f"target='{target}'"):
        bench(files["sparse"], target=target, observe=True,
              benchmark_binary=files["dense"] if target.startswith("adb") else None)


def test_observe_must_be_a_bool_or_none(files):
    with pytest.raises(ValueError, match="Expected True, False or None .*Received: observe='yes'"):
        bench(files["sparse"], target="arm-emu", observe="yes")


@pytest.mark.parametrize("target, device, title", [
    ("adb", {"device": "PIXEL7"}, "benchmark_model on PIXEL7 latency (adb, "),
    ("adb:R58M", {}, "benchmark_model on R58M latency (adb:R58M, "),
    ("local", {}, "LiteRT latency (local, "),
    ("somewhere", {}, "Latency (somewhere, "),
])
def test_title_per_target(target, device, title):
    result = BenchResult(models=(ModelTiming("a.tflite", (1.0,)),), target=target, threads=4, runs=1, warmup=0,
                         details=device)
    assert str(result).startswith(title) and "Emulated" not in str(result)


def test_cli_observe_flags(files, fake_arm_emu, capsys):
    assert main(["tfsparse", "bench", files["sparse"], f"--compare={files['dense']}", "--target=arm-emu",
                 "--runs=2", "--warmup=0"]) == 0
    out = capsys.readouterr().out
    assert "Emulated (qemu) ratios overstate real devices." in out
    assert "XNNPACK sparse path: sparse.tflite fired" in out and "dense.tflite not eligible" in out
    assert main(["tfsparse", "bench", files["sparse"], "--target=arm-emu", "--runs=1", "--noobserve",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["observations"] == []
    assert len(fake_arm_emu["observe"]) == 2
    assert main(["tfsparse", "bench", files["sparse"], "--observe", "--runs=1"]) == 1
    assert "needs the emulated aarch64 XNNPACK" in capsys.readouterr().err
