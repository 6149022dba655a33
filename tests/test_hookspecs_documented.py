"""Meta-tests: every hookspec is documented for plugin authors and exercised by a test."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pluggy
import pytest

from selfinstruct_async import hookspecs

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "plugins.md"
TESTS = ROOT / "tests"
SPEC_MARK = f"{hookspecs.PROJECT_NAME}_spec"  # the attribute pluggy's HookspecMarker sets


def _hookspecs() -> dict[str, Callable[..., Any]]:
    found: dict[str, Callable[..., Any]] = {
        name: func
        for name, func in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(func, SPEC_MARK)
    }
    # The module as pluggy sees it: the same hooks, so nothing is missed or invented here.
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    relay = {name for name in vars(pm.hook) if not name.startswith("_")}
    assert relay == set(found)
    return found


HOOKSPECS = _hookspecs()


def _sections(markdown: str) -> dict[str, str]:
    """``## heading`` -> the text up to the next ``##`` heading (fenced code left intact)."""
    sections: dict[str, str] = {}
    heading: str | None = None
    lines: list[str] = []
    fenced = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        if not fenced and line.startswith("## "):
            if heading is not None:
                sections[heading] = "\n".join(lines)
            heading, lines = line[3:].strip(), []
        elif heading is not None:
            lines.append(line)
    if heading is not None:
        sections[heading] = "\n".join(lines)
    return sections


def _code_blocks(section: str) -> list[str]:
    return re.findall(r"^```[a-z]*\n(.*?)^```", section, flags=re.MULTILINE | re.DOTALL)


def _squash(text: str) -> str:
    """Whitespace-insensitive form, so a signature may be wrapped over several lines."""
    text = re.sub(r"\s+", " ", text)
    return re.sub(r"\(\s+", "(", re.sub(r",?\s+\)", ")", text))


def expected_signature(name: str, func: Callable[..., Any]) -> str:
    # With ``from __future__ import annotations`` the annotations are the source strings.
    annotations = dict(func.__annotations__)
    returns = annotations.pop("return")
    params = ", ".join(f"{p}: {annotations[p]}" for p in inspect.signature(func).parameters)
    return f"def {name}({params}) -> {returns}"


SECTIONS = _sections(DOCS.read_text(encoding="utf-8"))


def test_hookspecs_are_found() -> None:
    # Guards the meta-tests below against passing vacuously on an empty discovery.
    assert {"register_instruction_filters", "task_accepted"} <= set(HOOKSPECS)


@pytest.mark.parametrize("name", sorted(HOOKSPECS))
def test_hookspec_has_a_one_line_docstring(name: str) -> None:
    doc = inspect.getdoc(HOOKSPECS[name])
    assert doc, f"hookspec {name} has no docstring"
    assert "\n" not in doc.strip(), f"hookspec {name}: docstring is more than one line"


@pytest.mark.parametrize("name", sorted(HOOKSPECS))
def test_hookspec_has_a_section_showing_its_signature(name: str) -> None:
    assert name in SECTIONS, f"docs/plugins.md has no '## {name}' heading"
    section = SECTIONS[name]
    signature = expected_signature(name, HOOKSPECS[name])
    blocks = [_squash(block) for block in _code_blocks(section)]
    assert any(signature in block for block in blocks), (
        f"docs/plugins.md '## {name}': no code block shows `{signature}`"
    )
    if getattr(HOOKSPECS[name], SPEC_MARK).get("firstresult"):
        assert "firstresult" in section, f"'## {name}' does not say the first result wins"


def test_every_hook_like_heading_is_a_hookspec() -> None:
    # A section left behind for a renamed or removed hook would mislead plugin authors.
    hook_like = {h for h in SECTIONS if re.fullmatch(r"[a-z][a-z0-9_]*", h)}
    assert hook_like - set(HOOKSPECS) == set()


def _test_sources() -> dict[Path, str]:
    here = Path(__file__).resolve()
    return {
        path: path.read_text(encoding="utf-8")
        for path in sorted(TESTS.rglob("test_*.py"))
        if path.resolve() != here
    }


@pytest.mark.parametrize("name", sorted(HOOKSPECS))
def test_hookspec_is_exercised_by_a_test(name: str) -> None:
    word = re.compile(rf"\b{re.escape(name)}\b")
    users = [path.name for path, text in _test_sources().items() if word.search(text)]
    assert users, f"no test under tests/ (other than this one) mentions the hook {name}"
