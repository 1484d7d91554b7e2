"""The package layout: the pipeline's folders import each other in one direction only (no import
cycles between ppmatting's subpackages at import time), and the sample structure lives with the
transforms, which the datasets use."""
import ast
import os
from collections import defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "ppmatting")


def subpackage(module):
    """'ppmatting.ml.methods' -> 'ml'; the package itself -> None."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "ppmatting" else None


def import_edges(module_level_only):
    """{importing subpackage: {imported subpackage: 'file:line'}} over ppmatting's sources."""
    edges = defaultdict(dict)
    for folder, _, names in os.walk(PACKAGE):
        for name in names:
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            relative = os.path.relpath(path, ROOT)
            source = subpackage(relative[:-3].replace(os.sep, "."))
            tree = ast.parse(open(path, encoding="utf-8").read())
            nodes = tree.body if module_level_only else ast.walk(tree)
            for node in nodes:
                if isinstance(node, ast.Import):
                    targets = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    targets = [node.module]
                    if node.module == "ppmatting":
                        targets = [f"ppmatting.{alias.name}" for alias in node.names]
                else:
                    continue
                for target in targets:
                    imported = subpackage(target)
                    if source and imported and imported != source:
                        edges[source].setdefault(imported, f"{relative}:{node.lineno}")
    return edges


def find_cycle(edges):
    """One cycle as a list of subpackages, or None (depth-first search)."""
    state = {}

    def visit(node, trail):
        state[node] = "open"
        for nxt in edges.get(node, {}):
            if state.get(nxt) == "open":
                return trail[trail.index(nxt):] + [nxt] if nxt in trail else [node, nxt]
            if nxt not in state:
                found = visit(nxt, trail + [nxt])
                if found:
                    return found
        state[node] = "done"
        return None

    for start in sorted(edges):
        if start not in state:
            found = visit(start, [start])
            if found:
                return found
    return None


def test_no_import_cycle_between_subpackages_at_import_time():
    edges = import_edges(module_level_only=True)
    cycle = find_cycle(edges)
    where = [edges[a][b] for a, b in zip(cycle, cycle[1:])] if cycle else []
    assert cycle is None, f"import cycle {' -> '.join(cycle)} ({', '.join(where)})"


def test_transforms_never_import_datasets():
    # datasets apply transforms; transforms (and the Sample they pass on) need no dataset
    edges = import_edges(module_level_only=False)
    assert "datasets" not in edges["transforms"], edges["transforms"].get("datasets")
    assert "transforms" in edges["datasets"]


def test_the_sample_and_undo_geometry_have_one_home():
    import importlib.util

    from ppmatting import datasets, transforms
    from ppmatting.transforms import sample

    assert transforms.Sample is sample.Sample is datasets.Sample
    assert transforms.undo_geometry is sample.undo_geometry
    # no second module holds them (the old ppmatting.datasets.sample alias is gone)
    assert importlib.util.find_spec("ppmatting.datasets.sample") is None
