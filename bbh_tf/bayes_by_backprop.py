"""Bayes by Backprop (Blundell et al., 2015): mean-field Gaussian
variational inference, the baseline Bayes by Hypernet extends.

:class:`BayesByBackprop` trains a network of Bayes by Backprop layers
(``bbh_tf.bbb_layers``, ``bbb_conv``, ``bbb_sequence``) on ``data loss +
kl_weight * KL / N``, the KL a Monte Carlo estimate (the paper's, or the
same with cheaper noise, the default) or the prior's closed form.
"""

import keras
import tensorflow as tf

from bbh_tf.bbb_layers import BayesByBackpropLayer
from bbh_tf.variational import VariationalModel

__all__ = ["BayesByBackprop"]

_KL_ESTIMATES = ("monte_carlo", "independent_monte_carlo", "closed_form")


def _has_closed_form(prior):
    try:
        prior.kl_from_normal(0.0, 1.0)
    except (AttributeError, NotImplementedError):
        return False
    return True


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
    every Bayesian layer's KL term (``kl_estimate``).
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
        kl_estimate: ``"monte_carlo"`` (default): each layer's one-sample
            :meth:`~BayesByBackpropDense.monte_carlo_kl`, unbiased for any
            prior, its noise drawn per kernel row and column (exact standard
            normal for every weight; see the method);
            ``"independent_monte_carlo"``: the same with one independent draw
            per weight, the paper's estimate (a weight-sized draw of normal
            numbers every step); ``"closed_form"``:
            :meth:`~BayesByBackpropDense.closed_form_kl`, no noise, exact for
            a ``GaussianPrior`` and an upper bound for a
            ``ScaleMixturePrior`` (looser by up to a few nats per weight
            where ``sigma`` is near the narrow component's scale).

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

    def __init__(
        self,
        network,
        num_examples=None,
        kl_weight=1.0,
        kl_estimate="monte_carlo",
        **kwargs,
    ):
        super().__init__(
            network, num_examples=num_examples, kl_weight=kl_weight, **kwargs
        )
        if kl_estimate not in _KL_ESTIMATES:
            raise ValueError(
                f"`kl_estimate` must be one of {_KL_ESTIMATES}, got {kl_estimate!r}."
            )
        self.kl_estimate = kl_estimate

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
        if self.kl_estimate == "closed_form":
            for layer in self.bayesian_layers:
                if not _has_closed_form(layer.prior):
                    raise ValueError(
                        f"Layer {layer.name!r}: its prior "
                        f"{type(layer.prior).__name__} has no closed-form KL "
                        "(`kl_from_normal`); use "
                        "BayesByBackprop(..., kl_estimate='monte_carlo')."
                    )

    def closed_form_kl(self):
        """``KL(q || p)`` over all Bayesian layers from the priors' closed
        forms (an upper bound for scale-mixture priors)."""
        return tf.add_n([layer.closed_form_kl() for layer in self.bayesian_layers])

    def monte_carlo_kl(self, independent=False):
        """One-sample estimate of ``KL(q || p)`` over all Bayesian layers
        (``independent``: see the layers' ``monte_carlo_kl``)."""
        return tf.add_n(
            [layer.monte_carlo_kl(independent) for layer in self.bayesian_layers]
        )

    def _forward_and_kl(self, x, training):
        if self.kl_estimate == "closed_form":
            return self(x, training=training), self.closed_form_kl()
        independent = self.kl_estimate == "independent_monte_carlo"
        return self(x, training=training), self.monte_carlo_kl(independent)

    def get_config(self):
        config = super().get_config()
        config["kl_estimate"] = self.kl_estimate
        return config
