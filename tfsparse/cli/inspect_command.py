"""`tfsparse inspect PATH`: per-layer sparsity of a `.keras`, or the contents of a `.tflite`.

Example:

    tfsparse inspect out/pruned.keras
    tfsparse inspect out/model.tflite --json
    tfsparse inspect out/model.tflite --xnnpack
    tfsparse inspect out/mlp.tflite --fc
    tfsparse inspect out/dense.keras --xnnpack --sparsity=0.9
    tfsparse inspect out/model.tflite --nm=2:4
    tfsparse inspect out/dense.keras --channels
"""

from __future__ import annotations

import dataclasses
import json
import os

from absl import flags

FLAGS = flags.FlagValues()
_JSON = flags.DEFINE_bool("json", False, "Print JSON instead of a table.", flag_values=FLAGS)
_XNNPACK = flags.DEFINE_bool("xnnpack", False, "Predict whether XNNPACK's sparse path fires, and why not: the "
                             "planner for a .keras (per layer, with the Amdahl bound), the linter for a .tflite.",
                             flag_values=FLAGS)
_SPARSITY = flags.DEFINE_float("sparsity", None, "With --xnnpack on a .keras: judge and bound the speedup at this "
                               "sparsity of the 1x1 convolutions instead of their current zeros.", flag_values=FLAGS)
_NM = flags.DEFINE_string("nm", None, "Check the N:M pattern, e.g. --nm=2:4: list the weights (kernels of a .keras, "
                          "FULLY_CONNECTED/CONV_2D/TRANSPOSE_CONV/CONV_3D weights of a .tflite) with a block of M "
                          "input channels holding more than N non-zeros. The exit status stays 0; read the verdict.",
                          flag_values=FLAGS)
_FC = flags.DEFINE_bool("fc", False, "For a .tflite: which kernel runs each FULLY_CONNECTED (Dense layer) on "
                        "tflite-runtime 2.14 (aarch64), and why not TFLite's block-sparse one.", flag_values=FLAGS)
_CHANNELS = flags.DEFINE_bool("channels", False, "Trace the channel groups of a .keras Sequential or Functional model "
                              "(one line per group: channels, layers, prunable or why not) and count its MACs and "
                              "parameters.", flag_values=FLAGS)


@dataclasses.dataclass(frozen=True)
class ChannelsReport:
    """What `--channels` prints: the channel graph's summary, and the model's MACs and parameters.

    Attributes:
        graph: The `tfsparse.graph.ChannelGraph`.
        flops: The `tfsparse.graph.cost.FlopsReport`.
    """

    graph: object
    flops: object

    def to_dict(self) -> dict:
        groups = [{"index": g.index, "channels": g.size, "layers": list(g.layers), "sources": list(g.sources),
                   "prunable": g.prunable, "blocked": g.blocked} for g in self.graph.groups]
        return {"model": self.graph.model.name, "groups": groups, **self.flops.to_dict()}

    def __str__(self) -> str:
        return f"{self.graph.summary()}\n{self.flops}"


def run(path, *, xnnpack=False, sparsity=None, nm=None, channels=False, fc=False):
    """Returns a `SparsityReport` (.keras), a `TfliteSummary` (.tflite), or with
    `xnnpack=True` the planner's `PlanReport` (.keras, at `sparsity` if given)
    or the linter's `LintReport` (.tflite), or with `nm="N:M"` the N:M
    checker's `tfsparse.nm.NMReport` (`.ok`, `.violations`), or with
    `channels=True` a `ChannelsReport` (.keras: channel groups, MACs, params),
    or with `fc=True` the `FULLY_CONNECTED` linter's `FcLintReport` (.tflite)."""
    path = os.fspath(path)
    if fc:
        return _fc(path, xnnpack=xnnpack, sparsity=sparsity, nm=nm, channels=channels)
    if channels:
        return _channels(path, xnnpack=xnnpack, sparsity=sparsity, nm=nm)
    if sparsity is not None and not (xnnpack and path.endswith(".keras")):
        raise ValueError(
            "Invalid value received for argument `sparsity`. It only applies with --xnnpack to a .keras model "
            f"(the planner). Received: sparsity={sparsity!r} for {path}"
        )
    if nm is not None:
        if xnnpack:
            raise ValueError(
                "Invalid value received for argument `nm`. --nm and --xnnpack are separate checks; "
                f"run one at a time. Received: nm={nm!r} with xnnpack=True"
            )
        from tfsparse.nm import check, parse_nm

        try:
            n, m = parse_nm(nm)
        except ValueError as error:  # its "Expected ..." sentence, named after the one flag `n` and `m` come from
            text = str(error)
            start, end = text.find("Expected"), text.rfind(" Received:")
            expected = text[start:end] if 0 <= start < end else "Expected `N:M` with integers 1 <= N < M, e.g. `2:4`."
            raise ValueError(f"Invalid value received for argument `nm`. {expected} Received: nm={nm!r}") from None
        return check(path, n=n, m=m)
    if xnnpack and path.endswith(".tflite"):
        from tfsparse.xnnpack import lint

        return lint(path)
    if path.endswith(".keras"):
        from tfsparse.model_source import load_keras_file

        model = load_keras_file(path, compile=False)
        if xnnpack:
            from tfsparse.xnnpack import check

            return check(model, sparsity=sparsity)
        from tfsparse.report import sparsity_report

        return sparsity_report(model)
    if path.endswith(".tflite"):
        from tfsparse.deploy import inspect_tflite

        return inspect_tflite(path)
    raise ValueError(
        "Invalid value received for argument `path`. Expected a `.keras` or "
        f"`.tflite` file. Received: path={path}"
    )


def _fc(path, **others):
    given = [f"--{name}" for name, value in others.items() if value not in (None, False)]
    if given:
        raise ValueError(
            "Invalid value received for argument `fc`. --fc is a separate check; run it without "
            f"{', '.join(given)}. Received: fc=True with {', '.join(given)}"
        )
    if not path.endswith(".tflite"):
        raise ValueError(
            "Invalid value received for argument `path`. --fc reads the FULLY_CONNECTED operators of a converted "
            "`.tflite` file; export the model first (e.g. `tfsparse export --target=sparse-fc`). "
            f"Received: path={path}"
        )
    from tfsparse.sparse_fc import lint

    return lint(path)


def _channels(path, *, xnnpack, sparsity, nm):
    others = [f"--{name}" for name, given in (("xnnpack", xnnpack), ("sparsity", sparsity is not None),
                                              ("nm", nm is not None)) if given]
    if others:
        raise ValueError(
            "Invalid value received for argument `channels`. --channels is a separate check; run it without "
            f"{', '.join(others)}. Received: channels=True with {', '.join(others)}"
        )
    if not path.endswith(".keras"):
        raise ValueError(
            "Invalid value received for argument `path`. --channels traces the layer graph of a `.keras` "
            "Sequential or Functional model; a .tflite (or any other file) has none to trace. "
            f"Received: path={path}"
        )
    from tfsparse.graph import flops, trace
    from tfsparse.model_source import load_keras_file

    model = load_keras_file(path, compile=False)
    return ChannelsReport(trace(model), flops(model))


def main(argv):
    if len(argv) != 2:
        raise ValueError(
            "Invalid value received for argument `path`. Expected exactly one "
            f"file: tfsparse inspect PATH. Received: {argv[1:]}"
        )
    result = run(argv[1], xnnpack=_XNNPACK.value, sparsity=_SPARSITY.value, nm=_NM.value, channels=_CHANNELS.value,
                 fc=_FC.value)
    print(json.dumps(result.to_dict(), indent=2) if _JSON.value else result)
    return 0
