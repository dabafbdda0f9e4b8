"""Nearest-neighbour entropy: ``KL = -H[q] - E_q log p`` from samples alone."""

import math

import keras
import numpy as np
import tensorflow as tf

from bbh_tf import _checks
from bbh_tf.kl.base import KLEstimate, KLEstimator

_BLOCKS = ("chunk", "group")
# Squared distances are floored here before the logarithm (identical draws).
_TINY = 1e-30


def knn_entropy(samples, k=1, dims=None):
    """Kozachenko-Leonenko entropy of each block of ``samples`` ``(blocks, n, D)``.

    ``H = psi(n) - psi(k) + log V_d + (d / n) sum_i log r_i`` with ``r_i`` the
    distance from sample ``i`` to its ``k``-th nearest neighbour among the
    others and ``V_d`` the volume of the unit ``d``-ball. ``dims``: the
    dimension ``d`` of each block ``(blocks,)`` when some of the ``D``
    coordinates are zero padding (default ``D``). Returns ``(blocks,)``;
    gradients flow through the distances.
    """
    samples = tf.convert_to_tensor(samples, tf.float32)
    n = tf.shape(samples)[1]
    if dims is None:
        dims = tf.fill(tf.shape(samples)[:1], tf.cast(tf.shape(samples)[2], tf.float32))
    dims = tf.cast(dims, tf.float32)
    squared = tf.reduce_sum(
        tf.square(samples[:, :, None, :] - samples[:, None, :, :]), axis=-1
    )
    # A sample is not its own neighbour.
    squared = tf.where(tf.eye(n, dtype=tf.bool)[None], np.inf, squared)
    kth = -tf.math.top_k(-squared, k=k).values[..., -1]  # (blocks, n)
    mean_log_r = 0.5 * tf.reduce_mean(tf.math.log(tf.maximum(kth, _TINY)), axis=-1)
    n = tf.cast(n, tf.float32)
    log_ball = 0.5 * dims * math.log(math.pi) - tf.math.lgamma(0.5 * dims + 1.0)
    return tf.math.digamma(n) - tf.math.digamma(float(k)) + log_ball + dims * mean_log_r


@keras.saving.register_keras_serializable(package="bbh_tf")
class NearestNeighbourKL(KLEstimator):
    """``KL(q || p) = -H[q] - E_q log p(w)``, the entropy by ``k``-NN distances.

    The entropy of the draws is estimated by Kozachenko and Leonenko's
    nearest-neighbour estimator (:func:`knn_entropy`), the prior's log-density
    is exact. Needs samples only, so it works with the paper's deterministic
    generator too (whose ``q`` has no density: the estimate then falls without
    bound as the draws approach the generator's surface). The authors' later
    code uses the 1-NN form.

    The estimator is consistent as the number of draws ``n`` grows for a
    fixed dimension, but biased when ``n`` is small against the dimension, so
    it is applied per block: ``block="chunk"`` (default) estimates each
    chunk's entropy on its own and sums them, ignoring the dependence between
    chunks (an upper bound of the joint entropy when the chunks are
    dependent); ``block="group"`` treats all of a hypernetwork's values as one
    vector (the joint entropy, for small networks). Logs ``entropy`` and
    ``cross_entropy`` (``-E log p``).

    Args:
        k: Neighbour order, >= 1. Default 1.
        extra_draws: Draws besides the step's own (``num_weight_samples``)
            used for the entropy, >= 0: each costs a hypernetwork pass, no
            network pass. The step needs ``n = num_weight_samples +
            extra_draws > k``. Default 16.
        block: ``"chunk"`` or ``"group"``, see above.

    Example:

    >>> model = bbh_tf.BayesByHypernet(
    ...     net, num_examples=60000, kl_estimator="nearest_neighbour")
    """

    log_names = ("entropy", "cross_entropy")

    def __init__(self, k=1, extra_draws=16, block="chunk", **kwargs):
        super().__init__(**kwargs)
        self.k = _checks.positive_int("k", k)
        self.extra_draws = _checks.non_negative_int("extra_draws", extra_draws)
        if block not in _BLOCKS:
            raise ValueError(f"`block` must be one of {_BLOCKS}, got {block!r}.")
        self.block = block

    def _all_values(self, group, draws):
        if not self.extra_draws:
            return draws.values
        extra = group.draw(group.sample_noise(self.extra_draws)).values
        return tf.concat([draws.values, tf.cast(extra, draws.values.dtype)], axis=0)

    def entropy(self, group, values):
        """Entropy estimate of one group from its draws ``values``."""
        n = values.shape[0]
        if n is not None and n <= self.k:
            raise ValueError(
                f"NearestNeighbourKL(k={self.k}) needs more than {self.k} draws "
                f"per step, got {n}: raise num_weight_samples or extra_draws."
            )
        if self.block == "group":
            return tf.reduce_sum(knn_entropy(group.used_values(values)[None], self.k))
        mask = tf.constant(group.mask)
        by_chunk = tf.transpose(tf.cast(values, tf.float32) * mask, (1, 0, 2))
        return tf.reduce_sum(
            knn_entropy(by_chunk, self.k, dims=tf.reduce_sum(mask, axis=-1))
        )

    def estimate(self, groups, draws, prior):
        entropy, cross_entropy = 0.0, 0.0
        for group, group_draws in zip(groups, draws):
            values = self._all_values(group, group_draws)
            entropy += self.entropy(group, values)
            cross_entropy -= tf.reduce_mean(group.log_prior(prior, values))
        return KLEstimate(
            cross_entropy - entropy,
            None,
            {"entropy": entropy, "cross_entropy": cross_entropy},
        )

    def get_config(self):
        return {
            **super().get_config(),
            "k": self.k,
            "extra_draws": self.extra_draws,
            "block": self.block,
        }
