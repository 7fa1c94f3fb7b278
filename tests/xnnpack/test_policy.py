"""`policy="xnnpack"` on strategies: prune what XNNPACK runs sparse, nothing else."""

import keras
import numpy as np
import pytest
from xnnpack_variants import mobilenet_v1, same_padding_v1

import tfsparse
from tfsparse.strategies.gmp import GMP
from tfsparse.training import make_strategy, parse_strategy_args
from tfsparse.xnnpack import lint


def _fit(model, strategy, steps=4):
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x = rng.random((steps * 4,) + model.input_shape[1:], dtype=np.float32)
    model.fit(x, rng.integers(0, 10, len(x)), batch_size=4, epochs=1, verbose=0, callbacks=[strategy])
    return model


def _zeros(layer):
    kernel = layer.kernel.numpy()
    return 1 - np.count_nonzero(kernel) / kernel.size


def test_gmp_with_xnnpack_policy_prunes_only_the_region_1x1_convs_and_the_export_fires(tmp_path):
    model = _fit(mobilenet_v1(), GMP(target_sparsity=0.9, begin_step=0, end_step=2, frequency=1, policy="xnnpack"))
    for layer in model.layers:
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            expected = 0.9 if layer.name.endswith("_pw") else 0.0
            assert _zeros(layer) == pytest.approx(expected, abs=0.01), layer.name
    path = tmp_path / "m.tflite"
    tfsparse.export(model, path, target="xnnpack", verify=False)
    assert lint(str(path)).fires


def test_policy_is_narrowed_by_layers_and_exclude():
    model = mobilenet_v1()
    chosen = GMP(target_sparsity=0.9, end_step=4, policy="xnnpack", layers="block[12]_.*", exclude="block2_pw")
    assert [(w.layer.name, w.name) for w in chosen.select(model)] == [("block1_pw", "kernel")]
    with pytest.raises(ValueError, match="selects none of the 1x1 convolutions XNNPACK runs sparse"):
        GMP(target_sparsity=0.9, end_step=4, policy="xnnpack", layers="logits").select(model)


def test_an_ineligible_model_is_refused_before_training_with_the_reasons():
    strategy = GMP(target_sparsity=0.9, begin_step=0, end_step=2, frequency=1, policy="xnnpack")
    with pytest.raises(ValueError, match=r"(?s)cannot run model .* sparse:.*stem padding is \(0, 1, 0, 1\)"
                                         r".*make_compatible.*policy=None"):
        _fit(same_padding_v1(), strategy)


def test_bad_policy_and_a_target_too_low_for_xnnpack():
    with pytest.raises(ValueError, match="argument `policy`.*Received: policy='fast'"):
        GMP(target_sparsity=0.9, end_step=4, policy="fast")
    with pytest.warns(UserWarning, match="only above 2/3 zeros"):
        GMP(target_sparsity=0.5, end_step=4, policy="xnnpack")


def test_policy_round_trips_and_comes_from_strategy_args():
    strategy = make_strategy("gmp", target_sparsity=0.9, steps={"begin_step": 0, "end_step": 8, "frequency": 2},
                             **parse_strategy_args("policy=xnnpack"))
    assert strategy.policy == "xnnpack"
    clone = GMP.from_config(strategy.get_config())
    assert clone.policy == "xnnpack" and clone.get_config() == strategy.get_config()
