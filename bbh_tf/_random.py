"""Gaussian noise that stays fast when the training step is XLA-compiled.

``keras.random.normal`` calls ``tf.random.stateless_normal`` with the default
algorithm ("auto_select"). TensorFlow's own kernel resolves it to Philox, but
XLA on CPU resolves it to a generic bit generator that is about 30 times
slower (docs/performance.md, "Random numbers under XLA"): with ``jit_compile=True`` the noise of a
per-value hypernetwork then costs more than the rest of the step. Naming
Philox keeps TensorFlow's kernel bit for bit (same numbers as
``keras.random.normal`` for the same ``SeedGenerator`` state) and gives XLA a
fast one.
"""

import tensorflow as tf


def normal(shape, seed_generator, dtype="float32"):
    """``N(0, 1)`` noise of ``shape`` drawn with ``seed_generator``'s next seed."""
    seed = seed_generator.next()
    if seed.dtype != tf.int32:
        # As keras.random does: its seed state is int64, XLA wants int32.
        seed = tf.cast(tf.math.floormod(seed, tf.int32.max - 1), tf.int32)
    return tf.random.stateless_normal(shape, seed=seed, dtype=dtype, alg="philox")
