"""The linter's predictions against tflite-runtime 2.14 on emulated aarch64 (slow; needs `tfsparse emulator setup`).

For each file: does the interpreter load it (version 12 is refused), is
there an XNNPACK `DELEGATE` node exactly when an op is predicted
`xnnpack-dense`, and are the outputs right exactly when no op is predicted
`unsupported` (per-channel int8 1x16 weights run, but wrongly)?
"""

import json

import numpy as np
import pytest

from tfsparse.sparse_fc import kernels as K
from tfsparse.sparse_fc import lint

pytestmark = pytest.mark.slow

SCRIPT = r'''
import glob, json, os, sys
import numpy as np
from tflite_runtime.interpreter import Interpreter
folder = sys.argv[1]
x = np.load(os.path.join(folder, "x.npy"))
result = {}
for path in sorted(glob.glob(os.path.join(folder, "*.tflite"))):
    name = os.path.basename(path)[:-len(".tflite")]
    try:
        interpreter = Interpreter(model_path=path, num_threads=1)
        interpreter.allocate_tensors()
    except Exception as error:
        result[name] = {"error": str(error)[:300]}
        continue
    ops = [d["op_name"] for d in interpreter._get_ops_details()]
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    outputs = []
    for i in range(len(x)):
        interpreter.set_tensor(inp["index"], x[i:i + 1])
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(out["index"]).tolist())
    result[name] = {"delegated": "DELEGATE" in ops, "outputs": outputs}
print(json.dumps(result))
'''


def test_predictions_match_tflite_runtime_2_14(emulator_ready, fc, tmp_path):
    from tfsparse.emulator import run_python

    x = fc.inputs()
    variants = {
        "fp32_1x4": (fc.mask_blocks(fc.make_mlp(), 4, 0.9), "float32", False),
        "fp32_random": (fc.mask_random(fc.make_mlp(), 0.9), "float32", False),
        "int8_1x16_channel": (fc.mask_blocks(fc.make_mlp(), 16, 0.9), "int8", False),
        "int8_1x16_tensor": (fc.mask_blocks(fc.make_mlp(), 16, 0.9), "int8", True),
        "int8_1x4": (fc.mask_blocks(fc.make_mlp(), 4, 0.9), "int8", False),
        "hybrid_1x16": (fc.mask_blocks(fc.make_mlp(), 16, 0.9), "hybrid", False),
    }
    folder = tmp_path / "files"
    folder.mkdir()
    np.save(folder / "x.npy", x[:8])
    expected, reports = {}, {}
    for name, (model, mode, per_tensor) in variants.items():
        content = fc.convert(model, tmp_path, mode, x=x, per_tensor=per_tensor)
        (folder / f"{name}.tflite").write_bytes(content)
        expected[name] = np.asarray(model(x[:8]))
        reports[name] = lint(content)
    (tmp_path / "run.py").write_text(SCRIPT)
    observed = json.loads(run_python(str(tmp_path / "run.py"), str(folder), timeout=1200).strip().splitlines()[-1])
    for name, report in reports.items():
        kernels = {v.kernel for v in report.ops}
        seen = observed[name]
        if any("version 12" in r for v in report.ops for r in v.reasons):
            assert "version '12'" in seen.get("error", ""), name
            continue
        assert "error" not in seen, (name, seen)
        assert seen["delegated"] == (K.XNNPACK_DENSE in kernels), name
        got = np.asarray(seen["outputs"]).reshape(expected[name].shape)
        agreement = np.mean(got.argmax(-1) == expected[name].argmax(-1))
        error = np.abs(got - expected[name]).max() / np.abs(expected[name]).max()
        if K.UNSUPPORTED in kernels:  # runs, but wrong
            assert agreement < 0.75 and error > 0.5, (name, agreement, error)
        else:
            assert agreement >= 0.75 and error < 0.2, (name, agreement, error)
    assert K.BUILTIN_SPARSE_1X4 in {v.kernel for v in reports["fp32_1x4"].ops}
    assert K.BUILTIN_SPARSE_1X16 in {v.kernel for v in reports["int8_1x16_tensor"].ops}
    assert K.UNSUPPORTED in {v.kernel for v in reports["int8_1x16_channel"].ops}
