"""Token prices for ``stats``, ``status`` and ``report``: USD per million tokens.

A price gives prompt, cached prompt and completion tokens their rates and the Batch API its
discount (``batch_price_multiplier``). From ``--prices FILE`` (TOML, see :func:`load_prices`;
its ``[models.NAME]`` tables are picked by the run's model names) or else the
``[[endpoints]]`` prices saved in the run's ``config.json`` (:func:`prices_from_run`).
Requests are spread over the endpoints, so several endpoints with different prices are
averaged (the usage snapshot does not say which endpoint served a request). Errors name
the file and the key.
"""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..checkpoint.run_files import CONFIG
from ..errors import StatsError

PRICE_KEYS = ("prompt_price", "cached_prompt_price", "completion_price", "batch_price_multiplier")
DEFAULT_BATCH_MULTIPLIER = 0.5  # the Batch API's price, as a share of streaming (OpenAI)


@dataclass(frozen=True)
class Price:
    """USD per million prompt, cached prompt and completion tokens; the batch discount.

    ``cached_prompt`` None means cached prompt tokens cost the full ``prompt`` price (an
    endpoint without a cache discount); ``batch_multiplier`` scales what Batch API requests
    cost.
    """

    prompt: float = 0.0
    completion: float = 0.0
    cached_prompt: float | None = None
    batch_multiplier: float = DEFAULT_BATCH_MULTIPLIER

    @property
    def cached(self) -> float:
        """USD per million cached prompt tokens."""
        return self.prompt if self.cached_prompt is None else self.cached_prompt

    def cost(
        self,
        prompt_tokens: float,
        completion_tokens: float,
        cached_prompt_tokens: float = 0,
        *,
        batch: bool = False,
    ) -> float:
        """USD for these tokens; ``cached_prompt_tokens`` is a part of ``prompt_tokens``."""
        cached = min(cached_prompt_tokens, prompt_tokens)
        usd = (
            (prompt_tokens - cached) * self.prompt
            + cached * self.cached
            + completion_tokens * self.completion
        ) / 1e6
        return usd * self.batch_multiplier if batch else usd

    def as_dict(self) -> dict[str, Any]:
        return {
            "prompt_price": self.prompt,
            "cached_prompt_price": self.cached,
            "completion_price": self.completion,
            "batch_price_multiplier": self.batch_multiplier,
        }


def _average(prices: Sequence[Price]) -> Price:
    """One price for requests spread evenly over several endpoints."""
    n = len(prices)
    return Price(
        sum(p.prompt for p in prices) / n,
        sum(p.completion for p in prices) / n,
        None if all(p.cached_prompt is None for p in prices) else sum(p.cached for p in prices) / n,
        sum(p.batch_multiplier for p in prices) / n,
    )


@dataclass(frozen=True)
class PriceTable:
    """A default price, optional per-stage and per-model prices, and where they came from.

    ``models`` are the ``[models.NAME]`` tables of a price file; :meth:`for_models` picks the
    one of the run's model. ``stage_overrides`` keeps what each ``[stages.NAME]`` table
    gives, so that a stage's other prices follow whichever default is picked.
    ``has_default`` is False for a file holding only model tables.
    """

    default: Price
    stages: Mapping[str, Price] = field(default_factory=dict)
    source: str = ""
    models: Mapping[str, Price] = field(default_factory=dict)
    stage_overrides: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    has_default: bool = True

    def for_stage(self, stage: str) -> Price:
        return self.stages.get(stage, self.default)

    def for_models(self, models: Sequence[str]) -> PriceTable:
        """This table with the default price of the run's ``models`` (its endpoints' models).

        Several endpoints are averaged, as requests are spread over them. A table without
        model tables, or a run whose models it does not name while it has a default price,
        is returned as it is; with neither, :class:`StatsError` names the file and the key.
        """
        if not self.models:
            return self
        known = [m for m in dict.fromkeys(models) if m in self.models]
        if not known:
            if self.has_default:
                return self
            listed = ", ".join(sorted(self.models))
            wanted = ", ".join(repr(m) for m in models) or "none recorded"
            raise StatsError(
                f"{self.source}: models: no [models.NAME] table for the run's model "
                f"({wanted}) and no default prices; the file prices {listed}"
            )
        default = _average([self.models[m] for m in known])
        return replace(
            self,
            default=default,
            stages=_fill_stages(self.stage_overrides, default),
            source=f"{self.source} [models.{', '.join(known)}]",
            has_default=True,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            **self.default.as_dict(),
            "stages": {name: p.as_dict() for name, p in sorted(self.stages.items())},
            "models": {name: p.as_dict() for name, p in sorted(self.models.items())},
        }


def _price_value(table: Mapping[str, Any], key: str, where: str) -> float:
    value = table.get(key, 0.0)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise StatsError(f"{where}{key}: expected a number, got {type(value).__name__}")
    if not math.isfinite(value) or value < 0:
        raise StatsError(f"{where}{key}: must be a non-negative number, got {value}")
    return float(value)


def _price(table: Mapping[str, Any], where: str, extra: tuple[str, ...] = ()) -> Price:
    unknown = sorted(set(table) - {*PRICE_KEYS, *extra})
    if unknown:
        expected = ", ".join((*PRICE_KEYS, *extra))
        raise StatsError(f"{where}{unknown[0]}: unknown key (expected {expected})")
    return Price(
        _price_value(table, "prompt_price", where),
        _price_value(table, "completion_price", where),
        _price_value(table, "cached_prompt_price", where)
        if "cached_prompt_price" in table
        else None,
        _multiplier(table, "batch_price_multiplier", where),
    )


def _multiplier(table: Mapping[str, Any], key: str, where: str) -> float:
    if key not in table:
        return DEFAULT_BATCH_MULTIPLIER
    value = _price_value(table, key, where)
    if value > 1:
        raise StatsError(f"{where}{key}: must be between 0 and 1, got {value}")
    return value


def _endpoint_prices(endpoints: Any, where: str) -> tuple[Price, list[str]] | None:
    """The endpoints' prices averaged, and their model names, from a run configuration."""
    if not isinstance(endpoints, list) or not endpoints:
        return None
    prices, models = [], []
    for i, ep in enumerate(endpoints):
        if not isinstance(ep, Mapping):
            raise StatsError(f"{where}endpoints[{i}]: expected a table")
        here = f"{where}endpoints[{i}]."
        prices.append(
            Price(
                _price_value(ep, "prompt_price", here),
                _price_value(ep, "completion_price", here),
                _price_value(ep, "cached_prompt_price", here)
                if ep.get("cached_prompt_price") is not None
                else None,
                _multiplier(ep, "batch_price_multiplier", here),
            )
        )
        if isinstance(ep.get("model"), str) and ep["model"]:
            models.append(ep["model"])
    return _average(prices), models


def load_prices(path: Path) -> PriceTable:
    """A TOML price table, USD per 1M tokens. Either of::

        prompt_price = 0.15          # the default price
        cached_prompt_price = 0.075  # optional: cached prompt tokens (default: prompt_price)
        completion_price = 0.60
        batch_price_multiplier = 0.5 # optional: Batch API requests cost this share
        [stages.generate_instances]  # optional per-stage prices
        completion_price = 0.30
        [models."gpt-4o-mini"]       # optional: prices of a named model, picked when the
        prompt_price = 0.15          # run's endpoints use it (then the default is optional)
        cached_prompt_price = 0.075
        completion_price = 0.60

    (also accepted inside a ``[prices]`` table), or a run configuration whose
    ``[[endpoints]]`` carry prices (averaged).
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
    elif any(key in data for key in (*PRICE_KEYS, "stages", "models")):
        table = data
    else:
        found = _endpoint_prices(data.get("endpoints"), where)
        if found is None:
            raise StatsError(
                f"{path}: no prices found (expected prompt_price / completion_price, "
                "[models.NAME] tables, a [prices] table or [[endpoints]] with prices)"
            )
        return PriceTable(found[0], source=f"{path} [[endpoints]]")
    default = _price(table, where, ("stages", "models"))
    overrides = _stage_overrides(table, where)
    models = _model_prices(table, where)
    return PriceTable(
        default,
        _fill_stages(overrides, default),
        source=str(path),
        models=models,
        stage_overrides=overrides,
        has_default=any(key in table for key in PRICE_KEYS) or not models,
    )


def _model_prices(table: Mapping[str, Any], where: str) -> dict[str, Price]:
    """``[models.NAME]`` tables: every price a model does not give is its default."""
    raw = table.get("models", {})
    if not isinstance(raw, Mapping):
        raise StatsError(f"{where}models: expected a table of model tables")
    models = {}
    for name, model_table in raw.items():
        if not isinstance(model_table, Mapping):
            raise StatsError(f"{where}models.{name}: expected a table")
        models[str(name)] = _price(model_table, f"{where}models.{name}.")
    return models


def _stage_overrides(table: Mapping[str, Any], where: str) -> dict[str, dict[str, float]]:
    """``[stages.<name>]`` tables, as given: a price a stage does not give is the default's."""
    stages_raw = table.get("stages", {})
    if not isinstance(stages_raw, Mapping):
        raise StatsError(f"{where}stages: expected a table of stage tables")
    overrides = {}
    for name, stage_table in stages_raw.items():
        if not isinstance(stage_table, Mapping):
            raise StatsError(f"{where}stages.{name}: expected a table")
        here = f"{where}stages.{name}."
        _price(stage_table, here)  # checks every key and value
        overrides[str(name)] = {
            key: (
                _multiplier(stage_table, key, here)
                if key == "batch_price_multiplier"
                else _price_value(stage_table, key, here)
            )
            for key in PRICE_KEYS
            if key in stage_table
        }
    return overrides


def _fill_stages(overrides: Mapping[str, Mapping[str, float]], default: Price) -> dict[str, Price]:
    stages = {}
    for name, given in overrides.items():
        stages[name] = Price(
            given.get("prompt_price", default.prompt),
            given.get("completion_price", default.completion),
            given.get("cached_prompt_price", default.cached_prompt),
            given.get("batch_price_multiplier", default.batch_multiplier),
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
    found = _endpoint_prices(data.get("endpoints"), f"{path}: ")
    if found is None:
        return None
    return PriceTable(found[0], source=f"{path} endpoints")


def run_models(run_dir: Path) -> list[str]:
    """The model names of the run's endpoints, from ``RUN_DIR/config.json`` (none if unknown)."""
    try:
        data = json.loads((run_dir / CONFIG).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return []
    endpoints = data.get("endpoints") if isinstance(data, Mapping) else None
    if not isinstance(endpoints, list):
        return []
    return [
        ep["model"]
        for ep in endpoints
        if isinstance(ep, Mapping) and isinstance(ep.get("model"), str) and ep["model"]
    ]
