"""The rooms of mindspeed_rl (its first-level subpackages) depend on each other in one direction
only, and each keeps to its allowed dependencies. Every import is read with ``ast``, including the
ones inside functions: a lazy import hides a cycle from Python's import order, not from a reader."""
import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "mindspeed_rl"
ROOMS = ("platform", "config", "data", "rewards", "algorithms", "models", "engine", "workers", "trainer",
         "evaluation", "planning", "utils", "testing", "demo", "sft")

# room -> top-level modules it must never import (the room works, or is imported, without them)
FORBIDDEN = {
    "rewards": ("torch", "megatron", "ray", "vllm"),
    "algorithms": ("megatron", "ray", "vllm"),
    "engine": ("ray",),
    "utils": ("megatron", "vllm"),
    "config": ("megatron", "ray", "vllm"),
    "sft": ("ray", "vllm"),  # torchrun-style ranks; generation goes through engine.rollout
}
PARALLEL_STATE = "megatron.core.parallel_state"
# Megatron's global layout state belongs to the engine; the test harness (testing.tiny) sets up
# bare megatron-core models without an engine, so it may touch it too
PARALLEL_STATE_OWNERS = ("engine", "testing")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, source=None):
    """(imported module, line) for every import in the file, function-level ones included;
    ``from pkg import name`` yields ``pkg.name`` too, since ``name`` may be a module."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8") if source is None else source, filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            yield target, node.lineno
            for alias in node.names:
                yield f"{target}.{alias.name}", node.lineno
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            yield node.args[0].value, node.lineno


def _imports_of_source(source: str, path: Path) -> set:
    return {t for t, _line in _imports(path, source)}


def _room(module: str):
    parts = module.split(".")
    return parts[1] if parts[0] == "mindspeed_rl" and len(parts) > 1 and parts[1] in ROOMS else None


@pytest.fixture(scope="module")
def graph():
    """{importing room: {imported room: [where, ...]}} and the list of (file:line, module) imports."""
    edges = defaultdict(lambda: defaultdict(list))
    every = []
    for path in sorted(PACKAGE.rglob("*.py")):
        src = _room(_module_name(path))
        for target, line in _imports(path):
            where = f"{path.relative_to(PACKAGE.parent)}:{line}"
            every.append((src, where, target))
            dst = _room(target)
            if src and dst and dst != src:
                edges[src][dst].append(f"{where} imports {target}")
    return edges, every


def _cycles(edges):
    """Every elementary cycle of the room graph, each once, as a list of rooms."""
    found = []
    for start in sorted(edges):
        stack = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for nxt in sorted(edges.get(node, {})):
                if nxt == start:
                    found.append(path)
                elif nxt not in path and nxt > start:
                    stack.append((nxt, path + [nxt]))
    return found


def test_every_room_is_a_package():
    missing = [r for r in ROOMS if not (PACKAGE / r / "__init__.py").is_file()]
    assert not missing, f"rooms without __init__.py: {missing}"
    unknown = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file() and p.name not in ROOMS)
    assert not unknown, f"subpackages that are no room of this test: {unknown}; add them to ROOMS"


def test_the_reader_sees_lazy_and_relative_imports():
    """The checker has teeth: it finds imports inside functions and resolves relative ones."""
    edges = {"a": {"b": ["x"]}, "b": {"c": ["y"]}, "c": {"a": ["z"]}}
    assert _cycles(edges) == [["a", "b", "c"]]
    probe = PACKAGE / "models" / "_probe_for_the_import_reader.py"
    src = ("def f():\n    from ..utils import fs\n    import mindspeed_rl.engine.batch\n"
           "    importlib.import_module('mindspeed_rl.rewards')\n")
    tree_imports = _imports_of_source(src, probe)
    assert {"mindspeed_rl.utils.fs", "mindspeed_rl.engine.batch", "mindspeed_rl.rewards"} <= tree_imports


def test_no_import_cycle_between_rooms(graph):
    edges, _ = graph
    cycles = _cycles(edges)
    lines = []
    for cycle in cycles:
        hops = cycle + [cycle[0]]
        lines.append(" -> ".join(hops) + ":\n    " + "\n    ".join(
            edges[a][b][0] for a, b in zip(hops, hops[1:])))
    assert not cycles, "import cycles between rooms (lazy imports included):\n" + "\n".join(lines)


def test_rooms_keep_to_their_allowed_dependencies(graph):
    _, every = graph
    bad = [f"{where} imports {target} ({room} must not depend on {target.split('.')[0]})"
           for room, where, target in every if room in FORBIDDEN and target.split(".")[0] in FORBIDDEN[room]]
    assert not bad, "\n".join(bad)


def test_only_the_engine_imports_megatron_parallel_state(graph):
    _, every = graph
    bad = [f"{where} imports {target}" for room, where, target in every
           if room not in PARALLEL_STATE_OWNERS and (target == PARALLEL_STATE or target.startswith(PARALLEL_STATE + "."))]
    assert not bad, "only mindspeed_rl.engine may use Megatron's parallel_state:\n" + "\n".join(sorted(set(bad)))


def test_no_room_imports_the_tests(graph):
    _, every = graph
    bad = [f"{where} imports {target}" for room, where, target in every
           if target.split(".")[0] in ("tests", "conftest") or target.endswith("testlib")
           or (room != "testing" and _room(target) == "testing")]
    assert not bad, "the package must not depend on test helpers:\n" + "\n".join(bad)


# Cycles between modules of one room that remain: each a factory or registry whose module imports
# its implementations lazily by name. A new one (like engine.checkpoint <-> engine.megatron_engine
# once) fails the test below; removing one of these fails it too, so that the list stays true.
KNOWN_MODULE_CYCLES = {
    frozenset({"mindspeed_rl.rewards.functions", "mindspeed_rl.rewards.mindspeed_names",
               "mindspeed_rl.rewards.registry"}),
    frozenset({"mindspeed_rl.evaluation.config", "mindspeed_rl.evaluation.datasets"}),
    frozenset({"mindspeed_rl.engine.rollout.base", "mindspeed_rl.engine.rollout.hf_engine",
               "mindspeed_rl.engine.rollout.replicas", "mindspeed_rl.engine.rollout.sampling",
               "mindspeed_rl.engine.rollout.vllm_engine"}),
}


def _strongly_connected(edges):
    """Tarjan's strongly connected components with more than one node."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(frozenset(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_module_cycles_are_only_the_known_ones():
    """Between modules (package __init__ re-exports aside), lazy imports included."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    edges = {name: {t for t, _line in _imports(path) if t in modules and t != name
                    and modules[t].name != "__init__.py"}
             for name, path in modules.items() if path.name != "__init__.py"}
    found = set(_strongly_connected(edges))
    assert found - KNOWN_MODULE_CYCLES == set(), f"new module import cycles: {[sorted(c) for c in found - KNOWN_MODULE_CYCLES]}"
    assert KNOWN_MODULE_CYCLES - found == set(), (f"gone (remove from KNOWN_MODULE_CYCLES): "
                                                  f"{[sorted(c) for c in KNOWN_MODULE_CYCLES - found]}")
