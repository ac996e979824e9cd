"""Strict conversion of plain YAML data into frozen config dataclasses.

Every field of a config dataclass carries its documentation in
``field(metadata={"doc": ...})``. ``build`` rejects unknown keys, wrong types
and values outside a ``Literal``, naming the dotted path of the bad key and
what is allowed. ``document`` renders the same schema as Markdown, so the
reference in ``docs/config.md`` is generated from the code and cannot drift.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from ._errors import ConfigError


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


def options_of(cls: type) -> dict[str, tuple[Any, str]]:
    """``{option: (default, one-line doc)}`` of a strategy dataclass."""
    if not dataclasses.is_dataclass(cls):
        return {}
    return {f.name: (f.default, f.metadata.get("doc", "")) for f in dataclasses.fields(cls)}


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
    """Plain YAML/JSON data for a config dataclass (the inverse of ``build``)."""
    if dataclasses.is_dataclass(config):
        return {f.name: to_data(getattr(config, f.name)) for f in dataclasses.fields(config)}
    if isinstance(config, Mapping):
        return {k: to_data(v) for k, v in config.items()}
    if isinstance(config, list | tuple):
        return [to_data(v) for v in config]
    return config


def document(cls: type, prefix: str = "") -> list[tuple[str, str, str, str]]:
    """(dotted key, type, default, doc) rows for every option of ``cls``, depth first."""
    rows: list[tuple[str, str, str, str]] = []
    hints = get_type_hints(cls)
    instance = cls()
    for f in dataclasses.fields(cls):
        key = _join(prefix, f.name)
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            rows.append((key, "section", "", f.metadata.get("doc", "")))
            rows.extend(document(hint, key))
            continue
        default = getattr(instance, f.name)
        rows.append((key, _type_name(hint), repr(to_data(default)), f.metadata.get("doc", "")))
    return rows


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
