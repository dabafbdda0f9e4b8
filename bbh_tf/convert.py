"""``bayesianize``: a trained Keras network made Bayesian, its training kept.

Every ``Dense`` and ``Conv2D`` layer in the chosen range becomes its hyper
counterpart in ``"scale"`` mode (or its Bayes by Backprop counterpart), all
sharing one hypernetwork; every other layer is copied with its weights. The
trained kernel and bias become the point-estimate kernel ``V`` and bias of
the hyper layer, the scales' posterior starts at 1 with a narrow spread (the
hypernetwork's output layer starts at zero, each scale's own ``sigma`` at
``init_stddev``), so at first the predictive mean is the original network's
up to that spread, and training widens the posterior where the data allow.
"""

import keras
import numpy as np

from bbh_tf import _checks
from bbh_tf.bayes_by_backprop import (
    BayesByBackprop,
    BayesByBackpropConv2D,
    BayesByBackpropDense,
)
from bbh_tf.hypernet import HyperNetwork
from bbh_tf.layers import HyperConv2D, HyperDense
from bbh_tf.model import BayesByHypernet

_CONVERTIBLE = (keras.layers.Dense, keras.layers.Conv2D)
_METHODS = ("bbh", "bbb")


def _has_weights(layer):
    return bool(layer.weights)


def _converted(layer, method, hypernet):
    """The Bayesian counterpart of ``layer`` (not built)."""
    common = {
        "activation": keras.activations.serialize(layer.activation),
        "use_bias": layer.use_bias,
        "name": layer.name,
    }
    if isinstance(layer, keras.layers.Dense):
        if method == "bbb":
            return BayesByBackpropDense(layer.units, **common)
        return HyperDense(layer.units, hypernet=hypernet, mode="scale", **common)
    conv = {
        "filters": layer.filters,
        "kernel_size": layer.kernel_size,
        "strides": layer.strides,
        "padding": layer.padding,
        "dilation_rate": layer.dilation_rate,
    }
    if layer.data_format != "channels_last":
        raise ValueError(
            f"Layer {layer.name!r}: only channels_last convolutions can be converted."
        )
    if method == "bbb":
        return BayesByBackpropConv2D(**conv, **common)
    return HyperConv2D(**conv, hypernet=hypernet, mode="scale", **common)


def _copy_trained(source, target):
    """The trained kernel and bias of ``source`` as ``target``'s starting
    point: the kernel ``V`` and bias (hyper layer) or the posterior means
    (Bayes by Backprop)."""
    kernel = source.kernel.numpy()
    bias = source.bias.numpy() if source.use_bias else None
    if isinstance(target, (HyperDense, HyperConv2D)):
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
        ValueError: a layer with weights in the converted range is neither
            ``Dense`` nor ``Conv2D`` (its name is given), or the arguments
            are out of range.

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
        if not isinstance(layer, _CONVERTIBLE):
            raise ValueError(
                f"Layer {layer.name!r} ({type(layer).__name__}) has weights "
                "but no Bayesian counterpart: only Dense and Conv2D are "
                "converted. Choose `last_layers` to leave it out."
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
        elif source.weights:
            target.set_weights(source.get_weights())
    wrapper = BayesByHypernet if method == "bbh" else BayesByBackprop
    converted = wrapper(network, num_examples=num_examples, **model_kwargs)
    converted.build((None,) + tuple(model.input_shape[1:]))
    return converted
