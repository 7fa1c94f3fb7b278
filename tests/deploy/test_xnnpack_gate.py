"""Target `xnnpack` is refused unless XNNPACK's sparse path will fire (`allow_ineligible` overrides)."""

import json
import os
import warnings

import keras
import pytest
from xnnpack_variants import prune_1x1

from tfsparse.deploy import convert as convert_module
from tfsparse.deploy import IneligibleError, export, inspect_tflite
from tfsparse.model_source import load_model_source

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _mlp():
    return keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)], name="mlp")


def test_refused_export_lists_the_reasons_and_writes_nothing(tmp_path):
    with pytest.raises(IneligibleError) as info:
        export(_mlp(), tmp_path / "m.tflite", target="xnnpack")
    assert isinstance(info.value, ValueError)
    assert [r.split(":")[0] for r in info.value.reasons] == ["no sparse-encoded weights (DENSIFY ops)", "no convolution"]
    message = str(info.value)
    assert message.startswith("Invalid value received for argument `target`.")
    assert "will not take XNNPACK's sparse path:\n  - no sparse-encoded weights" in message
    assert "\n  - no convolution: there is no region XNNPACK could run sparse\n" in message
    assert "tfsparse inspect --xnnpack" in message and "target='sparse'" in message
    assert "allow_ineligible=True" in message and message.endswith("Received: target='xnnpack'")
    assert os.listdir(tmp_path) == []


def test_refused_export_leaves_an_existing_file_untouched(tmp_path):
    path = tmp_path / "m.tflite"
    path.write_bytes(b"user data")
    with pytest.raises(ValueError, match="will not take XNNPACK's sparse path"):
        export(_mlp(), path, target="xnnpack", overwrite=True)
    assert path.read_bytes() == b"user data"
    assert os.listdir(tmp_path) == ["m.tflite"]  # no temporary file left either


def test_refusal_happens_before_verification(tmp_path, monkeypatch):
    def must_not_run(*args, **kwargs):
        raise AssertionError("verified a file that is refused anyway")

    monkeypatch.setattr(convert_module, "verify_tflite", must_not_run)
    with pytest.raises(ValueError, match="will not take XNNPACK's sparse path"):
        export(_mlp(), tmp_path / "m.tflite", target="xnnpack")


def test_allow_ineligible_writes_the_file_and_warns(tmp_path):
    path = tmp_path / "m.tflite"
    with pytest.warns(UserWarning, match=r"(?s)Wrote .*m\.tflite with allow_ineligible=True, but XNNPACK's "
                                         r"sparse path will not fire.*- no convolution") as record:
        result = export(_mlp(), path, target="xnnpack", allow_ineligible=True)
    assert len(record) == 1 and record[0].filename == __file__  # points at the caller
    assert path.stat().st_size == result.size_bytes and result.verification.passed
    assert [t.shape for t in inspect_tflite(path).inputs] == [(1, 8)]  # still batch 1
    assert result.xnnpack_lint["fires"] is False
    assert any(r.startswith("no convolution") for r in result.xnnpack_lint["reasons"])
    data = json.loads(json.dumps(result.to_dict()))
    assert data["xnnpack_lint"] == result.xnnpack_lint
    assert "XNNPACK sparse  will NOT fire: no sparse-encoded weights" in str(result)


def test_eligible_mobilenet_v1_exports_without_warning(tmp_path):
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        model = load_model_source("models/mobilenet_v1.py:mobilenet_v1", input_shape=(64, 64, 3), num_classes=10,
                                  width=0.25, blocks=6)
    finally:
        os.chdir(cwd)
    prune_1x1(model, 0.9)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = export(model, tmp_path / "v1.tflite", target="xnnpack")
    assert result.xnnpack_lint == {"fires": True, "reasons": []}
    assert result.to_dict()["xnnpack_lint"]["fires"] is True
    assert "XNNPACK sparse  predicted to fire" in str(result)
    assert result.sparse_tensors and result.verification.passed


@pytest.mark.parametrize("target", ["dense", "sparse"])
def test_other_targets_have_no_verdict(tmp_path, target):
    result = export(_mlp(), tmp_path / "m.tflite", target=target, verify=False)
    assert result.xnnpack_lint is None and result.to_dict()["xnnpack_lint"] is None
    assert "XNNPACK" not in str(result)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"target": "sparse", "allow_ineligible": True}, r"Expected False unless target='xnnpack'.*"
                                                          r"target='sparse'. Received: allow_ineligible=True"),
        ({"target": "int8", "allow_ineligible": True, "representative_data": [[0.0] * 8]}, ".*target='int8'"),
        ({"target": "xnnpack", "allow_ineligible": "yes"}, "Expected a bool. Received: allow_ineligible='yes'"),
    ],
)
def test_allow_ineligible_is_checked_before_any_work(tmp_path, monkeypatch, kwargs, match):
    def must_not_run(model):
        raise AssertionError("export did work before checking allow_ineligible")

    monkeypatch.setattr(convert_module, "finalize", must_not_run)
    with pytest.raises(ValueError, match=r"Invalid value received for argument `allow_ineligible`\. " + match):
        export(_mlp(), tmp_path / "m.tflite", **kwargs)
    assert os.listdir(tmp_path) == []
