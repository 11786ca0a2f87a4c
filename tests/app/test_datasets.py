"""The datasets page lists and counts datasets, imports a good zip, refuses an unsafe one, and explains offline downloads."""
import io
import shutil
import uuid
import zipfile
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.data.archives import export_zip

APP = Path(__file__).resolve().parents[2] / "app.py"


def open_datasets(dataset: str = "csn-mini") -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=300)
    at.query_params["dataset"] = dataset
    at.run()
    at.switch_page("pages/datasets.py").run()
    assert not at.exception, at.exception
    return at


def catalog(at: AppTest):
    return next(df.value for df in at.dataframe if "origin" in df.value.columns).set_index("name")


def upload(at: AppTest, filename: str, content: bytes, name: str = "") -> AppTest:
    at.file_uploader(key="datasets_zip").set_value((filename, content, "application/zip"))
    at.text_input(key="datasets_zip_name").input(name)
    at.run()
    at.button(key="datasets_import").click().run()
    assert not at.exception, at.exception
    return at


@pytest.mark.parametrize("name, documents, queries", [("csn-mini", 400, 40), ("cosqa-mini", 300, 40)])
def test_the_bundled_minis_are_listed_and_counted(app_env, name, documents, queries):
    at = open_datasets(name)
    listed = catalog(at)
    assert {"csn-mini", "cosqa-mini"} <= set(listed.index)
    assert (listed.loc[name, "documents"], listed.loc[name, "queries"]) == (documents, queries)
    assert listed.loc[name, "origin"] == "data-dir"
    shown = {m.label: m.value for m in at.metric}
    assert shown["Documents"] == str(documents) and shown["Queries"] == str(queries)
    assert shown["Judged queries"] == str(queries) and shown["Qrels"] == str(queries)
    assert shown["Grades"] == "binary"
    assert len(at.get("plotly_chart")) == 2  # document and query length histograms


def test_browsing_queries_shows_each_query_with_its_positive_and_filters_rows(app_env, csn_mini):
    at = open_datasets("csn-mini")
    rows = next(df.value for df in at.dataframe if "positive id" in df.value.columns)
    assert len(rows) == 25
    first = csn_mini.queries[0]
    positive = csn_mini.qrels.positives(first.id)[0]
    assert rows.iloc[0]["query id"] == first.id and rows.iloc[0]["positive id"] == positive
    assert rows.iloc[0]["positive"] == csn_mini.document(positive).full_text
    at.text_input(key="datasets_filter").input(first.id).run()
    filtered = next(df.value for df in at.dataframe if "positive id" in df.value.columns)
    assert first.id in set(filtered["query id"]) and len(filtered) < len(csn_mini.queries)


def test_uploading_a_good_zip_adds_a_dataset_that_the_sidebar_then_lists(app_env, mini_data_dir, tmp_path):
    archive = export_zip(mini_data_dir / "csn-mini", tmp_path / "csn-mini.zip").read_bytes()
    name = f"uploaded-{uuid.uuid4().hex[:8]}"
    try:
        at = upload(open_datasets(), "csn-mini.zip", archive, name)
        assert not at.error, [e.value for e in at.error]
        assert any(name in s.value.replace("\\", "") for s in at.success)  # shown escaped: "uploaded\-..."
        assert (app_env.datasets_dir / name / "corpus.jsonl").is_file()
        assert catalog(at).loc[name, "documents"] == 400
        fresh = AppTest.from_file(str(APP), default_timeout=300).run()
        assert name in fresh.sidebar.selectbox(key="dataset").options
    finally:
        shutil.rmtree(app_env.datasets_dir / name, ignore_errors=True)


def test_a_zip_that_climbs_out_with_dotdot_is_refused_with_a_visible_error(app_env):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("evil/corpus.jsonl", '{"_id": "d1", "text": "x"}\n')
        archive.writestr("../escaped.txt", "pwned")
    before = sorted(p.name for p in app_env.datasets_dir.iterdir())
    at = upload(open_datasets(), "evil.zip", buffer.getvalue())
    assert any("climbs out of its folder" in e.value for e in at.error)
    assert not at.success
    assert sorted(p.name for p in app_env.datasets_dir.iterdir()) == before
    assert not (app_env.datasets_dir.parent / "escaped.txt").exists()


def test_a_zip_without_qrels_is_refused_with_the_missing_file_named(app_env):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("broken/corpus.jsonl", '{"_id": "d1", "text": "x"}\n')
        archive.writestr("broken/queries.jsonl", '{"_id": "q1", "text": "y"}\n')
    at = upload(open_datasets(), "broken.zip", buffer.getvalue())
    assert any("qrels" in e.value for e in at.error)


def test_downloading_from_the_hub_offline_says_what_to_do_instead(app_env):
    at = open_datasets()
    at.button(key="FormSubmitter:datasets_hub-Download").click().run()
    assert not at.exception
    assert any("offline" in e.value and "import its zip" in e.value for e in at.error)
