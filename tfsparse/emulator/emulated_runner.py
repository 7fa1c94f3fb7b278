"""Runs inside the emulated aarch64 Python: time `.tflite` files with tflite-runtime.

Standalone (only numpy and `tflite_runtime`, no tfsparse): the host starts it as
`qemu-aarch64 DIR/usr/bin/python3.11 emulated_runner.py JSON_ARGS` (see
`tfsparse.emulator.bench_runner`). `JSON_ARGS` is
`{"paths": [...], "threads": N, "runs": R, "warmup": W, "seed": S}`, with
optionally `"ops": true`.
Each model gets the same seeded random inputs as the local runner
(`tfsparse.bench.local.random_input`: floats uniform in [0, 1), quantized
integers over their whole range, other integers 0 or 1, booleans random;
a dynamic batch becomes 1). The interpreter is
`tflite_runtime.interpreter.Interpreter(model_path, num_threads=N)`, whose
default delegate is XNNPACK. Warm-up and timed invokes alternate A, B, A,
B, ... The last line printed is one JSON object: per model its times in
milliseconds and, for each output tensor, dtype, shape, SHA-256 and base64
of the bytes after the last invoke.

With `"ops": true` (what `tfsparse.emulator.fc_observation` asks for), each
model also reports its nodes after delegation, `"ops": [[index, op name,
inputs, outputs], ...]` from `Interpreter._get_ops_details()` (the original
ops, then one `DELEGATE` node per XNNPACK partition), and a file that fails
to load or to run is reported, `"error": "..."` with no times or outputs
(and no ops when it did not load), instead of ending the run; the other
files are still timed.
"""

import base64
import hashlib
import json
import sys
import time

try:
    import numpy as np
    from tflite_runtime.interpreter import Interpreter
except ImportError:  # imported on the host (e.g. doctest collection): it only runs under emulation
    if __name__ == "__main__":
        raise


def random_input(detail, rng):
    shape, dtype = tuple(int(d) for d in detail["shape"]), np.dtype(detail["dtype"])
    scale = (detail.get("quantization") or (0.0, 0))[0]
    if np.issubdtype(dtype, np.floating):
        return rng.random(shape).astype(dtype)
    if dtype == np.bool_:
        return rng.random(shape) < 0.5
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        low, high = (info.min, info.max) if scale else (0, 1)
        return rng.integers(low, high, size=shape, endpoint=True).astype(dtype)
    raise ValueError(f"cannot fill input {detail.get('name')!r} of dtype {dtype} with random values")


def load(path, threads, seed):
    interpreter = Interpreter(model_path=path, num_threads=threads)
    for detail in interpreter.get_input_details():
        signature = [int(d) for d in detail.get("shape_signature", detail["shape"])]
        if signature and signature[0] < 0:
            interpreter.resize_tensor_input(detail["index"], [1, *[int(d) for d in detail["shape"][1:]]])
    interpreter.allocate_tensors()
    rng = np.random.default_rng(seed)
    for detail in sorted(interpreter.get_input_details(), key=lambda d: d["index"]):
        interpreter.set_tensor(detail["index"], random_input(detail, rng))
    return interpreter


def outputs(interpreter):
    result = []
    for detail in sorted(interpreter.get_output_details(), key=lambda d: d["index"]):
        value = np.ascontiguousarray(interpreter.get_tensor(detail["index"]))
        data = value.tobytes()
        result.append({"name": detail["name"], "dtype": value.dtype.str, "shape": list(value.shape),
                       "sha256": hashlib.sha256(data).hexdigest(), "base64": base64.b64encode(data).decode()})
    return result


def ops(interpreter):
    """`[[index, op name, inputs, outputs], ...]`: the nodes after delegation."""
    return [[int(op["index"]), str(op["op_name"]), [int(t) for t in op["inputs"]], [int(t) for t in op["outputs"]]]
            for op in interpreter._get_ops_details()]  # pylint: disable=protected-access


def _message(error):
    return str(error).strip() or type(error).__name__


def load_all(args):
    """`(interpreters, errors)`: `None` and the message for a file that failed to load when `"ops"` is set."""
    interpreters, errors = [], []
    for path in args["paths"]:
        try:
            interpreters.append(load(path, args["threads"], args["seed"]))
            errors.append(None)
        except (RuntimeError, ValueError) as error:
            if not args.get("ops"):
                raise
            interpreters.append(None)
            errors.append(_message(error))
    return interpreters, errors


def invoke(interpreters, errors, index, with_ops):
    """Invokes model `index` unless it failed; with `"ops"` a failure is recorded, not raised. Whether it ran."""
    if interpreters[index] is None or errors[index] is not None:
        return False
    try:
        interpreters[index].invoke()
        return True
    except (RuntimeError, ValueError) as error:
        if not with_ops:
            raise
        errors[index] = _message(error)
        return False


def model_report(path, durations, interpreter, error, with_ops):
    if not with_ops:
        return {"path": path, "times_ms": durations, "outputs": outputs(interpreter)}
    return {"path": path, "times_ms": [] if error else durations,
            "outputs": [] if interpreter is None or error else outputs(interpreter),
            "ops": [] if interpreter is None else ops(interpreter), "error": error}


def main(argv):
    args = json.loads(argv[1])
    with_ops = bool(args.get("ops"))
    started = time.perf_counter()
    interpreters, errors = load_all(args)
    load_s = time.perf_counter() - started
    for _ in range(args["warmup"]):
        for index in range(len(interpreters)):
            invoke(interpreters, errors, index, with_ops)
    times = [[] for _ in interpreters]
    for _ in range(args["runs"]):
        for index, durations in enumerate(times):
            interpreter = interpreters[index]
            if interpreter is None or errors[index] is not None:
                continue
            start = time.perf_counter()
            try:
                interpreter.invoke()
            except (RuntimeError, ValueError) as error:
                if not with_ops:
                    raise
                errors[index] = _message(error)
                continue
            durations.append((time.perf_counter() - start) * 1000.0)
    import platform

    try:
        from tflite_runtime import __version__ as runtime
    except ImportError:
        runtime = "unknown"
    print(json.dumps({"machine": platform.machine(), "runtime": f"tflite-runtime {runtime}",
                      "load_seconds": round(load_s, 3),
                      "models": [model_report(path, t, i, e, with_ops)
                                 for path, t, i, e in zip(args["paths"], times, interpreters, errors)]}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
