"""The shape of the house: imports point one way, modules stay small, nothing handed to a
method reaches the test split."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bench", "methods")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """module -> project modules it imports anywhere in its body (function-level imports too)."""
    files = [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")]
    modules = {_module_name(p) for p in files}
    graph = {}
    for path in files:
        name, found = _module_name(path), set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            found |= {t for t in targets if t in modules and t != name}
        graph[name] = found
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_module_imports_one_that_imports_it_back():
    graph = import_graph()
    # a package __init__ importing its own submodules (bench.attacks registering every attack) is
    # not a cycle of the design; drop those edges from submodules back to their package
    for name in graph:
        graph[name] = {t for t in graph[name] if not name.startswith(t + ".")}
    assert cycles(graph) == []


def test_the_cycle_finder_finds_cycles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_spec_is_a_leaf():
    assert import_graph()["bench.spec"] == set()


# The intended import order, top to bottom: a module imports only from its own layer or below.
LAYERS = [
    ("command line", {"bench.__main__", "bench.cli", "bench.tools"}),
    ("orchestration", {"bench.session", "bench.reproduction", "bench.worker", "bench.gpu_check", "bench.checks"}),
    ("drivers: runner and tune", {"bench.runner", "bench.tune", "bench.studies", "bench.rescore", "bench.jobs"}),
    ("executors", {"bench.executors"}),
    ("plan, workspace, scorer; reports", {"bench.plan", "bench.tuned", "bench.workspace", "bench.scorer",
                                          "bench.suites", "bench.leaderboard", "bench.export", "bench.aggregate", "bench.conclusions",
                                          "bench.figures", "bench.section_notes", "bench.reproduce", "bench.reproduce_report",
                                          "bench.integrity", "bench.statistics", "bench.speed",
                                          "bench.forget_quality_runs", "bench.tuning_rules"}),
    ("methods, attacks, training, evaluation", {"methods", "methods.*", "bench.attacks", "bench.attacks.*", "bench.api",
                                                 "bench.methods_loader", "bench.method_import", "bench.provenance", "bench.train",
                                                 "bench.evaluate", "bench.execute", "bench.flops", "bench.cost",
                                                 "bench.references", "bench.unlearned_references"}),
    ("data, models, store", {"bench.data", "bench.models", "bench.store", "bench.forget", "bench.files",
                             "bench.environment", "bench.checkout", "bench.policy", "bench.progress",
                             "bench.metrics", "bench.settings", "bench.image_folder", "bench.journal", "bench.guard",
                             "bench.sandbox", "bench.landlock"}),
    ("spec, registry", {"bench", "bench.spec", "bench.schema", "bench.registry", "bench.errors"}),
]


def layer_of(module: str) -> int | None:
    for i, (_, members) in enumerate(LAYERS):
        if module in members or any(m.endswith(".*") and module.startswith(m[:-1]) for m in members):
            return i
    return None


def test_every_module_has_a_layer():
    assert [m for m in import_graph() if layer_of(m) is None] == []


def test_imports_point_down_the_layers():
    """cli -> orchestration -> runner/tune -> executors -> plan/workspace/scorer -> methods/attacks/train/
    evaluate -> data/models/store -> spec/registry: no module imports one from a layer above it."""
    upward = [f"{m} ({LAYERS[layer_of(m)][0]}) imports {t} ({LAYERS[layer_of(t)][0]})"
              for m, targets in sorted(import_graph().items()) for t in sorted(targets)
              if layer_of(t) is not None and layer_of(t) < layer_of(m)]
    assert upward == []


def test_executors_know_neither_the_runner_nor_tune():
    assert import_graph()["bench.executors"] <= {"bench", "bench.errors"}


def test_the_layer_check_finds_an_upward_import():
    assert layer_of("bench.executors") > layer_of("bench.runner") > layer_of("bench.cli")
    assert layer_of("methods.finetune") == layer_of("bench.train") > layer_of("bench.workspace")


@pytest.mark.parametrize("path", sorted(str(p.relative_to(ROOT)) for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")))
def test_every_module_stays_small(path):
    assert len((ROOT / path).read_text().splitlines()) <= 300


def test_a_context_closing_over_the_runner_would_expose_the_test_split(tmp_path):
    """What test_split_unreachable guards against: the old `new_model` lambda closed over the
    runner, so the test split was reachable from the context; the ModelFactory is not."""
    from bench.checks import _reachable_tensor_ids, problem

    p = problem(tmp_path)
    run = p.ws
    test_ptrs = {run.test.x.untyped_storage().data_ptr()}
    ctx = run.context(0, "x")
    assert not _reachable_tensor_ids([ctx]) & test_ptrs
    run.new_model = lambda: run.test  # noqa: E731 - a closure over the runner, as before
    assert _reachable_tensor_ids([run.context(0, "x")]) & test_ptrs


def test_only_code_makes_a_tree_dirty():
    from bench.checkout import code_is_dirty

    assert not code_is_dirty("?? results/.unlearn-bench.lock\n M leaderboard.md\n?? results/digits/\n")
    assert code_is_dirty(" M bench/train.py\n?? results/digits/\n")
    assert not code_is_dirty("")
    assert not code_is_dirty("?? my-results/\n?? tiny.yaml\n")  # untracked, not code: a results folder, a suite
    assert code_is_dirty("?? methods/my_method.py\n") and code_is_dirty("?? plugin.py\n")
    assert code_is_dirty("?? bench/suites/new.yaml\n") and code_is_dirty(" M tiny.yaml\n")
