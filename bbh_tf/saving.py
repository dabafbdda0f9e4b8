"""Loading saved models with errors that say what is wrong first.

``keras.models.load_model`` works on bbh_tf models (after ``import
bbh_tf``); :func:`load_model` is the same call with the file checked first
(missing, truncated or not an archive) and a version check, and the models'
``from_config`` puts the root cause of a refused config (an unknown or
disallowed class) at the start of the message rather than after Keras'
generic advice and the whole config.
"""

import json
import os
import zipfile

import keras

# The longest cause quoted in an error (a refused config can be huge).
_MAX_CAUSE = 400


def root_cause(error):
    """The innermost exception's message of ``error``'s chain, shortened:
    what went wrong, without the configs Keras appends."""
    while True:
        inner = error.__cause__ or error.__context__
        if inner is None:
            break
        error = inner
    message = str(error).split("Full object config:")[0].split("\nconfig=")[0]
    message = " ".join(message.split())
    if len(message) > _MAX_CAUSE:
        message = message[: _MAX_CAUSE - 3] + "..."
    return message


def version_tuple(version):
    """``"1.2.3"`` -> ``(1, 2, 3)``; parts that are not numbers count as 0."""
    return tuple(int(part) if part.isdigit() else 0 for part in version.split(".")[:3])


def check_version(saved, installed, what):
    """A ``ValueError`` if ``saved`` (a version string, or None when the file
    does not say) is newer than ``installed``: an older library may not
    know what a newer one wrote."""
    if saved and version_tuple(saved) > version_tuple(installed):
        raise ValueError(
            f"The model was saved with {what} {saved}, newer than the "
            f"installed {installed}: upgrade {what} to load it."
        )


def load_model(path, custom_objects=None, compile=True, safe_mode=True):
    """``keras.models.load_model`` for a ``.keras`` archive, checked first.

    Args:
        path: A ``.keras`` file written by ``model.save``.
        custom_objects: As for ``keras.models.load_model``.
        compile: As for ``keras.models.load_model``.
        safe_mode: As for ``keras.models.load_model``: True refuses
            configs that would run arbitrary code.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``path`` is not a complete ``.keras`` archive (truncated
            or corrupt), was saved by a newer Keras or bbh_tf, or its config
            names a class that cannot be loaded (the cause comes first).

    Example:

    >>> model.save("model.keras")
    >>> model = bbh_tf.load_model("model.keras")
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"`path` {path!r} does not exist.")
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"`path` {path!r} is not a complete .keras archive (not a zip "
            "file: truncated, corrupt or another format)."
        )
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            metadata = json.loads(archive.read("metadata.json"))
            bad_member = archive.testzip()
    except (KeyError, ValueError, zipfile.BadZipFile, OSError) as error:
        raise ValueError(
            f"`path` {path!r} is not a complete .keras archive ({error})."
        ) from None
    if bad_member is not None or "config.json" not in names:
        raise ValueError(
            f"`path` {path!r} is not a complete .keras archive (corrupt or "
            "missing member: "
            f"{bad_member or 'config.json'})."
        )
    check_version(metadata.get("keras_version"), keras.__version__, "Keras")
    return keras.models.load_model(
        path, custom_objects=custom_objects, compile=compile, safe_mode=safe_mode
    )
