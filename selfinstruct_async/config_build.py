"""Settings dataclasses built from TOML and environment values, every error naming its key.

:func:`build` checks a table against a frozen dataclass: unknown keys, wrong types
(``Literal`` choices, unions, lists, nested tables) and the bounds a field's metadata
gives (:func:`bounds`). The run configuration and plugins' ``[filters.<name>]`` tables
use it, so their errors read the same: ``generation.temperature: must be <= 2.0, got 3``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar

from .errors import ConfigError

T = TypeVar("T")


def bounds(lo: float | None = None, hi: float | None = None) -> dict[str, float | None]:
    """Field metadata: the least and greatest value :func:`build` accepts."""
    return {"min": lo, "max": hi}


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


def _non_finite(value: Any) -> bool:
    return isinstance(value, float) and not math.isfinite(value)


def _coerce(tp: Any, value: Any, key: str) -> Any:
    """Return ``value`` as type ``tp`` or raise ConfigError naming ``key``."""
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in typing.get_args(tp):
            return None
        if _non_finite(value) and float in typing.get_args(tp):
            return _coerce(float, value, key)  # raises: say why, not just "expected float"
        for arg in typing.get_args(tp):
            if arg is type(None):
                continue
            # The first member that takes the value wins; if none does, the error names
            # the whole union, not the last member tried.
            with contextlib.suppress(ConfigError):
                return _coerce(arg, value, key)
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
        if _non_finite(value):
            # nan passes every range check and is not JSON; inf means "no limit" nowhere here.
            raise ConfigError(f"{key}: must be a finite number, got {value!r}")
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


def field_value(hint: Any, spec: dataclasses.Field[Any], value: Any, key: str) -> Any:
    """One field's ``value`` checked against its type and the bounds in its metadata."""
    if hint == Mapping[str, Mapping[str, Any]]:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a table, got {value!r}")
        return {k: dict(v) if isinstance(v, Mapping) else v for k, v in value.items()}
    coerced = _coerce(hint, value, key)
    bounds = spec.metadata
    if coerced is not None and bounds:
        lo, hi = bounds.get("min"), bounds.get("max")
        if lo is not None and coerced < lo:
            raise ConfigError(f"{key}: must be >= {lo}, got {value!r}")
        if hi is not None and coerced > hi:
            raise ConfigError(f"{key}: must be <= {hi}, got {value!r}")
    return coerced


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
    values = {
        name: field_value(hints[name], fields[name], value, f"{prefix}{name}")
        for name, value in data.items()
    }
    try:
        return cls(**values)
    except (ValueError, TypeError) as e:  # a dataclass's own __post_init__ checks
        raise ConfigError(f"{where or 'config'}: {e}") from None
