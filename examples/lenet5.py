"""MNIST with LeNet-5 for every method (the later version of the paper).

LeNet-5 as in the paper's later version: conv 5x5x20, max-pool 2, conv
5x5x50, max-pool 2, dense 500, dense 10 (ReLU). Each method builds it from
its own layers (``mnist_mlp.Layers``):

* ``bbh``: ``HyperConv2D`` and ``HyperDense`` sharing one ``HyperNetwork``
  (``--mode``, ``scale`` by default): the posterior is on the 580
  per-filter and per-unit scales;
* ``ml``: plain ``Conv2D`` and ``Dense``;
* ``mc_dropout``: the same with ``Dropout(--dropout_rate)`` after each
  pooling layer and after the 500-unit layer, kept on at prediction;
* ``bbb``: ``BayesByBackpropConv2D`` and ``BayesByBackpropDense``.

Flags and outputs are those of ``examples/mnist_mlp.py`` (``--method``,
``--epochs``, ``--classes``...); models and JSONs go to ``runs/lenet5`` by
default. Run::

    python examples/lenet5.py --method=bbh --data_dir=../shared/data/mnist
    python examples/lenet5.py --classes=0,1,2,3,4 --output_dir=runs/lenet5_0to4
    python examples/evaluate.py --model_dir=runs/lenet5 ...
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
import mnist_mlp  # noqa: E402  (defines the shared flags)
from absl import app, flags  # noqa: E402

flags.FLAGS.set_default("output_dir", "runs/lenet5")


def lenet5(layers, dropout_rate=0.0):
    """LeNet-5 from ``layers`` (a ``mnist_mlp.Layers``); a ``Dropout``
    follows each pooling layer and the 500-unit layer if the rate > 0."""

    def dropout():
        return [keras.layers.Dropout(dropout_rate)] if dropout_rate else []

    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.conv(20, 5, "relu"),
            keras.layers.MaxPooling2D(2),
            *dropout(),
            layers.conv(50, 5, "relu"),
            keras.layers.MaxPooling2D(2),
            *dropout(),
            keras.layers.Flatten(),
            layers.dense(500, "relu"),
            *dropout(),
            layers.dense(mnist_mlp.NUM_CLASSES, "softmax", output=True),
        ]
    )


if __name__ == "__main__":
    app.run(mnist_mlp.main_for(lenet5, flatten=False))
