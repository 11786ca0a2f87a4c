"""One benchmark from many source trees: functions pooled with their tree as path prefix, cross-tree copies dropped;
the trees this machine holds (installed packages, Debian's sources) found for --all-sources."""
from __future__ import annotations

import json
import zipfile
from dataclasses import replace
from pathlib import Path

from core.cli.main import main
from core.data.source_benchmark import build_from_trees, extract_functions_from_trees, tree_labels
from core.data.source_trees import DEBIAN_TREES, installed_package_folders, locate_tree, machine_source_trees
from core.workspace import Workspace


def write_module(folder: Path, verb: str, count: int, shared: bool = True) -> Path:
    """``count`` documented functions whose docstrings use ``verb``, plus (when ``shared``) one function every tree has."""
    (folder / "pkg").mkdir(parents=True, exist_ok=True)
    blocks = [f'def {verb}_{i}(x):\n    """{verb.title()} record number {i} into the output."""\n    y = x + {i}\n    return y\n'
              for i in range(count)]
    if shared:
        blocks.append('def vendored(x):\n    """A helper copied into every tree verbatim."""\n    y = x * 2\n    return y\n')
    (folder / "pkg" / "mod.py").write_text("\n\n".join(blocks), encoding="utf-8")
    return folder


def test_trees_are_pooled_under_their_labels_and_cross_tree_copies_are_dropped(tmp_path):
    first = write_module(tmp_path / "a" / "src", "parse", 4)
    second = write_module(tmp_path / "b" / "src", "render", 3)
    assert tree_labels([first, second]) == ["src-1", "src-2"]
    functions = extract_functions_from_trees([first, second], ["python"])
    assert sorted(f.id for f in functions) == sorted(
        [f"src-1/pkg/mod.py:{1 + 6 * i}:parse_{i}" for i in range(4)] + [f"src-2/pkg/mod.py:{1 + 6 * i}:render_{i}" for i in range(3)])
    assert not any(f.name == "vendored" for f in functions)  # in both trees: two right answers, so neither is kept


def test_a_benchmark_from_two_trees_records_both_roots(tmp_path):
    first = write_module(tmp_path / "go-tree", "parse", 4, shared=False)
    second = write_module(tmp_path / "java-tree", "render", 3, shared=False)
    dataset = build_from_trees([first, second], "two-trees", "code2doc", n_queries=5, out_dir=tmp_path / "datasets")
    assert len(dataset.documents) == 7 and len(dataset.queries) == 5
    meta = json.loads((tmp_path / "datasets" / "two-trees" / "meta.json").read_text())
    assert meta["source_roots"] == [str(first), str(second)] and meta["tree_labels"] == ["go-tree", "java-tree"]
    assert meta["functions"] == 7


def test_build_benchmark_takes_root_more_than_once(tmp_path, capsys):
    first = write_module(tmp_path / "one", "parse", 4, shared=False)
    second = write_module(tmp_path / "two", "render", 3, shared=False)
    code = main(["--workspace", str(tmp_path / "ws"), "build-benchmark", "--root", str(first), "--root", str(second),
                 "--name", "pooled", "--queries", "6"])
    out = capsys.readouterr().out
    assert code == 0 and out.startswith("built pooled: 6 queries, 7 documents (python)")


def test_installed_package_folders_hold_the_packages_this_interpreter_imports():
    import numpy

    folders = installed_package_folders()
    assert Path(numpy.__file__).resolve().parents[1] in folders
    assert not any(other in folder.parents for folder in folders for other in folders)  # none read twice


def test_machine_source_trees_lists_installed_packages_and_accounts_for_every_debian_tree(tmp_path):
    found, missing = machine_source_trees(Workspace.open(tmp_path / "ws"))
    assert [folder for folder, _ in found[:len(installed_package_folders())]] == installed_package_folders()
    debian_origins = [origin for _, origin in found[len(installed_package_folders()):]] + [tree.origin for tree in missing]
    assert sorted(debian_origins) == sorted(tree.origin for tree in DEBIAN_TREES)
    assert all(folder.is_dir() for folder, _ in found)


def test_build_benchmark_without_a_root_or_all_sources_says_what_to_give(tmp_path, capsys):
    code = main(["--workspace", str(tmp_path / "ws"), "build-benchmark", "--name", "nothing"])
    error = capsys.readouterr().err
    assert code == 2 and "--root" in error and "--all-sources" in error and error.count("\n") == 1


def test_the_java_tree_unpacks_the_java_files_of_every_module_of_the_jdk_zip_once(tmp_path):
    archive = tmp_path / "jdk" / "lib" / "src.zip"
    archive.parent.mkdir(parents=True)
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("java.base/java/util/Lists.java", "class Lists {}")
        zipped.writestr("java.desktop/java/awt/Frame.java", "class Frame {}")
        zipped.writestr("jdk.compiler/com/sun/tools/javac/Main.java", "class Main {}")
        zipped.writestr("java.base/META-INF/notes.txt", "not source")
    workspace = Workspace.open(tmp_path / "ws")
    (java,) = [replace(tree, pattern=str(archive)) for tree in DEBIAN_TREES if tree.language == "java"]
    folder = locate_tree(java, workspace)
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == [
        "java.base/java/util/Lists.java", "java.desktop/java/awt/Frame.java", "jdk.compiler/com/sun/tools/javac/Main.java"]
    assert locate_tree(java, workspace) == folder  # reused, not unpacked again


def test_the_go_standard_library_tree_is_found_under_any_go_version_folder(tmp_path):
    (go_stdlib,) = [replace(tree, pattern=tree.pattern.replace("/usr/share", str(tmp_path)))
                    for tree in DEBIAN_TREES if "golang-1.19-src" in tree.origin]
    workspace = Workspace.open(tmp_path / "ws")
    (tmp_path / "go-doc" / "src").mkdir(parents=True)  # not a version: not the standard library
    assert locate_tree(go_stdlib, workspace) is None
    (tmp_path / "go-1.19" / "src" / "net" / "http").mkdir(parents=True)
    (tmp_path / "go-1.19" / "src" / "net" / "http" / "client.go").write_text("package http\n")
    assert locate_tree(go_stdlib, workspace) == tmp_path / "go-1.19" / "src"
