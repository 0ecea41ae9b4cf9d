"""The shape of the package: layers that only point down (every import, inside functions too), no
import cycle, no module past the size one reads in a sitting."""
from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pscl

ROOT = Path(pscl.__file__).parent
MAX_LINES = 300

# The layer order, lowest first: a module may import its own unit, units of lower layers, and units of its own
# layer as long as the units form no cycle. A unit is a top-level module (pscl.files) or a package (pscl.data).
LAYERS = (
    ("errors", "files", "cpu", "provenance", "distributed", "lock", "runtime", "profiles"),  # plumbing
    ("nn", "data"),  # the network; micrographs, masks, their metadata (data bar, calibration), crops, views
    ("losses", "metrics", "run_folder", "checkpoints"),
    ("methods",),  # the pretraining methods
    ("train",),  # fine-tuning, pretraining, semi-supervised fine-tuning, the Lightning set-up
    ("inference",),  # tiled prediction, evaluation, export
    ("metallography", "studies"),  # phase fractions and reports; probe, suggest, guidance diagnostics
    ("bench",),
    ("api",),
    ("app",),  # the page: its server, training jobs, tiles
    ("cli",),
)
RANK = {unit: rank for rank, units in enumerate(LAYERS) for unit in units}


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""  # "": the package's own __init__ (the version, lazy API names)


def import_graph(root: Path) -> dict[str, set[str]]:
    """Every pscl module -> the pscl modules it imports anywhere in its text (functions included)."""
    files = {_module_name(p, root): p for p in root.rglob("*.py")}
    graph = {}
    for name, path in files.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # `from pscl.cli import data` imports the submodule pscl.cli.data
                names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in files else node.module
                         for a in node.names]
            else:
                continue
            found |= {n for n in names if n in files}
        graph[name] = found - {name}
    return graph


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    """Imports that point up the layers, or from/to a unit the layers do not declare."""
    bad = []
    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            a, b = _unit(module), _unit(target)
            if b == "" or a == b:  # `import pscl` (for __version__), or inside one unit
                continue
            if a not in RANK or b not in RANK:
                bad.append(f"{module} -> {target}: unit {a if a not in RANK else b!r} is in no layer")
            elif RANK[b] > RANK[a]:
                bad.append(f"{module} (layer {RANK[a]}) -> {target} (layer {RANK[b]}): an import up the layers")
    return bad


def first_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of the graph as a path, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, path: list[str]) -> list[str] | None:
        state[name] = 1
        for nxt in sorted(graph.get(name, ())):
            if state.get(nxt) == 1:
                return path + [name, nxt]
            if nxt not in state and (found := visit(nxt, path + [name])):
                return found
        state[name] = 2
        return None

    for name in sorted(graph):
        if name not in state and (found := visit(name, [])):
            return found
    return None


def unit_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    units: dict[str, set[str]] = {}
    for module, targets in graph.items():
        a = _unit(module)
        units.setdefault(a, set()).update(b for t in targets if (b := _unit(t)) not in ("", a))
    return units


def test_every_import_points_down_the_layers():
    graph = import_graph(ROOT)
    assert "pscl.bench.protocol" in graph and "pscl.cli.bench" in graph  # the walk saw the packages
    assert not layer_violations(graph), "\n".join(layer_violations(graph))
    assert set(RANK) == {u for u in map(_unit, graph) if u}, "every unit has a layer, every layer names units"


def test_no_import_cycle_of_modules_or_of_units():
    graph = import_graph(ROOT)
    cycle = first_cycle(graph)
    assert cycle is None, "import cycle (functions' imports included): " + " -> ".join(cycle)
    cycle = first_cycle(unit_graph(graph))
    assert cycle is None, "cycle of packages: " + " -> ".join(cycle)


def test_a_planted_upward_import_inside_a_function_fails(tmp_path):
    planted = tmp_path / "pscl"
    shutil.copytree(ROOT, planted, ignore=shutil.ignore_patterns("__pycache__"))
    io = planted / "data" / "io.py"
    io.write_text(io.read_text() + "\n\ndef _report():\n    from pscl.metallography.report import report\n")
    bad = layer_violations(import_graph(planted))
    assert bad == ["pscl.data.io (layer 1) -> pscl.metallography.report (layer 6): an import up the layers"]
    cycle = tmp_path / "pscl" / "data" / "folders.py"  # and a cycle inside one unit
    cycle.write_text(cycle.read_text() + "\n\ndef _crops():\n    import pscl.data.crops\n")
    crops = planted / "data" / "crops.py"
    crops.write_text(crops.read_text() + "\n\ndef _folders():\n    from pscl.data.folders import DatasetFolder\n")
    assert first_cycle(import_graph(planted)) is not None


def test_no_module_is_longer_than_one_sitting():
    long = {str(p.relative_to(ROOT)): n for p in ROOT.rglob("*.py") if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines (split them by concept): {long}"


def test_the_package_points_to_no_file_outside_the_repository():
    """A user of the package has no ../shared: the method notes the code cites live in docs/."""
    outside = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*.py") if "../shared" in p.read_text()
               or "shared/docs" in p.read_text()]
    assert not outside, f"modules citing files outside the repository: {outside}"
