"""Code <-> docstring benchmarks built from any source tree, parsed with tree-sitter.

Functions and methods are paired with their documentation the way CodeSearchNet pairs them: in
Python the docstring is the first statement of the body; in Go, Java, JavaScript, TypeScript, Ruby
and PHP it is the comment block right before the function (a ``/** */`` block for Java, JavaScript,
TypeScript and PHP; the ``//`` or ``#`` lines for Go and Ruby). Docstrings are cut to their first
paragraph without parameter tables; short ones and ones shared by several functions are dropped,
so that every query has exactly one right answer.
"""
from __future__ import annotations

import bisect
import inspect
import os
import random
import re
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import tree_sitter
import tree_sitter_go
import tree_sitter_java
import tree_sitter_javascript
import tree_sitter_php
import tree_sitter_python
import tree_sitter_ruby
import tree_sitter_typescript

from core.data.datasets import Dataset, Document, Qrels, Query, validate_name, write_dataset
from core.data.python_source import python_literal
from core.errors import DatasetError
from core.progress import Progress, StageCounter

Direction = Literal["code2doc", "doc2code"]
DIRECTIONS: tuple[str, ...] = ("code2doc", "doc2code")
DEFAULT_SEED = 20261122
MAX_FILE_BYTES = 1_000_000
MIN_DOC_WORDS = 3
# Folders that hold build output, caches or vendored copies of other projects, never the tree's own code.
DEFAULT_EXCLUDED_DIRS = frozenset({"__pycache__", "node_modules", "vendor", "bower_components"})


@dataclass(frozen=True)
class CodeFunction:
    """One documented function or method found in a source tree.

    ``code`` is the function with its documentation (the docstring inside a Python function, the
    comment block above it elsewhere); ``code_without_doc`` is the function alone.
    """

    path: str
    language: str
    name: str
    code: str
    code_without_doc: str
    docstring: str
    start_line: int

    @property
    def id(self) -> str:
        """Where the function is: stable across runs, used to order functions before sampling."""
        return f"{self.path}:{self.start_line}:{self.name}"


@dataclass(frozen=True)
class _Grammar:
    """How one language is parsed and where its functions keep their documentation."""

    language: str
    load: Callable[[], object]
    function_types: tuple[str, ...]
    comment_types: tuple[str, ...] = ("comment",)
    doc_comment_prefix: str = ""  # "/**": only such a block documents; "": any comment lines do


_JS_FUNCTIONS = ("function_declaration", "generator_function_declaration", "method_definition",
                 "function_expression", "function", "arrow_function", "generator_function")
_GRAMMARS: dict[str, _Grammar] = {
    "python": _Grammar("python", tree_sitter_python.language, ("function_definition",)),
    "javascript": _Grammar("javascript", tree_sitter_javascript.language, _JS_FUNCTIONS, doc_comment_prefix="/**"),
    "typescript": _Grammar("typescript", tree_sitter_typescript.language_typescript, _JS_FUNCTIONS, doc_comment_prefix="/**"),
    "tsx": _Grammar("typescript", tree_sitter_typescript.language_tsx, _JS_FUNCTIONS, doc_comment_prefix="/**"),
    "go": _Grammar("go", tree_sitter_go.language, ("function_declaration", "method_declaration")),
    "java": _Grammar("java", tree_sitter_java.language, ("method_declaration", "constructor_declaration"),
                     ("block_comment", "line_comment"), doc_comment_prefix="/**"),
    "ruby": _Grammar("ruby", tree_sitter_ruby.language, ("method", "singleton_method")),
    "php": _Grammar("php", tree_sitter_php.language_php, ("function_definition", "method_declaration"), doc_comment_prefix="/**"),
}
_EXTENSIONS: dict[str, str] = {
    ".py": "python", ".js": "javascript", ".mjs": "javascript", ".cjs": "javascript", ".jsx": "javascript",
    ".ts": "typescript", ".mts": "typescript", ".cts": "typescript", ".tsx": "tsx", ".go": "go",
    ".java": "java", ".rb": "ruby", ".php": "php",
}
LANGUAGES: tuple[str, ...] = ("python", "javascript", "typescript", "go", "java", "ruby", "php")
# Minified bundles and type declarations hold no documented function bodies worth pairing.
_SKIPPED_SUFFIXES = (".min.js", ".d.ts", ".d.mts", ".d.cts")

# An anonymous JavaScript function takes its name from what it is assigned to; its documentation sits
# above the whole statement, so the search for the comment starts there.
_NAME_FROM_PARENT = {"variable_declarator": "name", "pair": "key", "assignment_expression": "left",
                     "field_definition": "property", "public_field_definition": "name"}
_STATEMENT_WRAPPERS = frozenset({"variable_declarator", "lexical_declaration", "variable_declaration",
                                 "assignment_expression", "expression_statement", "export_statement"})

_TAG_LINE = re.compile(
    r"^(@\w+"
    r"|:(param|parameter|arg|argument|key|keyword|type|raises?|except|exception|returns?|rtype|yields?|ytype|var|ivar|cvar)\b"
    r"|(args|arguments|parameters|params|returns?|yields?|raises|throws|examples?|notes?|attributes|see also|warnings?|todo|usage)\s*:?\s*$"
    r"|>>>|\.\. \w+::|-{3,}\s*$|={3,}\s*$)",
    re.IGNORECASE,
)
_INLINE_TAG = re.compile(r"\{@\w+\s*([^}]*)\}")
_HTML_PARAGRAPH = re.compile(r"<p\b[^>]*>", re.IGNORECASE)
_HTML_TAG = re.compile(r"</?(p|br|b|i|em|strong|code|tt|ul|ol|li|pre|a|var|sup|sub|blockquote)\b[^>]*>", re.IGNORECASE)


def strip_comment_markers(comment: str) -> str:
    """The text of one comment without its ``/** * */``, ``//``, ``#`` or ``=begin``/``=end`` markers."""
    text = comment.strip()
    if text.startswith("/*"):
        body = text[2:].lstrip("*!")
        body = body[:-2] if body.endswith("*/") else body
        return "\n".join(re.sub(r"^\s*\*+ ?", "", line) for line in body.splitlines()).strip()
    if text.startswith("=begin"):
        return "\n".join(text.splitlines()[1:-1]).strip()
    return "\n".join(re.sub(r"^\s*(//+|#+)!? ?", "", line) for line in text.splitlines()).strip()


def clean_docstring(text: str) -> str:
    """The first paragraph of a docstring, without tags or parameter tables, on one line."""
    paragraphs: list[list[str]] = [[]]
    for line in inspect.cleandoc(text).splitlines():
        stripped = line.strip()
        if _TAG_LINE.match(stripped):
            break
        if stripped:
            paragraphs[-1].append(stripped)
        elif paragraphs[-1]:
            paragraphs.append([])
    chosen = [p for p in paragraphs if p]
    if chosen and chosen[0][0].lower().lstrip(":").startswith("call-seq:"):
        chosen = chosen[1:]  # Ruby's RDoc opens with the call signatures; the prose comes after
    first = " ".join(chosen[0]) if chosen else ""
    first = _HTML_PARAGRAPH.split(first)[0]  # Javadoc starts its second paragraph with <p>, not a blank line
    first = _INLINE_TAG.sub(r"\1", first)
    first = _HTML_TAG.sub(" ", first)
    return " ".join(first.split())


def _line_prefix(source: bytes, start: int) -> bytes:
    return source[source.rfind(b"\n", 0, start) + 1:start]


def _source_text(source: bytes, start: int, end: int, replace: tuple[int, int, bytes] | None = None) -> str:
    """Source between two byte offsets, shifted left as if it started its own file; optionally with one span replaced.

    Only the first line's indentation is removed from the lines that start with it, so a multi-line
    string that runs back to column 0 keeps the code valid (``textwrap.dedent`` would give up on it).
    """
    if replace is None:
        body = source[start:end]
    else:
        cut_start, cut_end, inserted = replace
        body = source[start:cut_start] + inserted + source[cut_end:end]
    lines = body.decode("utf-8", "replace").strip("\n").split("\n")
    indent = _line_prefix(source, start).decode("utf-8", "replace")
    if indent and not indent.strip():
        lines[1:] = [line[len(indent):] if line.startswith(indent) else line for line in lines[1:]]
    return "\n".join(lines)


def _node_name(node: tree_sitter.Node) -> str:
    named = node.child_by_field_name("name")
    if named is None and node.parent is not None and node.parent.type in _NAME_FROM_PARENT:
        named = node.parent.child_by_field_name(_NAME_FROM_PARENT[node.parent.type])
    if named is None:
        return ""
    return named.text.decode("utf-8", "replace").rsplit(".", 1)[-1].strip().strip("'\"`")


def _python_function(node: tree_sitter.Node, source: bytes, path: str) -> CodeFunction | None:
    """A Python function whose body opens with a string literal (what ``ast`` calls its docstring)."""
    body = node.child_by_field_name("body")
    statements = [child for child in (body.named_children if body else []) if child.type != "comment"]
    if not statements or statements[0].type != "expression_statement" or statements[0].named_child_count != 1:
        return None
    doc_node = statements[0]
    if doc_node.named_children[0].type not in ("string", "concatenated_string"):
        return None
    try:
        value = python_literal(doc_node.text.decode("utf-8"))
    except (ValueError, SyntaxError, UnicodeDecodeError, MemoryError, RecursionError):
        return None  # an f-string or something else that is not a constant
    if not isinstance(value, str):
        return None
    following = doc_node.next_named_sibling
    # Cut up to what follows so its indentation takes the docstring's place; a body left with no
    # statement (comments do not count) gets `pass`.
    if any(statement.type != "comment" for statement in statements[1:]) and following is not None:
        cut = (doc_node.start_byte, following.start_byte, b"")
    else:
        cut = (doc_node.start_byte, doc_node.end_byte, b"pass")
    return CodeFunction(
        path=path, language="python", name=_node_name(node),
        code=_source_text(source, node.start_byte, node.end_byte),
        code_without_doc=_source_text(source, node.start_byte, node.end_byte, cut),
        docstring=clean_docstring(value), start_line=node.start_point.row + 1,
    )


def _statement(node: tree_sitter.Node) -> tree_sitter.Node:
    """The declaration a function stands for: ``export const f = () => ...`` for the arrow function in it."""
    anchor = node
    while anchor.parent is not None and anchor.parent.type in _STATEMENT_WRAPPERS:
        anchor = anchor.parent
    if anchor.parent is not None and anchor.parent.type == "pair":
        anchor = anchor.parent
    return anchor


def _start_with_decorators(statement: tree_sitter.Node) -> int:
    """Where the documentation search starts: before any decorators standing beside the declaration."""
    start = statement.start_byte
    previous = statement.prev_named_sibling
    while previous is not None and previous.type == "decorator":
        start = previous.start_byte
        previous = previous.prev_named_sibling
    return start


def _doc_comments(grammar: _Grammar, source: bytes, comments: Sequence[tree_sitter.Node], ends: Sequence[int],
                  start: int) -> list[tree_sitter.Node]:
    """The comments directly above ``start``: touching it (no blank line between) and alone on their lines."""
    block: list[tree_sitter.Node] = []
    position = start
    index = bisect.bisect_right(ends, position) - 1
    while index >= 0:
        comment = comments[index]
        gap = source[comment.end_byte:position]
        if gap.strip() or gap.count(b"\n") > 1 or _line_prefix(source, comment.start_byte).strip():
            break
        if grammar.doc_comment_prefix:
            return [comment] if comment.text.startswith(grammar.doc_comment_prefix.encode()) else []
        block.insert(0, comment)
        position = comment.start_byte
        index -= 1
    return block


def _commented_function(grammar: _Grammar, node: tree_sitter.Node, source: bytes, path: str,
                        comments: Sequence[tree_sitter.Node], ends: Sequence[int]) -> CodeFunction | None:
    if node.child_by_field_name("body") is None:
        return None  # an abstract or interface method: a signature, not code
    name = _node_name(node)
    statement = _statement(node)
    start, end = _start_with_decorators(statement), statement.end_byte
    block = _doc_comments(grammar, source, comments, ends, start)
    if not name or not block:
        return None
    raw = "\n".join(strip_comment_markers(c.text.decode("utf-8", "replace")) for c in block)
    return CodeFunction(
        path=path, language=grammar.language, name=name,
        code=_source_text(source, block[0].start_byte, end),
        code_without_doc=_source_text(source, start, end),
        docstring=clean_docstring(raw), start_line=node.start_point.row + 1,
    )


def _capture_query(language: tree_sitter.Language, node_types: Iterable[str], capture: str) -> tree_sitter.Query:
    """A query capturing every node of the given types that this grammar knows (grammars differ in names)."""
    known = [t for t in node_types if language.id_for_node_kind(t, True)]
    return tree_sitter.Query(language, " ".join(f"({t}) @{capture}" for t in known))


class _FileParser:
    """Parsers and queries for the languages of one extraction, made once and reused for every file."""

    def __init__(self, grammar_keys: Iterable[str]):
        self._parts: dict[str, tuple[_Grammar, tree_sitter.Parser, tree_sitter.Query, tree_sitter.Query]] = {}
        for key in grammar_keys:
            grammar = _GRAMMARS[key]
            language = tree_sitter.Language(grammar.load())
            functions = _capture_query(language, grammar.function_types, "function")
            comments = _capture_query(language, grammar.comment_types, "comment")
            self._parts[key] = (grammar, tree_sitter.Parser(language), functions, comments)

    def functions(self, source: bytes, grammar_key: str, path: str) -> list[CodeFunction]:
        """Every documented function of one file; none when the file does not parse cleanly."""
        grammar, parser, function_query, comment_query = self._parts[grammar_key]
        tree = parser.parse(source)
        if tree.root_node.has_error:
            return []
        nodes = sorted(tree_sitter.QueryCursor(function_query).captures(tree.root_node).get("function", []),
                       key=lambda n: n.start_byte)
        if grammar.language == "python":
            found = [_python_function(node, source, path) for node in nodes]
        else:
            comments = sorted(tree_sitter.QueryCursor(comment_query).captures(tree.root_node).get("comment", []),
                              key=lambda n: n.start_byte)
            ends = [c.end_byte for c in comments]
            found = [_commented_function(grammar, node, source, path, comments, ends) for node in nodes]
        return [f for f in found if f is not None and f.name]


def functions_in_source(source: str | bytes, language: str, path: str = "") -> list[CodeFunction]:
    """Every documented function of one file's text, unfiltered (for notebooks and quick checks)."""
    key = "tsx" if language == "typescript" and path.endswith(".tsx") else _check_languages([language])[0]
    data = source.encode("utf-8") if isinstance(source, str) else source
    return _FileParser([key]).functions(data, key, path)


def _check_languages(languages: Iterable[str] | None) -> list[str]:
    chosen = list(LANGUAGES) if languages is None else [str(lang).lower() for lang in languages]
    unknown = [lang for lang in chosen if lang not in LANGUAGES]
    if unknown:
        raise DatasetError(f"Unknown language(s) {', '.join(map(repr, unknown))}: choose from {', '.join(LANGUAGES)}.")
    if not chosen:
        raise DatasetError(f"No language chosen: choose from {', '.join(LANGUAGES)}.")
    return chosen


def source_files(root: Path, languages: Iterable[str] | None = None,
                 exclude_dirs: Collection[str] = DEFAULT_EXCLUDED_DIRS) -> Iterator[tuple[Path, str]]:
    """(file, grammar key) for each source file under ``root``, in sorted order.

    Links are never followed: one leading out of the root could read anything, and one inside it
    would count its functions twice (and so drop them all as duplicates). Hidden folders are skipped.
    """
    wanted = set(_check_languages(languages))
    for folder, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in exclude_dirs
                             and not os.path.islink(os.path.join(folder, d)))
        for filename in sorted(filenames):
            key = _EXTENSIONS.get(os.path.splitext(filename)[1])
            if key is None or _GRAMMARS[key].language not in wanted or filename.endswith(_SKIPPED_SUFFIXES):
                continue
            path = Path(folder) / filename
            if path.is_symlink() or not path.is_file():
                continue
            yield path, key


def _is_test(function: CodeFunction) -> bool:
    return function.name.lower().startswith("test")


def _code_lines(code: str) -> int:
    return sum(1 for line in code.splitlines() if line.strip())


def drop_shared(functions: Iterable[CodeFunction]) -> list[CodeFunction]:
    """Keep only functions whose docstring and whose code are each unique, so every query has one answer.

    A docstring shared by several functions is dropped for all of them (not kept once), as in the
    bundled CodeSearchNet slices: it describes boilerplate, and any one of its functions would be as right.
    """
    functions = list(functions)
    docs = Counter(f.docstring.casefold() for f in functions)
    codes = Counter(f.code_without_doc for f in functions)
    return [f for f in functions if docs[f.docstring.casefold()] == 1 and codes[f.code_without_doc] == 1]


def extract_functions(root: Path, languages: Iterable[str] | None = None, max_files: int | None = None, *,
                      min_code_lines: int = 3, include_tests: bool = False,
                      exclude_dirs: Collection[str] = DEFAULT_EXCLUDED_DIRS,
                      progress: Progress | None = None) -> list[CodeFunction]:
    """Documented functions under ``root`` worth a benchmark pair, sorted by ``CodeFunction.id``.

    Dropped: docstrings under three words, docstrings (or code) shared by several functions,
    functions under ``min_code_lines`` non-blank lines without their documentation, test functions
    unless ``include_tests``; files that are over 1 MB, not UTF-8, or do not parse cleanly.
    """
    root = Path(root).resolve()
    if not root.is_dir():
        raise DatasetError(f"Source folder {str(root)!r} does not exist: give the root of a source tree.")
    chosen = _check_languages(languages)
    keys = sorted({key for key, grammar in _GRAMMARS.items() if grammar.language in chosen})
    parser = _FileParser(keys)
    documented: list[CodeFunction] = []
    files_read = 0
    files = list(source_files(root, chosen, exclude_dirs))
    counter = StageCounter(progress, "parsing source files", len(files), "files")
    step = max(1, len(files) // 100)
    for position, (path, key) in enumerate(files):
        if position % step == 0:
            counter(position)
        if max_files is not None and files_read >= max_files:
            break
        try:
            if path.stat().st_size > MAX_FILE_BYTES:
                continue
            source = path.read_bytes()
            source.decode("utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        files_read += 1
        found = parser.functions(source, key, path.relative_to(root).as_posix())
        documented.extend(f for f in found if len(f.docstring.split()) >= MIN_DOC_WORDS)
    counter(len(files))
    kept = [f for f in drop_shared(documented)
            if _code_lines(f.code_without_doc) >= min_code_lines and (include_tests or not _is_test(f))]
    return sorted(kept, key=lambda f: (f.id, f.code))


def build_benchmark(functions: Iterable[CodeFunction], name: str, direction: Direction, n_queries: int = 200,
                    seed: int = DEFAULT_SEED, strip_docstring_from_query: bool = False, *,
                    max_documents: int | None = None, source: str = "") -> Dataset:
    """A BEIR dataset pairing each sampled function with its own docstring (one relevant document per query).

    ``code2doc``: the query is the code (its docstring cut out when ``strip_docstring_from_query``)
    and the corpus holds the docstrings. ``doc2code``: the query is the docstring and the corpus
    holds the code, always without its docstring, or each answer would contain its query verbatim.
    Queries are drawn with ``random.Random(seed)`` from the functions sorted by id; ``max_documents``
    caps the corpus with the same generator, always keeping the queries' answers. Ids are ``q<n>``
    and ``d<n>``, ``n`` being the function's position in that sorted order.
    """
    validate_name(name)
    if direction not in DIRECTIONS:
        raise DatasetError(f"Unknown direction {direction!r}: use 'code2doc' or 'doc2code'.")
    if n_queries < 1:
        raise DatasetError(f"n_queries is {n_queries}: ask for at least one query.")
    if max_documents is not None and max_documents < n_queries:
        raise DatasetError(f"max_documents ({max_documents}) is below n_queries ({n_queries}): raise it or ask for fewer queries.")
    pool = sorted(drop_shared(functions), key=lambda f: (f.id, f.code))
    if not pool:
        raise DatasetError(f"No documented functions to build {name!r} from: pick a source tree whose functions have docstrings.")
    rng = random.Random(seed)
    query_rows = sorted(rng.sample(range(len(pool)), min(n_queries, len(pool))))
    document_rows = range(len(pool))
    if max_documents is not None and len(pool) > max_documents:
        chosen = set(query_rows)
        others = [row for row in document_rows if row not in chosen]
        document_rows = sorted(chosen | set(rng.sample(others, max_documents - len(chosen))))

    def query_text(f: CodeFunction) -> str:
        if direction == "doc2code":
            return f.docstring
        return f.code_without_doc if strip_docstring_from_query else f.code

    def document_text(f: CodeFunction) -> str:
        return f.docstring if direction == "code2doc" else f.code_without_doc

    documents = tuple(Document(f"d{row}", document_text(pool[row]), language=pool[row].language) for row in document_rows)
    queries = tuple(Query(f"q{row}", query_text(pool[row]), pool[row].language) for row in query_rows)
    qrels = Qrels({f"q{row}": {f"d{row}": 1} for row in query_rows})
    return Dataset(name, documents, queries, qrels, source=source)


def benchmark_meta(root: Path, direction: Direction, functions: Sequence[CodeFunction], dataset: Dataset,
                   seed: int, strip_docstring_from_query: bool, **extra: object) -> dict[str, object]:
    """What ``meta.json`` records about a built benchmark: where it came from and how it was drawn."""
    return {
        "task": "code-to-text" if direction == "code2doc" else "text-to-code",
        "direction": direction,
        "source_root": str(root),
        "languages": dataset.languages,
        "seed": seed,
        "functions": len(functions),
        "strip_docstring_from_query": strip_docstring_from_query,
        "sampling": f"random.Random({seed}).sample over unique-docstring functions sorted by path:line:name",
        **extra,
    }


def build_from_tree(root: Path, name: str, direction: Direction, languages: Iterable[str] | None = None,
                    n_queries: int = 200, seed: int = DEFAULT_SEED, strip_docstring_from_query: bool = False,
                    out_dir: Path | None = None, progress: Progress | None = None) -> Dataset:
    """Extract a tree's documented functions and build a benchmark; write it to ``out_dir / name`` when given.

    ``out_dir`` is the folder that holds datasets (a workspace's ``datasets_dir``), not the dataset's own folder.
    """
    functions = extract_functions(root, languages, progress=progress)
    dataset = build_benchmark(functions, name, direction, n_queries, seed, strip_docstring_from_query, source=str(root))
    if out_dir is not None:
        meta = benchmark_meta(Path(root), direction, functions, dataset, seed, strip_docstring_from_query)
        write_dataset(dataset, Path(out_dir) / name, meta)
    return dataset


def tree_labels(roots: Sequence[Path]) -> list[str]:
    """A distinct label per root (its folder name, numbered when two share one): the prefix of its functions' paths."""
    names = [Path(root).name or "root" for root in roots]
    return [name if names.count(name) == 1 else f"{name}-{position}" for position, name in enumerate(names, start=1)]


def extract_functions_from_trees(roots: Sequence[Path], languages: Iterable[str] | None = None) -> list[CodeFunction]:
    """Documented functions of several source trees as one pool, each path prefixed by its tree's label.

    Docstrings or code shared across trees (a vendored copy, the same package twice) are dropped like
    those shared inside one tree, so no query has two right answers.
    """
    if not roots:
        raise DatasetError("Give at least one source folder.")
    pooled = []
    for root, label in zip(roots, tree_labels(roots)):
        pooled += [replace(f, path=f"{label}/{f.path}") for f in extract_functions(root, languages)]
    return sorted(drop_shared(pooled), key=lambda f: (f.id, f.code))


def build_from_trees(roots: Sequence[Path], name: str, direction: Direction, languages: Iterable[str] | None = None,
                     n_queries: int = 200, seed: int = DEFAULT_SEED, strip_docstring_from_query: bool = False,
                     out_dir: Path | None = None) -> Dataset:
    """``build_from_tree`` over many source trees at once (every installed package, several languages' trees)."""
    if len(roots) == 1:
        return build_from_tree(roots[0], name, direction, languages, n_queries, seed, strip_docstring_from_query, out_dir)
    functions = extract_functions_from_trees(roots, languages)
    source = os.pathsep.join(str(root) for root in roots)
    dataset = build_benchmark(functions, name, direction, n_queries, seed, strip_docstring_from_query, source=source)
    if out_dir is not None:
        meta = benchmark_meta(Path(roots[0]), direction, functions, dataset, seed, strip_docstring_from_query,
                              source_roots=[str(root) for root in roots], tree_labels=tree_labels(roots))
        meta["source_root"] = source
        write_dataset(dataset, Path(out_dir) / name, meta)
    return dataset


_REMOTE_PATH = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.-]+://|[\\/]{2}|[^\\/:\s]+@[^\\/:\s]+:|[A-Za-z0-9.-]{2,}:(?![\\/]))")


def check_source_root(text: str) -> Path:
    """The folder a user typed, resolved, if it is an existing directory on this machine (not a URL or share)."""
    raw = str(text).strip()
    if not raw:
        raise DatasetError("Give the path of a source folder on this machine, for example /home/me/src/project.")
    if _REMOTE_PATH.match(raw):
        raise DatasetError(f"{raw!r} is not a local path: clone or copy the sources onto this machine and give that folder.")
    root = Path(raw).expanduser().resolve()
    if not root.exists():
        raise DatasetError(f"Source folder {str(root)!r} does not exist: give the root of a source tree on this machine.")
    if not root.is_dir():
        raise DatasetError(f"{str(root)!r} is a file: give the folder that holds the sources.")
    return root
