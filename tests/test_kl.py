"""KL estimators against closed forms (../shared/notes/kl-estimators.md).

The test posterior is Gaussian: a linear hypernetwork (no hidden layer)
gives ``w = m + s * (eps @ K + c) + sigma * xi``, so ``q = N(mean, A A^T +
diag sigma^2)`` with ``A = s * K^T``: correlated values with a known density,
entropy and KL.
"""

import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

import bbh_tf
from bbh_tf.posterior import groups_of, squared_distances

VALUES = 4  # HyperDense(2, mode="full") on one input: 2 weights + 2 biases
PRIOR_SIGMA = 1.5


def gaussian_group(noise_per_chunk=False, output_dim=VALUES, sigma=0.3):
    """A built group whose q is Gaussian; returns ``(group, mean, cov)``."""
    hypernet = bbh_tf.HyperNetwork(
        noise_dim=3,
        hidden_units=(),
        output_dim=output_dim,
        code_dim=2,
        noise_per_chunk=noise_per_chunk,
        learning_rate_scale=1.0,
    )
    layer = bbh_tf.HyperDense(2, mode="full", hypernet=hypernet)
    layer.build((None, 1))
    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(5, output_dim)).astype("float32")
    hypernet.output_layer.kernel.assign(kernel)
    hypernet.output_layer.bias.assign(rng.normal(size=output_dim).astype("float32"))
    layer.generated_mean.assign([0.5, -0.3, 0.2, 0.1])
    layer.stddev_rho.assign(np.log(np.expm1(np.full(VALUES, sigma))).astype("float32"))
    (group,) = groups_of([layer])
    # Closed form: the conditional mean is affine in eps.
    chunks = layer.num_chunks
    codes = layer.position_codes.numpy()
    bias = hypernet.output_layer.bias.numpy()
    scale = layer.value_scale
    if noise_per_chunk:
        # Block diagonal: each chunk's values depend on its own noise only.
        a = np.zeros((chunks * output_dim, 3 * chunks))
        for c in range(chunks):
            a[c * output_dim : (c + 1) * output_dim, 3 * c : 3 * c + 3] = kernel[:3].T
        a = a[:VALUES]
    else:
        a = np.tile(kernel[:3].T, (chunks, 1))[:VALUES]
    offset = (codes @ kernel[3:] + bias).reshape(-1)[:VALUES]
    mean = layer.generated_mean.numpy() + scale * offset
    a = scale[:, None] * a
    cov = a @ a.T + np.diag(np.full(VALUES, sigma**2))
    return group, mean, cov


def gaussian_entropy(cov):
    return 0.5 * np.linalg.slogdet(2 * math.pi * math.e * cov)[1]


def kl_to_gaussian_prior(mean, cov, sigma=PRIOR_SIGMA):
    d = len(mean)
    return 0.5 * (
        np.trace(cov) / sigma**2
        + mean @ mean / sigma**2
        - d
        + 2 * d * math.log(sigma)
        - np.linalg.slogdet(cov)[1]
    )


def kl_to_prior_by_monte_carlo(mean, cov, prior, n=400_000):
    """``E_q[log q - log p]`` with the exact Gaussian ``log q``."""
    rng = np.random.default_rng(1)
    w = rng.multivariate_normal(mean, cov, size=n)
    log_q = gaussian_log_density(w, mean, cov)
    log_p = prior.log_prob(tf.constant(w, tf.float32)).numpy().sum(axis=1)
    return float(np.mean(log_q - log_p))


def gaussian_log_density(values, mean, cov):
    diff = values - mean
    return (
        -0.5 * np.sum(diff @ np.linalg.inv(cov) * diff, axis=1)
        - 0.5 * (np.linalg.slogdet(2 * math.pi * cov)[1])
    )


def test_the_test_posterior_is_the_closed_form_gaussian():
    group, mean, cov = gaussian_group()
    values = group.used_values(group.draw(group.sample_noise(20000)).values).numpy()
    np.testing.assert_allclose(values.mean(axis=0), mean, atol=0.05)
    np.testing.assert_allclose(np.cov(values.T), cov, atol=0.1 * np.abs(cov).max())


def test_semi_implicit_log_density_bounds_the_exact_one_and_tightens_with_k():
    group, mean, cov = gaussian_group()

    def mean_gap(k, repeats=300):
        # One draw per call, so only the K fresh components mix with its own.
        estimator = bbh_tf.kl.SemiImplicitKL(k)

        @tf.function
        def once():
            draws = group.draw(group.sample_noise(1))
            return draws.values, estimator.log_density(group, draws)

        gaps = []
        for _ in range(repeats):
            values, log_q = once()
            exact = gaussian_log_density(group.used_values(values).numpy(), mean, cov)
            gaps.append(float(log_q[0]) - exact[0])
        return np.mean(gaps)

    gaps = [mean_gap(k) for k in (0, 16, 1024)]
    # E[log q_K(w)] - log q(w) is >= 0, falls with K, and is near 0 at K=1024
    # (the per-draw gap's Monte Carlo error here is about 0.02 nats).
    assert gaps[0] > gaps[1] > gaps[2] > -0.05, gaps
    assert gaps[0] > 1.0  # the mixing matters for this q
    assert gaps[2] < 0.1, gaps


@pytest.mark.parametrize("prior_kind", ["gaussian", "scale_mixture"])
def test_semi_implicit_kl_matches_the_closed_form(prior_kind):
    group, mean, cov = gaussian_group()
    if prior_kind == "gaussian":
        prior = bbh_tf.GaussianPrior(PRIOR_SIGMA)
        exact = kl_to_gaussian_prior(mean, cov)
    else:
        prior = bbh_tf.ScaleMixturePrior(0.5, 1.0, 0.1)
        exact = kl_to_prior_by_monte_carlo(mean, cov, prior)
    estimate = bbh_tf.kl.SemiImplicitKL(1024).estimate(
        [group], [group.draw(group.sample_noise(1000))], prior
    )
    # 1000 draws: Monte Carlo error about 0.05 nats; bound slack below 0.1.
    assert float(estimate.kl) == pytest.approx(exact, abs=0.2)
    assert float(estimate.logs["entropy"]) == pytest.approx(
        gaussian_entropy(cov), abs=0.2
    )


def test_semi_implicit_bound_with_independent_chunks():
    # Two chunks of two values, each with its own noise: two blocks.
    group, mean, cov = gaussian_group(noise_per_chunk=True, output_dim=2)
    assert group.num_blocks == 2
    estimate = bbh_tf.kl.SemiImplicitKL(1024).estimate(
        [group],
        [group.draw(group.sample_noise(1000))],
        bbh_tf.GaussianPrior(PRIOR_SIGMA),
    )
    assert float(estimate.kl) == pytest.approx(kl_to_gaussian_prior(mean, cov), abs=0.2)


@pytest.mark.parametrize("noise_per_chunk", [False, True])
@pytest.mark.parametrize("init_stddev", [0.01, 1e-4])
def test_log_conditional_equals_the_direct_formula(noise_per_chunk, init_stddev):
    # The pairwise densities come from a centred float64 product; here they
    # are computed value by value in float64 (the formulation it replaced).
    hypernet = bbh_tf.HyperNetwork(
        noise_per_chunk=noise_per_chunk, init_stddev=init_stddev, seed=1
    )
    net = keras.Sequential(
        [
            keras.Input((7,)),
            bbh_tf.HyperDense(300, hypernet=hypernet, mode="full"),
            bbh_tf.HyperDense(3, hypernet=hypernet),
        ]
    )
    group = groups_of(net.layers)[0]
    draws = group.draw(group.sample_noise(5))
    means = tf.concat(
        [draws.mean, group.means(hypernet.sample_noise(7, group.total_chunks))], 0
    )
    fast = group.log_conditional(draws.values, means).numpy()

    mask = group.mask
    sigma = np.where(mask > 0, group.stddev().numpy(), 1.0).astype(np.float64)
    z = (
        draws.values.numpy().astype(np.float64)[:, None]
        - means.numpy().astype(np.float64)[None]
    ) / sigma
    log_norm = ((np.log(sigma) + 0.5 * np.log(2 * np.pi)) * mask).sum(-1)
    direct = -0.5 * (z**2 * mask).sum(-1) - log_norm  # (n, m, chunks)
    if group.num_blocks == 1:
        direct = direct.sum(-1, keepdims=True)
    assert fast.shape == direct.shape == (5, 12, group.num_blocks)
    # A draw's own component (and its neighbours) to a fraction of a nat;
    # far components (densities below -1e5 nats) to float32's precision.
    own = np.stack([direct[i, i] for i in range(5)])
    np.testing.assert_allclose(np.stack([fast[i, i] for i in range(5)]), own, atol=0.01)
    np.testing.assert_allclose(fast, direct, rtol=1e-3)


def test_semi_implicit_needs_a_semi_implicit_hypernetwork():
    hypernet = bbh_tf.HyperNetwork(semi_implicit=False)
    net = keras.Sequential([keras.Input((3,)), bbh_tf.HyperDense(2, hypernet=hypernet)])
    model = bbh_tf.BayesByHypernet(net, num_examples=10)
    with pytest.raises(ValueError, match="semi_implicit=True"):
        model.build((None, 3))


@pytest.mark.parametrize("dims", [1, 10])
def test_knn_entropy_of_a_standard_normal(dims):
    rng = np.random.default_rng(dims)
    samples = rng.normal(size=(1, 3000, dims)).astype("float32")
    exact = 0.5 * dims * math.log(2 * math.pi * math.e)
    estimate = float(bbh_tf.kl.knn_entropy(samples, k=1)[0])
    # Kozachenko-Leonenko at n = 3000: within 0.05 nats per dimension.
    assert estimate == pytest.approx(exact, abs=0.05 * dims)


def test_knn_entropy_bias_shrinks_with_the_number_of_draws():
    rng = np.random.default_rng(0)
    exact = 0.5 * 10 * math.log(2 * math.pi * math.e)
    errors = []
    for n in (20, 2000):
        runs = rng.normal(size=(8, n, 10)).astype("float32")  # 8 blocks
        errors.append(abs(float(tf.reduce_mean(bbh_tf.kl.knn_entropy(runs))) - exact))
    assert errors[1] < 0.5 * errors[0], errors


@pytest.mark.parametrize("block,noise_per_chunk", [("group", False), ("chunk", True)])
def test_nearest_neighbour_kl_of_the_gaussian_posterior(block, noise_per_chunk):
    group, mean, cov = gaussian_group(
        noise_per_chunk=noise_per_chunk, output_dim=VALUES if block == "group" else 2
    )
    prior = bbh_tf.GaussianPrior(PRIOR_SIGMA)
    estimator = bbh_tf.kl.NearestNeighbourKL(extra_draws=0, block=block)
    estimate = estimator.estimate(
        [group], [group.draw(group.sample_noise(4000))], prior
    )
    assert float(estimate.logs["entropy"]) == pytest.approx(
        gaussian_entropy(cov), abs=0.15
    )
    assert float(estimate.kl) == pytest.approx(
        kl_to_gaussian_prior(mean, cov), abs=0.15
    )


def test_adversarial_joint_discriminator_recovers_the_correlated_kl():
    group, mean, cov = gaussian_group()
    prior = bbh_tf.GaussianPrior(PRIOR_SIGMA)
    estimator = bbh_tf.kl.AdversarialKL(bbh_tf.JointDiscriminator((32, 32)))
    estimator.setup([group], prior)
    optimizer = keras.optimizers.Adam(
        keras.optimizers.schedules.CosineDecay(1e-2, 1500, alpha=0.01)
    )
    update = tf.function(lambda: estimator.warm_up([group], prior, optimizer, 512))
    for _ in range(1500):
        update()
    estimate = estimator.estimate(
        [group], [group.draw(group.sample_noise(4000))], prior
    )
    exact = kl_to_gaussian_prior(mean, cov)
    # A learned density ratio: within 15 % of the KL.
    assert float(estimate.kl) == pytest.approx(exact, rel=0.15)


@pytest.mark.parametrize(
    "make,error,name",
    [
        (lambda: bbh_tf.kl.SemiImplicitKL(-1), ValueError, "num_mixture_draws"),
        (lambda: bbh_tf.kl.SemiImplicitKL(2.5), TypeError, "num_mixture_draws"),
        (lambda: bbh_tf.kl.NearestNeighbourKL(k=0), ValueError, "k"),
        (
            lambda: bbh_tf.kl.NearestNeighbourKL(extra_draws=-1),
            ValueError,
            "extra_draws",
        ),
        (lambda: bbh_tf.kl.NearestNeighbourKL(block="layer"), ValueError, "block"),
        (lambda: bbh_tf.kl.AdversarialKL(steps=0), ValueError, "steps"),
        (lambda: bbh_tf.kl.AdversarialKL(warmup_steps=-1), ValueError, "warmup_steps"),
        (lambda: bbh_tf.kl.AdversarialKL(sample_size=0), ValueError, "sample_size"),
        (
            lambda: bbh_tf.kl.AdversarialKL(keras.Sequential()),
            TypeError,
            "discriminator",
        ),
        (
            lambda: bbh_tf.kl.AdversarialKL(bbh_tf.JointDiscriminator(), sample_size=8),
            ValueError,
            "sample_size",
        ),
        (lambda: bbh_tf.kl.get("exact"), ValueError, "kl_estimator"),
    ],
)
def test_bad_estimator_arguments_name_the_argument(make, error, name):
    with pytest.raises(error, match=name):
        make()


def test_nearest_neighbour_needs_more_draws_than_k():
    group, _, _ = gaussian_group()
    estimator = bbh_tf.kl.NearestNeighbourKL(k=2, extra_draws=0)
    with pytest.raises(ValueError, match="num_weight_samples or extra_draws"):
        estimator.estimate(
            [group], [group.draw(group.sample_noise(2))], bbh_tf.GaussianPrior(1.0)
        )


@pytest.mark.parametrize("name", sorted(bbh_tf.kl.ESTIMATORS))
def test_estimators_serialize_to_json_and_back(name):
    estimator = bbh_tf.kl.get(name)
    config = keras.saving.serialize_keras_object(estimator)
    restored = keras.saving.deserialize_keras_object(json.loads(json.dumps(config)))
    assert type(restored) is type(estimator)
    assert restored.get_config() == estimator.get_config()


def test_squared_distances_gradient_equals_automatic_differentiation():
    # The hand-written float32 gradient against autodiff of the direct
    # float64 differences, on points far from the origin and close together
    # (the case the centring and the float64 value are for).
    rng = np.random.default_rng(3)
    offset = 1e3 * rng.normal(size=(1, 1, 50))
    a = tf.constant(offset + rng.normal(size=(2, 4, 50)), tf.float32)
    b = tf.constant(offset + rng.normal(size=(2, 6, 50)), tf.float32)
    upstream = tf.constant(rng.normal(size=(2, 4, 6)), tf.float32)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([a, b])
        fast = squared_distances(a, b)
        a64, b64 = tf.cast(a, tf.float64), tf.cast(b, tf.float64)
        direct = tf.reduce_sum(tf.square(a64[:, :, None] - b64[:, None]), axis=-1)
        fast_loss = tf.reduce_sum(fast * upstream)
        direct_loss = tf.reduce_sum(direct * tf.cast(upstream, tf.float64))
    np.testing.assert_allclose(fast, direct, rtol=1e-5)
    for got, want in zip(
        tape.gradient(fast_loss, [a, b]), tape.gradient(direct_loss, [a, b])
    ):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)
