"""Bayes by Backprop (Blundell et al., 2015): mean-field Gaussian
variational inference, the baseline Bayes by Hypernet extends.

:class:`BayesByBackpropDense` and :class:`BayesByBackpropConv2D` give every
weight its own ``N(mu, sigma^2)`` posterior and sample with the local
reparameterisation trick in the forward pass; :class:`BayesByBackprop`
trains them on ``data loss + kl_weight * KL / N`` with the Monte Carlo KL of
the paper.
"""

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from bbh_tf import _checks, _conv, _random
from bbh_tf.predictive import deserialize
from bbh_tf.priors import ScaleMixturePrior
from bbh_tf.variational import VariationalModel

tfd = tfp.distributions

# Added to the pre-activation variance before the square root, so its
# gradient stays finite where the variance is zero (all-zero inputs without
# a bias).
_VARIANCE_EPSILON = 1e-12


class _BayesByBackpropLayer(keras.layers.Layer):
    """A linear map with a mean-field Gaussian posterior on its weights.

    Subclasses set ``self.kernel_shape`` (output units last) in ``build``
    before calling :meth:`_build_posterior`, and give :meth:`_linear`, the
    map with a given kernel.
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

    def _build_posterior(self):
        rho_initializer = keras.initializers.Constant(self.init_rho)
        self.kernel_mu = self.add_weight(
            name="kernel_mu",
            shape=self.kernel_shape,
            initializer=self.kernel_mean_initializer,
        )
        self.kernel_rho = self.add_weight(
            name="kernel_rho", shape=self.kernel_shape, initializer=rho_initializer
        )
        if self.use_bias:
            units = self.kernel_shape[-1]
            self.bias_mu = self.add_weight(
                name="bias_mu", shape=(units,), initializer="zeros"
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

    def monte_carlo_kl(self):
        """One-sample estimate of ``KL(q || p)`` for this layer, in nats.

        Draws one weight sample ``w = mu + sigma * eps`` of the kernel and
        bias (reparameterised, so gradients reach ``mu`` and ``rho``) and
        returns ``sum(log q(w) - log p(w))``: the Monte Carlo KL of Blundell
        et al. (2015), unbiased, and exact in expectation for any prior.
        """
        if not self.built:
            raise RuntimeError(
                f"{self.name}: build the layer (call it once) before asking "
                "for its KL term."
            )
        total = 0.0
        for mu, rho in self._posterior_parameters():
            mu = tf.convert_to_tensor(mu)
            sigma = tf.nn.softplus(tf.convert_to_tensor(rho))
            eps = _random.normal(tf.shape(mu), self.seed_generator, dtype=mu.dtype)
            weights = mu + sigma * eps
            log_q = tfd.Normal(loc=mu, scale=sigma).log_prob(weights)
            log_p = self.prior.log_prob(weights)
            total += tf.reduce_sum(log_q - log_p)
        return total

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
class BayesByBackpropDense(_BayesByBackpropLayer):
    """Dense layer with a mean-field Gaussian posterior (Bayes by Backprop).

    Every kernel and bias entry has its own ``N(mu, sigma^2)`` posterior with
    ``sigma = softplus(rho)``; ``mu`` and ``rho`` are trained.

    ``call`` samples with the local reparameterisation trick (Kingma et al.,
    2015): the pre-activation of each row is drawn from
    ``N(x @ mu_W + mu_b, x^2 @ sigma_W^2 + sigma_b^2)``, which is the exact
    distribution of ``x @ W + b`` under the posterior. Every row therefore
    gets an independent weight sample, in one vectorised pass, whatever
    ``training`` is.

    :meth:`monte_carlo_kl` gives the KL term of the loss;
    :class:`BayesByBackprop` adds it.

    Args:
        units: Number of output units, >= 1.
        activation: Activation function. Default: linear.
        use_bias: Whether the layer adds a (random) bias. Default True.
        prior: Diagonal prior on every kernel and bias entry, a bbh_tf prior.
            Default ``ScaleMixturePrior()`` (pi=0.5, sigma1=1, sigma2=e^-6).
        kernel_mean_initializer: Initializer of the kernel means ``mu_W``.
            Default ``"glorot_uniform"``; bias means start at 0.
        init_rho: Initial ``rho`` of every kernel and bias entry, a finite
            number: the posterior starts with ``sigma = softplus(init_rho)``.
            Default -5.0 (``sigma`` about 0.0067).
        seed: Optional int seed of the layer's noise generator.

    Input shape ``(batch, ..., input_dim)``, output ``(batch, ..., units)``.

    Example:

    >>> net = keras.Sequential([keras.Input((784,)),
    ...     bbh_tf.BayesByBackpropDense(400, activation="relu"),
    ...     bbh_tf.BayesByBackpropDense(10, activation="softmax")])
    >>> net(x).shape         # an independent weight sample per row
    (batch, 10)
    >>> net.layers[0].monte_carlo_kl()   # scalar: log q(w) - log p(w)
    """

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = _checks.positive_int("units", units)
        self.input_spec = keras.layers.InputSpec(min_ndim=2)

    def build(self, input_shape):
        self.input_dim = _checks.known_last_dim(self.name, input_shape)
        self.kernel_shape = (self.input_dim, self.units)
        self._build_posterior()
        self.input_spec = keras.layers.InputSpec(min_ndim=2, axes={-1: self.input_dim})

    def _linear(self, inputs, kernel):
        return keras.ops.matmul(inputs, kernel)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package="bbh_tf")
class BayesByBackpropConv2D(_conv.Conv2DLayer, _BayesByBackpropLayer):
    """2-D convolution with a mean-field Gaussian posterior (channels last).

    The convolutional counterpart of :class:`BayesByBackpropDense`, with the
    same arguments for the posterior and prior. ``call`` uses the local
    reparameterisation trick as in Kingma et al. (2015): every output element
    is drawn from the Gaussian with the mean ``conv(x, mu_W) + mu_b`` and
    variance ``conv(x^2, sigma_W^2) + sigma_b^2`` of its pre-activation.
    Within one image the draws at different positions are independent,
    whereas one shared kernel sample would correlate them: each element's
    marginal is exact, the joint is the usual approximation.

    Args:
        filters: Number of output channels, >= 1.
        kernel_size: Integer or pair ``(kh, kw)``.
        strides, padding, dilation_rate, data_format: as for
            ``keras.layers.Conv2D`` (channels last only).
        activation, use_bias, prior, kernel_mean_initializer, init_rho,
        seed: as for :class:`BayesByBackpropDense`.

    Example:

    >>> net = keras.Sequential([keras.Input((28, 28, 1)),
    ...     bbh_tf.BayesByBackpropConv2D(20, 5, activation="relu"),
    ...     keras.layers.MaxPooling2D(), keras.layers.Flatten(),
    ...     bbh_tf.BayesByBackpropDense(10, activation="softmax")])
    >>> model = bbh_tf.BayesByBackprop(net, num_examples=60000)
    """

    def __init__(
        self,
        filters,
        kernel_size,
        strides=1,
        padding="valid",
        dilation_rate=1,
        data_format=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self._init_conv(
            filters, kernel_size, strides, padding, dilation_rate, data_format
        )

    def build(self, input_shape):
        self.kernel_shape = self._conv_kernel_shape(input_shape)
        self._build_posterior()

    def get_config(self):
        return {**super().get_config(), **self._conv_config()}


@keras.saving.register_keras_serializable(package="bbh_tf")
class BayesByBackprop(VariationalModel):
    """Bayes by Backprop: mean-field Gaussian VI (Blundell et al., 2015).

    The network holds :class:`BayesByBackpropDense` layers (and may hold
    ordinary layers, trained as point estimates). Each training step
    minimises ``loss = data_loss + kl_weight * KL / num_examples``, where
    ``data_loss`` is the compiled loss (mean per example, one weight sample
    per example through the local reparameterisation trick) and ``KL`` sums
    every Bayesian layer's :meth:`~BayesByBackpropDense.monte_carlo_kl`.
    ``fit`` logs ``loss``, ``nll`` (the data loss), ``kl`` (in nats, for the
    whole training set) and the compiled metrics.

    Calling the model (``predict``, ``evaluate``) draws one weight sample
    per example; ``predict_distribution`` averages over many.

    Args:
        network: A Keras model or layer with one input, containing
            :class:`BayesByBackpropDense` or :class:`BayesByBackpropConv2D`
            layers.
        num_examples: Size of the training set, >= 1: the KL term is counted
            once per dataset, so per example it is ``KL / num_examples``.
        kl_weight: Multiplier of the KL term: a float >= 0 or a
            ``keras.optimizers.schedules.LearningRateSchedule`` of the
            optimizer's step (annealing). Default 1.0.

    Example:

    >>> net = keras.Sequential([keras.Input((784,)),
    ...     bbh_tf.BayesByBackpropDense(400, activation="relu"),
    ...     bbh_tf.BayesByBackpropDense(10, activation="softmax")])
    >>> model = bbh_tf.BayesByBackprop(net, num_examples=60000)
    >>> model.compile(optimizer="adam",
    ...               loss="sparse_categorical_crossentropy",
    ...               metrics=["accuracy"])
    >>> model.fit(x, y, batch_size=128, epochs=5)
    >>> mean, std = model.predict_distribution(x_test, num_samples=100)
    """

    def __init__(self, network, num_examples=None, kl_weight=1.0, **kwargs):
        super().__init__(
            network, num_examples=num_examples, kl_weight=kl_weight, **kwargs
        )

    @property
    def bayesian_layers(self):
        """The Bayes by Backprop layers of ``network`` (dense and conv)."""
        return self._layers_of_type(_BayesByBackpropLayer)

    def _build_extra(self, input_shape):
        if not self.bayesian_layers:
            raise ValueError(
                "`network` contains no BayesByBackpropDense or "
                "BayesByBackpropConv2D layers: there is no posterior to learn."
            )

    def monte_carlo_kl(self):
        """One-sample estimate of ``KL(q || p)`` over all Bayesian layers."""
        return tf.add_n([layer.monte_carlo_kl() for layer in self.bayesian_layers])

    def _forward_and_kl(self, x, training):
        return self(x, training=training), self.monte_carlo_kl()
