"""Tests for core/data/source_benchmark.py: functions and docstrings from source trees, and benchmarks built on them."""
from __future__ import annotations

import ast
import importlib.util
import json
import os
from pathlib import Path

import pytest

from core.data.datasets import load_dataset
from core.errors import DatasetError
from core.data.source_benchmark import (
    CodeFunction,
    build_benchmark,
    build_from_tree,
    clean_docstring,
    drop_shared,
    extract_functions,
    functions_in_source,
    strip_comment_markers,
)

# One file per language: a documented function with a parameter table (the only one kept), an
# undocumented one, two sharing a docstring, a documented one too short to keep, and a test.
FIXTURES: dict[str, tuple[str, str, str]] = {
    "python": ("calc.py", "Add two numbers and return the sum in LANG.", '''
class Calc:
    def add(self, a, b):
        """Add two numbers
        and return the sum in LANG.

        Args:
            a: first number.
            b: second number.
        """
        total = a + b
        return total

    def undocumented(self, a):
        total = a * 2
        return total


def first_copy(x):
    """Return the value unchanged."""
    value = x
    return value


def second_copy(y):
    """Return the value unchanged."""
    value = y
    return value


def tiny():
    """Return nothing at all."""


def test_add():
    """Check that adding works."""
    assert Calc().add(1, 2) == 3
    assert Calc().add(2, 2) == 4
'''),
    "javascript": ("calc.js", "Add two numbers and return the sum in LANG.", '''
/**
 * Add two numbers and return the sum in LANG.
 *
 * @param {number} a first number
 * @param {number} b second number
 * @returns {number} the sum
 */
function add(a, b) {
  const total = a + b;
  return total;
}

function undocumented(a) {
  const total = a * 2;
  return total;
}

/** Return the value unchanged. */
function firstCopy(x) {
  return x;
}

/** Return the value unchanged. */
const secondCopy = (y) => {
  return y;
};

/** Return nothing at all. */
function tiny() {}

/** Check that adding works. */
function testAdd() {
  assert(add(1, 2) === 3);
}
'''),
    "typescript": ("calc.ts", "Add two numbers and return the sum in LANG.", '''
export class Calc {
  /**
   * Add two numbers and return the sum in LANG.
   * @param a first number
   * @param b second number
   */
  add(a: number, b: number): number {
    const total = a + b;
    return total;
  }

  undocumented(a: number): number {
    const total = a * 2;
    return total;
  }

  /** Return the value unchanged. */
  firstCopy(x: number): number {
    return x;
  }

  /** Return the value unchanged. */
  secondCopy(y: number): number {
    return y;
  }

  /** Return nothing at all. */
  tiny(): void {}

  /** Check that adding works. */
  testAdd(): void {
    expect(this.add(1, 2)).toBe(3);
  }
}
'''),
    "go": ("calc.go", "Add adds two numbers and returns the sum in LANG.", '''
package calc

// Add adds two numbers
// and returns the sum in LANG.
//
// Both numbers are plain ints.
func (c *Calc) Add(a, b int) int {
	total := a + b
	return total
}

func undocumented(a int) int {
	total := a * 2
	return total
}

// Return the value unchanged.
func firstCopy(x int) int {
	return x
}

// Return the value unchanged.
func secondCopy(y int) int {
	return y
}

// Return nothing at all.
func tiny() {}

// TestAdd checks that adding works.
func TestAdd(t *testing.T) {
	if Add(1, 2) != 3 {
		t.Fatal("bad sum")
	}
}
'''),
    "java": ("Calc.java", "Add two numbers a and b and return the sum in LANG.", '''
package calc;

public class Calc {
    /**
     * Add two numbers {@code a} and {@code b} and return the sum in LANG.
     * <p>Overflow wraps around.
     *
     * @param a first number
     * @param b second number
     * @return the sum
     */
    public int add(int a, int b) {
        int total = a + b;
        return total;
    }

    public int undocumented(int a) {
        int total = a * 2;
        return total;
    }

    /** Return the value unchanged. */
    public int firstCopy(int x) {
        return x;
    }

    /** Return the value unchanged. */
    public int secondCopy(int y) {
        return y;
    }

    /** Return nothing at all. */
    public void tiny() {}

    /** Check that adding works. */
    public void testAdd() {
        assert add(1, 2) == 3;
    }
}
'''),
    "ruby": ("calc.rb", "Add two numbers and return the sum in LANG.", '''
class Calc
  # Add two numbers and return the sum in LANG.
  #
  # @param a [Integer] first number
  # @param b [Integer] second number
  # @return [Integer] the sum
  def add(a, b)
    total = a + b
    total
  end

  def undocumented(a)
    total = a * 2
    total
  end

  # Return the value unchanged.
  def first_copy(x)
    x
  end

  # Return the value unchanged.
  def second_copy(y)
    y
  end

  # Return nothing at all.
  def tiny; end

  # Check that adding works.
  def test_add
    assert_equal 3, add(1, 2)
  end
end
'''),
    "php": ("Calc.php", "Add two numbers and return the sum in LANG.", '''<?php
class Calc
{
    /**
     * Add two numbers and return the sum in LANG.
     *
     * @param int $a first number
     * @param int $b second number
     * @return int the sum
     */
    public function add($a, $b)
    {
        $total = $a + $b;
        return $total;
    }

    public function undocumented($a)
    {
        return $a * 2;
    }

    /** Return the value unchanged. */
    public function firstCopy($x)
    {
        return $x;
    }

    /** Return the value unchanged. */
    public function secondCopy($y)
    {
        return $y;
    }

    /** Return nothing at all. */
    public function tiny() {}

    /** Check that adding works. */
    public function testAdd()
    {
        $this->assertSame(3, $this->add(1, 2));
    }
}
'''),
}
LANGUAGE_NAMES = sorted(FIXTURES)


def fixture(language: str) -> tuple[str, str, str]:
    """(file name, expected docstring, source); each language names itself in its docstring, so none is shared."""
    filename, docstring, source = FIXTURES[language]
    return filename, docstring.replace("LANG", language), source.replace("LANG", language).lstrip("\n")


def write_fixture(folder: Path, language: str) -> Path:
    filename, _, source = fixture(language)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / filename).write_text(source, encoding="utf-8")
    return folder


def write_python_module(folder: Path, count: int, name: str = "many.py") -> Path:
    """A module of ``count`` documented functions, each with a docstring of its own."""
    folder.mkdir(parents=True, exist_ok=True)
    blocks = [f'def compute_{i}(x):\n    """Compute value number {i} from the input."""\n    y = x + {i}\n    return y\n'
              for i in range(count)]
    (folder / name).write_text("\n\n".join(blocks), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def polyglot_tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("polyglot")
    for language in LANGUAGE_NAMES:
        write_fixture(root / language, language)
    return root


@pytest.fixture(scope="module")
def pytest_package_functions() -> tuple[Path, list[CodeFunction]]:
    """The functions of an installed pure-Python package (pytest's own code in site-packages)."""
    root = Path(importlib.util.find_spec("_pytest").origin).parent
    return root, extract_functions(root, ["python"], max_files=40)


@pytest.mark.parametrize("language", LANGUAGE_NAMES)
def test_only_the_documented_long_unique_function_is_kept(tmp_path, language):
    _, docstring, _ = fixture(language)
    functions = extract_functions(write_fixture(tmp_path, language))
    assert [(f.name.lower(), f.language, f.docstring) for f in functions] == [("add", language, docstring)]


@pytest.mark.parametrize("language", LANGUAGE_NAMES)
def test_duplicate_docstrings_are_found_then_both_dropped(tmp_path, language):
    filename, _, source = fixture(language)
    found = {f.name.lower().replace("_", "") for f in functions_in_source(source, language, filename)}
    assert {"firstcopy", "secondcopy"} <= found and "undocumented" not in found
    kept = {f.name.lower().replace("_", "") for f in extract_functions(write_fixture(tmp_path, language))}
    assert not {"firstcopy", "secondcopy"} & kept


@pytest.mark.parametrize("language", LANGUAGE_NAMES)
def test_test_functions_are_kept_only_when_asked(tmp_path, language):
    root = write_fixture(tmp_path, language)
    assert not [f for f in extract_functions(root) if f.name.lower().startswith("test")]
    expected = "test_add" if language in ("python", "ruby") else "testadd"
    assert [f.name.lower() for f in extract_functions(root, include_tests=True) if f.name.lower().startswith("test")] == [expected]


@pytest.mark.parametrize("language", sorted(set(LANGUAGE_NAMES) - {"python"}))
def test_comment_languages_keep_the_comment_in_code_and_cut_it_from_code_without_doc(tmp_path, language):
    (function,) = extract_functions(write_fixture(tmp_path, language))
    marker = "#" if language == "ruby" else ("//" if language == "go" else "/**")
    assert function.code.startswith(marker)
    assert function.code.endswith(function.code_without_doc)
    assert marker not in function.code_without_doc and "sum" not in function.code_without_doc


def test_start_line_is_the_line_of_the_function_not_of_its_comment(tmp_path):
    (function,) = extract_functions(write_fixture(tmp_path, "java"))
    assert function.start_line == 12
    assert function.path == "Calc.java"


def test_python_method_is_dedented_and_valid_without_its_docstring(tmp_path):
    (function,) = extract_functions(write_fixture(tmp_path, "python"))
    assert function.code.startswith("def add(self, a, b):\n    \"\"\"Add two numbers")
    assert function.code_without_doc == "def add(self, a, b):\n    total = a + b\n    return total"
    ast.parse(function.code)


def test_python_docstring_only_function_gets_pass_to_stay_valid():
    (function,) = functions_in_source('def noop():\n    """Do nothing at all, on purpose."""\n', "python")
    assert function.code_without_doc == "def noop():\n    pass"
    ast.parse(function.code_without_doc)


def test_python_docstring_followed_only_by_comments_still_gets_pass():
    source = 'def noop():\n    """Do nothing at all, on purpose."""\n    # nothing to do\n'
    (function,) = functions_in_source(source, "python")
    ast.parse(function.code_without_doc)
    assert "Do nothing" not in function.code_without_doc


def test_python_fstring_and_late_strings_are_not_docstrings():
    source = 'def a(x):\n    f"""Not {x} a docstring."""\n    return x\n\ndef b(x):\n    y = x\n    """Not a docstring either."""\n'
    assert functions_in_source(source, "python") == []


def test_javascript_arrow_function_takes_its_name_from_the_declaration():
    source = "/** Double the given number twice. */\nexport const double = (x) => {\n  const y = x * 2;\n  return y;\n};\n"
    (function,) = functions_in_source(source, "javascript")
    assert function.name == "double"
    assert function.code_without_doc.startswith("export const double")


def test_comment_separated_by_a_blank_line_does_not_document_the_function():
    source = "package p\n\n// License header of this file.\n\nfunc Run() int {\n\tx := 1\n\treturn x\n}\n"
    assert functions_in_source(source, "go") == []


def test_line_comment_does_not_document_a_javascript_function():
    source = "// TODO fix this later please\nfunction run() {\n  return 1;\n}\n"
    assert functions_in_source(source, "javascript") == []


def test_tsx_files_are_parsed_as_typescript(tmp_path):
    source = ("/** Render a greeting for the user. */\nexport function Hello(props: { name: string }) {\n"
              "  const text = `Hi ${props.name}`;\n  return <div>{text}</div>;\n}\n")
    (tmp_path / "hello.tsx").write_text(source, encoding="utf-8")
    (function,) = extract_functions(tmp_path)
    assert (function.name, function.language) == ("Hello", "typescript")


def test_languages_restrict_which_files_are_read(polyglot_tree):
    functions = extract_functions(polyglot_tree, ["go", "ruby"])
    assert sorted(f.language for f in functions) == ["go", "ruby"]
    assert sorted(f.language for f in extract_functions(polyglot_tree)) == LANGUAGE_NAMES


def test_file_that_does_not_parse_is_skipped(tmp_path):
    write_python_module(tmp_path, 3)
    (tmp_path / "broken.py").write_text('def bad(x):\n    """Broken function with a docstring."""\n    return (x\n', encoding="utf-8")
    assert {f.path for f in extract_functions(tmp_path)} == {"many.py"}


def test_file_over_one_megabyte_is_skipped(tmp_path):
    write_python_module(tmp_path, 3)
    write_python_module(tmp_path, 3, "big.py")
    with (tmp_path / "big.py").open("a", encoding="utf-8") as handle:
        handle.write("\n" + "# padding\n" * 110_000)
    assert {f.path for f in extract_functions(tmp_path)} == {"many.py"}


def test_symlinks_out_of_the_root_are_not_followed(tmp_path):
    outside = write_python_module(tmp_path / "outside", 3, "secret.py")
    root = write_python_module(tmp_path / "root", 3)
    os.symlink(outside, root / "linked_dir", target_is_directory=True)
    os.symlink(outside / "secret.py", root / "linked.py")
    assert {f.path for f in extract_functions(root)} == {"many.py"}


def test_max_files_stops_after_that_many_files(tmp_path):
    for name in ("a.py", "b.py", "c.py"):
        (tmp_path / name).write_text(f'def f_{name[0]}(x):\n    """Function from file {name}."""\n    y = x\n    return y\n', encoding="utf-8")
    assert [f.path for f in extract_functions(tmp_path, max_files=2)] == ["a.py", "b.py"]


def test_unknown_language_and_missing_folder_are_refused_with_a_hint(tmp_path):
    with pytest.raises(DatasetError, match="choose from"):
        extract_functions(tmp_path, ["cobol"])
    with pytest.raises(DatasetError, match="does not exist"):
        extract_functions(tmp_path / "nowhere")


@pytest.mark.parametrize("raw, cleaned", [
    ("Fetch rows.\n\n    Args:\n        table: where.\n", "Fetch rows."),
    ("Fetch rows from\n    the table.\n    :param table: where.\n    :returns: rows\n", "Fetch rows from the table."),
    ("Fetch rows.\n\n    Parameters\n    ----------\n    table : str\n", "Fetch rows."),
    ("Fetch rows from the {@link Table}.\n<p>More.\n@param t the table", "Fetch rows from the Table."),
    (":call-seq:\n  row.push(*values) -> self\n\nAppends each value to the row.", "Appends each value to the row."),
    ("@private\n@param x", ""),
])
def test_clean_docstring_keeps_the_first_paragraph_without_tags(raw, cleaned):
    assert clean_docstring(raw) == cleaned


@pytest.mark.parametrize("comment, text", [
    ("/**\n     * Fetch rows.\n     * @param t\n     */", "Fetch rows.\n@param t"),
    ("// Fetch rows\n// from the table.", "Fetch rows\nfrom the table."),
    ("# Fetch rows.", "Fetch rows."),
    ("=begin\nFetch rows.\n=end", "Fetch rows."),
])
def test_comment_markers_are_stripped(comment, text):
    assert strip_comment_markers(comment) == text


def test_drop_shared_drops_every_function_that_shares_a_docstring_or_its_code():
    def make(name: str, docstring: str, code: str) -> CodeFunction:
        return CodeFunction("m.py", "python", name, code, code, docstring, 1)

    same_doc = [make("a", "Return the value.", "a"), make("b", "return the value.", "b")]
    same_code = [make("c", "Return another value.", "c"), make("d", "Return a third value.", "c")]
    unique = [make("e", "Return the value.", "e"), make("f", "Return it now.", "f")]
    assert drop_shared(same_doc + same_code) == []
    assert drop_shared(unique) == unique


def test_code2doc_pairs_each_query_with_its_own_docstring(tmp_path):
    functions = extract_functions(write_python_module(tmp_path, 30))
    dataset = build_benchmark(functions, "toy", "code2doc", n_queries=10)
    by_code = {f.code: f for f in functions}
    assert len(dataset.queries) == 10 and len(dataset.documents) == 30
    for query in dataset.queries:
        (positive,) = dataset.qrels.positives(query.id)
        assert dataset.document(positive).text == by_code[query.text].docstring
    assert len({d.id for d in dataset.documents}) == 30 and len({q.id for q in dataset.queries}) == 10


def test_doc2code_queries_are_docstrings_and_documents_code_without_them(tmp_path):
    functions = extract_functions(write_python_module(tmp_path, 30))
    dataset = build_benchmark(functions, "toy", "doc2code", n_queries=10)
    by_doc = {f.docstring: f for f in functions}
    for query in dataset.queries:
        (positive,) = dataset.qrels.positives(query.id)
        assert dataset.document(positive).text == by_doc[query.text].code_without_doc
        assert query.text not in dataset.document(positive).text


def test_languages_are_recorded_on_every_query_and_document(polyglot_tree):
    dataset = build_benchmark(extract_functions(polyglot_tree), "poly", "code2doc", n_queries=7)
    assert dataset.languages == LANGUAGE_NAMES
    assert all(q.language for q in dataset.queries) and all(d.language for d in dataset.documents)
    assert {dataset.query_language(q.id) for q in dataset.queries} == set(LANGUAGE_NAMES)


def test_stripped_queries_never_contain_their_own_docstring(polyglot_tree, pytest_package_functions):
    _, package_functions = pytest_package_functions
    functions = extract_functions(polyglot_tree) + package_functions
    kept = build_benchmark(functions, "with-doc", "code2doc", n_queries=len(functions))
    stripped = build_benchmark(functions, "no-doc", "code2doc", n_queries=len(functions), strip_docstring_from_query=True)

    def containing_own_doc(dataset):
        return [q.id for q in dataset.queries
                if dataset.document(dataset.qrels.positives(q.id)[0]).text in " ".join(q.text.split())]

    assert len(containing_own_doc(kept)) > len(functions) // 2  # the check can fail: unstripped queries do contain theirs
    assert containing_own_doc(stripped) == []


def test_same_seed_gives_the_same_benchmark_and_another_seed_another(tmp_path):
    functions = extract_functions(write_python_module(tmp_path, 60))
    first = build_benchmark(functions, "toy", "code2doc", n_queries=10, seed=7)
    again = build_benchmark(list(reversed(functions)), "toy", "code2doc", n_queries=10, seed=7)
    other = build_benchmark(functions, "toy", "code2doc", n_queries=10, seed=8)
    assert (first.queries_hash, first.corpus_hash, first.qrels) == (again.queries_hash, again.corpus_hash, again.qrels)
    assert [q.id for q in first.queries] != [q.id for q in other.queries]


def test_max_documents_caps_the_corpus_and_keeps_every_positive(tmp_path):
    functions = extract_functions(write_python_module(tmp_path, 60))
    dataset = build_benchmark(functions, "toy", "code2doc", n_queries=10, max_documents=25)
    assert len(dataset.documents) == 25
    assert all(dataset.qrels.positives(q.id)[0] in dataset.doc_index for q in dataset.queries)


def test_bad_benchmark_requests_are_refused(tmp_path):
    functions = extract_functions(write_python_module(tmp_path, 5))
    with pytest.raises(DatasetError, match="direction"):
        build_benchmark(functions, "toy", "sideways", n_queries=2)
    with pytest.raises(DatasetError, match="at least one"):
        build_benchmark(functions, "toy", "code2doc", n_queries=0)
    with pytest.raises(DatasetError, match="No documented functions"):
        build_benchmark([], "toy", "code2doc")
    with pytest.raises(DatasetError, match="not allowed"):
        build_benchmark(functions, "../escape", "code2doc")


def test_build_from_tree_writes_a_dataset_that_loads(polyglot_tree, tmp_path):
    built = build_from_tree(polyglot_tree, "poly-doc2code", "doc2code", n_queries=5, seed=3, out_dir=tmp_path)
    loaded = load_dataset(tmp_path / "poly-doc2code")
    assert (loaded.queries, loaded.documents, loaded.qrels) == (built.queries, built.documents, built.qrels)
    meta = json.loads((tmp_path / "poly-doc2code" / "meta.json").read_text())
    assert meta["direction"] == "doc2code" and meta["seed"] == 3 and meta["languages"] == loaded.languages
    assert meta["source_root"] == str(polyglot_tree) and meta["queries"] == 5 and meta["functions"] == 7


def test_installed_python_package_gives_valid_python_pairs(pytest_package_functions):
    root, functions = pytest_package_functions
    assert len(functions) >= 30
    for function in functions:
        assert len(function.docstring.split()) >= 3 and (root / function.path).is_file()
        ast.parse(function.code)
        ast.parse(function.code_without_doc)
    assert len({f.docstring.casefold() for f in functions}) == len(functions)


# Real trees of other languages, from Debian packages (ruby, node-lodash, php-symfony-console) when installed.
REAL_TREES = [
    ("ruby", Path("/usr/lib/ruby"), "#", 80),
    ("javascript", Path("/usr/share/nodejs/lodash"), "/**", None),
    ("php", Path("/usr/share/php/Symfony/Component/Console"), "/**", None),
]


@pytest.mark.parametrize("language, root, marker, max_files", REAL_TREES, ids=[t[0] for t in REAL_TREES])
def test_real_source_tree_gives_documented_pairs(language, root, marker, max_files):
    if not root.is_dir():
        pytest.skip(f"{root} is not installed (Debian package for {language})")
    functions = extract_functions(root, [language], max_files=max_files)
    assert len(functions) >= 20
    for function in functions:
        assert function.language == language and len(function.docstring.split()) >= 3
        assert function.code.startswith(marker) and function.code.endswith(function.code_without_doc)
    assert len({f.docstring.casefold() for f in functions}) == len(functions)
