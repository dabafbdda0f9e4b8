"""HyperNetwork and HyperDense: shapes, slicing, chunking, sharing, draws."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import small_classifier

import bbh_tf


def _hypernet(**kwargs):
    config = dict(noise_dim=4, hidden_units=(8, 16), output_dim=16, code_dim=4)
    config.update(kwargs)
    return bbh_tf.HyperNetwork(**config)


def _variable_ids(model):
    return {id(v) for v in model.trainable_variables}


def test_hypernetwork_output_shape_and_every_hidden_layer_applied():
    hypernet = _hypernet(hidden_units=(8, 16, 5))
    noise = hypernet.sample_noise(3)
    out = hypernet(noise, tf.random.normal((7, 4)))
    assert noise.shape == (3, 4) and out.shape == (3, 7, 16)
    kernels = [v for v in hypernet.trainable_variables if "kernel" in v.path]
    assert [tuple(k.shape) for k in kernels] == [(8, 8), (8, 16), (16, 5), (5, 16)]


def test_slicing_when_a_layer_needs_fewer_values_than_a_chunk():
    layer = bbh_tf.HyperDense(5, hypernet=_hypernet(output_dim=16))
    layer.build((None, 3))
    assert layer.num_generated == 5
    assert tuple(layer.position_codes.shape) == (1, 4)
    assert layer.generated_values().shape == (1, 5)


def test_chunking_when_a_layer_needs_more_values_than_a_chunk():
    hypernet = _hypernet(output_dim=16)
    layer = bbh_tf.HyperDense(10, hypernet=hypernet, mode="full")
    layer.build((None, 7))  # 7 * 10 + 10 = 80 values = 5 chunks of 16
    assert layer.num_generated == 80
    assert tuple(layer.position_codes.shape) == (5, 4)
    raw = layer.generate(hypernet.sample_noise(2))
    assert raw.shape == (2, 5, 16)
    # Different chunks (different codes) give different values.
    assert not np.allclose(raw[:, 0].numpy(), raw[:, 1].numpy())


def test_hypernetwork_size_does_not_grow_with_the_layers_it_serves():
    small = _hypernet()
    bbh_tf.HyperDense(3, hypernet=small, mode="full").build((None, 2))
    large = _hypernet()
    bbh_tf.HyperDense(300, hypernet=large, mode="full").build((None, 200))
    assert [v.shape for v in small.weights] == [v.shape for v in large.weights]


@pytest.mark.parametrize("mode", ["scale", "weight_norm", "full"])
def test_one_set_of_hypernetwork_variables_however_many_layers(mode):
    hypernet = _hypernet()
    layers = [bbh_tf.HyperDense(4, hypernet=hypernet, mode=mode) for _ in range(4)]
    net = keras.Sequential([keras.Input((3,))] + layers)
    hyper_ids = {id(v) for v in hypernet.trainable_variables}
    assert len(hyper_ids) == 6
    assert hyper_ids <= _variable_ids(net)
    # direction + bias, and every layer's conditional means and sigmas.
    per_layer = (0 if mode == "full" else 2) + 2
    assert len(net.trainable_variables) == 6 + 4 * per_layer
    assert all(layer.hypernet is hypernet for layer in layers)


def test_sharing_in_functional_and_subclassed_models_in_any_build_order():
    hypernet = _hypernet()
    first = bbh_tf.HyperDense(5, hypernet=hypernet)
    second = bbh_tf.HyperDense(2, hypernet=hypernet, mode="full")
    # Build the second layer first: the hypernetwork must still be shared.
    second.build((None, 5))
    inputs = keras.Input((3,))
    functional = keras.Model(inputs, second(first(inputs)))
    # 6 shared, direction + bias of the first, means + sigmas of both.
    assert len({id(v) for v in functional.trainable_variables}) == 6 + 2 + 2 * 2

    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.hypernet = _hypernet()
            self.a = bbh_tf.HyperDense(5, hypernet=self.hypernet)
            self.b = bbh_tf.HyperDense(2, hypernet=self.hypernet)

        def call(self, x):
            return self.b(self.a(x))

    model = Subclassed()
    model(np.zeros((2, 3), "float32"))
    assert len(model.trainable_variables) == 6 + 4 + 2 * 2
    assert model.a.hypernet is model.b.hypernet


@pytest.mark.parametrize("mode", ["scale", "weight_norm", "full"])
def test_weights_differ_between_forward_passes(mode):
    net = small_classifier(mode=mode)
    x = np.ones((4, 6), "float32")
    first, second = net(x).numpy(), net(x).numpy()
    assert first.shape == (4, 3)
    assert not np.allclose(first, second)
    # One draw per bare call: every example sees the same weights, so equal
    # inputs give equal outputs.
    np.testing.assert_allclose(first[0], first[1], rtol=1e-6)


def test_injected_values_lay_draws_out_in_contiguous_groups():
    hypernet = _hypernet()
    layer = bbh_tf.HyperDense(3, hypernet=hypernet, mode="full")
    layer.build((None, 2))
    raw = layer.generate(hypernet.sample_noise(2))
    x = np.arange(8, dtype="float32").reshape(4, 2)
    with bbh_tf.injected_values({layer: raw}):
        both = layer(x).numpy()
    values = keras.ops.reshape(raw, (2, -1))[:, :9].numpy()
    for draw, rows in ((0, slice(0, 2)), (1, slice(2, 4))):
        kernel, bias = values[draw, :6].reshape(2, 3), values[draw, 6:]
        np.testing.assert_allclose(both[rows], x[rows] @ kernel + bias, rtol=1e-5)


def test_weight_norm_mode_scales_unit_norm_directions():
    hypernet = _hypernet()
    layer = bbh_tf.HyperDense(3, hypernet=hypernet, use_bias=False, mode="weight_norm")
    layer.build((None, 2))
    raw = layer.generate(hypernet.sample_noise(1))
    x = np.eye(2, dtype="float32")
    with bbh_tf.injected_values({layer: raw}):
        kernel = layer(x).numpy()  # rows of the identity read the kernel out
    scales = raw.numpy().reshape(-1)[:3]
    np.testing.assert_allclose(
        np.linalg.norm(kernel, axis=0), np.abs(scales), rtol=1e-5
    )


def test_column_norms_value_and_gradient_equal_automatic_differentiation():
    # The hand-written gradient replaces autodiff of the plain formula.
    columns = tf.constant(
        np.random.default_rng(0).normal(size=(7, 5)), dtype=tf.float32
    )
    upstream = tf.constant(np.arange(1.0, 6.0), dtype=tf.float32)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(columns)
        fused = bbh_tf.layers.column_norms(columns)
        plain = tf.sqrt(tf.reduce_sum(tf.square(columns), axis=0) + 1e-12)
        fused_loss = tf.reduce_sum(fused * upstream)
        plain_loss = tf.reduce_sum(plain * upstream)
    np.testing.assert_allclose(fused, plain, rtol=1e-6)
    np.testing.assert_allclose(
        tape.gradient(fused_loss, columns),
        tape.gradient(plain_loss, columns),
        rtol=1e-5,
    )


def test_scale_mode_scales_the_kernel_columns():
    hypernet = _hypernet()
    layer = bbh_tf.HyperDense(
        3, hypernet=hypernet, mode="scale", bias_initializer="ones"
    )
    layer.build((None, 2))
    assert layer.num_generated == 3  # one scale per unit
    raw = layer.generate(hypernet.sample_noise(2))
    x = np.concatenate([np.eye(2, dtype="float32")] * 2)
    with bbh_tf.injected_values({layer: raw}):
        out = layer(x).numpy()
    scales = raw.numpy().reshape(2, -1)[:, :3]
    for draw, rows in ((0, slice(0, 2)), (1, slice(2, 4))):
        # Rows of the identity read the kernel (plus the bias) out.
        np.testing.assert_allclose(
            out[rows], layer.direction.numpy() * scales[draw] + 1.0, rtol=1e-5
        )


def test_layers_accept_extra_leading_axes_and_tf_function():
    layer = bbh_tf.HyperDense(4, hypernet=_hypernet(), activation="tanh")
    x = tf.ones((2, 5, 3))
    assert layer(x).shape == (2, 5, 4)
    assert tf.function(layer)(x).shape == (2, 5, 4)


def test_get_config_round_trips():
    hypernet = _hypernet(seed=3, noise_per_chunk=True)
    layer = bbh_tf.HyperDense(
        7,
        hypernet=hypernet,
        mode="full",
        activation="relu",
        use_bias=False,
        kernel_regularizer="l2",
    )
    config = layer.get_config()
    assert config["hypernet"] == keras.saving.serialize_keras_object(hypernet)
    clone = bbh_tf.HyperDense.from_config(config)
    assert clone.get_config() == config
    assert clone.hypernet is not hypernet and clone.hypernet.noise_per_chunk
    restored = bbh_tf.HyperNetwork.from_config(hypernet.get_config())
    assert restored.get_config() == hypernet.get_config()
    assert restored.noise_per_chunk
    # From a fully serialized dict too (outside a sharing scope).
    serialized = keras.saving.serialize_keras_object(layer)
    assert keras.saving.deserialize_keras_object(serialized).units == 7


@pytest.mark.parametrize(
    "make, error, name",
    [
        (lambda: bbh_tf.HyperDense(0, hypernet=_hypernet()), ValueError, "units"),
        (lambda: bbh_tf.HyperDense(3, hypernet="big"), TypeError, "hypernet"),
        (
            lambda: bbh_tf.HyperDense(3, hypernet=_hypernet(), mode="x"),
            ValueError,
            "mode",
        ),
        (lambda: bbh_tf.HyperNetwork(noise_dim=0), ValueError, "noise_dim"),
        (lambda: bbh_tf.HyperNetwork(output_dim=-1), ValueError, "output_dim"),
        (lambda: bbh_tf.HyperNetwork(code_dim=0), ValueError, "code_dim"),
        (lambda: bbh_tf.HyperNetwork(hidden_units=(8, 0)), ValueError, "hidden_units"),
        (lambda: bbh_tf.HyperNetwork(noise_dim=2.5), TypeError, "noise_dim"),
        (
            lambda: bbh_tf.HyperNetwork(noise_per_chunk="yes"),
            TypeError,
            "noise_per_chunk",
        ),
    ],
)
def test_bad_arguments_name_the_argument(make, error, name):
    with pytest.raises(error, match=name):
        make()


def test_wrong_input_dimension_is_a_clear_error():
    net = small_classifier(input_dim=6)
    with pytest.raises(
        ValueError, match="expected axis -1 of input shape to have value 6"
    ):
        net(np.zeros((2, 5), "float32"))


def test_import_refuses_a_non_tensorflow_backend(tmp_path):
    import subprocess
    import sys

    from conftest import REPO

    result = subprocess.run(
        [sys.executable, "-c", "import bbh_tf"],
        cwd=tmp_path,
        env={"KERAS_BACKEND": "jax", "PYTHONPATH": REPO, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "bbh_tf needs Keras 3 on the TensorFlow backend" in result.stderr


def test_unknown_input_dimension_is_a_clear_error():
    layer = bbh_tf.HyperDense(3, hypernet=_hypernet())
    with pytest.raises(ValueError, match="last dimension of the input must be known"):
        layer.build((None, None))


def test_noise_per_chunk_gives_each_chunk_its_own_noise():
    hypernet = _hypernet(output_dim=2, noise_per_chunk=True)
    layer = bbh_tf.HyperDense(3, hypernet=hypernet, mode="full")
    layer.build((None, 2))  # 2 * 3 + 3 = 9 values = 5 chunks of 2
    noise = hypernet.sample_noise(4, 5)
    assert noise.shape == (4, 5, 4) == hypernet.noise_shape(4, 5)
    raw = layer.generate(noise).numpy()
    assert raw.shape == (4, 5, 2)
    # Chunk 0's values depend on chunk 0's noise only.
    changed = layer.generate(tf.concat([noise[:, :1], -noise[:, 1:]], axis=1)).numpy()
    np.testing.assert_allclose(changed[:, 0], raw[:, 0], rtol=1e-6)
    assert not np.allclose(changed[:, 1:], raw[:, 1:])
    # A bare call draws noise for all its chunks, afresh on every call.
    first, second = layer.generated_values(), layer.generated_values()
    assert first.shape == (1, 9) and not np.allclose(first, second)


def test_noise_keeps_keras_stream_and_names_philox_for_xla():
    # Without XLA the noise is keras.random.normal's, number for number, so
    # results from before the change reproduce.
    hypernet = _hypernet(seed=3)
    expected = keras.random.normal((5, 4), seed=keras.random.SeedGenerator(3))
    np.testing.assert_array_equal(hypernet.sample_noise(5).numpy(), expected.numpy())
    # The algorithm is named, not "auto_select", which XLA on CPU resolves
    # to a generator about 30 times slower (docs/performance.md, "Random numbers under XLA").
    graph = tf.function(lambda: hypernet.sample_noise(5)).get_concrete_function().graph
    normals = [
        op for op in graph.get_operations() if op.type == "StatelessRandomNormalV2"
    ]
    assert len(normals) == 1
    alg = tf.get_static_value(normals[0].inputs[3])
    assert alg == tf.random.Algorithm.PHILOX.value


def test_noise_under_xla_is_standard_normal_and_fresh_per_call():
    hypernet = _hypernet(noise_per_chunk=True, seed=0)
    draw = tf.function(lambda: hypernet.sample_noise(500, 25), jit_compile=True)
    first, second = draw().numpy(), draw().numpy()
    assert first.shape == (500, 25, 4)
    # 50 000 values: mean within 4 standard errors (0.018) of 0, std of 1.
    assert abs(first.mean()) < 0.02 and abs(first.std() - 1) < 0.02
    assert abs(np.corrcoef(first.ravel(), second.ravel())[0, 1]) < 0.02


def test_noise_per_chunk_with_one_value_per_chunk_gives_independent_values():
    def correlations(noise_per_chunk):
        hypernet = _hypernet(output_dim=1, noise_per_chunk=noise_per_chunk, seed=0)
        layer = bbh_tf.HyperDense(4, hypernet=hypernet, mode="full")
        layer.build((None, 2))  # 12 values, 12 chunks
        noise = hypernet.sample_noise(4000, 12)
        values = layer.generate(noise).numpy().reshape(4000, 12)
        return np.abs(np.corrcoef(values.T)[np.triu_indices(12, 1)])

    # 4000 draws: independent values correlate by about 1/sqrt(4000) = 0.016.
    assert correlations(True).max() < 0.08
    # The same hypernetwork with one shared noise draw makes them dependent.
    assert correlations(False).mean() > 0.2


def test_noise_of_the_wrong_shape_is_a_clear_error():
    hypernet = _hypernet(noise_per_chunk=True)
    codes = tf.random.normal((3, 4))
    with pytest.raises(
        ValueError, match=r"`noise` must have shape \('num_draws', 3, 4\)"
    ):
        hypernet(tf.random.normal((2, 4)), codes)
    with pytest.raises(ValueError, match=r"`noise` must have shape"):
        hypernet(hypernet.sample_noise(2, 5), codes)
    with pytest.raises(ValueError, match=r"`noise` must have shape \('num_draws', 4\)"):
        _hypernet()(hypernet.sample_noise(2, 3), codes)


@pytest.mark.parametrize("noise_per_chunk", [False, True])
def test_bad_noise_counts_are_clear_errors(noise_per_chunk):
    hypernet = _hypernet(noise_per_chunk=noise_per_chunk)
    with pytest.raises(ValueError, match=r"`num_draws` must be an integer >= 1, got 0"):
        hypernet.sample_noise(0)
    with pytest.raises(
        ValueError, match=r"`num_chunks` must be an integer >= 1, got -2"
    ):
        hypernet.sample_noise(3, -2)
    with pytest.raises(
        TypeError, match=r"`num_draws` must be an integer >= 1, got 2.5"
    ):
        hypernet.noise_shape(2.5, 1)


@pytest.mark.parametrize("mode", ["scale", "weight_norm", "full"])
def test_model_with_noise_per_chunk_trains_predicts_and_saves(mode, tmp_path):
    from conftest import blobs, compiled_model

    x, y = blobs(n=64)
    model = compiled_model(
        small_classifier(mode=mode, output_dim=1, noise_per_chunk=True),
        num_examples=64,
        num_weight_samples=2,
    )
    history = model.fit(x, y, batch_size=32, epochs=2, verbose=0).history
    assert np.isfinite(history["loss"]).all()
    mean, std = model.predict_distribution(x[:5], num_samples=8)
    assert mean.shape == std.shape == (5, 3) and (std > 0).all()
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    assert all(layer.hypernet.noise_per_chunk for layer in loaded.hyper_layers)
    assert loaded.predict_distribution(x[:5], num_samples=8)[0].shape == (5, 3)


@keras.saving.register_keras_serializable(package="bbh_tf_tests")
class _HyperScale(bbh_tf.HyperLayer):
    """A user's own hyper layer: every input feature times a generated scale."""

    def build(self, input_shape):
        self.features = int(input_shape[-1])
        self.add_generated_values(self.features, initial_mean="ones")

    def call(self, inputs):
        scales = self.generated_values()
        grouped = tf.reshape(inputs, tf.stack([tf.shape(scales)[0], -1, self.features]))
        return tf.reshape(grouped * scales[:, None, :], tf.shape(inputs))


def test_a_users_hyper_layer_first_in_a_sequential_network_predicts():
    # The first hyper layer of a Sequential network gets one copy of a
    # prediction batch only if it says it can expand it; a user's cannot.
    net = keras.Sequential([keras.Input((5,)), _HyperScale(), bbh_tf.HyperDense(2)])
    model = bbh_tf.BayesByHypernet(net, num_examples=10)
    x = np.random.default_rng(0).normal(size=(7, 5)).astype("float32")
    mean, std = model.predict_distribution(x, num_samples=6)
    assert mean.shape == std.shape == (7, 2)
    assert np.isfinite(mean).all() and (std > 0).all()
