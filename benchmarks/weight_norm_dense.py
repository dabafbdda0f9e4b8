"""A deterministic weight-normalised ``Dense`` for the benchmarks: the cost
of weight normalisation alone, without a hypernetwork."""

import keras
import tensorflow as tf

from bbh_tf.layers import column_norms


class WeightNormDense(keras.layers.Dense):
    """``Dense`` with ``kernel = g * v / ||v||`` per output unit (the norm as
    hyper layers compute it)."""

    def build(self, input_shape):
        super().build(input_shape)
        self.scale = self.add_weight(
            name="scale", shape=(self.units,), initializer="ones"
        )

    def call(self, inputs):
        outputs = tf.matmul(inputs, self.kernel) * (
            self.scale / column_norms(self.kernel)
        )
        return self.activation(outputs + self.bias)
