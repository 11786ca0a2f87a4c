"""The build-a-benchmark page validates its folder and name, builds with core.data.source_benchmark and shows the result's stats."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.data.datasets import load_dataset
from core.data.source_benchmark import build_from_tree
from core.evaluation.stats import dataset_stats

APP = str(Path(__file__).resolve().parents[2] / "app.py")
JSON_PACKAGE = Path(json.__file__).parent  # a real source tree present wherever Python is: 14 documented functions


@pytest.fixture
def fresh_env(app_at, workspace):
    """A fresh workspace per test: the page writes datasets into it."""
    return app_at(workspace, workspace.data_dir)


def open_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=300)
    at.query_params["dataset"] = "csn-mini"
    at.run()
    at.switch_page("pages/build_benchmark.py").run()
    assert not at.exception, at.exception
    return at


def submit(at: AppTest, root: str, name: str, queries: int = 6, direction: str = "code2doc") -> AppTest:
    at.text_input[0].input(root)
    at.text_input[1].input(name)
    at.number_input[0].set_value(queries)
    at.radio[0].set_value(direction)
    at.button[0].click().run()
    assert not at.exception, at.exception
    return at


def test_building_from_a_local_tree_writes_the_dataset_and_shows_its_counts(fresh_env):
    at = submit(open_page(), str(JSON_PACKAGE), "json-bench")
    assert not at.error, [e.value for e in at.error]
    written = load_dataset(fresh_env.datasets_dir / "json-bench")
    expected = build_from_tree(JSON_PACKAGE, "json-bench", "code2doc", ["python"], 6, strip_docstring_from_query=True)
    assert [q.text for q in written.queries] == [q.text for q in expected.queries]  # the stripped-docstring default
    stats = dataset_stats(written)
    shown = {metric.label: metric.value for metric in at.metric}
    assert shown == {"Queries": f"{stats.queries:,}", "Documents": f"{stats.documents:,}", "Languages": "1"}
    assert r"Built **json\-bench**" in at.success[0].value


@pytest.mark.parametrize("root,message", [
    ("https://github.com/psf/requests", "not a local path"),
    ("/no/such/folder", "does not exist"),
    (json.__file__, "is a file"),
])
def test_a_root_that_is_not_a_local_folder_is_refused(fresh_env, root, message):
    at = submit(open_page(), root, "x-bench")
    assert message in at.error[0].value
    assert not (fresh_env.datasets_dir / "x-bench").exists()


def test_a_taken_or_invalid_name_is_refused(fresh_env):
    at = submit(open_page(), str(JSON_PACKAGE), "csn-mini")
    assert "already exists" in at.error[0].value
    at = submit(open_page(), str(JSON_PACKAGE), "../escape")
    assert "not allowed" in at.error[0].value
    assert not any(fresh_env.datasets_dir.iterdir())
