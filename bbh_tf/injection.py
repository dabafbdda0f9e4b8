"""Handing pre-generated values to hyper layers for one forward pass.

``BayesByHypernet`` draws every hypernetwork's values once per weight
sample and hands them to all hyper layers through :func:`injected_values`,
so the layers of one pass see one coherent posterior sample.
"""

import contextlib
import threading

# Per-thread, because MirroredStrategy runs each replica in its own thread.
_INJECTED = threading.local()


@contextlib.contextmanager
def injected_values(values_by_layer, shared_input_layer=None):
    """Hand pre-generated values to hyper layers for the calls inside.

    Args:
        values_by_layer: dict mapping a hyper layer to the tensor of shape
            ``(num_draws, num_chunks, output_dim)`` it should use, as returned
            by ``layer.generate(noise)``.
        shared_input_layer: Optional hyper layer whose input rows are shared
            by all draws (one copy of the batch, not one per draw); it
            returns the usual ``num_draws`` groups of rows.

    Hyper layers called inside the ``with`` block use these values instead of
    drawing their own noise. Used by ``BayesByHypernet``; rarely needed
    directly.
    """
    previous = getattr(_INJECTED, "values", None)
    previous_shared = getattr(_INJECTED, "shared_input", None)
    merged = dict(previous or {})
    merged.update({id(layer): values for layer, values in values_by_layer.items()})
    _INJECTED.values = merged
    _INJECTED.shared_input = (
        None if shared_input_layer is None else id(shared_input_layer)
    )
    try:
        yield
    finally:
        _INJECTED.values = previous
        _INJECTED.shared_input = previous_shared


def injected_values_for(layer):
    """The values injected for ``layer``, or None outside ``injected_values``."""
    values = getattr(_INJECTED, "values", None)
    return None if values is None else values.get(id(layer))


def input_shared_by_draws(layer):
    """Whether ``layer``'s input rows are one copy shared by all draws."""
    return getattr(_INJECTED, "shared_input", None) == id(layer)
