"""2-D convolution arguments and ops shared by the convolutional layers.

``HyperConv2D`` and ``BayesByBackpropConv2D`` take Keras ``Conv2D``'s
spatial arguments; this module checks them once and runs the convolution
(channels last only).
"""

import collections
import math
import numbers

import keras
import tensorflow as tf

from bbh_tf import _checks

_PADDINGS = ("valid", "same")


class ConvSpec(
    collections.namedtuple(
        "ConvSpec", ["kernel_size", "strides", "padding", "dilation_rate"]
    )
):
    """Checked ``kernel_size``, ``strides``, ``dilation_rate`` (int pairs)
    and ``padding`` (``"valid"`` or ``"same"``)."""

    @classmethod
    def checked(cls, kernel_size, strides, padding, dilation_rate, data_format):
        if data_format not in (None, "channels_last"):
            raise ValueError(
                "`data_format` must be 'channels_last' (inputs of shape "
                f"(batch, height, width, channels)), got {data_format!r}."
            )
        if not isinstance(padding, str) or padding.lower() not in _PADDINGS:
            raise ValueError(f"`padding` must be one of {_PADDINGS}, got {padding!r}.")
        spec = cls(
            _int_pair("kernel_size", kernel_size),
            _int_pair("strides", strides),
            padding.lower(),
            _int_pair("dilation_rate", dilation_rate),
        )
        if max(spec.strides) > 1 and max(spec.dilation_rate) > 1:
            raise ValueError(
                "`strides` > 1 and `dilation_rate` > 1 cannot be combined, got "
                f"strides={spec.strides}, dilation_rate={spec.dilation_rate}."
            )
        return spec

    def config(self):
        return {
            "kernel_size": list(self.kernel_size),
            "strides": list(self.strides),
            "padding": self.padding,
            "dilation_rate": list(self.dilation_rate),
        }

    def check_input(self, layer_name, input_shape):
        """The input channels of a ``(batch, height, width, channels)`` shape."""
        if len(input_shape) != 4:
            raise ValueError(
                f"{layer_name} expects inputs of shape (batch, height, width, "
                f"channels), got {tuple(input_shape)}."
            )
        return _checks.known_last_dim(layer_name, input_shape)

    def conv(self, inputs, kernel):
        """``inputs`` ``(batch, h, w, c)`` convolved with ``kernel``
        ``(kh, kw, c, filters)``."""
        return tf.nn.conv2d(
            inputs,
            kernel,
            strides=self.strides,
            padding=self.padding.upper(),
            dilations=self.dilation_rate,
        )

    def patches(self, inputs):
        """The receptive field of every output position:
        ``(batch, out_h, out_w, kh * kw * c)``, flattened in the order of a
        ``(kh, kw, c)`` kernel, so ``patches @ kernel.reshape(-1, filters)``
        equals :meth:`conv`."""
        return tf.image.extract_patches(
            inputs,
            sizes=(1,) + self.kernel_size + (1,),
            strides=(1,) + self.strides + (1,),
            rates=(1,) + self.dilation_rate + (1,),
            padding=self.padding.upper(),
        )

    def output_shape(self, input_shape, filters):
        spatial = [
            _output_length(n, k, s, d, self.padding)
            for n, k, s, d in zip(
                input_shape[1:3], self.kernel_size, self.strides, self.dilation_rate
            )
        ]
        return (input_shape[0], *spatial, filters)


def _int_pair(name, value):
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (value, value)
    try:
        pair = tuple(value)
    except TypeError:
        pair = None
    if pair is None or len(pair) != 2:
        raise ValueError(
            f"`{name}` must be an integer >= 1 or a pair of them, got {value!r}."
        )
    return tuple(_checks.positive_int(name, v) for v in pair)


def _output_length(length, kernel, stride, dilation, padding):
    if length is None:
        return None
    if padding == "same":
        return math.ceil(length / stride)
    span = dilation * (kernel - 1) + 1
    return max(0, (length - span) // stride + 1)


class Conv2DLayer:
    """Mixin of a 2-D convolutional layer with a ``kernel_shape`` kernel.

    Keeps ``filters`` and the checked :class:`ConvSpec`, and gives the
    layer's ``_linear`` (the convolution), output shape and config. The
    layer calls :meth:`_init_conv` in ``__init__`` and sets
    ``self.kernel_shape = self._conv_kernel_shape(input_shape)`` in ``build``.
    """

    def _init_conv(
        self, filters, kernel_size, strides, padding, dilation_rate, data_format
    ):
        self.filters = _checks.positive_int("filters", filters)
        self.spec = ConvSpec.checked(
            kernel_size, strides, padding, dilation_rate, data_format
        )
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def _conv_kernel_shape(self, input_shape):
        channels = self.spec.check_input(self.name, input_shape)
        self.input_spec = keras.layers.InputSpec(ndim=4, axes={-1: channels})
        return self.spec.kernel_size + (channels, self.filters)

    def _linear(self, inputs, kernel):
        return self.spec.conv(inputs, kernel)

    def compute_output_shape(self, input_shape):
        return self.spec.output_shape(input_shape, self.filters)

    def _conv_config(self):
        return {"filters": self.filters, **self.spec.config()}
