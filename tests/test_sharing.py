"""One hypernetwork per set of hyper layers, along every Keras path: layer
configs are plain JSON, and rebuilding them restores the sharing (each copy
with a hypernetwork of its own)."""

import json

import keras
import numpy as np
import pytest
from conftest import blobs

import bbh_tf


def hypernets(network):
    return {
        id(layer.hypernet)
        for layer in network._flatten_layers()
        if isinstance(layer, bbh_tf.HyperLayer)
    }


def sequential(hypernet="given"):
    shared = bbh_tf.HyperNetwork(noise_dim=4, hidden_units=(8,), output_dim=16)
    make = (
        (lambda units, **kw: bbh_tf.HyperDense(units, hypernet=shared, **kw))
        if hypernet == "given"
        else bbh_tf.HyperDense
    )
    return keras.Sequential(
        [
            keras.Input((6,)),
            make(8, activation="relu"),
            make(3, activation="softmax"),
        ]
    )


def functional():
    shared = bbh_tf.HyperNetwork(noise_dim=4, hidden_units=(8,), output_dim=16)
    inputs = keras.Input((6,))
    hidden = bbh_tf.HyperDense(8, activation="relu", hypernet=shared)(inputs)
    inner = keras.Sequential([keras.Input((8,)), bbh_tf.HyperDense(3, hypernet=shared)])
    return keras.Model(inputs, inner(hidden))


PATHS = {
    "to_json": lambda net: keras.models.model_from_json(net.to_json()),
    "from_config": lambda net: type(net).from_config(
        json.loads(json.dumps(net.get_config()))
    ),
    "clone_model": lambda net: keras.models.clone_model(net),
}


@pytest.mark.parametrize(
    "build", [sequential, functional], ids=["sequential", "nested"]
)
@pytest.mark.parametrize("path", sorted(PATHS))
def test_every_path_rebuilds_one_shared_hypernetwork_of_its_own(build, path):
    net = build()
    assert len(hypernets(net)) == 1
    copy, second = PATHS[path](net), PATHS[path](net)
    assert len(hypernets(copy)) == 1 and len(hypernets(second)) == 1
    # Each copy owns its hypernetwork: training it leaves the others alone.
    assert hypernets(copy).isdisjoint(hypernets(net))
    assert hypernets(second).isdisjoint(hypernets(copy))


def test_layers_without_a_hypernetwork_share_one_inside_the_model():
    net = sequential(hypernet=None)
    assert len(hypernets(net)) == 2  # on their own: one default each
    model = bbh_tf.BayesByHypernet(net, num_examples=64)
    model.build((None, 6))
    assert len(hypernets(net)) == 1 and len(model.hypernets) == 1
    # The replaced default is gone from the weights: one hypernetwork's.
    hypernet = model.hypernets[0]
    assert len(net.trainable_variables) == len(hypernet.trainable_variables) + 2 * 4
    x, y = blobs(n=64)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    history = model.fit(x, y, epochs=2, verbose=0).history
    assert np.isfinite(history["loss"]).all()


def test_a_keras_file_and_bayes_by_hypernet_config_keep_one(tmp_path):
    model = bbh_tf.BayesByHypernet(sequential(), num_examples=64)
    x, y = blobs(n=64)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = bbh_tf.load_model(tmp_path / "m.keras")
    assert len(loaded.hypernets) == 1
    for a, b in zip(model.network.variables, loaded.network.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    rebuilt = bbh_tf.BayesByHypernet.from_config(
        json.loads(json.dumps(model.get_config()))
    )
    rebuilt.build((None, 6))
    assert len(rebuilt.hypernets) == 1
    assert rebuilt.hypernets[0] is not model.hypernets[0]


def test_a_layer_given_its_own_default_cannot_be_rewired_twice():
    layer = bbh_tf.HyperDense(3, hypernet=bbh_tf.HyperNetwork())
    with pytest.raises(ValueError, match="only a layer's own default"):
        layer.share_hypernet(bbh_tf.HyperNetwork())


def public_objects():
    """One instance of every public serializable class of bbh_tf."""
    net = sequential()
    plain = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3)])
    dropout = keras.Sequential(
        [keras.Input((6,)), keras.layers.Dropout(0.1), keras.layers.Dense(3)]
    )
    bbb = keras.Sequential([keras.Input((6,)), bbh_tf.BayesByBackpropDense(3)])
    return [
        bbh_tf.HyperNetwork(),
        net.layers[0],
        bbh_tf.HyperConv2D(2, 3, hypernet=bbh_tf.HyperNetwork()),
        bbh_tf.BayesByBackpropDense(3),
        bbh_tf.BayesByBackpropConv2D(2, 3),
        bbh_tf.Discriminator(),
        bbh_tf.JointDiscriminator(),
        bbh_tf.ScaleMixturePrior(),
        bbh_tf.GaussianPrior(),
        bbh_tf.GaussianLikelihood(),
        bbh_tf.StudentTLikelihood(),
        bbh_tf.HomoscedasticScale(),
        bbh_tf.kl.SemiImplicitKL(),
        bbh_tf.kl.NearestNeighbourKL(),
        bbh_tf.kl.AdversarialKL(),
        bbh_tf.BayesByHypernet(net, num_examples=10),
        bbh_tf.BayesByBackprop(bbb, num_examples=10),
        bbh_tf.MaximumLikelihood(plain),
        bbh_tf.MCDropout(dropout),
    ]


@pytest.mark.parametrize("obj", public_objects(), ids=lambda o: type(o).__name__)
def test_every_public_class_has_a_plain_json_config(obj):
    config = json.loads(json.dumps(obj.get_config()))
    rebuilt = type(obj).from_config(config)
    assert type(rebuilt) is type(obj)
