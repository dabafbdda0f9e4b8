"""The semi-implicit bound: ``log q(w)`` from a mixture over noise draws."""

import keras
import tensorflow as tf

from bbh_tf import _checks
from bbh_tf.kl.base import KLEstimate, KLEstimator


@keras.saving.register_keras_serializable(package="bbh_tf")
class SemiImplicitKL(KLEstimator):
    """``KL(q || p)`` by the semi-implicit bound (SIVI; Yin & Zhou, 2018).

    For a draw ``w ~ q(w | eps_0)``, ``q(w) = E_eps q(w | eps)`` is replaced by
    the average of ``q(w | eps_k)`` over ``eps_0`` and ``M - 1`` further noise
    draws (the step's other draws and ``num_mixture_draws`` fresh ones):

        KL_hat = log (1/M) sum_k q(w | eps_k) - log p(w).

    Its expectation is at least ``KL(q || p)`` for every ``M`` and falls to it
    as ``M`` grows (Molchanov et al., 2019: ``eps_0`` must be in the sum), so
    minimising it minimises an upper bound of the negative ELBO: no
    discriminator, no adversarial game, and a gradient that keeps the
    conditional ``sigma`` away from zero. In many dimensions the ``eps_0``
    term dominates and the bound is loose by up to ``log M`` nats. Needs a
    semi-implicit hypernetwork (``HyperNetwork(semi_implicit=True)``).
    Logs ``entropy`` (``-E log q_hat``) and ``cross_entropy`` (``-E log p``);
    ``kl`` is their difference.

    Args:
        num_mixture_draws: Fresh noise draws ``K >= 0`` in the mixture besides
            the step's own. Default 16. Each costs one hypernetwork pass per
            group (no network pass).

    Example:

    >>> model = bbh_tf.BayesByHypernet(
    ...     net, num_examples=60000,
    ...     kl_estimator=bbh_tf.kl.SemiImplicitKL(num_mixture_draws=64))
    """

    log_names = ("entropy", "cross_entropy")
    needs_density = True

    def __init__(self, num_mixture_draws=16, **kwargs):
        super().__init__(**kwargs)
        self.num_mixture_draws = _checks.non_negative_int(
            "num_mixture_draws", num_mixture_draws
        )

    def log_density(self, group, draws):
        """``log q_hat(w)`` of each draw of one group, ``(draws,)``."""
        means = draws.mean
        if self.num_mixture_draws:
            extra = group.means(
                group.hypernet.sample_noise(self.num_mixture_draws, group.total_chunks)
            )
            means = tf.concat([means, extra], axis=0)
        pairwise = group.log_conditional(draws.values, means)  # (n, M, blocks)
        components = tf.cast(tf.shape(means)[0], tf.float32)
        per_block = tf.reduce_logsumexp(pairwise, axis=1) - tf.math.log(components)
        return tf.reduce_sum(per_block, axis=-1)

    def estimate(self, groups, draws, prior):
        log_q = tf.add_n([self.log_density(g, d) for g, d in zip(groups, draws)])
        log_p = tf.add_n([g.log_prior(prior, d.values) for g, d in zip(groups, draws)])
        entropy, cross_entropy = -tf.reduce_mean(log_q), -tf.reduce_mean(log_p)
        return KLEstimate(
            cross_entropy - entropy,
            None,
            {"entropy": entropy, "cross_entropy": cross_entropy},
        )

    def get_config(self):
        return {**super().get_config(), "num_mixture_draws": self.num_mixture_draws}
