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

import tomllib
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, Union

import tomli_w

from core.errors import OptionError, ProfileError
from core.retrieval.limits import check_number

FUSION_METHODS = ("rrf", "weighted")
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
    """Fusion of member profiles' top ``candidate_depth`` lists: RRF, or weighted normalised scores."""

    name: str
    members: tuple[str, ...] = ("bm25-code", "dense-minilm")
    method: str = "rrf"
    rrf_k: int = 60
    weights: tuple[float, ...] = ()
    normalization: str = "minmax"
    candidate_depth: int = 100
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
        Bm25Profile("bm25-plain", analyzer="plain"),
        DenseProfile("dense-minilm", model="minilm"),
        HybridProfile("hybrid-rrf", members=("bm25-code", "dense-minilm"), method="rrf", rrf_k=60),
        HybridProfile("hybrid-weighted", members=("bm25-code", "dense-minilm"), method="weighted",
                      weights=(0.3, 0.7), normalization="minmax"),
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
