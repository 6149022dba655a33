"""The plugin manager and a typed facade over ``pm.hook``.

Every plugin, the built-in filters included, is found through the ``selfinstruct_async``
entry-point group. ``plugins.disabled`` names plugins or single filters; a name that is
neither is an error listing the names there are. Tests and embedders register plugin
objects in-process with ``pm.register(obj)`` and unregister them in ``finally``.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pluggy

from . import hookspecs
from .config_build import build
from .errors import ConfigError, PluginError
from .filters import FilterChain, InstanceFilter, InstructionFilter, OnError
from .hookspecs import PROJECT_NAME
from .prompts import PromptTemplates
from .records import RejectionRecord, Task

ENTRY_POINT_GROUP = PROJECT_NAME


class SelfInstructPluginManager(pluggy.PluginManager):
    """A plugin manager that also knows which filters ``plugins.disabled`` leaves out.

    ``plugins.disabled`` takes plugin (entry-point) names and filter names alike, so
    ``SELFINSTRUCT_PLUGINS_DISABLED=write_a_program`` drops one filter of a plugin whose
    other filters stay.
    """

    def __init__(self, project_name: str) -> None:
        super().__init__(project_name)
        self.disabled_filters: frozenset[str] = frozenset()
        # Names that matched nothing installed; an in-process plugin may still claim them
        # (see Plugins.build_filter_chain), otherwise they are an error.
        self.unmatched_disabled: tuple[str, ...] = ()
        self.known_plugins: frozenset[str] = frozenset()
        self.known_filters: frozenset[str] = frozenset()


def make_plugin_manager(
    disabled: Iterable[str] = (), *, load_entry_points: bool = True
) -> SelfInstructPluginManager:
    """A plugin manager with every installed plugin except the ``disabled`` ones.

    A ``disabled`` name is an entry-point name (the plugin is not even imported) or the
    name of a filter (the plugin is loaded, that filter is left out of the chain).
    """
    pm = SelfInstructPluginManager(PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    disabled = list(dict.fromkeys(disabled))
    for name in disabled:
        pm.set_blocked(name)
    found = _entry_points() if load_entry_points else []
    for entry_point, dist in found:
        if pm.get_plugin(entry_point.name) is not None or pm.is_blocked(entry_point.name):
            continue
        try:
            plugin = entry_point.load()
        except Exception as e:
            raise PluginError(
                f"plugin {entry_point.name!r} ({entry_point.value}, from {dist.name} "
                f"{dist.version}) failed to load: {type(e).__name__}: {e}"
            ) from e
        pm.register(plugin, name=entry_point.name)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as e:
        name = pm.get_name(e.plugin) or repr(e.plugin)
        raise PluginError(f"plugin {name!r} implements an unknown hook: {e}") from None
    _resolve_disabled(pm, disabled, found)
    return pm


def _resolve_disabled(
    pm: SelfInstructPluginManager,
    disabled: list[str],
    found: list[tuple[importlib.metadata.EntryPoint, importlib.metadata.Distribution]],
) -> None:
    """Sort ``disabled`` into plugin names, filter names and names matching nothing."""
    if not disabled:
        return
    plugin_names = {ep.name for ep, _ in found}
    loaded_filters = {
        name for _, plugin in pm.list_name_plugin() if plugin for name in _filters_of(plugin)
    }
    rest = [n for n in disabled if n not in plugin_names]
    pm.disabled_filters = frozenset(n for n in rest if n in loaded_filters)
    unmatched = [n for n in rest if n not in loaded_filters]
    if unmatched:
        # A filter of a plugin that is disabled too is a known name, not a typo.
        loaded_filters |= _filters_of_blocked(pm, found)
        unmatched = [n for n in unmatched if n not in loaded_filters]
    pm.unmatched_disabled = tuple(unmatched)
    pm.known_plugins, pm.known_filters = frozenset(plugin_names), frozenset(loaded_filters)


def _filters_of_blocked(
    pm: pluggy.PluginManager,
    found: list[tuple[importlib.metadata.EntryPoint, importlib.metadata.Distribution]],
) -> set[str]:
    names: set[str] = set()
    for entry_point, _ in found:
        if not pm.is_blocked(entry_point.name):
            continue
        try:  # only to list its filters; a plugin disabled because it is broken may fail
            names.update(_filters_of(entry_point.load()))
        except Exception:
            continue
    return names


def _check_disabled(pm: pluggy.PluginManager, present: set[str]) -> frozenset[str]:
    """The filters ``plugins.disabled`` leaves out; a name that matches nothing is an error."""
    unmatched = [n for n in getattr(pm, "unmatched_disabled", ()) if n not in present]
    registered = {name for name, plugin in pm.list_name_plugin() if plugin}
    unmatched = [n for n in unmatched if n not in registered]
    if unmatched:
        # In-process plugins registered without a name are named by their id: not useful here.
        plugins = set(getattr(pm, "known_plugins", ())) | {n for n in registered if not n.isdigit()}
        filters = set(getattr(pm, "known_filters", ())) | present
        raise PluginError(
            f"plugins.disabled: {unmatched[0]!r} is neither an installed plugin nor a filter "
            f"(plugins: {', '.join(sorted(plugins)) or 'none'}; "
            f"filters: {', '.join(sorted(filters)) or 'none'})"
        )
    disabled: frozenset[str] = getattr(pm, "disabled_filters", frozenset())
    return disabled


def _entry_points() -> list[tuple[importlib.metadata.EntryPoint, importlib.metadata.Distribution]]:
    found = []
    for dist in importlib.metadata.distributions():
        for entry_point in dist.entry_points:
            if entry_point.group == ENTRY_POINT_GROUP:
                found.append((entry_point, dist))
    return sorted(found, key=lambda pair: pair[0].name)


@dataclass(frozen=True, slots=True)
class PluginInfo:
    """What ``selfinstruct plugins`` shows about one registered plugin."""

    name: str
    version: str | None
    hooks: tuple[str, ...]
    filters: tuple[str, ...]


class Plugins:
    """Typed access to the hooks, so the pipeline never touches ``pm.hook`` directly."""

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.pm = pm

    def instruction_filter_classes(self) -> list[type[InstructionFilter]]:
        found: list[type[InstructionFilter]] = []
        self.pm.hook.register_instruction_filters(register=found.append)
        return _unique(found)

    def instance_filter_classes(self) -> list[type[InstanceFilter]]:
        found: list[type[InstanceFilter]] = []
        self.pm.hook.register_instance_filters(register=found.append)
        return _unique(found)

    def build_filter_chain(
        self,
        settings: Mapping[str, Mapping[str, Any]],
        on_error: OnError = "reject",
        *,
        allow_unfiltered: bool = True,
    ) -> FilterChain:
        """Instantiate every filter with its validated ``[filters.<name>]`` table.

        With ``allow_unfiltered`` false, a chain without any instruction filter is an error.
        """
        instruction_classes = self.instruction_filter_classes()
        instance_classes = self.instance_filter_classes()
        present = {c.name for c in instruction_classes} | {c.name for c in instance_classes}
        left_out = _check_disabled(self.pm, present)
        instruction_classes = [c for c in instruction_classes if c.name not in left_out]
        instance_classes = [c for c in instance_classes if c.name not in left_out]
        if not instruction_classes and not allow_unfiltered:
            loaded = ", ".join(sorted(n for n, p in self.pm.list_name_plugin() if p)) or "none"
            raise ConfigError(
                "filters: no instruction filter is loaded (plugins loaded: "
                f"{loaded}); the built-in ones come from the selfinstruct_plugins entry "
                "points, so reinstall selfinstruct-async, check plugins.disabled, or set "
                "filters.allow_unfiltered = true to run without filters"
            )
        known = {c.name for c in instruction_classes} | {c.name for c in instance_classes}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise ConfigError(
                f"filters.{unknown[0]}: no such filter is loaded "
                f"(loaded: {', '.join(sorted(known)) or 'none'})"
            )
        return FilterChain(
            [_instantiate(c, settings) for c in instruction_classes],
            [_instantiate(c, settings) for c in instance_classes],
            on_error=on_error,
        )

    def prompt_templates(self, default: PromptTemplates) -> PromptTemplates:
        """The templates a plugin supplies, or ``default``; the first plugin to answer wins."""
        chosen = self.pm.hook.prompt_templates(templates=default)
        if chosen is None:
            return default
        if not isinstance(chosen, PromptTemplates):
            raise PluginError(
                f"prompt_templates returned {type(chosen).__name__}, not PromptTemplates"
            )
        return chosen

    def task_accepted(self, task: Task) -> None:
        self.pm.hook.task_accepted(task=task)

    def candidate_rejected(self, rejection: RejectionRecord) -> None:
        self.pm.hook.candidate_rejected(rejection=rejection)

    def describe(self) -> list[PluginInfo]:
        """Registered plugins with distribution versions, hooks and filters."""
        versions = {ep.name: f"{dist.name} {dist.version}" for ep, dist in _entry_points()}
        infos = []
        for name, plugin in sorted(self.pm.list_name_plugin(), key=lambda item: item[0]):
            if plugin is None:
                continue
            hooks = tuple(sorted(h.name for h in self.pm.get_hookcallers(plugin) or ()))
            infos.append(PluginInfo(name, versions.get(name), hooks, _filters_of(plugin)))
        return infos


def _filters_of(plugin: object) -> tuple[str, ...]:
    """Names of the filters one plugin registers, asked of that plugin alone."""
    found: list[type[Any]] = []
    sub = pluggy.PluginManager(PROJECT_NAME)
    sub.add_hookspecs(hookspecs)
    sub.register(plugin)
    sub.hook.register_instruction_filters(register=found.append)
    sub.hook.register_instance_filters(register=found.append)
    return tuple(cls.name for cls in found)


def _unique(classes: list[type[Any]]) -> list[type[Any]]:
    seen: dict[str, type[Any]] = {}
    for cls in classes:
        name = getattr(cls, "name", "")
        if not name:
            raise PluginError(f"filter class {cls.__qualname__} has no 'name'")
        if name in seen and seen[name] is not cls:
            raise PluginError(
                f"two filters are named {name!r}: {seen[name].__module__} and {cls.__module__}"
            )
        seen[name] = cls
    return list(seen.values())


def _instantiate(cls: type[Any], settings: Mapping[str, Mapping[str, Any]]) -> Any:
    schema = getattr(cls, "Settings", None)
    table = settings.get(cls.name, {})
    if schema is None:
        if table:
            raise ConfigError(f"filters.{cls.name}: this filter takes no settings")
        return cls()
    return cls(build(schema, table, f"filters.{cls.name}"))
