"""What the prediction methods accept: whatever ``model.predict`` does.

Arrays (and lists, eager tensors) are checked whole and cut into batches;
``tf.data.Dataset``, ``keras.utils.PyDataset`` and Python generators or
iterables stream: each element (``x``, or ``(x, y)``/``(x, y, weights)``
whose ``x`` is taken) is checked as it comes, so nothing is held in memory
beyond one batch. bbh_tf models take one input: a dict or a tuple of
several input arrays is refused by name.
"""

import keras
import numpy as np
import tensorflow as tf

from bbh_tf import validation


def _parts(element):
    """``(x, y)`` of one streamed element (``y`` None if absent)."""
    if isinstance(element, dict):
        raise TypeError(
            "`x` must give one input array per batch: bbh_tf models take one "
            "input, got a dict."
        )
    if isinstance(element, (tuple, list)):
        x = element[0]
        y = element[1] if len(element) > 1 else None
    else:
        x, y = element, None
    if isinstance(x, (tuple, list, dict)):
        raise TypeError(
            "`x` must give one input array per batch: bbh_tf models take one "
            f"input, got a {type(x).__name__}."
        )
    return x, y


def _to_numpy(value):
    return None if value is None else keras.ops.convert_to_numpy(value)


def iterate(x, input_shape, batch_size, y=None, dtype="float32"):
    """Yield ``(x_batch, y_batch)`` numpy pairs of ``x`` (and ``y`` for
    arrays), every ``x_batch`` checked against ``input_shape`` and made
    ``dtype`` (the model's input dtype)."""
    if validation.is_array(x):
        x = validation.inputs(x, input_shape, dtype=dtype)
        if y is not None:
            validation.per_example("y", y, len(x), "target")
            y = np.asarray(y)
        for start in range(0, len(x), batch_size):
            end = start + batch_size
            yield x[start:end], None if y is None else y[start:end]
        return
    if y is not None:
        raise ValueError(
            "`y` must be None when `x` is a dataset or generator: give the "
            "targets in its elements, as (x, y)."
        )
    if isinstance(x, keras.utils.PyDataset):
        elements = (x[index] for index in range(len(x)))
    elif isinstance(x, tf.data.Dataset) or hasattr(x, "__iter__"):
        elements = iter(x)
    else:
        raise TypeError(
            "`x` must be an array, a tf.data.Dataset, a keras.utils.PyDataset "
            f"or a generator of batches, got {type(x).__name__}."
        )
    empty = True
    for element in elements:
        batch, targets = _parts(element)
        empty = False
        yield (
            validation.inputs(_to_numpy(batch), input_shape, dtype=dtype),
            _to_numpy(targets),
        )
    if empty:
        raise ValueError("`x` gave no batch: it must hold at least one example.")
