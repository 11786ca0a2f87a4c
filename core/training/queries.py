"""Search-style training queries for text -> code: generated from a function, kept only when a retriever agrees.

Docstrings ("Update class log priors.") are not what people type into a code search ("python update
log prior"), so training on docstrings alone teaches the wrong register for CoSQA-like use. A
generator turns a function into short search-style queries; reverse validation (as in Query4Code)
keeps a query only when the base retriever finds its function among the top ``k``. Two generators:
``TemplateQueries`` (offline, the default) and ``OpenAIQueries`` (any OpenAI-compatible endpoint).
"""
from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from core.data.datasets import Dataset, Qrels, Query
from core.errors import WorkbenchError
from core.progress import Progress, StageCounter
from core.training.leakage import function_name
from core.workspace import Workspace

_SENTENCE_END = re.compile(r"(?<=[.!?])\s|\n\s*\n|:\s*\n")
_MARKUP = re.compile(r"`+|\*+|:[a-z]+:|\[[^\]]*\]\([^)]*\)|\([^)]*\)|<[^>]+>")
_NON_WORD = re.compile(r"[^A-Za-z0-9_\s]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|_+")
# A docstring's leading verb, third person or imperative, as a searcher would type it.
_VERBS = {"returns": "get", "return": "get", "gets": "get", "computes": "compute", "calculates": "calculate",
          "creates": "create", "checks": "check", "converts": "convert", "reads": "read", "writes": "write",
          "loads": "load", "saves": "save", "parses": "parse", "builds": "build", "finds": "find", "adds": "add",
          "removes": "remove", "sets": "set", "tests": "check", "determines": "check", "generates": "generate",
          "makes": "make", "updates": "update", "sorts": "sort", "splits": "split", "joins": "join", "opens": "open"}
_FILLER = {"the", "a", "an", "this", "that", "given", "specified", "provided", "object", "instance", "method",
           "function", "helper", "internal", "utility", "of", "for", "to", "its", "it", "be", "is", "will"}
_LANGUAGE_WORD = {"python": "python", "javascript": "javascript", "typescript": "typescript", "go": "golang",
                  "java": "java", "ruby": "ruby", "php": "php"}


class QueryGenerator(Protocol):
    """Turns one function into candidate search queries, best first."""

    name: str

    def generate(self, docstring: str, code: str, language: str) -> list[str]: ...


def first_sentence(docstring: str) -> str:
    """The docstring's first sentence, without markup or parentheses, on one line."""
    text = docstring.strip()
    text = _SENTENCE_END.split(text, maxsplit=1)[0] if text else ""
    return " ".join(_MARKUP.sub(" ", text).split()).rstrip(".:;,")


def identifier_words(name: str) -> list[str]:
    """``read_json_file`` or ``readJsonFile`` -> ``['read', 'json', 'file']``."""
    return [word.lower() for word in _CAMEL.split(name) if word]


@dataclass(frozen=True)
class TemplateQueries:
    """Offline queries: the first docstring sentence shortened to search words, and the function's name as words.

    ``Returns the width of the terminal window.`` in ``def get_terminal_width()`` gives
    ``python get width terminal window`` and ``python get terminal width``: the language first, as
    in many CoSQA queries, then at most ``max_words`` words without filler.
    """

    max_words: int = 7
    name: str = "template"

    def generate(self, docstring: str, code: str, language: str) -> list[str]:
        prefix = _LANGUAGE_WORD.get(language.lower(), "")
        words = _NON_WORD.sub(" ", first_sentence(docstring)).lower().split()
        if words:
            words = [_VERBS.get(words[0], words[0])] + words[1:]
        words = [w for w in words if w not in _FILLER][: self.max_words]
        candidates = []
        if len(words) >= 2:
            candidates.append(" ".join([prefix, *words]).strip())
        name_words = identifier_words(function_name(code))
        if len(name_words) >= 2 or (name_words and len(name_words[0]) > 5):
            candidates.append(" ".join([prefix, *name_words]).strip())
        return list(dict.fromkeys(candidates))


@dataclass(frozen=True)
class OpenAIQueries:
    """Queries written by a model behind any OpenAI-compatible ``/chat/completions`` endpoint.

    ``base_url`` is the API root (``http://127.0.0.1:8000/v1``); the reply's lines are the queries.
    """

    base_url: str
    model: str
    api_key: str = ""
    per_function: int = 3
    timeout: float = 60.0
    name: str = "openai"
    prompt: str = ("Write {n} short search-engine queries (3-8 words, lowercase, no punctuation) that a developer would "
                   "type to find this {language} function. One query per line, nothing else.\n\n{code}")

    def generate(self, docstring: str, code: str, language: str) -> list[str]:
        body = {"model": self.model, "temperature": 0,
                "messages": [{"role": "user", "content": self.prompt.format(n=self.per_function, language=language or "source",
                                                                            code=code[:4000])}]}
        request = urllib.request.Request(self.base_url.rstrip("/") + "/chat/completions", data=json.dumps(body).encode("utf-8"),
                                         headers={"Content-Type": "application/json",
                                                  **({"Authorization": f"Bearer {self.api_key}"} if self.api_key else {})})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                reply = json.loads(response.read().decode("utf-8"))
            content = reply["choices"][0]["message"]["content"]
        except (urllib.error.URLError, OSError, ValueError, KeyError, IndexError, TypeError) as exc:
            raise WorkbenchError(f"The query endpoint {self.base_url} gave no usable chat completion ({exc}): "
                                 "check the URL, the model name and the key, or use the template generator.") from exc
        lines = [re.sub(r"^\s*(?:[-*•]|\d+[.)])\s*", "", line).strip().strip('"\'').strip() for line in str(content).splitlines()]
        return list(dict.fromkeys(line.lower() for line in lines if line))[: self.per_function]


@dataclass(frozen=True)
class GeneratedQueries:
    """A training set whose queries were generated, and what generation and validation kept."""

    dataset: Dataset
    generator: str
    functions: int
    candidates: int
    validated: int
    kept_queries: int
    validation: dict[str, object] = field(default_factory=dict)

    def describe(self) -> dict[str, object]:
        return {"generator": self.generator, "functions": self.functions, "candidates": self.candidates,
                "validated": self.validated, "kept_queries": self.kept_queries, "validation": self.validation}


def generate_queries(train: Dataset, generator: QueryGenerator, workspace: Workspace, *, k: int = 10,
                     validate_with: str = "bm25", model: str = "minilm",
                     progress: Progress | None = None) -> GeneratedQueries:
    """Each doc -> code query replaced by the first generated query whose function the base retriever ranks in the top ``k``.

    ``train`` is a doc2code set (queries are docstrings, documents code). Candidates are searched in
    the whole corpus with ``validate_with`` (``bm25``: code-analyzer BM25; ``dense``: ``model``); a
    function none of whose candidates passes is no longer a query (its code stays in the corpus, a
    negative for the others). ``k=0`` keeps every first candidate without validation.
    """
    from core.retrieval.engine import Engine
    from core.retrieval.profiles import Bm25Profile, DenseProfile

    candidates: dict[str, list[str]] = {}
    judged = [q for q in train.judged_queries]
    counter = StageCounter(progress, f"generating queries ({generator.name})", len(judged), "functions")
    for position, query in enumerate(judged):
        positive = train.qrels.positives(query.id)[0]
        document = train.document(positive)
        found = [c for c in generator.generate(query.text, document.full_text, query.language or document.language) if c.strip()]
        if found:
            candidates[query.id] = found
        if position % 200 == 0:
            counter(position)
    counter(len(judged))
    flat = [(query_id, n, text) for query_id, texts in candidates.items() for n, text in enumerate(texts)]
    if not flat:
        raise WorkbenchError(f"The {generator.name} generator wrote no query for any of {len(judged)} functions.")
    chosen: dict[str, str] = {}
    validated = 0
    if k > 0:
        probe = replace(train, name=f"{train.name}-probe",
                        queries=tuple(Query(f"{query_id}~{n}", text, train.query(query_id).language) for query_id, n, text in flat),
                        qrels=Qrels({f"{query_id}~{n}": dict(train.qrels.grades(query_id)) for query_id, n, _ in flat}))
        profile = Bm25Profile("validate-bm25", analyzer="code") if validate_with == "bm25" else DenseProfile("validate-dense", model=model)
        run = Engine(workspace, probe, {profile.name: profile}, progress=progress).run(profile.name, depth=k)
        for query_id, n, text in flat:
            if set(run.ranking(f"{query_id}~{n}").doc_ids[:k]) & set(train.qrels.positives(query_id)):
                validated += 1
                chosen.setdefault(query_id, text)
    else:
        for query_id, n, text in flat:
            chosen.setdefault(query_id, text)
    if not chosen:
        raise WorkbenchError(f"No generated query found its own function in the top {k}: raise k or check the generator.")
    queries = tuple(replace(q, text=chosen[q.id]) for q in train.queries if q.id in chosen)
    qrels = Qrels({q.id: dict(train.qrels.grades(q.id)) for q in queries})
    dataset = replace(train, queries=queries, qrels=qrels)
    return GeneratedQueries(dataset, generator.name, len(judged), len(flat), validated, len(queries),
                            {"k": k, "retriever": validate_with if k > 0 else "none"})


def make_generator(name: str, *, endpoint: str | None = None, model: str | None = None, api_key: str = "") -> QueryGenerator | None:
    """The generator a command line or page names: ``docstring`` (none: the docstring is the query), ``template``, ``openai``."""
    if name == "docstring":
        return None
    if name == "template":
        return TemplateQueries()
    if name == "openai":
        if not endpoint or not model:
            raise WorkbenchError("The openai query generator needs an endpoint URL and a model name (--query-endpoint, --query-model).")
        return OpenAIQueries(endpoint, model, api_key)
    raise WorkbenchError(f"Unknown query generator {name!r}: choose docstring, template or openai.")


QUERY_GENERATORS: Sequence[str] = ("docstring", "template", "openai")
