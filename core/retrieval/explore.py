"""One query under several profiles, as the query explorer shows it: ranked documents and the positive's rank.

A judged benchmark query is shown from the profile's full run over the judged queries (the run the
Engine already holds when another page evaluated the profile), so the rank shown here is the
``positive_rank`` other pages report: retrieving it alone can differ in the last float32 digits of
dense scores, enough to swap near-ties.
"""
from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from core.data.datasets import Dataset, Query
from core.retrieval.highlight import shared_identifiers
from core.retrieval.engine import DEFAULT_DEPTH, Engine, SearchResult
from core.retrieval.runs import Ranking

RELEVANT_MARK = "✅"
RESULT_COLUMNS = ("relevant", "rank", "score", "doc id", "document", "shared")


def search_benchmark_query(engine: Engine, profile_name: str, query_id: str, depth: int = DEFAULT_DEPTH) -> SearchResult:
    """A benchmark query's ranking in the profile's run, with the run's mean time per query.

    Judged queries come from the full run over the judged queries; an unjudged one is retrieved alone.
    """
    query = engine.dataset.query(query_id)
    judged = bool(engine.dataset.qrels.positives(query_id))
    run = engine.run(profile_name, depth=depth) if judged else engine.run(profile_name, queries=[query], depth=depth)
    seconds = float(run.meta.get("seconds", 0.0)) / max(int(run.meta.get("queries", 1)), 1)
    return SearchResult(profile_name, run.ranking(query.id), seconds)


def positive_ranks(ranking: Ranking, positives: Sequence[str]) -> dict[str, int | None]:
    """Relevant document id -> its 1-based rank in ``ranking``, None when it was not retrieved."""
    return {doc_id: ranking.rank_of(doc_id) for doc_id in positives}


def ranked_documents(dataset: Dataset, ranking: Ranking, query_text: str, k: int,
                     positives: Sequence[str] = ()) -> pd.DataFrame:
    """The top ``k`` documents as a table: relevant mark, rank, score, doc id, text, shared identifiers."""
    relevant = set(positives)
    rows = []
    for rank, (doc_id, score) in enumerate(zip(ranking.doc_ids[:k], ranking.scores[:k]), start=1):
        text = dataset.document(doc_id).full_text if doc_id in dataset.doc_index else ""
        rows.append({"relevant": RELEVANT_MARK if doc_id in relevant else "", "rank": rank, "score": float(score),
                     "doc id": doc_id, "document": text, "shared": ", ".join(shared_identifiers(query_text, text))})
    return pd.DataFrame(rows, columns=list(RESULT_COLUMNS))


def query_label(query: Query, width: int = 80) -> str:
    """``<id> — <first non-empty line>``, cut to ``width`` characters, for pickers."""
    first_line = next((line.strip() for line in query.text.splitlines() if line.strip()), "")
    label = f"{query.id} — {first_line}"
    return label if len(label) <= width else label[: width - 1] + "…"


def rank_summary(rank: int | None, depth: int = DEFAULT_DEPTH) -> str:
    """How a positive's rank reads in the explorer: ``rank 3`` or ``not in top 100``."""
    return f"rank {rank}" if rank is not None else f"not in top {depth}"
