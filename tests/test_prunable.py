import keras
import pytest

import tfsparse
from tfsparse.prunable import prunable_weights

L = keras.layers


def _paths(model):
    return {w.path.split("/", 1)[-1] if w.path.count("/") > 1 else w.path for w in prunable_weights(model)}


def _names(model):
    return sorted((w.layer.name, w.name) for w in prunable_weights(model))


def test_default_prunable_weights_cover_every_listed_layer_type():
    image = keras.Input((8, 8, 4))
    x = L.Conv2D(4, 3, name="conv")(image)
    x = L.Conv2DTranspose(4, 3, name="convt")(x)
    x = L.DepthwiseConv2D(3, name="dw")(x)
    x = L.SeparableConv2D(4, 3, name="sep")(x)
    x = L.BatchNormalization(name="bn")(x)
    x = L.Reshape((-1, 4))(x)
    x = L.LayerNormalization(name="ln")(x)
    x = L.MultiHeadAttention(2, 4, name="mha")(x, x)
    x = L.Conv1D(4, 1, name="conv1d")(x)
    x = L.Conv1DTranspose(4, 1, name="conv1dt")(x)
    x = L.DepthwiseConv1D(1, name="dw1d")(x)
    x = L.SeparableConv1D(4, 1, name="sep1d")(x)
    x = L.EinsumDense("abc,cd->abd", output_shape=(None, 4), name="einsum")(x)
    x = L.LSTM(3, return_sequences=True, name="lstm")(x)
    x = L.GRU(3, return_sequences=True, name="gru")(x)
    x = L.SimpleRNN(3, name="rnn")(x)
    out = L.Dense(2, name="dense")(x)
    volume = keras.Input((4, 4, 4, 2))
    v = L.Conv3D(2, 1, name="conv3d")(volume)
    v = L.Conv3DTranspose(2, 1, name="conv3dt")(v)
    v = L.GlobalAveragePooling3D()(v)
    model = keras.Model([image, volume], [out, v])
    names = _names(model)
    expected = {
        ("conv", "kernel"), ("convt", "kernel"), ("dw", "kernel"),
        ("sep", "depthwise_kernel"), ("sep", "pointwise_kernel"),
        ("conv1d", "kernel"), ("conv1dt", "kernel"), ("dw1d", "kernel"),
        ("sep1d", "depthwise_kernel"), ("sep1d", "pointwise_kernel"),
        ("einsum", "kernel"), ("dense", "kernel"), ("conv3d", "kernel"), ("conv3dt", "kernel"),
        ("query", "kernel"), ("key", "kernel"), ("value", "kernel"), ("attention_output", "kernel"),
        ("lstm_cell", "kernel"), ("lstm_cell", "recurrent_kernel"),
        ("gru_cell", "kernel"), ("gru_cell", "recurrent_kernel"),
        ("simple_rnn_cell", "kernel"), ("simple_rnn_cell", "recurrent_kernel"),
    }
    assert set(names) == expected
    assert not any(name in {"bias", "gamma", "beta", "moving_mean"} for _, name in names)


def test_embedding_table_is_prunable():
    model = keras.Sequential([keras.Input((5,), dtype="int32"), L.Embedding(10, 3, name="emb")])
    assert _names(model) == [("emb", "embeddings")]


def test_nested_and_subclassed_models_are_walked():
    inner = keras.Sequential([keras.Input((4,)), L.Dense(4, name="inner_dense")], name="inner")
    inputs = keras.Input((4,))
    outer = keras.Model(inputs, L.Dense(2, name="head")(inner(inputs)))
    assert _names(outer) == [("head", "kernel"), ("inner_dense", "kernel")]

    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.block = keras.Sequential([L.Dense(4, name="sub_a"), L.Dense(4, name="sub_b")])
            self.head = L.Dense(2, name="sub_head")

        def call(self, x):
            return self.head(self.block(x))

    net = Net()
    net(keras.ops.zeros((1, 3)))
    assert _names(net) == [("sub_a", "kernel"), ("sub_b", "kernel"), ("sub_head", "kernel")]


def test_subclass_of_registered_layer_inherits():
    class MyDense(L.Dense):
        pass

    model = keras.Sequential([keras.Input((3,)), MyDense(2, name="mine")])
    assert _names(model) == [("mine", "kernel")]


def test_register_prunable_and_get_prunable_weights_extend_discovery():
    class Scale(L.Layer):
        def build(self, shape):
            self.scale = self.add_weight(shape=(shape[-1],), initializer="ones", name="scale")

        def call(self, x):
            return x * self.scale

    class Custom(L.Layer):
        def build(self, shape):
            self.w = self.add_weight(shape=(shape[-1], 2), name="w")
            self.b = self.add_weight(shape=(2,), name="b")

        def get_prunable_weights(self):
            return [self.w]

        def call(self, x):
            return x @ self.w + self.b

    model = keras.Sequential([keras.Input((3,)), Scale(name="scale_layer"), Custom(name="custom")])
    assert _names(model) == [("custom", "w")]
    tfsparse.register_prunable(Scale, weights=["scale"])
    assert _names(model) == [("custom", "w"), ("scale_layer", "scale")]


@pytest.mark.parametrize("bad", [object(), "Dense", keras.Sequential])
def test_register_prunable_rejects_bad_input(bad):
    with pytest.raises(ValueError, match="layer_cls|weights"):
        tfsparse.register_prunable(bad if bad is not keras.Sequential else L.Dense, weights="kernel" if bad is keras.Sequential else ["kernel"])


def test_non_keras_and_unbuilt_models_are_rejected():
    with pytest.raises(ValueError, match="Expected a Keras 3 model"):
        prunable_weights(object())
    with pytest.raises(ValueError, match="not built"):
        prunable_weights(keras.Sequential([L.Dense(2)]))
