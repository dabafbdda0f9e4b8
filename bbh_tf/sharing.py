"""How hyper layers' plain-JSON configs keep one shared hypernetwork.

A hyper layer's config holds its hypernetwork's config, which carries the
hypernetwork's ``shared_id``. Rebuilding layers from such configs, by any
Keras path (``from_config``, ``model_from_json``, ``clone_model``, ``.keras``
files), hands the layers that name one ``shared_id`` the same new
hypernetwork: the first of them creates it, the others join it. A layer
whose name is already among that hypernetwork's users starts a new one, so
rebuilding the same config twice (two copies of a model, whose layers have
the same names) gives two independent models.
"""

import threading
import weakref

import keras

_LOCK = threading.Lock()
# shared_id -> weak reference to the hypernetwork last rebuilt for it.
_REBUILT = {}


def rebuild(config, layer_name):
    """The hypernetwork for the layer ``layer_name`` rebuilt from ``config``
    (a serialized ``HyperNetwork``)."""
    shared_id = config.get("config", {}).get("shared_id")
    if shared_id is None:
        # A config from before the ids (Keras' own sharing scope restores
        # those inside load_model).
        return keras.saving.deserialize_keras_object(config)
    with _LOCK:
        ref = _REBUILT.get(shared_id)
        hypernet = ref() if ref is not None else None
        if hypernet is None or layer_name in hypernet.user_names():
            hypernet = keras.saving.deserialize_keras_object(config)
            hypernet.__dict__["_bbh_rebuilt"] = True
            _REBUILT[shared_id] = weakref.ref(hypernet)
        return hypernet


def is_rebuilt(hypernet):
    """Whether ``hypernet`` was made here from a config (not by the user)."""
    return hypernet.__dict__.get("_bbh_rebuilt", False)


def merge_copies(hyper_layers):
    """Make the layers of one model whose hypernetworks are copies of one
    (the same ``shared_id``: a ``keras.layers.Bidirectional`` wrapper, for
    one, rebuilds its layer from its config) draw from one again: the
    user's own rather than a rebuilt copy."""
    first = {}
    for layer in sorted(hyper_layers, key=lambda layer: is_rebuilt(layer.hypernet)):
        shared = first.setdefault(layer.hypernet.shared_id, layer.hypernet)
        if layer.hypernet is not shared:
            layer.share_hypernet(shared)
