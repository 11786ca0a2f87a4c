"""``python -m core`` imports only the group of the command it runs: the table that says which group that is."""
from __future__ import annotations

import argparse
import importlib
import subprocess
import sys

import pytest

from core.cli.main import COMMAND_GROUPS, _groups_for, build_parser
from core.workspace import PROJECT_ROOT


def registered(group: str) -> set[str]:
    parser = argparse.ArgumentParser()
    importlib.import_module(f"core.cli.{group}").register(parser.add_subparsers())
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return set(action.choices)


@pytest.mark.parametrize("group", list(COMMAND_GROUPS))
def test_the_table_names_exactly_the_commands_each_group_registers(group):
    assert set(COMMAND_GROUPS[group]) == registered(group)


def test_a_command_registers_its_own_group_and_anything_else_registers_all():
    assert _groups_for(["search-corpus", "--dataset", "x", "q"]) == ["retrieval"]
    assert _groups_for(["--workspace", "evaluate", "--data-dir", "finetune", "search", "--dataset", "x", "q"]) == ["retrieval"]
    assert _groups_for(["--help"]) == list(COMMAND_GROUPS) and _groups_for(["evaluat"]) == list(COMMAND_GROUPS)
    assert build_parser(["audit"], every_command=False).parse_args(["audit", "--train", "a", "--eval", "b"]).command == "audit"


def test_search_corpus_imports_neither_torch_nor_lancedb_nor_the_training_code(tmp_path):
    script = ("import sys\nfrom core.cli.main import build_parser\n"
              "build_parser(['search-corpus'], every_command=False)\n"
              "print(sorted(m for m in ('torch', 'lancedb', 'scipy.stats', 'core.training.finetune', 'pandas') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", script], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
