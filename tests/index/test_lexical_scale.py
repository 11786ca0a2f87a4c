"""BM25 above the batch scorer's size limit: any k1/b and exact lengths answered, the streamed matrix checked like the index."""
import json
import math
from collections import Counter

import numpy as np
import pytest

from core.data.datasets import load_dataset
from core.errors import IndexCorruptError
from core.index import lexical
from core.index.analyzers import get_analyzer
from core.index.bm25_batch import MATRIX_FILES, TERMS_FILE, quantized_lengths
from core.index.lexical import INFO_FILE, index_path, open_checked_index, open_lexical_index
from tests.conftest import require_shared

LOWERED_LIMIT = 1000


@pytest.fixture(scope="module")
def csn_full():
    """csn-python-code2doc whole: 6,037 docstrings, 200 code queries."""
    return load_dataset(require_shared() / "csn-python-code2doc")


@pytest.fixture(scope="module")
def csn_full_workspace(tmp_path_factory, csn_full):
    """A workspace holding csn_full's index, built as if the corpus were larger than both limits."""
    from core.workspace import Workspace

    workspace = Workspace.open(tmp_path_factory.mktemp("csn-full") / "workspace")
    with pytest.MonkeyPatch.context() as patch:
        _lower_the_limits(patch)
        open_lexical_index(workspace, csn_full, "code")
    return workspace


@pytest.fixture
def above_the_limit(monkeypatch):
    """As if the corpora here were larger than the batch scorer's limit (and the term matrix's, before issue 26)."""
    _lower_the_limits(monkeypatch)


def _lower_the_limits(patch) -> None:
    for limit in ("BATCH_SCORER_MAX_DOCS", "TERM_MATRIX_MAX_DOCS"):
        patch.setattr(lexical, limit, LOWERED_LIMIT, raising=False)


@pytest.fixture(scope="module")
def csn_full_postings(csn_full):
    """Each term's (row, term count) pairs and each document's length, from plain Python over the analyzer's tokens."""
    analyzer = get_analyzer("code")
    postings: dict[str, list[tuple[int, int]]] = {}
    lengths = []
    for row, document in enumerate(csn_full.documents):
        tokens = analyzer.tokenize(document.full_text)
        lengths.append(len(tokens))
        for term, tf in Counter(tokens).items():
            postings.setdefault(term, []).append((row, tf))
    return postings, np.array(lengths)


def reference_bm25(postings, lengths: np.ndarray, query: list[str], k1: float, b: float, length_norm: str) -> np.ndarray:
    """Tantivy's BM25 of every document, in float64: sum of idf * (k1 + 1) * tf / (tf + k1 * (1 - b + b * length / average))."""
    n = len(lengths)
    used = quantized_lengths(lengths) if length_norm == "tantivy" else lengths
    average = lengths.sum() / n
    scores = np.zeros(n)
    for term, count in Counter(query).items():
        found = postings.get(term, [])
        idf = math.log(1 + (n - len(found) + 0.5) / (len(found) + 0.5))
        for row, tf in found:
            scores[row] += count * idf * (k1 + 1) * tf / (tf + k1 * (1 - b + b * used[row] / average))
    return scores


@pytest.mark.parametrize(("k1", "b", "length_norm"), [(0.9, 0.4, "tantivy"), (0.9, 0.4, "exact"), (1.2, 0.75, "exact"),
                                                      (1.2, 0.75, "tantivy")])
def test_any_k1_b_and_exact_lengths_are_answered_above_the_limit_as_brute_force_bm25(csn_full_workspace, csn_full, csn_full_postings,
                                                                                      above_the_limit, k1, b, length_norm):
    index, report = open_lexical_index(csn_full_workspace, csn_full, "code")
    assert report.reused and index.num_docs > LOWERED_LIMIT
    analyzer = get_analyzer("code")
    texts = [q.text for q in csn_full.queries[:12]]
    for text, hits in zip(texts, index.search_many(texts, 10, k1, b, length_norm=length_norm)):
        expected = reference_bm25(*csn_full_postings, analyzer.tokenize(text), k1, b, length_norm)
        assert len(hits.rows) == 10
        np.testing.assert_allclose(hits.scores, expected[hits.rows], rtol=1e-5)
        assert hits.scores[0] == pytest.approx(expected.max(), rel=1e-5)
        cut = hits.scores[-1] * (1 + 1e-5)  # documents tied at the cut (to float32 rounding) may be either
        assert set(np.flatnonzero(expected > cut)) == {int(r) for r, s in zip(hits.rows, hits.scores) if s > cut}


def test_a_pasted_query_ranks_as_in_a_run_above_the_limit(workspace, csn_mini, monkeypatch):
    monkeypatch.setattr(lexical, "BATCH_SCORER_MAX_DOCS", 10)
    index, _ = open_lexical_index(workspace, csn_mini, "code")
    texts = [q.text for q in csn_mini.queries]
    for settings in ({}, {"k1": 0.9, "b": 0.4}, {"length_norm": "exact"}):
        run = index.search_many(texts, 100, **settings)
        for text, in_run in zip(texts, run):
            alone = index.search_many([text], 100, **settings)[0]
            assert alone.rows.tolist() == in_run.rows.tolist() and alone.scores.tolist() == in_run.scores.tolist()


def test_the_term_matrix_is_written_beside_every_index_and_listed_in_its_checksums(workspace, csn_mini, above_the_limit):
    index, _ = open_lexical_index(workspace, csn_mini, "code")
    info = json.loads((index.path / INFO_FILE).read_text())
    assert info["format"] == lexical.FORMAT_VERSION
    assert {*MATRIX_FILES.values(), TERMS_FILE} <= set(info["files"])
    assert not [p.name for p in index.path.iterdir() if p.name.startswith(".term_pairs")]  # scratch files deleted
    assert index.term_matrix.num_docs == index.num_docs


MATRIX_DAMAGE = {
    **{f"{name} bytes flipped": (lambda file: lambda folder: _flip(folder / file))(file) for name, file in MATRIX_FILES.items()},
    "rows truncated": lambda folder: (folder / MATRIX_FILES["rows"]).write_bytes((folder / MATRIX_FILES["rows"]).read_bytes()[:200]),
    "term list deleted": lambda folder: (folder / TERMS_FILE).unlink(),
    "an index of format 3 (term_matrix.npz)": lambda folder: (folder / INFO_FILE).write_text(
        (folder / INFO_FILE).read_text().replace(f'"format": {lexical.FORMAT_VERSION}', '"format": 3')),
}


def _flip(path, count: int = 8) -> None:
    data = bytearray(path.read_bytes())
    at = len(data) * 2 // 3
    data[at:at + count] = bytes(byte ^ 0xFF for byte in data[at:at + count])
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("case", MATRIX_DAMAGE, ids=list(MATRIX_DAMAGE))
def test_a_damaged_term_matrix_is_detected_and_rebuilt(workspace, csn_mini, case):
    index, _ = open_lexical_index(workspace, csn_mini, "code")
    texts = [q.text for q in csn_mini.queries]
    before = [(h.rows.tolist(), h.scores.tolist()) for h in index.search_many(texts, 20, 0.9, 0.4)]
    folder = index_path(workspace, csn_mini, "code")
    MATRIX_DAMAGE[case](folder)
    with pytest.raises(IndexCorruptError):
        open_checked_index(folder, get_analyzer("code"), csn_mini)
    rebuilt, report = open_lexical_index(workspace, csn_mini, "code")
    assert not report.reused and report.damage
    assert [(h.rows.tolist(), h.scores.tolist()) for h in rebuilt.search_many(texts, 20, 0.9, 0.4)] == before
