"""Likelihoods for regression: Keras losses that know their predictive.

Each likelihood is a Keras loss (the negative log-likelihood of the targets
per example, summed over target dimensions) built on a
``tfp.distributions`` family, and tells the models how to read the
network's outputs as a distribution, so that ``predict_distribution`` can
split the predictive spread into its aleatoric part (the likelihood's own
noise) and its epistemic part (the spread of the mean over weight draws).

Output layouts, for ``k`` targets:

* a fixed noise scale (``GaussianLikelihood(scale=3.0)``): the network
  outputs the mean, ``(batch, k)``;
* a learned scale (``scale=None``, the default): the network outputs
  ``(batch, 2k)``, the ``k`` means then ``k`` raw scales, and the scale is
  ``softplus(raw) + min_scale``. That is the *heteroscedastic* layout (the
  last layer has ``2k`` units); end the network with
  :class:`HomoscedasticScale` instead to learn one scale per target that does
  not depend on the input (*homoscedastic*).

Example:

>>> net = keras.Sequential([keras.Input((8,)),
...     bbh_tf.HyperDense(50, activation="relu"),
...     bbh_tf.HyperDense(2)])            # mean and raw scale
>>> model = bbh_tf.BayesByHypernet(net, num_examples=len(x))
>>> model.compile(optimizer="adam", loss=bbh_tf.GaussianLikelihood())
>>> model.fit(x, y, epochs=40, batch_size=32)
>>> prediction = model.predict_distribution(x_test)
>>> prediction.mean, prediction.std            # of y: total predictive std
>>> prediction.aleatoric_std, prediction.epistemic_std
"""

import math

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from bbh_tf import _checks

tfd = tfp.distributions


class Likelihood(keras.losses.Loss):
    """Base class: a per-example negative log-likelihood with a known layout.

    Subclasses give :meth:`distribution` of the targets for network outputs
    and the variance of that distribution.

    Args:
        scale: A fixed noise scale > 0, or None (default) to read it from the
            network's outputs (see the module docstring for the layout).
        min_scale: Added to ``softplus(raw)`` when the scale is read from the
            outputs, > 0: keeps the loss finite where a draw predicts a
            vanishing scale. Default 1e-3.
    """

    def __init__(self, scale=None, min_scale=1e-3, name=None, **kwargs):
        super().__init__(name=name or type(self).__name__, **kwargs)
        self.scale = None if scale is None else _checks.positive_float("scale", scale)
        self.min_scale = _checks.positive_float("min_scale", min_scale)

    def location_and_scale(self, y_pred):
        """``(loc, scale)`` from network outputs, each ``(..., k)``."""
        y_pred = tf.cast(y_pred, tf.float32)
        if self.scale is not None:
            return y_pred, tf.fill(tf.shape(y_pred), self.scale)
        width = y_pred.shape[-1]
        if width is not None and width % 2:
            raise ValueError(
                f"{type(self).__name__}(scale=None) reads means and raw scales "
                "from the network's output, (batch, 2 * targets), but its last "
                f"axis has {width} units: give the last layer 2 units per "
                "target, end the network with HomoscedasticScale(), or pass "
                "a fixed `scale`."
            )
        loc, raw = tf.split(y_pred, 2, axis=-1)
        return loc, tf.nn.softplus(raw) + self.min_scale

    def distribution(self, y_pred):
        """The targets' distribution for outputs ``y_pred``, batch shape ``(..., k)``."""
        raise NotImplementedError

    def variance(self, scale):
        """The distribution's variance for a scale."""
        raise NotImplementedError

    def call(self, y_true, y_pred):
        y_true = tf.cast(y_true, tf.float32)
        distribution = self.distribution(y_pred)
        y_true = tf.reshape(y_true, tf.shape(distribution.loc))
        return -tf.reduce_sum(distribution.log_prob(y_true), axis=-1)

    def predictive_moments(self, samples):
        """Moments of the mixture over draws of network outputs ``samples``
        ``(draws, batch, ...)``: ``(mean, std, aleatoric_std, epistemic_std)``,
        the total variance being the mean noise variance plus the variance
        of the mean over draws."""
        loc, scale = self.location_and_scale(samples)
        mean = tf.reduce_mean(loc, axis=0)
        epistemic = tf.reduce_mean(tf.square(loc - mean), axis=0)
        aleatoric = tf.reduce_mean(self.variance(scale), axis=0)
        return (
            mean,
            tf.sqrt(aleatoric + epistemic),
            tf.sqrt(aleatoric),
            tf.sqrt(epistemic),
        )

    def get_config(self):
        return {
            **super().get_config(),
            "scale": self.scale,
            "min_scale": self.min_scale,
        }


@keras.saving.register_keras_serializable(package="bbh_tf")
class GaussianLikelihood(Likelihood):
    """Gaussian likelihood ``N(y; mean, scale^2)``; the loss is its NLL.

    Args:
        scale: Fixed noise standard deviation > 0 (the network outputs the
            mean), or None (default): the network outputs means and raw
            scales (heteroscedastic, or homoscedastic with
            :class:`HomoscedasticScale`).
        min_scale: Floor added to a learned scale, > 0. Default 1e-3.

    Example:

    >>> loss = bbh_tf.GaussianLikelihood(scale=3.0)   # known noise std 3
    >>> float(loss(tf.constant([[1.0]]), tf.constant([[1.0]])))  # 0.5 log(2 pi 9)
    2.0176
    """

    def distribution(self, y_pred):
        loc, scale = self.location_and_scale(y_pred)
        return tfd.Normal(loc, scale)

    def variance(self, scale):
        return tf.square(scale)


@keras.saving.register_keras_serializable(package="bbh_tf")
class StudentTLikelihood(Likelihood):
    """Student-t likelihood with ``df`` degrees of freedom: heavier tails
    than the Gaussian, so outliers pull less.

    Args:
        df: Degrees of freedom, > 2 (so the variance is finite). Default 4.
        scale: As for :class:`GaussianLikelihood`.
        min_scale: As for :class:`GaussianLikelihood`.

    Example:

    >>> loss = bbh_tf.StudentTLikelihood(df=4.0)     # (batch, 2k) outputs
    """

    def __init__(self, df=4.0, scale=None, min_scale=1e-3, name=None, **kwargs):
        super().__init__(scale=scale, min_scale=min_scale, name=name, **kwargs)
        df = _checks.finite_float("df", df)
        if df <= 2:
            raise ValueError(f"`df` must be > 2 (finite variance), got {df}.")
        self.df = df

    def distribution(self, y_pred):
        loc, scale = self.location_and_scale(y_pred)
        return tfd.StudentT(self.df, loc, scale)

    def variance(self, scale):
        return tf.square(scale) * (self.df / (self.df - 2.0))

    def get_config(self):
        return {**super().get_config(), "df": self.df}


@keras.saving.register_keras_serializable(package="bbh_tf")
class HomoscedasticScale(keras.layers.Layer):
    """Appends one learned raw noise scale per target to the network's means.

    Input ``(batch, k)`` means; output ``(batch, 2k)``: the means, then a
    raw scale per target that does not depend on the input (a trainable
    point estimate), the layout a :class:`Likelihood` with ``scale=None``
    reads.

    Args:
        initial_scale: The scale at the start (after the softplus), > 0.
            Default 1.0.

    Example:

    >>> net = keras.Sequential([keras.Input((8,)),
    ...     bbh_tf.HyperDense(50, activation="relu"), bbh_tf.HyperDense(1),
    ...     bbh_tf.HomoscedasticScale()])
    """

    def __init__(self, initial_scale=1.0, **kwargs):
        super().__init__(**kwargs)
        self.initial_scale = _checks.positive_float("initial_scale", initial_scale)

    def build(self, input_shape):
        targets = _checks.known_last_dim(self.name, input_shape)
        self.raw_scale = self.add_weight(
            name="raw_scale",
            shape=(targets,),
            # softplus(raw) = initial_scale, solved for raw.
            initializer=keras.initializers.Constant(
                math.log(math.expm1(self.initial_scale))
            ),
        )

    def call(self, inputs):
        raw = tf.cast(self.raw_scale, inputs.dtype)
        return tf.concat([inputs, tf.broadcast_to(raw, tf.shape(inputs))], axis=-1)

    def compute_output_shape(self, input_shape):
        last = input_shape[-1]
        return tuple(input_shape[:-1]) + (None if last is None else 2 * last,)

    def get_config(self):
        return {**super().get_config(), "initial_scale": self.initial_scale}
