"""Smoke tests of the benchmarks (benchmarks/) behind docs/performance.md
(tests/test_research_scripts.py has research/'s), with tiny
settings, so they cannot silently rot. performance.py needs
``BBH_MNIST_DIR``; the others use random or toy data."""

import json
import os

from conftest import REPO, run_subprocess
from test_examples import MNIST_DIR, needs_mnist


@needs_mnist
def test_performance_benchmark_measures_every_part(tmp_path):
    output, figure = tmp_path / "performance.json", tmp_path / "scaling.png"
    result = run_subprocess(
        os.path.join(REPO, "benchmarks", "performance.py"),
        f"--data_dir={os.path.abspath(MNIST_DIR)}",
        "--train_size=256",
        "--methods=ml,bbh,bbh_full,flipout,two_products",
        "--widths=16",
        "--epochs=2",
        "--rounds=2",
        "--predict_width=16",
        "--predict_draws=1,3",
        "--slow_train_size=128",
        "--slow_widths=16",
        f"--output={output}",
        f"--figure={figure}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    document = json.loads(output.read_text())
    rows = {(r["method"], r["width"]): r for r in document["results"]}
    assert all("error" not in r for r in rows.values()), rows
    # One width (each (method, width) is a process of its own, about 15 s
    # here); bbh_full's epoch is scaled from a 128-digit one.
    assert set(rows) == {
        (m, 16) for m in ("ml", "bbh", "flipout", "bbh_full", "two_products")
    }
    assert rows[("bbh_full", 16)]["scaled_to_full_epoch"]
    assert rows[("ml", 16)]["epoch_ratio_to_ml"] == 1.0
    assert set(rows[("bbh", 16)]["predict_seconds"]) == {"1", "3"}
    assert rows[("bbh", 16)]["peak_rss_mib"] > 0
    together = {(r["method"], r["width"]) for r in document["interleaved"]}
    assert together == {(m, 16) for m in ("ml", "bbh", "flipout", "two_products")}
    assert figure.stat().st_size > 0
    assert "| 16 | bbh |" in result.stdout  # the Markdown table


def test_step_time_benchmark_times_every_variant(tmp_path):
    # benchmarks/step_time.py (random data, no MNIST needed): every variant,
    # including the timing-only subclasses, trains and is timed.
    result = run_subprocess(
        os.path.join(REPO, "benchmarks", "step_time.py"),
        "--steps=1",
        "--rounds=1",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    lines = result.stdout.splitlines()
    table = lines[[line.startswith("variant") for line in lines].index(True) + 1 :]
    rows = {
        line.split()[0]: [float(v) for v in line.split()[1:]]
        for line in table
        if line.strip()
    }
    # The default variants (bbh_full_mode, about 0.7 s a step, is timed only
    # when named, in the benchmark's own runs).
    assert set(rows) == {
        "ml",
        "ml_weight_norm",
        "ml_extra_variables",
        "bbh_generation_only",
        "bbh_scale_mode",
        "bbh_one_draw",
        "bbh_no_mixture",
        "bbh",
        "bbh_nearest_neighbour",
        "bbh_adversarial",
    }
    assert all(len(v) == 2 and v[0] > 0 for v in rows.values())


def test_prior_log_prob_benchmark_times_both_gradients(tmp_path):
    result = run_subprocess(
        os.path.join(REPO, "benchmarks", "prior_log_prob.py"),
        "--size=1000",
        "--calls=1",
        "--rounds=1",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    rows = [line.split() for line in result.stdout.splitlines()[-2:]]
    assert [row[0] for row in rows] == ["written_out", "autodiff"]
    assert all(float(value) > 0 for row in rows for value in row[1:])


@needs_mnist
def test_epoch_time_benchmark_times_each_hypernetwork(tmp_path):
    # benchmarks/epoch_time.py on 256 digits: every Bayes by Hypernet variant
    # trains, and each builds the hypernetwork its name promises.
    script = (
        "import sys\n"
        f"sys.path.insert(0, {os.path.join(REPO, 'benchmarks')!r})\n"
        "import epoch_time\n"
        "epoch_time.FLAGS(['epoch_time'])\n"
        "for name, model in (('bbh_paper', epoch_time.build_earlier_bbh(256)),\n"
        "                    ('bbh_per_value', epoch_time.build_earlier_bbh(256, True)),\n"
        "                    ('bbh', epoch_time.mnist_mlp.BUILDERS['bbh'](256))):\n"
        "    h = model.network.layers[0].hypernet\n"
        "    print(name, h.semi_implicit, h.noise_per_chunk, h.output_dim,\n"
        "          type(model.kl_estimator).__name__)\n"
    )
    built = run_subprocess("-c", script, cwd=tmp_path)
    assert built.returncode == 0, built.stderr[-4000:]
    assert built.stdout.split("\n")[-4:-1] == [
        "bbh_paper False False 256 AdversarialKL",
        "bbh_per_value False True 1 AdversarialKL",
        "bbh True False 256 SemiImplicitKL",
    ]
    output = tmp_path / "epoch_time.json"
    result = run_subprocess(
        os.path.join(REPO, "benchmarks", "epoch_time.py"),
        f"--data_dir={os.path.abspath(MNIST_DIR)}",
        "--train_size=256",
        "--methods=ml,bbh_paper,bbh_per_value,bbh",
        "--rounds=2",
        f"--output={output}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    results = json.loads(output.read_text())["results"]
    assert set(results) == {"ml", "bbh_paper", "bbh_per_value", "bbh"}
    # An unknown method is a usage error naming the flag, before any data.
    rejected = run_subprocess(
        os.path.join(REPO, "benchmarks", "epoch_time.py"),
        f"--data_dir={tmp_path / 'no_data'}",
        "--methods=ml,bbh_papr",
        f"--output={tmp_path / 'rejected.json'}",
        cwd=tmp_path,
    )
    assert rejected.returncode != 0 and "Traceback" not in rejected.stderr
    assert "--methods must name methods of" in rejected.stderr
    assert "bbh_papr" in rejected.stderr
    assert not (tmp_path / "rejected.json").exists()
    assert results["ml"]["ratio_to_ml"] == 1.0
    saved_flags = json.loads(output.read_text())["flags"]
    assert (
        saved_flags["num_weight_samples"] == 5
        and saved_flags["noise_per_chunk"] is False
    )
    assert saved_flags["kl_estimator"] == "semi_implicit"
    assert all(
        len(r["seconds"]) == 2 and r["median_after_first"] > 0 for r in results.values()
    )


def test_xla_noise_benchmark_times_both_samplers_with_and_without_xla(tmp_path):
    output = tmp_path / "xla_noise.json"
    result = run_subprocess(
        os.path.join(REPO, "benchmarks", "xla_noise.py"),
        "--shape=5,16,8",
        "--rounds=2",
        "--calls=2",
        f"--output={output}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    saved = json.loads(output.read_text())
    assert saved["shape"] == [5, 16, 8]
    assert sorted(saved["results"]) == sorted(
        f"{name}, jit_compile={jit}"
        for name in ("keras.random.normal", "bbh_tf (Philox named)")
        for jit in (False, True)
    )
    assert all(len(r["ms"]) == 2 and r["min_ms"] > 0 for r in saved["results"].values())
    assert "processor" in saved["environment"]
    for shape in ("5,x", "5,0"):
        rejected = run_subprocess(
            os.path.join(REPO, "benchmarks", "xla_noise.py"),
            f"--shape={shape}",
            cwd=tmp_path,
        )
        assert rejected.returncode != 0 and "Traceback" not in rejected.stderr
        assert "--shape must be positive integers" in rejected.stderr
