"""The package's import graph: no cycles (lazy imports inside functions count too: one that only
dodges a cycle is still a cycle), the core names no provider, and `import imagegen` stays light."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "diffusers", "transformers", "ray", "fastapi", "starlette", "uvicorn", "replicate")


def _modules() -> dict[str, Path]:
    found = {}
    for base, prefix in ((ROOT / "imagegen", "imagegen"), (ROOT / "providers", "imagegen.providers")):
        for path in base.rglob("*.py"):
            parts = list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([prefix, *parts])] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Modules of the package that ``name`` imports at run time, at any depth of its code."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    targets: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for other in child.orelse:
                    visit(other)
                continue
            if isinstance(child, ast.Import):
                targets.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")
                    base = base[: len(base) - child.level + 1]
                    stem = ".".join(base + ([child.module] if child.module else []))
                else:
                    stem = child.module or ""
                targets.add(stem)
                targets.update(f"{stem}.{alias.name}" for alias in child.names)
            visit(child)

    visit(ast.parse(path.read_text()))
    resolved = set()
    for target in targets:
        while target and target not in modules:
            target = target.rpartition(".")[0]
        # importing a submodule runs its parents' __init__ too, but that edge is the parent's
        # own business; a module importing its own package is not a cycle to care about
        if target and target != name and not name.startswith(target + "."):
            resolved.add(target)
    return resolved


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def strong(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for other in graph.get(node, ()):
            if other not in index:
                strong(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in graph:
        if node not in index:
            strong(node)
    return found


def test_the_graph_sees_lazy_imports():
    graph = _graph()
    assert "imagegen.prompt.midjourney" in graph["imagegen.request"]  # imported inside a method


def test_no_import_cycles_inside_the_package():
    assert _cycles(_graph()) == []


def test_the_core_imports_no_adapter():
    graph = _graph()
    core = [m for m in graph if not m.startswith("imagegen.providers") and not m.startswith("imagegen.testing")]
    for module in core:
        adapters = {t for t in graph[module] if t.startswith("imagegen.providers.") and t != "imagegen.providers.base"}
        assert not adapters, f"{module} imports {sorted(adapters)}"


def test_providers_know_nothing_of_each_other():
    graph = _graph()
    for module, targets in graph.items():
        if module.startswith("imagegen.providers.") and module.count(".") >= 3:
            own = module.split(".")[2]
            others = {t for t in targets if t.startswith("imagegen.providers.")
                      and t.count(".") >= 2 and t.split(".")[2] not in (own, "base")}
            assert not others, f"{module} imports {sorted(others)}"


def test_the_emulator_shares_no_code_with_the_adapter_it_checks():
    graph = _graph()
    for module, targets in graph.items():
        if module.startswith("imagegen.testing"):
            assert not {t for t in targets if t.startswith("imagegen.providers")}, module


def test_import_imagegen_loads_nothing_heavy():
    code = ("import sys, imagegen, imagegen.client, imagegen.providers.base\n"
            f"print([m for m in {HEAVY!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr


def test_every_error_class_is_in_the_one_tree():
    """Errors raised on purpose are defined in imagegen/errors.py, drawn in its docstring."""
    import imagegen.errors as errors

    tree = {name for name, value in vars(errors).items()
            if isinstance(value, type) and issubclass(value, errors.ImageGenError)}
    assert all(name in errors.__doc__ for name in tree)
    for name, path in _modules().items():
        if name == "imagegen.errors":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                bases = {getattr(b, "id", getattr(b, "attr", "")) for b in node.bases}
                assert not bases & tree, f"{name}.{node.name} derives from {sorted(bases & tree)} outside errors.py"
    assert not hasattr(errors, "CancelledError")  # it shadowed asyncio's
