"""SavedModel export for serving: predictive mean and uncertainty per call.

The exported ``serving_default`` signature takes a float32 batch and returns
``{"mean", "std"}`` over ``num_samples`` weight draws, plus ``"entropy"`` (of
the mean prediction) and ``"mutual_information"`` (entropy minus the mean
per-draw entropy, the epistemic part) for classifiers, and ``"finite_input"``
(one bool per row). A row with a NaN or infinite input gets NaN outputs and
``finite_input = False``; the other rows are unaffected. A batch of another
shape than the model's input fails with an ``InvalidArgumentError`` naming
``inputs`` and the expected shape. It needs neither bbh_tf nor Keras to
load: ``tf.saved_model.load(path)`` is enough.
"""

import keras
import tensorflow as tf

from bbh_tf import _checks
from bbh_tf.posterior import GroupNoise

_EPSILON = 1e-12


def _fresh_seed():
    # A stateless seed from the clock and a stateful draw: fresh on every
    # call and in every process, even if a global seed was set before export
    # (which would otherwise freeze the op seeds into the graph).
    clock = tf.cast(tf.math.floormod(tf.timestamp() * 1e6, 2.0**31), tf.int32)
    counter = tf.random.uniform([], maxval=2**31 - 1, dtype=tf.int32)
    return tf.stack([clock, counter])


def _entropy(probs, axis=-1):
    return -tf.reduce_sum(probs * tf.math.log(probs + _EPSILON), axis=axis)


def _is_classifier(model):
    layers = getattr(model.network, "layers", None)
    if not layers:
        return False
    last = layers[-1]
    return isinstance(last, keras.layers.Softmax) or (
        getattr(last, "activation", None) is keras.activations.softmax
    )


def _samples(model, inputs, num_samples):
    """``num_samples`` draws of ``model``'s outputs for ``inputs``; a
    ``BayesByHypernet``'s noise is drawn statelessly here: a SeedGenerator's
    saved state would replay the same draws on every reload."""
    groups = getattr(model, "_groups", None)
    if groups is None:
        return model.sample_predictions(inputs, num_samples)
    seed = _fresh_seed()
    noise = []
    for index, group in enumerate(groups):
        shapes = group.noise_shapes(num_samples)  # the hypernetwork's and xi
        noise.append(
            GroupNoise(
                *(
                    None
                    if shape is None
                    else tf.random.stateless_normal(shape, seed=seed + 2 * index + part)
                    for part, shape in enumerate(shapes)
                )
            )
        )
    return model.sample_predictions(inputs, num_samples, noise=noise)


def export_saved_model(model, path, num_samples=32, classifier=None):
    """Write ``model`` as a SavedModel whose serving signature averages draws.

    Args:
        model: A built ``BayesByHypernet``, ``DeepEnsemble`` or any other
            bbh_tf model (whose draws are then its own ``sample_predictions``;
            for ``MCDropout`` and ``BayesByBackprop`` a reloaded SavedModel
            replays the same sequence of draws).
        path: Directory to write.
        num_samples: Weight draws per call, >= 1. Default 32.
        classifier: Whether the outputs are class probabilities (adds
            ``entropy`` and ``mutual_information``). Default: True when the
            network's last layer has a softmax activation.

    Example:

    >>> export_saved_model(model, "served/", num_samples=32)
    >>> served = tf.saved_model.load("served/")
    >>> serve = served.signatures["serving_default"]
    >>> out = serve(inputs=tf.constant(x_test[:5]))
    >>> out["mean"].shape, out["std"].shape
    (TensorShape([5, 10]), TensorShape([5, 10]))
    """
    num_samples = _checks.positive_int("num_samples", num_samples)
    if not getattr(model, "built", False) or model.input_shape_ is None:
        raise ValueError(
            "`model` must be a built bbh_tf model: fit it, call it on a "
            "batch or call `model.build(input_shape)` first."
        )
    if classifier is None:
        classifier = _is_classifier(model)

    row_shape = tuple(model.input_shape_[1:])
    shape_message = (
        f"`inputs` must have shape (n, {', '.join(map(str, row_shape))}) "
        "(the model's input)"
    )

    def serve(inputs):
        check = tf.debugging.assert_equal(
            tf.shape(inputs)[1:],
            tf.constant(row_shape, tf.int32),
            message=shape_message,
        )
        # The network runs after the check: a wrong shape is named, never a
        # matrix-size error from inside it (nothing orders the two else).
        with tf.control_dependencies([check]):
            inputs = tf.identity(inputs)
        # Non-finite rows are served as NaN with a flag; zeros go through the
        # network in their place, so they cannot touch the other rows.
        rows = tf.reshape(inputs, [tf.shape(inputs)[0], -1])
        if inputs.dtype.is_floating:
            finite = tf.reduce_all(tf.math.is_finite(rows), axis=1)
        else:
            finite = tf.ones(tf.shape(rows)[:1], tf.bool)
        per_row = tf.reshape(finite, [-1] + [1] * len(row_shape))
        inputs = tf.where(per_row, inputs, tf.zeros_like(inputs))
        samples = _samples(model, inputs, num_samples)
        mean = tf.reduce_mean(samples, axis=0)
        outputs = {"mean": mean, "std": tf.math.reduce_std(samples, axis=0)}
        if classifier:
            entropy = _entropy(mean)
            outputs["entropy"] = entropy
            outputs["mutual_information"] = entropy - tf.reduce_mean(
                _entropy(samples), axis=0
            )
        outputs = {
            name: tf.where(
                tf.reshape(finite, [-1] + [1] * (len(value.shape) - 1)),
                tf.cast(value, tf.float32),
                float("nan"),
            )
            for name, value in outputs.items()
        }
        outputs["finite_input"] = finite
        return outputs

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name="serving_default",
        fn=serve,
        input_signature=[
            tf.TensorSpec(model.input_shape_, model.input_dtype_, name="inputs")
        ],
    )
    archive.write_out(str(path), verbose=False)
