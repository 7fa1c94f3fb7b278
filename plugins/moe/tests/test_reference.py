"""The reference model (`models/moe_text.py`), its data and its training with expert pruning."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import tfsparse
from tfsparse.model_source import load_builder, load_model_source
from tfsparse_moe import find_moe_layers

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def test_model_source_builds_the_reference_model():
    model = load_model_source("models/moe_text.py:moe_text", vocab_size=100)
    layers = find_moe_layers(model)
    assert [(layer.num_experts, layer.top_k) for layer in layers] == [(8, 2), (8, 2)]
    assert model.input.dtype == "int32" and model.output_shape == (None, 2)
    ids = np.array([[5, 7, 9] + [0] * 45], "int32")
    assert model.predict(ids, verbose=0).shape == (1, 2)


def test_data_split_is_seeded_balanced_and_encoded(vader_archive):
    vocabulary, (x_train, y_train), (x_test, y_test) = load_builder("models/moe_text.py:load_data")()
    assert (len(x_train), len(x_test)) == (8484, 2121)
    assert x_train.dtype == np.int32 and x_train.shape[1] == 48 and x_train.max() < vocabulary.size
    assert 0.45 < y_train.mean() < 0.55 and set(np.unique(y_test)) == {0, 1}
    again = load_builder("models/moe_text.py:load_data")()
    np.testing.assert_array_equal(again[2][0], x_test)  # the same split and vocabulary every time


@pytest.mark.slow
def test_short_training_prunes_finalizes_and_exports(vader_archive, tmp_path):
    from tfsparse_moe.reference import train_reference

    result = train_reference(epochs=2, batch_size=64, target_experts=4, prune_start_epoch=0, prune_epochs=1,
                             limit=1024, verbose=0, tflite_path=str(tmp_path / "moe.tflite"))
    assert result.experts_kept == {"moe_0": 4, "moe_1": 4}
    assert result.max_output_difference < 1e-5 and result.deployable_test_accuracy == result.test_accuracy
    assert result.deployable_params < result.params
    moe_params = [sum(layer.count_params() for layer in find_moe_layers(model))
                  for model in (result.model, result.deployable)]
    assert moe_params[1] < 0.55 * moe_params[0]  # half the experts (and their router columns) are gone
    assert result.tflite.verification.passed and os.path.isfile(result.tflite.path)
    assert tfsparse.list_strategies()  # tfsparse still lists its strategies after training


def test_tfsparse_works_when_the_plugin_cannot_be_imported():
    """A broken plugin install (its package fails to import) leaves tfsparse and its own strategies working."""
    script = textwrap.dedent("""
        import sys

        class Broken:
            def find_spec(self, name, path=None, target=None):
                if name == "tfsparse_moe" or name.startswith("tfsparse_moe."):
                    raise ImportError("tfsparse_moe is broken")

        sys.meta_path.insert(0, Broken())
        import tfsparse
        rows = {info.name: info.status for info in tfsparse.list_strategies(check=True)}
        assert rows["moe_expert"].startswith("broken"), rows
        assert rows["gmp"] == "ok", rows
        tfsparse.get_strategy("gmp")
        try:
            tfsparse.get_strategy("moe_expert")
        except Exception as error:
            assert "tfsparse_moe is broken" in str(error) or "tfsparse_moe" in str(error), error
        else:
            raise AssertionError("a broken plugin must fail loudly when asked for")
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-3000:]
