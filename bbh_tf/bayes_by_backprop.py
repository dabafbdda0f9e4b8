"""Bayes by Backprop (Blundell et al., 2015): mean-field Gaussian
variational inference, the baseline Bayes by Hypernet extends.

:class:`BayesByBackprop` trains a network of Bayes by Backprop layers
(``bbh_tf.bbb_layers``, ``bbb_conv``, ``bbb_sequence``) on ``data loss +
kl_weight * KL / N`` with the Monte Carlo KL of the paper.
"""

import keras
import tensorflow as tf

from bbh_tf.bbb_layers import BayesByBackpropLayer
from bbh_tf.variational import VariationalModel

__all__ = ["BayesByBackprop"]


@keras.saving.register_keras_serializable(package="bbh_tf")
class BayesByBackprop(VariationalModel):
    """Bayes by Backprop: mean-field Gaussian VI (Blundell et al., 2015).

    The network holds Bayes by Backprop layers (``BayesByBackpropDense``,
    ``...Conv1D``, ``...Conv2D``, ``...DepthwiseConv2D``, ``...Embedding``,
    ``...LSTMCell``; it may hold ordinary layers, trained as point
    estimates). Each training step
    minimises ``loss = data_loss + kl_weight * KL / num_examples``, where
    ``data_loss`` is the compiled loss (mean per example, one weight sample
    per example through the local reparameterisation trick) and ``KL`` sums
    every Bayesian layer's :meth:`~BayesByBackpropDense.monte_carlo_kl`.
    ``fit`` logs ``loss``, ``nll`` (the data loss), ``kl`` (in nats, for the
    whole training set) and the compiled metrics.

    Calling the model (``predict``, ``evaluate``) draws one weight sample
    per example; ``predict_distribution`` averages over many.

    Args:
        network: A Keras model or layer with one input, containing Bayes
            by Backprop layers.
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
        """The Bayes by Backprop layers of ``network``."""
        return self._layers_of_type(BayesByBackpropLayer)

    def _build_extra(self, input_shape):
        self._require_layers(
            self.bayesian_layers,
            "Bayes by Backprop layers (BayesByBackpropDense, ...): there is "
            "no posterior to learn",
        )

    def monte_carlo_kl(self):
        """One-sample estimate of ``KL(q || p)`` over all Bayesian layers."""
        return tf.add_n([layer.monte_carlo_kl() for layer in self.bayesian_layers])

    def _forward_and_kl(self, x, training):
        return self(x, training=training), self.monte_carlo_kl()
