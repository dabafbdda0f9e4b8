"""Baselines: maximum likelihood, MC dropout and Bayes by Backprop."""

import math
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import blobs, run_python

import bbh_tf
from bbh_tf.bbb_layers import standard_normal_from

TESTS = os.path.dirname(os.path.abspath(__file__))


def dropout_net(rate=0.3, input_dim=6, classes=3):
    return keras.Sequential(
        [
            keras.Input((input_dim,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dropout(rate),
            keras.layers.Dense(classes, activation="softmax"),
        ]
    )


def bbb_net(input_dim=6, classes=3, **kwargs):
    return keras.Sequential(
        [
            keras.Input((input_dim,)),
            bbh_tf.BayesByBackpropDense(16, activation="relu", **kwargs),
            bbh_tf.BayesByBackpropDense(classes, activation="softmax", **kwargs),
        ]
    )


MAKERS = {
    "ml": lambda: bbh_tf.MaximumLikelihood(dropout_net()),
    "mc_dropout": lambda: bbh_tf.MCDropout(dropout_net()),
    "bbb": lambda: bbh_tf.BayesByBackprop(bbb_net(), num_examples=256),
}


def compiled(name, **compile_kwargs):
    model = MAKERS[name]()
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        **compile_kwargs,
    )
    return model


def gaussian_kl(mu, sigma, prior_sigma):
    """Closed form of sum KL(N(mu, sigma^2) || N(0, prior_sigma^2))."""
    mu, sigma = np.float64(mu), np.float64(sigma)
    return np.sum(
        np.log(prior_sigma / sigma) + (sigma**2 + mu**2) / (2 * prior_sigma**2) - 0.5
    )


def mean_monte_carlo_kl(layer, draws, independent=False):
    @tf.function
    def estimate():
        total = tf.constant(0.0)
        for _ in tf.range(draws):
            total += layer.monte_carlo_kl(independent)
        return total / draws

    return float(estimate())


# ------------------------------------------------------------------ shapes
@pytest.mark.parametrize("name", sorted(MAKERS))
def test_predict_distribution_shapes(name):
    x, _ = blobs(n=37)
    model = compiled(name)
    mean, std = model.predict_distribution(x, num_samples=10, batch_size=16)
    assert mean.shape == std.shape == (37, 3)
    assert mean.dtype == std.dtype == np.float32
    np.testing.assert_allclose(mean.sum(axis=1), 1.0, rtol=1e-5)
    assert np.all(std >= 0)
    assert model.sample_predictions(x[:5], 7).shape == (7, 5, 3)
    samples = model.predict_samples(x, num_samples=6, batch_size=16)
    assert samples.shape == (6, 37, 3)
    if name == "ml":  # Deterministic: every draw is the same network.
        np.testing.assert_array_equal(samples[0], samples[5])


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_each_trains_through_fit(name):
    x, y = blobs()
    model = compiled(name)
    history = model.fit(x, y, batch_size=32, epochs=4, verbose=0).history
    assert np.all(np.isfinite(history["loss"]))
    assert history["loss"][-1] < 0.7 * history["loss"][0]
    assert history["accuracy"][-1] > 0.85
    if name == "bbb":
        assert {"nll", "kl"} <= set(history)


# ---------------------------------------------------------- ML, MC dropout
def test_maximum_likelihood_std_is_exactly_zero_even_with_dropout():
    x, _ = blobs(n=20)
    model = compiled("ml")
    mean, std = model.predict_distribution(x, num_samples=13)
    np.testing.assert_array_equal(std, 0.0)
    np.testing.assert_allclose(
        mean, model.network(x, training=False).numpy(), rtol=1e-6, atol=1e-7
    )
    samples = model.sample_predictions(x[:4], 5).numpy()
    assert samples.shape == (5, 4, 3)
    np.testing.assert_array_equal(samples, np.broadcast_to(samples[0], samples.shape))


def test_mc_dropout_is_random_at_prediction_only():
    x, _ = blobs(n=20)
    model = compiled("mc_dropout")
    mean, std = model.predict_distribution(x, num_samples=50)
    assert np.all(std.max(axis=1) > 1e-3)
    # Each tiled copy of a row gets its own mask.
    samples = model.sample_predictions(x[:1], 8).numpy()[:, 0]
    assert len({tuple(np.round(s, 6)) for s in samples}) > 4
    # Calling the model, predict and the plain network: dropout off.
    deterministic = model.network(x, training=False).numpy()
    np.testing.assert_array_equal(model(x).numpy(), model(x).numpy())
    np.testing.assert_allclose(model(x).numpy(), deterministic, rtol=1e-6)
    first = model.predict(x, verbose=0)
    np.testing.assert_array_equal(first, model.predict(x, verbose=0))
    np.testing.assert_allclose(first, deterministic, rtol=1e-5, atol=1e-7)
    # The MC mean is near, not equal to, the deterministic prediction.
    assert not np.allclose(mean, deterministic)


def test_mc_dropout_keeps_batch_norm_moving_statistics():
    x, y = blobs(n=64)
    net = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(8),
            keras.layers.BatchNormalization(),
            keras.layers.Dropout(0.2),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    model = bbh_tf.MCDropout(net)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    before = [v.numpy().copy() for v in net.layers[1].non_trainable_variables]
    _, std = model.predict_distribution(x + 5.0, num_samples=10)
    assert np.all(np.isfinite(std))
    for old, new in zip(before, net.layers[1].non_trainable_variables):
        np.testing.assert_array_equal(old, new.numpy())


def test_mc_dropout_needs_dropout_layers():
    plain = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="no dropout layers"):
        bbh_tf.MCDropout(plain).build((None, 3))


# ----------------------------------------------------------------- BbB: KL
@pytest.mark.parametrize("independent", [False, True])
def test_kl_estimates_match_the_gaussian_closed_form(independent):
    prior_sigma = 0.5
    layer = bbh_tf.BayesByBackpropDense(
        4,
        prior=bbh_tf.GaussianPrior(prior_sigma),
        init_rho=-1.0,
        kernel_mean_initializer=keras.initializers.RandomNormal(stddev=0.5),
    )
    layer.build((None, 6))
    layer.bias_mu.assign(np.linspace(-0.3, 0.3, 4).astype("float32"))
    exact = gaussian_kl(
        layer.kernel_mu.numpy(), layer.kernel_sigma.numpy(), prior_sigma
    ) + gaussian_kl(layer.bias_mu.numpy(), layer.bias_sigma.numpy(), prior_sigma)
    assert exact > 0
    # 1600 draws: the estimate's relative standard error is about 0.6 %
    # with independent noise (more with noise per row and column, whose
    # terms are correlated).
    estimate = mean_monte_carlo_kl(layer, 1600, independent)
    assert estimate == pytest.approx(exact, rel=0.03)
    # The closed form is exact for a Gaussian prior.
    assert float(layer.closed_form_kl()) == pytest.approx(exact, rel=1e-5)


def test_kl_noise_is_standard_normal_for_every_weight():
    layer = bbh_tf.BayesByBackpropConv2D(3, 2, seed=3)
    layer.build((None, 5, 5, 2))
    mu = tf.convert_to_tensor(layer.kernel_mu)
    # Traced once: 4000 eager calls took over a minute of the suite.
    draw = tf.function(
        lambda: standard_normal_from(layer._kl_noise(mu, False)[0], mu.shape)
    )
    draws = np.stack([draw().numpy() for _ in range(4000)])
    # The sum of squares from the row and column vectors is the direct one.
    for independent in (False, True):
        noise, squared_sum = layer._kl_noise(mu, independent)
        eps = standard_normal_from(noise, mu.shape)
        assert eps.shape == mu.shape
        assert float(squared_sum) == pytest.approx(
            float(tf.reduce_sum(tf.square(eps))), rel=1e-5
        )
    assert draws.shape == (4000,) + tuple(mu.shape)
    # Every entry N(0, 1): mean 0 and variance 1 within 5 standard errors
    # (4000 draws: 0.016 and 0.022), and Gaussian tails (mass beyond 2).
    np.testing.assert_allclose(draws.mean(0), 0.0, atol=0.08)
    np.testing.assert_allclose(draws.var(0), 1.0, atol=0.12)
    np.testing.assert_allclose((np.abs(draws) > 2).mean(0), 0.0455, atol=0.017)
    # Rows and columns share halves: entries of one row correlate by 1/2.
    flat = draws.reshape(4000, -1, 3)
    assert np.corrcoef(flat[:, 0, 0], flat[:, 0, 1])[0, 1] == pytest.approx(
        0.5, abs=0.08
    )


def test_monte_carlo_kl_is_non_negative_in_expectation():
    # The default scale-mixture prior: positive. A Gaussian posterior equal
    # to a Gaussian prior: log q(w) - log p(w) vanishes draw by draw.
    layer = bbh_tf.BayesByBackpropDense(5)
    layer.build((None, 6))
    assert mean_monte_carlo_kl(layer, 100) > 0
    sigma = 0.7
    equal = bbh_tf.BayesByBackpropDense(
        5,
        prior=bbh_tf.GaussianPrior(sigma),
        init_rho=math.log(math.expm1(sigma)),
        kernel_mean_initializer="zeros",
    )
    equal.build((None, 6))
    np.testing.assert_allclose(equal.kernel_sigma.numpy(), sigma, rtol=1e-5)
    assert mean_monte_carlo_kl(equal, 100) == pytest.approx(0.0, abs=1e-3)


def test_monte_carlo_kl_gradients_reach_means_and_scales():
    layer = bbh_tf.BayesByBackpropDense(3)
    layer.build((None, 4))
    with tf.GradientTape() as tape:
        kl = layer.monte_carlo_kl()
    gradients = tape.gradient(kl, layer.trainable_variables)
    assert len(gradients) == 4
    assert all(g is not None and np.all(np.isfinite(g)) for g in gradients)


def mixture_kl_by_quadrature(mu, sigma, prior):
    """KL(N(mu, sigma^2) || prior) by the trapezoidal rule in float64 over
    +-12 sigma (prior.log_prob is tested against TFP's mixture)."""
    w = np.linspace(mu - 12 * sigma, mu + 12 * sigma, 200001)
    log_q = -0.5 * ((w - mu) / sigma) ** 2 - np.log(sigma) - 0.5 * np.log(2 * np.pi)
    log_p = prior.log_prob(tf.constant(w, tf.float64)).numpy()
    return np.trapezoid(np.exp(log_q) * (log_q - log_p), w)


@pytest.mark.parametrize(
    "mu, sigma",
    # Narrow and wide posteriors, near zero and far out, beside the default
    # prior's narrow (e^-6 = 0.0025) and wide (1) components.
    [(0.0, 1e-4), (0.05, 1e-3), (0.0, 0.0025), (0.0, 0.02), (0.3, 0.05), (-1.5, 0.3)],
)
def test_closed_form_kl_of_the_scale_mixture_is_an_upper_bound(mu, sigma):
    prior = bbh_tf.ScaleMixturePrior()
    exact = mixture_kl_by_quadrature(mu, sigma, prior)
    bound = float(prior.kl_from_normal(tf.constant(mu, tf.float64), sigma))
    assert bound >= exact - 1e-6
    # Tight where q is narrow beside the component it sits in; loosest
    # (2.5 nats) where sigma is near the narrow component's scale.
    assert bound - exact <= 3.0
    if sigma <= 1e-3 or abs(mu) >= 10 * sigma:
        assert bound == pytest.approx(exact, abs=0.15)
    float32 = float(prior.kl_from_normal(tf.constant(mu, tf.float32), sigma))
    assert float32 == pytest.approx(bound, rel=1e-4, abs=1e-4)


def test_bayes_by_backprop_kl_estimates():
    x, y = blobs(n=64)
    assert (
        bbh_tf.BayesByBackprop(bbb_net(), num_examples=100).kl_estimate == "monte_carlo"
    )
    closed = bbh_tf.BayesByBackprop(
        bbb_net(), num_examples=100, kl_estimate="closed_form"
    )
    closed.build((None, 6))
    # The closed form sums the layers' and, for the default mixture prior,
    # bounds the Monte Carlo estimate's expectation from above.
    total = float(closed.closed_form_kl())
    assert total == pytest.approx(
        sum(float(layer.closed_form_kl()) for layer in closed.bayesian_layers)
    )
    sampled = np.mean([float(closed.monte_carlo_kl()) for _ in range(200)])
    assert total >= sampled - 0.01 * abs(sampled)
    with tf.GradientTape() as tape:
        kl = closed.closed_form_kl()
    gradients = tape.gradient(kl, closed.trainable_variables)
    assert all(g is not None and np.all(np.isfinite(g)) for g in gradients)
    closed.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    logs = closed.evaluate(x, y, verbose=0, return_dict=True)
    assert logs["kl"] == pytest.approx(total, rel=1e-5)
    rebuilt = bbh_tf.BayesByBackprop.from_config(
        bbh_tf.BayesByBackprop(
            bbb_net(), num_examples=100, kl_estimate="monte_carlo"
        ).get_config()
    )
    assert rebuilt.kl_estimate == "monte_carlo"
    with pytest.raises(ValueError, match="kl_estimate"):
        bbh_tf.BayesByBackprop(bbb_net(), num_examples=100, kl_estimate="exact")

    class OwnPrior(bbh_tf.GaussianPrior):
        def kl_from_normal(self, mean, stddev):
            raise NotImplementedError

    own = bbh_tf.BayesByBackprop(
        bbb_net(prior=OwnPrior()), num_examples=100, kl_estimate="closed_form"
    )
    with pytest.raises(ValueError, match="kl_estimate='monte_carlo'"):
        own.build((None, 6))
    bbh_tf.BayesByBackprop(bbb_net(prior=OwnPrior()), num_examples=100).build((None, 6))


@pytest.mark.parametrize(
    "estimate, independent",
    [("monte_carlo", False), ("independent_monte_carlo", True), ("closed_form", None)],
)
def test_kl_estimate_picks_the_layers_estimate(monkeypatch, estimate, independent):
    calls = []
    original = bbh_tf.BayesByBackpropDense.monte_carlo_kl

    def spy(layer, independent=False):
        calls.append(independent)
        return original(layer, independent)

    monkeypatch.setattr(bbh_tf.BayesByBackpropDense, "monte_carlo_kl", spy)
    x, y = blobs(n=32)
    model = bbh_tf.BayesByBackprop(bbb_net(), num_examples=100, kl_estimate=estimate)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    history = model.fit(x, y, batch_size=32, epochs=1, verbose=0).history
    assert np.isfinite(history["kl"][0])
    # Recorded per layer at each trace; never for the closed form.
    assert set(calls) == (set() if independent is None else {independent})


def test_loss_is_nll_plus_weighted_kl_over_num_examples():
    x, y = blobs(n=64)
    model = bbh_tf.BayesByBackprop(bbb_net(), num_examples=100, kl_weight=0.5)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    logs = model.evaluate(x, y, batch_size=64, verbose=0, return_dict=True)
    assert logs["kl"] > 0
    expected = logs["nll"] + 0.5 * logs["kl"] / 100
    assert logs["loss"] == pytest.approx(expected, rel=1e-5)


# ------------------------------------------------------- BbB: per-row draws
def test_every_row_gets_its_own_weight_sample():
    layer = bbh_tf.BayesByBackpropDense(4, init_rho=-2.0)
    row = np.ones((1, 6), "float32")
    outputs = layer(np.repeat(row, 10, axis=0)).numpy()
    assert outputs.shape == (10, 4)
    assert len({tuple(o) for o in outputs}) == 10
    # Local reparameterisation: mean x @ mu + b, variance x^2 @ s^2 + s_b^2.
    many = layer(np.repeat(row, 4000, axis=0)).numpy()
    mu = row @ layer.kernel_mu.numpy() + layer.bias_mu.numpy()
    sd = np.sqrt(
        row**2 @ layer.kernel_sigma.numpy() ** 2 + layer.bias_sigma.numpy() ** 2
    )
    np.testing.assert_allclose(
        many.mean(0), mu[0], atol=5 * sd[0].max() / np.sqrt(4000)
    )
    np.testing.assert_allclose(many.std(0), sd[0], rtol=0.1)

    model = compiled("bbb")
    samples = model.sample_predictions(blobs(n=3)[0], 6).numpy()
    assert not np.allclose(samples[0], samples[1])


@pytest.mark.parametrize("name", sorted(MAKERS))
@pytest.mark.parametrize("jit_compile", [False, True])
def test_train_step_with_and_without_xla(name, jit_compile):
    x, y = blobs(n=64)
    model = compiled(name, jit_compile=jit_compile)
    # Equal batches: one trace, one XLA compilation.
    history = model.fit(x, y, batch_size=32, epochs=2, verbose=0).history
    assert model.jit_compile is jit_compile
    assert np.all(np.isfinite(history["loss"]))


# ------------------------------------------------------------ serialization
def test_layer_get_config_round_trips():
    layer = bbh_tf.BayesByBackpropDense(
        7,
        activation="tanh",
        use_bias=False,
        prior=bbh_tf.GaussianPrior(0.3),
        kernel_mean_initializer="he_normal",
        init_rho=-3.0,
        seed=5,
    )
    config = layer.get_config()
    clone = bbh_tf.BayesByBackpropDense.from_config(config)
    assert clone.get_config() == config
    assert clone.prior == bbh_tf.GaussianPrior(0.3)
    assert bbh_tf.BayesByBackpropDense(3).prior == bbh_tf.ScaleMixturePrior()


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_model_get_config_round_trips(name):
    model = MAKERS[name]()
    config = model.get_config()
    clone = type(model).from_config(config)
    assert type(clone) is type(model)
    assert set(clone.get_config()) == set(config)
    if name == "bbb":
        assert (clone.num_examples, clone.kl_weight) == (256, 1.0)


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_keras_save_load_keeps_weights(name, tmp_path):
    x, y = blobs(n=64)
    model = compiled(name)
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded) is type(model)
    assert len(loaded.weights) == len(model.weights)
    for saved, restored in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(saved.numpy(), restored.numpy())
    if name == "bbb":
        assert (loaded.num_examples, loaded.kl_weight) == (256, 1.0)
        assert len(loaded.bayesian_layers) == 2
        assert loaded.bayesian_layers[0].prior == bbh_tf.ScaleMixturePrior()
    else:
        np.testing.assert_allclose(
            loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6
        )
    history = loaded.fit(x, y, batch_size=32, epochs=1, verbose=0).history
    assert np.all(np.isfinite(history["loss"]))


# ---------------------------------------------------------------- arguments
@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"units": 0}, ValueError, "units"),
        ({"units": 2.5}, TypeError, "units"),
        ({"units": 3, "prior": "gaussian"}, TypeError, "prior"),
        ({"units": 3, "init_rho": float("nan")}, ValueError, "init_rho"),
        ({"units": 3, "init_rho": float("inf")}, ValueError, "init_rho"),
        ({"units": 3, "init_rho": "small"}, TypeError, "init_rho"),
    ],
)
def test_layer_rejects_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        bbh_tf.BayesByBackpropDense(**kwargs)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"num_examples": None}, ValueError, "num_examples"),
        ({"num_examples": 0}, ValueError, "num_examples"),
        ({"num_examples": 2.5}, TypeError, "num_examples"),
        ({"kl_weight": -1.0}, ValueError, "kl_weight"),
        ({"kl_weight": float("nan")}, ValueError, "kl_weight"),
        ({"kl_weight": float("inf")}, ValueError, "kl_weight"),
    ],
)
def test_bayes_by_backprop_rejects_bad_arguments(kwargs, error, match):
    arguments = {"num_examples": 10}
    arguments.update(kwargs)
    with pytest.raises(error, match=match):
        bbh_tf.BayesByBackprop(bbb_net(), **arguments)


def test_bayes_by_backprop_needs_bayesian_layers():
    plain = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="no Bayes by Backprop layers"):
        bbh_tf.BayesByBackprop(plain, num_examples=10).build((None, 3))


@pytest.mark.parametrize(
    "cls", [bbh_tf.MaximumLikelihood, bbh_tf.MCDropout, bbh_tf.BayesByBackprop]
)
def test_network_must_be_a_keras_layer(cls):
    extra = {"num_examples": 10} if cls is bbh_tf.BayesByBackprop else {}
    with pytest.raises(TypeError, match="network"):
        cls("mlp", **extra)


# ------------------------------------------------------------- distribution
DISTRIBUTED = f"""
import sys; sys.path.insert(0, {TESTS!r})
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras, numpy as np, bbh_tf
from conftest import blobs
from test_baselines import bbb_net
keras.utils.set_random_seed(0)
x, y = blobs(n=128)
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
    model = bbh_tf.BayesByBackprop(bbb_net(), num_examples=128, kl_weight=0.5)
    model.compile(optimizer=keras.optimizers.Adam(1e-2),
                  loss="sparse_categorical_crossentropy")
# The logged loss is per example, not summed over replicas.
logs = model.evaluate(x, y, batch_size=128, verbose=0, return_dict=True)
expected = logs["nll"] + 0.5 * logs["kl"] / 128
assert abs(logs["loss"] - expected) < 1e-4 * expected, (logs, expected)
history = model.fit(x, y, batch_size=64, epochs=4, verbose=0).history
assert np.isfinite(history["loss"]).all()
assert history["loss"][-1] < history["loss"][0], history["loss"]
assert int(model.optimizer.iterations.numpy()) == 4 * 2
print("ok")
"""


def test_bayes_by_backprop_under_mirrored_strategy(tmp_path):
    out = run_python(DISTRIBUTED, cwd=tmp_path)
    assert out.startswith("ok")
