"""The client a run's configuration asks for, and what makes two of its requests the same.

:func:`build_client` picks the backend: the Batch API (``run.mode = "batch"``), the
configured HTTP endpoints, or the embedded model when there are none. The request ledger
reuses a stored answer only for the same model through the same kind of endpoint
(:func:`ledger_namespace`), and the answer format a request names counts only where the
backend constrains answers to it (:func:`answer_formats_apply`): elsewhere it changes
nothing about the answer, and checkpoints written before requests named formats keep
their keys.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Literal

from ..client.protocol import LLMClient
from ..client.usage import UsageMeter
from ..config import Config

log = logging.getLogger("selfinstruct_async")


def ledger_namespace(config: Config) -> str:
    """Answers are reusable only from the same model through the same kind of endpoint."""
    return "|".join(f"{e.model}@{e.api}" for e in config.endpoints)


def answer_formats_apply(config: Config) -> bool:
    """Whether the backend keeps answers to their stage's format (so it is part of the key)."""
    if config.run.mode == "batch":
        return False
    endpoints = [e for e in config.endpoints if e.base_url]
    if not endpoints:
        return config.local.constrain_formats
    return any(e.constrained_decoding != "off" for e in endpoints)


def batch_workers(config: Config) -> Config:
    """``config`` with the stages' workers a batch-mode round needs, else unchanged.

    In batch mode a request waits for its whole batch, so a round's worth must be able to
    wait at once: ``batch.round_size`` generation prompts, ``batch.stage_requests``
    classification and instance requests (the classifier's calibration included).
    """
    if config.run.mode != "batch":
        return config
    size = config.batch.stage_requests
    return replace(
        config,
        generation=replace(config.generation, workers=config.batch.round_size),
        classification=replace(config.classification, workers=size),
        instances=replace(config.instances, workers=size),
    )


def _local_api(config: Config) -> Literal["completions", "chat"]:
    """The embedded model's API: ``--api`` without ``--base-url`` lands on the first endpoint."""
    if config.endpoints and config.local.api == "completions":
        return config.endpoints[0].api
    return config.local.api


def build_client(config: Config, usage: UsageMeter | None = None) -> LLMClient:
    """The HTTP client for the configured endpoints, or the embedded model when there are none."""
    usage = usage if usage is not None else UsageMeter()
    endpoints = tuple(e for e in config.endpoints if e.base_url)
    if config.run.mode == "batch":
        from ..client.batch import build_batch_client

        if config.run.max_tokens_budget is not None or config.run.max_cost_budget is not None:
            usage.set_budget(
                max_tokens=config.run.max_tokens_budget, max_cost=config.run.max_cost_budget
            )
        return build_batch_client(
            endpoints, config.batch, usage, namespace=ledger_namespace(config)
        )
    if not endpoints:
        from ..client.local import LocalClient

        local = replace(config.local, api=_local_api(config))
        client = LocalClient(local, usage, seed=config.run.seed)
        log.info("no endpoint configured: using the embedded model %s", client.description)
        return client
    from ..client.http import build_http_client

    return build_http_client(
        endpoints,
        usage,
        max_tokens_budget=config.run.max_tokens_budget,
        max_cost_budget=config.run.max_cost_budget,
    )
