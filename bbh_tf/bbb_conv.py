"""Convolutions with a mean-field Gaussian posterior (Bayes by Backprop):
``BayesByBackpropConv1D``, ``BayesByBackpropConv2D`` and
``BayesByBackpropDepthwiseConv2D`` (channels last). Each samples with the
local reparameterisation trick: every output element is drawn from the
Gaussian of its pre-activation, mean ``conv(x, mu_W) + mu_b`` and variance
``conv(x^2, sigma_W^2) + sigma_b^2``."""

import keras

from bbh_tf import _conv
from bbh_tf.bbb_layers import BayesByBackpropLayer

__all__ = [
    "BayesByBackpropConv1D",
    "BayesByBackpropConv2D",
    "BayesByBackpropDepthwiseConv2D",
]


@keras.saving.register_keras_serializable(package="bbh_tf")
class BayesByBackpropConv2D(_conv.Conv2DLayer, BayesByBackpropLayer):
    """2-D convolution with a mean-field Gaussian posterior (channels last).

    The convolutional counterpart of :class:`BayesByBackpropDense`, with the
    same arguments for the posterior and prior. ``call`` uses the local
    reparameterisation trick as in Kingma et al. (2015): every output element
    is drawn from the Gaussian with the mean ``conv(x, mu_W) + mu_b`` and
    variance ``conv(x^2, sigma_W^2) + sigma_b^2`` of its pre-activation.
    Within one image the draws at different positions are independent,
    whereas one shared kernel sample would correlate them: each element's
    marginal is exact, the joint is the usual approximation.

    ``strides``, ``padding``, ``dilation_rate`` and ``data_format`` are
    Keras' ``Conv2D``'s, as for :class:`HyperConv2D` (channels last).

    Args:
        filters: Number of output channels, >= 1.
        kernel_size: Integer or pair ``(kh, kw)``.
        **kwargs: ``activation``, ``use_bias``, ``prior``,
            ``kernel_mean_initializer``, ``init_rho``, ``seed``, as for
            :class:`BayesByBackpropDense`, and the base layer's.

    Example:

    >>> net = keras.Sequential([keras.Input((28, 28, 1)),
    ...     bbh_tf.BayesByBackpropConv2D(20, 5, activation="relu"),
    ...     keras.layers.MaxPooling2D(), keras.layers.Flatten(),
    ...     bbh_tf.BayesByBackpropDense(10, activation="softmax")])
    >>> model = bbh_tf.BayesByBackprop(net, num_examples=60000)
    """


@keras.saving.register_keras_serializable(package="bbh_tf")
class BayesByBackpropConv1D(_conv.Conv1DLayer, BayesByBackpropLayer):
    """1-D convolution with a mean-field Gaussian posterior (channels last).

    The 1-D counterpart of :class:`BayesByBackpropConv2D`; ``strides``,
    ``padding`` (also ``"causal"``), ``dilation_rate`` and ``data_format``
    are as for :class:`HyperConv1D`.

    Args:
        filters: Number of output channels, >= 1.
        kernel_size: Integer (or 1-tuple) >= 1.
        **kwargs: ``activation``, ``use_bias``, ``prior``,
            ``kernel_mean_initializer``, ``init_rho``, ``seed``, as for
            :class:`BayesByBackpropDense`, and the base layer's.

    Example:

    >>> layer = bbh_tf.BayesByBackpropConv1D(16, 5, padding="causal")
    >>> layer(tf.zeros((8, 100, 3))).shape
    TensorShape([8, 100, 16])
    """


@keras.saving.register_keras_serializable(package="bbh_tf")
class BayesByBackpropDepthwiseConv2D(_conv.DepthwiseConv2DLayer, BayesByBackpropLayer):
    """Depthwise 2-D convolution with a mean-field Gaussian posterior
    (channels last), as Keras' ``DepthwiseConv2D``.

    Args:
        kernel_size: Integer or pair ``(kh, kw)``.
        depth_multiplier: Filters per input channel, >= 1. Default 1.
        **kwargs: ``strides``, ``padding``, ``dilation_rate``,
            ``data_format`` as for :class:`HyperDepthwiseConv2D`;
            ``activation``, ``use_bias``, ``prior``,
            ``kernel_mean_initializer`` (of the depthwise kernel),
            ``init_rho``, ``seed``, as for :class:`BayesByBackpropDense`;
            the base layer's.

    Example:

    >>> layer = bbh_tf.BayesByBackpropDepthwiseConv2D(3, depth_multiplier=2)
    >>> layer(tf.zeros((8, 28, 28, 4))).shape
    TensorShape([8, 26, 26, 8])
    """
