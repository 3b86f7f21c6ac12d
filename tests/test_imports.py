"""The package layout of DESIGN.md: imports go down the chain only, never in a circle, and no package
below the runner imports it. Read from the source (every import statement, inside functions too), so a
cycle hidden behind a lazy import is found as well."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("tasks", "ratenets", "spiking", "fixedpoints", "transfer", "baselines", "pipeline")
# What each package may import of the project (DESIGN.md, "Layout").
ALLOWED = {
    "tasks": set(),
    "fixedpoints": set(),
    "ratenets": {"tasks"},
    "spiking": {"ratenets", "tasks"},
    "transfer": {"spiking", "ratenets", "tasks", "fixedpoints"},
    "baselines": {"spiking", "ratenets", "tasks", "fixedpoints"},
    "pipeline": set(PACKAGES),
}


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_imports(path: Path, root: Path = ROOT) -> set[str]:
    """Project modules ``path`` imports (absolute names), wherever the import statement stands."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module
            found.add(mod)
            found |= {f"{mod}.{a.name}" for a in node.names}  # ``from pkg import module``
    modules = {module_name(p, root) for p in sources(root)}
    return {m for m in found if m in modules and m != name}


def sources(root: Path = ROOT):
    for package in PACKAGES:
        yield from sorted((root / package).rglob("*.py"))


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    return {module_name(p, root): project_imports(p, root) for p in sources(root)}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of module names, or None. A package's ``__init__`` importing its own submodules is
    the normal shape of a package, not a cycle, so edges from a package to its own children are left out."""
    def edges(m):
        return {d for d in graph.get(m, ()) if not d.startswith(m + ".")}

    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for d in sorted(edges(m)):
            if state.get(d) == 1:
                return stack[stack.index(d):] + [d]
            if d not in state and (c := visit(d)):
                return c
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (c := visit(m)):
            return c
    return None


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, " -> ".join(cycle)


ENTRY_SCRIPTS = {"transfer.run"}  # the documented ``python transfer/run.py``: a shim over the runner, never imported


def test_imports_go_down_the_chain_only():
    bad = []
    for module, deps in import_graph().items():
        if module in ENTRY_SCRIPTS:
            continue
        top = module.split(".")[0]
        for d in deps:
            if d.split(".")[0] != top and d.split(".")[0] not in ALLOWED[top]:
                bad.append(f"{module} imports {d}")
    assert not bad, "; ".join(sorted(bad))


def test_the_checks_find_what_they_look_for(tmp_path):
    # A lazy two-module cycle and an upward import, in a throwaway tree laid out like the project.
    for package in PACKAGES:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "spiking" / "a.py").write_text("def f():\n    from .b import g\n")
    (tmp_path / "spiking" / "b.py").write_text("from spiking.a import f\nimport transfer\n")
    graph = import_graph(tmp_path)
    assert find_cycle(graph) in (["spiking.a", "spiking.b", "spiking.a"], ["spiking.b", "spiking.a", "spiking.b"])
    assert "transfer" in graph["spiking.b"]
