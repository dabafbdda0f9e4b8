"""``bayesianize``: a trained Keras network made Bayesian, its training kept.

Every ``Dense``, ``Conv1D``, ``Conv2D``, ``DepthwiseConv2D``, ``Embedding``
and ``LSTM`` layer (or ``RNN`` of an ``LSTMCell``) in the chosen range
becomes its hyper counterpart in ``"scale"`` mode (or its Bayes by Backprop
counterpart), all sharing one hypernetwork; every other layer is copied
with its weights. The trained kernel and bias become the point-estimate
kernel ``V`` and bias of the hyper layer, the scales' posterior starts at 1
with a narrow spread (the hypernetwork's output layer starts at zero, each
scale's own ``sigma`` at ``init_stddev``), so at first the predictive mean
is the original network's up to that spread, and training widens the
posterior where the data allow.
"""

import keras
import numpy as np

from bbh_tf import _checks
from bbh_tf.bayes_by_backprop import BayesByBackprop
from bbh_tf.bbb_conv import (
    BayesByBackpropConv1D,
    BayesByBackpropConv2D,
    BayesByBackpropDepthwiseConv2D,
)
from bbh_tf.bbb_layers import BayesByBackpropDense
from bbh_tf.bbb_sequence import BayesByBackpropEmbedding, BayesByBackpropLSTMCell
from bbh_tf.hyper_conv import HyperConv1D, HyperConv2D, HyperDepthwiseConv2D
from bbh_tf.hyper_embedding import HyperEmbedding
from bbh_tf.hyper_recurrent import HyperLSTMCell
from bbh_tf.hypernet import HyperNetwork
from bbh_tf.layers import HyperDense
from bbh_tf.model import BayesByHypernet

_METHODS = ("bbh", "bbb")
# Keras layer -> (hyper counterpart, Bayes by Backprop counterpart), most
# specific first.
_COUNTERPARTS = (
    (keras.layers.Dense, HyperDense, BayesByBackpropDense),
    (keras.layers.Conv1D, HyperConv1D, BayesByBackpropConv1D),
    (keras.layers.Conv2D, HyperConv2D, BayesByBackpropConv2D),
    (
        keras.layers.DepthwiseConv2D,
        HyperDepthwiseConv2D,
        BayesByBackpropDepthwiseConv2D,
    ),
    (keras.layers.Embedding, HyperEmbedding, BayesByBackpropEmbedding),
    (keras.layers.RNN, HyperLSTMCell, BayesByBackpropLSTMCell),
)
_RNN_OPTIONS = ("return_sequences", "return_state", "go_backwards", "unroll")


def _has_weights(layer):
    return bool(layer.weights)


def _counterparts(layer):
    if isinstance(layer, keras.layers.RNN) and not isinstance(
        layer.cell, keras.layers.LSTMCell
    ):
        return None
    for keras_type, hyper, bbb in _COUNTERPARTS:
        if isinstance(layer, keras_type):
            return hyper, bbb
    return None


def _unsupported(layer):
    """Why ``layer`` cannot be converted, or None."""
    if _counterparts(layer) is None:
        return "no Bayesian counterpart"
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        return "a channels_first convolution"
    if getattr(layer, "groups", 1) != 1:
        return "a grouped convolution"
    cell = getattr(layer, "cell", None)
    if cell is not None and (cell.dropout or cell.recurrent_dropout):
        return "an LSTM with dropout (the Bayesian cells have none)"
    if getattr(layer, "stateful", False):
        return "a stateful RNN"
    return None


def _converted(layer, method, hypernet):
    """The Bayesian counterpart of ``layer`` (not built)."""
    hyper, bbb = _counterparts(layer)
    config = layer.get_config()
    options = {"name": layer.name}
    if method == "bbh":
        options.update(hypernet=hypernet, mode="scale")
    if isinstance(layer, keras.layers.Embedding):
        keys = ("input_dim", "output_dim", "mask_zero")
    elif isinstance(layer, keras.layers.RNN):
        cell = layer.cell.get_config()
        keys = ("units", "activation", "recurrent_activation", "use_bias")
        cell_options = {key: cell[key] for key in keys}
        cell_options["unit_forget_bias"] = cell["unit_forget_bias"]
        options.pop("name")
        new_cell = (hyper if method == "bbh" else bbb)(**cell_options, **options)
        rnn = {key: config[key] for key in _RNN_OPTIONS}
        return keras.layers.RNN(new_cell, name=layer.name, **rnn)
    else:
        keys = ("activation", "use_bias", "kernel_size", "strides", "padding")
        keys += ("dilation_rate", "filters", "units", "depth_multiplier")
    options.update({key: config[key] for key in keys if key in config})
    return (hyper if method == "bbh" else bbb)(**options)


def _trained(layer):
    """The trained kernel and bias of ``layer`` (None without a bias)."""
    if isinstance(layer, keras.layers.Embedding):
        return layer.embeddings.numpy(), None
    if isinstance(layer, keras.layers.RNN):
        cell = layer.cell
        kernel = np.concatenate([cell.kernel.numpy(), cell.recurrent_kernel.numpy()])
        return kernel, cell.bias.numpy() if cell.use_bias else None
    return layer.kernel.numpy(), layer.bias.numpy() if layer.use_bias else None


def _copy_trained(source, target):
    """The trained kernel and bias of ``source`` as ``target``'s starting
    point: the kernel ``V`` and bias (hyper layer) or the posterior means
    (Bayes by Backprop)."""
    kernel, bias = _trained(source)
    target = getattr(target, "cell", target)
    if hasattr(target, "direction"):
        target.direction.assign(kernel)
        if bias is not None:
            target.bias.assign(bias)
        return
    target.kernel_mu.assign(kernel)
    if bias is not None:
        target.bias_mu.assign(bias)


def bayesianize(
    model,
    num_examples,
    last_layers=None,
    method="bbh",
    hypernet=None,
    **model_kwargs,
):
    """A Bayesian copy of a trained Keras ``model``, its training kept.

    Args:
        model: A built ``keras.Sequential`` or functional model.
        num_examples: Size of the training set (the KL's weight per example).
        last_layers: Convert only the last ``k`` layers that have weights
            (a last-layer BNN with ``1``); None (default): all of them.
        method: ``"bbh"`` (default): hyper layers in ``"scale"`` mode
            sharing one hypernetwork, wrapped in ``BayesByHypernet``;
            ``"bbb"``: Bayes by Backprop layers in ``BayesByBackprop``.
        hypernet: The ``HyperNetwork`` to share (``"bbh"``); default
            ``HyperNetwork()``.
        **model_kwargs: For ``BayesByHypernet`` / ``BayesByBackprop``
            (``prior``, ``kl_estimator``, ``kl_weight``...).

    Returns:
        The model, built and ready to ``compile`` and ``fit``. Its layers
        keep the original's names.

    Raises:
        ValueError: a layer with weights in the converted range has no
            Bayesian counterpart (its name is given), or the arguments are
            out of range.

    Example:

    >>> trained = keras.Sequential([...])      # fitted as usual
    >>> model = bbh_tf.bayesianize(trained, num_examples=60000)
    >>> model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    >>> mean, std = model.predict_distribution(x_test)   # at once
    """
    if not isinstance(model, keras.Model) or not model.built:
        raise TypeError(
            "`model` must be a built keras.Sequential or functional model, got "
            f"{type(model).__name__}."
        )
    if method not in _METHODS:
        raise ValueError(f"`method` must be one of {_METHODS}, got {method!r}.")
    num_examples = _checks.positive_int("num_examples", num_examples)
    weighted = [layer for layer in model.layers if _has_weights(layer)]
    if last_layers is not None:
        last_layers = _checks.positive_int("last_layers", last_layers)
        if last_layers > len(weighted):
            raise ValueError(
                f"`last_layers` must be at most the {len(weighted)} layers "
                f"with weights, got {last_layers}."
            )
        weighted = weighted[-last_layers:]
    for layer in weighted:
        reason = _unsupported(layer)
        if reason is not None:
            raise ValueError(
                f"Layer {layer.name!r} ({type(layer).__name__}) has weights "
                f"but cannot be converted: {reason}. Dense, Conv1D, Conv2D, "
                "DepthwiseConv2D, Embedding and LSTM are. Choose "
                "`last_layers` to leave it out."
            )
    chosen = {id(layer) for layer in weighted}
    if method == "bbh":
        hypernet = hypernet if hypernet is not None else HyperNetwork()
        # The hypernetwork's output starts at zero: the scales start at
        # their means (1) with only their own small sigma.
        hypernet.build()
        for variable in hypernet.output_layer.weights:
            variable.assign(np.zeros(variable.shape, variable.dtype))
    pairs = []

    def clone(layer):
        if id(layer) in chosen:
            new = _converted(layer, method, hypernet)
        else:
            new = layer.__class__.from_config(layer.get_config())
        pairs.append((layer, new))
        return new

    network = keras.models.clone_model(model, clone_function=clone)
    for source, target in pairs:
        if id(source) in chosen:
            _copy_trained(source, target)
        elif getattr(source, "weights", None):
            # (clone_model also hands over operations such as a mask's
            # NotEqual, which have no weights.)
            target.set_weights(source.get_weights())
    wrapper = BayesByHypernet if method == "bbh" else BayesByBackprop
    converted = wrapper(network, num_examples=num_examples, **model_kwargs)
    converted.build((None,) + tuple(model.input_shape[1:]))
    return converted
