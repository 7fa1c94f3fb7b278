"""The TF Model Optimization side of `tools/compare_tfmot.py`: prunes with tfmot on `tf_keras`.

Run by `tools/compare_tfmot.py` in its own process, with `TF_USE_LEGACY_KERAS=1`:

    TF_USE_LEGACY_KERAS=1 python tools/tfmot_worker.py JOB.json

It imports `tf_keras` and `tensorflow_model_optimization` (never Keras 3 nor
tfsparse), rebuilds the MobileNet-V1-style model of `models/mobilenet_v1.py`
in `tf_keras` (same layers, names and order), loads the dense weights the
driver trained (a `.npz`, one entry per weight in layer order), and for each
seed:

1. "dense + same epochs": the same fine-tuning without pruning (tf_keras);
2. for each target sparsity: `prune_low_magnitude` with
   `PruneForLatencyOnXNNPack()` and `PolynomialDecay(power=3)` over the
   driver's steps, the same optimizer, learning-rate schedule, batch size
   and data order (the driver's permutations, one per epoch), then
   `strip_pruning`, the test accuracy, the zeros of every kernel, and a
   batch-1 `.tflite` converted with `Optimize.EXPERIMENTAL_SPARSITY` (as
   tfmot's XNNPACK guide does).

Then the train-step time of a pruned model (schedule active, updates every
`frequency` steps) relative to dense `tf_keras` training, interleaved
D P D P ... D. Writes the results as JSON to the job's `result` path.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
import warnings

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_model_optimization as tfmot  # noqa: E402
import tf_keras as keras  # noqa: E402

layers = keras.layers
sparsity_api = tfmot.sparsity.keras

# (pointwise filters at width 1.0, depthwise stride) for the 13 blocks: models/mobilenet_v1.py's BLOCKS.
BLOCKS = (
    (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1),
)
STARTED = time.time()


def log(message):
    print(f"[tfmot {time.strftime('%H:%M:%S')} {time.time() - STARTED:5.0f} s] {message}", flush=True)


def _filters(base, width):
    return max(8, int(base * width + 4) // 8 * 8)


def _bn_relu(x, name):
    x = layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
    return layers.ReLU(6.0, name=f"{name}_relu")(x)


def mobilenet_v1(input_shape=(32, 32, 3), num_classes=10, width=1.0, dropout=0.1, batch_size=None,
                 min_feature_size=2):
    """`models/mobilenet_v1.py:mobilenet_v1` in `tf_keras`: the same layers, names and order."""
    inputs = keras.Input(tuple(input_shape), batch_size=batch_size, name="image")
    x = layers.ZeroPadding2D(1, name="stem_pad")(inputs)
    x = layers.Conv2D(_filters(32, width), 3, strides=2, use_bias=False, name="stem_conv")(x)
    x = _bn_relu(x, "stem")
    size = min(input_shape[0], input_shape[1]) // 2
    for index, (filters, stride) in enumerate(BLOCKS, start=1):
        name = f"block{index}"
        if stride == 2 and (size + 1) // 2 < min_feature_size:
            stride = 1
        size = (size + 1) // 2 if stride == 2 else size
        if stride == 2:
            x = layers.ZeroPadding2D(1, name=f"{name}_pad")(x)
        x = layers.DepthwiseConv2D(3, strides=stride, padding="valid" if stride == 2 else "same", use_bias=False,
                                   name=f"{name}_dw")(x)
        x = _bn_relu(x, f"{name}_dw")
        x = layers.Conv2D(_filters(filters, width), 1, use_bias=False, name=f"{name}_pw")(x)
        x = _bn_relu(x, f"{name}_pw")
    x = layers.GlobalAveragePooling2D(keepdims=True, name="pool")(x)
    x = layers.Flatten(name="flatten")(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name=f"mobilenet_v1_{width:g}")


def load_weights(model, path, names):
    """Sets the weights of `model`'s weighted layers, in order, from the driver's `.npz`; checks names and shapes."""
    weighted = [layer for layer in model.layers if layer.weights]
    got = [layer.name for layer in weighted]
    if got != list(names):
        raise ValueError(f"layer order differs from the driver's model: {got} != {list(names)}")
    with np.load(path) as arrays:
        for index, layer in enumerate(weighted):
            values = [arrays[f"{index:03d}_{j}"] for j in range(len(layer.weights))]
            layer.set_weights(values)
    return model


def build_dense(job):
    model = mobilenet_v1(job["input_shape"], job["num_classes"], job["width"])
    return load_weights(model, job["dense_weights"], job["layer_names"])


def compile_model(model, job, total_steps):
    schedule = keras.optimizers.schedules.CosineDecay(job["learning_rate"], decay_steps=max(1, total_steps),
                                                      alpha=job["lr_alpha"])
    model.compile(optimizer=keras.optimizers.Adam(schedule),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    return model


def kernel_sparsity(model):
    """`{layer name: fraction of zero kernel values}` of every Conv2D, DepthwiseConv2D and Dense layer."""
    result = {}
    for layer in model.layers:
        if isinstance(layer, (layers.Conv2D, layers.DepthwiseConv2D, layers.Dense)):
            kernel = layer.get_weights()[0]
            result[layer.name] = float(1.0 - np.count_nonzero(kernel) / kernel.size)
    return result


class StepTimer(keras.callbacks.Callback):
    """Wall time per training batch (seconds), as `tools/step_timer.py` does for Keras 3."""

    def __init__(self):
        super().__init__()
        self.times = []

    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter() - self._start)


def train(model, data, orders, job, callbacks=()):
    """Fine-tunes one epoch per row of `orders` (the driver's data order, no shuffling); returns test accuracy."""
    for order in orders:
        model.fit(data["x_train"][order], data["y_train"][order], batch_size=job["batch_size"], epochs=1,
                  shuffle=False, verbose=0, callbacks=list(callbacks))
    return float(model.evaluate(data["x_test"], data["y_test"], batch_size=256, verbose=0, return_dict=True)
                 ["accuracy"])


def prune(model, target, steps):
    schedule = sparsity_api.PolynomialDecay(initial_sparsity=0.0, final_sparsity=target, begin_step=steps["begin_step"],
                                            end_step=steps["end_step"], power=3, frequency=steps["frequency"])
    return sparsity_api.prune_low_magnitude(model, pruning_schedule=schedule,
                                            pruning_policy=sparsity_api.PruneForLatencyOnXNNPack())


def convert(model, job, path, sample):
    """Writes the batch-1 sparse `.tflite` of `model`; returns the max |tflite - tf_keras| on `sample`."""
    fixed = mobilenet_v1(job["input_shape"], job["num_classes"], job["width"], batch_size=1)
    fixed.set_weights(model.get_weights())
    converter = tf.lite.TFLiteConverter.from_keras_model(fixed)
    converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
    content = converter.convert()
    with open(path + ".part", "wb") as handle:
        handle.write(content)
    os.replace(path + ".part", path)
    return _max_error(content, fixed, sample)


def _max_error(content, model, sample):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            interpreter = tf.lite.Interpreter(model_content=content)
    except Exception as error:  # noqa: BLE001 - the check is optional; the driver says so
        log(f"no TFLite interpreter to verify the file ({type(error).__name__}: {error})")
        return None
    interpreter.allocate_tensors()
    given, output = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    worst = 0.0
    for image in sample:
        interpreter.set_tensor(given["index"], image[None])
        interpreter.invoke()
        expected = model(image[None], training=False).numpy()
        worst = max(worst, float(np.max(np.abs(interpreter.get_tensor(output["index"]) - expected))))
    return worst


def accuracy_runs(job, data, orders):
    steps, total = job["steps"], job["total_steps"]
    dense = build_dense(job)
    compile_model(dense, job, total)
    start = float(dense.evaluate(data["x_test"], data["y_test"], batch_size=256, verbose=0, return_dict=True)
                  ["accuracy"])
    log(f"width {job['width']:g}: dense weights loaded into tf_keras, test accuracy {start:.4f}")
    baselines, runs = [], []
    for seed in job["seeds"]:
        started = time.time()
        keras.utils.set_random_seed(seed)
        model = compile_model(build_dense(job), job, total)
        accuracy = train(model, data, orders[str(seed)], job)
        baselines.append({"seed": seed, "accuracy": accuracy, "seconds": time.time() - started})
        log(f"seed {seed}: dense + same epochs, test accuracy {accuracy:.4f} ({time.time() - started:.0f} s)")
        for target in job["sparsities"]:
            started = time.time()
            keras.utils.set_random_seed(seed)
            model = compile_model(prune(build_dense(job), target, steps), job, total)
            train(model, data, orders[str(seed)], job, callbacks=[sparsity_api.UpdatePruningStep()])
            stripped = sparsity_api.strip_pruning(model)
            compile_model(stripped, job, total)
            accuracy = float(stripped.evaluate(data["x_test"], data["y_test"], batch_size=256, verbose=0,
                                               return_dict=True)["accuracy"])
            path = os.path.join(job["output_dir"], f"tfmot_w{job['width']:g}_s{seed}_{round(1000 * target)}.tflite")
            error = convert(stripped, job, path, data["x_test"][:8])
            per_layer = kernel_sparsity(stripped)
            pruned = [v for k, v in per_layer.items() if v > 0]
            runs.append({"seed": seed, "target": target, "accuracy": accuracy, "layers": per_layer, "tflite": path,
                         "max_abs_error": error, "seconds": time.time() - started})
            log(f"seed {seed}: tfmot {target:g}: {len(pruned)} kernels pruned, test accuracy {accuracy:.4f}, "
                f"{os.path.getsize(path)} bytes ({time.time() - started:.0f} s)")
    return start, baselines, runs


def step_times(job, data):
    """Interleaved D P D P ... D segments: `{"ratios": [...], "dense_ms": [...], "pruned_ms": [...]}`."""
    timing = job["timing"]
    batch, steps, rounds = job["batch_size"], timing["steps"], timing["rounds"]
    x, y = data["x_train"][: batch * steps], data["y_train"][: batch * steps]
    total = (rounds + 1) * steps
    schedule = {"begin_step": 0, "end_step": total + 1, "frequency": timing["frequency"]}  # active throughout
    keras.utils.set_random_seed(job["seeds"][0] + 2)
    dense = compile_model(build_dense(job), job, total)
    pruned = compile_model(prune(build_dense(job), timing["target"], schedule), job, total)

    def segment(model, callbacks):
        timer = StepTimer()
        model.fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=False, callbacks=[timer, *callbacks])
        return statistics.fmean(timer.times[1:] or timer.times)

    ratios, dense_means, pruned_means = [], [], []
    before = segment(dense, [])
    for index in range(rounds + 1):  # round 0 warms up (tracing) and is dropped
        mean = segment(pruned, [sparsity_api.UpdatePruningStep()])
        after = segment(dense, [])
        if index:
            ratios.append(mean / ((before + after) / 2))
            dense_means.append(1000 * before)
            pruned_means.append(1000 * mean)
            log(f"timing round {index}/{rounds}: tfmot {ratios[-1]:.3f}x dense tf_keras")
        before = after
    return {"ratios": ratios, "dense_ms": dense_means, "pruned_ms": pruned_means}


def run(job):
    """Does the job (a dict, see `tools/compare_tfmot.py`) and returns the result dict."""
    data = {name: np.load(path) for name, path in job["data"].items()}
    with np.load(job["orders"]) as arrays:
        orders = {key: arrays[key] for key in arrays.files}
    start, baselines, runs = accuracy_runs(job, data, orders)
    timing = step_times(job, data) if job["timing"]["rounds"] > 0 else {"ratios": [], "dense_ms": [], "pruned_ms": []}
    return {"versions": {"tensorflow": tf.__version__, "tf_keras": keras.__version__,
                         "tensorflow_model_optimization": tfmot.__version__},
            "dense_start_accuracy": start, "dense_same_epochs": baselines, "runs": runs, "timing": timing}


def main(argv):
    if len(argv) != 1:
        print("usage: TF_USE_LEGACY_KERAS=1 python tools/tfmot_worker.py JOB.json", file=sys.stderr)
        return 2
    with open(argv[0], encoding="utf-8") as handle:
        job = json.load(handle)
    result = run(job)
    with open(job["result"] + ".part", "w", encoding="utf-8") as handle:
        json.dump(result, handle, indent=1)
    os.replace(job["result"] + ".part", job["result"])
    log(f"wrote {job['result']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
