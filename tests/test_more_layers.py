"""HyperConv1D, HyperDepthwiseConv2D, HyperEmbedding, HyperLSTMCell and
their Bayes by Backprop counterparts: each equals its Keras layer with the
drawn weights, draw by draw; recurrent cells keep one draw per sequence;
models with them train, save, load and export."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import bbh_tf


def _hypernet():
    return bbh_tf.HyperNetwork(
        noise_dim=4, hidden_units=(8, 16), output_dim=32, code_dim=4
    )


def _draws_of(layer, num_draws):
    """Values to inject for ``num_draws`` draws, in the hypernetwork's
    layout, and as the layer uses them: ``(num_draws, num_generated)``."""
    raw = layer.generate(layer.hypernet.sample_noise(num_draws))
    flat = keras.ops.reshape(raw, (num_draws, -1))[:, : layer.num_generated]
    return raw, flat.numpy()


def _kernel_and_bias(layer, values):
    """One draw's kernel and bias, in the layer's kernel shape."""
    if layer.mode == "full":
        size = int(np.prod(layer.kernel_shape))
        bias = values[size:] if layer.use_bias else None
        return values[:size].reshape(layer.kernel_shape), bias
    direction = layer.direction.numpy()
    columns = direction.reshape(-1, layer.output_units)
    if layer.mode == "weight_norm":
        columns = columns / np.sqrt((columns**2).sum(axis=0))
    kernel = (columns * values).reshape(direction.shape)
    return kernel, layer.bias.numpy() if layer.use_bias else None


def _check_per_draw(layer, x, reference, weights_of):
    """``layer`` on ``x`` with 2 injected draws (half the rows each) equals
    ``reference`` set to each draw's weights."""
    raw, values = _draws_of(layer, 2)
    with bbh_tf.injected_values({layer: raw}):
        out = layer(x).numpy()
    half = len(x) // 2
    for draw, rows in ((0, slice(0, half)), (1, slice(half, None))):
        reference.set_weights(weights_of(*_kernel_and_bias(layer, values[draw])))
        np.testing.assert_allclose(out[rows], reference(x[rows]), rtol=1e-4, atol=1e-5)


MODES = ["scale", "weight_norm", "full"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"padding": "same"},
        {"padding": "causal", "dilation_rate": 2},
        {"strides": 2},
    ],
)
def test_conv1d_is_keras_conv1d_per_draw(mode, kwargs):
    layer = bbh_tf.HyperConv1D(4, 3, hypernet=_hypernet(), mode=mode, **kwargs)
    x = np.random.default_rng(0).normal(size=(4, 11, 2)).astype("float32")
    layer.build(x.shape)
    reference = keras.layers.Conv1D(4, 3, **kwargs)
    reference.build(x.shape)
    _check_per_draw(layer, x, reference, lambda k, b: [k, b])
    assert layer.compute_output_shape(x.shape) == reference.compute_output_shape(
        x.shape
    )


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kwargs", [{}, {"padding": "same", "strides": 2}])
def test_depthwise_is_keras_depthwise_per_draw(mode, kwargs):
    layer = bbh_tf.HyperDepthwiseConv2D(
        3, hypernet=_hypernet(), mode=mode, depth_multiplier=2, **kwargs
    )
    x = np.random.default_rng(1).normal(size=(4, 7, 7, 3)).astype("float32")
    layer.build(x.shape)
    assert layer.output_units == 6
    reference = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, **kwargs)
    reference.build(x.shape)
    _check_per_draw(layer, x, reference, lambda k, b: [k, b])


@pytest.mark.parametrize("mode", MODES)
def test_embedding_is_keras_embedding_per_draw(mode):
    layer = bbh_tf.HyperEmbedding(9, 5, hypernet=_hypernet(), mode=mode)
    ids = np.random.default_rng(2).integers(0, 9, size=(4, 6)).astype("int32")
    layer.build(ids.shape)
    reference = keras.layers.Embedding(9, 5)
    reference.build(ids.shape)
    _check_per_draw(layer, ids, reference, lambda k, b: [k])


@pytest.mark.parametrize("mode", MODES)
def test_lstm_cell_is_keras_lstm_per_draw(mode):
    cell = bbh_tf.HyperLSTMCell(3, hypernet=_hypernet(), mode=mode)
    rnn = keras.layers.RNN(cell, return_sequences=True)
    x = np.random.default_rng(3).normal(size=(4, 5, 2)).astype("float32")
    rnn.build(x.shape)
    reference = keras.layers.LSTM(3, return_sequences=True)
    reference.build(x.shape)

    def weights_of(kernel, bias):
        return [kernel[:2], kernel[2:], bias]

    raw, values = _draws_of(cell, 2)
    with bbh_tf.injected_values({cell: raw}):
        out = rnn(x).numpy()
    for draw, rows in ((0, slice(0, 2)), (1, slice(2, None))):
        reference.set_weights(weights_of(*_kernel_and_bias(cell, values[draw])))
        np.testing.assert_allclose(out[rows], reference(x[rows]), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "make", [lambda: bbh_tf.HyperLSTMCell(3), lambda: bbh_tf.BayesByBackpropLSTMCell(3)]
)
def test_recurrent_cells_draw_once_per_sequence(make):
    cell = make()
    rnn = keras.layers.RNN(cell, return_sequences=True)
    x = np.ones((2, 7, 2), "float32")
    rnn.build(x.shape)
    calls = []
    draw = cell._draw_for_sequence
    cell._draw_for_sequence = lambda step: calls.append(1) or draw(step)
    rnn(x)
    assert len(calls) == 1  # not once per step (7)
    # With every step's input equal and a fixed draw, a state at rest is a
    # fixed point: the sequence's draw does not change along it.
    long = np.ones((2, 60, 2), "float32")
    out = rnn(long).numpy()
    np.testing.assert_allclose(out[:, -1], out[:, -2], atol=1e-4)


def test_bbb_lstm_flipout_is_a_weight_draw_per_sequence():
    cell = bbh_tf.BayesByBackpropLSTMCell(3, init_rho=-1.0, seed=0)
    cell.build((None, 2))
    x = np.random.default_rng(4).normal(size=(5, 2)).astype("float32")
    h = np.random.default_rng(5).normal(size=(5, 3)).astype("float32")
    draw = cell._draw_for_sequence(x)
    eps, sign_in, sign_out, bias_eps = [d.numpy() for d in draw]
    cell._sequence_draw = draw
    out, _ = cell(x, [h, np.zeros_like(h)])
    cell.reset_dropout_mask()
    mu, sigma = cell.kernel_mu.numpy(), cell.kernel_sigma.numpy()
    features = np.concatenate([x, h], axis=1)
    for row in range(5):
        # Row n's weights: mu + (sigma * eps) * s_n r_n^T, its bias
        # mu_b + sigma_b * e_n.
        kernel = mu + sigma * eps * np.outer(sign_in[row], sign_out[row])
        bias = cell.bias_mu.numpy() + cell.bias_sigma.numpy() * bias_eps[row]
        gates = features[row] @ kernel + bias
        i, f, g, o = np.split(gates, 4)
        c = 1 / (1 + np.exp(-i)) * np.tanh(g)
        expected = 1 / (1 + np.exp(-o)) * np.tanh(c)
        np.testing.assert_allclose(out[row], expected, rtol=1e-4, atol=1e-5)


def test_bbb_embedding_moments_match_the_posterior():
    layer = bbh_tf.BayesByBackpropEmbedding(4, 3, init_rho=-1.0, seed=1)
    ids = np.full((20000, 1), 2, "int32")
    out = layer(ids).numpy()[:, 0]
    np.testing.assert_allclose(out.mean(0), layer.kernel_mu.numpy()[2], atol=0.02)
    np.testing.assert_allclose(out.std(0), layer.kernel_sigma.numpy()[2], rtol=0.05)


@pytest.mark.parametrize(
    "layer, shape",
    [
        (lambda: bbh_tf.BayesByBackpropConv1D(2, 3, init_rho=-1.0, seed=3), (1, 6, 2)),
        (
            lambda: bbh_tf.BayesByBackpropDepthwiseConv2D(
                3, depth_multiplier=2, init_rho=-1.0, seed=3
            ),
            (1, 5, 5, 2),
        ),
    ],
)
def test_bbb_convolutions_output_moments_match_the_posterior(layer, shape):
    layer = layer()
    x = np.repeat(np.random.default_rng(6).normal(size=shape), 4000, 0)
    x = x.astype("float32")
    out = layer(x).numpy()
    mean = layer._linear(x[:1], layer.kernel_mu) + layer.bias_mu
    variance = layer._linear(x[:1] ** 2, layer.kernel_sigma**2) + layer.bias_sigma**2
    np.testing.assert_allclose(out.mean(axis=0), mean[0], atol=0.1)
    np.testing.assert_allclose(out.var(axis=0), variance[0], rtol=0.15)


def _text_data(n=96, steps=8, vocab=12, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(1, vocab, size=(n, steps)).astype("int32")
    y = (x[:, : steps // 2].sum(1) > x[:, steps // 2 :].sum(1)).astype("int64")
    return x, y


def _sequence_net(method):
    if method == "bbh":
        layers = [
            bbh_tf.HyperEmbedding(12, 6),
            bbh_tf.HyperConv1D(6, 3, padding="causal", activation="relu"),
            keras.layers.RNN(bbh_tf.HyperLSTMCell(5)),
            bbh_tf.HyperDense(2, activation="softmax"),
        ]
    else:
        layers = [
            bbh_tf.BayesByBackpropEmbedding(12, 6),
            bbh_tf.BayesByBackpropConv1D(6, 3, padding="causal", activation="relu"),
            keras.layers.RNN(bbh_tf.BayesByBackpropLSTMCell(5)),
            bbh_tf.BayesByBackpropDense(2, activation="softmax"),
        ]
    return keras.Sequential([keras.Input((8,), dtype="int32"), *layers])


@pytest.mark.parametrize("method", ["bbh", "bbb"])
def test_sequence_models_train_save_load_and_export(method, tmp_path):
    x, y = _text_data()
    wrapper = bbh_tf.BayesByHypernet if method == "bbh" else bbh_tf.BayesByBackprop
    model = wrapper(_sequence_net(method), num_examples=len(x))
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, batch_size=32, epochs=2, verbose=0).history
    assert np.isfinite(history["loss"]).all()
    if method == "bbh":
        assert len(model.hypernets) == 1  # every layer shares one
    mean, std = model.predict_distribution(x, num_samples=8)
    assert mean.shape == (len(x), 2) and (std > 0).any()
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = bbh_tf.load_model(path)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    export = str(tmp_path / "export")
    bbh_tf.export_saved_model(model, export, num_samples=4)
    served = tf.saved_model.load(export).signatures["serving_default"]
    outputs = served(inputs=tf.constant(x[:3]))
    assert outputs["mean"].shape == (3, 2)


def test_a_masking_embedding_first_in_a_sequential_network_predicts():
    # Its mask follows its input rows, so prediction must not hand it one
    # copy of the batch for all draws.
    x, y = _text_data()
    x[:, -2:] = 0  # padding
    net = keras.Sequential(
        [
            keras.Input((8,), dtype="int32"),
            bbh_tf.HyperEmbedding(12, 6, mask_zero=True),
            keras.layers.RNN(bbh_tf.HyperLSTMCell(5)),
            bbh_tf.HyperDense(2, activation="softmax"),
        ]
    )
    model = bbh_tf.BayesByHypernet(net, num_examples=len(x))
    mean, std = model.predict_distribution(x[:7], num_samples=4)
    assert mean.shape == (7, 2) and np.isfinite(mean).all()


@pytest.mark.parametrize("explicit", [True, False])
def test_a_bidirectional_wrapper_keeps_one_hypernetwork(explicit):
    # Bidirectional rebuilds its layer (and so the cell) from its config,
    # twice; the copies draw from one hypernetwork again.
    hypernet = bbh_tf.HyperNetwork() if explicit else None
    net = keras.Sequential(
        [
            keras.Input((5, 3)),
            keras.layers.Bidirectional(
                keras.layers.RNN(bbh_tf.HyperLSTMCell(4, hypernet=hypernet))
            ),
            bbh_tf.HyperDense(2, activation="softmax", hypernet=hypernet),
        ]
    )
    model = bbh_tf.BayesByHypernet(net, num_examples=10)
    model.build((None, 5, 3))
    assert len(model.hyper_layers) == 3
    assert len(model.hypernets) == 1
    if explicit:
        assert model.hypernets[0] is hypernet
    health = bbh_tf.callbacks.PosteriorHealth(num_draws=4)
    health.set_model(model)
    assert len(health.spreads()) == 3  # the two cells told apart


def test_int64_ids_are_not_wrapped_to_int32():
    layer = bbh_tf.HyperEmbedding(10, 2)
    ids = tf.constant([[2**32 + 5]], dtype="int64")
    with pytest.raises(tf.errors.InvalidArgumentError):
        layer(ids)
