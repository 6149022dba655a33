"""Named presets: ``paper`` switches every deliberate deviation back to the original's choice."""

from __future__ import annotations

from pathlib import Path

import pytest

from selfinstruct_async.config import PRESETS, load_config
from selfinstruct_async.errors import ConfigError


def test_defaults_name_no_preset() -> None:
    assert load_config().preset == ""


def test_paper_preset_switches_parsers_capitalisation_and_project_filters_off() -> None:
    config = load_config(preset="paper")
    assert config.preset == "paper"
    assert config.generation.parser == "paper"
    assert config.generation.capitalize is True
    assert config.instances.parser == "paper"
    assert {"non_text_modality", "control_characters"} <= set(config.plugins.disabled)


def test_file_settings_override_the_preset(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text('preset = "paper"\n[generation]\ncapitalize = false\n')
    config = load_config(path)
    assert config.preset == "paper"
    assert config.generation.capitalize is False
    assert config.generation.parser == "paper"


def test_preset_flag_beats_the_variable_which_beats_the_file(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text('preset = "nonexistent"\n')
    with pytest.raises(ConfigError, match=r"run\.toml: preset: unknown preset 'nonexistent'"):
        load_config(path)
    config = load_config(path, environ={"SELFINSTRUCT_PRESET": "paper"})
    assert config.preset == "paper"
    assert load_config(path, environ={"SELFINSTRUCT_PRESET": "bogus"}, preset="").preset == ""


def test_unknown_preset_names_the_known_ones() -> None:
    with pytest.raises(
        ConfigError, match=r"SELFINSTRUCT_PRESET: unknown preset 'papr' \(presets: paper\)"
    ):
        load_config(environ={"SELFINSTRUCT_PRESET": "papr"})


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_is_a_valid_configuration(name: str) -> None:
    assert load_config(preset=name).preset == name


@pytest.mark.parametrize(
    ("text", "tolerant", "paper"),
    [
        ("Yes", True, True),
        (" yes\n", True, True),
        ("**Yes**", True, False),
        ("No", False, False),
        ("Answer: yes.", True, False),
        ("Maybe", None, False),
    ],
)
def test_classification_answers_read_tolerantly_or_exactly_as_the_paper(
    text: str, tolerant: bool | None, paper: bool
) -> None:
    from selfinstruct_async.stages.identify_classification import read_answer

    assert read_answer(text, "tolerant") is tolerant
    assert read_answer(text, "paper") is paper


@pytest.mark.anyio
async def test_the_preset_flag_reaches_the_run_and_its_saved_configuration(
    base_url: str, tmp_path: Path
) -> None:
    import json
    import sys

    import anyio

    out = tmp_path / "run"
    command = [sys.executable, "-m", "selfinstruct_async", "run", "--out", str(out)]
    command += ["--base-url", base_url, "--model", "sim", "--target", "2", "--preset", "paper"]
    done = await anyio.run_process(command, check=False)
    assert done.returncode == 0, done.stderr.decode()
    saved = json.loads((out / "config.json").read_text())
    assert saved["preset"] == "paper"
    assert saved["generation"]["parser"] == "paper"
    assert "non_text_modality" in saved["plugins"]["disabled"]
