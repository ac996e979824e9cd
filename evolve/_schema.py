"""The config schema: pydantic models for the run config, dataclasses for strategies.

The run config (``evolve._config``) is a tree of frozen pydantic models whose
fields carry their type, range and documentation in one place. ``validate``
turns every problem pydantic finds into one ``ConfigError`` line naming the
option's dotted path (``budget.wall_time: must be > 0, got -7``), all problems
at once. ``document`` renders the models' JSON schema as Markdown rows, so the
reference in ``docs/config.md`` is generated from the code and cannot drift.

Strategies (operators, selectors, benchmarks) keep their options in frozen
dataclasses with ``doc(...)`` fields; ``build`` checks a plain mapping against
one of them, ``options_of`` lists its documented options.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    model_validator,
)

from ._errors import ConfigError

#: an int option: YAML ints only (no bools, floats or numeric strings)
Int = Annotated[int, Strict()]
#: a float option: YAML ints or floats, finite (no .nan or .inf)
Float = Annotated[float, Strict(), Field(allow_inf_nan=False)]
#: a str option: YAML strings only
Str = Annotated[str, Strict()]


class FieldProblem(ValueError):
    """A cross-field check's complaint about one field of the model that raised it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must contain a non-space character")
    return value


#: a non-empty str that is not all white space
Text = Annotated[Str, Field(min_length=1, json_schema_extra={"range": "not blank"}),
                 AfterValidator(_not_blank)]


class Section(BaseModel):
    """A frozen config section: unknown keys refused, ``null`` (an empty YAML section) is {}."""

    # protected_namespaces: options such as llm.*.model_path are fields (pydantic < 2.10)
    model_config = ConfigDict(frozen=True, extra="forbid", protected_namespaces=())

    @model_validator(mode="before")
    @classmethod
    def _empty_is_default(cls, data: Any) -> Any:
        return {} if data is None else data


M = TypeVar("M", bound=BaseModel)


def validate(model: type[M], data: Any) -> M:
    """``model`` built from plain YAML data; every problem in one ``ConfigError``."""
    if data is not None and not isinstance(data, Mapping):
        raise ConfigError(f"config: expected a mapping of options, got {_show(data)}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = list(dict.fromkeys(
            _problem(model, error) for error in exc.errors(include_url=False)))
    if len(problems) == 1:
        raise ConfigError(problems[0]) from None
    raise ConfigError(f"{len(problems)} problems in the config:\n  "
                      + "\n  ".join(problems)) from None


def _problem(root: type[BaseModel], error: Any) -> str:
    loc = tuple(error["loc"])
    kind, value, ctx = error["type"], error.get("input"), error.get("ctx") or {}
    if loc[-1:] == ("[key]",):
        where = ".".join(str(part) for part in (_dotted(loc[:-2]), loc[-2]))
        return f"{where}: option names must be strings, got {_show(loc[-2])}"
    if kind == "extra_forbidden":
        allowed = _fields_at(root, loc[:-1])
        close = _closest(str(loc[-1]), allowed)
        hint = f" (did you mean '{close}'?)" if close else ""
        return (f"{_dotted(loc)}: unknown option{hint}; allowed here: "
                + ", ".join(sorted(allowed)))
    if kind == "value_error" and isinstance(ctx.get("error"), FieldProblem):
        loc += (ctx["error"].field,)
    return f"{_dotted(loc)}: {_what(root, loc, kind, value, ctx, error['msg'])}"


_EXPECTED = {
    "int_type": "int", "int_parsing": "int", "int_from_float": "int",
    "float_type": "float", "float_parsing": "float", "string_type": "str",
    "bool_type": "bool", "bool_parsing": "bool",
    "tuple_type": "a list", "list_type": "a list",
    "dict_type": "a mapping", "mapping_type": "a mapping",
    "model_type": "a mapping of options", "model_attributes_type": "a mapping of options",
}
_BOUNDS = {"greater_than": (">", "gt"), "greater_than_equal": (">=", "ge"),
           "less_than": ("<", "lt"), "less_than_equal": ("<=", "le")}


def _what(root: type[BaseModel], loc: tuple[Any, ...], kind: str, value: Any,
          ctx: Mapping[str, Any], msg: str) -> str:
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {_show(value)}"
    if kind in _BOUNDS:
        op, key = _BOUNDS[kind]
        return f"must be {op} {_number(ctx[key])}, got {_number(value)}"
    if kind == "finite_number":
        return f"must be a finite number, got {_number(value)}"
    if kind == "string_too_short":
        return "must not be empty" if ctx.get("min_length") == 1 else msg.lower()
    if kind == "literal_error":
        allowed = _literal_choices(root, loc)
        return (f"{_show(value)} is not allowed; choose one of: "
                + ", ".join(str(a) for a in allowed))
    if kind == "value_error":
        return str(ctx.get("error", msg))
    return f"{msg[:1].lower()}{msg[1:]}, got {_show(value)}"


def _number(value: Any) -> str:
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value) if isinstance(value, int) else _show(value)


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int) and not isinstance(part, bool) and out:
            out += f"[{part}]"
        else:
            out = f"{out}.{part}" if out else str(part)
    return out or "config"


def _section_type(hint: Any) -> Any:
    """The model class inside ``hint`` (``M``, ``M | None``, ``tuple[M, ...]``), else None."""
    if isinstance(hint, type) and issubclass(hint, BaseModel):
        return hint
    for arg in get_args(hint):
        found = _section_type(arg)
        if found is not None:
            return found
    return None


def _annotation_at(root: type[BaseModel], loc: tuple[Any, ...]) -> Any:
    """The annotation of the field at ``loc`` (None if ``loc`` leaves the models)."""
    model: Any = root
    hint: Any = root
    for part in loc:
        if isinstance(part, int):
            continue  # an item of a list of sections
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        field = model.model_fields.get(part)
        if field is None:
            return None
        hint = field.annotation
        model = _section_type(hint)
    return hint


def _fields_at(root: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    model = _section_type(_annotation_at(root, loc)) if loc else root
    return list(model.model_fields) if model is not None else []


def _literal_choices(root: type[BaseModel], loc: tuple[Any, ...]) -> tuple[Any, ...]:
    hint = _annotation_at(root, loc)
    for arg in (hint, *get_args(hint)):
        if get_origin(arg) is Literal:
            return get_args(arg)
    return ()


def doc(text: str, default: Any = dataclasses.MISSING, **kwargs: Any) -> Any:
    """A dataclass field with documentation (and a default)."""
    if isinstance(default, dict | list):
        value = default
        return dataclasses.field(
            default_factory=lambda: type(value)(value), metadata={"doc": text}, **kwargs)
    if dataclasses.is_dataclass(default) and isinstance(default, type):
        return dataclasses.field(default_factory=default, metadata={"doc": text}, **kwargs)
    return dataclasses.field(default=default, metadata={"doc": text}, **kwargs)


def build(cls: type, data: Any, path: str = "") -> Any:
    """Build dataclass ``cls`` from ``data``, validating every key and value."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path or 'config'}: expected a mapping of options, got {_show(data)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = get_type_hints(cls)
    unknown = [k for k in data if k not in fields]
    if unknown:
        key = _join(path, str(unknown[0]))
        close = _closest(str(unknown[0]), fields)
        hint = f" (did you mean '{close}'?)" if close else ""
        raise ConfigError(
            f"{key}: unknown option{hint}; allowed here: {', '.join(sorted(fields))}")
    values = {name: _convert(hints[name], data[name], _join(path, name))
              for name in fields if name in data}
    try:
        return cls(**values)
    except ValueError as exc:  # __post_init__ cross-field checks
        raise ConfigError(f"{path or 'config'}: {exc}") from None


def _convert(hint: Any, value: Any, path: str) -> Any:
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        options = get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(option, value, path)
            except ConfigError as exc:
                errors.append(exc)
        raise errors[0]
    if origin is Literal:
        allowed = get_args(hint)
        if value not in allowed:
            raise ConfigError(
                f"{path}: {_show(value)} is not allowed; choose one of: "
                + ", ".join(str(a) for a in allowed))
        return value
    if dataclasses.is_dataclass(hint):
        return build(hint, value, path)
    if origin in (dict, Mapping, typing.Mapping) or hint is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path}: expected a mapping, got {_show(value)}")
        args = get_args(hint)
        val_hint = args[1] if args else Any
        return {str(k): _convert(val_hint, v, _join(path, str(k))) for k, v in value.items()}
    if origin in (list, tuple) or hint in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{path}: expected a list, got {_show(value)}")
        args = get_args(hint)
        item = args[0] if args else Any
        return tuple(_convert(item, v, f"{path}[{i}]") for i, v in enumerate(value))
    return _scalar(hint, value, path)


def _scalar(hint: Any, value: Any, path: str) -> Any:
    if hint is Any:
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
    else:  # pragma: no cover - a schema bug, not a user error
        raise TypeError(f"unsupported config type {hint!r} at {path}")
    raise ConfigError(f"{path}: expected {_type_name(hint)}, got {_show(value)}")


def one_of(names: Iterable[str]) -> Any:
    """The type of an option whose value is one of a registry's names (``Literal[...]``), so
    that the choices are the registry's own and never repeated by hand."""
    return Literal[tuple(names)]


def options_of(cls: type) -> dict[str, tuple[Any, str]]:
    """``{option: (default, one-line doc)}`` of a strategy dataclass."""
    if not dataclasses.is_dataclass(cls):
        return {}
    return {f.name: (f.default, f.metadata.get("doc", "")) for f in dataclasses.fields(cls)
            if f.init}  # a field set by the class itself (e.g. a cache) is no option


def registry_options(registry: Mapping[str, type], kind: str, name: str
                     ) -> dict[str, tuple[Any, str]]:
    """The options of strategy ``name`` of a registry (e.g. the operators)."""
    try:
        cls = registry[name]
    except KeyError:
        raise ConfigError(f"unknown {kind} '{name}'; choose one of: "
                          + ", ".join(registry)) from None
    return options_of(cls)


def to_data(config: Any) -> Any:
    """Plain YAML/JSON data for a config model or dataclass (the inverse of ``validate``)."""
    if isinstance(config, BaseModel):
        return {name: to_data(getattr(config, name)) for name in type(config).model_fields}
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return {f.name: to_data(getattr(config, f.name)) for f in dataclasses.fields(config)}
    if isinstance(config, Mapping):
        return {k: to_data(v) for k, v in config.items()}
    if isinstance(config, list | tuple):
        return [to_data(v) for v in config]
    return config


class Row(typing.NamedTuple):
    """One option of the config reference."""

    key: str
    type: str
    range: str
    default: str
    doc: str


def document(model: type[BaseModel]) -> list[Row]:
    """A row for every option and section of ``model``, depth first, from its JSON schema.

    Types and ranges come from the JSON schema pydantic generates for the models;
    defaults from an instance (the schema leaves out defaults made by factories).
    The fields of a list of sections are keyed ``list[].field``.
    """
    schema = model.model_json_schema()
    return _rows(schema, schema, model(), "")


def _rows(root: Mapping[str, Any], schema: Mapping[str, Any], instance: Any,
          prefix: str) -> list[Row]:
    rows: list[Row] = []
    for name, prop in _deref(root, schema)["properties"].items():
        key = f"{prefix}.{name}" if prefix else name
        default = getattr(instance, name) if instance is not None else None
        text = prop.get("description", "")
        section = _deref(root, prop)
        if "properties" in section:
            rows.append(Row(key, "section", "", "", text))
            rows.extend(_rows(root, section, default, key))
            continue
        if instance is not None:
            shown = repr(to_data(default))
        else:  # the fields of a list's sections: the schema's defaults
            shown = repr(prop["default"]) if "default" in prop else ""
        rows.append(Row(key, _json_type(root, prop), _json_range(root, prop), shown, text))
        items = _deref(root, prop.get("items", {}))
        if "properties" in items:
            rows.extend(_rows(root, items, None, f"{key}[]"))
    return rows


def _deref(root: Mapping[str, Any], schema: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    return root["$defs"][ref.rsplit("/", 1)[-1]]


_JSON_TYPES = {"integer": "int", "number": "float", "string": "str", "boolean": "bool",
               "array": "list", "object": "mapping", "null": "null"}


def _json_type(root: Mapping[str, Any], schema: Mapping[str, Any]) -> str:
    if "anyOf" in schema:
        return " | ".join(_json_type(root, s) for s in schema["anyOf"])
    schema = _deref(root, schema)
    if "enum" in schema:
        return " | ".join(repr(v) for v in schema["enum"])
    if "const" in schema:
        return repr(schema["const"])
    if "properties" in schema:
        return "section"
    kind = _JSON_TYPES.get(schema.get("type", ""), schema.get("type", "any"))
    items = schema.get("items")
    if kind == "list" and items:
        inner = _json_type(root, items)
        return f"list of {'sections' if inner == 'section' else inner}"
    values = schema.get("additionalProperties")
    if kind == "mapping" and isinstance(values, Mapping) and values.get("type"):
        return f"mapping of {_json_type(root, values)}"
    return kind


def _json_range(root: Mapping[str, Any], schema: Mapping[str, Any]) -> str:
    if "range" in schema:
        return str(schema["range"])
    if "anyOf" in schema:
        return ", ".join(r for r in (_json_range(root, s) for s in schema["anyOf"]) if r)
    schema = _deref(root, schema)
    parts = []
    low = [(op, schema[k]) for op, k in ((">=", "minimum"), (">", "exclusiveMinimum"))
           if k in schema]
    high = [(op, schema[k]) for op, k in (("<=", "maximum"), ("<", "exclusiveMaximum"))
            if k in schema]
    if low and high and low[0][0] == ">=" and high[0][0] == "<=":
        parts.append(f"{low[0][1]} .. {high[0][1]}")
    else:
        parts += [f"{op} {v}" for op, v in low + high]
    if schema.get("minLength") == 1:
        parts.append("not empty")
    elif "minLength" in schema:
        parts.append(f"at least {schema['minLength']} characters")
    items = schema.get("items")
    if isinstance(items, Mapping) and _json_range(root, items):
        parts.append(f"items {_json_range(root, items)}")
    values = schema.get("additionalProperties")
    if isinstance(values, Mapping) and _json_range(root, values):
        parts.append(f"values {_json_range(root, values)}")
    return ", ".join(parts)


def _type_name(hint: Any) -> str:
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in get_args(hint))
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(hint))
    if origin in (dict, Mapping, typing.Mapping):
        return "mapping"
    if origin in (list, tuple):
        return "list"
    if hint is type(None):
        return "null"
    return getattr(hint, "__name__", str(hint))


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _show(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}"


def _closest(key: str, options: Mapping[str, Any]) -> str | None:
    import difflib

    match = difflib.get_close_matches(key, list(options), n=1, cutoff=0.75)
    return match[0] if match else None
