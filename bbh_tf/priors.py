"""Diagonal weight priors built on ``tfp.distributions``.

A prior treats every weight independently, so one scalar distribution
describes all of them: ``sample(shape)`` draws i.i.d. values of any shape and
``log_prob(w)`` is elementwise. The discriminator only needs samples; the
log-densities serve Bayes by Backprop and the tests.
"""

import math

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from bbh_tf import _checks

tfd = tfp.distributions


class _DiagonalPrior:
    """Shared behaviour: sampling, log-densities and (de)serialization."""

    def distribution(self, dtype="float32"):
        """The scalar ``tfp.distributions.Distribution`` of one weight."""
        raise NotImplementedError

    def sample(self, shape, dtype="float32"):
        """Independent draws of the given ``shape``."""
        return self.distribution(dtype).sample(shape)

    def log_prob(self, weights):
        """Elementwise log-density of ``weights``."""
        weights = tf.convert_to_tensor(weights)
        return self.distribution(weights.dtype).log_prob(weights)

    def kl_from_normal(self, mean, stddev):
        """Elementwise ``KL(N(mean, stddev^2) || prior)`` in nats, or an upper
        bound of it where no closed form exists (see the subclass)."""
        raise NotImplementedError(
            f"{type(self).__name__} has no closed-form KL; use a Monte Carlo estimate."
        )

    @property
    def stddev(self):
        """Standard deviation of one weight under the prior."""
        return float(self.distribution("float64").stddev().numpy())

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __eq__(self, other):
        return type(self) is type(other) and (self.get_config() == other.get_config())

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


@keras.saving.register_keras_serializable(package="bbh_tf")
class ScaleMixturePrior(_DiagonalPrior):
    """Scale mixture of two zero-mean Gaussians (Blundell et al., 2015).

    ``p(w) = pi * N(w; 0, sigma1^2) + (1 - pi) * N(w; 0, sigma2^2)`` for each
    weight independently. A wide and a narrow component let most weights sit
    near zero while a few stay large.

    Args:
        pi: Weight of the first component, in (0, 1). Default 0.5.
        sigma1: Standard deviation of the first component, > 0. Default 1.0.
        sigma2: Standard deviation of the second component, > 0.
            Default ``exp(-6)``, the setting of Bayes by Backprop's MNIST runs.

    Example:

    >>> prior = ScaleMixturePrior(pi=0.5, sigma1=1.0, sigma2=math.exp(-6))
    >>> w = prior.sample((3, 4))          # float32 tensor of shape (3, 4)
    >>> prior.log_prob(w).shape
    TensorShape([3, 4])
    """

    def __init__(self, pi=0.5, sigma1=1.0, sigma2=0.0024787521766663585):
        self.pi = _checks.open_unit_float("pi", pi)
        self.sigma1 = _checks.positive_float("sigma1", sigma1)
        self.sigma2 = _checks.positive_float("sigma2", sigma2)

    def distribution(self, dtype="float32"):
        return tfd.MixtureSameFamily(
            mixture_distribution=tfd.Categorical(
                probs=tf.constant([self.pi, 1.0 - self.pi], dtype)
            ),
            components_distribution=tfd.Normal(
                loc=tf.zeros([2], dtype),
                scale=tf.constant([self.sigma1, self.sigma2], dtype),
            ),
        )

    def log_prob(self, weights):
        # Same density as ``distribution().log_prob`` (tested), written on
        # ``w^2``: each component's log density ``a_k = log pi_k - log(sqrt(2
        # pi) sigma_k) - w^2 / (2 sigma_k^2)`` is affine in ``w^2``, and
        # ``log p = max(a1, a2) + softplus(-|a1 - a2|)``. About half the
        # passes over the weights of the two TFP components and
        # log_add_exp (MixtureSameFamily's generic log_prob took 5x as long
        # again): Bayes by Backprop calls it on every weight at every step.
        weights = tf.convert_to_tensor(weights)
        dtype = weights.dtype
        if dtype.size < 4:
            # 1 / (2 sigma2^2) = 81377 by default: beyond float16's range.
            weights = tf.cast(weights, tf.float32)
        return tf.cast(self._log_prob(weights), dtype)

    @property
    def _affine_terms(self):
        """``(c1, c2, r1, r2)``: component ``k``'s log density is ``c_k - r_k
        w^2``."""
        half_log_2pi = 0.5 * math.log(2.0 * math.pi)
        return (
            math.log(self.pi) - half_log_2pi - math.log(self.sigma1),
            math.log1p(-self.pi) - half_log_2pi - math.log(self.sigma2),
            0.5 / self.sigma1**2,
            0.5 / self.sigma2**2,
        )

    def _log_sum(self, squared):
        """``(log(e^a1 + e^a2), a1 - a2)`` for ``a_k = c_k - r_k * squared``
        (``_affine_terms``): the mixture's log density at ``w`` with
        ``squared = w^2``, and the two components' log-odds."""
        wide, narrow, wide_rate, narrow_rate = self._affine_terms
        larger = tf.maximum(wide - wide_rate * squared, narrow - narrow_rate * squared)
        # a1 - a2 from its own affine form: no cancellation of large terms.
        difference = (wide - narrow) + (narrow_rate - wide_rate) * squared
        return larger + tf.nn.softplus(-tf.abs(difference)), difference

    def _log_prob(self, weights):
        _, _, wide_rate, narrow_rate = self._affine_terms

        # The gradient written out, -2 w (r1 s + r2 (1 - s)) with s the wide
        # component's responsibility sigmoid(a1 - a2): fewer passes over the
        # weights than autodiff through max, abs and softplus. Both terms are
        # positive: r2 + (r1 - r2) s would cancel (r2 = 81377 by default).
        @tf.custom_gradient
        def log_density(w):
            value, difference = self._log_sum(tf.square(w))

            def gradient(upstream):
                rate = wide_rate * tf.sigmoid(difference) + narrow_rate * tf.sigmoid(
                    -difference
                )
                return upstream * (-2.0 * w) * rate

            return value, gradient

        return log_density(weights)

    def kl_from_normal(self, mean, stddev):
        """Elementwise upper bound of ``KL(N(mean, stddev^2) || prior)``.

        The mixture has no closed form, but Jensen's inequality over the
        components gives one (Hershey & Olsen, 2007, the variational bound):
        ``KL(q || sum_k pi_k p_k) <= -log sum_k pi_k exp(-KL(q || p_k))``,
        each ``KL(q || p_k)`` a Gaussian's closed form. It is tight where
        ``q`` is narrow beside the narrow component, and an ELBO built on it
        stays a lower bound. Deterministic: no weight-sized noise.
        """
        mean = tf.convert_to_tensor(mean)
        stddev = tf.convert_to_tensor(stddev, mean.dtype)
        if mean.dtype.size < 4:
            mean, stddev = tf.cast(mean, tf.float32), tf.cast(stddev, tf.float32)
        # log pi_k - KL(q || p_k) = c_k - r_k * (mean^2 + stddev^2) + log
        # stddev + 1/2 + log sqrt(2 pi), with c_k, r_k of _affine_terms.
        log_sum, _ = self._log_sum(tf.square(mean) + tf.square(stddev))
        return -log_sum - tf.math.log(stddev) - 0.5 - 0.5 * math.log(2.0 * math.pi)

    def sample(self, shape, dtype="float32"):
        # Same distribution as ``distribution().sample(shape)``: pick each
        # value's component, then scale a standard normal. Three ops instead
        # of TFP's mixture sampler, which draws from both components; this
        # runs on every discriminator step.
        wide = tf.random.uniform(shape, dtype=dtype) < self.pi
        scale = tf.where(
            wide, tf.constant(self.sigma1, dtype), tf.constant(self.sigma2, dtype)
        )
        return scale * tf.random.normal(shape, dtype=dtype)

    def get_config(self):
        return {"pi": self.pi, "sigma1": self.sigma1, "sigma2": self.sigma2}


@keras.saving.register_keras_serializable(package="bbh_tf")
class GaussianPrior(_DiagonalPrior):
    """Zero-mean Gaussian prior ``N(0, sigma^2)`` on every weight.

    Args:
        sigma: Standard deviation, > 0. Default 1.0.

    Example:

    >>> prior = GaussianPrior(sigma=0.5)
    >>> prior.sample((1000,)).shape
    TensorShape([1000])
    """

    def __init__(self, sigma=1.0):
        self.sigma = _checks.positive_float("sigma", sigma)

    def distribution(self, dtype="float32"):
        return tfd.Normal(
            loc=tf.constant(0.0, dtype), scale=tf.constant(self.sigma, dtype)
        )

    def kl_from_normal(self, mean, stddev):
        """Elementwise ``KL(N(mean, stddev^2) || N(0, sigma^2))``, exact."""
        mean = tf.convert_to_tensor(mean)
        stddev = tf.convert_to_tensor(stddev, mean.dtype)
        ratio = stddev / self.sigma
        return (
            0.5 * (tf.square(ratio) + tf.square(mean / self.sigma))
            - tf.math.log(ratio)
            - 0.5
        )

    def get_config(self):
        return {"sigma": self.sigma}
