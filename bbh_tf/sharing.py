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
            _REBUILT[shared_id] = weakref.ref(hypernet)
        return hypernet
