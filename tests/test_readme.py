"""The README's Python blocks run as written, one after the other as a
reader would run them (in a fresh process, in a scratch folder, so the
files they write stay there)."""

import os
import re

from conftest import REPO, run_python


def python_blocks():
    with open(os.path.join(REPO, "README.md")) as f:
        text = f.read()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_the_readme_has_a_quick_start():
    assert python_blocks()


def test_every_readme_python_block_runs(tmp_path):
    run_python("\n".join(python_blocks()), cwd=tmp_path, timeout=600)
    assert (tmp_path / "model.keras").exists()
    assert (tmp_path / "served" / "saved_model.pb").exists()
