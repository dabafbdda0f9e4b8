"""Convolution arguments and ops shared by the convolutional layers.

The hyper and Bayes by Backprop convolutions take the spatial arguments of
Keras' ``Conv1D``, ``Conv2D`` and ``DepthwiseConv2D``; this module checks
them once and runs the convolution (channels last only). A 1-D convolution
is a 2-D one over a height of 1.
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
    """Mixin of a 2-D convolutional layer: the arguments of Keras' ``Conv2D``
    (checked once, in :class:`ConvSpec`), ``build``, the convolution as the
    layer's ``_linear``, output shape and config. The layer's base class
    (``LinearHyperLayer`` or ``BayesByBackpropLayer``) gives
    ``_build_parameters`` and the rest of the config."""

    ndim = 4
    input_form = "(batch, height, width, channels)"

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
        self.filters = (
            None if filters is None else _checks.positive_int("filters", filters)
        )
        self.spec = self._checked_spec(
            kernel_size, strides, padding, dilation_rate, data_format
        )
        self.input_spec = keras.layers.InputSpec(ndim=self.ndim)

    def _checked_spec(self, kernel_size, strides, padding, dilation_rate, data_format):
        return ConvSpec.checked(
            kernel_size, strides, padding, dilation_rate, data_format
        )

    def build(self, input_shape):
        if len(input_shape) != self.ndim:
            raise ValueError(
                f"{self.name} expects inputs of shape {self.input_form}, got "
                f"{tuple(input_shape)}."
            )
        channels = _checks.known_last_dim(self.name, input_shape)
        self.input_spec = keras.layers.InputSpec(ndim=self.ndim, axes={-1: channels})
        self.kernel_shape = self._kernel_shape(channels)
        self._build_parameters()

    def _kernel_shape(self, channels):
        return self.spec.kernel_size + (channels, self.filters)

    def _linear(self, inputs, kernel):
        return self.spec.conv(inputs, kernel)

    def _patches(self, inputs):
        return self.spec.patches(inputs)

    def _features(self, inputs):
        # A hyper layer's full mode: the image patches are the rows that
        # each draw's flattened kernel multiplies.
        return self._patches(inputs)

    def compute_output_shape(self, input_shape):
        return self.spec.output_shape(input_shape, self.filters)

    def _conv_config(self):
        return {"filters": self.filters, **self.spec.config()}

    def get_config(self):
        return {**super().get_config(), **self._conv_config()}


def _single_int(name, value):
    """An int >= 1 given as an int or a 1-tuple (Keras' ``Conv1D`` form)."""
    if isinstance(value, (tuple, list)) and len(value) == 1:
        value = value[0]
    return _checks.positive_int(name, value)


class Conv1DLayer(Conv2DLayer):
    """Mixin of a 1-D convolutional layer, inputs ``(batch, steps, channels)``,
    kernel ``(k, channels, filters)``: a 2-D convolution over a height of 1.
    ``padding`` may also be ``"causal"`` (the output at step ``t`` sees
    steps ``<= t`` only)."""

    ndim = 3
    input_form = "(batch, steps, channels)"

    def _checked_spec(self, kernel_size, strides, padding, dilation_rate, data_format):
        self.causal = isinstance(padding, str) and padding.lower() == "causal"
        return ConvSpec.checked(
            (1, _single_int("kernel_size", kernel_size)),
            (1, _single_int("strides", strides)),
            "valid" if self.causal else padding,
            (1, _single_int("dilation_rate", dilation_rate)),
            data_format,
        )

    def _kernel_shape(self, channels):
        return (self.spec.kernel_size[1], channels, self.filters)

    def _as_image(self, inputs):
        """``(batch, steps, c)`` as ``(batch, 1, steps, c)``, left-padded
        for a causal convolution."""
        if self.causal:
            span = self.spec.dilation_rate[1] * (self.spec.kernel_size[1] - 1)
            inputs = tf.pad(inputs, [[0, 0], [span, 0], [0, 0]])
        return inputs[:, None]

    def _linear(self, inputs, kernel):
        return self.spec.conv(self._as_image(inputs), kernel[None])[:, 0]

    def _patches(self, inputs):
        return self.spec.patches(self._as_image(inputs))[:, 0]

    def compute_output_shape(self, input_shape):
        steps = input_shape[1]
        if self.causal:
            steps = None if steps is None else -(-steps // self.spec.strides[1])
        else:
            steps = self.spec.output_shape((None, 1, steps), 1)[2]
        return (input_shape[0], steps, self.filters)

    def _conv_config(self):
        return {
            "filters": self.filters,
            "kernel_size": [self.spec.kernel_size[1]],
            "strides": [self.spec.strides[1]],
            "padding": "causal" if self.causal else self.spec.padding,
            "dilation_rate": [self.spec.dilation_rate[1]],
        }


class DepthwiseConv2DLayer(Conv2DLayer):
    """Mixin of a depthwise 2-D convolution: every input channel convolved
    with its own ``depth_multiplier`` filters, kernel ``(kh, kw, channels,
    depth_multiplier)``, output channel ``c * depth_multiplier + m``. Takes
    ``kernel_size`` positionally and Keras' other arguments by keyword."""

    def __init__(self, kernel_size, depth_multiplier=1, **kwargs):
        self.depth_multiplier = _checks.positive_int(
            "depth_multiplier", depth_multiplier
        )
        super().__init__(None, kernel_size, **kwargs)
        if self.spec.strides[0] != self.spec.strides[1]:
            raise ValueError(
                "`strides` of a depthwise convolution must be equal along "
                f"height and width, got {self.spec.strides}."
            )

    def _kernel_shape(self, channels):
        return self.spec.kernel_size + (channels, self.depth_multiplier)

    @property
    def output_units(self):
        return self.kernel_shape[2] * self.kernel_shape[3]

    def _linear(self, inputs, kernel):
        return tf.nn.depthwise_conv2d(
            inputs,
            kernel,
            strides=(1,) + self.spec.strides + (1,),
            padding=self.spec.padding.upper(),
            dilations=self.spec.dilation_rate,
        )

    def compute_output_shape(self, input_shape):
        channels = input_shape[-1]
        units = None if channels is None else channels * self.depth_multiplier
        return self.spec.output_shape(input_shape, units)

    def _conv_config(self):
        return {"depth_multiplier": self.depth_multiplier, **self.spec.config()}
