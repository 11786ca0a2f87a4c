"""core.evaluation.tags: failure tags survive reloads, replace each other by key, and a damaged tags.json is never lost."""
from __future__ import annotations

import json

import pytest

from core.evaluation.tags import REASONS, TagError, get_tag, list_tags, load_tags, remove_tag, save_tag, tags_frame
from core.workspace import Workspace


@pytest.fixture
def tag_workspace(tmp_path) -> Workspace:
    return Workspace.open(tmp_path / "ws", tmp_path / "data")


def test_a_saved_tag_survives_a_reload_from_disk(tag_workspace):
    save_tag(tag_workspace, "csn-mini", "bm25-code", "q1", "identifier overlap", "rank 1 shares read/yaml")
    reopened = Workspace.open(tag_workspace.root)
    tag = get_tag(reopened, "csn-mini", "bm25-code", "q1")
    assert (tag.reason, tag.note) == ("identifier overlap", "rank 1 shares read/yaml")
    assert tag.time.endswith("+00:00")
    stored = json.loads(tag_workspace.tags_file.read_text(encoding="utf-8"))
    assert stored["tags"][0]["query_id"] == "q1"


def test_saving_the_same_failure_again_replaces_its_tag_and_keeps_the_others(tag_workspace):
    save_tag(tag_workspace, "csn-mini", "bm25-code", "q1", "other", "first look")
    save_tag(tag_workspace, "csn-mini", "dense-minilm", "q1", "near-duplicate")
    save_tag(tag_workspace, "cosqa-mini", "bm25-code", "q1", "wrong qrel")
    save_tag(tag_workspace, "csn-mini", "bm25-code", "q1", "generic summary", "second look")
    tags = load_tags(tag_workspace).tags
    assert len(tags) == 3
    assert get_tag(tag_workspace, "csn-mini", "bm25-code", "q1").note == "second look"
    assert [t.profile for t in list_tags(tag_workspace, "csn-mini")] == ["bm25-code", "dense-minilm"]
    assert [t.query_id for t in list_tags(tag_workspace, "csn-mini", "dense-minilm")] == ["q1"]


def test_removing_a_tag_deletes_only_that_one(tag_workspace):
    save_tag(tag_workspace, "d", "p", "q1", "other")
    save_tag(tag_workspace, "d", "p", "q2", "other")
    remove_tag(tag_workspace, "d", "p", "q1")
    remove_tag(tag_workspace, "d", "p", "never-tagged")
    assert [t.query_id for t in list_tags(tag_workspace)] == ["q2"]


def test_a_free_text_reason_is_kept_on_one_line_and_an_empty_one_is_refused(tag_workspace):
    save_tag(tag_workspace, "d", "p", "q", "  tokenizer\nsplits   badly ")
    assert get_tag(tag_workspace, "d", "p", "q").reason == "tokenizer splits badly"
    assert "tokenizer splits badly" not in REASONS
    with pytest.raises(TagError, match="reason"):
        save_tag(tag_workspace, "d", "p", "q", "   ")
    with pytest.raises(TagError, match="under"):
        save_tag(tag_workspace, "d", "p", "q", "x" * 500)


def test_a_corrupt_tags_file_is_reported_and_left_untouched_by_reading(tag_workspace):
    damaged = b'{"version": 1, "tags": [{"dataset": "d", "profile": "p", "query_id": "q1", "reason": "oth'
    tag_workspace.tags_file.write_bytes(damaged)
    book = load_tags(tag_workspace)
    assert book.tags == () and "not valid JSON" in book.problems[0]
    assert tag_workspace.tags_file.read_bytes() == damaged


def test_writing_over_a_corrupt_tags_file_keeps_a_backup_and_says_where(tag_workspace):
    damaged = b"\xff\xfe not json at all"
    tag_workspace.tags_file.write_bytes(damaged)
    book = save_tag(tag_workspace, "d", "p", "q1", "other")
    assert book.backup is not None and book.backup.read_bytes() == damaged
    assert book.backup.name.startswith("tags.json.") and book.backup.suffix == ".bak"
    assert any(book.backup.name in problem for problem in book.problems)
    assert [t.query_id for t in load_tags(tag_workspace).tags] == ["q1"] and load_tags(tag_workspace).problems == ()


def test_unreadable_entries_are_skipped_and_reported_while_good_ones_load(tag_workspace):
    good = {"dataset": "d", "profile": "p", "query_id": "q1", "reason": "other", "note": "", "time": ""}
    tag_workspace.tags_file.write_text(json.dumps({"version": 1, "tags": [good, {"dataset": "d"}, "junk"]}), encoding="utf-8")
    book = load_tags(tag_workspace)
    assert [t.query_id for t in book.tags] == ["q1"]
    assert len(book.problems) == 2 and "#2" in book.problems[0] and "#3" in book.problems[1]
    written = save_tag(tag_workspace, "d", "p", "q2", "other")
    assert [t.query_id for t in written.tags] == ["q1", "q2"] and written.backup.is_file()


def test_writes_leave_no_temporary_files_behind(tag_workspace):
    for number in range(5):
        save_tag(tag_workspace, "d", "p", f"q{number}", "other")
    assert sorted(p.name for p in tag_workspace.root.iterdir() if "tags" in p.name) == ["tags.json"]


def test_tags_table_has_one_row_per_tag_with_every_field(tag_workspace):
    save_tag(tag_workspace, "d", "p", "q1", "wrong qrel", "qrel points at a sibling")
    frame = tags_frame(list_tags(tag_workspace))
    assert list(frame.columns) == ["dataset", "profile", "query_id", "reason", "note", "time"]
    assert frame.loc[0, "note"] == "qrel points at a sibling"
    assert list(tags_frame([]).columns) == list(frame.columns)
