"""BayesByHypernet: training through fit, predictive uncertainty, errors."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import blobs, compiled_model, small_classifier

import bbh_tf


@pytest.mark.parametrize("estimator", sorted(bbh_tf.kl.ESTIMATORS))
def test_fit_lowers_the_loss_and_logs_every_quantity(estimator):
    x, y = blobs()
    model = compiled_model(kl_estimator=estimator)
    history = model.fit(x, y, batch_size=32, epochs=6, verbose=0).history
    logged = ("loss", "nll", "kl", "accuracy") + model.kl_estimator.log_names
    for key in logged:
        assert key in history and all(np.isfinite(history[key])), key
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    assert history["accuracy"][-1] > 0.9
    if estimator == "adversarial":
        # A sum of two logistic losses: at most about 2 ln 2 when the
        # discriminator cannot tell the classes apart.
        assert 0 < history["discriminator_loss"][-1] < 2 * math.log(2) + 0.1
    else:
        # The KL is what the estimator logs it to be made of.
        np.testing.assert_allclose(
            history["kl"],
            np.subtract(history["cross_entropy"], history["entropy"]),
            rtol=1e-4,
        )
    # Evaluation trains no estimator, so it logs none of its quantities.
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    assert set(logs) == {"loss", "nll", "kl", "accuracy"}, logs


def test_loss_is_nll_plus_kl_over_num_examples():
    x, y = blobs(n=64)
    model = compiled_model(num_examples=64, kl_weight=0.5)
    logs = model.evaluate(x, y, batch_size=64, verbose=0, return_dict=True)
    expected = logs["nll"] + 0.5 * logs["kl"] / 64
    assert logs["loss"] == pytest.approx(expected, rel=1e-4, abs=1e-5)


def test_kl_gradient_reaches_the_whole_posterior():
    x, _ = blobs(n=32)
    model = compiled_model(num_examples=32)
    model.build(x.shape)
    with tf.GradientTape() as tape:
        _, draws = model._split_forward(tf.constant(x), training=True)
        kl = model.kl_estimate(draws)
    variables = model.hypernets[0].trainable_variables + [
        v
        for layer in model.hyper_layers
        for v in (layer.generated_mean, layer.stddev_rho)
    ]
    gradients = tape.gradient(kl, variables)
    assert all(g is not None and np.any(g.numpy() != 0) for g in gradients)


def test_one_joint_draw_across_layers_per_weight_sample():
    model = compiled_model()
    model.build((None, 6))
    (noise,) = model._draw_noise(3)  # one group: one shared hypernet
    (draws,) = model.draw(3, [noise])
    first, second = model.hyper_layers
    # The same noise row feeds every layer; only the position codes differ.
    # Generating the layers together equals generating each on its own.
    together = tf.split(draws.mean, model._groups[0].chunks, axis=1)
    for layer, part in zip((first, second), together):
        alone = layer.conditional_mean(
            tf.reshape(layer.generate(noise.eps), (3, -1))[:, : layer.num_generated]
        )
        flat = tf.reshape(part, (3, -1))[:, : layer.num_generated]
        np.testing.assert_allclose(flat.numpy(), alone.numpy(), rtol=1e-5, atol=1e-6)
    # The values add each value's own noise sigma * xi to the mean.
    sigma = model._groups[0].stddev()
    np.testing.assert_allclose(
        (draws.values - draws.mean).numpy(), (sigma * noise.xi).numpy(), atol=1e-6
    )


def test_discriminator_steps_warmup_and_kl_schedule():
    x, y = blobs(n=64)
    schedule = keras.optimizers.schedules.PolynomialDecay(
        0.0, 10, end_learning_rate=1.0
    )
    model = compiled_model(
        num_examples=64,
        kl_weight=schedule,
        kl_estimator=bbh_tf.kl.AdversarialKL(steps=2, warmup_steps=5),
    )
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    # 5 warm-up updates, then 2 per batch for 2 batches.
    assert int(model.discriminator_optimizer.iterations) == 5 + 2 * 2
    assert int(model.optimizer.iterations) == 2
    # A second fit does not warm up again.
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    assert int(model.discriminator_optimizer.iterations) == 9 + 4


def test_estimators_without_weights_leave_the_discriminator_optimizer_idle():
    x, y = blobs(n=64)
    model = compiled_model(num_examples=64)
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    assert model.kl_estimator.trainable_variables == []
    assert int(model.discriminator_optimizer.iterations) == 0


def test_toy_regression_std_grows_away_from_the_data():
    x, y = bbh_tf.data.toy_regression(n=20, seed=0)
    hypernet = bbh_tf.HyperNetwork()
    net = keras.Sequential(
        [
            keras.Input((1,)),
            bbh_tf.HyperDense(100, activation="relu", mode="full", hypernet=hypernet),
            keras.layers.Dense(1),
        ]
    )
    model = bbh_tf.BayesByHypernet(net, num_examples=20)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        discriminator_optimizer=keras.optimizers.Adam(1e-3),
        loss=lambda t, p: 0.5 * tf.reduce_mean(tf.square(t - p), axis=-1) / 9.0,
    )
    data = tf.data.Dataset.from_tensors((x, y)).repeat()
    model.fit(data, steps_per_epoch=300, epochs=1, verbose=0)
    inside = np.linspace(-3, 3, 25, dtype="float32")[:, None]
    outside = np.concatenate([np.linspace(-7, -6, 5), np.linspace(6, 7, 5)])
    _, std_in = model.predict_distribution(inside, num_samples=200)
    _, std_out = model.predict_distribution(
        outside[:, None].astype("float32"), num_samples=200
    )
    assert std_out.mean() > 2 * std_in.mean()


def test_predict_distribution_shapes_and_vectorised_draws():
    x, _ = blobs(n=37)
    model = compiled_model()
    mean, std = model.predict_distribution(x, num_samples=20, batch_size=16)
    assert mean.shape == std.shape == (37, 3)
    assert mean.dtype == std.dtype == np.float32
    np.testing.assert_allclose(mean.sum(axis=1), 1.0, rtol=1e-5)
    assert np.all(std > 0)
    samples = model.sample_predictions(x[:5], 7)
    assert samples.shape == (7, 5, 3)
    # Distinct draws give distinct outputs for the same example.
    assert not np.allclose(samples[0].numpy(), samples[1].numpy())


def test_predict_samples_agree_with_predict_distribution():
    x, _ = blobs(n=37)
    model = compiled_model()
    samples = model.predict_samples(x, num_samples=400, batch_size=16)
    assert samples.shape == (400, 37, 3) and samples.dtype == np.float32
    np.testing.assert_allclose(samples.sum(axis=2), 1.0, rtol=1e-5)
    mean, std = model.predict_distribution(x, num_samples=400, batch_size=16)
    # Independent draws of the same posterior: equal up to Monte Carlo error.
    np.testing.assert_allclose(samples.mean(axis=0), mean, atol=0.05)
    np.testing.assert_allclose(samples.std(axis=0), std, atol=0.05)
    mi = bbh_tf.metrics.mutual_information(samples)
    assert mi.shape == (37,) and np.all(mi >= 0) and mi.max() > 0


def test_array_batches_share_each_passes_draws_and_datasets_stream_fresh_ones():
    # An array's draws are generated once per pass for all its batches: the
    # same example in two batches gets the same outputs draw by draw. A
    # dataset, streamed, gets fresh draws per batch.
    x, _ = blobs(n=6)
    twice = np.concatenate([x[:3], x[:3]])
    model = compiled_model()
    samples = model.predict_samples(twice, num_samples=5, batch_size=3)
    np.testing.assert_allclose(samples[:, :3], samples[:, 3:], rtol=1e-6)
    assert not np.allclose(samples[0], samples[1])
    streamed = model.predict_samples(
        tf.data.Dataset.from_tensor_slices(twice).batch(3), num_samples=5
    )
    assert not np.allclose(streamed[:, :3], streamed[:, 3:])
    # More draws than one pass holds: each pass shares its own draws.
    from bbh_tf import prediction

    limit = prediction._PASS_VALUES
    prediction._PASS_VALUES = 2 * 3 * x.shape[1]  # 2 draws per pass
    try:
        samples = model.predict_samples(twice, num_samples=5, batch_size=3)
    finally:
        prediction._PASS_VALUES = limit
    np.testing.assert_allclose(samples[:, :3], samples[:, 3:], rtol=1e-6)
    assert len({round(float(s[0, 0]), 6) for s in samples}) == 5


def test_predict_rejects_empty_inputs():
    model = compiled_model()
    with pytest.raises(ValueError, match="at least one example"):
        model.predict_samples(np.zeros((0, 6), "float32"), num_samples=3)


def test_predict_distribution_single_draw_has_zero_std():
    x, _ = blobs(n=8)
    _, std = compiled_model().predict_distribution(x, num_samples=1)
    np.testing.assert_array_equal(std, 0.0)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"num_samples": 0}, ValueError, "num_samples"),
        ({"num_samples": 2.5}, TypeError, "num_samples"),
        ({"batch_size": 0}, ValueError, "batch_size"),
    ],
)
def test_predict_distribution_rejects_bad_arguments(kwargs, error, match):
    x, _ = blobs(n=4)
    with pytest.raises(error, match=match):
        compiled_model().predict_distribution(x, **kwargs)


def test_predict_distribution_rejects_bad_inputs():
    x, _ = blobs(n=4)
    model = compiled_model()
    model.build(x.shape)
    with pytest.raises(ValueError, match=r"`x` must have shape \(n, 6\)"):
        model.predict_distribution(x[:, :5])
    bad = x.copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="`x` contains NaN or infinite"):
        model.predict_distribution(bad)
    bad[1, 2] = np.inf
    with pytest.raises(ValueError, match="`x` contains NaN or infinite"):
        model.predict_distribution(bad)
    with pytest.raises(ValueError, match="batch axis"):
        model.predict_distribution(np.zeros(6, "float32"))


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"num_examples": None}, ValueError, "num_examples"),
        ({"num_examples": 0}, ValueError, "num_examples"),
        ({"num_weight_samples": 0}, ValueError, "num_weight_samples"),
        ({"kl_weight": -1.0}, ValueError, "kl_weight"),
        ({"kl_weight": float("nan")}, ValueError, "kl_weight"),
        ({"kl_estimator": "exact"}, ValueError, "kl_estimator"),
        ({"kl_estimator": keras.Sequential()}, ValueError, "kl_estimator"),
        ({"prior": "gaussian"}, TypeError, "prior"),
    ],
)
def test_constructor_rejects_bad_arguments(kwargs, error, match):
    arguments = {"num_examples": 10}
    arguments.update(kwargs)
    with pytest.raises(error, match=match):
        bbh_tf.BayesByHypernet(small_classifier(), **arguments)


def test_network_must_be_a_layer_with_hyper_layers():
    with pytest.raises(TypeError, match="network"):
        bbh_tf.BayesByHypernet("mlp", num_examples=10)
    plain = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="no hyper layers"):
        bbh_tf.BayesByHypernet(plain, num_examples=10).build((None, 3))


def test_fit_before_compile_is_a_clear_error():
    x, y = blobs(n=8)
    model = bbh_tf.BayesByHypernet(small_classifier(), num_examples=8)
    with pytest.raises(RuntimeError, match="compile"):
        model.fit(x, y, verbose=0)


def test_functional_and_subclassed_inner_networks_train():
    x, y = blobs(n=64)
    hypernet = bbh_tf.HyperNetwork(
        noise_dim=4, hidden_units=(8,), output_dim=8, code_dim=4
    )
    inputs = keras.Input((6,))
    hidden = bbh_tf.HyperDense(8, activation="relu", hypernet=hypernet)(inputs)
    functional = keras.Model(
        inputs, bbh_tf.HyperDense(3, activation="softmax", hypernet=hypernet)(hidden)
    )

    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            shared = bbh_tf.HyperNetwork(
                noise_dim=4, hidden_units=(8,), output_dim=8, code_dim=4
            )
            self.hidden = bbh_tf.HyperDense(8, activation="relu", hypernet=shared)
            self.out = bbh_tf.HyperDense(3, activation="softmax", hypernet=shared)

        def call(self, x):
            return self.out(self.hidden(x))

    for network in (functional, Subclassed()):
        model = compiled_model(network, num_examples=64)
        history = model.fit(x, y, batch_size=32, epochs=3, verbose=0).history
        assert history["loss"][-1] < history["loss"][0]
        assert len(model.hypernets) == 1


@pytest.mark.parametrize("jit_compile", [False, True])
def test_train_step_with_and_without_xla(jit_compile):
    x, y = blobs(n=64)
    model = bbh_tf.BayesByHypernet(small_classifier(), num_examples=64)
    model.compile(
        optimizer="adam",
        discriminator_optimizer="adam",
        loss="sparse_categorical_crossentropy",
        jit_compile=jit_compile,
    )
    history = model.fit(x, y, batch_size=30, epochs=2, verbose=0).history
    assert np.all(np.isfinite(history["loss"]))


def test_fit_builds_from_a_generator_it_cannot_inspect():
    x, y = blobs(n=64)

    def batches():
        while True:
            for start in range(0, 64, 32):
                yield x[start : start + 32], y[start : start + 32]

    model = compiled_model(num_examples=64)
    history = model.fit(batches(), steps_per_epoch=2, epochs=2, verbose=0).history
    assert model.built and np.isfinite(history["loss"]).all()
    assert int(model.optimizer.iterations) == 4


def test_one_optimizer_object_for_both_roles_is_refused():
    model = bbh_tf.BayesByHypernet(small_classifier(), num_examples=10)
    adam = keras.optimizers.Adam()
    with pytest.raises(ValueError, match="discriminator_optimizer"):
        model.compile(optimizer=adam, discriminator_optimizer=adam, loss="mse")


def test_discriminator_sample_size_keeps_the_kl_estimate_unbiased():
    x, _ = blobs(n=32)
    estimator = bbh_tf.kl.AdversarialKL()
    model = compiled_model(
        small_classifier(mode="full"), num_examples=32, kl_estimator=estimator
    )
    model.build(x.shape)
    _, draws = model._split_forward(tf.constant(x), training=True)
    total = sum(group.num_values for group in model._groups)  # 6*12+12+12*3+3
    every = float(model.kl_estimate(draws))
    # A subset at least as large as the whole is the whole, exactly.
    estimator.sample_size = total
    assert float(model.kl_estimate(draws)) == pytest.approx(every, rel=1e-6)
    # A random tenth, scaled up: right on average over many subsets.
    estimator.sample_size = total // 10
    estimates = np.array([float(model.kl_estimate(draws)) for _ in range(400)])
    assert estimates.std() > 0
    standard_error = estimates.std() / np.sqrt(len(estimates))
    assert abs(estimates.mean() - every) < 4 * standard_error, (
        estimates.mean(),
        every,
        standard_error,
    )


def test_training_with_a_discriminator_subsample():
    x, y = blobs()
    model = compiled_model(
        small_classifier(mode="full"),
        kl_estimator=bbh_tf.kl.AdversarialKL(sample_size=24),
    )
    history = model.fit(x, y, batch_size=32, epochs=6, verbose=0).history
    assert np.isfinite(history["kl"]).all()
    assert history["loss"][-1] < 0.6 * history["loss"][0], history["loss"]
    assert history["accuracy"][-1] > 0.9
    config = keras.saving.serialize_keras_object(model)["config"]
    restored = bbh_tf.BayesByHypernet.from_config(config)
    assert restored.kl_estimator.sample_size == 24


def _prediction_network(kind, mode):
    hypernet = bbh_tf.HyperNetwork(
        noise_dim=4, hidden_units=(8,), output_dim=16, code_dim=4
    )
    if kind == "dense":
        first = bbh_tf.HyperDense(12, activation="relu", hypernet=hypernet, mode=mode)
        # A layer before the first hyper layer sees the batch once.
        stack = [keras.Input((6,)), keras.layers.Rescaling(0.5), first]
        x = blobs(n=10)[0]
    else:
        first = bbh_tf.HyperConv2D(
            3, 3, activation="relu", hypernet=hypernet, mode=mode
        )
        stack = [keras.Input((6, 6, 2)), first, keras.layers.Flatten()]
        x = np.random.default_rng(0).normal(size=(10, 6, 6, 2)).astype("float32")
    stack.append(
        bbh_tf.HyperDense(3, activation="softmax", hypernet=hypernet, mode=mode)
    )
    return keras.Sequential(stack), first, x


@pytest.mark.parametrize("mode", ["scale", "weight_norm", "full"])
@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_prediction_passes_the_batch_once_to_the_first_hyper_layer(kind, mode):
    network, first, x = _prediction_network(kind, mode)
    model = bbh_tf.BayesByHypernet(network, num_examples=10)
    model.build(x.shape)
    assert model._shared_input_layer is first
    noise = model._draw_noise(4)
    shared = model.sample_predictions(x, 4, noise=noise).numpy()
    # The general path: the batch tiled once per draw through every layer.
    tiled = bbh_tf.PredictiveModel._sample_batch(model, x, 4, noise=noise)
    tiled = tiled.numpy().reshape(shared.shape)
    assert shared.shape == (4, 10, 3)
    np.testing.assert_allclose(shared, tiled, rtol=1e-5, atol=1e-6)
    assert np.abs(shared[0] - shared[1]).max() > 1e-4  # the draws differ


def test_prediction_tiles_the_batch_for_non_sequential_networks():
    inputs = keras.Input((6,))
    model = bbh_tf.BayesByHypernet(
        keras.Model(inputs, small_classifier()(inputs)), num_examples=10
    )
    model.build((None, 6))
    assert model._shared_input_layer is None
    mean, std = model.predict_distribution(blobs(n=10)[0], num_samples=5)
    assert mean.shape == std.shape == (10, 3) and (std > 0).any()


@pytest.mark.parametrize("callback", ["scheduler", "plateau"])
def test_learning_rate_callbacks_move_the_discriminator_rate_too(callback):
    x, y = blobs(n=64)
    model = compiled_model(num_examples=64, kl_estimator="adversarial")
    if callback == "scheduler":
        schedule = keras.callbacks.LearningRateScheduler(
            lambda epoch, lr: 1e-2 * 0.5**epoch
        )
    else:
        # min_delta huge: every epoch counts as no improvement.
        schedule = keras.callbacks.ReduceLROnPlateau(
            monitor="loss", factor=0.5, patience=0, min_delta=1e9
        )
    history = model.fit(
        x, y, batch_size=32, epochs=3, verbose=0, callbacks=[schedule]
    ).history
    rates = np.array(history["learning_rate"])
    np.testing.assert_allclose(history["discriminator_learning_rate"], rates, rtol=1e-5)
    assert rates[-1] < rates[0]
    np.testing.assert_allclose(
        float(model.discriminator_optimizer.learning_rate),
        float(model.optimizer.learning_rate),
        rtol=1e-5,
    )


def test_estimators_without_weights_log_no_discriminator_rate():
    x, y = blobs(n=64)
    history = compiled_model(num_examples=64).fit(x, y, epochs=1, verbose=0).history
    assert "discriminator_learning_rate" not in history


def test_posterior_health_logs_every_layers_spread(tmp_path):
    x, y = blobs(n=64)
    model = compiled_model(num_examples=64)
    health = bbh_tf.callbacks.PosteriorHealth(num_draws=16)
    log = tmp_path / "log.csv"
    history = model.fit(
        x,
        y,
        epochs=2,
        verbose=0,
        callbacks=[health, keras.callbacks.CSVLogger(str(log))],
    ).history
    names = [layer.name for layer in model.hyper_layers]
    for name in names:
        assert len(history[f"{name}_spread"]) == 2
        assert history[f"{name}_spread"][-1] > 0
    assert all(f"{name}_spread" in log.read_text().splitlines()[0] for name in names)
    assert not health.warned


def test_posterior_health_warns_once_when_the_spread_collapses():
    x, y = blobs(n=64)
    model = compiled_model(num_examples=64)
    # Everything counts as collapsed: the warning comes once per layer.
    health = bbh_tf.callbacks.PosteriorHealth(num_draws=8, collapse_ratio=1e9)
    with pytest.warns(UserWarning, match="has collapsed"):
        model.fit(x, y, epochs=2, verbose=0, callbacks=[health])
    assert health.warned == {layer.name for layer in model.hyper_layers}


@pytest.mark.parametrize(
    "kwargs, match",
    [({"num_draws": 1}, "num_draws"), ({"collapse_ratio": -1.0}, "collapse_ratio")],
)
def test_posterior_health_arguments_are_checked(kwargs, match):
    with pytest.raises(ValueError, match=match):
        bbh_tf.callbacks.PosteriorHealth(**kwargs)
