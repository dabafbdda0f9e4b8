"""Argument checks shared by the public classes.

Every check raises a ``ValueError``/``TypeError`` that names the argument and
the expected form, so bad input never surfaces as a TensorFlow stack trace.
"""

import math
import numbers

import numpy as np


def _int_at_least(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be an integer >= {minimum}, got {value!r}.")
    if value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}, got {value}.")
    return int(value)


def positive_int(name, value):
    """Return ``value`` as an int, or raise if it is not an integer >= 1."""
    return _int_at_least(name, value, 1)


def non_negative_int(name, value):
    """Return ``value`` as an int, or raise if it is not an integer >= 0."""
    return _int_at_least(name, value, 0)


def boolean(name, value):
    """Return ``value`` if it is a bool (or numpy bool), else raise."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"`{name}` must be True or False, got {value!r}.")
    return bool(value)


def positive_float(name, value):
    """Return ``value`` as a float, or raise if it is not finite and > 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a finite number > 0, got {value!r}.")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"`{name}` must be a finite number > 0, got {value}.")
    return float(value)


def non_negative_float(name, value):
    """Return ``value`` as a float, or raise if it is not finite and >= 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a finite number >= 0, got {value!r}.")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"`{name}` must be a finite number >= 0, got {value}.")
    return float(value)


def finite_float(name, value):
    """Return ``value`` as a float, or raise if it is not a finite number."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a finite number, got {value!r}.")
    if not math.isfinite(value):
        raise ValueError(f"`{name}` must be a finite number, got {value}.")
    return float(value)


def open_unit_float(name, value):
    """Return ``value`` as a float, or raise if it is not in (0, 1)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a number in (0, 1), got {value!r}.")
    if not 0.0 < value < 1.0:
        raise ValueError(f"`{name}` must be a number in (0, 1), got {value}.")
    return float(value)


def unit_tuple(name, value, allow_empty=False):
    """Return ``value`` as a tuple of ints >= 1 (hidden layer sizes)."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (value,)
    try:
        units = tuple(value)
    except TypeError:
        raise TypeError(
            f"`{name}` must be a sequence of integers >= 1, got {value!r}."
        ) from None
    if not units and not allow_empty:
        raise ValueError(f"`{name}` must hold at least one layer size.")
    for unit in units:
        if isinstance(unit, bool) or not isinstance(unit, numbers.Integral) or unit < 1:
            raise ValueError(
                f"`{name}` must be a sequence of integers >= 1, got {value!r}."
            )
    return tuple(int(unit) for unit in units)


def known_last_dim(layer_name, input_shape):
    """The input's last dimension as an int, or raise if it is unknown."""
    input_dim = input_shape[-1]
    if input_dim is None:
        raise ValueError(
            f"{layer_name}: the last dimension of the input must be known, "
            f"got input shape {input_shape}."
        )
    return int(input_dim)
