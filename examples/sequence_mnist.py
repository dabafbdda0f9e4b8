"""MNIST digits read row by row: an LSTM classifier for every method.

Each image is a sequence of 28 rows of 28 pixels; an LSTM of
``--lstm_units`` units reads it and a dense softmax layer classifies its
last state. Each method builds it from its own layers
(``mnist_mlp.Layers``):

* ``bbh``: ``keras.layers.RNN(HyperLSTMCell)`` and ``HyperDense`` sharing
  one ``HyperNetwork`` (``--mode``, ``scale`` by default: the posterior is
  on the gates' and the output layer's scales); every sequence keeps one
  weight draw for all its rows;
* ``ml``: ``keras.layers.LSTM`` and ``Dense``;
* ``mc_dropout``: the same with ``Dropout(--dropout_rate)`` on the LSTM's
  last state, kept on at prediction;
* ``bbb``: ``RNN(BayesByBackpropLSTMCell)`` and ``BayesByBackpropDense``.

Flags and outputs are those of ``examples/mnist_mlp.py`` (``--method``,
``--epochs``, ``--train_size``...); models and JSONs go to
``runs/sequence_mnist`` by default. Run::

    python examples/sequence_mnist.py --method=bbh --epochs=5 \\
        --data_dir=../shared/data/mnist
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
import mnist_mlp  # noqa: E402  (defines the shared flags)
from absl import app, flags  # noqa: E402

flags.DEFINE_integer("lstm_units", 64, "Units of the LSTM.")
flags.FLAGS.set_default("output_dir", "runs/sequence_mnist")


def row_reader(layers, dropout_rate=0.0):
    """The LSTM classifier from ``layers`` (a ``mnist_mlp.Layers``)."""
    if flags.FLAGS.lstm_units < 1:
        raise app.UsageError("--lstm_units must be >= 1.")
    dropout = [keras.layers.Dropout(dropout_rate)] if dropout_rate else []
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Reshape((28, 28)),  # 28 steps of 28 pixels
            layers.lstm(flags.FLAGS.lstm_units),
            *dropout,
            layers.dense(mnist_mlp.NUM_CLASSES, "softmax", output=True),
        ]
    )


if __name__ == "__main__":
    app.run(mnist_mlp.main_for(row_reader, flatten=False))
