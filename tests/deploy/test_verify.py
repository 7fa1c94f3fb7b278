import keras
import numpy as np
import pytest
import tensorflow as tf

from tfsparse.deploy import VerificationError, verify_tflite


def _classifier(seed):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(5)])


def _convert(model):
    return tf.lite.TFLiteConverter.from_keras_model(model).convert()


def _samples(content, n=32):
    from ai_edge_litert.interpreter import Interpreter

    (name,) = Interpreter(model_content=content).get_signature_runner().get_input_details()
    x = np.random.default_rng(0).normal(size=(n, 8)).astype("float32")
    return [{name: x[i:i + 1]} for i in range(n)]


def test_float_match_passes_with_figures():
    model = _classifier(0)
    result = verify_tflite(_convert(model), model=model)
    assert result.passed and result.samples == 8 and result.max_rel_error <= 1e-4
    assert result.output_scale > 0 and result.top1_agreement == 1.0


def test_float_mismatch_raises_with_figures():
    model, other = _classifier(0), _classifier(1)
    content = _convert(model)
    with pytest.raises(VerificationError, match="relative error") as info:
        verify_tflite(content, model=other)
    assert info.value.verification.max_abs_error > 0.01
    result = verify_tflite(content, model=other, raise_on_failure=False)
    assert not result.passed and "relative error" in result.reason


def test_quantized_rules_fail_only_on_gross_disagreement():
    model = _classifier(0)
    flipped = keras.models.clone_model(model)
    weights = model.get_weights()
    flipped.set_weights(weights[:2] + [-weights[2], -weights[3]])  # arg-max becomes arg-min
    content = _convert(model)
    samples = _samples(content)
    slightly_off = keras.models.clone_model(model)
    slightly_off.set_weights([w * 1.01 for w in weights])
    ok = verify_tflite(content, model=slightly_off, samples=samples, quantized=True)
    assert ok.passed and ok.max_rel_error > 1e-4 and ok.top1_agreement >= 0.5
    bad = verify_tflite(content, model=flipped, samples=samples, quantized=True, raise_on_failure=False)
    assert not bad.passed and bad.top1_agreement < 0.5 and "top-1 agreement" in bad.reason


def test_quantized_regression_output_uses_mean_error_rule():
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1)])
    content = _convert(model)
    other = keras.models.clone_model(model)
    other.set_weights([-w for w in model.get_weights()])
    samples = _samples(content)
    result = verify_tflite(content, model=other, samples=samples, quantized=True, raise_on_failure=False)
    assert result.top1_agreement is None and not result.passed and "mean abs error" in result.reason


def test_unmatched_outputs_are_refused():
    model = _classifier(0)
    two_outputs = keras.Model(model.inputs, [model.outputs[0], model.outputs[0]])
    with pytest.raises(VerificationError, match="Cannot match the .tflite outputs"):
        verify_tflite(_convert(model), model=two_outputs)


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_outputs_fail_verification(value):
    # a NaN output used to PASS ("max abs error nan"): every comparison with NaN is False
    model = _classifier(0)
    content = _convert(model)
    broken = keras.models.clone_model(model)
    weights = model.get_weights()
    weights[-1] = weights[-1].copy()
    weights[-1][0] = value  # one Keras output per sample is NaN/inf
    broken.set_weights(weights)
    samples = _samples(content)
    for quantized in (False, True):
        result = verify_tflite(content, model=broken, samples=samples, quantized=quantized, raise_on_failure=False)
        assert not result.passed
        assert result.reason == "outputs are not finite: 32 NaN/inf values from Keras, 0 from the .tflite, so they " \
                                "cannot be compared"
    with pytest.raises(VerificationError, match="FAIL on 32 samples.*outputs are not finite"):
        verify_tflite(content, model=broken, samples=samples, quantized=True)


def test_non_finite_samples_are_refused():
    model = _classifier(0)
    content = _convert(model)
    samples = _samples(content)
    (name,) = samples[0]
    samples[4] = {name: np.full_like(samples[4][name], np.nan)}
    with pytest.raises(ValueError, match=r"^Invalid value received for argument `samples`. Expected finite values; "
                                         r"8 of 256 values are NaN/inf \(first at sample 4\). Remove or fix those "
                                         r"samples. Received: samples=<list of 32 elements>$"):
        verify_tflite(content, model=model, samples=samples)
