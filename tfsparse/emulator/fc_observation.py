"""`observe_fc(path)`: which kernel ran each `FULLY_CONNECTED` of a `.tflite` on emulated aarch64.

The file runs under tflite-runtime (XNNPACK its default delegate) on emulated
aarch64, which reports its nodes after delegation: the original ops, then
one `DELEGATE` node per XNNPACK partition with the partition's input and
output tensors. `delegate_partitions` walks back from each `DELEGATE`'s
outputs to their producers, stopping at its inputs (and at graph inputs and
constants): the ops it replaced. Each `FULLY_CONNECTED` is then named with
the vocabulary of `tfsparse.sparse_fc.kernels` (the linter's):

- in a partition: `"xnnpack-dense"`;
- not delegated, with a weight stored block-sparse in the block its type's
  builtin kernel needs (1x4 float32, 1x16 int8): `"builtin-sparse-1x4"` or
  `"builtin-sparse-1x16"`; a float32 weight stored sparse without blocks
  (no `DENSIFY`): `"builtin-random-sparse"`;
- not delegated otherwise: `"builtin-dense"`;
- the runtime cannot run it: the file fails to load because the runtime
  does not know the op's version (e.g. `FULLY_CONNECTED` version 12), or
  the op fails to prepare or invoke: `"unsupported"` (reported, not raised).

`FcKernel.wrong_outputs` marks a builtin sparse kernel that ran in a file
whose outputs disagree with the twin's (the ops whose kernels differ are the
`FULLY_CONNECTED`s; e.g. tflite-runtime 2.14's int8 1x16 kernel with
per-channel weight scales); `FcObservation.effective_kernel_names` counts it
as `"unsupported"`, as `tfsparse.sparse_fc.lint` predicts it.

Outputs cannot tell a float32 block-sparse kernel from a dense one (skipping
exact zeros in the same order gives the same bits), so the evidence is the
partition list, plus a timing and an output comparison against a dense twin
(`tfsparse.emulator.densify.densify_all(..., lower_fc_version=True)`: sparse
weights stored dense and the `FULLY_CONNECTED` version the converter gives
the dense model, so XNNPACK may take it), run interleaved in the same
emulated process.

Example (the walk and the naming, on a hand-made op list):

>>> from tfsparse.emulator.fc_observation import FcWeight, delegate_partitions, observed_kernels
>>> ops = [[0, "DENSIFY", [1], [2]], [1, "FULLY_CONNECTED", [0, 2, -1], [3]],
...        [2, "FULLY_CONNECTED", [3, 4, -1], [5]], [3, "DELEGATE", [0, 1, 4], [5]]]
>>> delegate_partitions(ops)
{3: (0, 1, 2)}
>>> weights = [FcWeight(1, "w1", "float32", "float32", densify=True), FcWeight(2, "w2", "float32", "float32")]
>>> [k.kernel for k in observed_kernels(weights, ops)]
['xnnpack-dense', 'xnnpack-dense']
>>> block = [FcWeight(0, "w", "float32", "float32", block=(1, 4), version=8)]
>>> [k.kernel for k in observed_kernels(block, [[0, "FULLY_CONNECTED", [0, 1, -1], [2]]])]
['builtin-sparse-1x4']
"""

from __future__ import annotations

import dataclasses
import os
import re
import statistics
import tempfile

from tfsparse.errors import check_positive_int, invalid_argument, is_integer
from tfsparse.sparse_fc import kernels as fc_kernels

#: The op name tflite-runtime gives a delegate's node.
DELEGATE = "DELEGATE"
#: The op this module observes.
FULLY_CONNECTED = "FULLY_CONNECTED"
#: Outputs of a file and its twin agree when `max_abs_diff <= tolerance * output scale` (float32 weights)...
FLOAT_TOLERANCE = 1e-4
#: ... or this fraction of it when a `FULLY_CONNECTED` is quantized (requantization may round differently).
QUANTIZED_TOLERANCE = 5e-2
#: The message tflite-runtime gives for an op (version) it does not know.
_UNKNOWN_OP = re.compile(r"Didn't find op for builtin opcode '(?P<name>[A-Z0-9_]+)' version '(?P<version>\d+)'")
_CUSTOM_OP = re.compile(r"Encountered unresolved custom op: (?P<name>[^.\s]+)")
_FAILED_NODE = re.compile(r"Node number (?P<node>\d+) \((?P<name>[A-Za-z0-9_]+)\) failed to (?P<step>prepare|invoke)")


@dataclasses.dataclass(frozen=True)
class FcWeight:
    """What the flatbuffer says about one `FULLY_CONNECTED` (see `fc_weights`).

    Attributes:
        op: The op's index in the main subgraph (the runtime's node index).
        weight: The name of its weight tensor.
        weight_type: The weight's element type (`"float32"`, `"int8"`, ...).
        input_type: The activation input's element type.
        block: The weight's block shape `(out, in)` when it is stored
            block-sparse and read by the op itself, else `None`.
        sparse: Whether the weight is stored sparse and read by the op itself
            (blocked or not).
        densify: Whether the weight reaches the op through a `DENSIFY` op.
        version: The version of the op's operator code.
    """

    op: int
    weight: str
    weight_type: str
    input_type: str
    block: tuple | None = None
    sparse: bool = False
    densify: bool = False
    version: int = 1

    @property
    def encoding(self) -> str:
        """The weight's storage in words."""
        if self.block is not None:
            return f"block-sparse {self.block[0]}x{self.block[1]} {self.weight_type}"
        if self.sparse:
            return f"sparse (no blocks) {self.weight_type}"
        if self.densify:
            return f"sparse {self.weight_type} expanded by DENSIFY"
        return f"dense {self.weight_type}"


@dataclasses.dataclass(frozen=True)
class FcKernel:
    """The kernel observed for one `FULLY_CONNECTED`.

    Attributes:
        op: The op's index.
        kernel: A name of `tfsparse.sparse_fc.kernels.KERNELS`, or `None`
            when the file failed to load for another op.
        delegated: Whether an XNNPACK partition replaced it.
        partition: The index of that `DELEGATE` node, else `None`.
        weight: The name of its weight tensor.
        encoding: Its weight's storage (`FcWeight.encoding`).
        version: The op's version in the file.
        reason: One line: why this kernel.
        wrong_outputs: Whether it ran a builtin sparse kernel in a file whose
            outputs disagree with its dense twin's.
    """

    op: int
    kernel: str | None
    delegated: bool
    partition: int | None
    weight: str
    encoding: str
    version: int
    reason: str
    wrong_outputs: bool = False

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _rows(ops):
    """`(index, name, inputs, outputs)` from runner rows (lists) or `_get_ops_details()` dicts."""
    rows = []
    for op in ops:
        if isinstance(op, dict):
            op = (op["index"], op["op_name"], op["inputs"], op["outputs"])
        index, name, inputs, outputs = op
        rows.append((int(index), str(name), [int(t) for t in inputs], [int(t) for t in outputs]))
    return rows


def delegate_partitions(ops, graph_inputs=()) -> dict:
    """The ops each `DELEGATE` node replaced, from the node list after delegation.

    From each `DELEGATE` node's outputs, walks back to the producing
    (non-delegate) ops, stopping at the node's inputs, at `graph_inputs` and
    at tensors no op produces (constants).

    Args:
        ops: The nodes after delegation, each `[index, op name, inputs,
            outputs]` (what `emulated_runner.py` reports with `"ops"`) or a
            dict of `Interpreter._get_ops_details()`.
        graph_inputs: Tensor indices of the graph's inputs. Defaults to `()`.

    Returns:
        `{delegate node index: (replaced op indices, ascending)}`.

    Example:

    >>> from tfsparse.emulator.fc_observation import delegate_partitions
    >>> ops = [[0, "FULLY_CONNECTED", [0, 1, -1], [2]], [1, "TANH", [2], [3]],
    ...        [2, "FULLY_CONNECTED", [3, 4, -1], [5]], [3, "DELEGATE", [0, 1], [2]], [4, "DELEGATE", [3, 4], [5]]]
    >>> delegate_partitions(ops)
    {3: (0,), 4: (2,)}
    """
    rows = _rows(ops)
    producer = {}
    for index, name, _, outputs in rows:
        if name != DELEGATE:
            for tensor in outputs:
                producer[tensor] = index
    by_index = {row[0]: row for row in rows}
    partitions = {}
    for index, name, inputs, outputs in rows:
        if name != DELEGATE:
            continue
        stop = set(inputs) | {int(t) for t in graph_inputs}
        replaced, pending, seen = set(), list(outputs), set()
        while pending:
            tensor = pending.pop()
            if tensor < 0 or tensor in stop or tensor in seen:
                continue
            seen.add(tensor)
            op = producer.get(tensor)
            if op is None or op in replaced:
                continue
            replaced.add(op)
            pending.extend(by_index[op][2])
        partitions[index] = tuple(sorted(replaced))
    return partitions


def unsupported_op(error) -> tuple | None:
    """`(op name, version)` a load error says the runtime does not know (version `None` for a custom op), or `None`.

    Example:

    >>> from tfsparse.emulator.fc_observation import unsupported_op
    >>> unsupported_op("Didn't find op for builtin opcode 'FULLY_CONNECTED' version '12'. An older version ...")
    ('FULLY_CONNECTED', 12)
    >>> unsupported_op("out of memory") is None
    True
    """
    if not error:
        return None
    match = _UNKNOWN_OP.search(error)
    if match:
        return match["name"], int(match["version"])
    match = _CUSTOM_OP.search(error)
    return (match["name"], None) if match else None


def failed_node(error) -> tuple | None:
    """`(node index, op name, "prepare" | "invoke")` of the node a runtime error names, or `None`.

    Example:

    >>> from tfsparse.emulator.fc_observation import failed_node
    >>> failed_node("fully_connected.cc:410 Unsupported sparse fully-connected weight format.Node number 2 "
    ...             "(FULLY_CONNECTED) failed to invoke.")
    (2, 'FULLY_CONNECTED', 'invoke')
    """
    match = _FAILED_NODE.search(error or "")
    return (int(match["node"]), match["name"], match["step"]) if match else None


def decide_kernel(weight: FcWeight, *, delegated: bool) -> tuple:
    """`(kernel name, reason)` for a `FULLY_CONNECTED` that loaded: delegated or not, and its weight's storage.

    Example:

    >>> from tfsparse.emulator.fc_observation import FcWeight, decide_kernel
    >>> decide_kernel(FcWeight(1, "w", "int8", "int8", block=(1, 16), sparse=True, version=8), delegated=False)[0]
    'builtin-sparse-1x16'
    >>> decide_kernel(FcWeight(1, "w", "int8", "int8", block=(1, 4), sparse=True, version=8), delegated=False)[0]
    'builtin-dense'
    """
    if delegated:
        return fc_kernels.XNNPACK_DENSE, f"delegated to XNNPACK (weight {weight.encoding})"
    wanted = fc_kernels.BLOCK_SHAPES.get(weight.weight_type)
    if weight.block is not None and tuple(weight.block) == wanted and weight.input_type == weight.weight_type:
        kernel = fc_kernels.sparse_kernel_for(weight.weight_type, wanted[1])
        if kernel is not None:
            return kernel, f"not delegated; weight {weight.encoding}, the block the builtin sparse kernel reads"
    if weight.sparse and weight.block is None and weight.weight_type == weight.input_type == "float32":
        return fc_kernels.BUILTIN_RANDOM_SPARSE, f"not delegated; weight {weight.encoding}, read by the op itself"
    if weight.block is not None or weight.sparse:
        if weight.input_type != weight.weight_type:
            why = f"hybrid: {weight.input_type} input"
        elif weight.block is None:
            why = "no blocks"
        elif wanted is None:
            why = f"no builtin sparse kernel for {weight.weight_type}"
        else:
            why = f"the builtin {weight.weight_type} sparse kernel reads {wanted[0]}x{wanted[1]} blocks"
        return fc_kernels.BUILTIN_DENSE, (f"not delegated; weight {weight.encoding} ({why}): named builtin-dense, "
                                          "the kernels vocabulary has no closer name")
    return fc_kernels.BUILTIN_DENSE, (f"not delegated (FULLY_CONNECTED version {weight.version}, {weight.input_type} "
                                      f"input); weight {weight.encoding}")


def observed_kernels(weights, ops, error=None) -> tuple:
    """One `FcKernel` per `FULLY_CONNECTED`, from the flatbuffer's weights and the runtime's node list.

    Args:
        weights: `FcWeight`s (`fc_weights(content)`).
        ops: The nodes after delegation (see `delegate_partitions`); empty
            when the file did not load.
        error: The runtime's error, or `None` when the file loaded and ran.
            An unknown op or op version makes the ops concerned
            `"unsupported"`, and so does a failure to prepare or invoke that
            names the op ("Node number 2 (FULLY_CONNECTED) failed to
            invoke"); the other ops are named from `ops`, or get kernel
            `None` (not observed) when there are none.

    Returns:
        A tuple of `FcKernel`, in op order.

    Raises:
        ValueError: if the node list does not match the file (a node named
            in `weights` is not a `FULLY_CONNECTED` there).

    Example:

    >>> from tfsparse.emulator.fc_observation import FcWeight, observed_kernels
    >>> weights = [FcWeight(0, "w", "float32", "int8", version=12)]
    >>> error = "Didn't find op for builtin opcode 'FULLY_CONNECTED' version '12'."
    >>> observed_kernels(weights, [], error=error)[0].kernel
    'unsupported'
    """
    weights = sorted(weights, key=lambda w: w.op)
    unknown, failed = unsupported_op(error), failed_node(error)
    rows = {row[0]: row for row in _rows(ops)}
    owner = {op: node for node, replaced in delegate_partitions(ops).items() for op in replaced} if rows else {}
    result = []
    for weight in weights:
        partition = owner.get(weight.op)
        if unknown is not None and unknown[0] == FULLY_CONNECTED and unknown[1] in (None, weight.version):
            kernel = fc_kernels.UNSUPPORTED
            reason = (f"the runtime does not know FULLY_CONNECTED version {weight.version} (the file fails to load); "
                      f"weight {weight.encoding}")
        elif failed is not None and failed[0] == weight.op:
            kernel = fc_kernels.UNSUPPORTED
            reason = (f"the op fails to {failed[2]}: {_first_sentence(error[:error.find('Node number')])}; weight "
                      f"{weight.encoding}")
        elif rows:
            row = rows.get(weight.op)
            if row is None or row[1] != FULLY_CONNECTED:
                raise ValueError(
                    f"The runtime's node list does not match the file: op {weight.op} is a FULLY_CONNECTED in the "
                    f"file but {'missing' if row is None else repr(row[1])} in the node list. Observe the file the "
                    "nodes came from."
                )
            kernel, reason = decide_kernel(weight, delegated=partition is not None)
            if partition is not None:
                reason = f"{reason}, in the partition of DELEGATE node {partition}"
        elif unknown is not None:
            kernel, reason = None, f"not observed: the file fails to load, the runtime does not know {unknown[0]}"
        else:
            kernel, reason = None, f"not observed: the file fails to load ({_first_sentence(error)})"
        result.append(FcKernel(weight.op, kernel, partition is not None, partition, weight.weight, weight.encoding,
                               weight.version, reason))
    return tuple(result)


def _block(tensor):
    sparsity = tensor.sparsity
    if sparsity is None or sparsity.blockMap is None or len(sparsity.blockMap) == 0:
        return None
    rank = len(tensor.shape)
    block = [1] * rank
    for i, dim in enumerate(sparsity.blockMap):
        block[int(dim)] = int(sparsity.dimMetadata[rank + i].denseSize)
    return tuple(block)


def fc_weights(content) -> tuple:
    """One `FcWeight` per `FULLY_CONNECTED` of the main subgraph of a `.tflite` (bytes or path).

    Example:

    >>> import os, tempfile, keras
    >>> import tfsparse
    >>> from tfsparse.emulator.fc_observation import fc_weights
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> path = os.path.join(tempfile.mkdtemp(), "m.tflite")
    >>> _ = tfsparse.export(model, path, target="dense", verify=False)
    >>> [(w.op, w.weight_type, w.encoding, w.version) for w in fc_weights(path)]
    [(0, 'float32', 'dense float32', 1)]
    """
    from tfsparse.xnnpack.tflite_graph import TfliteGraph

    graph = TfliteGraph.load(content)
    weights = []
    for op in graph.ops:
        if op.name != FULLY_CONNECTED or len(op.inputs) < 2 or op.inputs[1] < 0:
            continue
        weight = op.inputs[1]
        densify = graph.producer.get(weight)
        densify = densify is not None and densify.name == "DENSIFY"
        stored = graph.tensors[graph.producer[weight].inputs[0]] if densify else graph.tensors[weight]
        name = stored.name.decode("utf-8", "replace") if isinstance(stored.name, bytes) else str(stored.name)
        weights.append(FcWeight(
            op=op.index, weight=name, weight_type=graph.dtype(weight),
            input_type=graph.dtype(op.inputs[0]) if op.inputs[0] >= 0 else "unknown",
            block=None if densify else _block(graph.tensors[weight]),
            sparse=not densify and graph.is_sparse(weight), densify=densify, version=op.version))
    return tuple(weights)


@dataclasses.dataclass(frozen=True)
class FcObservation:
    """Which kernel ran each `FULLY_CONNECTED` of a file on the emulated runtime, with the evidence.

    Attributes:
        path: The `.tflite` file.
        kernels: One `FcKernel` per `FULLY_CONNECTED`, in op order.
        partitions: `((DELEGATE node index, (replaced op indices)), ...)`.
        error: The runtime's load error, or `None`.
        twin_kernels: The same for the dense twin (sparse weights stored
            dense, `FULLY_CONNECTED` at the dense model's version).
        twin_partitions: The twin's partitions.
        twin_error: The twin's load error, or `None`.
        fc_versions: The `FULLY_CONNECTED` versions of the file.
        twin_fc_versions: ... and of the twin.
        times_ms: The file's timed invokes (ms; interleaved with the twin's).
        twin_times_ms: The twin's.
        speedup: The twin's median over the file's (> 1: the file is
            faster), or `None` when one did not run.
        max_abs_diff: Largest absolute difference between the outputs of
            the file and of the twin (`None` when one did not run).
        output_scale: Largest absolute output of the twin.
        tolerance: The largest `max_abs_diff` for which they agree.
        outputs_agree: `max_abs_diff <= tolerance`, or `None`.
        runtime: The emulated runtime.
    """

    path: str
    kernels: tuple = ()
    partitions: tuple = ()
    error: str | None = None
    twin_kernels: tuple = ()
    twin_partitions: tuple = ()
    twin_error: str | None = None
    fc_versions: tuple = ()
    twin_fc_versions: tuple = ()
    times_ms: tuple = ()
    twin_times_ms: tuple = ()
    speedup: float | None = None
    max_abs_diff: float | None = None
    output_scale: float | None = None
    tolerance: float | None = None
    outputs_agree: bool | None = None
    runtime: str | None = None

    @property
    def kernel_names(self) -> tuple:
        """The observed kernel of each `FULLY_CONNECTED`, in op order."""
        return tuple(k.kernel for k in self.kernels)

    @property
    def twin_kernel_names(self) -> tuple:
        """The twin's."""
        return tuple(k.kernel for k in self.twin_kernels)

    @property
    def effective_kernel_names(self) -> tuple:
        """`kernel_names` with `"unsupported"` for a sparse kernel that ran with wrong outputs (`wrong_outputs`):
        the names to compare with `tfsparse.sparse_fc.lint`'s predictions."""
        return tuple(fc_kernels.UNSUPPORTED if k.wrong_outputs else k.kernel for k in self.kernels)

    def to_dict(self) -> dict:
        """A JSON-compatible dict."""
        config = dataclasses.asdict(self)
        config["partitions"] = [[node, list(ops)] for node, ops in self.partitions]
        config["twin_partitions"] = [[node, list(ops)] for node, ops in self.twin_partitions]
        return config

    @classmethod
    def from_dict(cls, config) -> FcObservation:
        """The inverse of `to_dict`.

        Example:

        >>> from tfsparse.emulator.fc_observation import FcKernel, FcObservation
        >>> kernel = FcKernel(0, "xnnpack-dense", True, 1, "w", "dense float32", 1, "delegated")
        >>> observation = FcObservation("m.tflite", kernels=(kernel,), partitions=((1, (0,)),), fc_versions=(1,),
        ...                             times_ms=(1.0, 2.0))
        >>> FcObservation.from_dict(observation.to_dict()) == observation
        True
        """
        names = {field.name for field in dataclasses.fields(cls)}
        values = {key: value for key, value in config.items() if key in names}
        for key in ("kernels", "twin_kernels"):
            values[key] = tuple(FcKernel(**k) for k in values.get(key) or ())
        for key in ("partitions", "twin_partitions"):
            values[key] = tuple((int(node), tuple(ops)) for node, ops in values.get(key) or ())
        for key in ("fc_versions", "twin_fc_versions", "times_ms", "twin_times_ms"):
            values[key] = tuple(values.get(key) or ())
        return cls(**values)

    def __str__(self):
        name = os.path.basename(self.path)
        if not self.kernels:
            return f"{name}: no FULLY_CONNECTED op"
        lines = [f"{name}: FULLY_CONNECTED kernels on emulated aarch64 ({self.runtime or 'tflite-runtime'}): "
                 f"{_kernel_list(self.kernels)}"]
        lines.extend(f"  op {k.op}: {k.reason}" for k in self.kernels)
        if self.error:
            lines.append(f"  runtime error: {_first_sentence(self.error)}")
        versions = _versions(self.fc_versions, self.twin_fc_versions)
        twin = f"  dense twin (sparse weights stored dense, FULLY_CONNECTED version {versions}): "
        lines.append(twin + (f"runtime error: {_first_sentence(self.twin_error)}" if self.twin_error else
                             _kernel_list(self.twin_kernels)))
        if self.speedup is not None:
            twin_ms, file_ms = statistics.median(self.twin_times_ms), statistics.median(self.times_ms)
            lines.append(f"  speedup vs the twin: {self.speedup:.2f}x (twin median {twin_ms:.3g} ms / file median "
                         f"{file_ms:.3g} ms, {len(self.times_ms)} interleaved runs; > 1: the file is faster; emulated "
                         "ratios overstate real devices)")
        if self.outputs_agree is not None:
            verdict = "agree" if self.outputs_agree else "DISAGREE"
            lines.append(f"  outputs {verdict} with the twin's: max abs diff {self.max_abs_diff:.3g} (tolerance "
                         f"{self.tolerance:.3g}, largest output {self.output_scale:.3g})")
        return "\n".join(lines)


def _first_sentence(text) -> str:
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return line.split(". ")[0].rstrip(".")


def _kernel_list(kernels) -> str:
    parts = [f"op {k.op} {k.kernel or 'not observed'}{' (WRONG OUTPUTS)' * k.wrong_outputs}" for k in kernels]
    delegated = sum(k.delegated for k in kernels)
    return f"{', '.join(parts)} ({delegated} of {len(kernels)} delegated to XNNPACK)"


def _versions(before, after) -> str:
    before, after = sorted(set(before)), sorted(set(after))
    text = lambda versions: "/".join(map(str, versions)) or "-"  # noqa: E731
    return text(before) if before == after else f"{text(before)} -> {text(after)}"


def tolerance_for(weights, output_scale) -> float:
    """The largest `max_abs_diff` for which a file and its twin agree: relative to the largest output,
    `QUANTIZED_TOLERANCE` when a `FULLY_CONNECTED` has an integer weight, else `FLOAT_TOLERANCE`.

    Example:

    >>> from tfsparse.emulator.fc_observation import FcWeight, tolerance_for
    >>> float32, int8 = FcWeight(0, "w", "float32", "float32"), FcWeight(0, "w", "int8", "int8")
    >>> tolerance_for([float32], 2.0), tolerance_for([int8], 2.0)
    (0.0002, 0.1)
    """
    quantized = any(not w.weight_type.startswith("float") for w in weights)
    return (QUANTIZED_TOLERANCE if quantized else FLOAT_TOLERANCE) * max(float(output_scale or 0.0), 1e-6)


def _check_path(path) -> str:
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path).lower().endswith(".tflite"):
        raise invalid_argument("path", "the path of a .tflite file", path)
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"The .tflite file {path} (argument `path`) does not exist. Check the path.")
    return path


def _check_count(value, argument, minimum):
    if not is_integer(value) or value < minimum:
        raise invalid_argument(argument, f"an integer >= {minimum}", value)
    return int(value)


def observe_fc(path, *, threads=1, runs=10, warmup=1, seed=0, cache_dir=None, timeout=600) -> FcObservation:
    """Runs `path` and its XNNPACK-dense twin on emulated aarch64; which kernel ran each `FULLY_CONNECTED`.

    Both files run in one emulated tflite-runtime process, timed interleaved,
    on the same seeded random inputs (`tfsparse.emulator.bench_runner`), and
    report their nodes after delegation. A file the runtime cannot load (an
    unknown op version) or run (an op that fails to prepare or invoke) is
    reported, not raised: the `FULLY_CONNECTED` ops concerned are
    `"unsupported"`. When the outputs disagree with the twin's, the ops that
    ran a builtin sparse kernel are marked `wrong_outputs`.

    Args:
        path: A `.tflite` file.
        threads: Interpreter threads. Defaults to `1`.
        runs: Timed invokes per file. Defaults to `10`.
        warmup: Untimed invokes per file first. Defaults to `1`.
        seed: Seed of the random inputs. Defaults to `0`.
        cache_dir: The emulator cache. Defaults to `None`
            (`$TFSPARSE_CACHE_DIR`, else `~/.cache/tfsparse/arm64`).
        timeout: Seconds before qemu is killed. Defaults to `600`.

    Returns:
        An `FcObservation` (no kernels, and no emulated run, for a file
        without `FULLY_CONNECTED`).

    Raises:
        ValueError: for invalid arguments or a file that is not a TFLite
            flatbuffer.
        FileNotFoundError: if `path` does not exist.
        tfsparse.emulator.EmulatorError: if the emulator is not set up
            (naming `tfsparse emulator setup`) or the run fails.
    """
    path = _check_path(path)
    threads = check_positive_int(threads, "threads")
    runs = check_positive_int(runs, "runs")
    warmup = _check_count(warmup, "warmup", 0)
    seed = _check_count(seed, "seed", 0)
    with open(path, "rb") as file:
        content = file.read()
    weights = fc_weights(content)
    if not weights:
        return FcObservation(path)
    from tfsparse.emulator.bench_runner import run_emulated
    from tfsparse.emulator.densify import densify_all, fully_connected_versions

    twin_content = densify_all(content, lower_fc_version=True)
    twin_weights = fc_weights(twin_content)
    with tempfile.TemporaryDirectory(prefix="tfsparse-observe-fc-") as directory:
        twin = os.path.join(directory, "xnnpack_dense_twin.tflite")
        with open(twin, "wb") as file:
            file.write(twin_content)
        report = run_emulated([path, twin], threads=threads, runs=runs, warmup=warmup, seed=seed,
                              cache_dir=cache_dir, timeout=timeout, ops=True)
    model, dense = report["models"]
    for entry in (model, dense):
        if entry.get("error") and unsupported_op(entry["error"]) is None and failed_node(entry["error"]) is None:
            from tfsparse.emulator.errors import EmulatorError

            which = "it" if entry is model else "its dense twin"
            raise EmulatorError(f"The emulated runtime could not load {path} ({which}): {entry['error']}")
    kernels = observed_kernels(weights, model.get("ops", []), model.get("error"))
    twin_kernels = observed_kernels(twin_weights, dense.get("ops", []), dense.get("error"))
    values = {}
    if not model.get("error") and not dense.get("error"):
        from tfsparse.emulator.observation import compare_outputs

        _, largest, scale = compare_outputs(model["outputs"], dense["outputs"])
        tolerance = tolerance_for(weights, scale)
        file_median, twin_median = statistics.median(model["times_ms"]), statistics.median(dense["times_ms"])
        values = {"max_abs_diff": largest, "output_scale": scale, "tolerance": tolerance,
                  "outputs_agree": bool(largest <= tolerance),
                  "speedup": twin_median / file_median if file_median > 0 else float("inf")}
        if not values["outputs_agree"]:
            kernels = mark_wrong_outputs(kernels, largest)
    return FcObservation(
        path, kernels=kernels, partitions=_partitions(model), error=model.get("error"), twin_kernels=twin_kernels,
        twin_partitions=_partitions(dense), twin_error=dense.get("error"),
        fc_versions=tuple(fully_connected_versions(content)),
        twin_fc_versions=tuple(fully_connected_versions(twin_content)),
        times_ms=tuple(model.get("times_ms", ())), twin_times_ms=tuple(dense.get("times_ms", ())),
        runtime=report.get("runtime"), **values)


def mark_wrong_outputs(kernels, max_abs_diff) -> tuple:
    """`kernels` with `wrong_outputs` set on those that ran a builtin sparse kernel, for a file whose outputs
    differ from its dense twin's by `max_abs_diff`, beyond the tolerance."""
    marked = []
    for kernel in kernels:
        if kernel.kernel in fc_kernels.SPARSE_KERNELS:
            kernel = dataclasses.replace(kernel, wrong_outputs=True, reason=(
                f"{kernel.reason}; WRONG OUTPUTS: the file's outputs differ from its dense twin's by "
                f"{max_abs_diff:.3g}, beyond the tolerance, and its FULLY_CONNECTED kernels are what differs"))
        marked.append(kernel)
    return tuple(marked)


def _partitions(entry) -> tuple:
    return tuple(sorted(delegate_partitions(entry.get("ops", [])).items()))
