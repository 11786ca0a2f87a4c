"""Profiles: defaults, TOML round trip, validation."""
import pytest

from core.errors import ProfileError
from core.retrieval.profiles import (Bm25Profile, HybridProfile, RerankProfile, default_profiles, dependencies, load_profiles,
                           profile_from_dict, profile_to_dict, save_profiles)


def test_defaults_cover_every_kind():
    kinds = {p.kind for p in default_profiles().values()}
    assert kinds == {"bm25", "dense", "hybrid", "rerank"}


def test_profiles_round_trip_through_toml(tmp_path):
    profiles = default_profiles()
    profiles["bm25-tuned"] = Bm25Profile("bm25-tuned", analyzer="plain", k1=0.9, b=0.4)
    profiles["hybrid-3"] = HybridProfile("hybrid-3", members=("bm25-tuned", "bm25-code", "dense-minilm"), method="weighted",
                                         weights=(0.2, 0.2, 0.6), normalization="zscore")
    path = tmp_path / "profiles.toml"
    save_profiles(path, profiles)
    assert "[profiles.bm25-code]" not in path.read_text()  # defaults stay in code
    assert load_profiles(path) == profiles


@pytest.mark.parametrize("data, message", [
    ({"kind": "bm25", "k1": -1}, "k1 must lie"),
    ({"kind": "bm25", "analyzer": "klingon"}, "analyzer must be one of"),
    ({"kind": "hybrid", "members": ["a"]}, "at least two"),
    ({"kind": "hybrid", "members": ["a", "b"], "weights": [1]}, "one weight per member"),
    ({"kind": "rerank", "reranker": "magic"}, "reranker must be one of"),
    ({"kind": "teleport"}, "kind must be one of"),
    ({"kind": "dense", "colour": "red"}, "unknown parameter"),
])
def test_invalid_profiles_are_refused_with_a_reason(data, message):
    with pytest.raises(ProfileError, match=message):
        profile_from_dict(data, "p")


def test_unknown_member_and_cycles_are_refused(tmp_path):
    path = tmp_path / "profiles.toml"
    path.write_text('[profiles.h]\nkind = "hybrid"\nmembers = ["bm25-code", "ghost"]\n')
    with pytest.raises(ProfileError, match="unknown profile 'ghost'"):
        load_profiles(path)
    path.write_text('[profiles.r1]\nkind = "rerank"\nfirst_stage = "r2"\n[profiles.r2]\nkind = "rerank"\nfirst_stage = "r1"\n')
    with pytest.raises(ProfileError, match="cycle"):
        load_profiles(path)


def test_broken_toml_is_reported(tmp_path):
    path = tmp_path / "profiles.toml"
    path.write_text("[profiles.x\nkind=")
    with pytest.raises(ProfileError, match="not valid TOML"):
        load_profiles(path)


def test_dependencies_list_members_before_the_profile():
    profiles = default_profiles()
    assert dependencies(profiles, "rerank-fusion") == ["bm25-code", "dense-minilm", "hybrid-rrf", "rerank-fusion"]
    assert profile_to_dict(profiles["rerank-fusion"])["kind"] == RerankProfile.kind


def test_deeply_nested_toml_is_reported_not_raised(tmp_path):
    path = tmp_path / "profiles.toml"
    path.write_text("x = " + "[" * 100_000)
    with pytest.raises(ProfileError, match="not valid TOML"):
        load_profiles(path)


def test_a_profile_created_edited_and_deleted_from_the_ui_round_trips_through_profiles_toml(tmp_path):
    from core.retrieval.profiles import (Bm25Profile, HybridProfile, delete_profile, load_profiles, upsert_profile)
    from core.errors import ProfileError

    path = tmp_path / "profiles.toml"
    upsert_profile(path, Bm25Profile("bm25-tuned", analyzer="code", k1=0.9, b=0.4))
    upsert_profile(path, HybridProfile("hy", members=("bm25-tuned", "dense-minilm"), method="weighted", weights=(0.2, 0.8)))
    loaded = load_profiles(path)
    assert loaded["bm25-tuned"] == Bm25Profile("bm25-tuned", analyzer="code", k1=0.9, b=0.4)
    assert loaded["hy"].weights == (0.2, 0.8)
    assert 'k1 = 0.9' in path.read_text()

    upsert_profile(path, Bm25Profile("bm25-tuned", k1=1.5, b=0.4), replace_name="bm25-tuned")  # edit in place
    assert load_profiles(path)["bm25-tuned"].k1 == 1.5
    with pytest.raises(ProfileError, match="already exists"):
        upsert_profile(path, Bm25Profile("hy"))  # a new profile may not take an existing name
    with pytest.raises(ProfileError, match="used by hy"):
        delete_profile(path, "bm25-tuned")
    with pytest.raises(ProfileError, match="unknown profile"):
        upsert_profile(path, HybridProfile("bad", members=("bm25-code", "nope")))
    with pytest.raises(ProfileError, match="not allowed"):
        upsert_profile(path, Bm25Profile("has space"))
    assert "bad" not in load_profiles(path)  # nothing written by a refused save

    delete_profile(path, "hy")
    delete_profile(path, "bm25-tuned")
    assert set(load_profiles(path)) == set(load_profiles(None))
    with pytest.raises(ProfileError, match="built in"):
        delete_profile(path, "bm25-code")
