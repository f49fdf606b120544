"""Imports run one way (issue #18; the README's layer paragraph says the same).

    core  →  data, models  →  inference  →  evaluation  →  training  →  commands, cli
                                  ├──────→  server (core, models and inference only: no torch)
                                  └──────→  archive (the same: streaming and Ray batch prediction)

An AST walk over src/ reads every import of a dermalens module, the lazy ones inside functions
too, and fails on an import from a higher layer, between siblings (data ↔ models), or on a cycle
between modules. There is no list of exceptions.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

#: What each layer may import besides itself.
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "data": {"core"},
    "models": {"core"},
    "inference": {"core", "models"},
    "evaluation": {"core", "data", "models", "inference"},
    "training": {"core", "data", "models", "inference", "evaluation"},
    "server": {"core", "models", "inference"},
    "archive": {"core", "models", "inference"},
    "commands": {"core", "data", "models", "inference", "evaluation", "training", "server", "archive"},
    "top": {"core", "data", "models", "inference", "evaluation", "training", "server", "archive", "commands"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer(module: str) -> str:
    """`dermalens.<layer>.…`; the package's own top-level modules (cli) are "top"."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ALLOWED else "top"


def imports(path: Path, module: str | None = None) -> Iterator[tuple[int, str]]:
    """(line, imported dermalens name) for every import in the file, wherever it stands; `module`
    is the file's dotted name (default: from its place below src/)."""
    module = module or module_name(path)
    package = module.rsplit(".", 1)[0] if path.name != "__init__.py" else module
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's own package upwards
                parts = package.split(".")
                base = ".".join([*parts[: len(parts) - node.level + 1], base]).strip(".")
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            if name.split(".")[0] == "dermalens":
                yield node.lineno, name


FILES = {module_name(p): p for p in SRC.rglob("*.py")}


def resolved(path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) of each dermalens module the file imports: a name that is an attribute
    (``from dermalens.core.taxonomy import DX_CODES``) counts as its module. The package root
    (its version, and the lazy `Classifier`) is left out: every import loads it anyway."""
    for line, name in imports(path):
        module = name if name in FILES else name.rsplit(".", 1)[0]
        if module in FILES and module != "dermalens":
            yield line, module


def graph() -> dict[str, set[str]]:
    """{module: the dermalens modules it imports} over src/."""
    return {m: {t for _, t in resolved(p) if t != m} for m, p in FILES.items()}


def test_every_import_runs_down_the_layers():
    upward = []
    for path in sorted(SRC.rglob("*.py")):
        here = layer(module_name(path))
        for line, module in sorted(set(resolved(path))):
            there = layer(module)
            if there != here and there not in ALLOWED[here]:
                upward.append(f"{path.relative_to(SRC)}:{line} ({here}) imports {module} ({there})")
    assert not upward, "imports against the layer order:\n" + "\n".join(upward)


def test_no_module_cycles():
    edges = graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in edges[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    assert not cycles, f"import cycles: {cycles}"


def test_the_walk_sees_lazy_and_relative_imports(tmp_path):
    sample = tmp_path / "x.py"
    sample.write_text("def f():\n    from dermalens.training.config import TrainConfig\nfrom .ood import x\n")
    assert sorted(name for _, name in imports(sample, "dermalens.models.x")) == [
        "dermalens.models.ood",
        "dermalens.models.ood.x",
        "dermalens.training.config",
        "dermalens.training.config.TrainConfig",
    ]
    assert layer("dermalens.training.config") == "training" and layer("dermalens.cli") == "top"


def test_the_serving_layers_never_import_torch_at_module_level():
    """core, inference, server and archive run in the light `serve` install (no torch): torch may
    only be imported inside a function that needs it (the PyTorch runtime, asked for by name)."""
    found = []
    for layer_name in ("core", "inference", "server", "archive"):
        for path in sorted((SRC / "dermalens" / layer_name).rglob("*.py")):
            for node in ast.parse(path.read_text(encoding="utf-8")).body:
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
                if isinstance(node, ast.ImportFrom):
                    names = [node.module or ""]
                if any(n.split(".")[0] in ("torch", "torchvision", "timm") for n in names):
                    found.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert not found, "module-level torch imports on the serving path:\n" + "\n".join(found)
