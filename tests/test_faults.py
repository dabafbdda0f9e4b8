"""Faults during training: a non-finite step changes nothing."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import blobs, compiled_model, small_classifier

import bbh_tf


def plain_net(dropout=False):
    layers = [keras.Input((6,)), keras.layers.Dense(12, activation="relu")]
    if dropout:
        layers.append(keras.layers.Dropout(0.2))
    return keras.Sequential(layers + [keras.layers.Dense(3, activation="softmax")])


def bbb_net():
    return keras.Sequential(
        [
            keras.Input((6,)),
            bbh_tf.BayesByBackpropDense(12, activation="relu"),
            bbh_tf.BayesByBackpropDense(3, activation="softmax"),
        ]
    )


def make(kind, **kwargs):
    """A compiled model of ``kind`` on the blobs problem."""
    if kind.startswith("bbh"):
        estimator = kind.split("_", 1)[1]
        return compiled_model(kl_estimator=estimator, **kwargs)
    if kind == "bbb":
        model = bbh_tf.BayesByBackprop(bbb_net(), num_examples=256, **kwargs)
    elif kind == "mc_dropout":
        model = bbh_tf.MCDropout(plain_net(dropout=True), **kwargs)
    else:
        model = bbh_tf.MaximumLikelihood(plain_net(), **kwargs)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


KINDS = ["ml", "mc_dropout", "bbb", "bbh_semi_implicit", "bbh_adversarial"]


def state(model):
    """Every trained number: the weights and the optimizers' variables (the
    noise generators' states, which advance with every draw, left out)."""
    optimizers = [model.optimizer, getattr(model, "discriminator_optimizer", None)]
    variables = list(model.trainable_variables) + [
        v for o in optimizers if o is not None for v in o.variables
    ]
    return [np.array(v.numpy()) for v in variables]


def batches(x, y, bad_steps, size=64):
    """A dataset of ``size``-example batches whose steps ``bad_steps`` have a
    NaN input."""
    xs, ys = [], []
    for step, start in enumerate(range(0, len(x), size)):
        xb = x[start : start + size].copy()
        if step in bad_steps:
            xb[3, 1] = np.nan
        xs.append(xb)
        ys.append(y[start : start + size])
    return tf.data.Dataset.from_tensor_slices((np.stack(xs), np.stack(ys)))


def assert_same(before, after):
    assert len(before) == len(after)
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kind", KINDS)
def test_a_non_finite_step_is_skipped_and_counted(kind):
    x, y = blobs()
    model = make(kind)
    model.fit(x, y, batch_size=64, epochs=1, verbose=0)
    steps = int(model.optimizer.iterations.numpy())
    # Only bad batches: nothing may move, bit for bit.
    before = state(model)
    history = model.fit(batches(x, y, bad_steps={0, 1, 2, 3}), epochs=1, verbose=0)
    assert_same(before, state(model))
    assert history.history["non_finite_steps"] == [4]
    assert int(model.optimizer.iterations.numpy()) == steps
    # One bad batch among good ones: the others train, the logs stay finite.
    history = model.fit(batches(x, y, bad_steps={2}), epochs=2, verbose=0).history
    assert history["non_finite_steps"] == [1, 1]
    assert np.isfinite(history["loss"]).all()
    assert int(model.optimizer.iterations.numpy()) == steps + 6
    assert all(np.isfinite(w).all() for w in state(model))
    mean, _ = model.predict_distribution(x[:8], num_samples=4)
    assert np.isfinite(mean).all()


@pytest.mark.parametrize("kind", ["ml", "bbh_semi_implicit", "bbh_adversarial"])
def test_too_many_consecutive_non_finite_steps_stop_fit(kind):
    x, y = blobs()
    model = make(kind, max_non_finite_steps=2)
    model.fit(x, y, batch_size=64, epochs=1, verbose=0)
    before = state(model)
    with pytest.raises(
        FloatingPointError, match="3 consecutive .*max_non_finite_steps=2"
    ):
        model.fit(batches(x, y, bad_steps={1, 2, 3}), epochs=1, verbose=0)
    assert model.stop_training
    # The good first batch was applied; the bad ones were not.
    after = state(model)
    assert any(not np.array_equal(a, b) for a, b in zip(before, after))
    assert all(np.isfinite(w).all() for w in after)


def test_a_run_shorter_than_the_limit_does_not_stop_fit():
    x, y = blobs()
    model = make("bbh_semi_implicit", max_non_finite_steps=2)
    history = model.fit(batches(x, y, bad_steps={0, 1}), epochs=2, verbose=0)
    assert history.history["non_finite_steps"] == [2, 2]


def test_max_non_finite_steps_zero_stops_at_the_first_and_keeps_the_weights():
    x, y = blobs()
    model = make("bbh_semi_implicit", max_non_finite_steps=0)
    model.fit(x, y, batch_size=64, epochs=1, verbose=0)
    before = state(model)
    with pytest.raises(FloatingPointError, match="1 consecutive"):
        model.fit(batches(x, y, bad_steps={0}), epochs=1, verbose=0)
    assert_same(before, state(model))


def test_skipping_works_with_xla():
    x, y = blobs()
    model = make("bbh_semi_implicit")
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        discriminator_optimizer=keras.optimizers.Adam(1e-2),
        loss="sparse_categorical_crossentropy",
        jit_compile=True,
    )
    model.fit(x, y, batch_size=64, epochs=1, verbose=0)
    before = state(model)
    history = model.fit(batches(x, y, bad_steps={0, 1, 2, 3}), epochs=1, verbose=0)
    assert_same(before, state(model))
    assert history.history["non_finite_steps"] == [4]


def test_evaluate_does_not_log_skipped_steps():
    x, y = blobs()
    model = make("ml")
    model.fit(x, y, batch_size=64, epochs=1, verbose=0, validation_data=(x, y))
    assert "non_finite_steps" not in model.evaluate(x, y, verbose=0, return_dict=True)


@pytest.mark.parametrize("value", [-1, 1.5, "3", True])
def test_max_non_finite_steps_is_checked(value):
    with pytest.raises((TypeError, ValueError), match="max_non_finite_steps"):
        bbh_tf.MaximumLikelihood(plain_net(), max_non_finite_steps=value)


def test_max_non_finite_steps_survives_the_config():
    model = make("bbh_semi_implicit", max_non_finite_steps=3)
    config = model.get_config()
    assert config["max_non_finite_steps"] == 3
    assert bbh_tf.BayesByHypernet.from_config(config).max_non_finite_steps == 3


# --------------------------------------------------------------- bad input
def _trained():
    x, y = blobs(n=64)
    model = make("bbh_semi_implicit")
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    return model, x, y


def _with(array, index, value):
    array = array.copy().astype("float32")
    array[index] = value
    return array


X, Y = blobs(n=64)
FIT_CASES = [
    (
        "batch_size=-5",
        dict(batch_size=-5),
        ValueError,
        "`batch_size` must be an integer >= 1",
    ),
    (
        "batch_size=0",
        dict(batch_size=0),
        ValueError,
        "`batch_size` must be an integer >= 1",
    ),
    ("batch_size=2.5", dict(batch_size=2.5), TypeError, "`batch_size`"),
    ("epochs=-1", dict(epochs=-1), ValueError, "`epochs`"),
    (
        "empty x",
        dict(x=X[:0], y=Y[:0]),
        ValueError,
        "`x` must hold at least one example",
    ),
    ("fractional labels", dict(y=Y + 0.5), ValueError, "`y` must hold class indices"),
    (
        "label too large",
        dict(y=np.full(64, 3)),
        ValueError,
        r"`y` must hold class indices in \[0, 3\)",
    ),
    ("negative label", dict(y=np.full(64, -1)), ValueError, r"\[0, 3\)"),
    ("wrong width", dict(x=X[:, :5]), ValueError, r"`x` must have shape \(n, 6\)"),
    ("string x", dict(x=X.astype(str)), TypeError, "`x` must be a numeric array"),
    ("NaN x", dict(x=_with(X, (3, 1), np.nan)), ValueError, "`x` contains NaN"),
    ("inf y", dict(y=_with(Y, 4, np.inf)), ValueError, "`y` contains NaN"),
    ("short y", dict(y=Y[:10]), ValueError, "`y` must have one target per example"),
    ("two inputs", dict(x=[X, X]), TypeError, "`x` must be one array"),
    ("dict input", dict(x={"a": X}), TypeError, "`x` must be one array"),
    ("1-D x", dict(x=X[:, 0]), ValueError, "`x` must have shape .* batch axis"),
    (
        "negative weight",
        dict(sample_weight=np.full(64, -1.0)),
        ValueError,
        "`sample_weight` must be >= 0",
    ),
    (
        "short weight",
        dict(sample_weight=np.ones(3)),
        ValueError,
        "`sample_weight` must have one weight",
    ),
    (
        "bad validation x",
        dict(validation_data=(X[:, :2], Y)),
        ValueError,
        r"`validation_data\[0\]` must have shape",
    ),
    (
        "bad validation y",
        dict(validation_data=(X, Y + 7)),
        ValueError,
        r"`validation_data\[1\]` must hold class",
    ),
]


@pytest.mark.parametrize(
    "case, change, error, match", FIT_CASES, ids=[c[0] for c in FIT_CASES]
)
def test_fit_names_bad_input_before_any_step(case, change, error, match):
    model, x, y = _trained()
    before = state(model)
    arguments = dict(x=x, y=y, batch_size=32, epochs=1, verbose=0) | change
    with pytest.raises(error, match=match):
        model.fit(**arguments)
    assert_same(before, state(model))


def test_fit_checks_labels_of_an_unbuilt_model_too():
    model = make("ml")
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        model.fit(X, np.full(64, 5), verbose=0)


PREDICT_CASES = [
    (
        "evaluate wrong width",
        lambda m: m.evaluate(X[:, :5], Y, verbose=0),
        ValueError,
        r"`x` must have shape \(n, 6\)",
    ),
    (
        "evaluate label range",
        lambda m: m.evaluate(X, Y + 3, verbose=0),
        ValueError,
        r"`y` must hold class indices in \[0, 3\)",
    ),
    (
        "evaluate batch_size=0",
        lambda m: m.evaluate(X, Y, batch_size=0, verbose=0),
        ValueError,
        "`batch_size`",
    ),
    (
        "evaluate NaN",
        lambda m: m.evaluate(_with(X, (0, 0), np.nan), Y, verbose=0),
        ValueError,
        "`x` contains NaN",
    ),
    (
        "predict NaN",
        lambda m: m.predict(_with(X, (0, 0), np.inf), verbose=0),
        ValueError,
        "`x` contains NaN",
    ),
    (
        "predict wrong width",
        lambda m: m.predict(X[:, :2], verbose=0),
        ValueError,
        r"`x` must have shape \(n, 6\)",
    ),
    (
        "predict batch_size=-1",
        lambda m: m.predict(X, batch_size=-1, verbose=0),
        ValueError,
        "`batch_size`",
    ),
    (
        "predict strings",
        lambda m: m.predict(X.astype(str), verbose=0),
        TypeError,
        "`x` must be a numeric array",
    ),
    (
        "distribution num_samples=0",
        lambda m: m.predict_distribution(X, num_samples=0),
        ValueError,
        "`num_samples`",
    ),
    (
        "distribution batch_size=0",
        lambda m: m.predict_distribution(X, batch_size=0),
        ValueError,
        "`batch_size`",
    ),
    (
        "distribution strings",
        lambda m: m.predict_distribution(X.astype(str)),
        TypeError,
        "`x` must be a numeric array",
    ),
    (
        "distribution empty",
        lambda m: m.predict_distribution(X[:0]),
        ValueError,
        "at least one example",
    ),
    (
        "distribution two inputs",
        lambda m: m.predict_distribution([X, X]),
        TypeError,
        "`x` must be one array",
    ),
    (
        "samples num_samples=-1",
        lambda m: m.predict_samples(X, num_samples=-1),
        ValueError,
        "`num_samples`",
    ),
    (
        "samples wrong width",
        lambda m: m.predict_samples(X[:, :3]),
        ValueError,
        r"`x` must have shape \(n, 6\)",
    ),
]


@pytest.mark.parametrize(
    "case, call, error, match", PREDICT_CASES, ids=[c[0] for c in PREDICT_CASES]
)
def test_evaluation_and_prediction_name_bad_input(case, call, error, match):
    model, _, _ = _trained()
    with pytest.raises(error, match=match):
        call(model)


# ------------------------------------------------------- huge draw counts
def test_a_huge_draw_count_is_split_into_passes_that_fit_int32():
    from bbh_tf.prediction import _PASS_VALUES, draws_per_pass

    per_pass = draws_per_pass(10**9, 128, (784,))
    assert 1 <= per_pass and per_pass * 128 * 784 <= _PASS_VALUES < 2**31


@pytest.mark.parametrize("with_likelihood", [False, True])
def test_pooled_moments_equal_the_moments_of_all_draws(with_likelihood):
    from bbh_tf.prediction import pooled_moments

    rng = np.random.default_rng(0)
    locs = rng.normal(size=(10, 4, 3))
    noise_std = rng.uniform(0.5, 2.0, size=(10, 4, 3))

    def moments(lo, sd):
        mean = lo.mean(0)
        epistemic = lo.std(0)
        if not with_likelihood:
            return [mean, epistemic]
        aleatoric = np.sqrt((sd**2).mean(0))
        return [mean, np.sqrt(aleatoric**2 + epistemic**2), aleatoric, epistemic]

    counts = [4, 4, 2]
    parts = [
        moments(locs[a : a + c], noise_std[a : a + c])
        for a, c in zip([0, 4, 8], counts)
    ]
    for got, want in zip(pooled_moments(parts, counts), moments(locs, noise_std)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_predict_distribution_splits_draws_across_passes(monkeypatch):
    import bbh_tf.prediction as prediction

    model, x, _ = _trained()
    keras.utils.set_random_seed(0)
    whole = model.predict_distribution(x, num_samples=400)
    monkeypatch.setattr(prediction, "_PASS_VALUES", 6 * 64 * 30)  # 30 draws a pass
    keras.utils.set_random_seed(0)
    split = model.predict_distribution(x, num_samples=400, batch_size=64)
    samples = model.predict_samples(x[:5], num_samples=70)
    assert samples.shape == (70, 5, 3)
    # Other draws, the same distribution: close at 400 draws.
    np.testing.assert_allclose(split.mean, whole.mean, atol=0.05)
    np.testing.assert_allclose(split.std, whole.std, atol=0.05)


# ---------------------------------------------------------------- loading
def _archive_members(path):
    import zipfile

    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _write_archive(path, members):
    import zipfile

    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    import json

    folder = tmp_path_factory.mktemp("saved")
    model, x, _ = _trained()
    model.save(folder / "good.keras")
    members = _archive_members(folder / "good.keras")
    config = members["config.json"].decode()
    tampered = config.replace(
        '"registered_name": "bbh_tf>HyperDense"', '"registered_name": "Popen"', 1
    )
    tampered = tampered.replace(
        '"class_name": "HyperDense"', '"class_name": "Popen"', 1
    )
    assert tampered != config
    _write_archive(folder / "tampered.keras", members | {"config.json": tampered})
    newer = json.loads(config)
    newer["config"]["bbh_tf_version"] = "99.0.0"
    _write_archive(
        folder / "newer_bbh_tf.keras", members | {"config.json": json.dumps(newer)}
    )
    metadata = json.loads(members["metadata.json"])
    _write_archive(
        folder / "newer_keras.keras",
        members | {"metadata.json": json.dumps(metadata | {"keras_version": "99.0.0"})},
    )
    data = (folder / "good.keras").read_bytes()
    (folder / "truncated.keras").write_bytes(data[: len(data) // 2])
    (folder / "text.keras").write_text("not a model")
    return folder, model, x


LOAD_CASES = [
    ("missing", "absent.keras", FileNotFoundError, "`path` .* does not exist"),
    ("truncated", "truncated.keras", ValueError, "not a complete .keras archive"),
    ("not a zip", "text.keras", ValueError, "not a complete .keras archive"),
    (
        "unknown class",
        "tampered.keras",
        ValueError,
        "^BayesByHypernet could not be rebuilt from its config: Could not locate class 'Popen'",
    ),
    (
        "newer bbh_tf",
        "newer_bbh_tf.keras",
        ValueError,
        "saved with bbh_tf 99.0.0, newer than",
    ),
    (
        "newer keras",
        "newer_keras.keras",
        ValueError,
        "saved with Keras 99.0.0, newer than",
    ),
]


@pytest.mark.parametrize(
    "case, name, error, match", LOAD_CASES, ids=[c[0] for c in LOAD_CASES]
)
def test_loading_errors_say_what_is_wrong_first(saved, case, name, error, match):
    folder, _, _ = saved
    with pytest.raises(error, match=match):
        bbh_tf.load_model(folder / name)


def test_keras_load_model_also_puts_the_cause_first(saved):
    folder, _, _ = saved
    with pytest.raises(ValueError, match="^BayesByHypernet could not be rebuilt"):
        keras.models.load_model(folder / "tampered.keras")


def test_load_model_round_trips(saved):
    folder, model, x = saved
    loaded = bbh_tf.load_model(folder / "good.keras")
    assert isinstance(loaded, bbh_tf.BayesByHypernet)
    assert_same(
        [v.numpy() for v in model.network.trainable_variables],
        [v.numpy() for v in loaded.network.trainable_variables],
    )


# ------------------------------------------------- property-based checks
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

from bbh_tf import validation  # noqa: E402

NUMERIC = st.sampled_from(
    ["float16", "float32", "float64", "int8", "int32", "uint8", "bool"]
)


@settings(max_examples=60, deadline=None)
@given(rows=st.integers(1, 5), width=st.integers(1, 9), dtype=NUMERIC)
def test_any_numeric_array_of_the_input_shape_is_accepted_as_float32(
    rows, width, dtype
):
    x = np.ones((rows, width), dtype)
    checked = validation.inputs(x, (None, width))
    assert checked.dtype == np.float32 and checked.shape == (rows, width)


@settings(max_examples=60, deadline=None)
@given(
    shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=5),
    expected=st.tuples(st.integers(1, 5), st.integers(1, 5)),
)
def test_a_wrong_shape_is_named_whatever_it_is(shape, expected):
    expected_shape = (None, *expected)
    ok = len(shape) == 3 and shape[1:] == expected and shape[0] > 0
    x = np.zeros(shape, "float32")
    if ok:
        validation.inputs(x, expected_shape)
    else:
        with pytest.raises(ValueError, match="^`x` must"):
            validation.inputs(x, expected_shape)


def _as_float32(x):
    with np.errstate(over="ignore"):
        return x.astype("float32")


@settings(max_examples=40, deadline=None)
@given(
    x=hnp.arrays(
        "float64",
        st.tuples(st.integers(1, 4), st.integers(1, 4)),
        elements=st.floats(allow_nan=True, allow_infinity=True),
    )
)
def test_non_finite_values_are_named_and_finite_ones_pass(x):
    if not np.isfinite(x).all():
        with pytest.raises(ValueError, match="`x` contains NaN or infinite"):
            validation.inputs(x, None)
    elif not np.isfinite(_as_float32(x)).all():
        with pytest.raises(ValueError, match="`x` holds values beyond float32"):
            validation.inputs(x, None)
    else:
        assert np.isfinite(validation.inputs(x, None)).all()


@settings(max_examples=40, deadline=None)
@given(labels=hnp.arrays("int64", st.integers(1, 20), elements=st.integers(-3, 6)))
def test_sparse_labels_outside_the_classes_are_named(labels):
    if labels.min() >= 0 and labels.max() < 4:
        validation.targets(labels, len(labels), sparse_classes=4)
    else:
        with pytest.raises(
            ValueError, match=r"`y` must hold class indices in \[0, 4\)"
        ):
            validation.targets(labels, len(labels), sparse_classes=4)


# ------------------------------------------------------ killed and resumed
KILLED_RUN = """
import os, signal, sys
import keras, numpy as np, bbh_tf
sys.path.insert(0, {tests!r})
from conftest import blobs, compiled_model, small_classifier
mode, out, kill_at = sys.argv[1], sys.argv[2], int(sys.argv[3])
keras.utils.set_random_seed(0)
x, y = blobs(n=128)
model = compiled_model(num_examples=128)

class Kill(keras.callbacks.Callback):
    seen = 0
    def on_train_batch_end(self, batch, logs=None):
        Kill.seen += 1
        if Kill.seen == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

callbacks = []
if mode == "backup":
    callbacks = [keras.callbacks.BackupAndRestore("backup"), Kill()]
model.fit(x, y, batch_size=32, epochs=4, shuffle=False, verbose=0,
          callbacks=callbacks)
np.savez(out, *[v.numpy() for v in model.variables])
"""


def test_a_killed_run_resumes_to_the_uninterrupted_weights(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    (tmp_path / "run.py").write_text(
        KILLED_RUN.format(tests=os.path.dirname(os.path.abspath(__file__)))
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")

    def run(*args):
        return subprocess.run(
            [sys.executable, "run.py", *map(str, args)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    # Killed at a random batch after the first epoch's backup (of 16).
    kill_at = int(np.random.default_rng(5).integers(5, 16))
    assert run("plain", "plain.npz", 0).returncode == 0
    killed = run("backup", "killed.npz", kill_at)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    resumed = run("backup", "resumed.npz", 0)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    plain, again = np.load(tmp_path / "plain.npz"), np.load(tmp_path / "resumed.npz")
    # Weights, biases and the noise generator's state, bit for bit: the
    # epoch cut short is rerun from the last backup with the same draws.
    assert plain.files == again.files
    for name in plain.files:
        np.testing.assert_array_equal(
            plain[name], again[name], err_msg=f"kill_at={kill_at}"
        )


# ------------------------------------------------------ sharing by models
def test_a_hypernetwork_owned_by_a_built_model_is_refused_by_another():
    network = small_classifier()
    first = bbh_tf.BayesByHypernet(network, num_examples=64)
    first.build((None, 6))
    second = bbh_tf.BayesByHypernet(network, num_examples=64)
    with pytest.raises(ValueError, match="already belongs to the built model"):
        second.build((None, 6))
    # A model of its own builds; the first is untouched.
    bbh_tf.BayesByHypernet(small_classifier(), num_examples=64).build((None, 6))


@pytest.mark.parametrize("loss", ["mse", keras.losses.MeanSquaredError()])
def test_targets_of_another_shape_than_the_output_are_named(loss):
    x, y = blobs(n=32)
    net = keras.Sequential([keras.Input((6,)), keras.layers.Dense(2)])
    model = bbh_tf.MaximumLikelihood(net)
    model.compile(optimizer="adam", loss=loss)
    with pytest.raises(ValueError, match=r"`y` must have shape \(n, 2\) to match"):
        model.fit(x, y.astype("float32"), epochs=1, verbose=0)
    # A trailing axis of 1 may be left out.
    net1 = keras.Sequential([keras.Input((6,)), keras.layers.Dense(1)])
    one = bbh_tf.MaximumLikelihood(net1)
    one.compile(optimizer="adam", loss=loss)
    one.fit(x, y.astype("float32"), epochs=1, verbose=0)
