import json

import keras
import numpy as np

import tfsparse
from tfsparse import masks


def test_report_counts_exact_zeros_and_totals():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(5, name="a"), keras.layers.Dense(2, name="b")])
    kernel = model.layers[0].kernel.numpy()
    kernel[:2] = 0
    model.layers[0].kernel.assign(kernel)
    masks.attach(model.layers[0].kernel)
    report = tfsparse.sparsity_report(model)
    rows = {r.layer: r for r in report.rows}
    assert rows["a"].nonzeros == 10 and rows["a"].size == 20 and rows["a"].masked
    assert rows["b"].nonzeros == 10 and not rows["b"].masked
    assert report.size == 30 and report.nonzeros == 20
    assert np.isclose(report.sparsity, 1 / 3)
    as_dict = json.loads(json.dumps(report.to_dict()))
    assert as_dict["total"] == {"size": 30, "nonzeros": 20, "sparsity": report.sparsity}
    assert as_dict["rows"][0]["shape"] == [4, 5]
    text = str(report)
    assert "TOTAL" in text and "50.0%" in text and "kernel *" in text


def test_report_includes_masked_weights_outside_defaults():
    norm = keras.layers.BatchNormalization(name="bn")
    model = keras.Sequential([keras.Input((4,)), norm])
    masks.attach(norm.gamma)
    masks.set_mask(norm.gamma, [1, 0, 1, 0])
    rows = tfsparse.sparsity_report(model).rows
    assert [(r.weight, r.nonzeros) for r in rows] == [("gamma", 2)]
