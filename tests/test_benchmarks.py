"""Smoke test of benchmarks/performance.py with tiny settings, so the script
behind docs/performance.md cannot silently rot. Needs ``BBH_MNIST_DIR``."""

import json
import os
import subprocess
import sys

from conftest import REPO
from test_examples import MNIST_DIR, needs_mnist


@needs_mnist
def test_performance_benchmark_measures_every_part(tmp_path):
    output, figure = tmp_path / "performance.json", tmp_path / "scaling.png"
    result = subprocess.run(
        [
            sys.executable, os.path.join(REPO, "benchmarks", "performance.py"),
            f"--data_dir={os.path.abspath(MNIST_DIR)}", "--train_size=256",
            "--methods=ml,bbh,bbh_full,flipout", "--widths=8,16", "--epochs=2",
            "--rounds=2", "--predict_width=16", "--predict_draws=1,3",
            "--slow_train_size=128", "--slow_widths=16",
            f"--output={output}", f"--figure={figure}",
        ],
        cwd=tmp_path,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPO),
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    document = json.loads(output.read_text())
    rows = {(r["method"], r["width"]): r for r in document["results"]}
    assert all("error" not in r for r in rows.values()), rows
    # bbh_full only at its slow width, scaled from a 128-digit epoch.
    assert set(rows) == {(m, w) for m in ("ml", "bbh", "flipout") for w in (8, 16)} | {
        ("bbh_full", 16)}
    assert rows[("bbh_full", 16)]["scaled_to_full_epoch"]
    assert rows[("ml", 8)]["epoch_ratio_to_ml"] == 1.0
    assert set(rows[("bbh", 16)]["predict_seconds"]) == {"1", "3"}
    assert rows[("bbh", 16)]["peak_rss_mib"] > 0
    together = {(r["method"], r["width"]) for r in document["interleaved"]}
    assert together == {(m, w) for m in ("ml", "bbh", "flipout") for w in (8, 16)}
    assert figure.stat().st_size > 0
    assert "| 16 | bbh |" in result.stdout  # the Markdown table
