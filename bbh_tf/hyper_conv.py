"""Convolutions whose weights a shared :class:`HyperNetwork` generates:
``HyperConv1D``, ``HyperConv2D`` and ``HyperDepthwiseConv2D`` (channels
last), with the modes of :class:`~bbh_tf.HyperDense`."""

import keras
import tensorflow as tf

from bbh_tf import _conv
from bbh_tf.layers import LinearHyperLayer, repeat_for_draws

__all__ = ["HyperConv1D", "HyperConv2D", "HyperDepthwiseConv2D"]


@keras.saving.register_keras_serializable(package="bbh_tf")
class HyperConv2D(_conv.Conv2DLayer, LinearHyperLayer):
    """2-D convolution with hypernetwork-generated weights (channels last).

    The modes are those of :class:`HyperDense`. ``mode="scale"`` (default):
    filter ``f`` is ``g_f * V_f``, ``mode="weight_norm"``: ``g_f * V_f /
    ||V_f||`` with the norm over the filter's ``(kh, kw, in_channels)``
    entries; the scales ``g`` (one per output filter) are generated, the
    kernel ``V`` and the bias are point estimates, and the convolution with
    ``V`` runs once for all draws. ``mode="full"``: kernel and bias are
    generated (``kh * kw * in_channels * filters + filters`` values); each
    draw's kernel is applied to the image patches of its rows in one batched
    matrix product.

    Args:
        filters: Number of output channels, >= 1.
        kernel_size: Integer or pair ``(kh, kw)``.
        strides: Integer or pair. Default 1.
        padding: ``"valid"`` (default) or ``"same"``.
        dilation_rate: Integer or pair. Default 1 (not with strides > 1).
        data_format: ``"channels_last"`` (or None); the only one supported.
        **kwargs: ``hypernet``, ``mode``, ``activation``, ``use_bias``,
            ``kernel_initializer``, ``bias_initializer``,
            ``kernel_regularizer``, ``bias_regularizer``, as for
            :class:`HyperDense`, and the base layer's (``name``, ``dtype``).

    Input shape ``(batch, height, width, channels)``, output
    ``(batch, new_height, new_width, filters)``.

    Example:

    >>> hypernet = bbh_tf.HyperNetwork()
    >>> net = keras.Sequential([
    ...     keras.Input((28, 28, 1)),
    ...     bbh_tf.HyperConv2D(20, 5, activation="relu", hypernet=hypernet),
    ...     keras.layers.MaxPooling2D(),
    ...     keras.layers.Flatten(),
    ...     bbh_tf.HyperDense(10, activation="softmax", hypernet=hypernet),
    ... ])
    >>> net(x).shape
    (batch, 10)
    """


@keras.saving.register_keras_serializable(package="bbh_tf")
class HyperConv1D(_conv.Conv1DLayer, LinearHyperLayer):
    """1-D convolution with hypernetwork-generated weights (channels last),
    for sequences and signals.

    The modes are those of :class:`HyperDense`, as for :class:`HyperConv2D`:
    ``"scale"`` (default) and ``"weight_norm"`` generate one scale per
    filter, ``"full"`` the whole kernel ``(k, channels, filters)`` and bias.

    Args:
        filters: Number of output channels, >= 1.
        kernel_size: Integer (or 1-tuple) >= 1.
        strides: Integer >= 1. Default 1.
        padding: ``"valid"`` (default), ``"same"`` or ``"causal"``.
        dilation_rate: Integer >= 1. Default 1 (not with strides > 1).
        data_format: ``"channels_last"`` (or None); the only one supported.
        **kwargs: ``hypernet``, ``mode``, ``activation``, ``use_bias``, the
            initializers and regularizers, as for :class:`HyperDense`, and
            the base layer's (``name``, ``dtype``).

    Input shape ``(batch, steps, channels)``, output
    ``(batch, new_steps, filters)``.

    Example:

    >>> net = keras.Sequential([
    ...     keras.Input((100, 3)),
    ...     bbh_tf.HyperConv1D(16, 5, activation="relu"),
    ...     keras.layers.GlobalAveragePooling1D(),
    ...     bbh_tf.HyperDense(1),
    ... ])
    >>> model = bbh_tf.BayesByHypernet(net, num_examples=1000)
    """


@keras.saving.register_keras_serializable(package="bbh_tf")
class HyperDepthwiseConv2D(_conv.DepthwiseConv2DLayer, LinearHyperLayer):
    """Depthwise 2-D convolution with hypernetwork-generated weights
    (channels last), as in Keras' ``DepthwiseConv2D``: every input channel
    gets its own ``depth_multiplier`` filters.

    The modes are those of :class:`HyperDense`: ``"scale"`` (default) and
    ``"weight_norm"`` generate one scale per output channel (``channels *
    depth_multiplier`` of them; the norm is over each filter's ``(kh, kw)``
    entries), ``"full"`` the whole kernel and bias; each draw's kernel then
    runs in one depthwise convolution over the draws stacked as channels.

    Args:
        kernel_size: Integer or pair ``(kh, kw)``.
        depth_multiplier: Filters per input channel, >= 1. Default 1.
        **kwargs: ``strides`` (an integer or a pair of equal integers,
            default 1), ``padding`` (``"valid"``, default, or ``"same"``),
            ``dilation_rate`` (default 1), ``data_format``
            (``"channels_last"`` only); ``hypernet``, ``mode``,
            ``activation``, ``use_bias``, the initializers and regularizers
            (``kernel_*`` for the depthwise kernel), as for
            :class:`HyperDense`; the base layer's (``name``, ``dtype``).

    Input shape ``(batch, height, width, channels)``, output
    ``(batch, new_height, new_width, channels * depth_multiplier)``.

    Example:

    >>> layer = bbh_tf.HyperDepthwiseConv2D(3, depth_multiplier=2)
    >>> layer(tf.zeros((8, 28, 28, 4))).shape
    TensorShape([8, 26, 26, 8])
    """

    def _per_draw(self, inputs, kernel, bias, shared):
        # A depthwise convolution treats channels independently, so the
        # draws stacked along the channels (each with its own kernel) run
        # in one convolution: (S, G, h, w, c) -> (G, h, w, S * c).
        draws = tf.shape(kernel)[0]
        height, width, channels, multiplier = self.kernel_shape
        if shared:
            inputs = repeat_for_draws(inputs, draws)
        grouped = tf.reshape(inputs, tf.concat([[draws, -1], tf.shape(inputs)[1:]], 0))
        stacked = tf.transpose(grouped, [1, 2, 3, 0, 4])
        stacked = tf.reshape(stacked, tf.concat([tf.shape(stacked)[:3], [-1]], 0))
        kernels = tf.reshape(kernel, (-1, height, width, channels, multiplier))
        kernels = tf.reshape(
            tf.transpose(kernels, [1, 2, 0, 3, 4]), (height, width, -1, multiplier)
        )
        outputs = self._linear(stacked, kernels)
        # (G, h', w', S * units) -> (S, G, h', w', units)
        spatial = tf.shape(outputs)[:3]
        outputs = tf.reshape(
            outputs, tf.concat([spatial, [draws, self.output_units]], 0)
        )
        outputs = tf.transpose(outputs, [3, 0, 1, 2, 4])
        if bias is not None:
            outputs += bias[:, None, None, None, :]
        return tf.reshape(
            outputs,
            tf.concat([[-1], spatial[1:], [self.output_units]], 0),
        )
