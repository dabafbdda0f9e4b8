"""examples/regression.py end to end on tiny settings, the tabular data
helpers, and its flag errors."""

import json
import math

import numpy as np
import pytest
from test_examples import run_example, run_failing_example

import bbh_tf

SOME_METHODS = "bbh_weight_norm_semi_implicit,bbh_full_adversarial,bbb,mc_dropout,ml"


def test_regression_example_on_generated_data(tmp_path):
    output = tmp_path / "regression.json"
    stdout = run_example(
        "regression.py",
        f"--methods={SOME_METHODS}",
        "--splits=2",
        "--epochs=2",
        "--num_samples=5",
        f"--output={output}",
        cwd=tmp_path,
    )
    document = json.loads(output.read_text())
    assert document["dataset"] == "generated" and document["features"] == 8
    assert set(document["summary"]) == set(SOME_METHODS.split(","))
    for method, row in document["summary"].items():
        assert row["splits"] == 2 and row["splits_finite"] == 2, method
        assert row["rmse"] > 0 and math.isfinite(row["log_likelihood"]), method
        assert 0 <= row["coverage_95"] <= 1 and row["crps"] > 0, method
        assert row["rmse_se"] >= 0
        assert method in stdout
    # Every method meets the same splits.
    assert [r["split"] for r in document["splits"]["ml"]] == [0, 1]
    assert document["environment"]["bbh_tf"] == bbh_tf.__version__


def test_regression_example_reads_a_csv(tmp_path):
    x, y = bbh_tf.data.synthetic_regression(n=60, num_features=3, seed=1)
    path = tmp_path / "data.csv"
    rows = ["a,b,price,c"] + [f"{r[0]},{r[1]},{t},{r[2]}" for r, t in zip(x, y)]
    path.write_text("\n".join(rows) + "\n")
    output = tmp_path / "out.json"
    run_example(
        "regression.py",
        f"--csv={path}",
        "--target=price",
        "--methods=ml",
        "--splits=1",
        "--epochs=1",
        f"--output={output}",
        cwd=tmp_path,
    )
    document = json.loads(output.read_text())
    assert document["rows"] == 60 and document["features"] == 3
    assert document["dataset"] == "data.csv"


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--methods=bbh"], "--methods: unknown ['bbh']"),
        (["--csv=x.csv"], "--csv needs --target"),
        (["--learning_rate=-1"], "--learning_rate must be a finite number > 0"),
        (["--splits=0"], "--splits"),
    ],
)
def test_regression_example_rejects_bad_flags(tmp_path, flags, message):
    stderr = run_failing_example("regression.py", *flags, cwd=tmp_path)
    assert message in stderr


def test_load_csv_names_what_is_wrong(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,b\n1,2\n3,x\n")
    with pytest.raises(ValueError, match="line 3: column 'b' holds 'x'"):
        bbh_tf.data.load_csv(path, "a")
    with pytest.raises(ValueError, match="`target` 'z' is not a column"):
        bbh_tf.data.load_csv(path, "z")
    path.write_text("a,b\n1,nan\n")
    with pytest.raises(ValueError, match="NaN"):
        bbh_tf.data.load_csv(path, "a")


def test_standardized_splits_use_training_statistics_only():
    x, y = bbh_tf.data.synthetic_regression(n=100, seed=0)
    splits = list(bbh_tf.data.standardized_splits(x, y, num_splits=3, seed=5))
    assert len(splits) == 3
    for split in splits:
        assert split["x_train"].shape == (90, 8) and split["x_test"].shape == (10, 8)
        np.testing.assert_allclose(split["x_train"].mean(0), 0, atol=1e-5)
        np.testing.assert_allclose(split["y_train"].std(), 1, rtol=1e-4)
        # The targets come back in their own units.
        restored = split["y_test"][:, 0] * split["y_std"] + split["y_mean"]
        assert np.all(np.isin(np.round(restored, 3), np.round(y, 3)))
    # Same seed, same splits; the splits differ from each other.
    again = list(bbh_tf.data.standardized_splits(x, y, num_splits=3, seed=5))
    np.testing.assert_array_equal(splits[1]["x_test"], again[1]["x_test"])
    assert not np.array_equal(splits[0]["x_test"], splits[1]["x_test"])
    with pytest.raises(ValueError, match="`x` must have shape"):
        next(bbh_tf.data.standardized_splits(x[:5], y))
