"""``KernelLayer``: what every linear Bayesian layer (hyper or Bayes by
Backprop: dense, convolutions, embeddings, LSTM cells) says of its kernel,
and ``DenseLayer``, the dense map both families share."""

import keras

from bbh_tf import _checks


class KernelLayer:
    """Mixin of a layer whose main weight is a kernel of ``kernel_shape``
    (set in ``build``) with ``output_units`` output channels: the length
    of its bias, and of a hyper layer's generated scales."""

    @property
    def output_units(self):
        return self.kernel_shape[-1]


class DenseLayer(KernelLayer):
    """Mixin of a densely connected layer: ``units``, the kernel
    ``(input_dim, units)`` on the last axis of inputs ``(batch, ...,
    input_dim)``, output shape and config. The layer's base class
    (``LinearHyperLayer`` or ``BayesByBackpropLayer``) gives
    ``_build_parameters`` and the rest."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = _checks.positive_int("units", units)
        self.input_spec = keras.layers.InputSpec(min_ndim=2)

    def build(self, input_shape):
        self.input_dim = _checks.known_last_dim(self.name, input_shape)
        self.kernel_shape = (self.input_dim, self.units)
        self._build_parameters()
        self.input_spec = keras.layers.InputSpec(min_ndim=2, axes={-1: self.input_dim})

    def _linear(self, inputs, kernel):
        return keras.ops.matmul(inputs, kernel)

    def _features(self, inputs):
        return inputs

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        return {**super().get_config(), "units": self.units}
