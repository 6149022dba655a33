"""Configuration: TOML, environment and flags merge in order and bad values name their key."""

from __future__ import annotations

from pathlib import Path

import pytest

from selfinstruct_async.config import load_config
from selfinstruct_async.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_are_the_papers_sampling_parameters() -> None:
    config = load_config()
    assert (config.generation.temperature, config.generation.top_p) == (0.7, 0.5)
    assert config.generation.presence_penalty == 2.0
    assert config.generation.max_tokens == 1024
    assert (config.generation.demonstrations, config.generation.machine_demonstrations) == (8, 2)
    assert config.classification.temperature == 0.0 and config.classification.max_tokens == 3
    assert config.instances.presence_penalty == 1.5 and config.instances.max_instances == 5


def test_flags_override_environment_which_overrides_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[run]\ntarget = 10\nseed = 1\n[[endpoints]]\nmodel = 'file'\n")
    config = load_config(
        path,
        environ={"SELFINSTRUCT_RUN_TARGET": "20", "SELFINSTRUCT_RUN_SEED": "2"},
        overrides={"run": {"target": 30}, "endpoint": {"base_url": "http://h/v1"}},
    )
    assert config.run.target == 30
    assert config.run.seed == 2
    assert config.endpoints[0].model == "file"
    assert config.endpoints[0].base_url == "http://h/v1"


def test_endpoint_flags_create_an_endpoint_when_the_file_has_none() -> None:
    config = load_config(overrides={"endpoint": {"base_url": "http://x/v1", "rpm": 60.0}})
    assert len(config.endpoints) == 1 and config.endpoints[0].rpm == 60.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[run]\ntargte = 3\n", "run.targte: unknown key"),
        ("[run]\ntarget = 'ten'\n", "run.target: expected int"),
        ("[run]\ntarget = -1\n", "run.target: must be >= 0"),
        ("[generation]\ntop_p = 1.5\n", "generation.top_p: must be <= 1.0"),
        ("[[endpoints]]\napi = 'rest'\n", "endpoints[0].api: expected 'completions' or 'chat'"),
        ("[[endpoints]]\napi_key = 'sk-secret'\n", "endpoints[0].api_key: unknown key"),
        ("[filters]\non_error = 'ignore'\n", "filters.on_error"),
        ("[plugins]\ndisabled = 'a'\n", "plugins.disabled: expected a list"),
        ("[nope]\nx = 1\n", "nope: unknown key"),
        ("[run\n", "Expected ']'"),
    ],
)
def test_bad_values_fail_naming_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert str(path) in str(raised.value)
    assert message in str(raised.value)


def test_missing_config_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "absent.toml")


def test_per_filter_tables_are_kept_for_the_filters_to_validate(tmp_path: Path) -> None:
    path = write(tmp_path, "[filters]\non_error = 'stop'\n[filters.word_count]\nmin_words = 5\n")
    config = load_config(path)
    assert config.filters.on_error == "stop"
    assert config.filters.settings == {"word_count": {"min_words": 5}}


def test_saved_config_never_holds_the_api_key() -> None:
    config = load_config(
        environ={"OPENAI_API_KEY": "sk-do-not-store"}, overrides={"endpoint": {"model": "m"}}
    )
    assert "sk-do-not-store" not in repr(config.to_dict())
    assert config.endpoints[0].api_key_env == "OPENAI_API_KEY"
