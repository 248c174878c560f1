"""The layout of README "Developer notes": imports run from higher layers to lower ones only, with no cycles."""

import ast
import pathlib

REPO = pathlib.Path(__file__).resolve().parent.parent
# The README's layers, highest first; a module may import its own layer and the layers below it.
LAYERS = [
    ("experiments", ["experiments."]),
    ("benchmarks", ["benchmarks."]),
    ("tools", ["main", "evaluate", "translate", "score", "average", "scripts", "translator", "cli"]),
    ("training", ["train", "optim", "workdir", "checkpointing", "logger"]),
    ("configs", ["configs."]),
    ("inference", ["inference", "decoding", "ensemble", "sampling", "metrics"]),
    ("model", ["model", "attention", "recurrent", "cells"]),
    ("data", ["data."]),
    ("base", ["files", "parallel", "plotting", "malloc"]),
]


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> int:
    short = module.removeprefix("seq2seq_jax.")
    for rank, (_, names) in enumerate(LAYERS):
        if any(short.startswith(n) or short == n[:-1] if n.endswith(".") else short == n for n in names):
            return rank
    raise AssertionError(f"{module} is in no layer of the README's layout")


def project_imports() -> dict[str, set[str]]:
    """Each module of the project -> the project modules it imports (``from a import b`` names ``a.b`` when
    ``b`` is a module)."""
    paths = [p for top in ("seq2seq_jax", "experiments", "benchmarks") for p in (REPO / top).rglob("*.py")]
    names = {module_name(p) for p in paths}
    graph = {}
    for path in paths:
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in names else node.module
                          for a in node.names}
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
        graph[module_name(path)] = {m for m in found if m in names and m != module_name(path)}
    return graph


def test_every_import_goes_to_the_same_layer_or_a_lower_one():
    graph = project_imports()
    graph.pop("seq2seq_jax")  # the package exports the public API (``seq2seq_jax.Translator``)
    upward = [f"{m} ({LAYERS[layer(m)][0]}) imports {d} ({LAYERS[layer(d)][0]})"
              for m, deps in graph.items() for d in deps if layer(d) < layer(m)]
    assert not upward


def test_there_are_no_import_cycles():
    graph, state, cycles = project_imports(), {}, []

    def visit(module, stack):
        state[module] = "open"
        for dep in sorted(graph[module]):
            if state.get(dep) == "open":
                cycles.append(stack[stack.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, [*stack, dep])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles


def test_data_does_not_import_the_checkpoints_and_benchmarks_do_not_import_the_studies():
    graph = project_imports()
    assert not {d for m, deps in graph.items() if m.startswith("seq2seq_jax.data") for d in deps
                if d == "seq2seq_jax.checkpointing"}
    assert not {d for m, deps in graph.items() if m.startswith("benchmarks") for d in deps
                if d.startswith("experiments")}
