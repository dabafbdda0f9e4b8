"""Fusing long element-wise computations with XLA inside a step that is
not XLA-compiled.

Without XLA, TensorFlow runs every element-wise operation as its own pass
over memory; over a kernel-sized tensor (a million weights) each pass costs
about as much as a small matrix product on a CPU. XLA fuses a chain of them
into one loop. :func:`fused` compiles such a chain (and its gradient) when
the graph around it is traced without XLA; inside an XLA-compiled step, or
run eagerly (where compiling would cost more than it saves), it runs the
function as it is.
"""

import functools

import tensorflow as tf


def in_xla_context():
    """Whether the graph being traced will be compiled by XLA
    (``jit_compile=True``); True where TensorFlow cannot tell."""
    try:
        from tensorflow.python.ops import control_flow_util
    except ImportError:  # a TensorFlow without the private module
        return True
    graph = tf.compat.v1.get_default_graph()
    return control_flow_util.GraphOrParentsInXlaContext(graph)


def fused(function):
    """``function`` (of tensors, returning tensors), XLA-compiled when
    called while a graph is traced without XLA."""
    compiled = tf.function(function, jit_compile=True, autograph=False)

    @functools.wraps(function)
    def call(*args):
        if tf.executing_eagerly() or in_xla_context():
            return function(*args)
        return compiled(*args)

    return call
