"""Regression: likelihood losses, the predictive split, regression metrics."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

import bbh_tf


def normal_cdf(z):
    return 0.5 * (1 + np.vectorize(math.erf)(np.asarray(z) / math.sqrt(2)))


def normal_pdf(z):
    return np.exp(-0.5 * np.asarray(z) ** 2) / math.sqrt(2 * math.pi)


# ------------------------------------------------------------- likelihoods
def test_gaussian_likelihood_with_a_fixed_scale():
    loss = bbh_tf.GaussianLikelihood(scale=3.0)
    y, mean = np.array([[1.0], [4.0]]), np.array([[1.0], [-2.0]])
    expected = 0.5 * math.log(2 * math.pi * 9) + 0.5 * ((y - mean) ** 2)[:, 0] / 9
    per_example = loss.call(tf.constant(y), tf.constant(mean)).numpy()
    np.testing.assert_allclose(per_example, expected, rtol=1e-6)
    assert float(loss(y, mean)) == pytest.approx(expected.mean(), rel=1e-6)


def test_gaussian_likelihood_reads_means_and_raw_scales():
    loss = bbh_tf.GaussianLikelihood(min_scale=1e-3)
    y = np.array([[0.5, -1.0]])
    outputs = np.array([[0.0, 1.0, 0.3, -2.0]])  # means (0, 1), raw (0.3, -2)
    scale = np.log1p(np.exp(outputs[0, 2:])) + 1e-3
    expected = np.sum(
        0.5 * np.log(2 * math.pi * scale**2)
        + 0.5 * ((y[0] - outputs[0, :2]) / scale) ** 2
    )
    assert float(loss(y, outputs)) == pytest.approx(expected, rel=1e-5)


def test_student_t_likelihood_matches_its_density():
    df, y, loc, raw = 4.0, 1.7, 0.2, 0.5
    scale = math.log1p(math.exp(raw)) + 1e-3
    z = (y - loc) / scale
    log_density = (
        math.lgamma((df + 1) / 2)
        - math.lgamma(df / 2)
        - 0.5 * math.log(df * math.pi)
        - math.log(scale)
        - (df + 1) / 2 * math.log1p(z * z / df)
    )
    loss = bbh_tf.StudentTLikelihood(df=df)
    assert float(loss([[y]], [[loc, raw]])) == pytest.approx(-log_density, rel=1e-5)


def test_homoscedastic_scale_appends_one_trainable_raw_scale_per_target():
    layer = bbh_tf.HomoscedasticScale(initial_scale=2.0)
    out = layer(tf.constant([[1.0, 2.0], [3.0, 4.0]]))
    assert out.shape == (2, 4)
    np.testing.assert_allclose(np.log1p(np.exp(out[:, 2:].numpy())), 2.0, rtol=1e-5)
    assert len(layer.trainable_weights) == 1
    assert (
        bbh_tf.HomoscedasticScale.from_config(layer.get_config()).initial_scale == 2.0
    )


@pytest.mark.parametrize(
    "make,error,name",
    [
        (lambda: bbh_tf.GaussianLikelihood(scale=0.0), ValueError, "scale"),
        (lambda: bbh_tf.GaussianLikelihood(min_scale=-1.0), ValueError, "min_scale"),
        (lambda: bbh_tf.StudentTLikelihood(df=2.0), ValueError, "df"),
        (
            lambda: bbh_tf.HomoscedasticScale(initial_scale=0.0),
            ValueError,
            "initial_scale",
        ),
        (
            lambda: bbh_tf.GaussianLikelihood()([[1.0]], [[0.0, 1.0, 2.0]]),
            ValueError,
            "2 units per target",
        ),
    ],
)
def test_bad_likelihood_arguments_name_the_argument(make, error, name):
    with pytest.raises(error, match=name):
        make()


def test_predictive_moments_split_noise_and_weight_spread():
    loss = bbh_tf.GaussianLikelihood(min_scale=1e-3)
    raw = math.log(math.expm1(1.0 - 1e-3))  # scale 1 exactly
    samples = tf.constant([[[0.0, raw]], [[2.0, raw]]])  # two draws, one example
    mean, std, aleatoric, epistemic = (
        t.numpy() for t in loss.predictive_moments(samples)
    )
    np.testing.assert_allclose(mean, [[1.0]])
    np.testing.assert_allclose(epistemic, [[1.0]], rtol=1e-5)
    np.testing.assert_allclose(aleatoric, [[1.0]], rtol=1e-5)
    np.testing.assert_allclose(std, [[math.sqrt(2.0)]], rtol=1e-5)


def _regression_data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype("float32")
    y = (x @ np.array([1.0, -2.0, 0.5]) + 0.3 * rng.normal(size=n)).astype("float32")
    return x, y[:, None]


@pytest.mark.parametrize("kind", ["bbh", "ml"])
def test_predict_distribution_of_a_likelihood_model_splits_the_std(kind):
    x, y = _regression_data()
    if kind == "bbh":
        hypernet = bbh_tf.HyperNetwork(noise_dim=4, hidden_units=(8,), output_dim=16)
        net = keras.Sequential(
            [
                keras.Input((3,)),
                bbh_tf.HyperDense(8, activation="relu", hypernet=hypernet),
                bbh_tf.HyperDense(2, hypernet=hypernet),
            ]
        )
        model = bbh_tf.BayesByHypernet(net, num_examples=len(x))
    else:
        net = keras.Sequential(
            [
                keras.Input((3,)),
                keras.layers.Dense(8, activation="relu"),
                keras.layers.Dense(1),
                bbh_tf.HomoscedasticScale(),
            ]
        )
        model = bbh_tf.MaximumLikelihood(net)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2), loss=bbh_tf.GaussianLikelihood()
    )
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    prediction = model.predict_distribution(x[:10], num_samples=20)
    mean, std = prediction  # unpacks as (mean, std)
    assert mean.shape == std.shape == (10, 1)
    np.testing.assert_allclose(
        std**2, prediction.aleatoric_std**2 + prediction.epistemic_std**2, rtol=1e-4
    )
    assert np.all(prediction.aleatoric_std > 0)
    if kind == "ml":
        np.testing.assert_array_equal(prediction.epistemic_std, 0.0)
    else:
        assert np.all(prediction.epistemic_std > 0)


def test_predict_distribution_without_a_likelihood_has_no_split():
    x, _ = _regression_data(n=8)
    net = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model = bbh_tf.MaximumLikelihood(net)
    model.compile(optimizer="adam", loss="mse")
    prediction = model.predict_distribution(x)
    assert prediction.mean.shape == (8, 2)
    assert prediction.aleatoric_std is None and prediction.epistemic_std is None


# ----------------------------------------------------------------- metrics
def test_predictive_log_likelihood_by_hand():
    targets = np.array([0.5, -1.0])
    locs = np.array([[0.0, -1.0], [1.0, 0.0]])  # two draws
    scales = np.array([[1.0, 0.5], [2.0, 0.5]])

    def density(y, m, s):
        return normal_pdf((y - m) / s) / s

    expected = np.mean(
        [
            math.log(0.5 * (density(0.5, 0.0, 1.0) + density(0.5, 1.0, 2.0))),
            math.log(0.5 * (density(-1.0, -1.0, 0.5) + density(-1.0, 0.0, 0.5))),
        ]
    )
    assert bbh_tf.metrics.predictive_log_likelihood(
        targets, locs, scales
    ) == pytest.approx(expected, rel=1e-9)
    # In original units: targets were divided by 10.
    assert bbh_tf.metrics.predictive_log_likelihood(
        targets, locs, scales, target_scale=10.0
    ) == pytest.approx(expected - math.log(10.0), rel=1e-9)


def test_rmse_in_original_units():
    assert bbh_tf.metrics.rmse(
        [1.0, 2.0], [2.0, 4.0], target_scale=2.0
    ) == pytest.approx(2 * math.sqrt(2.5))


def test_interval_coverage_of_a_known_gaussian():
    # One draw N(0, 1): the 90 % interval is +-1.6449.
    targets = np.array([-2.0, -1.6, 0.0, 1.6, 1.7])
    locs, scales = np.zeros((1, 5)), np.ones((1, 5))
    assert bbh_tf.metrics.interval_coverage(targets, locs, scales, level=0.9) == 0.6
    quantile = bbh_tf.metrics.mixture_quantiles(locs, scales, 0.95)
    np.testing.assert_allclose(quantile, 1.6448536, rtol=1e-6)


def test_mixture_quantile_of_a_symmetric_mixture():
    # Half the mass at N(-2, 1), half at N(2, 1): the median is 0.
    locs = np.array([[-2.0], [2.0]])
    quantile = bbh_tf.metrics.mixture_quantiles(locs, np.ones((2, 1)), 0.5)
    assert quantile.shape == (1,) and abs(quantile[0]) < 1e-6


def test_crps_of_one_gaussian_is_the_closed_form():
    y, m, s = 0.7, 0.2, 1.5
    z = (y - m) / s
    expected = s * (
        z * (2 * normal_cdf(z) - 1) + 2 * normal_pdf(z) - 1 / math.sqrt(math.pi)
    )
    value = bbh_tf.metrics.crps([y], [[m]], [[s]])
    assert value == pytest.approx(float(expected), rel=1e-9)


def test_crps_of_a_mixture_matches_numerical_integration():
    y, locs, scales = 0.3, np.array([-1.0, 1.5]), np.array([0.5, 1.0])
    grid = np.linspace(-15, 15, 300001)
    cdf = 0.5 * (
        normal_cdf((grid - locs[0]) / scales[0])
        + normal_cdf((grid - locs[1]) / scales[1])
    )
    integral = np.trapezoid((cdf - (grid >= y)) ** 2, grid)
    value = bbh_tf.metrics.crps([y], locs[:, None], scales[:, None])
    assert value == pytest.approx(integral, rel=1e-4)


@pytest.mark.parametrize(
    "call,error,name",
    [
        (
            lambda m: m.predictive_log_likelihood([1.0], [[0.0, 1.0]], [[1.0, 1.0]]),
            ValueError,
            "sample_locs",
        ),
        (
            lambda m: m.predictive_log_likelihood([1.0], [[0.0]], [[-1.0]]),
            ValueError,
            "sample_scales",
        ),
        (
            lambda m: m.predictive_log_likelihood([np.nan], [[0.0]], [[1.0]]),
            ValueError,
            "targets",
        ),
        (
            lambda m: m.predictive_log_likelihood(
                [1.0], [[0.0]], [[1.0]], target_scale=0
            ),
            ValueError,
            "target_scale",
        ),
        (
            lambda m: m.interval_coverage([1.0], [[0.0]], [[1.0]], level=1.5),
            ValueError,
            "level",
        ),
        (lambda m: m.rmse([1.0, 2.0], [1.0]), ValueError, "predictive_mean"),
        (lambda m: m.crps("abc", [[0.0]], [[1.0]]), TypeError, "targets"),
    ],
)
def test_bad_metric_arguments_name_the_argument(call, error, name):
    with pytest.raises(error, match=name):
        call(bbh_tf.metrics)
