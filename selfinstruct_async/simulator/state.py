"""What a running simulator keeps: its counters, limits, outage, and one parsed request.

The aiohttp application holds one :class:`State` under :data:`STATE`; handlers reach it
through the request. Every answer the simulator sends goes through :func:`json_reply` (or
counts its status itself) so that :class:`SimulatorStats` sees it.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .limits import ProviderLimits
from .prompt_cache import PromptCache
from .settings import Responder, SimulatorSettings


@dataclass
class SimulatorStats:
    """What the server saw; ``rate_limited`` counts the 429s it sent."""

    requests: int = 0
    ok: int = 0
    rate_limited: int = 0
    by_status: Counter[int] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    inflight: int = 0
    max_inflight: int = 0
    disconnects: int = 0  # clients gone while a huge body was being sent
    cached_prompt_tokens: int = 0  # the part of prompt_tokens the prompt cache served

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "ok": self.ok,
            "rate_limited": self.rate_limited,
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "faults": dict(sorted(self.faults.items())),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "max_inflight": self.max_inflight,
            "disconnects": self.disconnects,
            "cached_prompt_tokens": self.cached_prompt_tokens,
        }


@dataclass
class State:
    """Everything a running simulator keeps between requests."""

    settings: SimulatorSettings
    responder: Responder
    rng: random.Random
    limits: ProviderLimits
    stats: SimulatorStats
    closing: asyncio.Event
    streaming: asyncio.Event  # a huge body has begun
    disconnected: asyncio.Event  # a client went away in the middle of one
    counter: int = 0
    outage_until: float | None = None  # loop time; inf until ended by hand
    outage_triggered: bool = False  # the timed outage (``outage_after``) has begun
    prompt_cache: PromptCache | None = None  # None: settings.prompt_cache is off

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def start_outage(self, seconds: float | None) -> None:
        self.outage_until = math.inf if seconds is None else self.now() + seconds

    def in_outage(self) -> bool:
        if self.outage_until is None:
            return False
        if self.now() >= self.outage_until:
            self.outage_until = None
            return False
        return True

    def outage_view(self) -> dict[str, Any]:
        active = self.in_outage()
        remaining = None
        if active and self.outage_until is not None and math.isfinite(self.outage_until):
            remaining = self.outage_until - self.now()
        return {"active": active, "remaining": remaining}


STATE = web.AppKey("simulator_state", State)


@dataclass(frozen=True)
class Call:
    """One parsed completion request."""

    chat: bool
    prompt: str
    system: str
    max_tokens: int
    n: int
    prompt_tokens: int


def error_body(status: int, message: str, kind: str, code: str | None = None) -> dict[str, Any]:
    """An OpenAI-style error object."""
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def json_reply(
    state: State, status: int, payload: Any, headers: dict[str, str] | None = None
) -> web.Response:
    """A JSON answer, counted by status."""
    state.stats.by_status[status] += 1
    return web.json_response(payload, status=status, headers=headers)
