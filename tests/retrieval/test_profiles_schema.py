"""profiles.toml against one schema: wrong types, odd names and stray sections are refused with file, profile and field."""
from __future__ import annotations

import pytest

from core.cli.main import main
from core.errors import ProfileError
from core.retrieval.profiles import Bm25Profile, DenseProfile, load_profiles, save_profiles, upsert_profile
from core.workspace import Workspace


@pytest.mark.parametrize("toml, where, expected", [
    ('[profiles.x]\nkind = "bm25"\nk1 = "fast"\n', "profile x: k1", "must be a number, not 'fast'"),
    ('[profiles.x]\nkind = "bm25"\nb = true\n', "profile x: b", "must be a number, not True"),
    ('[profiles.x]\nkind = "bm25"\nanalyzer = 3\n', "profile x: analyzer", "must be text, not 3"),
    ('[profiles.x]\nkind = "hybrid"\nmembers = "bm25-code"\n', "profile x: members", "must be a list of profile names"),
    ('[profiles.x]\nkind = "hybrid"\nmembers = ["bm25-code", 5]\n', "profile x: members", "must be a list of profile names"),
    ('[profiles.x]\nkind = "hybrid"\nmembers = ["bm25-code", "bm25-plain"]\nweights = ["a", "b"]\n',
     "profile x: weights", "must be a list of numbers"),
    ('[profiles.x]\nkind = "rerank"\npool_depth = "deep"\n', "profile x: pool_depth", "must be a number"),
    ('[profiles.x]\nkind = "rerank"\nalpha = [1]\n', "profile x: alpha", "must be a number"),
    ('[profiles.x]\nkind = 7\n', "profile x: kind", "kind must be one of"),
    ('[profiles.x]\nkind = "bm25"\nk1 = 11\n', "profile x: k1", "must lie in [0, 10]"),
    ("profiles = 5\n", "[profiles]", "must be a table"),
    ("[profiles]\nx = 5\n", "profile x", "must be a table"),
    ('[profile.x]\nkind = "bm25"\n', "'profile'", "unknown section"),
])
def test_a_wrong_type_in_profiles_toml_names_file_profile_and_field(tmp_path, toml, where, expected):
    path = tmp_path / "profiles.toml"
    path.write_text(toml)
    with pytest.raises(ProfileError) as raised:
        load_profiles(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: "), message
    assert where in message and expected in message, message
    assert "\n" not in message


@pytest.mark.parametrize("name", ["../../evil", "<b>x</b>", "a/b", "a..b", ".hidden", "has space", "x" * 65,
                                  "https://evil.example/login", ""])
def test_a_profile_name_outside_the_safe_pattern_is_refused_from_the_file_and_from_the_page(tmp_path, name):
    path = tmp_path / "profiles.toml"
    path.write_text(f'[profiles."{name}"]\nkind = "bm25"\n')
    with pytest.raises(ProfileError, match="is not allowed") as raised:
        load_profiles(path)
    assert str(raised.value).startswith(f"{path}: ")
    path.unlink()
    with pytest.raises(ProfileError, match="is not allowed"):
        upsert_profile(path, Bm25Profile(name))
    assert not path.exists()


def test_the_page_and_the_file_share_the_type_checks(tmp_path):
    path = tmp_path / "profiles.toml"
    with pytest.raises(ProfileError, match="profile x: k1 must be a number, not 'fast'"):
        upsert_profile(path, Bm25Profile("x", k1="fast"))  # what a form could hand over
    with pytest.raises(ProfileError, match="profile d: model must be text"):
        upsert_profile(path, DenseProfile("d", model=None))
    assert not path.exists()


def test_saving_refuses_a_name_the_file_would_refuse_on_load(tmp_path):
    path = tmp_path / "profiles.toml"
    with pytest.raises(ProfileError, match="not allowed"):
        save_profiles(path, {"../evil": Bm25Profile("../evil")})
    assert not path.exists()
    save_profiles(path, {"dense-ok.v2": DenseProfile("dense-ok.v2", model="some/model")})
    assert load_profiles(path)["dense-ok.v2"].model == "some/model"


def test_numbers_written_as_integers_load_as_the_profile_types(tmp_path):
    path = tmp_path / "profiles.toml"
    path.write_text('[profiles.x]\nkind = "bm25"\nk1 = 1\nb = 0\n')
    assert load_profiles(path)["x"] == Bm25Profile("x", k1=1.0, b=0.0)


def _tiny_dataset(data_dir) -> None:
    folder = data_dir / "tiny"
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text('{"_id": "d1", "text": "read a file"}\n{"_id": "d2", "text": "write a file"}\n')
    (folder / "queries.jsonl").write_text('{"_id": "q1", "text": "read"}\n')
    (folder / "qrels" / "test.tsv").write_text("q1\td1\t1\n")


@pytest.mark.parametrize("command", [["profiles"], ["evaluate", "--dataset", "tiny", "--profiles", "bm25-code"]])
@pytest.mark.parametrize("toml", ['[profiles.x]\nkind = "bm25"\nk1 = "fast"\n', "profiles = 5\n",
                                  '[profiles."../../evil"]\nkind = "bm25"\n'])
def test_the_cli_reports_a_bad_profiles_toml_in_one_line_and_exits_non_zero(tmp_path, capsys, command, toml):
    _tiny_dataset(tmp_path / "data")
    workspace = Workspace.open(tmp_path / "ws", tmp_path / "data")
    workspace.profiles_file.write_text(toml)
    code = main(["--workspace", str(workspace.root), "--data-dir", str(tmp_path / "data"), *command])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("error: ") and "profiles.toml: " in err, err
    assert "Traceback" not in err
