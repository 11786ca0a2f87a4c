"""Leakage audit on the real benchmarks in ../shared/datasets and on small hand-made copies."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.data.datasets import Dataset, Document, Qrels, Query, load_dataset, write_dataset
from core.errors import DatasetError, WorkbenchError
from core.training.leakage import (
    ALL_KINDS,
    EXACT_CODE,
    EXACT_DOCSTRING,
    FUNCTION_NAME,
    NEAR_DUPLICATE_CODE,
    EXACT_TEXT,
    Overlap,
    LeakageReport,
    TEXT_CATEGORIES,
    TextLeakageReport,
    TextOverlap,
    minhash_signatures,
    Shingles,
    audit,
    audit_many,
    audit_texts,
    code_tokens,
    detect_code_side,
    filter_leaked,
    function_name,
    normalise_docstring,
    pairs,
    strip_code,
)

DATASETS = Path(__file__).resolve().parents[3] / "shared" / "datasets"
pytestmark = pytest.mark.skipif(not DATASETS.is_dir(), reason="needs ../shared/datasets")

MOVING_AVERAGE = '''def moving_average(values, window=3):
    """Average of each window of values."""
    if window <= 0:
        raise ValueError("window must be positive")
    averages = []
    running = 0.0
    for position, value in enumerate(values):
        running += value
        if position >= window:
            running -= values[position - window]
        if position >= window - 1:
            averages.append(running / window)
    return averages
'''

MOVING_AVERAGE_REFORMATTED = '''def moving_average(values,window=3):
    # Same function: other spacing, comments, docstring and line breaks.
    \'\'\'Mean over a sliding window.\'\'\'
    if window<=0: raise ValueError("window must be positive")
    averages=[ ]
    running=0.0
    for position,value in enumerate(values):
        running+=value  # add the newest value
        if position>=window:
            running-=values[position-window]
        if position>=window-1:
            averages.append(running/window)
    return averages
'''

UNRELATED = '''def parse_header(line):
    """Split an HTTP header line into its name and value."""
    name, _, value = line.partition(":")
    return name.strip().lower(), value.strip()
'''


@pytest.fixture(scope="module")
def csn() -> Dataset:
    return load_dataset(DATASETS / "csn-python-code2doc")


@pytest.fixture(scope="module")
def csn_nodoc() -> Dataset:
    return load_dataset(DATASETS / "csn-python-code2doc-nodoc")


@pytest.fixture(scope="module")
def cosqa() -> Dataset:
    return load_dataset(DATASETS / "cosqa")


def code_to_doc(name: str, functions: dict[str, tuple[str, str]]) -> Dataset:
    """A code-to-docstring dataset: query id -> (code, docstring), each docstring the query's positive."""
    queries = tuple(Query(query_id, code, "python") for query_id, (code, _) in functions.items())
    documents = tuple(Document(f"doc-{query_id}", docstring, "", "python") for query_id, (_, docstring) in functions.items())
    qrels = Qrels({query_id: {f"doc-{query_id}": 1} for query_id in functions})
    return Dataset(name, documents, queries, qrels)


def test_docstring_variant_of_csn_leaks_every_pair_by_docstring_and_code(csn, csn_nodoc):
    report = audit(csn, csn_nodoc)
    counts = report.counts()
    assert (report.train_pairs, report.eval_pairs) == (200, 200)
    assert counts[EXACT_DOCSTRING] == 200
    assert counts[EXACT_CODE] == 200  # docstrings are stripped, and the 'pass' left in their place too
    assert counts[NEAR_DUPLICATE_CODE] == 200
    assert 180 <= counts[FUNCTION_NAME] <= 200  # generic names (__init__, get, ...) are not evidence
    for overlap in report.overlaps:
        if overlap.kind != FUNCTION_NAME:
            assert overlap.train_query_id == overlap.eval_query_id
    assert report.leaked_train_ids() == {q.id for q in csn.queries}


def test_cosqa_and_csn_share_only_a_few_functions(cosqa, csn):
    assert detect_code_side(cosqa) == "document"
    assert detect_code_side(csn) == "query"
    report = audit(cosqa, csn)
    counts = report.counts()
    # Both come from CodeSearchNet Python: 18 of the 200 csn functions are CoSQA answers, none of the
    # CoSQA web queries is a csn docstring, and name matches add a few same-named functions.
    assert counts[EXACT_DOCSTRING] == 0
    assert 0 < counts[EXACT_CODE] <= 25
    assert counts[NEAR_DUPLICATE_CODE] <= 25
    assert counts[FUNCTION_NAME] <= 30
    exact = {(o.train_query_id, o.eval_query_id) for o in report.overlaps if o.kind == EXACT_CODE}
    near = {(o.train_query_id, o.eval_query_id) for o in report.overlaps if o.kind == NEAR_DUPLICATE_CODE}
    assert exact <= near
    for train_id, eval_id in exact:
        assert csn.query(eval_id).text.strip() in cosqa.document(cosqa.qrels.positives(train_id)[0]).text


def test_renamed_variable_copy_is_a_near_duplicate_but_not_an_exact_one():
    renamed = MOVING_AVERAGE.replace("averages", "smoothed")
    train = code_to_doc("train", {"t1": (MOVING_AVERAGE, "Average of each window."), "t2": (UNRELATED, "Split a header.")})
    evaluation = code_to_doc("eval", {"e1": (renamed, "Smooth a series of values.")})
    report = audit(train, evaluation)
    assert report.counts() == {EXACT_CODE: 0, EXACT_DOCSTRING: 0, FUNCTION_NAME: 1, NEAR_DUPLICATE_CODE: 1}
    near = [o for o in report.overlaps if o.kind == NEAR_DUPLICATE_CODE]
    assert [(o.train_query_id, o.eval_query_id) for o in near] == [("t1", "e1")]
    assert 0.8 <= near[0].similarity < 1.0
    assert audit(train, evaluation, jaccard_threshold=0.9).counts()[NEAR_DUPLICATE_CODE] == 0


def test_reformatted_copy_with_other_comments_and_docstring_is_the_same_normalised_code():
    train = code_to_doc("train", {"t1": (MOVING_AVERAGE, "Average of each window."), "t2": (UNRELATED, "Split a header.")})
    evaluation = code_to_doc("eval", {"e1": (MOVING_AVERAGE_REFORMATTED, "Mean over a sliding window.")})
    report = audit(train, evaluation, kinds=[EXACT_CODE])
    assert report.kinds == (EXACT_CODE,)
    assert [(o.kind, o.train_query_id, o.eval_query_id, o.similarity) for o in report.overlaps] == [(EXACT_CODE, "t1", "e1", 1.0)]


def test_docstrings_match_whatever_their_case_punctuation_and_spacing():
    train = code_to_doc("train", {"t1": (UNRELATED, "Split an HTTP header line into its name and value.")})
    evaluation = code_to_doc("eval", {"e1": (MOVING_AVERAGE, "split an HTTP header-line\n   into its name, and value")})
    assert normalise_docstring("  Split:  a HEADER!\n") == "split a header"
    assert audit(train, evaluation).counts()[EXACT_DOCSTRING] == 1


def test_text_to_code_and_code_to_text_sets_are_compared_code_with_code(cosqa):
    answer_id = cosqa.qrels.positives(cosqa.queries[0].id)[0]
    code, web_query = cosqa.document(answer_id).text, cosqa.queries[0].text
    as_code_to_doc = code_to_doc("flipped", {"x1": (code, web_query)})
    report = audit(cosqa, as_code_to_doc)
    assert {(o.kind, o.train_query_id) for o in report.overlaps} >= {
        (EXACT_CODE, cosqa.queries[0].id), (EXACT_DOCSTRING, cosqa.queries[0].id), (NEAR_DUPLICATE_CODE, cosqa.queries[0].id)}
    # Told the wrong side, the same datasets no longer compare code with code.
    wrong = audit(cosqa, as_code_to_doc, code_sides={"flipped": "document"})
    assert wrong.counts()[EXACT_CODE] == 0
    assert pairs(as_code_to_doc, "document")[0].code == web_query


def test_comments_and_docstrings_are_stripped_but_strings_that_look_like_comments_stay():
    python = 'def f(x):\n    """Doc."""\n    s = "# kept"  # dropped\n    if x:\n        pass\n    return s\n'
    bare = 'def f(x):\n    s = "# kept"\n    if x:\n    return s\n'  # not Python any more: read by the regex
    assert code_tokens(python, "python") == code_tokens(bare, "python")
    assert "dropped" not in strip_code(python, "python") and "# kept" in strip_code(python, "python")
    javascript = 'function f(a) { // dropped\n  /* dropped too */ return "http://kept"; }'
    assert "dropped" not in strip_code(javascript, "javascript") and "http://kept" in strip_code(javascript, "javascript")
    python2 = 'def f(e):\n    """Doc."""\n    print "x"  # dropped\n    return e // 2\n'
    assert code_tokens(python2, "python") == ["def", "f", "(", "e", ")", ":", "print", '"', "x", '"', "return", "e", "/", "/", "2"]


@pytest.mark.parametrize("code, name", [
    ("def fetch_rows(cursor):", "fetch_rows"),
    ("    async def fetch_rows(self):", "fetch_rows"),
    ("function parseQuery(text) {", "parseQuery"),
    ("func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {", "ServeHTTP"),
    ("public static List<String> splitLines(String text) throws IOException {", "splitLines"),
    ("def __init__(self, x):", ""),
    ("def get(self, key):", ""),
    ("def main():", ""),
    ("x = compute(1)", ""),
])
def test_function_name_is_read_per_language_and_generic_names_are_ignored(code, name):
    assert function_name(code) == name


def test_filtered_train_set_loads_and_no_longer_leaks(csn, csn_nodoc, tmp_path):
    evaluation = csn_nodoc.subset([q.id for q in csn_nodoc.queries[:50]], name="nodoc-50")
    report = audit(csn, evaluation)
    leaked = report.leaked_train_ids()
    assert 50 <= len(leaked) < 200
    filtered = filter_leaked(csn, [report])
    write_dataset(filtered, tmp_path / filtered.name)
    reloaded = load_dataset(tmp_path / filtered.name)
    assert reloaded.name == "csn-python-code2doc-noleak" and not reloaded.problems
    assert {q.id for q in reloaded.queries} == {q.id for q in csn.queries} - leaked
    assert len(reloaded.documents) == len(csn.documents) - len(leaked)  # each leaked query took its docstring away
    assert not {csn.qrels.positives(q)[0] for q in leaked} & set(reloaded.doc_index)
    assert audit(reloaded, evaluation).overlaps == ()


def test_filter_leaked_refuses_a_report_about_another_dataset_or_one_that_leaves_nothing(csn, csn_nodoc, cosqa):
    report = audit(csn, csn_nodoc)
    with pytest.raises(DatasetError, match="audited 'csn-python-code2doc'"):
        filter_leaked(cosqa, [report])
    with pytest.raises(DatasetError, match="audited 'csn-python-code2doc'"):
        filter_leaked(cosqa, audit_texts(csn, [csn_nodoc]))
    with pytest.raises(DatasetError, match="nothing is left"):
        filter_leaked(csn, [report])


def test_audit_many_gives_the_same_reports_as_one_audit_each(cosqa, csn, csn_nodoc):
    many = audit_many(cosqa, [csn, csn_nodoc])
    assert [r.eval for r in many] == ["csn-python-code2doc", "csn-python-code2doc-nodoc"]
    assert many == [audit(cosqa, csn), audit(cosqa, csn_nodoc)]


def test_report_counts_every_audited_kind_and_exports_a_frame():
    train = code_to_doc("train", {"t1": (MOVING_AVERAGE, "Average of each window.")})
    evaluation = code_to_doc("eval", {"e1": (UNRELATED, "Split a header."), "e2": (MOVING_AVERAGE, "Other words.")})
    report = audit(train, evaluation)
    assert report.counts() == {EXACT_CODE: 1, EXACT_DOCSTRING: 0, FUNCTION_NAME: 1, NEAR_DUPLICATE_CODE: 1}
    frame = report.to_frame()
    assert list(frame.columns) == ["train", "eval", "kind", "train_query_id", "eval_query_id", "similarity", "train_snippet", "eval_snippet"]
    assert set(frame["eval_query_id"]) == {"e2"} and frame["train_snippet"].str.startswith("def moving_average").all()
    assert LeakageReport("a", "b", (), 0, 0).to_frame().empty


def test_unknown_check_or_threshold_is_refused_with_the_valid_choices():
    train = code_to_doc("train", {"t1": (MOVING_AVERAGE, "Average.")})
    with pytest.raises(WorkbenchError, match="choose from " + ", ".join(ALL_KINDS)):
        audit(train, train, kinds=["exact_cod"])
    with pytest.raises(WorkbenchError, match=r"\(0, 1\]"):
        audit(train, train, jaccard_threshold=1.5)


def test_minhash_signatures_do_not_depend_on_the_python_hash_seed():
    here = minhash_signatures(Shingles.of([code_tokens(MOVING_AVERAGE, "python")])).tobytes().hex()
    program = ("from core.training.leakage import Shingles, minhash_signatures, code_tokens; import sys; "
               "sys.stdout.write(minhash_signatures(Shingles.of([code_tokens(sys.stdin.read(), 'python')])).tobytes().hex())")
    other_seed = "2" if os.environ.get("PYTHONHASHSEED") == "1" else "1"
    there = subprocess.run([sys.executable, "-c", program], input=MOVING_AVERAGE, capture_output=True, text=True, check=True,
                           cwd=Path(__file__).resolve().parents[2], env={**os.environ, "PYTHONHASHSEED": other_seed}).stdout
    assert there == here and len(here) == 128 * 8


def test_six_thousand_pairs_against_six_thousand_compare_only_lsh_candidates_exactly(cosqa):
    """Every CoSQA function as a code-to-docstring pair, two overlapping windows of 6,000 each.

    Exact similarity is computed only for pairs that LSH banding buckets together: a fraction of a
    percent of the 36 million pairs, which a quadratic comparison would all compute. (How long it
    takes is bench/run_benchmarks.py's question, not a test's: wall time depends on the machine's load.)
    """
    functions = {f"q{doc.id}": (doc.text, f"docstring number {row}") for row, doc in enumerate(cosqa.documents)}
    ids = list(functions)
    train = code_to_doc("train", {q: functions[q] for q in ids[:6000]})
    evaluation = code_to_doc("eval", {q: functions[q] for q in ids[-6000:]})
    report = audit(train, evaluation)
    shared = set(ids[:6000]) & set(ids[-6000:])
    assert report.counts()[EXACT_DOCSTRING] == len(shared)
    assert report.counts()[NEAR_DUPLICATE_CODE] >= len(shared)
    assert len(shared) <= report.near_candidates < 6000 * 6000 // 100


def test_the_text_audit_counts_the_pairs_it_compared_exactly_and_stays_far_from_all_pairs(cosqa):
    small = cosqa.subset([q.id for q in cosqa.judged_queries[:300]])
    report = audit_texts(small, [small])[0]
    all_pairs = (len(small.queries) + len(small.documents)) ** 2
    assert 0 < report.near_candidates < all_pairs // 20


# ---- every eval text, judged or not ----------------------------------------------------------------------

def test_a_training_docstring_that_is_an_unjudged_eval_document_is_found_and_counted_by_category():
    """The pair checks only see judged eval pairs; the text audit sees the whole eval corpus."""
    train = Dataset("train", (Document("f1", "def load(path):\n    return open(path).read()"),),
                    (Query("q1", "Read the whole configuration file into memory."),), Qrels({"q1": {"f1": 1}}))
    evaluation = Dataset("eval", (Document("judged", "Return the average of a window."),
                                  Document("unjudged", "read the whole configuration-file into memory")),
                         (Query("e1", MOVING_AVERAGE),), Qrels({"e1": {"judged": 1}}))

    assert audit(train, evaluation, code_sides={"train": "document", "eval": "query"}).overlaps == ()  # the old blind spot
    report = audit_texts(train, [evaluation])[0]
    assert [(o.category, o.train_id, o.eval_id) for o in report.overlaps] == [
        ("train query = eval document (exact)", "q1", "unjudged")]
    counts = report.counts()
    assert set(counts) == set(TEXT_CATEGORIES) and counts["train query = eval document (exact)"] == 1
    assert sum(counts.values()) == 1


def test_a_corpus_document_near_copying_an_eval_query_is_found_and_leaves_the_corpus():
    """A function that would only ever be mined as a negative still must not be one an eval query holds."""
    renamed = MOVING_AVERAGE.replace("averages", "smoothed")  # a renamed variable: near, not exact
    train = Dataset("train", (Document("pos", "def area(r):\n    return 3.14159 * r * r"), Document("neg", renamed),
                              Document("other", "def perimeter(r):\n    return 2 * 3.14159 * r")),
                    (Query("q1", "Area of a circle."), Query("q2", "Perimeter of a circle.")),
                    Qrels({"q1": {"pos": 1}, "q2": {"other": 1}}))
    evaluation = Dataset("eval", (Document("d", "Average of each window of values."),), (Query("e1", MOVING_AVERAGE),),
                         Qrels({"e1": {"d": 1}}))

    report = audit_texts(train, [evaluation])[0]
    assert {(o.category, o.train_id) for o in report.overlaps} == {("train document ≈ eval query (near-duplicate)", "neg")}
    assert 0.8 <= report.overlaps[0].similarity < 1.0
    filtered = filter_leaked(train, [report])
    assert [d.id for d in filtered.documents] == ["pos", "other"] and [q.id for q in filtered.queries] == ["q1", "q2"]


def found_texts(train: Dataset, queries: tuple[str, ...] = (), documents: tuple[str, ...] = ()) -> TextLeakageReport:
    """An every-text report naming these train queries and documents, as ``audit_texts`` would."""
    overlaps = tuple(TextOverlap(EXACT_TEXT, side, train_id, side, "e", 1.0, "", "")
                     for side, ids in (("query", queries), ("document", documents)) for train_id in ids)
    return TextLeakageReport(train.name, "eval", overlaps, len(train.queries), len(train.documents), 1, 1)


def test_dropping_a_positive_drops_its_query_and_dropping_everything_is_refused():
    train = Dataset("train", (Document("a", "alpha beta gamma delta"), Document("b", "epsilon zeta eta theta")),
                    (Query("q1", "first"), Query("q2", "second")), Qrels({"q1": {"a": 1}, "q2": {"b": 1}}))
    assert [q.id for q in filter_leaked(train, [found_texts(train, documents=("a",))]).queries] == ["q2"]
    with pytest.raises(DatasetError, match="nothing is left"):
        filter_leaked(train, [found_texts(train, queries=("q2",), documents=("a",))])


def test_one_filter_drops_what_either_audit_finds_and_keeps_the_rest():
    """Pair checks: q1 leaks and takes its answer along. Every-text: q2's text and document d3 leak; q3 loses its positive."""
    train = Dataset("train", tuple(Document(f"d{i}", f"text {i}") for i in range(1, 6)),
                    tuple(Query(f"q{i}", f"query {i}") for i in range(1, 6)),
                    Qrels({"q1": {"d1": 1}, "q2": {"d2": 1}, "q3": {"d3": 1, "d5": 0}, "q4": {"d4": 1, "d2": 0}, "q5": {"d5": 1}}))
    pair_report = LeakageReport("train", "eval", (Overlap(EXACT_CODE, "q1", "e1", 1.0, "", ""),), 5, 1)
    filtered = filter_leaked(train, [pair_report, found_texts(train, queries=("q2",), documents=("d3",))], "clean")
    assert filtered.name == "clean"
    assert [q.id for q in filtered.queries] == ["q4", "q5"]
    assert [d.id for d in filtered.documents] == ["d2", "d4", "d5"]  # q2 leaked by its text, not its answer
    assert filtered.qrels.judgments == {"q4": {"d4": 1, "d2": 0}, "q5": {"d5": 1}}
    pairs_only = filter_leaked(train, [pair_report])
    assert [q.id for q in pairs_only.queries] == ["q2", "q3", "q4", "q5"] and "d1" not in pairs_only.doc_index


def test_text_audit_of_cosqa_against_itself_finds_every_query_and_document(cosqa):
    small = cosqa.subset([q.id for q in cosqa.judged_queries[:30]])
    report = audit_texts(small, [small])[0]
    counts = report.counts()
    assert counts["train query = eval query (exact)"] == len({q.id for q in small.queries})
    assert counts["train document = eval document (exact)"] == len(small.documents)


def test_a_query_that_goes_for_losing_its_positive_does_not_keep_a_leaked_answer_in_the_corpus():
    """q1 leaks by a pair check with answer d1; q3 judges d1 (grade 0) but loses its only positive d3 to the text audit."""
    train = Dataset("train", tuple(Document(f"d{i}", f"text {i}") for i in range(1, 5)),
                    tuple(Query(f"q{i}", f"query {i}") for i in range(1, 5)),
                    Qrels({"q1": {"d1": 1}, "q3": {"d3": 1, "d1": 0}, "q4": {"d4": 1}}))
    pair_report = LeakageReport("train", "eval", (Overlap(EXACT_CODE, "q1", "e1", 1.0, "", ""),), 3, 1)
    filtered = filter_leaked(train, [pair_report, found_texts(train, documents=("d3",))])
    assert [q.id for q in filtered.queries] == ["q2", "q4"]  # q2 never had a judgment: kept as it was
    assert [d.id for d in filtered.documents] == ["d2", "d4"]  # d1 leaves: no query that stays is judged on it
    assert filtered.qrels.judgments == {"q4": {"d4": 1}}
