"""Keras' own layer harness (``keras.src.testing.TestCase.run_layer_test``,
the test Keras runs on its own layers) on every public layer: config
round trip through JSON, symbolic and eager calls, training, and the
mixed-precision check. The layers are random, so no fixed output is
expected, only its shape."""

import keras
import pytest
from keras.src import testing

import bbh_tf


def shared_hypernet():
    # A hypernetwork another layer shares too.
    hypernet = bbh_tf.HyperNetwork(noise_dim=4, hidden_units=(8,), output_dim=16)
    bbh_tf.HyperDense(3, hypernet=hypernet).build((None, 2))
    return hypernet


CASES = [
    ("dense scale, no hypernet", bbh_tf.HyperDense, {"units": 3}, (2, 5), (2, 3)),
    (
        "dense scale, shared",
        bbh_tf.HyperDense,
        {"units": 3, "hypernet": "shared"},
        (2, 5),
        (2, 3),
    ),
    (
        "dense weight_norm",
        bbh_tf.HyperDense,
        {"units": 3, "mode": "weight_norm", "hypernet": "shared"},
        (2, 5),
        (2, 3),
    ),
    (
        "dense full",
        bbh_tf.HyperDense,
        {"units": 3, "mode": "full", "hypernet": "shared"},
        (2, 5),
        (2, 3),
    ),
    ("dense 3-D input", bbh_tf.HyperDense, {"units": 3}, (2, 4, 5), (2, 4, 3)),
    (
        "conv scale, no hypernet",
        bbh_tf.HyperConv2D,
        {"filters": 3, "kernel_size": 3},
        (2, 6, 6, 2),
        (2, 4, 4, 3),
    ),
    (
        "conv full, shared",
        bbh_tf.HyperConv2D,
        {"filters": 3, "kernel_size": 3, "mode": "full", "hypernet": "shared"},
        (2, 6, 6, 2),
        (2, 4, 4, 3),
    ),
    (
        "conv1d scale, no hypernet",
        bbh_tf.HyperConv1D,
        {"filters": 3, "kernel_size": 2, "padding": "causal"},
        (2, 6, 2),
        (2, 6, 3),
    ),
    (
        "conv1d full, shared",
        bbh_tf.HyperConv1D,
        {"filters": 3, "kernel_size": 2, "mode": "full", "hypernet": "shared"},
        (2, 6, 2),
        (2, 5, 3),
    ),
    (
        "depthwise scale, no hypernet",
        bbh_tf.HyperDepthwiseConv2D,
        {"kernel_size": 3, "depth_multiplier": 2},
        (2, 6, 6, 2),
        (2, 4, 4, 4),
    ),
    (
        "depthwise full, shared",
        bbh_tf.HyperDepthwiseConv2D,
        {"kernel_size": 3, "mode": "full", "hypernet": "shared"},
        (2, 6, 6, 2),
        (2, 4, 4, 2),
    ),
    (
        "embedding scale, no hypernet",
        bbh_tf.HyperEmbedding,
        {"input_dim": 5, "output_dim": 3},
        (2, 4),
        (2, 4, 3),
    ),
    (
        "embedding full, shared",
        bbh_tf.HyperEmbedding,
        {"input_dim": 5, "output_dim": 3, "mode": "full", "hypernet": "shared"},
        (2, 4),
        (2, 4, 3),
    ),
    (
        "lstm cell scale, no hypernet",
        keras.layers.RNN,
        {"cell": ("HyperLSTMCell", {"units": 3})},
        (2, 4, 2),
        (2, 3),
    ),
    (
        "lstm cell full, shared",
        keras.layers.RNN,
        {"cell": ("HyperLSTMCell", {"units": 3, "mode": "full", "hypernet": "shared"})},
        (2, 4, 2),
        (2, 3),
    ),
    ("bbb dense", bbh_tf.BayesByBackpropDense, {"units": 3}, (2, 5), (2, 3)),
    (
        "bbb conv1d",
        bbh_tf.BayesByBackpropConv1D,
        {"filters": 3, "kernel_size": 2},
        (2, 6, 2),
        (2, 5, 3),
    ),
    (
        "bbb depthwise",
        bbh_tf.BayesByBackpropDepthwiseConv2D,
        {"kernel_size": 3},
        (2, 6, 6, 2),
        (2, 4, 4, 2),
    ),
    (
        "bbb embedding",
        bbh_tf.BayesByBackpropEmbedding,
        {"input_dim": 5, "output_dim": 3},
        (2, 4),
        (2, 4, 3),
    ),
    (
        "bbb lstm cell",
        keras.layers.RNN,
        {"cell": ("BayesByBackpropLSTMCell", {"units": 3})},
        (2, 4, 2),
        (2, 3),
    ),
    (
        "bbb conv",
        bbh_tf.BayesByBackpropConv2D,
        {"filters": 3, "kernel_size": 3},
        (2, 6, 6, 2),
        (2, 4, 4, 3),
    ),
]


class TestLayers(testing.TestCase):
    pass


@pytest.mark.parametrize(
    "case, layer, kwargs, input_shape, output_shape", CASES, ids=[c[0] for c in CASES]
)
def test_keras_layer_harness(case, layer, kwargs, input_shape, output_shape):
    kwargs = dict(kwargs)
    if kwargs.get("hypernet") == "shared":
        kwargs["hypernet"] = shared_hypernet()
    if "cell" in kwargs:  # a recurrent cell, run by keras.layers.RNN
        cell, cell_kwargs = kwargs["cell"]
        cell_kwargs = dict(cell_kwargs)
        if cell_kwargs.get("hypernet") == "shared":
            cell_kwargs["hypernet"] = shared_hypernet()
        kwargs["cell"] = getattr(bbh_tf, cell)(**cell_kwargs)
    keras.utils.set_random_seed(0)
    TestLayers().run_layer_test(
        layer,
        init_kwargs=kwargs,
        input_shape=input_shape,
        input_dtype="int32" if "Embedding" in layer.__name__ else "float32",
        expected_output_shape=output_shape,
        run_training_check=True,
        run_mixed_precision_check=True,
    )
