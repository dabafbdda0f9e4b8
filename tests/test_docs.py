"""The documentation: the site builds without a warning, and its data
folder holds exactly what the pages reference.

``mkdocs build --strict`` (mkdocs.yml: the pages and the API reference
generated from the docstrings) passes. Every ``docs/runs/...`` path a page
names (templates such as ``seedS``, ``seed{0,1}`` and ``<method>``
expanded) exists, and every entry directly under ``docs/runs/`` is named by
some page.
"""

import fnmatch
import glob
import itertools
import os
import re

from conftest import REPO, run_subprocess

RUNS = os.path.join(REPO, "docs", "runs")
REFERENCE = re.compile(r"(?:docs/runs/|\.\./runs/)([A-Za-z0-9_.{},<>*/-]+)")


def pages():
    found = glob.glob(os.path.join(REPO, "docs", "**", "*.md"), recursive=True)
    return found + [os.path.join(REPO, "README.md")]


def references():
    names = set()
    for page in pages():
        with open(page) as f:
            for match in REFERENCE.finditer(f.read()):
                names.add(match.group(1).rstrip(".,)`/"))
    return sorted(name for name in names if name)


def patterns(reference):
    """Glob patterns for ``reference``, its templates expanded."""
    reference = re.sub(r"<[^>]+>", "*", reference)
    reference = re.sub(r"seedS", "seed*", reference)
    parts = re.split(r"\{([^}]*)\}", reference)
    choices = [[p] if i % 2 == 0 else p.split(",") for i, p in enumerate(parts)]
    return ["".join(c) for c in itertools.product(*choices)]


def test_every_referenced_run_exists():
    missing = [
        pattern
        for reference in references()
        for pattern in patterns(reference)
        if not glob.glob(os.path.join(RUNS, pattern))
    ]
    assert not missing, missing


def test_every_run_is_referenced():
    named = {pattern.split("/")[0] for r in references() for pattern in patterns(r)}
    unreferenced = [
        entry
        for entry in sorted(os.listdir(RUNS))
        if not any(fnmatch.fnmatch(entry, name) for name in named)
    ]
    assert not unreferenced, unreferenced


def test_the_site_builds_strict(tmp_path):
    # Strict: a broken link, a missing page or a docstring that names an
    # argument the signature lacks fails the build.
    result = run_subprocess(
        "-m",
        "mkdocs",
        "build",
        "--strict",
        f"--site-dir={tmp_path}",
        cwd=REPO,
        env_extra={"NO_MKDOCS_2_WARNING": "1"},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert (tmp_path / "reference" / "index.html").exists()
