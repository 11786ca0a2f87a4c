"""Retriever profiles: named, parameterised, serialisable recipes for producing a run.

Defaults live in code (``default_profiles``); a user's own profiles live in the workspace's
``profiles.toml`` and override or extend them::

    [profiles.bm25-tuned]
    kind = "bm25"
    analyzer = "code"
    k1 = 0.9
    b = 0.4
    length_norm = "exact"   # or "tantivy" (the default): document lengths through Tantivy's one-byte norm

Every profile passes one check, whether it comes from the file (hand edits included), the Profiles page or the CLI:
the field types come from the dataclasses below (``SCHEMA``), ranges and choices from each kind's ``validate``,
and names from ``check_profile_name``. A message names the file (when there is one), the profile and the field.
"""
from __future__ import annotations

import math
import os
import re
import tempfile
import tomllib
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Union

import tomli_w

from core.errors import OptionError, ProfileError
from core.retrieval.limits import check_number

if TYPE_CHECKING:
    from core.index.ann import AnnSettings

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

        check_types(self)
        if self.analyzer not in ANALYZERS:
            raise _problem(self.name, f"analyzer must be one of {', '.join(ANALYZERS)}, not {_shown(self.analyzer)}.")
        for field_name, high in (("k1", 10), ("b", 1)):
            if not (0 <= getattr(self, field_name) <= high):
                raise _problem(self.name, f"{field_name} must lie in [0, {high}], not {_shown(getattr(self, field_name))}.")
        if self.length_norm not in LENGTH_NORM_KINDS:
            raise _problem(self.name, f"length_norm must be one of {', '.join(LENGTH_NORM_KINDS)}, not {_shown(self.length_norm)}.")


@dataclass(frozen=True)
class DenseProfile:
    """Cosine similarity between normalised embeddings of one model.

    ``search`` "exact" (the default) scores every document; "ann" goes through an ANN index of kind ``ann_index``
    (core.index.ann: ivf_pq, hnsw, ivf_flat), built on first use, searching ``nprobes`` partitions and re-scoring
    ``refine`` x depth candidates exactly; such a run records the index's recall@100 against exact search.
    """

    name: str
    model: str = "minilm"
    backend: str = "torch"
    search: str = "exact"
    ann_index: str = "ivf_pq"
    nprobes: int = 20
    refine: int = 10
    kind: ClassVar[str] = "dense"

    def validate(self) -> None:
        check_types(self)
        if self.backend not in ("torch", "onnx"):
            raise _problem(self.name, f"backend must be 'torch' or 'onnx', not {_shown(self.backend)}.")
        if not self.model.strip():
            raise _problem(self.name, "model must be named.")
        if self.search not in ("exact", "ann"):
            raise _problem(self.name, f"search must be 'exact' or 'ann', not {_shown(self.search)}.")
        try:
            self.ann_settings(always=True).check()
        except OptionError as exc:
            raise _problem(self.name, str(exc)) from None

    def ann_settings(self, always: bool = False) -> "AnnSettings | None":
        """The ``core.index.ann.AnnSettings`` of this profile, or None when it searches exactly (unless ``always``)."""
        from core.index.ann import AnnSettings

        if self.search != "ann" and not always:
            return None
        return AnnSettings(self.ann_index, self.nprobes, self.refine)


def _problem(profile: str, text: str) -> ProfileError:
    """The error for one profile, worded as every profile check words it: ``profile <name>: <field> ...``."""
    return ProfileError(f"profile {profile}: {text}")


def _shown(value: object) -> str:
    """A value as a message quotes it: its repr, cut short (a hand-edited file may hold anything)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


def _check_field(profile: str, field_name: str, kind: str, value: object) -> None:
    """A profile's number inside the bounds of ``kind`` (core.retrieval.limits), else ProfileError."""
    try:
        check_number(kind, value, f"profile {profile}: {field_name}")
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
        check_types(self)
        if len(self.members) < 2:
            raise _problem(self.name, "members: a hybrid needs at least two member profiles.")
        if self.method not in FUSION_METHODS:
            raise _problem(self.name, f"method must be one of {', '.join(FUSION_METHODS)}, not {_shown(self.method)}.")
        if self.normalization not in NORMALIZATIONS:
            raise _problem(self.name, f"normalization must be one of {', '.join(NORMALIZATIONS)}, not {_shown(self.normalization)}.")
        if self.weights and len(self.weights) != len(self.members):
            raise _problem(self.name, f"weights: give one weight per member ({len(self.members)}), or none for equal weights.")
        # check_number, not comparisons: NaN passes "< 0" (and ranked at random), inf and 2.5 crashed the search
        _check_field(self.name, "rrf_k", "rrf k", self.rrf_k)
        _check_field(self.name, "candidate_depth", "depth", self.candidate_depth)
        for weight in self.weights:
            try:
                check_number("member weight", weight, f"profile {self.name}: weights: a weight")
            except OptionError as exc:
                raise ProfileError(str(exc)) from None
        if self.weights and not any(self.weights):
            raise _problem(self.name, "weights: at least one weight must be above 0.")
        if self.tune not in TUNING:
            raise _problem(self.name, f"tune must be one of {', '.join(TUNING)}, not {_shown(self.tune)}.")
        if self.tune != "none" and len(self.members) != 2:
            raise _problem(self.name, "tune: tuned weights need exactly two members (the first gets w, the second 1 - w).")


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
        check_types(self)
        if self.reranker not in RERANKERS:
            raise _problem(self.name, f"reranker must be one of {', '.join(RERANKERS)}, not {_shown(self.reranker)}.")
        _check_field(self.name, "pool_depth", "pool", self.pool_depth)
        if not (0 <= self.alpha <= 1):
            raise _problem(self.name, f"alpha must lie in [0, 1], not {_shown(self.alpha)}.")
        if not self.first_stage.strip():
            raise _problem(self.name, "first_stage must name a profile.")


Profile = Union[Bm25Profile, DenseProfile, HybridProfile, RerankProfile]
PROFILE_TYPES: dict[str, type] = {cls.kind: cls for cls in (Bm25Profile, DenseProfile, HybridProfile, RerankProfile)}

# The type of each field, read off the dataclasses' annotations: kind -> field -> one of the keys of _TYPES.
SCHEMA: dict[str, dict[str, str]] = {kind: {f.name: str(f.type) for f in fields(cls) if f.name != "name"}
                                     for kind, cls in PROFILE_TYPES.items()}


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _as_float(value: int | float) -> float:
    return float(value) if not isinstance(value, int) or abs(value) < 2**53 else math.inf  # huge ints: refused by range


def _as_count(value: int | float) -> int | float:
    """A whole float (2.0) as an int; anything else as it came, so the range check refuses 2.5 or inf by name."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


# annotation -> (what the message says it must be, accepts, converts); ranges and choices are each kind's validate()
_TYPES = {
    "str": ("text", lambda v: isinstance(v, str), lambda v: v),
    "float": ("a number", _number, _as_float),
    "int": ("a number", _number, _as_count),
    "tuple[str, ...]": ("a list of profile names", lambda v: isinstance(v, (list, tuple)) and all(isinstance(x, str) for x in v),
                        tuple),
    "tuple[float, ...]": ("a list of numbers", lambda v: isinstance(v, (list, tuple)) and all(_number(x) for x in v),
                          lambda v: tuple(_as_float(x) for x in v)),
}


def _typed(kind: str, name: str, data: dict[str, Any]) -> dict[str, Any]:
    """``data`` (a profile's fields, no kind, no name) with each value of its schema type, converted; else ProfileError."""
    typed = {}
    for key, value in data.items():
        expected, accepts, convert = _TYPES[SCHEMA[kind][key]]
        if not accepts(value):
            raise _problem(name, f"{key} must be {expected}, not {_shown(value)}.")
        typed[key] = convert(value)
    return typed


def check_types(profile: Profile) -> None:
    """Refuse a profile whose fields are not of their schema types (a form or a caller could hand over anything)."""
    _typed(profile.kind, str(profile.name), {f.name: getattr(profile, f.name) for f in fields(profile) if f.name != "name"})


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
    """Build and validate a profile from a TOML table or a run's saved parameters (schema types, then ranges)."""
    if not isinstance(data, dict):
        raise _problem(str(name), f"must be a table of parameters (kind = ..., ...), not {_shown(data)}.")
    data = dict(data)
    kind = data.pop("kind", None)
    name = name or data.get("name")
    if not isinstance(name, str) or not name:
        raise ProfileError("A profile needs a name.")
    data.pop("name", None)
    if not isinstance(kind, str) or kind not in PROFILE_TYPES:
        raise _problem(name, f"kind must be one of {', '.join(PROFILE_TYPES)}, not {_shown(kind)}.")
    unknown = set(data) - set(SCHEMA[kind])
    if unknown:
        raise _problem(name, f"unknown parameter(s) {', '.join(sorted(unknown))} for kind {kind!r}.")
    profile = PROFILE_TYPES[kind](name=name, **_typed(kind, name, data))
    profile.validate()
    return profile


def profiles_from_document(document: dict[str, Any], source: Path | str) -> dict[str, Profile]:
    """The profiles a parsed profiles.toml holds, each name, table and field checked; errors start with ``source``.

    The one check of the file's content: loading it (hand edits included) and saving it (the Profiles page,
    the CLI, fine-tuning) both go through here, so nothing is written that would not load.
    """
    try:
        unknown = sorted(set(document) - {"profiles"})
        if unknown:
            raise ProfileError(f"unknown section(s) {', '.join(map(_shown, unknown))}: "
                               "each profile is a table named [profiles.<name>].")
        tables = document.get("profiles", {})
        if not isinstance(tables, dict):
            raise ProfileError(f"[profiles] must be a table of profiles ([profiles.<name>] tables), not {_shown(tables)}.")
        profiles = {}
        for name, table in tables.items():
            check_profile_name(name)
            if not isinstance(table, dict):
                raise _problem(name, f"must be a table of parameters ([profiles.{name}] with kind = ...), not {_shown(table)}.")
            profiles[name] = profile_from_dict(table, name)
    except ProfileError as exc:
        raise ProfileError(f"{source}: {exc}") from None
    return profiles


def load_profiles(path: Path | None) -> dict[str, Profile]:
    """Defaults overlaid with the workspace's profiles.toml (when present)."""
    profiles = default_profiles()
    if path and Path(path).is_file():
        try:
            document = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: deeply nested TOML
            raise ProfileError(f"{path} is not valid TOML: {exc}") from exc
        profiles.update(profiles_from_document(document, path))
        try:
            check_references(profiles)
        except ProfileError as exc:
            raise ProfileError(f"{path}: {exc}") from None
        return profiles
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
    profiles_from_document(document, path)  # what is written loads again: same names, types and ranges as a hand edit
    # a fresh temporary file (O_EXCL): a fixed name such as profiles.tmp could be a planted link, written through
    handle, tmp = tempfile.mkstemp(prefix=".profiles-", suffix=".tmp", dir=Path(path).parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(tomli_w.dumps(document))
        os.chmod(tmp, Path(path).stat().st_mode & 0o777 if Path(path).is_file() else 0o644)  # mkstemp makes it 0600
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


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
    """A profile name: letters, digits, '.', '_' and '-', at most 64, no '..' (it names runs, URLs and TOML tables)."""
    if not isinstance(name, str) or not _PROFILE_NAME.fullmatch(name) or ".." in name:
        raise ProfileError(f"Profile name {_shown(name)} is not allowed: use letters, digits, '.', '_' or '-' (at most 64, "
                           "no '..'), starting with a letter or digit.")
    return name


def upsert_profile(path: Path, profile: Profile, replace_name: str | None = None) -> dict[str, Profile]:
    """Validate ``profile`` and write it to profiles.toml (``replace_name``: the profile it renames); return all profiles.

    Nothing is written when the result would be invalid: an unknown member, a cycle, a rename of a
    profile that others use, or a name already taken by another profile.
    """
    check_profile_name(profile.name)
    profile = profile_from_dict(profile_to_dict(profile), profile.name)  # the file's own check: types, then ranges
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
