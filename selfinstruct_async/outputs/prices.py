"""Token prices for ``stats`` and ``report``: USD per million prompt and completion tokens.

From ``--prices FILE`` (TOML, see :func:`load_prices`) or else the ``[[endpoints]]``
``prompt_price`` / ``completion_price`` saved in the run's ``config.json``
(:func:`prices_from_run`). Requests are spread over the endpoints, so several endpoints
with different prices are averaged (the usage snapshot does not say which endpoint served
a request). Errors name the file and the key.
"""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..checkpoint.run_files import CONFIG
from ..errors import StatsError


@dataclass(frozen=True)
class Price:
    """USD per million prompt and completion tokens."""

    prompt: float = 0.0
    completion: float = 0.0

    def cost(self, prompt_tokens: float, completion_tokens: float) -> float:
        return (prompt_tokens * self.prompt + completion_tokens * self.completion) / 1e6


@dataclass(frozen=True)
class PriceTable:
    """A default price, optional per-stage prices, and where they came from."""

    default: Price
    stages: Mapping[str, Price] = field(default_factory=dict)
    source: str = ""

    def for_stage(self, stage: str) -> Price:
        return self.stages.get(stage, self.default)

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "prompt_price": self.default.prompt,
            "completion_price": self.default.completion,
            "stages": {
                name: {"prompt_price": p.prompt, "completion_price": p.completion}
                for name, p in sorted(self.stages.items())
            },
        }


def _price_value(table: Mapping[str, Any], key: str, where: str) -> float:
    value = table.get(key, 0.0)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise StatsError(f"{where}{key}: expected a number, got {type(value).__name__}")
    if not math.isfinite(value) or value < 0:
        raise StatsError(f"{where}{key}: must be a non-negative number, got {value}")
    return float(value)


def _price(table: Mapping[str, Any], where: str) -> Price:
    unknown = sorted(set(table) - {"prompt_price", "completion_price", "stages"})
    if unknown:
        raise StatsError(
            f"{where}{unknown[0]}: unknown key (expected prompt_price, completion_price, stages)"
        )
    return Price(
        _price_value(table, "prompt_price", where), _price_value(table, "completion_price", where)
    )


def _endpoint_prices(endpoints: Any, where: str) -> Price | None:
    if not isinstance(endpoints, list) or not endpoints:
        return None
    prices = []
    for i, ep in enumerate(endpoints):
        if not isinstance(ep, Mapping):
            raise StatsError(f"{where}endpoints[{i}]: expected a table")
        here = f"{where}endpoints[{i}]."
        prices.append(
            Price(
                _price_value(ep, "prompt_price", here), _price_value(ep, "completion_price", here)
            )
        )
    return Price(
        sum(p.prompt for p in prices) / len(prices),
        sum(p.completion for p in prices) / len(prices),
    )


def load_prices(path: Path) -> PriceTable:
    """A TOML price table. Either of::

        prompt_price = 0.15          # USD per 1M prompt tokens
        completion_price = 0.60
        [stages.generate_instances]  # optional per-stage prices
        completion_price = 0.30

    (also accepted inside a ``[prices]`` table), or a run configuration whose
    ``[[endpoints]]`` carry ``prompt_price`` / ``completion_price`` (averaged).
    """
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StatsError(f"{path}: price file not found") from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise StatsError(f"{path}: {e}") from None
    where = f"{path}: "
    if "prices" in data:
        table = data["prices"]
        if not isinstance(table, Mapping):
            raise StatsError(f"{where}prices: expected a table")
        where += "prices."
    elif "prompt_price" in data or "completion_price" in data or "stages" in data:
        table = data
    else:
        price = _endpoint_prices(data.get("endpoints"), where)
        if price is None:
            raise StatsError(
                f"{path}: no prices found (expected prompt_price / completion_price, "
                "a [prices] table or [[endpoints]] with prices)"
            )
        return PriceTable(price, source=f"{path} [[endpoints]]")
    default = _price(table, where)
    return PriceTable(default, _stage_prices(table, default, where), source=str(path))


def _stage_prices(table: Mapping[str, Any], default: Price, where: str) -> dict[str, Price]:
    """``[stages.<name>]`` tables; a price a stage does not give is the default one."""
    stages_raw = table.get("stages", {})
    if not isinstance(stages_raw, Mapping):
        raise StatsError(f"{where}stages: expected a table of stage tables")
    stages = {}
    for name, stage_table in stages_raw.items():
        if not isinstance(stage_table, Mapping):
            raise StatsError(f"{where}stages.{name}: expected a table")
        here = f"{where}stages.{name}."
        stages[name] = Price(
            _price_value(stage_table, "prompt_price", here)
            if "prompt_price" in stage_table
            else default.prompt,
            _price_value(stage_table, "completion_price", here)
            if "completion_price" in stage_table
            else default.completion,
        )
    return stages


def prices_from_run(run_dir: Path) -> PriceTable | None:
    """The endpoints' prices saved in ``RUN_DIR/config.json``, if any."""
    path = run_dir / CONFIG
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise StatsError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, Mapping):
        return None
    price = _endpoint_prices(data.get("endpoints"), f"{path}: ")
    if price is None:
        return None
    return PriceTable(price, source=f"{path} endpoints")
