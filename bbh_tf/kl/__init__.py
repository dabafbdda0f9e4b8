"""KL estimators for the generated values' posterior ``q`` against the prior.

Pick one with ``BayesByHypernet(..., kl_estimator=...)``, by name or as an
instance:

* ``"semi_implicit"`` (default): :class:`SemiImplicitKL`, the semi-implicit
  bound with extra noise draws; an upper bound of the KL, no discriminator.
* ``"nearest_neighbour"``: :class:`NearestNeighbourKL`, a ``k``-NN entropy
  estimate from the draws plus the prior's exact log-density.
* ``"adversarial"``: :class:`AdversarialKL`, the paper's prior-contrastive
  discriminator (per-position, pooled or joint).

Each is a small serializable object; ``docs/method.md`` says what each
estimates and when to pick it.
"""

import keras

from bbh_tf.kl.adversarial import AdversarialKL
from bbh_tf.kl.base import KLEstimate, KLEstimator
from bbh_tf.kl.nearest_neighbour import NearestNeighbourKL, knn_entropy
from bbh_tf.kl.semi_implicit import SemiImplicitKL

ESTIMATORS = {
    "semi_implicit": SemiImplicitKL,
    "nearest_neighbour": NearestNeighbourKL,
    "adversarial": AdversarialKL,
}


def get(identifier):
    """A ``KLEstimator`` from a name in ``ESTIMATORS``, a serialized config or
    an instance (returned as it is)."""
    if isinstance(identifier, KLEstimator):
        return identifier
    if isinstance(identifier, str) and identifier in ESTIMATORS:
        return ESTIMATORS[identifier]()
    if isinstance(identifier, dict):
        estimator = keras.saving.deserialize_keras_object(identifier)
        if isinstance(estimator, KLEstimator):
            return estimator
    raise ValueError(
        f"`kl_estimator` must be one of {sorted(ESTIMATORS)} or a "
        f"bbh_tf.kl.KLEstimator, got {identifier!r}."
    )


__all__ = [
    "AdversarialKL",
    "ESTIMATORS",
    "KLEstimate",
    "KLEstimator",
    "NearestNeighbourKL",
    "SemiImplicitKL",
    "get",
    "knn_entropy",
]
