"""The engine: turn a profile and queries into a run, opening (or building) the indexes it needs.

One ``Engine`` serves one dataset in one workspace. It keeps opened indexes, loaded models and the
results of member profiles for its lifetime, so evaluating a hybrid after its members, or a rerank
after its first stage, costs only the fusion or the re-scoring. Streamlit keeps one Engine per
(workspace, dataset) in ``st.cache_resource``; a notebook just creates one.
"""
from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from core.data.datasets import Dataset, Query
from core.index.encoders import Encoder, load_encoder
from core.errors import ProfileError, QueryError
from core.retrieval.fusion import Hits, rrf, weighted_sum
from core.retrieval.limits import check_number
from core.retrieval.query_text import MAX_QUERY_CHARS, clean_query_text  # noqa: F401 (MAX_QUERY_CHARS: pages import it from here)
from core.index.lexical import BuildReport, LexicalIndex, open_lexical_index
from core.retrieval.profiles import (Bm25Profile, DenseProfile, HybridProfile, Profile, RerankProfile, dependencies,
                                     profile_to_dict)
from core.retrieval.rerankers import CrossEncoderScorer, merge_reranked, rerank_fusion
from core.retrieval.runs import Ranking, Run
from core.retrieval.tuning import FoldTuning, tune_by_folds
from core.index.ann import AnnRecall, ann_search, measure_ann
from core.index.vectors import VectorIndex, benchmark_query_vectors, corpus_table_name, open_vector_index
from core.progress import ItemProgress, Progress, StageCounter, staged
from core.workspace import Workspace

DEFAULT_DEPTH = 100


@dataclass(frozen=True)
class SearchResult:
    """One ad-hoc query's ranking under one profile, with what it cost."""

    profile: str
    ranking: Ranking
    seconds: float
    truncated: bool = False


@dataclass
class _Retrieved:
    hits: list[Hits]
    seconds: float


def json_key(data: dict) -> str:
    return json.dumps(data, sort_keys=True, default=str)


@dataclass
class Engine:
    """Runs profiles over one dataset; see the module docstring."""

    workspace: Workspace
    dataset: Dataset
    profiles: dict[str, Profile]
    progress: Progress | None = None
    reports: list[BuildReport] = field(default_factory=list)
    _lexical: dict = field(default_factory=dict, repr=False)
    _encoders: dict = field(default_factory=dict, repr=False)
    _vectors: dict = field(default_factory=dict, repr=False)
    _benchmark_vectors: dict = field(default_factory=dict, repr=False)
    _adhoc_vectors: dict = field(default_factory=dict, repr=False)
    _results: dict = field(default_factory=dict, repr=False)
    _cross_encoders: dict = field(default_factory=dict, repr=False)
    _tunings: dict = field(default_factory=dict, repr=False)
    _ann: dict = field(default_factory=dict, repr=False)
    index_files: dict = field(default_factory=dict, repr=False)  # ("lexical", analyzer) | ("vectors", model, backend) -> (BuildReport, path)

    def __post_init__(self) -> None:
        ids = self.dataset.doc_ids  # the id column alone for a stored corpus: no document text is held here
        # trec_eval breaks score ties by doc id, descending; ranking the same way keeps shown ranks equal to scored ranks
        order = sorted(range(len(ids)), key=ids.__getitem__, reverse=True)
        self._tiebreak = np.empty(len(ids), dtype=np.int64)
        self._tiebreak[order] = np.arange(len(ids))
        self._doc_ids = np.array(ids, dtype=object)

    def _texts(self, rows: Sequence[int]) -> list[str]:
        """The indexed text (title and text) of these rows: read by row from a stored corpus, never all at once."""
        return [document.full_text for document in self.dataset.documents_at(rows)]

    # ---- resources ---------------------------------------------------------------------------
    def _report(self, stage_names: dict[str, str], unit: str = "documents") -> ItemProgress | None:
        """An index builder's progress, each of its phases a named stage counting ``unit``."""
        return staged(self.progress, stage_names, unit)

    def _stage(self, stage: str, total: int, unit: str) -> StageCounter:
        return StageCounter(self.progress, stage, total, unit)

    def profile(self, name: str) -> Profile:
        try:
            return self.profiles[name]
        except KeyError:
            raise ProfileError(f"Unknown profile {name!r}; known: {', '.join(self.profiles)}.") from None

    def lexical(self, analyzer: str) -> LexicalIndex:
        if analyzer not in self._lexical:
            index, report = open_lexical_index(self.workspace, self.dataset, analyzer,
                                               progress=self._report({"tokenize": f"BM25 index ({analyzer}): tokenizing",
                                                                      "commit": f"BM25 index ({analyzer}): writing"}))
            self._lexical[analyzer] = index
            self.reports.append(report)
            self.index_files[("lexical", analyzer)] = (report, index.path)
        return self._lexical[analyzer]

    def encoder(self, model: str, backend: str = "torch") -> Encoder:
        key = (model, backend)
        if key not in self._encoders:
            counter = self._stage(f"loading model {model}", 1, "models")
            counter(0)
            self._encoders[key] = load_encoder(model, self.workspace, backend)
            self._encoders[key].dim  # loads the weights now, inside this stage, not at the first embedding
            counter(1)
        return self._encoders[key]

    def vectors(self, model: str, backend: str = "torch") -> VectorIndex:
        key = (model, backend)
        if key not in self._vectors:
            index, report = open_vector_index(self.workspace, self.dataset, self.encoder(model, backend),
                                              progress=self._report({"embed": f"embedding corpus ({model})",
                                                                     "store": f"storing corpus vectors in LanceDB ({model})"}))
            self._vectors[key] = index
            self.reports.append(report)
            table = corpus_table_name(self.dataset, self.encoder(model, backend))
            self.index_files[("vectors", model, backend)] = (report, self.workspace.vectors_dir / f"{table}.lance")
        return self._vectors[key]

    def ann(self, name: str) -> AnnRecall:
        """The ANN index dense profile ``name`` asks for (built on first use) and its recall@100 against exact search
        over the judged queries (measured once per index and search settings, kept beside the table)."""
        profile = self.profile(name)
        settings = profile.ann_settings()
        key = (profile.model, profile.backend, settings)
        if key not in self._ann:
            index = self.vectors(profile.model, profile.backend)
            judged = list(self.dataset.judged_queries)
            query_vectors = self.query_vectors(profile.model, profile.backend, judged)
            counter = self._stage(f"ANN index ({settings.kind}, {profile.model}): building, measuring recall", 1, "indexes")
            counter(0)
            self._ann[key] = measure_ann(self.workspace, index, settings, query_vectors)
            counter(1)
        return self._ann[key]

    def query_vectors(self, model: str, backend: str, queries: Sequence[Query]) -> np.ndarray:
        """Query embeddings: benchmark queries from their LanceDB cache, others encoded (and kept in memory)."""
        key = (model, backend)
        encoder = self.encoder(model, backend)
        if key not in self._benchmark_vectors and any(q.id in self.dataset.query_index for q in queries):
            rows, matrix, report = benchmark_query_vectors(self.workspace, self.dataset, encoder,
                                                           progress=self._report({"embed": f"embedding queries ({model})",
                                                                                  "store": f"storing query vectors in LanceDB ({model})"},
                                                                                 "queries"))
            self._benchmark_vectors[key] = (rows, matrix)
            self.reports.append(report)
        rows, matrix = self._benchmark_vectors.get(key, ({}, None))
        cache = self._adhoc_vectors.setdefault(key, {})
        missing = [q.text for q in queries if (q.id not in rows or self.dataset.query(q.id).text != q.text) and q.text not in cache]
        if missing:
            for text, vector in zip(missing, encoder.encode(missing)):
                cache[text] = vector
            while len(cache) > 2048:  # bounded memory for long explorer sessions
                cache.pop(next(iter(cache)))
        out = np.empty((len(queries), encoder.dim), dtype=np.float32)
        for i, query in enumerate(queries):
            if query.id in rows and self.dataset.query(query.id).text == query.text:
                out[i] = matrix[rows[query.id]]
            else:
                out[i] = cache[query.text]
        return out

    # ---- retrieval ----------------------------------------------------------------------------
    def _retrieve(self, name: str, queries: Sequence[Query], depth: int) -> _Retrieved:
        key = (name, depth, hashlib.sha1("\x1e".join(q.id + "\x1f" + q.text for q in queries).encode("utf-8", "replace")).hexdigest())
        if key in self._results:
            return self._results[key]
        profile = self.profile(name)
        started = time.perf_counter()
        member_seconds = 0.0
        if isinstance(profile, Bm25Profile):
            index = self.lexical(profile.analyzer)
            started = time.perf_counter()  # building the index is not retrieval time
            found = index.search_many([q.text for q in queries], depth, profile.k1, profile.b, self._tiebreak, profile.length_norm)
            hits = [Hits(f.rows, f.scores.astype(np.float64)) for f in found]  # already in trec order (self._tiebreak)
        elif isinstance(profile, DenseProfile):
            index = self.vectors(profile.model, profile.backend)
            settings = profile.ann_settings()  # None: exact search, the default
            if settings is not None:
                self.ann(name)  # the index built and its recall measured before the clock starts
            started = time.perf_counter()
            vectors = self.query_vectors(profile.model, profile.backend, queries)
            found = index.search(vectors, depth) if settings is None else ann_search(index, vectors, depth, settings)
            hits = [Hits(found.rows[i], found.scores[i].astype(np.float64)) for i in range(len(queries))]
        elif isinstance(profile, HybridProfile):
            members = [self._retrieve(member, queries, max(profile.candidate_depth, depth)) for member in profile.members]
            member_seconds = sum(m.seconds for m in members)
            started = time.perf_counter()
            tuning = self._tuning(profile, depth) if profile.tune == "folds" else None
            hits = []
            for i, query in enumerate(queries):
                lists = [m.hits[i].top(profile.candidate_depth) for m in members]
                weights = list(self._query_weights(tuning, query) if tuning else profile.weights) or None
                hits.append(self._fuse(profile, lists, weights, depth))
        elif isinstance(profile, RerankProfile):
            first = self._retrieve(profile.first_stage, queries, max(depth, profile.pool_depth))
            member_seconds = first.seconds
            hits = self._rerank(profile, queries, first.hits, depth)
            started = hits.pop()  # _rerank returns its own start time last, after any index building
        else:  # pragma: no cover - profile_from_dict only builds the four kinds
            raise ProfileError(f"Unsupported profile kind {type(profile).__name__}.")
        if not isinstance(profile, Bm25Profile):
            hits = [self._trec_order(h) for h in hits]
        result = _Retrieved(hits, member_seconds + time.perf_counter() - started)
        self._results[key] = result
        return result

    @staticmethod
    def _fuse(profile: HybridProfile, lists: Sequence[Hits], weights: Sequence[float] | None, depth: int) -> Hits:
        if profile.method == "rrf":
            return rrf(lists, profile.rrf_k, weights, depth)
        return weighted_sum(lists, weights, profile.normalization, depth)

    def _query_weights(self, tuning: FoldTuning, query: Query) -> tuple[float, ...]:
        """A judged benchmark query (same id, same text) gets its fold's weights; any other query the all-query ones."""
        known = query.id in self.dataset.query_index and self.dataset.query(query.id).text == query.text
        return tuning.weights_for(query.id if known else "")

    def _tuning(self, profile: HybridProfile, depth: int) -> FoldTuning:
        """Cross-fitted weights of a tuned hybrid over the judged queries (computed once per engine)."""
        key = (profile.name, json_key(profile_to_dict(profile)))
        if key not in self._tunings:
            judged = list(self.dataset.judged_queries)
            members = [self._retrieve(member, judged, max(profile.candidate_depth, depth)) for member in profile.members]
            lists = [[m.hits[i].top(profile.candidate_depth) for m in members] for i in range(len(judged))]
            doc_row = self.dataset.doc_index
            gains = [{doc_row[d]: float(g) for d, g in self.dataset.qrels.grades(q.id).items() if d in doc_row} for q in judged]

            def fuse(candidates: Sequence[Hits], weights: tuple[float, ...]) -> Hits:
                return self._trec_order(self._fuse(profile, candidates, weights, 10))

            self._tunings[key] = tune_by_folds([q.id for q in judged], lists, gains, fuse, tuple(profile.weights) or (0.5, 0.5))
        return self._tunings[key]

    def tuning_record(self, name: str, queries: Sequence[Query]) -> dict:
        """The fold tuning of every tuned hybrid ``name`` runs through (itself or a member/first stage), for the run."""
        records = {}
        for dependency in dependencies(self.profiles, name):
            profile = self.profiles[dependency]
            if isinstance(profile, HybridProfile) and profile.tune == "folds":
                key = (profile.name, json_key(profile_to_dict(profile)))
                if key in self._tunings:
                    records[dependency] = self._tunings[key].record([q.id for q in queries])
        return records

    def _rerank(self, profile: RerankProfile, queries: Sequence[Query], first_stage: list[Hits], depth: int) -> list:
        pool_size = profile.pool_depth
        if profile.reranker == "cross-encoder":
            scorer = self._cross_encoders.setdefault(profile.model, CrossEncoderScorer(profile.model))
            scorer._load()
            started = time.perf_counter()
            out = []
            for query, hits in zip(queries, first_stage):
                pool = hits.top(pool_size)
                new = scorer.score(query.text, self._texts(pool.rows.tolist()))
                out.append(merge_reranked(hits, len(pool.rows), new, depth))
            return out + [started]
        index = self.vectors(profile.model)
        vectors = self.query_vectors(profile.model, "torch", [q for q in queries])
        started = time.perf_counter()
        out = []
        for i, hits in enumerate(first_stage):
            pool = hits.top(pool_size)
            cosine = index.vectors[pool.rows] @ vectors[i] if len(pool.rows) else np.empty(0)
            new = rerank_fusion(pool, cosine, profile.alpha) if profile.reranker == "fusion" else cosine
            out.append(merge_reranked(hits, len(pool.rows), np.asarray(new, dtype=np.float64), depth))
        return out + [started]

    def _trec_order(self, hits: Hits) -> Hits:
        """Sort by score, ties by doc id descending (trec_eval's order), so later stages see what metrics see."""
        if len(hits.rows) < 2:
            return hits
        order = np.lexsort((self._tiebreak[hits.rows], -hits.scores))
        return Hits(hits.rows[order], hits.scores[order])

    def _ranking(self, hits: Hits) -> Ranking:
        return Ranking(tuple(self._doc_ids[hits.rows].tolist()), tuple(np.asarray(hits.scores, dtype=np.float64).tolist()))

    def run(self, name: str, queries: Sequence[Query] | None = None, depth: int = DEFAULT_DEPTH) -> Run:
        """Retrieve for every (judged) benchmark query, or the given ones, and return a Run."""
        check_number("depth", depth)
        queries = list(queries) if queries is not None else list(self.dataset.judged_queries)
        profile = self.profile(name)
        self.warm([name])  # indexes and models first, each reporting its own stage, so "retrieving" is retrieval only
        counter = self._stage(f"{name}: retrieving", len(queries), "queries")
        counter(0)
        retrieved = self._retrieve(name, queries, depth)
        counter(len(queries))
        rankings = {q.id: self._ranking(h) for q, h in zip(queries, retrieved.hits)}
        meta = {"seconds": retrieved.seconds, "ms_per_query": 1000 * retrieved.seconds / max(len(queries), 1),
                "queries": len(queries), "depth": depth, "corpus_hash": self.dataset.corpus_hash,
                "queries_hash": self.dataset.queries_hash, "split": self.dataset.split,
                "models": {f"{m}/{b}": e.fingerprint for (m, b), e in self._encoders.items()}}
        tuning = self.tuning_record(name, queries)
        if tuning:
            meta["tuning"] = tuning
        ann = {dependency: self.ann(dependency).as_meta() for dependency in dependencies(self.profiles, name)
               if isinstance(self.profiles[dependency], DenseProfile) and self.profiles[dependency].ann_settings() is not None}
        if ann:  # every ANN profile the run went through, with its index and recall@100 against exact search
            meta["ann"] = ann
        return Run(name, rankings, self.dataset.name, profile_to_dict(profile), meta)

    def search(self, name: str, text: str, depth: int = DEFAULT_DEPTH) -> SearchResult:
        """One pasted query under one profile; never parsed as query syntax."""
        check_number("depth", depth)
        cleaned, truncated = clean_query_text(text)
        query = Query("__adhoc__", cleaned)
        retrieved = self._retrieve(name, [query], depth)
        return SearchResult(name, self._ranking(retrieved.hits[0]), retrieved.seconds, truncated)

    def latencies(self, name: str, queries: Sequence[Query], depth: int = DEFAULT_DEPTH) -> np.ndarray:
        """Milliseconds to answer each query alone, as a pasted query would be: embedding included, nothing cached."""
        timings = []
        for query in queries:
            for cache in self._adhoc_vectors.values():
                cache.pop(query.text, None)
            before = set(self._results)
            started = time.perf_counter()
            self._retrieve(name, [Query("__latency__", query.text)], depth)
            timings.append(1000 * (time.perf_counter() - started))
            for key in set(self._results) - before:  # timing queries must not stay cached
                del self._results[key]
        return np.asarray(timings, dtype=float)

    def warm(self, names: Sequence[str]) -> None:
        """Open or build every index and model the named profiles need (before timing anything)."""
        for name in names:
            profile = self.profile(name)
            if isinstance(profile, Bm25Profile):
                self.lexical(profile.analyzer)
            elif isinstance(profile, DenseProfile):
                self._warm_model(profile.model, profile.backend)
                if profile.ann_settings() is not None:
                    self.ann(name)
            elif isinstance(profile, HybridProfile):
                self.warm(profile.members)
            elif isinstance(profile, RerankProfile):
                self.warm([profile.first_stage])
                if profile.reranker != "cross-encoder":
                    self._warm_model(profile.model, "torch")

    def _warm_model(self, model: str, backend: str) -> None:
        """Corpus vectors, the benchmark queries' cached vectors, and the model itself (not on first paste)."""
        self.vectors(model, backend)
        if self.dataset.queries:
            self.query_vectors(model, backend, self.dataset.queries[:1])
        self.encoder(model, backend).encode(["warm up"])
