"""Tests for core/data/stdlib_benchmark.py: the built-in benchmark made from the running Python's standard library."""
from __future__ import annotations

import json
import platform
from pathlib import Path

import pytest

from core.data.datasets import load_dataset
from core.data.source_benchmark import CodeFunction
from core.data.stdlib_benchmark import (
    STDLIB_EXCLUDED_DIRS,
    build_stdlib_benchmark,
    ensure_stdlib_benchmark,
    stdlib_functions,
    stdlib_root,
)
from core.workspace import BUILTIN_DATASET


@pytest.fixture(scope="module")
def functions() -> list[CodeFunction]:
    return stdlib_functions()


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> Path:
    """The benchmark as the app gets it: built from its own parse of the stdlib, written, not loaded yet."""
    return ensure_stdlib_benchmark(tmp_path_factory.mktemp("workspace") / "datasets")


def test_stdlib_functions_skip_tests_idle_and_third_party_code(functions):
    assert len(functions) > 1000
    assert not [f.path for f in functions if set(Path(f.path).parts[:-1]) & STDLIB_EXCLUDED_DIRS]
    assert any(f.path.startswith("json/") for f in functions)
    assert all((stdlib_root() / f.path).is_file() for f in functions[:50])


def test_stdlib_docstrings_are_unique_and_at_least_three_words(functions):
    assert all(len(f.docstring.split()) >= 3 for f in functions)
    assert len({f.docstring.casefold() for f in functions}) == len(functions)


def test_each_query_is_a_function_source_and_its_answer_that_function_docstring(functions):
    dataset = build_stdlib_benchmark(functions=functions)
    by_code = {f.code: f for f in functions}
    assert dataset.name == BUILTIN_DATASET and len(dataset.queries) == 200
    assert len(dataset.documents) == min(5000, len(functions))
    for query in dataset.queries:
        (positive,) = dataset.qrels.positives(query.id)
        assert dataset.document(positive).text == by_code[query.text].docstring
    assert dataset.languages == ["python"]


def test_corpus_cap_keeps_every_query_answer(functions):
    dataset = build_stdlib_benchmark(n_queries=50, max_documents=300, functions=functions)
    assert len(dataset.documents) == 300 and len(dataset.queries) == 50
    assert all(dataset.qrels.positives(q.id)[0] in dataset.doc_index for q in dataset.queries)


def test_two_builds_give_the_same_benchmark(functions, written):
    loaded = load_dataset(written)
    rebuilt = build_stdlib_benchmark(functions=functions)
    assert loaded.corpus_hash == rebuilt.corpus_hash
    assert loaded.queries_hash == rebuilt.queries_hash
    assert loaded.qrels == rebuilt.qrels


def test_ensure_writes_a_loadable_dataset_with_its_provenance(written):
    assert written.name == BUILTIN_DATASET
    dataset = load_dataset(written)
    assert len(dataset.judged_queries) == 200 and not dataset.problems
    meta = json.loads((written / "meta.json").read_text())
    assert meta["python_version"] == platform.python_version()
    assert meta["direction"] == "code2doc" and meta["source_root"] == str(stdlib_root())


def test_ensure_keeps_an_existing_benchmark(written):
    corpus = written / "corpus.jsonl"
    before = corpus.stat().st_mtime_ns
    assert ensure_stdlib_benchmark(written.parent) == written
    assert corpus.stat().st_mtime_ns == before
