"""The run config: strict validation with dotted paths, overrides, documentation."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from evolve import ConfigError, RunConfig, load_config
from evolve._config import apply_overrides, config_from_data, config_to_data
from evolve._config_docs import render
from evolve._schema import document

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_are_complete_and_round_trip():
    config = config_from_data({})
    assert config_from_data(config_to_data(config)) == config


@pytest.mark.parametrize(("data", "needles"), [
    ({"llm": {"task": {"tempreature": 0.1}}}, ["llm.task.tempreature", "temperature"]),
    ({"llm": {"task": {"backend": "openai"}}}, ["llm.task.backend", "llamacpp, vllm, external"]),
    ({"llm": {"mutator": {"backend": "external"}}}, ["llm.mutator", "base_url"]),
    ({"llm": {"mutator": {"backend": "vllm"}}}, ["llm.mutator", "model"]),
    ({"budget": {"candidates": "ten"}}, ["budget.candidates", "expected int"]),
    ({"budget": {"candidates": True}}, ["budget.candidates"]),
    ({"evolution": {"population_size": 1}}, ["evolution", "population_size"]),
    ({"evolution": {"operators": {"eda": -1}}}, ["evolution", ">= 0"]),
    ({"fitness": 3}, ["fitness", "mapping"]),
    ({"seed": 1.5}, ["seed", "expected int"]),
])
def test_bad_values_are_reported_with_their_path(data, needles):
    with pytest.raises(ConfigError) as info:
        config_from_data(data)
    for needle in needles:
        assert needle in str(info.value)


def test_overrides_set_nested_keys_with_yaml_values(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text(yaml.safe_dump({"budget": {"candidates": 5}}))
    config = load_config(path, ["budget.candidates=9", "evolution.mode=steady_state",
                                "llm.task.extra_args=[--a, --b]", "budget.tokens=null"])
    assert config.name == "x"
    assert config.budget.candidates == 9 and config.budget.tokens is None
    assert config.evolution.mode == "steady_state"
    assert config.llm.task.extra_args == ("--a", "--b")
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        apply_overrides({}, ["novalue"])
    with pytest.raises(ConfigError, match="budget.candidates is not a section"):
        apply_overrides({"budget": {"candidates": 1}}, ["budget.candidates.x=1"])


def test_unreadable_and_invalid_yaml(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


@given(st.integers(min_value=1, max_value=10**6), st.integers(min_value=2, max_value=1000))
def test_any_valid_override_round_trips(candidates, population):
    data = apply_overrides({}, [f"budget.candidates={candidates}",
                                f"evolution.population_size={population}"])
    config = config_from_data(data)
    assert (config.budget.candidates, config.evolution.population_size) == (candidates, population)
    assert config_from_data(config_to_data(config)) == config


def test_every_option_is_documented_and_the_reference_is_current():
    for row in document(RunConfig):
        assert row.doc.strip(), f"option {row.key} has no documentation"
    committed = (ROOT / "docs" / "config.md").read_text()
    assert committed == render(), "docs/config.md is stale: run make docs"


def test_example_configs_are_valid():
    paths = sorted((ROOT / "runs").glob("*.yaml"))
    assert paths
    for path in paths:
        load_config(path)
