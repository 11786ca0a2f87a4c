"""Retriever profiles: named, parameterised, serialisable recipes for producing a run.

Defaults live in code (``default_profiles``); a user's own profiles live in the workspace's
``profiles.toml`` and override or extend them::

    [profiles.bm25-tuned]
    kind = "bm25"
    analyzer = "code"
    k1 = 0.9
    b = 0.4
    length_norm = "exact"   # or "tantivy" (the default): document lengths through Tantivy's one-byte norm
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, Union

import tomli_w

from core.errors import OptionError, ProfileError
from core.retrieval.limits import check_number

FUSION_METHODS = ("rrf", "weighted")
TUNING = ("none", "folds")
NORMALIZATIONS = ("minmax", "zscore", "none")
RERANKERS = ("fusion", "bi-encoder", "cross-encoder")


@dataclass(frozen=True)
class Bm25Profile:
    """BM25 over a Tantivy index built with the named analyzer.

    ``length_norm`` "tantivy" scores document lengths as Tantivy and Lucene store them (one byte,
    exact up to 40 tokens); "exact" uses true lengths, as bm25s and rank_bm25 do.
    """

    name: str
    analyzer: str = "code"
    k1: float = 1.2
    b: float = 0.75
    length_norm: str = "tantivy"
    kind: ClassVar[str] = "bm25"

    def validate(self) -> None:
        from core.index.analyzers import ANALYZERS
        from core.index.bm25_batch import LENGTH_NORM_KINDS

        if self.analyzer not in ANALYZERS:
            raise ProfileError(f"{self.name}: analyzer must be one of {', '.join(ANALYZERS)}, not {self.analyzer!r}.")
        if not (0 <= self.k1 <= 10) or not (0 <= self.b <= 1):
            raise ProfileError(f"{self.name}: k1 must lie in [0, 10] and b in [0, 1].")
        if self.length_norm not in LENGTH_NORM_KINDS:
            raise ProfileError(f"{self.name}: length_norm must be one of {', '.join(LENGTH_NORM_KINDS)}, not {self.length_norm!r}.")


@dataclass(frozen=True)
class DenseProfile:
    """Cosine similarity between normalised embeddings of one model."""

    name: str
    model: str = "minilm"
    backend: str = "torch"
    kind: ClassVar[str] = "dense"

    def validate(self) -> None:
        if self.backend not in ("torch", "onnx"):
            raise ProfileError(f"{self.name}: backend must be 'torch' or 'onnx'.")
        if not self.model.strip():
            raise ProfileError(f"{self.name}: model must be named.")


def _check_field(profile: str, field_name: str, kind: str, value: object) -> None:
    """A profile's number inside the bounds of ``kind`` (core.retrieval.limits), else ProfileError."""
    try:
        check_number(kind, value, f"{profile}: {field_name}")
    except OptionError as exc:
        raise ProfileError(str(exc)) from None


@dataclass(frozen=True)
class HybridProfile:
    """Fusion of member profiles' top ``candidate_depth`` lists: RRF, or weighted normalised scores.

    ``tune = "folds"`` (two members) chooses the weights per dataset on held-out judged queries
    (``core.retrieval.tuning``): each hash fold of the judged queries is ranked with the weights that did best on
    the other fold, and the run records the folds and weights. ``weights`` then serve only where nothing can be
    tuned (a dataset without judged queries).
    """

    name: str
    members: tuple[str, ...] = ("bm25-code", "dense-minilm")
    method: str = "rrf"
    rrf_k: int = 60
    weights: tuple[float, ...] = ()
    normalization: str = "minmax"
    candidate_depth: int = 100
    tune: str = "none"
    kind: ClassVar[str] = "hybrid"

    def validate(self) -> None:
        if len(self.members) < 2:
            raise ProfileError(f"{self.name}: a hybrid needs at least two member profiles.")
        if self.method not in FUSION_METHODS:
            raise ProfileError(f"{self.name}: method must be one of {', '.join(FUSION_METHODS)}.")
        if self.normalization not in NORMALIZATIONS:
            raise ProfileError(f"{self.name}: normalization must be one of {', '.join(NORMALIZATIONS)}.")
        if self.weights and len(self.weights) != len(self.members):
            raise ProfileError(f"{self.name}: give one weight per member ({len(self.members)}), or none for equal weights.")
        # check_number, not comparisons: NaN passes "< 0" (and ranked at random), inf and 2.5 crashed the search
        _check_field(self.name, "rrf_k", "rrf k", self.rrf_k)
        _check_field(self.name, "candidate_depth", "depth", self.candidate_depth)
        for weight in self.weights:
            try:
                check_number("member weight", weight, f"{self.name}: weight")
            except OptionError as exc:
                raise ProfileError(str(exc)) from None
        if self.weights and not any(self.weights):
            raise ProfileError(f"{self.name}: at least one weight must be above 0.")
        if self.tune not in TUNING:
            raise ProfileError(f"{self.name}: tune must be one of {', '.join(TUNING)}, not {self.tune!r}.")
        if self.tune != "none" and len(self.members) != 2:
            raise ProfileError(f"{self.name}: tuned weights need exactly two members (the first gets w, the second 1 - w).")


@dataclass(frozen=True)
class RerankProfile:
    """A first-stage profile whose top ``pool_depth`` documents are re-scored by a reranker.

    Rerankers: ``fusion`` (alpha * z(model cosine) + (1 - alpha) * z(first-stage score) over the pool;
    offline and cheap), ``bi-encoder`` (cosine of a second, stronger embedding model such as mpnet),
    ``cross-encoder`` (a sentence-transformers CrossEncoder; needs such a model locally or online).
    """

    name: str
    first_stage: str = "bm25-code"
    pool_depth: int = 50
    reranker: str = "fusion"
    model: str = "minilm"
    alpha: float = 0.7
    kind: ClassVar[str] = "rerank"

    def validate(self) -> None:
        if self.reranker not in RERANKERS:
            raise ProfileError(f"{self.name}: reranker must be one of {', '.join(RERANKERS)}.")
        _check_field(self.name, "pool_depth", "pool", self.pool_depth)
        if not (0 <= self.alpha <= 1):
            raise ProfileError(f"{self.name}: alpha must lie in [0, 1].")


Profile = Union[Bm25Profile, DenseProfile, HybridProfile, RerankProfile]
PROFILE_TYPES: dict[str, type] = {cls.kind: cls for cls in (Bm25Profile, DenseProfile, HybridProfile, RerankProfile)}


def default_profiles() -> dict[str, Profile]:
    """The profiles every workspace starts with."""
    profiles: list[Profile] = [
        Bm25Profile("bm25-code", analyzer="code"),
        Bm25Profile("bm25-plain", analyzer="words"),
        DenseProfile("dense-minilm", model="minilm"),
        HybridProfile("hybrid-rrf", members=("bm25-code", "dense-minilm"), method="rrf", rrf_k=60),
        # weights tuned per dataset on held-out folds; 0.3/0.7 only where no query is judged
        HybridProfile("hybrid-weighted", members=("bm25-code", "dense-minilm"), method="weighted",
                      weights=(0.3, 0.7), normalization="minmax", tune="folds"),
        RerankProfile("rerank-fusion", first_stage="hybrid-rrf", pool_depth=50, reranker="fusion", model="minilm", alpha=0.7),
    ]
    return {p.name: p for p in profiles}


def profile_to_dict(profile: Profile) -> dict[str, Any]:
    data = {"kind": profile.kind, **asdict(profile)}
    return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}


def profile_from_dict(data: dict[str, Any], name: str | None = None) -> Profile:
    """Build and validate a profile from a TOML table or a run's saved parameters."""
    data = dict(data)
    kind = data.pop("kind", None)
    if kind not in PROFILE_TYPES:
        raise ProfileError(f"Profile {name or data.get('name')!r}: kind must be one of {', '.join(PROFILE_TYPES)}, not {kind!r}.")
    cls = PROFILE_TYPES[kind]
    data["name"] = name or data.get("name")
    if not data["name"]:
        raise ProfileError("A profile needs a name.")
    allowed = {f.name for f in fields(cls)}
    unknown = set(data) - allowed
    if unknown:
        raise ProfileError(f"Profile {data['name']!r}: unknown parameter(s) {', '.join(sorted(unknown))} for kind {kind!r}.")
    for key in ("members", "weights"):
        if key in data and isinstance(data[key], list):
            data[key] = tuple(data[key])
    try:
        profile = cls(**data)
    except TypeError as exc:
        raise ProfileError(f"Profile {data['name']!r}: {exc}") from exc
    profile.validate()
    return profile


def load_profiles(path: Path | None) -> dict[str, Profile]:
    """Defaults overlaid with the workspace's profiles.toml (when present)."""
    profiles = default_profiles()
    if path and Path(path).is_file():
        try:
            document = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: deeply nested TOML
            raise ProfileError(f"{path} is not valid TOML: {exc}") from exc
        for name, table in document.get("profiles", {}).items():
            profiles[name] = profile_from_dict(table, name)
    check_references(profiles)
    return profiles


def check_references(profiles: dict[str, Profile]) -> None:
    """Hybrid members and rerank first stages must name existing profiles, without cycles."""
    def walk(name: str, seen: tuple[str, ...]) -> None:
        if name in seen:
            raise ProfileError(f"Profiles refer to each other in a cycle: {' -> '.join(seen + (name,))}.")
        if name not in profiles:
            raise ProfileError(f"Profile {seen[-1] if seen else name!r} refers to unknown profile {name!r}.")
        profile = profiles[name]
        children = profile.members if isinstance(profile, HybridProfile) else (
            (profile.first_stage,) if isinstance(profile, RerankProfile) else ())
        for child in children:
            walk(child, seen + (name,))

    for name in profiles:
        walk(name, ())


def save_profiles(path: Path, profiles: dict[str, Profile]) -> None:
    """Write the profiles that differ from the defaults (the defaults stay in code)."""
    defaults = default_profiles()
    custom = {name: p for name, p in profiles.items() if defaults.get(name) != p}
    document = {"profiles": {name: {k: v for k, v in profile_to_dict(p).items() if k != "name"} for name, p in custom.items()}}
    tmp = Path(path).with_suffix(".tmp")
    tmp.write_text(tomli_w.dumps(document), encoding="utf-8")
    tmp.replace(path)


def dependencies(profiles: dict[str, Profile], name: str) -> list[str]:
    """Every profile ``name`` needs, itself last (an evaluation order)."""
    order: list[str] = []

    def visit(current: str) -> None:
        profile = profiles[current]
        if isinstance(profile, HybridProfile):
            for member in profile.members:
                visit(member)
        elif isinstance(profile, RerankProfile):
            visit(profile.first_stage)
        if current not in order:
            order.append(current)

    visit(name)
    return order


_PROFILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def check_profile_name(name: str) -> str:
    """A profile name: letters, digits, '.', '_' and '-', at most 64 (it names runs, URLs and TOML tables)."""
    if not isinstance(name, str) or not _PROFILE_NAME.fullmatch(name):
        raise ProfileError(f"Profile name {name!r} is not allowed: use letters, digits, '.', '_' or '-' (at most 64), "
                           "starting with a letter or digit.")
    return name


def upsert_profile(path: Path, profile: Profile, replace_name: str | None = None) -> dict[str, Profile]:
    """Validate ``profile`` and write it to profiles.toml (``replace_name``: the profile it renames); return all profiles.

    Nothing is written when the result would be invalid: an unknown member, a cycle, a rename of a
    profile that others use, or a name already taken by another profile.
    """
    check_profile_name(profile.name)
    profile.validate()
    profiles = load_profiles(path)
    if profile.name in profiles and profile.name != replace_name:
        raise ProfileError(f"A profile named {profile.name!r} already exists: edit it, or choose another name.")
    if replace_name is not None and replace_name != profile.name:
        if replace_name in default_profiles():
            raise ProfileError(f"{replace_name!r} is built in and cannot be renamed: save a copy under a new name instead.")
        users = [name for name in profiles if name != replace_name and replace_name in _children(profiles[name])]
        if users:
            raise ProfileError(f"{replace_name!r} is used by {', '.join(users)}: it cannot be renamed.")
        profiles.pop(replace_name, None)
    profiles[profile.name] = profile
    check_references(profiles)
    save_profiles(path, profiles)
    return profiles


def delete_profile(path: Path, name: str) -> dict[str, Profile]:
    """Remove a user profile from profiles.toml (a changed built-in goes back to its default); return all profiles."""
    profiles = load_profiles(path)
    if name not in profiles:
        raise ProfileError(f"No profile named {name!r}.")
    defaults = default_profiles()
    if name in defaults:
        if profiles[name] == defaults[name]:
            raise ProfileError(f"{name!r} is built in and cannot be deleted.")
        profiles[name] = defaults[name]  # "delete" an edited built-in: back to its default
    else:
        users = [other for other in profiles if other != name and name in _children(profiles[other])]
        if users:
            raise ProfileError(f"{name!r} is used by {', '.join(users)}: change or delete those first.")
        del profiles[name]
    check_references(profiles)
    save_profiles(path, profiles)
    return profiles


def _children(profile: Profile) -> tuple[str, ...]:
    if isinstance(profile, HybridProfile):
        return profile.members
    if isinstance(profile, RerankProfile):
        return (profile.first_stage,)
    return ()
