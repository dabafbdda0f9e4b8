"""What every KL estimator shares: its interface and the value it returns."""

import collections

import keras

# ``kl``: the estimate of KL(q || p) in nats (a scalar the model's gradient
# flows through); ``loss``: the estimator's own training loss, for
# estimators with weights (None otherwise); ``logs``: scalars to log, by name.
KLEstimate = collections.namedtuple("KLEstimate", ["kl", "loss", "logs"])


class KLEstimator(keras.layers.Layer):
    """Base class: estimates ``KL(q || p)`` of a model's generated values.

    ``BayesByHypernet`` hands it, every step, the hyper-layer groups
    (``bbh_tf.posterior.HyperGroup``), that step's draws of each group and
    the prior. A subclass gives :meth:`estimate`; one with weights of its own
    (the adversarial estimator's discriminator) returns their loss too, and
    the model minimises it with ``compile``'s ``discriminator_optimizer``.

    Class attributes:
        log_names: Names of the scalars :meth:`estimate` logs besides ``kl``.
        needs_density: Whether it needs ``q(w | eps)`` (a semi-implicit
            hypernetwork, ``HyperNetwork(semi_implicit=True)``).
        has_own_weights: Whether it trains weights of its own with
            ``discriminator_optimizer`` (whose learning rate then follows
            the model optimizer's under Keras' learning-rate callbacks).
    """

    log_names = ()
    needs_density = False
    has_own_weights = False

    def setup(self, groups, prior):
        """Check the model's groups and build any weights (once, at build)."""
        if self.needs_density:
            for group in groups:
                if not group.semi_implicit:
                    raise ValueError(
                        f"{type(self).__name__} needs the density of q(w | eps): "
                        "give the hypernetwork semi_implicit=True (the "
                        "default), or use kl_estimator='adversarial' with the "
                        "paper's deterministic generator."
                    )
        self.built = True

    def estimate(self, groups, draws, prior):
        """A ``KLEstimate`` for ``draws`` (one ``Draws`` per group)."""
        raise NotImplementedError

    def before_update(self, groups, prior, optimizer, num_draws):
        """Work before each model update (extra discriminator steps)."""

    def warm_up(self, groups, prior, optimizer, num_draws):
        """One update of the estimator's own weights without the model's;
        returns its loss (estimators without weights have none to train)."""
        raise TypeError(f"{type(self).__name__} has no weights to warm up.")

    def call(self, *args, **kwargs):
        raise TypeError(
            f"{type(self).__name__} is not called on tensors: BayesByHypernet "
            "uses its `estimate` method."
        )
