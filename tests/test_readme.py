"""The README's notebook example runs as written, on the bundled data, in a fresh workspace."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_shared

ROOT = Path(__file__).resolve().parents[1]


def notebook_example() -> str:
    """The first Python block after 'usable from a notebook' in README.md."""
    readme = (ROOT / "README.md").read_text()
    after = readme[readme.index("usable from a notebook"):]
    return re.search(r"```python\n(.*?)```", after, re.S).group(1)


def test_the_readme_names_only_modules_that_exist():
    for module in re.findall(r"^from (core[\w.]*) import", notebook_example(), re.M):
        assert (ROOT / (module.replace(".", "/") + ".py")).exists(), f"README imports {module}, which is not a module"


@pytest.mark.slow
def test_the_readme_notebook_example_runs_as_written(tmp_path):
    require_shared()
    env = {**os.environ, "CODEIR_WORKSPACE": str(tmp_path / "workspace"), "HF_HUB_OFFLINE": "1"}
    env.pop("CODEIR_DATA_DIR", None)  # as a user runs it: the bundled data beside the project
    result = subprocess.run([sys.executable, "-c", notebook_example()], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    means = re.findall(r"ndcg@10'?\s*:?\s*([0-9.]+)", result.stdout)
    assert means and 0.8 < float(means[0]) <= 1.0, result.stdout  # hybrid-rrf on csn-python-code2doc: ~0.93
    top = re.search(r"[\[(]((?:'[^']+',?\s*){5})[\])]", result.stdout)
    assert top, result.stdout  # the five doc ids of the pasted query
