"""Imports run one way (issue #18; the README's layer paragraph says the same).

    core  →  artifact  →  data, models  →  inference  →  evaluation  →  training  →  commands, cli
                                               ├──────→  server (core, artifact, models, inference: no torch)
                                               └──────→  archive (the same: streaming and Ray batch prediction)

(data does not need the artifact and does not import it.)

An AST walk over src/ reads every import of a dermalens module, the lazy ones inside functions
too, and fails on an import from a higher layer, between siblings (data ↔ models), or on a cycle
between modules. There is no list of exceptions.

A second walk (issue #30) keeps every write into an artifact folder inside `dermalens/artifact/`:
outside it, no module writes to a path named by an artifact file (`artifact.json`, model.onnx,
...) or imports the package's private writer; they hand what they fitted to `artifact.write`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

#: What each layer may import besides itself.
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "artifact": {"core"},
    "data": {"core"},
    "models": {"core", "artifact"},
    "inference": {"core", "artifact", "models"},
    "evaluation": {"core", "artifact", "data", "models", "inference"},
    "training": {"core", "artifact", "data", "models", "inference", "evaluation"},
    "server": {"core", "artifact", "models", "inference"},
    "archive": {"core", "artifact", "models", "inference"},
    "commands": {
        "core",
        "artifact",
        "data",
        "models",
        "inference",
        "evaluation",
        "training",
        "server",
        "archive",
    },
    "top": {
        *("core", "artifact", "data", "models", "inference", "evaluation", "training", "server", "archive"),
        "commands",
    },
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
    """core, artifact, inference, server and archive run in the light `serve` install (no torch): torch may
    only be imported inside a function that needs it (the PyTorch runtime, asked for by name)."""
    found = []
    for layer_name in ("core", "artifact", "inference", "server", "archive"):
        for path in sorted((SRC / "dermalens" / layer_name).rglob("*.py")):
            for node in ast.parse(path.read_text(encoding="utf-8")).body:
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
                if isinstance(node, ast.ImportFrom):
                    names = [node.module or ""]
                if any(n.split(".")[0] in ("torch", "torchvision", "timm") for n in names):
                    found.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert not found, "module-level torch imports on the serving path:\n" + "\n".join(found)


#: The names of an artifact's files as the code spells them (`artifact.meta`), and as strings.
ARTIFACT_FILE_NAMES = {"META_FILE", "ONNX_FILE", "WEIGHTS_FILE", "OOD_FILE", "BASELINE_FILE"}
ARTIFACT_FILE_STRINGS = ("artifact.json", "model.onnx", "weights.pt", "ood.npz", "baseline.npz")
#: Calls that write, move or delete the file they are given (as the object or an argument).
WRITING_CALLS = {
    *("write_text", "write_bytes", "dump", "save", "savez", "savez_compressed", "unlink", "touch"),
    *("copy", "copy2", "copyfile", "move", "replace", "rename", "export_onnx", "quantize_static"),
}
PRIVATE_WRITER = "dermalens.artifact._io"


def _names_an_artifact_file(node: ast.AST) -> bool:
    """True when the expression mentions an artifact file: its constant, or its name as a string."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name) and sub.id in ARTIFACT_FILE_NAMES:
            return True
        if isinstance(sub, ast.Attribute) and sub.attr in ARTIFACT_FILE_NAMES:
            return True
        if isinstance(sub, ast.Constant) and str(sub.value).endswith(ARTIFACT_FILE_STRINGS):
            return True
    return False


def _opens_for_writing(call: ast.Call) -> bool:
    """`open(path, "w")` or `path.open("wb")`: any mode with w, a, x or +."""
    modes = [a for a in call.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
    modes += [k.value for k in call.keywords if k.arg == "mode"]
    return any(isinstance(m, ast.Constant) and set(str(m.value)) & set("wax+") for m in modes)


def artifact_writes(path: Path) -> Iterator[tuple[int, str]]:
    """(line, what) for each write into an artifact folder the file makes by itself, and each
    import of the private writer."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom | ast.Import):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            if isinstance(node, ast.ImportFrom) and node.module == "dermalens.artifact":
                names += [f"dermalens.artifact.{a.name}" for a in node.names]
            if PRIVATE_WRITER in names:
                yield node.lineno, f"imports {PRIVATE_WRITER}"
            continue
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        writes = name in WRITING_CALLS or (name == "open" and _opens_for_writing(node))
        target = [*node.args, *(k.value for k in node.keywords)]
        if isinstance(func, ast.Attribute):
            target.append(func.value)
        if writes and any(_names_an_artifact_file(t) for t in target):
            yield node.lineno, f"{name}() on an artifact file"


def test_only_the_artifact_package_writes_an_artifact():
    found = []
    for path in sorted(SRC.rglob("*.py")):
        if path.is_relative_to(SRC / "dermalens" / "artifact"):
            continue
        found += [f"{path.relative_to(SRC)}:{line}: {what}" for line, what in artifact_writes(path)]
    assert not found, (
        "writes into an artifact outside dermalens.artifact (use artifact.write):\n" + "\n".join(found)
    )


def test_the_writer_rule_catches_a_new_writer(tmp_path):
    sample = tmp_path / "x.py"
    sample.write_text(
        "import json\n"
        "from dermalens.artifact._io import write_json\n"
        "from dermalens.artifact import _io\n"
        "def f(folder, meta, gate, model):\n"
        "    (folder / META_FILE).write_text(json.dumps(meta))\n"
        "    with open(folder / 'artifact.json', 'w') as handle:\n"
        "        json.dump(meta, handle)\n"
        "    gate.save(folder / OOD_FILE)\n"
        "    export_onnx(model, folder / meta_module.ONNX_FILE, (224, 224))\n"
        "    (folder / WEIGHTS_FILE).unlink()\n"
        "    text = (folder / META_FILE).read_text()\n"
        "    with open(folder / META_FILE) as handle:\n"
        "        return handle.read(), text\n"
    )
    assert sorted(line for line, _ in artifact_writes(sample)) == [2, 3, 5, 6, 8, 9, 10]
