"""The config mechanism: a config file's tables are frozen dataclasses whose fields state each key
once, and this module reads a TOML file and the environment into them, all problems at once.

A key is one annotated field::

    ttl_seconds: Annotated[float, Field(ge=0.001, description="..."), Env("GATEWAY_CACHE_TTL_SECONDS")] = 60.0

type, bounds and doc in pydantic's ``Field``, the default as the dataclass default, and the
environment override (if any) in ``Env``. A table is a ``@with_config(TABLE)`` frozen dataclass; a
table holds scalars, strings, arrays (tuples), sub-tables and arrays of tables (``tuple[Table, ...]``,
TOML's ``[[name]]``) to any depth. ``load`` validates the whole document in one pass and raises
``ConfigError`` naming every bad key by its path (``tenants[1].api_key_sha256[0]``) or by the
environment variable that set it; ``json_schema`` gives the file's JSON Schema (the Helm chart's).

Why pydantic v2 rather than hand-written checks: the hand-written loader stated every bound twice
(the dataclass default, a table of minimums) and a third time in the Helm schema, and had to grow a
new branch for each kind of value (list, flag, nested table). Pydantic states a key once, validates
strings, lists and nested arrays of tables with no new code, reports every error with its location
in one pass, and generates the JSON Schema, so the chart's schema is derived rather than kept in step
by hand. We keep the runtime objects plain frozen, slotted stdlib dataclasses (pydantic validates them
through ``TypeAdapter``): attribute reads on the request path stay as cheap as before, code and tests
construct them by keyword as before, and pydantic runs only at start-up. What pydantic does not do
for us stays small and here: strictness (the document is validated as JSON in strict mode, so
``"60"`` is not a number and ``1`` is not ``true``), environment overrides, and messages that name
the key and never echo the value (a value may be a secret; secret fields also use ``repr=False``).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import re
import tomllib
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import ConfigDict, GetJsonSchemaHandler, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import CoreSchema, ErrorDetails, PydanticOmit, core_schema

from gateway.errors import ConfigError

_T = TypeVar("_T")

TABLE = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
"""The pydantic config of every table: unknown keys are errors, no coercion (a quoted number is a
string, 1 is not true), no NaN or infinity."""


class Env:
    """``Annotated`` metadata of a key: the environment variables that set it, the first one set
    (and not empty) winning over the file; their text is parsed as the key's type.
    ``file=False``: the key comes from the environment only and the config file may not set it."""

    __slots__ = ("file", "names")

    def __init__(self, name: str, *fallbacks: str, file: bool = True) -> None:
        self.names = (name, *fallbacks)
        self.file = file

    def __repr__(self) -> str:
        return f"Env({', '.join(map(repr, self.names))}, file={self.file})"

    @property
    def label(self) -> str:
        """The variable's name for messages: ``A (or B)``."""
        first, *rest = self.names
        return f"{first} (or {', '.join(rest)})" if rest else first

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        if not self.file:
            raise PydanticOmit  # not a key of the file: left out of the file's schema
        return handler(schema)


@dataclasses.dataclass(frozen=True, slots=True)
class _Key:
    """One key of a document's schema, found by walking its tables."""

    path: tuple[str, ...]
    kind: Any  # the annotation without ``Annotated``: what an environment value is parsed as
    env: Env | None  # ignored inside an array of tables: a variable sets one key, not one per item
    doc: str


def _unannotated(annotation: Any) -> tuple[Any, tuple[Any, ...]]:
    if typing.get_origin(annotation) is Annotated:
        kind, *metadata = typing.get_args(annotation)
        return kind, tuple(metadata)
    return annotation, ()


def _table_of(kind: Any) -> type | None:
    """The table type of a sub-table or an array of tables, else None."""
    if dataclasses.is_dataclass(kind) and isinstance(kind, type):
        return kind
    args = typing.get_args(kind)
    if typing.get_origin(kind) is tuple and len(args) == 2 and args[1] is Ellipsis:
        return _table_of(_unannotated(args[0])[0])
    return None


def _keys(table: type, prefix: tuple[str, ...] = (), in_array: bool = False) -> Iterator[_Key]:
    """Every key of ``table`` and of its sub-tables, depth first; array items share the array's path."""
    hints = typing.get_type_hints(table, include_extras=True)
    for field in dataclasses.fields(table):
        kind, metadata = _unannotated(hints[field.name])
        env = next((m for m in metadata if isinstance(m, Env)), None)
        doc = next((m.description for m in metadata if isinstance(m, FieldInfo) and m.description), "")
        path = (*prefix, field.name)
        sub = _table_of(kind)
        if sub is None:
            yield _Key(path, kind, None if in_array else env, doc)
        else:
            yield from _keys(sub, path, in_array or sub is not kind)


def read_toml(path: str) -> tuple[dict[str, Any] | None, str | None]:
    """The parsed file, or ``None`` and the problem (naming the file, never quoting its content)."""
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8-sig")), None  # a byte-order mark is no key
    except OSError as exc:
        return None, f"config file {path}: cannot read: {exc.strerror or exc}"
    except UnicodeDecodeError:
        return None, f"config file {path}: not valid TOML: not UTF-8 text"
    except tomllib.TOMLDecodeError as exc:
        return None, f"config file {path}: not valid TOML: {exc}"


def _toml_text(value: object) -> str:
    # No key is a date or time: a TOML date is kept as its text, which a key then checks as any string.
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    raise TypeError(type(value).__name__)


def _where(loc: tuple[str | int, ...]) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".") or "config"


_REASONS = {
    "missing": "is required",
    "unexpected_keyword_argument": "unknown key",
    "extra_forbidden": "unknown key",
    "dataclass_type": "must be a table",
    "dataclass_exact_type": "must be a table",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "string_type": "must be a string",
    "tuple_type": "must be an array",
    "list_type": "must be an array",
    "greater_than_equal": "must be >= {ge}",
    "greater_than": "must be > {gt}",
    "less_than_equal": "must be <= {le}",
    "less_than": "must be < {lt}",
    "too_short": "must have at least {min_length} item(s)",
    "too_long": "must have at most {max_length} item(s)",
    "string_too_short": "must be at least {min_length} character(s)",
    "string_too_long": "must be at most {max_length} characters",
    "string_pattern_mismatch": "must match {pattern}",
}


def _reason(error: ErrorDetails, doc: str) -> str:
    """What is wrong, in words; never the value (it may be a secret)."""
    kind = error["type"]
    ctx = error.get("ctx", {})
    if kind == "value_error":
        return str(ctx.get("error", "is not valid"))
    if kind == "unexpected_keyword_argument" and len(error["loc"]) == 1 and isinstance(error.get("input"), dict):
        return "unknown section"
    words = {name: f"{value:g}" if isinstance(value, float) else value for name, value in ctx.items()}
    reason = _REASONS.get(kind, error["msg"].replace("Input should be", "must be")).format(**words)
    return f"{reason} ({doc.rstrip('.')})" if kind == "string_pattern_mismatch" and doc else reason


_PLAIN_NUMBERS: dict[Any, tuple[re.Pattern[str], str]] = {
    int: (re.compile(r"[0-9]+"), "an integer in ASCII digits"),
    float: (re.compile(r"[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?|\.[0-9]+([eE][-+]?[0-9]+)?"), "a number in ASCII digits"),
}
"""What an environment variable may hold for a number, as ``--port`` takes one: pydantic alone
reads ``1_000``, ``+80`` and ``8080.0`` as numbers too."""


def _apply_environment(
    data: dict[str, Any], keys: Mapping[tuple[str, ...], _Key], env: Mapping[str, str], problems: list[str]
) -> dict[str, str]:
    """Set each key an environment variable sets into ``data``; returns which variable set which key."""
    from_env: dict[str, str] = {}
    for key in keys.values():
        if key.env is None:
            continue
        *parents, name = key.path
        table: Any = data
        for part in parents:
            table = table.setdefault(part, {}) if isinstance(table, dict) else None
        if not isinstance(table, dict):
            continue  # the enclosing table is not a table: validation says so
        if not key.env.file and name in table:
            problems.append(f"{_where(key.path)}: not a config file key (set {key.env.label})")
            del table[name]
        variable = next((name for name in key.env.names if env.get(name)), None)
        if variable is None:
            continue
        plain = _PLAIN_NUMBERS.get(key.kind)
        if plain is not None and not plain[0].fullmatch(env[variable].strip()):  # a YAML block's newline is no part
            problems.append(f"{variable}: must be {plain[1]}")
            continue
        try:
            table[name] = TypeAdapter(key.kind).validate_strings(env[variable])
        except ValidationError as exc:
            problems += [f"{variable}: {_reason(error, key.doc)}" for error in exc.errors(include_url=False)]
        else:
            from_env[_where(key.path)] = variable
    return from_env


def _problem(
    error: ErrorDetails, keys: Mapping[tuple[str, ...], _Key], from_env: Mapping[str, str]
) -> tuple[str, bool]:
    """One validation error as ``<key or variable>: <reason>``, and whether the environment is at fault."""
    where = _where(error["loc"])
    key = keys.get(tuple(part for part in error["loc"] if isinstance(part, str)))
    if where in from_env:
        return f"{from_env[where]}: {_reason(error, key.doc if key else '')}", True
    if key and key.env and not key.env.file:
        return f"{key.env.label}: is not set", True  # an environment-only key left at its default
    return f"{where}: {_reason(error, key.doc if key else '')}", False


def _inside(loc: tuple[str | int, ...], outer: tuple[str | int, ...]) -> bool:
    return len(loc) > len(outer) and loc[: len(outer)] == outer


def load(model: type[_T], env: Mapping[str, str], path: str | None) -> _T:
    """Read the TOML file at ``path`` (none: an empty document) and the environment into ``model``.

    Raises ``ConfigError`` listing every problem: the file's (unreadable, not TOML), keys set by the
    environment (named by variable, checked even when the file is unusable), and every bad key.
    """
    problems: list[str] = []
    document: dict[str, Any] | None = {}
    if path:
        document, problem = read_toml(path)
        problems += [problem] if problem else []
    # A JSON copy: the file is checked in strict JSON mode (a TOML array is an array, a table an object).
    data: dict[str, Any] = json.loads(json.dumps(document or {}, default=_toml_text))
    keys = {key.path: key for key in _keys(model)}
    from_env = _apply_environment(data, keys, env, problems)
    try:
        result = TypeAdapter(model).validate_json(json.dumps(data))
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        for error in errors:
            if error["type"] == "too_short" and any(_inside(other["loc"], error["loc"]) for other in errors):
                continue  # pydantic counts an array whose items failed as empty: the items' errors say it
            problem, environment = _problem(error, keys, from_env)
            # An unusable file's keys all look missing: only the environment's problems add anything.
            if environment or document is not None:
                problems.append(problem)
        raise ConfigError(problems) from None
    if problems:
        raise ConfigError(problems)
    return result


class _TomlJsonSchema(GenerateJsonSchema):
    def nullable_schema(self, schema: core_schema.NullableSchema) -> JsonSchemaValue:
        # TOML has no null: an optional key is simply absent, so the schema states only its type.
        return self.generate_inner(schema["schema"])


def _tidy(node: Any, defs: Mapping[str, Any]) -> Any:
    """Inline ``$ref``s; drop titles, and defaults that are tables or none (noise in a file's schema)."""
    if isinstance(node, list):
        return [_tidy(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        return _tidy({**defs[node["$ref"].rsplit("/", 1)[-1]], **siblings}, defs)
    tidy: dict[str, Any] = {}
    for key, value in node.items():
        if key == "properties":
            tidy[key] = {name: _tidy(prop, defs) for name, prop in value.items()}
        elif key in ("title", "$defs") or (key == "default" and (value is None or isinstance(value, dict))):
            continue
        else:
            tidy[key] = _tidy(value, defs)
    return tidy


def json_schema(model: type) -> dict[str, Any]:
    """The JSON Schema of ``model``'s config file: self-contained, environment-only keys left out."""
    raw = TypeAdapter(model).json_schema(schema_generator=_TomlJsonSchema)
    tidy: dict[str, Any] = _tidy(raw, raw.get("$defs", {}))
    return tidy
