"""Typed records read from files (training configs, the artifact's preprocessing and metadata),
validated by pydantic with one error style for all of them.

They are pydantic dataclasses with ``extra="forbid"`` (`STRICT`): types and `Literal` choices are
checked by the library, an unknown key is refused everywhere in the same words (``unknown
TrainConfig keys ['x']; valid: [...]``), and a value outside its choices names them (``balance:
method 'magic'; valid: none, class_weights, ...``). Plain dataclass tools keep working on them
(`dataclasses.replace`, `asdict`, positional construction).
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, TypeVar

from pydantic import ConfigDict, TypeAdapter, ValidationError

#: The configuration of every such record: unknown keys are errors, not silently dropped.
STRICT = ConfigDict(extra="forbid")

T = TypeVar("T")


def load(kind: type[T], data: Any, what: str) -> T:
    """`data` (plain YAML/JSON values) as a `kind`; `ValueError` in the one style, naming `what`."""
    try:
        return TypeAdapter(kind).validate_python(data)
    except ValidationError as err:
        raise ValueError(f"{what}: {readable(err, kind)}") from None


def readable(err: ValidationError, kind: type[Any]) -> str:
    """Each error as a sentence: unknown keys with the valid ones, choices with their values."""
    parts = []
    for error in err.errors():
        loc = [p for p in error["loc"] if not isinstance(p, int)]
        owner = ".".join(str(p) for p in loc[:-1])
        where = f"{owner}: " if owner else ""
        name = str(loc[-1]) if loc else kind.__name__
        if error["type"] in ("unexpected_keyword_argument", "extra_forbidden"):
            cls = _type_at(kind, loc[:-1])
            valid = sorted(f.name for f in dataclasses.fields(cls)) if dataclasses.is_dataclass(cls) else []
            parts.append(
                f"{where}unknown {getattr(cls, '__name__', 'config')} keys [{name!r}]; valid: {valid}"
            )
        elif error["type"] == "literal_error":
            choices = typing.get_args(_type_at(kind, loc))
            parts.append(f"{where}{name} {error['input']!r}; valid: {', '.join(map(str, choices))}")
        else:
            parts.append(f"{where}{name}: {error['msg']}")
    return "; ".join(parts)


def _type_at(kind: Any, loc: list[Any]) -> Any:
    """The annotated type at a field path of nested dataclasses (lists and optionals looked into)."""
    node = kind
    for key in loc:
        node = _unwrap(node)
        if not dataclasses.is_dataclass(node):
            return None
        node = typing.get_type_hints(node).get(str(key))
    return _unwrap(node)


def _unwrap(node: Any) -> Any:
    """`X | None` → X, `list[X]` → X; anything else as it is."""
    while True:
        args = [a for a in typing.get_args(node) if a is not type(None)]
        origin = typing.get_origin(node)
        if origin is typing.Literal or not args:
            return node
        if (origin in (list, tuple) and dataclasses.is_dataclass(args[0])) or (
            origin in (typing.Union, getattr(__import__("types"), "UnionType", None)) and len(args) == 1
        ):
            node = args[0]
        else:
            return node
