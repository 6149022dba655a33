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
    config = load_config(
        overrides={"endpoint": {"base_url": "http://x/v1", "model": "m", "rpm": 60.0}}
    )
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
        ("[[endpoints]]\nrpm = inf\n", "endpoints[0].rpm: must be a finite number, got inf"),
        ("[[endpoints]]\ntpm = nan\n", "endpoints[0].tpm: must be a finite number, got nan"),
        ("[generation]\ntemperature = nan\n", "generation.temperature: must be a finite number"),
        ("[run]\ndrain_seconds = inf\n", "run.drain_seconds: must be a finite number, got inf"),
        (
            "[generation]\ndemonstrations = 4\nmachine_demonstrations = 5\n",
            "generation: machine_demonstrations (5) must be <= demonstrations (4)",
        ),
        (
            "[[endpoints]]\nbase_url = 'http://h/v1'\nmodel = ''\n",
            "endpoints[0].model: must not be empty when base_url is set",
        ),
        (
            "[[endpoints]]\nbase_url = 'http://h/v1'\nmodel = 'm'\n[[endpoints]]\n"
            "base_url = 'http://h/v1'\n",
            "endpoints[1].model: must not be empty when base_url is set",
        ),
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


def test_non_finite_floats_from_flags_name_the_key() -> None:
    endpoint = {"base_url": "http://h/v1", "model": "m"}
    for value in (float("nan"), float("inf"), float("-inf")):
        with pytest.raises(ConfigError, match=r"endpoints\[0\]\.rpm: must be a finite number"):
            load_config(overrides={"endpoint": {**endpoint, "rpm": value}})
    with pytest.raises(ConfigError, match=r"^SELFINSTRUCT_GENERATION_TOP_P: generation\.top_p: "):
        load_config(environ={"SELFINSTRUCT_GENERATION_TOP_P": "nan"})


def test_as_many_machine_as_total_demonstrations_is_allowed() -> None:
    config = load_config(
        overrides={"generation": {"demonstrations": 2, "machine_demonstrations": 2}}
    )
    assert config.generation.machine_demonstrations == 2


def test_credentials_in_a_base_url_are_refused_without_repeating_them(tmp_path: Path) -> None:
    secret = "hunter2hunter2"
    for url in (
        f"http://user:{secret}@127.0.0.1:9/v1",
        f"https://{secret}@api.example.com/v1",
        f"user:{secret}@api.example.com/v1",
    ):
        with pytest.raises(ConfigError) as raised:
            load_config(overrides={"endpoint": {"base_url": url, "model": "m"}})
        message = str(raised.value)
        assert message.startswith("endpoints[0].base_url: holds credentials")
        assert "endpoints[0].api_key_env (OPENAI_API_KEY)" in message
        assert secret not in message
    path = write(
        tmp_path,
        f"[[endpoints]]\nbase_url = 'http://a/v1'\nmodel = 'm'\n[[endpoints]]\n"
        f"base_url = 'http://u:{secret}@b/v1'\nmodel = 'm'\napi_key_env = 'B_KEY'\n",
    )
    with pytest.raises(ConfigError, match=r"endpoints\[1\]\.api_key_env \(B_KEY\)") as raised:
        load_config(path)
    assert secret not in str(raised.value)


def test_an_at_sign_after_the_host_is_not_taken_for_credentials() -> None:
    url = "http://127.0.0.1:9/v1/deployments/a@b"
    config = load_config(overrides={"endpoint": {"base_url": url, "model": "m"}})
    assert config.endpoints[0].base_url == url


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "SELFINSTRUCT_GENRATION_TOP_P",
            "unknown section 'genration' (sections: batch, classification,",
        ),
        ("SELFINSTRUCT_GENERATION_TOPP", "[generation] has no key 'topp' (known keys:"),
        ("SELFINSTRUCT_RUN", "unknown section 'run'"),
        ("SELFINSTRUCT_FILTERS_SETTINGS", "[filters] has no key 'settings'"),
    ],
)
def test_a_misspelt_environment_variable_is_an_error_naming_it(name: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(environ={name: "0.3"})
    assert str(raised.value).startswith(f"{name}: no such setting: ")
    assert message in str(raised.value)


def test_a_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"^SELFINSTRUCT_RUN_TARGET: run\.target: expected int"):
        load_config(environ={"SELFINSTRUCT_RUN_TARGET": "ten"})


def test_variables_that_are_not_settings_are_left_alone() -> None:
    environ = {
        "SELFINSTRUCT_CONFIG": "elsewhere.toml",  # the config path, read by the CLI
        "SELFINSTRUCT_LLAMA_FORCE": "1",  # scripts/build-llama.sh
        "SELFINSTRUCT_WHEELHOUSE": "/tmp/wheels",
        "SELFINSTRUCT_ENDPOINT_MODEL": "123",  # a name, though it parses as a number
        "SELFINSTRUCT_ENDPOINT_BASE_URL": "http://h/v1",
        "SELFINSTRUCT_PLUGINS_DISABLED": "write_a_program,blacklist",
    }
    config = load_config(environ=environ)
    assert config.endpoints[0].model == "123"
    assert config.plugins.disabled == ("write_a_program", "blacklist")


@pytest.mark.parametrize("kind", ["directory", "dangling link"])
def test_a_config_path_that_is_not_a_readable_file_is_named(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "run.toml"
    if kind == "directory":
        path.mkdir()
    else:
        path.symlink_to(tmp_path / "gone" / "run.toml")
    with pytest.raises(ConfigError, match=f"^{path}: "):
        load_config(path)
