"""The house: core/ packages import only downward along the data flow, never in a circle, never private names."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "core"
# Data flows one way: a package may import from its own layer and the layers before it, never after.
LAYERS = ["errors", "workspace", "progress", "data", "index", "retrieval", "evaluation", "training", "cli"]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> list[tuple[str, list[str]]]:
    """(module, imported names) for every ``from core... import`` and ``import core...`` in a file, lazy ones included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in ("core", "ui"):
            found.append((node.module, [alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names if alias.name.split(".")[0] == "core"]
    return found


def layer(module: str) -> int:
    parts = module.split(".")
    if len(parts) < 2 or parts[1] in ("__main__",):
        return len(LAYERS)
    return LAYERS.index(parts[1])


def core_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in CORE.rglob("*.py"):
        source = module_name(path)
        targets = graph.setdefault(source, set())
        for module, names in imports_of(path):
            if module == "core" or module.startswith("core."):
                targets.add(module)
                for name in names:  # ``from core.cli import data`` imports the submodule core.cli.data
                    if (CORE.parent / (module.replace(".", "/") + f"/{name}.py")).exists():
                        targets.add(f"{module}.{name}")
    return graph


def test_every_core_module_sits_in_a_named_layer():
    for module in core_graph():
        if module not in ("core", "core.__main__"):
            assert module.split(".")[1] in LAYERS, f"{module} is in no layer of {LAYERS}"


def test_core_packages_import_only_their_own_layer_or_earlier_ones():
    upward = [(source, target) for source, targets in core_graph().items() for target in targets
              if source not in ("core", "core.__main__") and target != "core" and layer(target) > layer(source)]
    assert upward == [], f"imports against the data flow: {upward}"


def test_core_modules_import_each_other_in_no_circle():
    graph = core_graph()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph.get(node, ())):
            if target not in graph:
                continue
            if state.get(target) == 1:
                cycles.append(path[path.index(target):] + [target] if target in path else [node, target])
            elif target not in state:
                visit(target, path + [target])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == [], f"import circles: {cycles}"


def test_no_private_name_is_imported_from_another_module():
    offenders = []
    for folder in ("core", "pages", "ui", "bench", "scripts"):
        for path in (ROOT / folder).rglob("*.py"):
            for module, names in imports_of(path):
                offenders += [f"{path.relative_to(ROOT)}: {module}.{name}" for name in names if name.startswith("_")]
    offenders += [f"app.py: {module}.{name}" for module, names in imports_of(ROOT / "app.py") for name in names if name.startswith("_")]
    assert offenders == []


def test_each_subpackage_init_holds_one_docstring_line_and_nothing_else():
    for init in CORE.glob("*/__init__.py"):
        tree = ast.parse(init.read_text())
        assert len(tree.body) == 1 and isinstance(tree.body[0], ast.Expr), f"{init} holds more than its docstring"
        assert "\n" not in ast.get_docstring(tree).strip(), f"{init}'s docstring is more than one line"


def test_tests_mirror_the_core_packages():
    for package in (p for p in CORE.iterdir() if p.is_dir() and (p / "__init__.py").exists()):
        assert (ROOT / "tests" / package.name).is_dir(), f"tests/{package.name}/ missing for core/{package.name}/"
