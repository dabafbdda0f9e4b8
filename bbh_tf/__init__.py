"""bbh_tf: Bayes by Hypernet for Keras 3 on TensorFlow.

Bayesian neural networks with implicit weight posteriors: hyper layers
(``HyperDense``) draw their weights from a shared ``HyperNetwork``;
``BayesByHypernet`` trains their semi-implicit posterior by variational
inference against a diagonal prior, with a pluggable KL estimator
(``bbh_tf.kl``: the semi-implicit bound, nearest-neighbour entropy, or the
paper's adversarial ``Discriminator``). The baselines
``MaximumLikelihood``, ``MCDropout`` and ``BayesByBackprop`` share its
interface (``fit``, ``predict_distribution``).
"""

import os as _os

# Keras reads its backend once, at its first import: refuse anything else
# early, with a message, instead of failing deep inside a layer.
_backend = _os.environ.get("KERAS_BACKEND", "tensorflow")
if _backend != "tensorflow":
    raise ImportError(
        "bbh_tf needs Keras 3 on the TensorFlow backend, but KERAS_BACKEND="
        f"{_backend!r}. Unset it or set KERAS_BACKEND=tensorflow."
    )

import keras as _keras  # noqa: E402

if _keras.backend.backend() != "tensorflow":
    raise ImportError(
        "bbh_tf needs Keras 3 on the TensorFlow backend, but Keras is using "
        f"{_keras.backend.backend()!r} (see ~/.keras/keras.json or "
        "KERAS_BACKEND). Set KERAS_BACKEND=tensorflow."
    )

from bbh_tf import callbacks, data, kl, metrics  # noqa: E402
from bbh_tf._version import __version__  # noqa: E402
from bbh_tf.baselines import (  # noqa: E402
    BayesByBackprop,
    MaximumLikelihood,
    MCDropout,
)
from bbh_tf.bbb_conv import (  # noqa: E402
    BayesByBackpropConv1D,
    BayesByBackpropConv2D,
    BayesByBackpropDepthwiseConv2D,
)
from bbh_tf.bbb_layers import BayesByBackpropDense  # noqa: E402
from bbh_tf.bbb_sequence import (  # noqa: E402
    BayesByBackpropEmbedding,
    BayesByBackpropLSTMCell,
)
from bbh_tf.convert import bayesianize  # noqa: E402
from bbh_tf.discriminator import (  # noqa: E402
    Discriminator,
    JointDiscriminator,
    discriminator_loss,
)
from bbh_tf.ensemble import DeepEnsemble  # noqa: E402
from bbh_tf.export import export_saved_model  # noqa: E402
from bbh_tf.hyper_conv import (  # noqa: E402
    HyperConv1D,
    HyperConv2D,
    HyperDepthwiseConv2D,
)
from bbh_tf.hyper_embedding import HyperEmbedding  # noqa: E402
from bbh_tf.hyper_recurrent import HyperLSTMCell  # noqa: E402
from bbh_tf.hypernet import HyperNetwork  # noqa: E402
from bbh_tf.injection import injected_values  # noqa: E402
from bbh_tf.layers import HyperDense, HyperLayer  # noqa: E402
from bbh_tf.likelihoods import (  # noqa: E402
    GaussianLikelihood,
    HomoscedasticScale,
    Likelihood,
    StudentTLikelihood,
)
from bbh_tf.model import BayesByHypernet  # noqa: E402
from bbh_tf.prediction import Prediction  # noqa: E402
from bbh_tf.predictive import PredictiveModel  # noqa: E402
from bbh_tf.priors import GaussianPrior, ScaleMixturePrior  # noqa: E402
from bbh_tf.saving import load_model  # noqa: E402

__all__ = [
    "BayesByBackprop",
    "BayesByBackpropConv1D",
    "BayesByBackpropConv2D",
    "BayesByBackpropDense",
    "BayesByBackpropDepthwiseConv2D",
    "BayesByBackpropEmbedding",
    "BayesByBackpropLSTMCell",
    "BayesByHypernet",
    "DeepEnsemble",
    "Discriminator",
    "GaussianLikelihood",
    "GaussianPrior",
    "HomoscedasticScale",
    "HyperConv1D",
    "HyperConv2D",
    "HyperDense",
    "HyperDepthwiseConv2D",
    "HyperEmbedding",
    "HyperLSTMCell",
    "HyperLayer",
    "HyperNetwork",
    "JointDiscriminator",
    "Likelihood",
    "MCDropout",
    "MaximumLikelihood",
    "Prediction",
    "PredictiveModel",
    "ScaleMixturePrior",
    "StudentTLikelihood",
    "__version__",
    "bayesianize",
    "callbacks",
    "data",
    "discriminator_loss",
    "export_saved_model",
    "injected_values",
    "kl",
    "load_model",
    "metrics",
]
