"""Runs inside the emulated aarch64 Python: time `.tflite` files with tflite-runtime.

Standalone (only numpy and `tflite_runtime`, no tfsparse): the host starts it as
`qemu-aarch64 DIR/usr/bin/python3.11 emulated_runner.py JSON_ARGS` (see
`tfsparse.emulator.bench_runner`). `JSON_ARGS` is
`{"paths": [...], "threads": N, "runs": R, "warmup": W, "seed": S}`.
Each model gets the same seeded random inputs as the local runner
(`tfsparse.bench.local.random_input`: floats uniform in [0, 1), quantized
integers over their whole range, other integers 0 or 1, booleans random;
a dynamic batch becomes 1). The interpreter is
`tflite_runtime.interpreter.Interpreter(model_path, num_threads=N)`, whose
default delegate is XNNPACK. Warm-up and timed invokes alternate A, B, A,
B, ... The last line printed is one JSON object: per model its times in
milliseconds and, for each output tensor, dtype, shape, SHA-256 and base64
of the bytes after the last invoke.
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


def main(argv):
    args = json.loads(argv[1])
    started = time.perf_counter()
    interpreters = [load(path, args["threads"], args["seed"]) for path in args["paths"]]
    load_s = time.perf_counter() - started
    for _ in range(args["warmup"]):
        for interpreter in interpreters:
            interpreter.invoke()
    times = [[] for _ in interpreters]
    for _ in range(args["runs"]):
        for interpreter, durations in zip(interpreters, times):
            start = time.perf_counter()
            interpreter.invoke()
            durations.append((time.perf_counter() - start) * 1000.0)
    import platform

    try:
        from tflite_runtime import __version__ as runtime
    except ImportError:
        runtime = "unknown"
    print(json.dumps({"machine": platform.machine(), "runtime": f"tflite-runtime {runtime}",
                      "load_seconds": round(load_s, 3),
                      "models": [{"path": path, "times_ms": t, "outputs": outputs(i)}
                                 for path, t, i in zip(args["paths"], times, interpreters)]}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
