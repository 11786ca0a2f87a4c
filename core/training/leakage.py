"""Train/eval leakage audit: which eval (code, docstring) pairs a training set has already seen.

A *pair* of a dataset is a judged query with the text of its first positive document. One side of it is
code and the other its docstring (or web query): in a code-to-text set the query is the code, in a
text-to-code set (CoSQA) the document is. Each dataset's code side is detected from its texts, or given
by the caller, so code is always compared with code and docstring with docstring.

Four checks, each reported under its own kind:

- ``exact_code``: code with comments, docstrings and ``pass`` removed (Python through ``ast``, other
  languages and unparsable Python through regexes), lowercased, tokenised, hashed with sha1;
- ``exact_docstring``: docstring lowercased, punctuation removed, whitespace collapsed;
- ``function_name``: the defined function's name, ignoring generic ones (``__init__``, ``main``, ``get``);
- ``near_duplicate_code``: MinHash of code-token 3-grams with LSH banding, candidates kept when their
  exact Jaccard similarity reaches the threshold (a renamed variable or an added line still matches).
"""
from __future__ import annotations

import ast
import hashlib
import re
import textwrap
import zlib
from collections import defaultdict
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Literal

import numpy as np
import pandas as pd

from core.data.datasets import Dataset, Qrels, validate_name
from core.data.python_source import parse_python
from core.errors import DatasetError, WorkbenchError

CodeSide = Literal["query", "document"]

EXACT_CODE = "exact_code"
EXACT_DOCSTRING = "exact_docstring"
FUNCTION_NAME = "function_name"
NEAR_DUPLICATE_CODE = "near_duplicate_code"
ALL_KINDS: tuple[str, ...] = (EXACT_CODE, EXACT_DOCSTRING, FUNCTION_NAME, NEAR_DUPLICATE_CODE)

DEFAULT_JACCARD = 0.8
SHINGLE_TOKENS = 3
BANDS = 32
ROWS_PER_BAND = 4
PERMUTATIONS = BANDS * ROWS_PER_BAND
_MINHASH_SEED = 20261122
_SNIPPET_CHARS = 200
_CODE_SIDE_SAMPLE = 200
_HASHES_PER_BLOCK = 1 << 22

# Names too common to say that two functions are the same one.
GENERIC_NAMES = frozenset({
    "main", "run", "get", "set", "test", "setup", "teardown", "init", "start", "stop", "close", "open",
    "update", "execute", "process", "handle", "load", "save", "read", "write", "create", "delete", "remove",
    "reset", "clear", "apply", "call", "build", "parse", "validate", "render", "new", "constructor",
    "tostring", "equals", "hashcode", "string", "wrapper", "inner", "decorator", "helper", "func", "fn",
    "callback", "foo", "bar", "default", "index", "add", "check", "next", "size", "length", "value", "name",
})

_PYTHON_LANGUAGES = {"python", "py", ""}
_HASH_COMMENT_LANGUAGES = {"python", "py", "ruby", "php", "perl", "r", "shell", "bash", "sh", ""}
_SLASH_COMMENT_EXEMPT = {"python", "py", "ruby"}  # '//' is floor division in Python, a regex in Ruby
_TRIPLE_QUOTED = r'"""[\s\S]*?"""|\'\'\'[\s\S]*?\'\'\''
_QUOTED = r'"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\''
_CODE_TOKEN = re.compile(r"\w+|[^\w\s]")
_PUNCTUATION = re.compile(r"[^\w\s]+")
_WHITESPACE = re.compile(r"\s+")
_LONE_PASS = re.compile(r"^\s*pass\s*$", re.M)
_KEYWORD_DEFINITION = re.compile(
    r"\bdef\s+(?:self\.)?([A-Za-z_]\w*[?!]?)"  # Python, Ruby
    r"|\bfunction\s*\*?\s*&?\s*([A-Za-z_$][\w$]*)"  # JavaScript, PHP
    r"|\bfunc\s+(?:\([^)]*\)\s*)?([A-Za-z_]\w*)"  # Go, with or without a receiver
)
_TYPED_DEFINITION = re.compile(  # Java, C#, C++: modifiers and a return type, the name, parameters, then a brace
    r"^[ \t]*(?!(?:return|new|else|throw|await|yield|case)\b)(?:[\w<>\[\],.?@]+[ \t]+)+([A-Za-z_$][\w$]*)"
    r"[ \t]*\([^;{}]*\)\s*(?:throws\s+[\w.,\s]+)?\{",
    re.M,
)
_CODE_SIGNAL = re.compile(
    r"\b(?:def|function|func|class|import|return|self|this|var|let|const|public|private)\b|[{};]|=>|==|!=|\w\(|\)\s*:\s*$|^[ \t]{2,}\S",
    re.M,
)


@dataclass(frozen=True)
class Overlap:
    """One train pair that an eval pair repeats, found by one check."""

    kind: str
    train_query_id: str
    eval_query_id: str
    similarity: float
    train_snippet: str
    eval_snippet: str


@dataclass(frozen=True)
class LeakageReport:
    """Every overlap found between a train and an eval dataset, with the pair counts audited."""

    train: str
    eval: str
    overlaps: tuple[Overlap, ...]
    train_pairs: int
    eval_pairs: int
    kinds: tuple[str, ...] = ALL_KINDS
    # Pairs whose exact Jaccard similarity was computed: only those LSH banding put in a shared bucket, not all of them.
    near_candidates: int = 0

    def counts(self) -> dict[str, int]:
        """Kind -> number of eval queries it found leaking (0 for a kind audited that found none)."""
        leaked: dict[str, set[str]] = {kind: set() for kind in self.kinds}
        for overlap in self.overlaps:
            leaked.setdefault(overlap.kind, set()).add(overlap.eval_query_id)
        return {kind: len(ids) for kind, ids in leaked.items()}

    def leaked_train_ids(self) -> set[str]:
        return {overlap.train_query_id for overlap in self.overlaps}

    def leaked_eval_ids(self) -> set[str]:
        return {overlap.eval_query_id for overlap in self.overlaps}

    def to_frame(self) -> pd.DataFrame:
        """One row per overlap, with the dataset names, for tables and CSV export."""
        columns = ["train", "eval", "kind", "train_query_id", "eval_query_id", "similarity", "train_snippet", "eval_snippet"]
        rows = [(self.train, self.eval, o.kind, o.train_query_id, o.eval_query_id, o.similarity, o.train_snippet, o.eval_snippet)
                for o in self.overlaps]
        return pd.DataFrame(rows, columns=columns)


@dataclass(frozen=True)
class Pair:
    """A judged query and its first positive, seen as code and docstring whichever side each is on."""

    query_id: str
    code: str
    docstring: str
    language: str


@dataclass(frozen=True)
class _Fingerprints:
    """What the checks compare, computed once per dataset (audit_many reuses the train side)."""

    name: str
    pairs: tuple[Pair, ...]
    code_keys: tuple[str, ...]
    docstring_keys: tuple[str, ...]
    names: tuple[str, ...]
    shingles: "Shingles"
    signatures: np.ndarray  # (pairs, PERMUTATIONS) uint32 MinHash; rows of pairs without code are unused


def looks_like_code(text: str) -> bool:
    """True when a text carries at least three marks of source code (keywords, braces, indented lines)."""
    return sum(1 for _ in zip(range(3), _CODE_SIGNAL.finditer(text))) >= 3


def detect_code_side(dataset: Dataset) -> CodeSide:
    """Which side of the dataset's pairs is code: the one where more texts look like code (ties: query)."""
    query_code = document_code = 0
    for query_id, query_text, document in _first_positives(dataset, _CODE_SIDE_SAMPLE):
        query_code += looks_like_code(query_text)
        document_code += looks_like_code(document.full_text)
    return "document" if document_code > query_code else "query"


def pairs(dataset: Dataset, code_side: CodeSide | None = None) -> tuple[Pair, ...]:
    """The dataset's (code, docstring) pairs, one per judged query whose positive is in the corpus."""
    side = code_side or detect_code_side(dataset)
    if side not in ("query", "document"):
        raise WorkbenchError(f"code_side must be 'query' or 'document', not {side!r}.")
    found = []
    for query_id, query_text, document in _first_positives(dataset):
        query_language = dataset.query(query_id).language.replace("unknown", "")
        if side == "query":
            found.append(Pair(query_id, query_text, document.full_text, (query_language or document.language).lower()))
        else:
            found.append(Pair(query_id, document.full_text, query_text, (document.language or query_language).lower()))
    return tuple(found)


def _first_positives(dataset: Dataset, limit: int | None = None):
    """(query id, query text, first positive document) for judged queries, in query order."""
    taken = 0
    for query in dataset.queries:
        if limit is not None and taken >= limit:
            return
        positive = next((d for d in dataset.qrels.positives(query.id) if d in dataset.doc_index), None)
        if positive is None:
            continue
        taken += 1
        yield query.id, query.text, dataset.document(positive)


def strip_code(code: str, language: str = "") -> str:
    """Code without comments, docstrings and ``pass``; Python through ``ast`` when it parses."""
    language = language.lower()
    if language in _PYTHON_LANGUAGES:
        stripped = _strip_python(code)
        if stripped is not None:
            return stripped
    return _strip_with_regex(code, language)


def _strip_python(code: str) -> str | None:
    """Python source without docstrings, ``pass`` and comments, or None when it does not parse.

    ``ast`` locates the no-op statements (a full unparse is several times slower); they are cut out
    by position and the comments by the regex that steps over string literals.
    """
    for source in (code, textwrap.dedent(code)):
        try:
            tree = parse_python(source)
        except (SyntaxError, ValueError):  # ValueError: NUL bytes
            continue
        encoded = source.encode("utf-8", "surrogatepass")
        line_starts = [0]
        for line in encoded.splitlines(keepends=True):
            line_starts.append(line_starts[-1] + len(line))
        kept, cursor = [], 0
        for node in _no_op_statements(tree.body):
            start = line_starts[node.lineno - 1] + node.col_offset  # ast columns count UTF-8 bytes
            kept.append(encoded[cursor:start])
            cursor = line_starts[node.end_lineno - 1] + node.end_col_offset
        kept.append(encoded[cursor:])
        return _strip_with_regex(b" ".join(kept).decode("utf-8", "surrogatepass"), "python", guess_docstrings=False)
    return None


def _no_op_statements(body: list[ast.stmt]) -> list[ast.stmt]:
    """Docstrings, bare strings and ``pass`` at any depth of a statement list, in source order.

    Only statement lists are walked, never expressions: that is most of the tree and none of the answer.
    """
    found = []
    for statement in body:
        bare_string = isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant) and isinstance(statement.value.value, str)
        if bare_string or isinstance(statement, ast.Pass):
            found.append(statement)
            continue
        for field in ("body", "orelse", "finalbody", "handlers", "cases"):
            for child in getattr(statement, field, ()):
                found += _no_op_statements([child] if isinstance(child, ast.stmt) else child.body)
    return found


def _strip_with_regex(code: str, language: str, guess_docstrings: bool = True) -> str:
    """Comments cut out by one regex that steps over string literals.

    With ``guess_docstrings`` (code that ``ast`` could not read) triple-quoted strings and lone ``pass``
    lines go too, as the nearest guess at what ``ast`` would have removed.
    """
    alternatives = [f"(?P<triple>{_TRIPLE_QUOTED})", f"(?P<string>{_QUOTED})"]
    if language not in _SLASH_COMMENT_EXEMPT:
        alternatives.append(r"(?P<block>/\*[\s\S]*?\*/)|(?P<line>//[^\n]*)")
    if language in _HASH_COMMENT_LANGUAGES:
        alternatives.append(r"(?P<hash>#[^\n]*)")
    kept = {"string"} if guess_docstrings else {"string", "triple"}
    stripped = re.sub("|".join(alternatives), lambda m: m.group() if m.lastgroup in kept else " ", code)
    return _LONE_PASS.sub("", stripped) if guess_docstrings else stripped


def code_tokens(code: str, language: str = "") -> list[str]:
    """Lowercased identifiers, numbers and single punctuation marks of stripped code."""
    return _CODE_TOKEN.findall(strip_code(code, language).lower())


def normalise_docstring(text: str) -> str:
    """Lowercased, punctuation turned into spaces (so 'header-line' is 'header line'), whitespace collapsed."""
    return _WHITESPACE.sub(" ", _PUNCTUATION.sub(" ", text.lower())).strip()


def function_name(code: str) -> str:
    """The first function or method defined in the code, '' when none or when the name is generic."""
    match = _KEYWORD_DEFINITION.search(code) or _TYPED_DEFINITION.search(code)
    if match is None:
        return ""
    name = next(group for group in match.groups() if group)
    if len(name) <= 2 or name.lower() in GENERIC_NAMES or (name.startswith("__") and name.endswith("__")):
        return ""
    return name


def _sha1(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest() if text else ""


def _fingerprint(dataset: Dataset, code_side: CodeSide | None) -> _Fingerprints:
    found = pairs(dataset, code_side)
    tokens = [code_tokens(pair.code, pair.language) for pair in found]
    shingles = Shingles.of(tokens)
    return _Fingerprints(
        name=dataset.name,
        pairs=found,
        code_keys=tuple(_sha1(" ".join(t)) for t in tokens),
        docstring_keys=tuple(_sha1(normalise_docstring(pair.docstring)) for pair in found),
        names=tuple(function_name(pair.code) for pair in found),
        shingles=shingles,
        signatures=minhash_signatures(shingles),
    )


_MIX = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9], dtype=np.uint64)


@dataclass(frozen=True)
class Shingles:
    """Each text's distinct token 3-grams as 64-bit ids: text i owns ``values[bounds[i]:bounds[i + 1]]``."""

    values: np.ndarray  # uint64, sorted within each text
    bounds: np.ndarray  # int64, len(texts) + 1

    @classmethod
    def of(cls, token_lists: Sequence[Sequence[str]]) -> "Shingles":
        """Shingle every text at once; a text of one or two tokens is a single shingle, an empty one none.

        Tokens are hashed with crc32, stable across runs unlike Python's salted ``hash()``.
        """
        token_ids = {t: zlib.crc32(t.encode("utf-8", "surrogatepass")) + 1 for t in set(chain.from_iterable(token_lists))}
        lengths = np.array([len(tokens) for tokens in token_lists], dtype=np.int64)
        # Each text is followed by zero ids, so every window starting inside a text stays inside it.
        gap = SHINGLE_TOKENS - 1
        padded = np.zeros(int(lengths.sum()) + gap * len(lengths), dtype=np.uint64)
        starts = np.concatenate([[0], np.cumsum(lengths + gap)[:-1]]).astype(np.int64)
        inside = np.repeat(starts, lengths) + _ranks(lengths)
        padded[inside] = np.fromiter((token_ids[t] for tokens in token_lists for t in tokens), dtype=np.uint64, count=len(inside))
        windows = np.where(lengths > 0, np.maximum(lengths - gap, 1), 0)
        first = np.repeat(starts, windows) + _ranks(windows)
        mixed = sum((padded[first + k] * _MIX[k] for k in range(SHINGLE_TOKENS)), np.zeros(len(first), dtype=np.uint64))
        owner = np.repeat(np.arange(len(lengths)), windows)
        values = _finalise(mixed)
        order = np.lexsort((values, owner))
        values, owner = values[order], owner[order]
        distinct = np.ones(len(values), dtype=bool)
        distinct[1:] = (values[1:] != values[:-1]) | (owner[1:] != owner[:-1])
        values, owner = values[distinct], owner[distinct]
        bounds = np.concatenate([[0], np.cumsum(np.bincount(owner, minlength=len(lengths)))]).astype(np.int64)
        return cls(values, bounds)

    def __len__(self) -> int:
        return len(self.bounds) - 1

    def sizes(self) -> np.ndarray:
        return np.diff(self.bounds)

    def of_text(self, row: int) -> np.ndarray:
        return self.values[self.bounds[row]:self.bounds[row + 1]]


def _ranks(counts: np.ndarray) -> np.ndarray:
    """0..count-1 for each count, concatenated: the position of each item inside its group."""
    total = int(counts.sum())
    return np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)


def _finalise(values: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: spreads every input bit over all 64 output bits."""
    values = values ^ (values >> np.uint64(30))
    values = values * np.uint64(0xBF58476D1CE4E5B9)
    values = values ^ (values >> np.uint64(27))
    values = values * np.uint64(0x94D049BB133111EB)
    return values ^ (values >> np.uint64(31))


def minhash_signatures(shingles: Shingles) -> np.ndarray:
    """MinHash signatures, (texts, PERMUTATIONS) uint32, by multiply-add-shift hashing in numpy.

    Permutations are taken a block at a time so the (block, shingles) table stays near 32 MB.
    """
    rng = np.random.default_rng(_MINHASH_SEED)
    multipliers = rng.integers(1, 2**63, size=PERMUTATIONS, dtype=np.uint64) | np.uint64(1)
    offsets = rng.integers(0, 2**63, size=PERMUTATIONS, dtype=np.uint64)
    signatures = np.full((len(shingles), PERMUTATIONS), np.iinfo(np.uint32).max, dtype=np.uint32)
    filled = np.flatnonzero(shingles.sizes())
    if not len(filled):
        return signatures
    block = max(1, min(PERMUTATIONS, _HASHES_PER_BLOCK // len(shingles.values)))
    for low in range(0, PERMUTATIONS, block):
        rows = slice(low, low + block)
        hashed = ((multipliers[rows, None] * shingles.values + offsets[rows, None]) >> np.uint64(32)).astype(np.uint32)
        signatures[filled, rows] = np.minimum.reduceat(hashed, shingles.bounds[filled], axis=1).T
    return signatures


def _band_keys(signatures: np.ndarray) -> np.ndarray:
    """(texts, BANDS) uint64: each band's rows folded into one key, the band number mixed in."""
    rows = signatures.astype(np.uint64).reshape(len(signatures), BANDS, ROWS_PER_BAND)
    keys = np.zeros((len(signatures), BANDS), dtype=np.uint64)
    for row in range(ROWS_PER_BAND):
        keys = _finalise(keys ^ rows[:, :, row])
    return _finalise(keys ^ np.arange(BANDS, dtype=np.uint64))


def _lsh_pairs(left: Shingles, left_signatures: np.ndarray, right: Shingles, right_signatures: np.ndarray) -> np.ndarray:
    """(left row, right row) pairs of texts sharing at least one LSH band, each pair once."""
    train_rows = np.flatnonzero(left.sizes())
    eval_rows = np.flatnonzero(right.sizes())
    if not len(train_rows) or not len(eval_rows):
        return np.empty((0, 2), dtype=np.int64)
    train_keys = _band_keys(left_signatures[train_rows]).ravel()
    eval_keys = _band_keys(right_signatures[eval_rows]).ravel()
    train_owner = np.repeat(train_rows, BANDS)
    eval_owner = np.repeat(eval_rows, BANDS)
    order = np.argsort(train_keys, kind="stable")
    sorted_keys = train_keys[order]
    low = np.searchsorted(sorted_keys, eval_keys, side="left")
    high = np.searchsorted(sorted_keys, eval_keys, side="right")
    matches = high - low
    if not matches.sum():
        return np.empty((0, 2), dtype=np.int64)
    first = np.repeat(low - (np.cumsum(matches) - matches), matches) + np.arange(matches.sum())
    n_right = len(right)
    codes = np.unique(train_owner[order[first]] * n_right + np.repeat(eval_owner, matches))
    return np.stack(np.divmod(codes, n_right), axis=1)


def _snippet(text: str) -> str:
    text = text.strip()
    return text if len(text) <= _SNIPPET_CHARS else text[:_SNIPPET_CHARS - 1] + "…"


def _exact_overlaps(kind: str, train: _Fingerprints, evaluation: _Fingerprints, train_keys: Sequence[str],
                    eval_keys: Sequence[str], shown: str) -> list[Overlap]:
    """Overlaps of pairs whose key (a hash or a name) is equal and not empty."""
    by_key: dict[str, list[int]] = defaultdict(list)
    for row, key in enumerate(train_keys):
        if key:
            by_key[key].append(row)
    found = []
    for eval_row, key in enumerate(eval_keys):
        for train_row in by_key.get(key, ()) if key else ():
            found.append(_overlap(kind, train, evaluation, train_row, eval_row, 1.0, shown))
    return found


def _overlap(kind: str, train: _Fingerprints, evaluation: _Fingerprints, train_row: int, eval_row: int,
             similarity: float, shown: str) -> Overlap:
    train_pair, eval_pair = train.pairs[train_row], evaluation.pairs[eval_row]
    return Overlap(kind, train_pair.query_id, eval_pair.query_id, similarity,
                   _snippet(getattr(train_pair, shown)), _snippet(getattr(eval_pair, shown)))


def _jaccard_matches(left: Shingles, left_signatures: np.ndarray, right: Shingles, right_signatures: np.ndarray,
                     threshold: float, skip: Collection[tuple[int, int]] = ()) -> tuple[list[tuple[int, int, float]], int]:
    """(left row, right row, similarity) of LSH candidates whose exact Jaccard similarity of shingle sets reaches
    ``threshold``, rounded to 4 places, and how many candidates were compared exactly; pairs in ``skip`` are not."""
    left_sets: dict[int, set[int]] = {}
    right_sets: dict[int, set[int]] = {}
    found, compared = [], 0
    for left_row, right_row in _lsh_pairs(left, left_signatures, right, right_signatures).tolist():
        if (left_row, right_row) in skip:
            continue
        compared += 1
        if left_row not in left_sets:
            left_sets[left_row] = set(left.of_text(left_row).tolist())
        if right_row not in right_sets:
            right_sets[right_row] = set(right.of_text(right_row).tolist())
        a, b = left_sets[left_row], right_sets[right_row]
        shared = len(a & b)
        similarity = shared / (len(a) + len(b) - shared)
        if similarity >= threshold:
            found.append((left_row, right_row, round(similarity, 4)))
    return found, compared


def _near_duplicates(train: _Fingerprints, evaluation: _Fingerprints, threshold: float) -> tuple[list[Overlap], int]:
    """LSH candidates whose exact Jaccard similarity of shingle sets reaches the threshold, and the candidates compared."""
    matches, compared = _jaccard_matches(train.shingles, train.signatures, evaluation.shingles, evaluation.signatures, threshold)
    return [_overlap(NEAR_DUPLICATE_CODE, train, evaluation, train_row, eval_row, similarity, "code")
            for train_row, eval_row, similarity in matches], compared


def _compare(train: _Fingerprints, evaluation: _Fingerprints, threshold: float, kinds: tuple[str, ...]) -> LeakageReport:
    overlaps: list[Overlap] = []
    if EXACT_CODE in kinds:
        overlaps += _exact_overlaps(EXACT_CODE, train, evaluation, train.code_keys, evaluation.code_keys, "code")
    if EXACT_DOCSTRING in kinds:
        overlaps += _exact_overlaps(EXACT_DOCSTRING, train, evaluation, train.docstring_keys, evaluation.docstring_keys, "docstring")
    if FUNCTION_NAME in kinds:
        overlaps += _exact_overlaps(FUNCTION_NAME, train, evaluation, train.names, evaluation.names, "code")
    compared = 0
    if NEAR_DUPLICATE_CODE in kinds:
        near, compared = _near_duplicates(train, evaluation, threshold)
        overlaps += near
    return LeakageReport(train.name, evaluation.name, tuple(overlaps), len(train.pairs), len(evaluation.pairs), kinds, compared)


def _check_options(jaccard_threshold: float, kinds: Sequence[str]) -> tuple[str, ...]:
    unknown = [kind for kind in kinds if kind not in ALL_KINDS]
    if unknown:
        raise WorkbenchError(f"Unknown leakage check {', '.join(map(repr, unknown))}: choose from {', '.join(ALL_KINDS)}.")
    if not 0.0 < jaccard_threshold <= 1.0:
        raise WorkbenchError(f"jaccard_threshold must lie in (0, 1], not {jaccard_threshold}.")
    return tuple(kind for kind in ALL_KINDS if kind in kinds)


def audit(train: Dataset, eval: Dataset, jaccard_threshold: float = DEFAULT_JACCARD, kinds: Sequence[str] = ALL_KINDS,
          code_sides: Mapping[str, CodeSide] | None = None) -> LeakageReport:
    """Find the eval pairs that the train dataset already holds, exactly or nearly.

    ``code_sides`` maps a dataset name to the side that holds its code ('query' or 'document');
    datasets not named there have it detected from their texts.
    """
    return audit_many(train, [eval], jaccard_threshold, kinds, code_sides)[0]


def audit_many(train: Dataset, evals: Sequence[Dataset], jaccard_threshold: float = DEFAULT_JACCARD,
               kinds: Sequence[str] = ALL_KINDS, code_sides: Mapping[str, CodeSide] | None = None) -> list[LeakageReport]:
    """One report per eval dataset, fingerprinting the train dataset once."""
    chosen = _check_options(jaccard_threshold, kinds)
    sides = dict(code_sides or {})
    train_prints = _fingerprint(train, sides.get(train.name))
    return [_compare(train_prints, _fingerprint(evaluation, sides.get(evaluation.name)), jaccard_threshold, chosen)
            for evaluation in evals]


# ---- every eval text, judged or not ---------------------------------------------------------------------

EXACT_TEXT = "exact"
NEAR_DUPLICATE_TEXT = "near_duplicate"
TEXT_KINDS: tuple[str, ...] = (EXACT_TEXT, NEAR_DUPLICATE_TEXT)
SIDES: tuple[str, ...] = ("query", "document")


@dataclass(frozen=True)
class TextOverlap:
    """A training text (a query, or a corpus document: a positive or a negative to mine) that an eval text repeats."""

    kind: str  # EXACT_TEXT or NEAR_DUPLICATE_TEXT
    train_side: str  # "query" or "document"
    train_id: str
    eval_side: str
    eval_id: str
    similarity: float
    train_snippet: str
    eval_snippet: str

    @property
    def category(self) -> str:
        return overlap_category(self.kind, self.train_side, self.eval_side)


def overlap_category(kind: str, train_side: str, eval_side: str) -> str:
    """The name each kind of overlap is counted under, e.g. ``train query = eval document (exact)``."""
    relation = "=" if kind == EXACT_TEXT else "≈"
    return f"train {train_side} {relation} eval {eval_side}" + (" (exact)" if kind == EXACT_TEXT else " (near-duplicate)")


TEXT_CATEGORIES: tuple[str, ...] = tuple(overlap_category(kind, train_side, eval_side)
                                         for train_side in SIDES for eval_side in SIDES for kind in TEXT_KINDS)


@dataclass(frozen=True)
class TextLeakageReport:
    """Every training text that appears, exactly or nearly, anywhere in an eval set: its queries and its whole corpus."""

    train: str
    eval: str
    overlaps: tuple[TextOverlap, ...]
    train_queries: int
    train_documents: int
    eval_queries: int
    eval_documents: int
    near_candidates: int = 0  # text pairs compared exactly after LSH bucketing (exact matches are not compared again)

    def counts(self) -> dict[str, int]:
        """Category -> number of distinct training texts it found (0 for categories that found none)."""
        found: dict[str, set[str]] = {category: set() for category in TEXT_CATEGORIES}
        for overlap in self.overlaps:
            found[overlap.category].add(overlap.train_id)
        return {category: len(ids) for category, ids in found.items()}

    def leaked_train_ids(self, side: str) -> set[str]:
        return {o.train_id for o in self.overlaps if o.train_side == side}

    def to_frame(self) -> pd.DataFrame:
        columns = ["train", "eval", "category", "train_id", "eval_id", "similarity", "train_snippet", "eval_snippet"]
        rows = [(self.train, self.eval, o.category, o.train_id, o.eval_id, o.similarity, o.train_snippet, o.eval_snippet)
                for o in self.overlaps]
        return pd.DataFrame(rows, columns=columns)


@dataclass(frozen=True)
class _TextPrints:
    """The exact keys and MinHash signatures of a list of texts (queries or documents of one side)."""

    side: str
    ids: tuple[str, ...]
    texts: tuple[str, ...]
    keys: tuple[tuple[str, ...], ...]  # normalised text hash, plus the stripped-code hash for texts that look like code
    shingles: Shingles
    signatures: np.ndarray


def _text_tokens(text: str, language: str) -> tuple[list[str], tuple[str, ...]]:
    """Tokens to shingle and exact keys: code is compared without its comments and docstrings, prose as words."""
    words = normalise_docstring(text)
    keys = [_sha1(words)]
    if looks_like_code(text):
        tokens = code_tokens(text, language)
        keys.append("code:" + _sha1(" ".join(tokens)))
    else:
        tokens = words.split()
    return tokens, tuple(key for key in keys if key and not key.endswith(":"))


def _text_prints(side: str, items: Sequence[tuple[str, str, str]]) -> _TextPrints:
    """``items``: (id, text, language) of every query or document of a dataset."""
    tokens, keys = [], []
    for _, text, language in items:
        found_tokens, found_keys = _text_tokens(text, language)
        tokens.append(found_tokens)
        keys.append(found_keys)
    shingles = Shingles.of(tokens)
    return _TextPrints(side, tuple(i for i, _, _ in items), tuple(t for _, t, _ in items), tuple(keys), shingles,
                       minhash_signatures(shingles))


def _dataset_prints(dataset: Dataset) -> dict[str, _TextPrints]:
    return {"query": _text_prints("query", [(q.id, q.text, q.language.replace("unknown", "")) for q in dataset.queries]),
            "document": _text_prints("document", [(d.id, d.full_text, d.language) for d in dataset.documents])}


def _text_overlaps(train: _TextPrints, evaluation: _TextPrints, threshold: float) -> tuple[list[TextOverlap], int]:
    found = []
    by_key: dict[str, list[int]] = defaultdict(list)
    for row, keys in enumerate(evaluation.keys):
        for key in keys:
            by_key[key].append(row)
    exact: set[tuple[int, int]] = set()
    for train_row, keys in enumerate(train.keys):
        for eval_row in sorted({row for key in keys for row in by_key.get(key, ())}):
            exact.add((train_row, eval_row))
            found.append(_text_overlap(EXACT_TEXT, train, evaluation, train_row, eval_row, 1.0))
    matches, compared = _jaccard_matches(train.shingles, train.signatures, evaluation.shingles, evaluation.signatures,
                                         threshold, skip=exact)
    found += [_text_overlap(NEAR_DUPLICATE_TEXT, train, evaluation, train_row, eval_row, similarity)
              for train_row, eval_row, similarity in matches]
    return found, compared


def _text_overlap(kind: str, train: _TextPrints, evaluation: _TextPrints, train_row: int, eval_row: int,
                  similarity: float) -> TextOverlap:
    return TextOverlap(kind, train.side, train.ids[train_row], evaluation.side, evaluation.ids[eval_row], similarity,
                       _snippet(train.texts[train_row]), _snippet(evaluation.texts[eval_row]))


def audit_texts(train: Dataset, evals: Sequence[Dataset], jaccard_threshold: float = DEFAULT_JACCARD) -> list[TextLeakageReport]:
    """Every training query and corpus document against every query and document of each eval set.

    Unlike ``audit_many``, which compares judged (code, docstring) pairs, this looks at all texts: a
    training docstring that is an *unjudged* document of an eval corpus, or a function to be mined
    as a negative that an eval query quotes, is found too. Exact means equal once normalised
    (lowercase, punctuation and whitespace collapsed; code also without comments and docstrings);
    near-duplicate means a MinHash-estimated, then exactly checked, Jaccard similarity of token
    3-grams of at least ``jaccard_threshold``.
    """
    _check_options(jaccard_threshold, ALL_KINDS)
    train_prints = _dataset_prints(train)
    reports = []
    for evaluation in evals:
        eval_prints = _dataset_prints(evaluation)
        overlaps: list[TextOverlap] = []
        compared = 0
        for train_side in SIDES:
            for eval_side in SIDES:
                found, candidates = _text_overlaps(train_prints[train_side], eval_prints[eval_side], jaccard_threshold)
                overlaps += found
                compared += candidates
        reports.append(TextLeakageReport(train.name, evaluation.name, tuple(overlaps), len(train.queries), len(train.documents),
                                         len(evaluation.queries), len(evaluation.documents), compared))
    return reports


def _loses_every_positive(grades: dict[str, int], removed: set[str]) -> bool:
    """Whether a query that had a positive has none left once ``removed`` documents are gone."""
    return any(g > 0 for g in grades.values()) and not any(g > 0 for d, g in grades.items() if d not in removed)


def filter_leaked(train: Dataset, reports: Sequence[LeakageReport | TextLeakageReport], name: str | None = None) -> Dataset:
    """The train set without what the audits found: the one filter of fine-tuning, ``audit --write-filtered`` and the page.

    ``reports`` may mix judged-pair reports (``audit_many``) and every-text reports (``audit_texts``).
    A leaking training query leaves with its judgments; a leaking corpus document leaves the corpus, so
    it is neither a positive nor a mined negative; a pair check's leaked answer leaves too unless a
    kept query is judged on it; a query whose positives have all left goes. Queries that never had a
    positive are kept as they were.
    """
    for report in reports:
        if report.train != train.name:
            raise DatasetError(f"This leakage report audited {report.train!r}, not {train.name!r}: "
                               f"audit {train.name!r} and filter with that report.")
    pair_reports = [r for r in reports if isinstance(r, LeakageReport)]
    text_reports = [r for r in reports if isinstance(r, TextLeakageReport)]
    pair_leaked = set().union(*(r.leaked_train_ids() for r in pair_reports))
    leaked_queries = pair_leaked.union(*(r.leaked_train_ids("query") for r in text_reports))
    leaked_documents = set().union(*(r.leaked_train_ids("document") for r in text_reports))
    # The queries that stay are known before a pair check's answers go: a query that loses every positive to the
    # text audit goes too, and must not keep such an answer in the corpus by being judged on it.
    staying = {q for q, grades in train.qrels.judgments.items()
               if q not in leaked_queries and not _loses_every_positive(grades, leaked_documents)}
    still_judged = {d for q in staying for d in train.qrels.judgments[q]}
    leaked_documents |= {d for q in pair_leaked for d in train.qrels.positives(q)} - still_judged

    documents = tuple(d for d in train.documents if d.id not in leaked_documents)
    # The answers that just left are judged by no staying query, so the staying queries are exactly the ones kept.
    judgments = {q: {d: g for d, g in grades.items() if d not in leaked_documents}
                 for q, grades in train.qrels.judgments.items() if q in staying}
    if not any(grade > 0 for grades in judgments.values() for grade in grades.values()):
        raise DatasetError(f"Every judged query of {train.name!r} leaks into the eval data: nothing is left to train on.")
    dropped = leaked_queries | (set(train.qrels.judgments) - set(judgments))
    queries = tuple(q for q in train.queries if q.id not in dropped)
    return Dataset(validate_name(name or f"{train.name}-noleak"), documents, queries, Qrels(judgments), train.split, train.source)
