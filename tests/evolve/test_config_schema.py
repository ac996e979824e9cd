"""Every leaf of the run config refuses every bad value, with its dotted path.

The leaves are discovered from the config models (their JSON schema, which
pydantic generates from the classes), not listed by hand: a new option is
walked as soon as it exists. For each leaf the test tries wrong types, numbers
outside the range the schema states, NaN and infinities for floats, empty
strings where a string may not be empty, and unknown keys in every section,
and asserts that ``load_config`` raises a ``ConfigError`` naming exactly that
option and nothing else.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from evolve import ConfigError, RunConfig, load_config
from evolve._config import config_from_data, config_to_data

SCHEMA = RunConfig.model_json_schema()
Path_ = tuple[str | int, ...]


def deref(schema: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = schema.get("$ref")
    return SCHEMA["$defs"][ref.rsplit("/", 1)[-1]] if ref else schema


@dataclass(frozen=True)
class Leaf:
    """One option: its path, its schema without the null branch, whether null is allowed."""

    path: Path_
    schema: Mapping[str, Any]
    nullable: bool
    section: bool  # a section (a mapping of options) or a list of sections

    def __str__(self) -> str:
        return dotted(self.path)


def dotted(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def walk(schema: Mapping[str, Any], path: Path_ = ()) -> Iterator[tuple[str, Path_, Any]]:
    """('section', path, schema) for every section, ('leaf', path, Leaf) for every option."""
    yield "section", path, schema
    for name, prop in schema["properties"].items():
        here = (*path, name)
        branches = prop.get("anyOf", [prop])
        nullable = any(b.get("type") == "null" for b in branches)
        (body,) = [deref(b) for b in branches if b.get("type") != "null"]
        is_section = "properties" in body
        items = deref(body.get("items", {}))
        yield "leaf", here, Leaf(here, body, nullable, is_section or "properties" in items)
        if is_section:
            yield from walk(body, here)
        elif "properties" in items:
            yield from walk(items, (*here, 0))


SECTIONS = [(path, schema) for kind, path, schema in walk(SCHEMA) if kind == "section"]
LEAVES = [leaf for kind, _, leaf in walk(SCHEMA) if kind == "leaf"]


def model_paths(model: type[BaseModel], path: Path_ = ()) -> Iterator[Path_]:
    """Every option's path, straight from the classes' fields (a check on the schema walk)."""
    for name, field in model.model_fields.items():
        here = (*path, name)
        yield here
        inner = [a for a in (field.annotation, *getattr(field.annotation, "__args__", ()))
                 if isinstance(a, type) and issubclass(a, BaseModel)]
        if inner:
            yield from model_paths(inner[0], here if inner[0] is field.annotation
                                   else (*here, 0))


def test_the_walk_covers_every_field_of_every_model():
    assert [leaf.path for leaf in LEAVES] == list(model_paths(RunConfig))
    assert len(LEAVES) > 60 and len(SECTIONS) == 10


# -- bad values, derived from each leaf's schema ------------------------------------------

SCALARS = st.one_of(st.integers(), st.floats(allow_nan=False), st.text(max_size=8))
LISTS = st.lists(SCALARS, max_size=2)
MAPPINGS = st.dictionaries(st.from_regex(r"[a-z]{1,6}", fullmatch=True), SCALARS, max_size=2)
NON_FINITE = st.sampled_from([math.nan, math.inf, -math.inf])


def wrong_type(schema: Mapping[str, Any]) -> st.SearchStrategy[Any]:
    """Values of another type than the leaf's (bools are never numbers)."""
    if "enum" in schema:
        allowed = schema["enum"]
        return st.one_of(st.text(max_size=12).filter(lambda v: v not in allowed),
                         st.integers(), st.booleans(), LISTS, MAPPINGS)
    kind = schema.get("type")
    if "properties" in schema or kind == "object":
        return st.one_of(st.integers(), st.floats(), st.text(max_size=8), st.booleans(), LISTS)
    if kind == "array":
        return st.one_of(st.integers(), st.floats(), st.text(max_size=8), st.booleans(),
                         MAPPINGS)
    if kind == "integer":  # ints are strict: no floats (not even 2.0), strings or bools
        return st.one_of(st.floats(), st.text(max_size=8), st.booleans(), LISTS, MAPPINGS)
    if kind == "number":
        return st.one_of(st.text(max_size=8), st.booleans(), LISTS, MAPPINGS)
    if kind == "string":
        return st.one_of(st.integers(), st.floats(), st.booleans(), LISTS, MAPPINGS)
    if kind == "boolean":  # strict: no 0/1, no "yes"
        return st.one_of(st.integers(), st.floats(), st.text(max_size=8), LISTS, MAPPINGS)
    raise AssertionError(f"a leaf of an unexpected schema: {schema}")


def out_of_range(schema: Mapping[str, Any]) -> list[st.SearchStrategy[Any]]:
    """Numbers just past and far past each bound the schema states; NaN/inf for floats."""
    kind = schema.get("type")
    found: list[st.SearchStrategy[Any]] = []
    if kind not in ("integer", "number"):
        return found
    for key, below in (("minimum", True), ("exclusiveMinimum", True),
                       ("maximum", False), ("exclusiveMaximum", False)):
        if key not in schema:
            continue
        bound = schema[key]
        inclusive_bad = key.startswith("exclusive")  # the bound itself is refused
        if below:
            top = math.ceil(bound) - (0 if inclusive_bad else 1)
            found.append(st.integers(max_value=top))
            if kind == "number":
                found.append(st.floats(max_value=bound, exclude_max=not inclusive_bad,
                                       allow_nan=False, allow_infinity=False)
                             .filter(lambda v, b=bound, i=inclusive_bad: v <= b if i else v < b))
        else:
            low = math.floor(bound) + (0 if inclusive_bad else 1)
            found.append(st.integers(min_value=low))
            if kind == "number":
                found.append(st.floats(min_value=bound, exclude_min=not inclusive_bad,
                                       allow_nan=False, allow_infinity=False)
                             .filter(lambda v, b=bound, i=inclusive_bad: v >= b if i else v > b))
    if kind == "number":
        found.append(NON_FINITE)
    return found


def bad_values(leaf: Leaf) -> st.SearchStrategy[tuple[Path_, Any]]:
    """(path of the bad value, value to put at the leaf), the path within the leaf for items."""
    schema = leaf.schema
    own = [wrong_type(schema), *out_of_range(schema)]
    if not leaf.nullable and not leaf.section:
        own.append(st.none())
    if schema.get("type") == "string" and schema.get("minLength", 0) >= 1:
        own.append(st.just(""))
    if "range" in schema and schema.get("type") == "string":  # custom checks: blank text
        own.append(st.sampled_from([" ", "\t", "  \n"]))
    options = [st.tuples(st.just(leaf.path), st.one_of(own))]
    items = deref(schema.get("items", {}))
    if items and "properties" not in items:  # a list of scalars: a bad item among good ones
        inner = Leaf((*leaf.path, 0), items, False, False)
        options.append(bad_values(inner).map(lambda pv: (pv[0], [pv[1]])))
    values = schema.get("additionalProperties")
    if isinstance(values, Mapping) and values.get("type"):  # a mapping with typed values
        inner = Leaf((*leaf.path, "k"), values, False, False)
        options.append(bad_values(inner).map(lambda pv: (pv[0], {"k": pv[1]})))
    return st.one_of(options)


def nest(path: Path_, value: Any) -> Any:
    """YAML data with ``value`` at ``path`` (a list index holds a one-item list)."""
    for part in reversed(path):
        value = [value] if isinstance(part, int) else {part: value}
    return value


def load(data: Mapping[str, Any]) -> Any:
    """``load_config`` of ``data`` written as a YAML file, as a user would run it."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "run.yaml"
        path.write_text(yaml.safe_dump(data, allow_unicode=True))
        return load_config(path)


def assert_refused(data: Mapping[str, Any], where: str) -> str:
    with pytest.raises(ConfigError) as info:
        load(data)
    message = str(info.value)
    # exactly one problem, and it names the option
    assert "\n" not in message, message
    assert message.startswith(f"{where}: "), message
    return message


FEW = settings(max_examples=25, deadline=None,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@pytest.mark.parametrize("leaf", LEAVES, ids=str)
@FEW
@given(data=st.data())
def test_every_leaf_refuses_bad_values_with_its_dotted_path(leaf: Leaf, data: st.DataObject):
    where, value = data.draw(bad_values(leaf))
    # for a list item or a mapping value the problem is at the item
    config = nest(leaf.path, value)
    if where == leaf.path:
        assert_refused(config, dotted(leaf.path))
    else:
        assert_refused(config, dotted(where))


@pytest.mark.parametrize("section", [path for path, _ in SECTIONS],
                         ids=lambda p: dotted(p) or "top")
@FEW
@given(key=st.from_regex(r"[a-z_][a-z0-9_]{0,15}", fullmatch=True))
def test_every_section_refuses_unknown_keys_and_names_the_allowed_ones(section, key):
    allowed = sorted(dict(SECTIONS)[section]["properties"])
    if key in allowed:
        return
    message = assert_refused(nest((*section, key), 1), dotted((*section, key)))
    assert "unknown option" in message
    assert message.endswith("allowed here: " + ", ".join(allowed))


def test_the_defaults_load_and_round_trip():
    config = load({})
    assert config == RunConfig(name="run")
    assert config_from_data(config_to_data(config)) == config
    assert config_from_data(None) == RunConfig()  # an empty YAML file


def good_value(schema: Mapping[str, Any]) -> st.SearchStrategy[Any]:
    """Numbers inside the range the schema states (the bounds themselves included)."""
    low, high = schema.get("minimum"), schema.get("maximum")
    low_x, high_x = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if schema["type"] == "integer":
        return st.integers(
            min_value=low if low is not None else (low_x + 1 if low_x is not None else None),
            max_value=high if high is not None else (high_x - 1 if high_x is not None else None))
    return st.floats(min_value=low if low is not None else low_x,
                     max_value=high if high is not None else high_x,
                     exclude_min=low_x is not None, exclude_max=high_x is not None,
                     allow_nan=False, allow_infinity=False)


NUMERIC = [leaf for leaf in LEAVES if leaf.schema.get("type") in ("integer", "number")]


@pytest.mark.parametrize("leaf", NUMERIC, ids=str)
@FEW
@given(data=st.data())
def test_every_number_inside_its_range_loads_and_round_trips(leaf: Leaf, data: st.DataObject):
    value = data.draw(good_value(leaf.schema))
    config = load(nest(leaf.path, value))
    node: Any = config
    for part in leaf.path:
        node = node[part] if isinstance(part, int) else getattr(node, part)
    assert node == value and type(node) is (int if leaf.schema["type"] == "integer" else float)
    assert config_from_data(config_to_data(config)) == config


def edge_cases() -> Iterator[tuple[Path_, Any]]:
    """The values of the issue's kind, for every leaf they apply to (not left to chance)."""
    for leaf in LEAVES:
        kind = leaf.schema.get("type")
        if kind == "number":
            for value in (math.nan, math.inf, -math.inf, True):
                yield leaf.path, value
        if kind == "integer":
            for value in (1.0, "1", True):
                yield leaf.path, value
        if kind == "string" and "enum" not in leaf.schema:
            yield leaf.path, ""
        if kind in ("integer", "number") and "minimum" in leaf.schema:
            yield leaf.path, leaf.schema["minimum"] - 1
        if kind in ("integer", "number") and "exclusiveMinimum" in leaf.schema:
            yield leaf.path, leaf.schema["exclusiveMinimum"]


@pytest.mark.parametrize(("path", "value"), list(edge_cases()),
                         ids=lambda x: dotted(x) if isinstance(x, tuple) else repr(x))
def test_non_finite_wrong_typed_empty_and_boundary_values_are_refused(path, value):
    assert_refused(nest(path, value), dotted(path))


def test_every_number_has_a_lower_bound_and_every_string_may_not_be_empty():
    """The policy: no option is left without a range (which is how bad values slipped in)."""
    def scalars(leaf_schema: Mapping[str, Any], path: Path_) -> Iterator[tuple[str, Any]]:
        yield dotted(path), leaf_schema
        for key in ("items", "additionalProperties"):
            inner = leaf_schema.get(key)
            if isinstance(inner, Mapping) and inner.get("type"):
                yield from scalars(deref(inner), (*path, "*"))

    for leaf in LEAVES:
        for where, schema in scalars(leaf.schema, leaf.path):
            if schema.get("type") in ("integer", "number"):
                assert "minimum" in schema or "exclusiveMinimum" in schema, where
            if schema.get("type") == "string" and "enum" not in schema:
                assert schema.get("minLength", 0) >= 1, where
