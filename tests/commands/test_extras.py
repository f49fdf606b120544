"""The CLI of the base install (issue #30): every command is listed without the extras, a command
whose extra is missing names the extra to install, and any other missing module surfaces as itself.

"Without the extras" runs the CLI in a child Python whose import system refuses every module that
`dermalens.commands.extras` lists, as `pip install dermalens` leaves them out; the real base install
from the wheel is tests/test_packaging.py (slow).
"""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
import tomllib
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from dermalens import cli
from dermalens.commands.extras import EXTRA_MODULES, MODULE_EXTRA, install_hint

REPO = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]

WITHOUT_EXTRAS = """
import sys
from importlib.abc import MetaPathFinder

from dermalens.commands.extras import MODULE_EXTRA


class NoExtras(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in MODULE_EXTRA:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


sys.meta_path.insert(0, NoExtras())
from dermalens.cli import build_parser, main

if sys.argv[1:] == ["--list-commands"]:
    print(" ".join(sorted(build_parser()._subparsers._group_actions[0].choices)))
else:
    sys.exit(main(sys.argv[1:]))
"""


def without_extras(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_EXTRAS, *argv], capture_output=True, text=True, timeout=120
    )


def command_names() -> list[str]:
    action = cli.build_parser()._subparsers._group_actions[0]  # type: ignore[union-attr]
    assert isinstance(action, argparse._SubParsersAction)
    return sorted(action.choices)


def test_every_command_is_listed_without_the_extras():
    listed = without_extras("--list-commands")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split() == command_names()
    assert {"predict", "serve", "train", "evaluate"} <= set(listed.stdout.split())
    assert without_extras("--help").returncode == 0


@pytest.mark.parametrize(
    ("argv", "extra"),
    [
        (["serve"], "serve"),
        (["train", "--config", str(REPO / "configs" / "smoke.yaml")], "train"),
        (["export", "--format", "onnx", "--out", "unused.onnx"], "train"),
    ],
)
def test_a_command_without_its_extra_names_the_extra(argv, extra):
    ran = without_extras(*argv)
    assert ran.returncode == 2, ran.stderr
    assert f"dermalens {argv[0]} needs the `{extra}` extra" in ran.stderr
    assert f"pip install 'dermalens[{extra}]'" in ran.stderr
    assert "Traceback" not in ran.stderr


def test_any_other_missing_module_is_not_swallowed(monkeypatch):
    def broken(args: argparse.Namespace) -> int:
        raise ModuleNotFoundError("No module named 'numpy'", name="numpy")

    parser = argparse.ArgumentParser()
    parser.add_argument("-v", dest="verbose", action="store_true")
    parser.add_subparsers(dest="command").add_parser("x").set_defaults(func=broken)
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    with pytest.raises(ModuleNotFoundError, match="numpy"):
        cli.main(["x"])


def test_install_hint_reads_the_top_level_module():
    hint = install_hint("evaluate", ModuleNotFoundError("x", name="sklearn.metrics"))
    assert hint == (
        "dermalens evaluate needs the `train` extra (no module 'sklearn.metrics'): pip install 'dermalens[train]'"
    )
    assert MODULE_EXTRA["pyarrow"] == "archive"  # archive before ray, which also brings it
    assert install_hint("predict", ModuleNotFoundError("x", name="dermalens.nothing")) is None


def closure(requirements: Iterable[str]) -> set[str]:
    """Distributions (normalised names) that `requirements` install, their own requirements
    included, as far as this environment has them installed."""
    seen: set[str] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for sub in map(Requirement, requires):
            if sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in req.extras or {""}):
                todo.append(sub)
    return seen


def third_party_imports() -> set[str]:
    """Top-level names of every non-stdlib module imported anywhere in src/."""
    found = set()
    for path in (REPO / "src").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"dermalens"}


def modules_of(distributions: set[str]) -> set[str]:
    return {
        m
        for m, dists in metadata.packages_distributions().items()
        if distributions & set(map(canonicalize_name, dists))
    }


def test_every_optional_import_names_its_extra():
    base = modules_of(closure(PROJECT["dependencies"]))
    unlisted = third_party_imports() - base - set(MODULE_EXTRA)
    assert not unlisted, f"imported, neither a base dependency nor in EXTRA_MODULES: {sorted(unlisted)}"
    assert not base & set(MODULE_EXTRA), "a base dependency is listed as an extra's"


def test_each_listed_module_comes_with_its_extra():
    extras = PROJECT["optional-dependencies"]
    wrong = [
        f"{module} ({extra})"
        for extra, modules in EXTRA_MODULES.items()
        for module in modules
        if metadata.packages_distributions().get(module) and module not in modules_of(closure(extras[extra]))
    ]
    assert set(EXTRA_MODULES) <= set(extras)
    assert not wrong, f"installed, but not by the extra named: {wrong}"
