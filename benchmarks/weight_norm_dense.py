"""A deterministic weight-normalised ``Dense`` for the benchmarks: the cost
of weight normalisation alone, without a hypernetwork."""

import keras
import tensorflow as tf


class WeightNormDense(keras.layers.Dense):
    """``Dense`` with ``kernel = g * v / ||v||`` per output unit."""

    def build(self, input_shape):
        super().build(input_shape)
        self.scale = self.add_weight(
            name="scale", shape=(self.units,), initializer="ones"
        )

    def call(self, inputs):
        norm = tf.sqrt(tf.reduce_sum(tf.square(self.kernel), axis=0) + 1e-12)
        outputs = tf.matmul(inputs, self.kernel) * (self.scale / norm)
        return self.activation(outputs + self.bias)
