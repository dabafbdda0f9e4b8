"""Bayes by Backprop layers (Blundell et al., 2015): every weight has its
own ``N(mu, sigma^2)`` posterior. :class:`BayesByBackpropLayer` is the
base of the dense (here), convolutional (``bbb_conv``), embedding and
recurrent (``bbb_sequence``) layers; ``BayesByBackprop`` trains them.
"""

import math

import keras
import tensorflow as tf

from bbh_tf import _checks, _random, _xla
from bbh_tf._kernel import DenseLayer, KernelLayer
from bbh_tf.predictive import deserialize
from bbh_tf.priors import GaussianPrior, ScaleMixturePrior

# Added to the pre-activation variance before the square root, so its
# gradient stays finite where the variance is zero (all-zero inputs without
# a bias).
_VARIANCE_EPSILON = 1e-12
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def standard_normal_from(noise, shape):
    """``eps`` of ``shape`` from ``BayesByBackpropLayer._kl_noise``'s
    ``noise``: the draw itself, or ``a_i + b_j`` from its row and column
    halves."""
    if len(noise) == 1:
        return noise[0]
    rows, columns = noise
    return tf.reshape(rows + columns, shape)


class BayesByBackpropLayer(KernelLayer, keras.layers.Layer):
    """A linear map with a mean-field Gaussian posterior on its weights.

    Subclasses set ``self.kernel_shape`` in ``build`` before calling
    :meth:`_build_parameters`, and give :meth:`_linear`, the map with a
    given kernel.
    """

    def __init__(
        self,
        activation=None,
        use_bias=True,
        prior=None,
        kernel_mean_initializer="glorot_uniform",
        init_rho=-5.0,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.activation = keras.activations.get(activation)
        self.use_bias = bool(use_bias)
        prior = ScaleMixturePrior() if prior is None else deserialize(prior)
        if not (hasattr(prior, "log_prob") and hasattr(prior, "get_config")):
            raise TypeError(
                "`prior` must be a bbh_tf prior such as ScaleMixturePrior or "
                f"GaussianPrior, got {type(prior).__name__}."
            )
        self.prior = prior
        self.kernel_mean_initializer = keras.initializers.get(kernel_mean_initializer)
        self.init_rho = _checks.finite_float("init_rho", init_rho)
        if seed is not None:
            seed = _checks.non_negative_int("seed", seed)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _initial_kernel_mean(self, shape, dtype=None):
        return self.kernel_mean_initializer(shape, dtype)

    def _initial_bias_mean(self, shape, dtype=None):
        return keras.initializers.Zeros()(shape, dtype)

    def _build_parameters(self):
        rho_initializer = keras.initializers.Constant(self.init_rho)
        self.kernel_mu = self.add_weight(
            name="kernel_mu",
            shape=self.kernel_shape,
            initializer=self._initial_kernel_mean,
        )
        self.kernel_rho = self.add_weight(
            name="kernel_rho", shape=self.kernel_shape, initializer=rho_initializer
        )
        if self.use_bias:
            units = self.output_units
            self.bias_mu = self.add_weight(
                name="bias_mu", shape=(units,), initializer=self._initial_bias_mean
            )
            self.bias_rho = self.add_weight(
                name="bias_rho", shape=(units,), initializer=rho_initializer
            )

    @property
    def kernel_sigma(self):
        """Posterior standard deviations of the kernel, ``softplus(rho)``."""
        return tf.nn.softplus(self.kernel_rho)

    @property
    def bias_sigma(self):
        """Posterior standard deviations of the bias (None without bias)."""
        return tf.nn.softplus(self.bias_rho) if self.use_bias else None

    def _posterior_parameters(self):
        """``(mu, rho)`` pairs of the kernel and, if any, the bias."""
        pairs = [(self.kernel_mu, self.kernel_rho)]
        if self.use_bias:
            pairs.append((self.bias_mu, self.bias_rho))
        return pairs

    def _linear(self, inputs, kernel):
        raise NotImplementedError

    def call(self, inputs):
        # Local reparameterisation: mean and variance of the pre-activation.
        mean = self._linear(inputs, self.kernel_mu)
        variance = self._linear(
            keras.ops.square(inputs), keras.ops.square(self.kernel_sigma)
        )
        if self.use_bias:
            mean = mean + self.bias_mu
            variance = variance + keras.ops.square(self.bias_sigma)
        noise = _random.normal(tf.shape(mean), self.seed_generator, dtype=mean.dtype)
        outputs = mean + keras.ops.sqrt(variance + _VARIANCE_EPSILON) * noise
        return self.activation(outputs)

    def _require_built(self):
        if not self.built:
            raise RuntimeError(
                f"{self.name}: build the layer (call it once) before asking "
                "for its KL term."
            )

    def closed_form_kl(self):
        """``KL(q || p)`` for this layer from the prior's closed form, in nats.

        Exact for a ``GaussianPrior``; for a ``ScaleMixturePrior`` the
        variational upper bound of :meth:`ScaleMixturePrior.kl_from_normal`.
        No noise: a few passes over ``mu`` and ``rho`` instead of a weight
        sample and the prior's density at it (the Monte Carlo estimate's
        weight-sized draw of normal numbers costs more than the layer's
        product on a CPU).
        """
        self._require_built()
        closed_form = self._kl_functions()[0]
        return tf.add_n(
            [
                closed_form(tf.convert_to_tensor(mu), tf.convert_to_tensor(rho))
                for mu, rho in self._posterior_parameters()
            ]
        )

    def monte_carlo_kl(self, independent=False):
        """One-sample estimate of ``KL(q || p)`` for this layer, in nats.

        Draws one weight sample ``w = mu + sigma * eps`` of the kernel and
        bias (reparameterised, so gradients reach ``mu`` and ``rho``) and
        returns ``sum(log q(w) - log p(w))``: the Monte Carlo KL of Blundell
        et al. (2015), unbiased for any prior.

        The sum's expectation depends only on each ``eps_i``'s own
        distribution, not on how they depend on each other, so by default a
        kernel seen as a matrix ``(rows, columns)`` (its last axis the
        columns) gets ``eps_ij = (a_i + b_j) / sqrt(2)`` with ``a``, ``b``
        standard normal: every ``eps_ij`` is exactly ``N(0, 1)``, the
        estimate and its gradient stay unbiased, each weight's gradient has
        the same variance as with independent noise, and the step draws
        ``rows + columns`` normal numbers instead of ``rows * columns``
        (which cost more than the layer's own product on a CPU). Biases and
        other vectors get independent noise. ``independent=True``: one
        independent draw per weight, the paper's estimate.
        """
        self._require_built()
        monte_carlo = self._kl_functions()[1]
        total = 0.0
        for mu, rho in self._posterior_parameters():
            mu = tf.convert_to_tensor(mu)
            noise, squared_sum = self._kl_noise(mu, independent)
            total += monte_carlo(mu, tf.convert_to_tensor(rho), noise, squared_sum)
        return total

    def _kl_functions(self):
        """This layer's KL arithmetic per ``(mu, rho)`` pair: the closed form
        and the Monte Carlo term. With the package's priors XLA fuses their
        passes over the weights (``bbh_tf._xla``); a prior of your own (a
        subclass too) runs as written: it may hold operations XLA cannot
        compile."""
        functions = self.__dict__.get("_kl_function_cache")
        if functions is None:
            functions = (self._closed_form_term, self._monte_carlo_term)
            if type(self.prior) in (ScaleMixturePrior, GaussianPrior):
                functions = tuple(_xla.fused(f) for f in functions)
            # Kept out of Keras' attribute tracking.
            self.__dict__["_kl_function_cache"] = functions
        return functions

    def _closed_form_term(self, mu, rho):
        return tf.reduce_sum(self.prior.kl_from_normal(mu, tf.nn.softplus(rho)))

    def _monte_carlo_term(self, mu, rho, noise, squared_sum):
        """``log q(w) - log p(w)`` of ``w = mu + softplus(rho) * eps``, ``eps``
        from ``noise`` (see ``_kl_noise``) with ``sum(eps^2) = squared_sum``."""
        sigma = tf.nn.softplus(rho)
        weights = mu + sigma * standard_normal_from(noise, mu.shape)
        # log N(w; mu, sigma^2) with (w - mu) / sigma = eps: the value
        # and gradient of TFP's Normal(mu, sigma).log_prob(w), without its
        # passes over the weights to subtract and divide.
        log_q = -0.5 * squared_sum - tf.reduce_sum(tf.math.log(sigma))
        log_q -= _HALF_LOG_2PI * tf.cast(tf.size(mu), log_q.dtype)
        return log_q - tf.reduce_sum(self.prior.log_prob(weights))

    def _kl_noise(self, mu, independent):
        """``(noise, sum(eps^2))`` for standard normal ``eps`` shaped like
        ``mu`` (see monte_carlo_kl): ``noise`` is ``(eps,)``, or the row and
        column halves ``(a, b)`` that ``standard_normal_from`` adds (inside
        the fused arithmetic, so ``eps`` is never a tensor of its own)."""
        shape = mu.shape
        if independent or shape.rank < 2:
            eps = _random.normal(tf.shape(mu), self.seed_generator, dtype=mu.dtype)
            return (eps,), tf.reduce_sum(tf.square(eps))
        num_rows, num_columns = math.prod(shape[:-1]), shape[-1]
        half = math.sqrt(0.5)
        rows = half * _random.normal((num_rows, 1), self.seed_generator, dtype=mu.dtype)
        columns = half * _random.normal(
            (1, num_columns), self.seed_generator, dtype=mu.dtype
        )
        # sum_ij (a_i + b_j)^2 from the two vectors: no pass over the kernel.
        squared_sum = (
            num_columns * tf.reduce_sum(tf.square(rows))
            + num_rows * tf.reduce_sum(tf.square(columns))
            + 2.0 * tf.reduce_sum(rows) * tf.reduce_sum(columns)
        )
        return (rows, columns), squared_sum

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "activation": keras.activations.serialize(self.activation),
                "use_bias": self.use_bias,
                "prior": keras.saving.serialize_keras_object(self.prior),
                "kernel_mean_initializer": keras.initializers.serialize(
                    self.kernel_mean_initializer
                ),
                "init_rho": self.init_rho,
                "seed": self.seed,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["prior"] = deserialize(config.get("prior"))
        return cls(**config)


@keras.saving.register_keras_serializable(package="bbh_tf")
class BayesByBackpropDense(DenseLayer, BayesByBackpropLayer):
    """Dense layer with a mean-field Gaussian posterior (Bayes by Backprop).

    Every kernel and bias entry has its own ``N(mu, sigma^2)`` posterior with
    ``sigma = softplus(rho)``; ``mu`` and ``rho`` are trained.

    ``call`` samples with the local reparameterisation trick (Kingma et al.,
    2015): the pre-activation of each row is drawn from
    ``N(x @ mu_W + mu_b, x^2 @ sigma_W^2 + sigma_b^2)``, which is the exact
    distribution of ``x @ W + b`` under the posterior. Every row therefore
    gets an independent weight sample, in one vectorised pass, whatever
    ``training`` is.

    :meth:`monte_carlo_kl` (the default) or :meth:`closed_form_kl` gives the
    KL term of the loss (``BayesByBackprop(kl_estimate=...)``), which
    :class:`BayesByBackprop` adds.

    Args:
        units: Number of output units, >= 1.
        **kwargs: ``activation`` (default linear); ``use_bias`` (a random
            bias, default True); ``prior`` (diagonal, on every kernel and
            bias entry, a bbh_tf prior; default ``ScaleMixturePrior()``,
            pi=0.5, sigma1=1, sigma2=e^-6); ``kernel_mean_initializer`` (of
            the kernel means ``mu_W``, default glorot uniform; bias means
            start at 0); ``init_rho`` (initial ``rho`` of every entry, a
            finite number: ``sigma = softplus(init_rho)``; default -5.0,
            ``sigma`` about 0.0067); ``seed`` (of the layer's noise
            generator); the base layer's (``name``, ``dtype``).

    Input shape ``(batch, ..., input_dim)``, output ``(batch, ..., units)``.

    Example:

    >>> net = keras.Sequential([keras.Input((784,)),
    ...     bbh_tf.BayesByBackpropDense(400, activation="relu"),
    ...     bbh_tf.BayesByBackpropDense(10, activation="softmax")])
    >>> net(x).shape         # an independent weight sample per row
    (batch, 10)
    >>> net.layers[0].monte_carlo_kl()   # scalar: log q(w) - log p(w)
    """
