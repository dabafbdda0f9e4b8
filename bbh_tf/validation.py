"""What ``fit``, ``evaluate`` and the predictions check before TensorFlow
sees their data.

Arrays (numpy, lists, eager tensors) are checked in full: numeric, one
array (bbh_tf models take one input), a batch axis, the shape of the
model's input, at least one example, finite; targets as long as the inputs
and finite, and for a sparse categorical loss whole numbers in
``[0, classes)``; batch sizes and sample weights. Each error names the
argument and the form it expects. Datasets and generators stream, so only
their shape is checked, by Keras, as they run.
"""

import keras
import numpy as np
import tensorflow as tf

from bbh_tf import _checks

_SPARSE_LOSSES = ("sparse_categorical_crossentropy",)


def is_array(x):
    """Whether ``x`` is data held in memory (not a dataset or generator)."""
    return isinstance(x, (np.ndarray, list, tuple, dict, tf.Tensor)) or (
        hasattr(x, "__array__") and not isinstance(x, tf.data.Dataset)
    )


def input_shape_of(x):
    """The input shape of ``fit``'s ``x`` where it can be read off cheaply."""
    if isinstance(x, tf.data.Dataset):
        spec = x.element_spec
        spec = spec[0] if isinstance(spec, tuple) else spec
        return tuple(spec.shape) if isinstance(spec, tf.TensorSpec) else None
    shape = getattr(x, "shape", None)
    return None if shape is None else (None,) + tuple(shape)[1:]


def numeric_array(name, values):
    """``values`` as a numpy array of a numeric (or bool) dtype."""
    if (
        isinstance(values, (list, tuple))
        and values
        and all(is_array(v) and np.ndim(v) > 0 for v in values)
    ):
        raise TypeError(
            f"`{name}` must be one array: bbh_tf models take one input and "
            f"give one output, got a {type(values).__name__} of "
            f"{len(values)} arrays."
        )
    if isinstance(values, dict):
        raise TypeError(
            f"`{name}` must be one array: bbh_tf models take one input and "
            "give one output, got a dict."
        )
    array = np.asarray(values)
    if array.dtype.kind == "O":
        try:
            array = array.astype(np.float32)
        except (TypeError, ValueError) as error:
            raise TypeError(
                f"`{name}` must be a numeric array, got {type(values).__name__}: "
                f"{error}"
            ) from None
    if array.dtype.kind not in "biuf":
        raise TypeError(
            f"`{name}` must be a numeric array, got dtype {array.dtype} "
            f"({type(values).__name__})."
        )
    return array


def check_finite(name, array):
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        raise ValueError(f"`{name}` contains NaN or infinite values.")


def inputs(x, input_shape, name="x", dtype="float32"):
    """``x`` as a float32 array (an integer one for a model whose input
    ``dtype`` is an integer type, e.g. token ids), or an error naming what
    is wrong.

    ``input_shape``: the model's ``(None, ...)`` input shape, or None when
    not built yet.
    """
    x = numeric_array(name, x)
    if x.ndim < 2:
        raise ValueError(
            f"`{name}` must have shape (n, ...) with a batch axis, got {x.shape}."
        )
    if input_shape is not None:
        expected = tuple(input_shape)[1:]
        actual = x.shape[1:]
        if len(expected) != len(actual) or any(
            e is not None and e != a for e, a in zip(expected, actual)
        ):
            raise ValueError(
                f"`{name}` must have shape (n, {', '.join(map(str, expected))}) "
                f"to match the model's input, got {x.shape}."
            )
    if len(x) == 0:
        raise ValueError(
            f"`{name}` must hold at least one example, got shape {x.shape}."
        )
    check_finite(name, x)
    if np.dtype(dtype).kind in "iu":
        return _integers(name, x, dtype)
    with np.errstate(over="ignore"):  # reported below, by name
        converted = x.astype(np.float32, copy=False)
    if converted is not x and not np.all(np.isfinite(converted)):
        raise ValueError(
            f"`{name}` holds values beyond float32's range (about 3.4e38)."
        )
    return converted


def _integers(name, x, dtype):
    """``x`` as ``dtype`` integers (indices), refusing fractions."""
    if x.dtype.kind == "f" and not np.all(x == np.round(x)):
        raise ValueError(
            f"`{name}` must hold integers (the model's input is {dtype}), got "
            "fractional values."
        )
    info = np.iinfo(dtype)
    if x.size and (x.min() < info.min or x.max() > info.max):
        raise ValueError(f"`{name}` holds values outside the range of {dtype}.")
    return x.astype(dtype, copy=False)


def per_example(name, values, num_examples, what):
    """``values`` as a finite numeric array with one ``what`` per example of
    ``x`` (``num_examples``)."""
    array = numeric_array(name, values)
    if array.ndim == 0 or len(array) != num_examples:
        raise ValueError(
            f"`{name}` must have one {what} per example of `x` "
            f"({num_examples}), got shape {array.shape}."
        )
    check_finite(name, array)
    return array


def targets(y, num_examples, sparse_classes=None, name="y"):
    """Check ``y`` against ``num_examples`` inputs; ``sparse_classes``: the
    class count of a sparse categorical loss (labels must be whole numbers in
    ``[0, classes)``)."""
    y = per_example(name, y, num_examples, "target")
    if sparse_classes is not None:
        if not np.all(y == np.round(y)):
            raise ValueError(
                f"`{name}` must hold class indices (whole numbers) for a sparse "
                "categorical loss, got fractional values."
            )
        if y.size and (y.min() < 0 or y.max() >= sparse_classes):
            raise ValueError(
                f"`{name}` must hold class indices in [0, {sparse_classes}) for "
                f"the model's {sparse_classes} outputs, got values from "
                f"{y.min():g} to {y.max():g}."
            )


def sample_weights(weights, num_examples, name="sample_weight"):
    weights = per_example(name, weights, num_examples, "weight")
    if np.any(weights < 0):
        raise ValueError(f"`{name}` must be >= 0.")


def batch_size(value, name="batch_size"):
    """``value`` if None or an integer >= 1."""
    return None if value is None else _checks.positive_int(name, value)


def sparse_classes(model):
    """The class count if ``model`` is compiled with a sparse categorical loss
    and its output's last axis is known, else None."""
    loss = getattr(model, "loss", None)
    sparse = (
        loss in _SPARSE_LOSSES
        if isinstance(loss, str)
        else isinstance(loss, keras.losses.SparseCategoricalCrossentropy)
        or loss is keras.losses.sparse_categorical_crossentropy
    )
    if not sparse or not model.built:
        return None
    shape = model.output_shape_
    return None if shape is None or shape[-1] is None else int(shape[-1])


def elementwise_output_shape(model):
    """The output shape ``(n, ...)`` that targets must match when ``model``
    is compiled with a built-in Keras loss that compares targets and outputs
    entry by entry (MSE, cross-entropy over one-hot targets...); None for
    other losses (sparse, bbh_tf likelihoods, your own functions)."""
    loss = getattr(model, "loss", None)
    keras_loss = isinstance(loss, str) or (
        isinstance(loss, keras.losses.Loss)
        and type(loss).__module__.startswith("keras")
    )
    if not keras_loss or sparse_classes(model) is not None or not model.built:
        return None
    if isinstance(loss, str) and loss in _SPARSE_LOSSES:
        return None
    return model.output_shape_


def check_target_shape(name, y, output_shape):
    """Targets ``y`` of the model's output shape (a trailing axis of 1 may
    be left out)."""
    expected = tuple(output_shape[1:])
    got = tuple(np.shape(y)[1:])
    if got == expected or (expected == (1,) and got == ()) or None in expected:
        return
    raise ValueError(
        f"`{name}` must have shape (n, {', '.join(map(str, expected))}) to match "
        f"the model's output under its loss, got {np.shape(y)}."
    )


def data(model, x, y=None, sample_weight=None):
    """Check in-memory ``x`` (and ``y``, ``sample_weight``) for ``model``;
    anything else passes to Keras unchanged."""
    if not is_array(x):
        return
    x = inputs(x, model.input_shape_, dtype=model.input_dtype_)
    if y is not None:
        targets(y, len(x), sparse_classes(model))
        output_shape = elementwise_output_shape(model)
        if output_shape is not None:
            check_target_shape("y", y, output_shape)
    if sample_weight is not None:
        sample_weights(sample_weight, len(x))


def fit_inputs(model, arguments):
    """Check ``fit``'s bound ``arguments`` that do not need a built model:
    the batch size, the epochs and the form of ``x``."""
    batch_size(arguments.get("batch_size"))
    _checks.non_negative_int("epochs", arguments.get("epochs", 1))
    if is_array(arguments.get("x")):
        inputs(arguments["x"], model.input_shape_)


def fit_data(model, arguments):
    """Check ``fit``'s data against the built model: ``x``, ``y`` (label
    ranges need the output's size), ``sample_weight`` and
    ``validation_data``."""
    data(model, arguments.get("x"), arguments.get("y"), arguments.get("sample_weight"))
    validation = arguments.get("validation_data")
    if not isinstance(validation, (tuple, list)) or not 2 <= len(validation) <= 3:
        return
    x_val, y_val, *weights = validation
    if not is_array(x_val):
        return
    x_val = inputs(
        x_val, model.input_shape_, name="validation_data[0]", dtype=model.input_dtype_
    )
    targets(y_val, len(x_val), sparse_classes(model), name="validation_data[1]")
    if weights and weights[0] is not None:
        sample_weights(weights[0], len(x_val), name="validation_data[2]")


def unpack(data):
    """``(x, y, sample_weight)`` of one batch in a training or test step,
    refusing several inputs or outputs by name (bbh_tf models take one input
    and give one output) before any computation."""
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    for name, value in (("x", x), ("y", y)):
        if isinstance(value, (dict, list, tuple)):
            raise TypeError(
                f"`{name}` must be one tensor per batch: bbh_tf models take "
                f"one input and give one output, got a {type(value).__name__} "
                f"of {len(value)}."
            )
    return x, y, sample_weight
