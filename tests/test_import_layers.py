"""The package's shape: imports point down the layers only, no two modules import each other, and no
module grows past ``MAX_MODULE_LINES`` without a stated reason.

Every ``import``/``from ... import`` of ``graphrec_lab.*`` counts, at module level, inside functions and
under ``if TYPE_CHECKING:`` alike (a cycle hidden in a function is still a cycle in the design). Importing
``a.b.c`` from outside ``a.b`` also runs ``a/b/__init__.py``, so that edge is counted too: a package
``__init__`` that re-exports its submodules is part of every import of them.

The layers, top to bottom, are ``LAYERS`` (docs/architecture.md explains them). A module may import
modules of its own layer or of a lower one; the test fails naming the importing module, the imported one,
their layers and the line.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = "graphrec_lab"
PACKAGE_DIR = Path(__file__).resolve().parents[1] / PACKAGE

# (layer name, module prefixes), top to bottom. A module belongs to the layer of its longest matching
# prefix; the bare package name matches only graphrec_lab/__init__.py (the public facade).
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("entry", ("graphrec_lab", "graphrec_lab.__main__", "graphrec_lab.cli", "graphrec_lab.inference.cli")),
    ("studies", ("graphrec_lab.studies", "graphrec_lab.sweeps", "graphrec_lab.reporting", "graphrec_lab.privacy.audit",
                 "graphrec_lab.inference", "graphrec_lab.explain")),
    ("experiment", ("graphrec_lab.experiment", "graphrec_lab.build", "graphrec_lab.distributed", "graphrec_lab.rank")),
    ("training", ("graphrec_lab.training", "graphrec_lab.privacy.dp_sgd", "graphrec_lab.privacy.federated")),
    ("models", ("graphrec_lab.models",)),
    ("ops", ("graphrec_lab.ops",)),
    ("data", ("graphrec_lab.data", "graphrec_lab.evaluation", "graphrec_lab.privacy", "graphrec_lab.privacy.edge_dp")),
    ("utilities", ("graphrec_lab.tracking", "graphrec_lab.config")),
)

# Modules allowed to import the package inside functions: each keeps its import light on purpose.
FUNCTION_LEVEL_ALLOWED = {
    "graphrec_lab.cli": "each sub-command imports only what it runs (`graphrec-lab report` needs no torch)",
    "graphrec_lab.inference.cli": "recommend/export/explain each import only what they run (explain: PyG's explainers, Captum)",
    "graphrec_lab.studies.run": "training (torch) is imported only when a cell trains, so `study --report-only` stays light",
}

# Small modules, one job each; a longer one is listed here with the reason.
MAX_MODULE_LINES = 500
LONG_MODULES: dict[str, str] = {}


@dataclass(frozen=True)
class Edge:
    importer: str
    imported: str
    line: int
    in_function: bool


def module_names(package_dir: Path, package: str = PACKAGE) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` under ``package_dir`` (``pkg/__init__.py`` is ``pkg``)."""
    out = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = [package, *path.relative_to(package_dir).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _owning_module(name: str, modules: dict[str, Path]) -> str | None:
    """The module that ``name`` (a module, or a module's attribute) lives in."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def import_edges(modules: dict[str, Path], package: str = PACKAGE) -> list[Edge]:
    """Every import of a package module by a package module, with the parent packages it also runs."""
    edges = []
    for importer, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        in_function = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                in_function.update(id(sub) for sub in ast.walk(node) if sub is not node)
        is_package = path.name == "__init__.py"
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = importer if is_package else importer.rpartition(".")[0]
                    for _ in range(node.level - 1):
                        anchor = anchor.rpartition(".")[0]
                    base = f"{anchor}.{base}" if base else anchor
                # `from pkg import submodule` imports the submodule; `from mod import name` the module.
                names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
            for name in names:
                if name != package and not name.startswith(package + "."):
                    continue
                target = _owning_module(name, modules)
                if target is None or target == importer:
                    continue
                # Parent packages run on import, except those the importer already sits in.
                inside = set(_ancestors(importer)) | {importer}
                for imported in [*(a for a in _ancestors(target) if a not in inside), target]:
                    edges.append(Edge(importer, imported, node.lineno, id(node) in in_function))
    return edges


def layer_of(module: str, layers: tuple[tuple[str, tuple[str, ...]], ...] = LAYERS, package: str = PACKAGE) -> int | None:
    """Index into ``layers`` (0 = top) of the longest prefix matching ``module``, or None."""
    best: tuple[int, int] | None = None  # (prefix length, layer)
    for index, (_, prefixes) in enumerate(layers):
        for prefix in prefixes:
            matches = module == prefix or (prefix != package and module.startswith(prefix + "."))
            if matches and (best is None or len(prefix) > best[0]):
                best = (len(prefix), index)
    return None if best is None else best[1]


def layer_violations(edges: list[Edge], layers: tuple[tuple[str, tuple[str, ...]], ...] = LAYERS, package: str = PACKAGE) -> list[str]:
    """One message per import of a higher layer."""
    out = []
    for e in edges:
        src, dst = layer_of(e.importer, layers, package), layer_of(e.imported, layers, package)
        if src is not None and dst is not None and dst < src:
            out.append(
                f"{e.importer} (layer {layers[src][0]}) imports {e.imported} (layer {layers[dst][0]}, higher) "
                f"at line {e.line}"
            )
    return sorted(set(out))


def import_cycles(edges: list[Edge]) -> list[list[str]]:
    """One cycle path per strongly connected component of more than one module (Tarjan); breaking that
    cycle may leave a smaller one, which the next run reports."""
    graph: dict[str, set[str]] = {}
    for e in edges:
        graph.setdefault(e.importer, set()).add(e.imported)
        graph.setdefault(e.imported, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(_cycle_path(sorted(component), graph))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return components


def _cycle_path(component: list[str], graph: dict[str, set[str]]) -> list[str]:
    """A closed path ``a -> b -> ... -> a`` through part of a strongly connected component."""
    members = set(component)
    start = component[0]
    parents = {start: ""}
    frontier = [start]
    while frontier:  # breadth-first back to start
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & members):
                if w == start:
                    path = [v]
                    while parents[path[-1]]:
                        path.append(parents[path[-1]])
                    return [*reversed(path), start]
                if w not in parents:
                    parents[w] = v
                    nxt.append(w)
        frontier = nxt
    return component


def _describe(path: list[str], edges: list[Edge]) -> str:
    lines = {(e.importer, e.imported): e.line for e in edges}
    return " -> ".join(f"{a} (line {lines[(a, b)]})" for a, b in zip(path, path[1:])) + f" -> {path[-1]}"


# ---------------------------------------------------------------------------------------------- tests


@pytest.fixture(scope="module")
def edges() -> list[Edge]:
    return import_edges(module_names(PACKAGE_DIR))


def test_every_module_has_a_layer() -> None:
    missing = [m for m in module_names(PACKAGE_DIR) if layer_of(m) is None]
    assert not missing, f"modules outside every layer of LAYERS (add them there and to docs/architecture.md): {missing}"


def test_imports_point_down_the_layers(edges: list[Edge]) -> None:
    violations = layer_violations(edges)
    assert not violations, "imports of a higher layer:\n  " + "\n  ".join(violations)


def test_no_import_cycles(edges: list[Edge]) -> None:
    cycles = import_cycles(edges)
    assert not cycles, "import cycles:\n  " + "\n  ".join(_describe(c, edges) for c in cycles)


def test_package_imports_are_module_level(edges: list[Edge]) -> None:
    """A function-level import of the package hides a cycle or a layering problem; only the modules of
    ``FUNCTION_LEVEL_ALLOWED`` keep some, for import speed."""
    hidden = sorted({f"{e.importer} imports {e.imported} inside a function (line {e.line})" for e in edges if e.in_function and e.importer not in FUNCTION_LEVEL_ALLOWED})
    assert not hidden, "\n  ".join(["function-level imports of the package:", *hidden])


def test_modules_are_small() -> None:
    long = {
        name: n for name, path in module_names(PACKAGE_DIR).items()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES and name not in LONG_MODULES
    }  # fmt: skip
    assert not long, f"modules over {MAX_MODULE_LINES} lines (split them by job, or list them with a reason): {long}"
    assert set(LONG_MODULES) <= set(module_names(PACKAGE_DIR)), "LONG_MODULES names a module that no longer exists"


def test_checker_catches_a_cycle_and_an_upward_import(tmp_path: Path) -> None:
    """The checks themselves on a toy package: a model importing training (upward) and two data modules
    importing each other, one of them inside a function."""
    pkg = tmp_path / "toy"
    files = {
        "__init__.py": "",
        "data/__init__.py": "",
        "data/a.py": "from toy.data import b\n",
        "data/b.py": "def f():\n    from toy.data.a import x\n",
        "models/__init__.py": "",
        "models/m.py": "import toy.training.t\n",
        "training/__init__.py": "",
        "training/t.py": "from ..data import a\n",
    }
    for name, text in files.items():
        (pkg / name).parent.mkdir(parents=True, exist_ok=True)
        (pkg / name).write_text(text)
    layers = (("training", ("toy.training",)), ("models", ("toy.models",)), ("data", ("toy.data",)))
    toy_edges = import_edges(module_names(pkg, "toy"), "toy")
    assert layer_violations(toy_edges, layers, "toy") == [
        "toy.models.m (layer models) imports toy.training (layer training, higher) at line 1",
        "toy.models.m (layer models) imports toy.training.t (layer training, higher) at line 1",
    ]
    cycles = import_cycles(toy_edges)
    assert cycles == [["toy.data.a", "toy.data.b", "toy.data.a"]]
    assert "toy.data.a (line 1) -> toy.data.b (line 2) -> toy.data.a" == _describe(cycles[0], toy_edges)
    assert [e.in_function for e in toy_edges if e.importer == "toy.data.b"] == [True]
    # the relative import resolves to the package's module
    assert any(e.importer == "toy.training.t" and e.imported == "toy.data.a" for e in toy_edges)
