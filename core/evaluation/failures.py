"""Failure analysis: which queries a run misses at k, and what outranked the positive there.

A query fails at k when none of its relevant documents is in the run's top k (hit@k = 0). For one
failure, ``explain_failure`` lists the documents ranked above the best positive with the query terms
each shares (``core.index.analyzers.code_tokens``) and those the positives lack, then suggests a reason.
Suggestions are heuristics for a person to confirm; the tag the user picks is what counts.
"""
from __future__ import annotations

import difflib
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from core.index.analyzers import code_tokens
from core.evaluation.compare import query_preview
from core.data.datasets import Dataset, Document, Query
from core.errors import MetricError, QueryError
from core.retrieval.engine import Engine
from core.retrieval.profiles import DenseProfile, HybridProfile, Profile, RerankProfile
from core.retrieval.runs import Run

NEAR_DUPLICATE = 0.9  # difflib ratio or token Jaccard at or above this: two texts say the same thing
GENERIC_WORDS = 6  # a positive of this many words or fewer is a generic summary
OVERLAP_TERMS = 2  # a higher document sharing this many query terms the positives lack explains the miss


@dataclass(frozen=True)
class FailureCase:
    """A query whose best positive is below rank k or not retrieved (rank None)."""

    query_id: str
    positive_rank: int | None
    positive_ids: tuple[str, ...]
    language: str
    preview: str


@dataclass(frozen=True)
class PositiveDocument:
    """A relevant document of the failed query, where the run put it, and the query terms it shares."""

    document: Document
    grade: int
    rank: int | None
    shared_terms: tuple[str, ...]


@dataclass(frozen=True)
class OutrankingDocument:
    """A document ranked above the positive: its shared query terms, and those no positive has."""

    rank: int
    document: Document
    shared_terms: tuple[str, ...]
    terms_positive_lacks: tuple[str, ...]
    jaccard: float  # token overlap with the best positive's text (0..1)
    near_duplicate: bool  # of the best positive: see ``is_near_duplicate``


@dataclass(frozen=True)
class OtherRank:
    """The best positive rank of the same query under another run (None: not retrieved)."""

    run_name: str
    rank: int | None


@dataclass(frozen=True)
class SuggestedReason:
    """A heuristic guess at why the query failed: a tag reason and the evidence behind it."""

    reason: str
    detail: str


@dataclass(frozen=True)
class FailureExplanation:
    """Everything the failure page shows about one query of one run."""

    query: Query
    run_name: str
    k: int
    positive_rank: int | None
    positives: tuple[PositiveDocument, ...]
    outranking: tuple[OutrankingDocument, ...]
    terms_positive_lacks: tuple[str, ...]
    other_ranks: tuple[OtherRank, ...]
    suggestions: tuple[SuggestedReason, ...]

    @property
    def failed(self) -> bool:
        return self.positive_rank is None or self.positive_rank > self.k


def _check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise MetricError(f"k {k!r} must be a whole number >= 1, as in 10.")
    return k


def best_positive_rank(dataset: Dataset, run: Run, query_id: str) -> int | None:
    """Rank of the highest-ranked relevant document of the query in the run; None when none was retrieved."""
    ranking = run.ranking(query_id)
    ranks = [r for r in (ranking.rank_of(doc_id) for doc_id in dataset.qrels.positives(query_id)) if r is not None]
    return min(ranks, default=None)


def find_failures(dataset: Dataset, run: Run, k: int = 10) -> list[FailureCase]:
    """Judged queries with no relevant document in the run's top k, worst first (not retrieved, then deepest)."""
    _check_k(k)
    failures = []
    for query in dataset.judged_queries:
        rank = best_positive_rank(dataset, run, query.id)
        if rank is None or rank > k:
            failures.append(FailureCase(query.id, rank, tuple(dataset.qrels.positives(query.id)),
                                        dataset.query_language(query.id), query_preview(query.text)))
    return sorted(failures, key=lambda f: -(f.positive_rank or math.inf))


def _by_query_frequency(query_terms: Counter[str], terms: set[str]) -> tuple[str, ...]:
    """The query terms among ``terms``, each once, most frequent in the query first (ties: query order)."""
    order = {term: position for position, term in enumerate(query_terms)}
    return tuple(sorted((t for t in query_terms if t in terms), key=lambda t: (-query_terms[t], order[t])))


def shared_terms(query_terms: Counter[str], text: str) -> tuple[str, ...]:
    """Query terms (``Counter(code_tokens(query))``) that also occur in ``text``, ordered by query frequency."""
    return _by_query_frequency(query_terms, set(code_tokens(text)))


def token_jaccard(a: str, b: str) -> float:
    """Jaccard overlap of two texts' code tokens (0..1); two token-less texts count as equal when equal."""
    tokens_a, tokens_b = set(code_tokens(a)), set(code_tokens(b))
    union = tokens_a | tokens_b
    return len(tokens_a & tokens_b) / len(union) if union else float(a.strip() == b.strip())


def is_near_duplicate(a: str, b: str) -> bool:
    """True when difflib's ratio or the token Jaccard of two texts reaches NEAR_DUPLICATE."""
    if token_jaccard(a, b) >= NEAR_DUPLICATE:
        return True
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    # the quick ratios are upper bounds: most pairs are settled without the quadratic exact ratio
    return (matcher.real_quick_ratio() >= NEAR_DUPLICATE and matcher.quick_ratio() >= NEAR_DUPLICATE
            and matcher.ratio() >= NEAR_DUPLICATE)


def _suggest(positives: Sequence[PositiveDocument], outranking: Sequence[OutrankingDocument]) -> tuple[SuggestedReason, ...]:
    suggestions = []
    twins = [doc for doc in outranking if doc.near_duplicate]
    if twins:
        doc = twins[0]
        suggestions.append(SuggestedReason("near-duplicate", f"the document at rank {doc.rank} ({doc.document.id}) "
                                           f"reads almost like the positive (token overlap {doc.jaccard:.0%})"))
    overlapping = max(outranking, key=lambda doc: len(doc.terms_positive_lacks), default=None)
    if overlapping is not None and len(overlapping.terms_positive_lacks) >= OVERLAP_TERMS:
        terms = ", ".join(overlapping.terms_positive_lacks[:5])
        suggestions.append(SuggestedReason("identifier overlap", f"the document at rank {overlapping.rank} "
                                           f"({overlapping.document.id}) shares {len(overlapping.terms_positive_lacks)} "
                                           f"query terms the positive lacks: {terms}"))
    short = [p for p in positives if len(p.document.full_text.split()) <= GENERIC_WORDS]
    if short:
        words = len(short[0].document.full_text.split())
        suggestions.append(SuggestedReason("generic summary", f"the positive {short[0].document.id} has only {words} "
                                           f"word{'s' if words != 1 else ''}"))
    if positives and not any(p.shared_terms for p in positives):
        suggestions.append(SuggestedReason("other", "vocabulary mismatch: no positive shares a term with the query"))
    return tuple(suggestions)


def explain_failure(dataset: Dataset, run: Run, query_id: str, k: int = 10, other_runs: Sequence[Run] = ()) -> FailureExplanation:
    """What outranked the positive of one query in ``run``: the top-k documents above it and the terms behind them."""
    _check_k(k)
    if query_id not in dataset.query_index:
        raise QueryError(f"Query {query_id!r} is not in dataset {dataset.name!r}; pick one from the failure list.")
    positive_ids = dataset.qrels.positives(query_id)
    if not positive_ids:
        raise QueryError(f"Query {query_id!r} has no relevant document in the qrels, so it cannot fail or succeed.")
    query = dataset.query(query_id)
    query_terms = Counter(code_tokens(query.text))
    ranking = run.ranking(query_id)
    grades = dataset.qrels.grades(query_id)
    dataset.documents_for([*positive_ids, *ranking.doc_ids[:k]])  # one read for a stored corpus; the rows are cached after

    positives = tuple(PositiveDocument(dataset.document(doc_id), int(grades[doc_id]), ranking.rank_of(doc_id),
                                       shared_terms(query_terms, dataset.document(doc_id).full_text))
                      for doc_id in positive_ids if doc_id in dataset.doc_index)
    rank = best_positive_rank(dataset, run, query_id)
    best_text = min(positives, key=lambda p: p.rank or math.inf).document.full_text if positives else ""
    positive_terms = {term for p in positives for term in p.shared_terms}
    above = ranking.doc_ids[: k if rank is None else min(k, rank - 1)]
    outranking = []
    for position, doc_id in enumerate(above, start=1):
        if doc_id not in dataset.doc_index:
            continue  # a stale run may name a document the dataset no longer has
        document = dataset.document(doc_id)
        shared = shared_terms(query_terms, document.full_text)
        lacks = tuple(t for t in shared if t not in positive_terms)
        outranking.append(OutrankingDocument(position, document, shared, lacks, token_jaccard(document.full_text, best_text),
                                             is_near_duplicate(document.full_text, best_text)))
    lacking = _by_query_frequency(query_terms, {t for doc in outranking for t in doc.terms_positive_lacks})
    others = tuple(OtherRank(other.name, best_positive_rank(dataset, other, query_id)) for other in other_runs)
    return FailureExplanation(query, run.name, k, rank, positives, tuple(outranking), lacking, others,
                              _suggest(positives, outranking))


# ── Semantic reading (dense profiles) ────────────────────────────────────────────────────────────
EMBEDDING_TWIN = 0.9  # cosine between a distractor and the positive at or above this: the model reads them alike
TOPIC_SHARE = 0.6  # a term in at least this share of the documents above the positive is their common topic
LENGTH_RATIO = 2.0  # a positive this many times shorter (or longer) than the median document above it


@dataclass(frozen=True)
class SemanticReading:
    """How the dense model saw one failure: cosines, the margin the positive lost by, and what they suggest."""

    model: str
    positive_id: str
    positive_cosine: float  # query · best positive
    distractor_id: str
    distractor_rank: int
    distractor_cosine: float  # query · the highest document above the positive
    distractor_positive_cosine: float  # distractor · positive: near 1 means the model cannot tell them apart
    shared_topic: tuple[str, ...]  # terms most documents above the positive share and the positive lacks
    positive_words: int
    median_words_above: float
    hints: tuple[SuggestedReason, ...]

    @property
    def margin(self) -> float:
        """How much closer to the query (in cosine) the top distractor is than the positive."""
        return self.distractor_cosine - self.positive_cosine


def dense_model_of(profile: Profile, profiles: Mapping[str, Profile]) -> tuple[str, str] | None:
    """(model, backend) of the embedding model behind a profile: its own, its first stage's, or a fused member's."""
    if isinstance(profile, DenseProfile):
        return profile.model, profile.backend
    if isinstance(profile, RerankProfile):
        if profile.reranker != "cross-encoder":
            return profile.model, "torch"
        first = profiles.get(profile.first_stage)
        return dense_model_of(first, profiles) if first is not None else None
    if isinstance(profile, HybridProfile):
        for member in profile.members:
            found = dense_model_of(profiles[member], profiles) if member in profiles else None
            if found is not None:
                return found
    return None


def _words(text: str) -> int:
    return len(text.split())


def semantic_reading(engine: Engine, explanation: FailureExplanation, model: str, backend: str = "torch") -> SemanticReading | None:
    """The dense model's view of a failure: None when nothing outranked the positive (or it has no positive)."""
    if not explanation.outranking or not explanation.positives:
        return None
    dataset = engine.dataset
    matrix = engine.vectors(model, backend).vectors
    query_vector = engine.query_vectors(model, backend, [explanation.query])[0]
    best = min(explanation.positives, key=lambda p: p.rank or math.inf)
    positive_vector = matrix[dataset.doc_index[best.document.id]]
    above = explanation.outranking
    cosines = [float(matrix[dataset.doc_index[d.document.id]] @ query_vector) for d in above]
    top = max(range(len(above)), key=lambda i: (cosines[i], -above[i].rank))
    distractor = above[top]
    distractor_vector = matrix[dataset.doc_index[distractor.document.id]]
    positive_cosine = float(positive_vector @ query_vector)
    twin_cosine = float(distractor_vector @ positive_vector)

    positive_tokens = set(code_tokens(best.document.full_text))
    counts = Counter(token for d in above for token in set(code_tokens(d.document.full_text)) if len(token) > 2)
    topic = tuple(token for token, n in counts.most_common() if n >= TOPIC_SHARE * len(above) and token not in positive_tokens)[:5]
    lengths = sorted(_words(d.document.full_text) for d in above)
    median = float(lengths[len(lengths) // 2] if len(lengths) % 2 else (lengths[len(lengths) // 2 - 1] + lengths[len(lengths) // 2]) / 2)
    positive_words = _words(best.document.full_text)

    hints = [SuggestedReason("other", f"{model} puts the document at rank {distractor.rank} ({distractor.document.id}) "
                                      f"closer to the query than the positive: cosine {cosines[top]:.3f} against "
                                      f"{positive_cosine:.3f} (margin {cosines[top] - positive_cosine:+.3f})")]
    if twin_cosine >= EMBEDDING_TWIN:
        hints.append(SuggestedReason("near-duplicate", f"to {model}, {distractor.document.id} and the positive are "
                                                       f"near-duplicates (cosine {twin_cosine:.3f} between them)"))
    if topic:
        hints.append(SuggestedReason("other", f"the documents above the positive share a topic it does not mention: "
                                              f"{', '.join(topic)}"))
    if median and positive_words * LENGTH_RATIO <= median:
        hints.append(SuggestedReason("generic summary", f"the positive ({positive_words} words) is much shorter than the "
                                                        f"documents above it (median {median:g} words)"))
    elif median and positive_words >= LENGTH_RATIO * median:
        hints.append(SuggestedReason("other", f"the positive ({positive_words} words) is much longer than the documents "
                                              f"above it (median {median:g} words): mean pooling dilutes its match"))
    return SemanticReading(model, best.document.id, positive_cosine, distractor.document.id, distractor.rank, cosines[top],
                           twin_cosine, topic, positive_words, median, tuple(hints))
