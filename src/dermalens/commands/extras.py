"""Which extra a missing module belongs to, so a command names what to install (issue #30).

The base install (`pip install dermalens`) predicts files; a command that reaches for an optional
dependency fails on its import with a `ModuleNotFoundError`. The CLI turns that into the one line a
user can act on, ``pip install 'dermalens[train]'``, instead of a traceback or a missing sub-command.
The modules listed are the top-level names the package imports, the ones its extras' libraries
import on its behalf included (starlette for fastapi, scipy for scikit-learn); a test checks that
every third-party import in src/ is either a base dependency or listed here.
"""

from __future__ import annotations

#: extra (as in pyproject.toml) → the top-level modules it provides; the first extra wins for a
#: module two provide (pyarrow: archive, which ray also pulls in).
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "serve": (
        "fastapi",
        "starlette",
        "anyio",
        "h11",
        "uvicorn",
        "httptools",
        "uvloop",
        "multipart",
        "python_multipart",
        "pydantic_settings",
        "jinja2",
        "sqlalchemy",
        "psycopg",
        "pydicom",
        "pylibjpeg",
    ),
    "train": (
        "torch",
        "torchvision",
        "timm",
        "onnx",
        "onnxscript",
        "sklearn",
        "scipy",
        "skimage",
        "matplotlib",
        "pandas",
        "imagehash",
        "pytorch_grad_cam",
        "optuna",
        "keras",
        "mapie",
    ),
    "clahe": ("cv2",),
    "archive": ("pyarrow",),
    "ray": ("ray",),
}
MODULE_EXTRA = {m: extra for extra, modules in reversed(EXTRA_MODULES.items()) for m in modules}


def missing_extra(err: ModuleNotFoundError) -> str | None:
    """The extra that provides the module `err` could not find, or None for any other module (a
    broken install or a bug, which should surface as itself)."""
    return MODULE_EXTRA.get((err.name or "").split(".")[0])


def install_hint(command: str, err: ModuleNotFoundError) -> str | None:
    """``dermalens train needs the `train` extra …: pip install 'dermalens[train]'``, or None."""
    extra = missing_extra(err)
    if extra is None:
        return None
    return f"dermalens {command} needs the `{extra}` extra (no module {err.name!r}): pip install 'dermalens[{extra}]'"
