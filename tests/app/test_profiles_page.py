"""The Profiles page writes what its form says to profiles.toml, and refuses what load_profiles would refuse."""
from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from core.retrieval.profiles import Bm25Profile, load_profiles

APP = str(Path(__file__).resolve().parents[2] / "app.py")


def open_profiles() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=300)
    at.query_params.update({"dataset": "csn-mini", "profiles": "bm25-code"})
    at.run()
    at.switch_page("pages/profiles.py").run()
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    return at


def test_a_bm25_profile_is_created_edited_and_deleted_through_the_form(app_at, tmp_path, mini_data_dir):
    from core.workspace import Workspace

    workspace = app_at(Workspace.open(tmp_path / "ws", mini_data_dir), mini_data_dir)
    at = open_profiles()
    at.text_input[0].input("bm25-k09")
    at.number_input[0].set_value(0.9)  # k1
    at.number_input[1].set_value(0.4)  # b
    at.button[0].click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert load_profiles(workspace.profiles_file)["bm25-k09"] == Bm25Profile("bm25-k09", "code", 0.9, 0.4)
    assert any("Saved bm25-k09" in s.value.replace("\\", "") for s in at.success)

    at.selectbox(key="profiles_choice").set_value("bm25-k09").run()
    at.number_input[0].set_value(1.6)
    at.button[0].click().run()
    assert load_profiles(workspace.profiles_file)["bm25-k09"].k1 == 1.6

    at.selectbox(key="profiles_choice").set_value("bm25-k09").run()
    at.button(key="profiles_delete").click().run()
    assert "bm25-k09" not in load_profiles(workspace.profiles_file)


def test_a_hybrid_with_one_member_is_refused_with_a_message_and_nothing_is_written(app_at, tmp_path, mini_data_dir):
    from core.workspace import Workspace

    workspace = app_at(Workspace.open(tmp_path / "ws", mini_data_dir), mini_data_dir)
    at = open_profiles()
    at.selectbox(key="profiles_kind_➕ New profile").set_value("hybrid").run()
    at.text_input[0].input("lonely")
    at.multiselect[0].set_value(["bm25-code"])
    at.button[0].click().run()
    assert any("at least two member" in e.value for e in at.error)
    assert not workspace.profiles_file.exists()
