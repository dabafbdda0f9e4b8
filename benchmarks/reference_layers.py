"""Plain layers that price what a Bayesian method's structure costs, for the
benchmarks: deterministic weight normalisation (Bayes by Hypernet's
``weight_norm`` layers without the hypernetwork), and two products with
twice the trained weights (Bayes by Backprop's local reparameterisation
without its noise, softplus or KL term)."""

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


class TwoProductDense(keras.layers.Dense):
    """``x @ K + x^2 @ L + b``: the two products of a local
    reparameterisation layer (mean and variance) and its two trained
    kernels, nothing else: the least such a layer can cost."""

    def build(self, input_shape):
        super().build(input_shape)
        self.second_kernel = self.add_weight(
            name="second_kernel", shape=self.kernel.shape, initializer="zeros"
        )

    def call(self, inputs):
        outputs = tf.matmul(inputs, self.kernel) + tf.matmul(
            tf.square(inputs), self.second_kernel
        )
        return self.activation(outputs + self.bias)
