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
