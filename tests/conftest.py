"""Shared fixtures: the plugin manager, run directories and scripted clients."""

from __future__ import annotations

from collections.abc import Iterator

import pluggy
import pytest

from selfinstruct_async.plugins import make_plugin_manager

pytest_plugins = ["tests.fixtures.simulator"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def pm() -> Iterator[pluggy.PluginManager]:
    """A plugin manager with every installed plugin, as a run would build it."""
    yield make_plugin_manager()
