"""The shape of the package, checked from its source: the direction of imports, no cycles, and
TensorFlow only in ``modbot/ml``. Static (``ast``), so a lazy import inside a function counts too.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from support import REPO

PACKAGE = REPO / "modbot"
#: Wings and what each may import from the rest of modbot (stage modules are flat in modbot/).
FORBIDDEN = {
    # the daemon's stages know nothing of the wings
    "modbot.daemon": ("modbot.learning", "modbot.cli", "modbot.ml", "modbot.queries", "modbot.sandbox"),
    "modbot.stream": ("modbot.learning", "modbot.cli", "modbot.ml"),
    "modbot.images": ("modbot.learning", "modbot.cli", "modbot.ml"),
    "modbot.judge": ("modbot.learning", "modbot.cli", "modbot.ml"),
    "modbot.record": ("modbot.learning", "modbot.cli", "modbot.ml"),
    "modbot.act": ("modbot.learning", "modbot.cli", "modbot.ml"),
    # query code never renders or parses command lines
    "modbot.queries": ("modbot.cli", "click", "rich"),
    "modbot.ml": ("modbot.cli", "modbot.learning"),
    "modbot.learning": ("modbot.cli",),
}


def module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def modbot_modules() -> dict[str, Path]:
    files = [p for p in PACKAGE.rglob("*.py") if "sample" not in p.parts]
    return {module_name(p): p for p in files}


def imports_of(path: Path, *, top_level_only: bool) -> set[str]:
    """Absolute names imported by the file (``from .x import y`` resolved against its package)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
        elif top_level_only and isinstance(node, ast.If | ast.Try) and not _type_checking(node):
            for sub in ast.walk(node):
                if isinstance(sub, ast.Import | ast.ImportFrom):
                    found.update(imports_of_node(sub))
    return found


def _type_checking(node: ast.AST) -> bool:
    """``if TYPE_CHECKING:`` blocks import nothing at run time."""
    test = getattr(node, "test", None)
    return isinstance(test, ast.Name | ast.Attribute) and "TYPE_CHECKING" in ast.unparse(test)


def imports_of_node(node: ast.Import | ast.ImportFrom) -> set[str]:
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names}
    return {node.module or ""}


def test_tensorflow_and_keras_are_imported_only_in_the_ml_wing():
    offenders = []
    for name, path in modbot_modules().items():
        if name.startswith("modbot.ml"):
            continue
        heavy = {m for m in imports_of(path, top_level_only=False)
                 if m.split(".")[0] in ("tensorflow", "keras")}
        if heavy:
            offenders.append((name, sorted(heavy)))
    assert offenders == []


@pytest.mark.parametrize("prefix", sorted(FORBIDDEN))
def test_imports_point_one_way(prefix):
    bad = []
    for name, path in modbot_modules().items():
        if name != prefix and not name.startswith(prefix + "."):
            continue
        for imported in imports_of(path, top_level_only=False):
            if any(imported == f or imported.startswith(f + ".") for f in FORBIDDEN[prefix]):
                bad.append((name, imported))
    assert bad == []


def test_no_import_cycles_between_modules():
    modules = modbot_modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for imported in imports_of(path, top_level_only=True):
            # "from modbot.x import y" names module modbot.x.y when that is a module, else modbot.x
            while imported and imported not in modules:
                imported = imported.rpartition(".")[0]
            if imported and imported != name and not name.startswith(imported + "."):
                targets.add(imported)
        graph[name] = targets
    cycles = []
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt] if nxt in stack else [node, nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


@pytest.mark.parametrize("argv", [
    ["-c", "import modbot"],
    ["-m", "modbot.cli", "--help"],
    ["-m", "modbot.cli", "review", "--help"],
    ["-m", "modbot.cli", "report", "--help"],
    ["-m", "modbot.cli", "medium", "--help"],
])
def test_commands_that_neither_train_nor_classify_never_import_tensorflow(argv):
    code = ("import runpy, sys; sys.argv = {argv!r}; "
            "import atexit; atexit.register(lambda: print('TF' if 'tensorflow' in sys.modules "
            "or 'keras' in sys.modules else 'NO_TF'))\n"
            "{body}")
    if argv[0] == "-c":
        body = argv[1]
    else:
        body = f"sys.argv = ['modbot'] + {argv[2:]!r}\ntry:\n    runpy.run_module({argv[1]!r}, run_name='__main__')\nexcept SystemExit:\n    pass"
    proc = subprocess.run([sys.executable, "-c", code.format(argv=argv, body=body)],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.stdout.strip().endswith("NO_TF"), proc.stdout[-500:] + proc.stderr[-2000:]
