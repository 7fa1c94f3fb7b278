"""`tools/bench_sparse_fc.py`: its tables, the summary read back from them, merging, and `--quick` end to end."""

import os
import re

import pytest


def _timing(*times):
    from tfsparse.bench.result import ModelTiming

    return ModelTiming("f.tflite", tuple(float(t) for t in times))


def _check(tool, weights, observed, *, predicted=None, shares=((0.9, 0.8),), outputs=True):
    return tool.FileCheck(weights, sparse_bytes=200, dense_bytes=800, fp32_dense_bytes=1000,
                          predicted=tuple(predicted or observed), observed=tuple(observed), outputs_agree=outputs,
                          shares=shares)


def _result(tool, sparsity, fp32_ms, int8_ms, *, threads=(1, 4), int8_ran=True):
    """A `SpeedResult`: fp32 sparse `fp32_ms` against dense 10 ms, int8 sparse `int8_ms` against a 5 ms twin."""
    timings = [tool.Timing(t, _timing(fp32_ms, fp32_ms, fp32_ms + 1), _timing(10, 10, 11),
                           _timing(int8_ms, int8_ms, int8_ms + 1) if int8_ran else None,
                           _timing(5, 5, 6) if int8_ran else None,
                           busy=1.5) for t in threads]
    return tool.SpeedResult(sparsity, _check(tool, "fp32 1x4", ["builtin-sparse-1x4"] * 2 + ["builtin-dense"]),
                            _check(tool, "int8 1x16", ["builtin-sparse-1x16"] * 3,
                                   predicted=["builtin-sparse-1x16"] * 2 + ["builtin-dense"]),
                            timings, ["a note"], {"runtime": "tflite-runtime 2.14.0", "machine": "aarch64 (qemu-user)"})


class _Args:
    gmp_steps, runs, warmup, variant_runs = 10, 20, 2, 20


def test_speed_table_rows_say_what_ran_and_the_summary_reads_the_numbers_back():
    from tools import bench_sparse_fc as tool

    results = [_result(tool, 0.7, 20.0, 4.0), _result(tool, 0.9, 5.0, 2.0, int8_ran=False)]
    results[1].notes.append("the int8 block-sparse file did not run on the emulated runtime: Div only supports "
                            "FLOAT32, got 9. Node number 79 (DIV) failed to invoke.")
    text = tool.render_speed("Toy MLP (4 inputs)", results, "python tools/bench_sparse_fc.py --x", _Args, 60.0,
                             "masks on the head")
    assert text.startswith("### Toy MLP (4 inputs)\nMeasured with `python tools/bench_sparse_fc.py --x`")
    assert tool.EMULATED in text and "Masks on the head." in text and "- s = 70%/90%: a note" in text
    rows = tool.parse_tables(text)[0]
    assert len(rows) == 2 * 2 * 2  # sparsities x precisions x threads
    first = rows[0]
    assert list(first) == list(tool.SPEED_COLUMNS)
    assert (first["sparsity"], first["weights"], first["threads"]) == ("70%", "fp32 1x4", "1")
    assert first["dense ms"] == "10 (10-11)" and first["block-sparse ms"] == "20 (20-21)"
    assert first["speedup vs its dense"] == "0.50x" == first["vs fp32 XNNPACK dense"]
    assert first["observed kernels (block-sparse file)"] == "2x builtin-sparse-1x4, 1x builtin-dense"
    assert first["lint = observed"] == "yes" and first["outputs = twin"] == "yes"
    assert first["block-sparse bytes (vs fp32 dense)"] == "200 (20.0%)"
    assert (first["f: MACs in sparse FCs"], first["Amdahl bound"]) == ("90.0%", "3.57x")
    int8 = next(r for r in rows if r["weights"] == "int8 1x16" and r["sparsity"] == "70%")
    assert int8["speedup vs its dense"] == "1.25x" and int8["vs fp32 XNNPACK dense"] == "2.50x"
    assert int8["lint = observed"] == "NO"
    missing = next(r for r in rows if r["weights"] == "int8 1x16" and r["sparsity"] == "90%")
    assert missing["block-sparse ms"] == "did not run" and missing["speedup vs its dense"] == "-"

    summary = tool.summarise({"Toy MLP (4 inputs)": re.sub(r"of \d+ cores busy", "of 2 cores busy", text)})
    assert summary.startswith(f"### {tool.SUMMARY}\n")
    line = next(line for line in summary.splitlines() if line.startswith("- **Toy MLP**"))
    assert "fp32 1x4 vs XNNPACK dense: 0.50-2.00x (70%/90%: faster at 90%, slower at 70%) at 1 thread" in line
    assert "int8 1x16 vs its int8 dense twin: 1.25x (70%/90%: faster; did not run at 90%) at 1 thread" in line
    assert "linter agrees 2/2" in line and "linter agrees 0/2" in line
    assert "Amdahl bound 3.57x (f = 90.0%), reached 0.14-0.56 of it at 1 thread" in line
    assert line.endswith("The int8 block-sparse file did not run: Div only supports FLOAT32, got 9. Node number 79 "
                         "(DIV) failed to invoke.")
    assert ("- 4 threads on a 2-core host shared with other work: the dense files' medians were 1.00x their "
            "1-thread medians, the block-sparse files' 1.00x") in summary
    assert "Above the Amdahl bound" not in summary
    assert ("- The block-sparse file is no faster than its dense counterpart in 2 of 6 timed rows: Toy MLP fp32 1x4 "
            "70% 1t (0.50x); Toy MLP fp32 1x4 70% 4t (0.50x).") in summary


def test_render_replaces_measured_tables_keeps_the_others_and_rewrites_the_summary():
    from tools import bench_sparse_fc as tool

    old_mlp = tool.render_speed("MLP old", [_result(tool, 0.8, 2.0, 1.0, threads=(1,))], "old mlp", _Args, 60)
    kept = {
        tool.SUMMARY: f"### {tool.SUMMARY}\n- stale summary\n",
        "MLP old": old_mlp,
        "CNN": "### CNN\nMeasured with `old cnn`.\n| old |\n",
        "Stale table": "### Stale table\n| written without a command |\n",
    }
    new_cnn = tool.render_speed("CNN", [_result(tool, 0.9, 20.0, 10.0, threads=(1,))], "new cnn", _Args, 60)
    body = tool.render({"CNN": new_cnn}, kept, [1, 4])
    assert "stale summary" not in body and "Stale table" not in body and "`old cnn`" not in body
    assert "`old mlp`" in body and "`new cnn`" in body
    assert body.count(f"### {tool.SUMMARY}") == 1
    assert body.index(f"### {tool.SUMMARY}") < body.index("### MLP old") < body.index("### CNN")
    summary = tool.subsections(body)[tool.SUMMARY]
    assert "- **MLP old**: fp32 1x4 vs XNNPACK dense: 5.00x (80%: faster)" in summary
    assert "- **CNN**: fp32 1x4 vs XNNPACK dense: 0.50x (90%: slower)" in summary
    assert ("- Above the Amdahl bound at 1 thread: MLP old fp32 1x4 80% (5.00x > 3.57x); MLP old int8 1x16 80% "
            "(5.00x > 3.57x).") in summary
    assert tool.EMULATED in body
    if (os.cpu_count() or 1) < 4:
        assert "4-thread rows are not a 4-core device" in " ".join(body.split())


def test_variant_and_accuracy_tables_and_their_summary_lines():
    from tools import bench_sparse_fc as tool

    variants = [
        tool.VariantResult("fp32 aligned", "`target=\"sparse-fc\"`", ("block-sparse 1x4",) * 2,
                           ("builtin-sparse-1x4",) * 2, ("builtin-sparse-1x4",) * 2, 3.0, True),
        tool.VariantResult("int8 per-channel", "`target=\"int8\"`", ("block-sparse 1x16",), ("unsupported",),
                           ("unsupported",), 2.0, False, "ran with WRONG outputs"),
        tool.VariantResult("hybrid", "tf.lite", ("block-sparse 1x16",), ("unsupported",), ("builtin-dense",),
                           None, None, "runtime: version 12"),
    ]
    text = tool.render_variants(variants, "python tools/bench_sparse_fc.py", _Args, 30)
    rows = tool.parse_tables(text)[0]
    assert [r["agree"] for r in rows] == ["yes", "yes", "NO"]
    assert rows[1]["observed (emulated runtime)"] == "1x unsupported (ran with WRONG outputs)"
    assert rows[2]["speedup vs twin"] == "-" and rows[0]["weights in the file"] == "2x block-sparse 1x4"
    assert "equals the observation for 2 of 3 variants" in text

    accuracy = [tool.AccuracyResult("dense", 1000, 0.88, 4000, _timing(10, 10, 11), ("xnnpack-dense",)),
                tool.AccuracyResult("GMP 1x4 blocks, 90%", 100, 0.84, 600, _timing(4, 4, 5), ("builtin-sparse-1x4",)),
                tool.AccuracyResult("dense, narrower: 784-16-16-10 (~ non-zeros of 90%)", 110, 0.85, 500,
                                    _timing(2, 2, 3), ("xnnpack-dense",))]
    facts = {"train": 60000, "test": 10000, "epochs": 5, "batch": 128, "begin": 469, "end": 1876, "frequency": 46,
             "widths": (1024, 1024)}
    text_accuracy = tool.render_accuracy(accuracy, facts, "python tools/bench_sparse_fc.py", 120)
    rows = tool.parse_tables(text_accuracy)[0]
    assert [r["vs dense"] for r in rows] == ["-", "-4.00 pp", "-3.00 pp"]
    assert [r["speedup vs dense"] for r in rows] == ["1.00x", "2.50x", "5.00x"]
    summary = tool.summarise({tool.VARIANTS: text, tool.ACCURACY: text_accuracy})
    assert "equals the observed kernels for 2 of 3 variants" in summary
    assert "Outputs differ from the dense twin's for: int8 per-channel." in summary
    assert ("At the non-zeros of block-sparse 90% the narrower dense MLP is more accurate by 1.00 pp and faster "
            "(5.00x vs 2.50x against the wide dense file)") in summary


def test_kernel_lists_bounds_and_widths():
    from tools import bench_sparse_fc as tool

    assert tool.kernel_list([]) == "no FULLY_CONNECTED"
    assert tool.kernel_list(["a", "b", "a", None]) == "1x a, 1x b, 1x a, 1x not observed"
    assert tool.amdahl(()) == 1.0 and tool.amdahl(((1.0, 1.0),)) == float("inf")
    nonzeros = 0.2 * (784 * 1024 + 1024 * 1024 + 1024 * 10)
    width = tool.narrow_width(nonzeros)
    assert width % 16 == 0 and abs((784 + 10) * width + width * width - nonzeros) / nonzeros < 0.1
    assert tool.pruning_schedule(10, 2) == (0, 15)


def test_op_macs_counts_convolutions_and_fully_connected(tmp_path):
    import keras

    import tfsparse
    from tools import bench_sparse_fc as tool

    model = tool.cnn_model((4,), (8,), classes=3)  # conv 28x28x4 (3x3x1), pool to 14x14x4, Dense 784->8->3
    path = tfsparse.export(model, str(tmp_path / "cnn.tflite"), target="dense", verify=False).path
    macs = sorted(tool.op_macs(path).values())
    assert macs == sorted([28 * 28 * 4 * 9, 14 * 14 * 4 * 8, 8 * 3])
    assert isinstance(model, keras.Model)


def test_render_only_rewrites_the_summary_from_the_tables_it_keeps(tmp_path):
    from tools import bench_sparse_fc as tool

    table = tool.render_speed("MLP kept", [_result(tool, 0.8, 20.0, 1.0, threads=(1,))], "python kept", _Args, 60)
    output = tmp_path / "BENCHMARKS.md"
    output.write_text(f"# Benchmarks\n\n## {tool.SECTION}\n### {tool.SUMMARY}\n- stale\n\n{table}\n## Other\nkept\n",
                      encoding="utf-8")
    assert tool.main(["--render-only", f"--output={output}"]) == 0
    text = output.read_text(encoding="utf-8")
    assert "- stale" not in text and "## Other\nkept\n" in text and table.strip() in text
    assert "- **MLP kept**: fp32 1x4 vs XNNPACK dense: 0.50x (80%: slower) at 1 thread" in text


def test_bad_arguments_are_refused(capsys):
    from tools import bench_sparse_fc as tool

    for argv in (["--models=rnn"], ["--sparsities=1.5"], ["--threads=0"]):
        with pytest.raises(SystemExit):
            tool.main(argv)
    assert "--models: unknown ['rnn']" in capsys.readouterr().err


@pytest.mark.slow
def test_quick_run_writes_the_section_and_keeps_other_sections(emulator_ready, tmp_path):
    from tfsparse import prunable
    from tools import bench_sparse_fc as tool

    registry = list(prunable._REGISTRY)
    output = tmp_path / "BENCHMARKS.md"
    output.write_text("# Benchmarks\n\n## Core\nkept\n", encoding="utf-8")
    assert tool.main(["--quick", "--models=mlp,moe", f"--output={output}"]) == 0
    assert prunable._REGISTRY == registry  # the MoE opt-in did not leak
    text = output.read_text(encoding="utf-8")
    assert "## Core\nkept\n" in text and f"## {tool.SECTION}\n" in text
    section = tool.subsections(tool.read_section(tool.SECTION, str(output)))
    assert list(section)[0] == tool.SUMMARY
    mlp = next(heading for heading in section if heading.startswith("MLP 784-128-128-10"))
    assert "Measured with `python tools/bench_sparse_fc.py --quick --models=mlp,moe" in section[mlp]
    rows = {(r["weights"], r["threads"]): r for r in tool.parse_tables(section[mlp])[0]}
    assert set(rows) == {("fp32 1x4", "1"), ("int8 1x16", "1")}
    fp32, int8 = rows["fp32 1x4", "1"], rows["int8 1x16", "1"]
    assert fp32["observed kernels (block-sparse file)"] == "3x builtin-sparse-1x4"
    assert int8["observed kernels (block-sparse file)"] == "3x builtin-sparse-1x16"
    assert fp32["lint = observed"] == int8["lint = observed"] == "yes"
    assert float(fp32["speedup vs its dense"].rstrip("x")) > 1.0
    assert float(int8["vs fp32 XNNPACK dense"].rstrip("x")) > 1.0
    moe = next(heading for heading in section if heading.startswith("MoE text classifier"))
    assert "builtin-sparse-1x4" in tool.parse_tables(section[moe])[0][0]["observed kernels (block-sparse file)"]
    variants = tool.parse_tables(section[tool.VARIANTS])[0]
    assert len(variants) >= 6 and all(r["agree"] == "yes" for r in variants)
    accuracy = tool.parse_tables(section[tool.ACCURACY])[0]
    assert accuracy[0]["model"] == "dense" and any(r["model"].startswith("dense, narrower") for r in accuracy)
    assert tool.EMULATED in section[tool.SUMMARY]
