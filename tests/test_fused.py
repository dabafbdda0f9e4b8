"""The XLA-fused formulations (``bbh_tf._xla``) against the plain ones they
replace inside a step traced without XLA."""

import numpy as np
import pytest
import tensorflow as tf

import bbh_tf
from bbh_tf import _xla


def test_fused_compiles_only_inside_a_graph_traced_without_xla():
    seen = []

    @_xla.fused
    def record(x):
        seen.append(_xla.in_xla_context())
        return x + 1.0

    x = tf.constant(1.0)
    record(x)  # eager: as written
    tf.function(lambda: record(x))()  # traced without XLA: compiled
    tf.function(lambda: record(x), jit_compile=True)()  # inside XLA: as written
    assert seen == [False, True, True]


@pytest.mark.parametrize("jit_compile", [False, True])
def test_column_norms_equal_the_plain_formula_with_and_without_xla(jit_compile):
    # Without XLA the norms come from reduce_euclidean_norm, with XLA from a
    # square and a sum: both equal sqrt(sum(V^2) + eps), value and gradient.
    columns = tf.constant(
        np.random.default_rng(1).normal(size=(300, 40)), dtype=tf.float32
    )
    upstream = tf.constant(np.linspace(-1.0, 2.0, 40), dtype=tf.float32)

    def value_and_gradient(norms_of):
        with tf.GradientTape() as tape:
            tape.watch(columns)
            norms = norms_of(columns)
            loss = tf.reduce_sum(norms * upstream)
        return norms, tape.gradient(loss, columns)

    fused = tf.function(
        lambda: value_and_gradient(bbh_tf.layers.column_norms),
        jit_compile=jit_compile,
    )()
    plain = value_and_gradient(
        lambda v: tf.sqrt(tf.reduce_sum(tf.square(v), axis=0) + 1e-12)
    )
    for got, want in zip(fused, plain):
        np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize(
    "prior", [bbh_tf.ScaleMixturePrior(), bbh_tf.GaussianPrior(0.3)]
)
@pytest.mark.parametrize("independent", [False, True])
def test_fused_kl_terms_equal_the_plain_arithmetic(prior, independent):
    layer = bbh_tf.BayesByBackpropDense(7, prior=prior, init_rho=-2.0, seed=4)
    layer.build((None, 12))
    mu = tf.convert_to_tensor(layer.kernel_mu)
    rho = tf.random.stateless_normal(mu.shape, seed=(1, 2)) - 2.0
    noise, squared_sum = layer._kl_noise(mu, independent)
    closed_form, monte_carlo = layer._kl_functions()

    def value_and_gradients(term, *args):
        with tf.GradientTape() as tape:
            tape.watch([mu, rho])
            value = term(mu, rho, *args)
        return [value] + tape.gradient(value, [mu, rho])

    for fused, plain, args in (
        (monte_carlo, layer._monte_carlo_term, (noise, squared_sum)),
        (closed_form, layer._closed_form_term, ()),
    ):
        # Traced without XLA, the fused function runs compiled.
        got = tf.function(lambda: value_and_gradients(fused, *args))()
        want = value_and_gradients(plain, *args)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


def test_a_prior_of_your_own_is_not_compiled():
    class OwnPrior(bbh_tf.GaussianPrior):
        pass

    layer = bbh_tf.BayesByBackpropDense(3)
    layer.build((None, 2))
    assert layer._kl_functions() != (layer._closed_form_term, layer._monte_carlo_term)
    own = bbh_tf.BayesByBackpropDense(3, prior=OwnPrior())
    own.build((None, 2))
    assert own._kl_functions() == (own._closed_form_term, own._monte_carlo_term)
