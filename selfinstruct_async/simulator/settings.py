"""How the simulated provider behaves: its settings, fault names and answer modes.

:class:`SimulatorSettings` is all a simulator is started with (in-process through
:func:`~selfinstruct_async.simulator.server.running_simulator`, or from the command line
through ``python -m selfinstruct_async.simulator``); it refuses impossible combinations
when built. A :class:`Responder` writes the answers' texts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Protocol

Answers = Literal["normal", "echo", "null", "empty"]
ANSWER_MODES: tuple[str, ...] = ("normal", "echo", "null", "empty")
# Whose words a context-length 400 is in (``context_limit``).
ContextWording = Literal["openai", "vllm", "llama.cpp"]
CONTEXT_WORDINGS: tuple[str, ...] = ("openai", "vllm", "llama.cpp")
# Injected faults, in the order a seed draws them: new faults go last, so the draws of
# existing seeds pick what they picked before.
FAULTS: tuple[str, ...] = ("5xx", "reset", "hang", "malformed", "empty", "truncate", "429", "huge")


class Responder(Protocol):
    """Produces the text of one choice and its finish reason."""

    def __call__(
        self, prompt: str, system: str, *, chat: bool, max_tokens: int, seed: int = 0
    ) -> tuple[str, str]: ...


def echo_respond(
    prompt: str, system: str, *, chat: bool, max_tokens: int, seed: int = 0
) -> tuple[str, str]:
    """A trivial responder: the prompt's first ``max_tokens`` words."""
    words = prompt.split()
    if len(words) > max_tokens:
        return " ".join(words[:max_tokens]), "length"
    return " ".join(words), "stop"


@dataclass(frozen=True)
class SimulatorSettings:
    """How the simulated provider behaves. Probabilities are per request."""

    latency_median: float = 0.0  # seconds
    latency_sigma: float = 0.0  # lognormal shape; 0 means every answer takes the median
    rpm: float | None = None
    tpm: float | None = None
    window: float = 1.0  # seconds of the per-minute limit a burst may use
    # Fixed slices instead (seconds, e.g. 1.0 or 0.1): limit/60*slice per slice, the slices
    # aligned to the wall clock as hosted providers' are; ``window`` is then unused.
    limit_slice: float | None = None
    rate_limit_headers: bool = True
    fault_5xx: float = 0.0
    fault_reset: float = 0.0
    fault_hang: float = 0.0
    fault_malformed: float = 0.0
    fault_empty: float = 0.0
    fault_truncate: float = 0.0
    fault_429: float = 0.0  # a 429 whatever the limits say
    fault_huge: float = 0.0  # a 200 whose body is ``huge_bytes`` long
    hang_seconds: float = 3600.0
    retry_after: float | None = None  # forces the Retry-After of every 429 (seconds)
    huge_bytes: int = 100 << 20
    huge_chunked: bool = False  # no Content-Length: the size shows only while reading
    huge_chunk_delay: float = 0.0  # seconds between 64 KiB writes of a huge body
    answers: Answers = "normal"  # "echo", "null" or "empty": every answer is useless
    outage_after: int | None = None  # successful answers before a timed outage
    outage_seconds: float = 5.0
    seed: int = 0
    model: str = "sim-model"
    api_key: str | None = None  # when set, requests must carry it as a Bearer token
    context_limit: int | None = None  # tokens; prompt + max_tokens above it: a 400
    context_wording: ContextWording = "openai"  # the 400's body: "vllm", "llama.cpp"
    responder: Responder | None = None  # None: simulator.responder.respond
    # OpenAI's automatic prompt caching (simulator.prompt_cache): answers report the cached
    # part of the prompt in usage.prompt_tokens_details.cached_tokens.
    prompt_cache: bool = True
    prompt_cache_ttl: float = 600.0  # seconds a prefix is remembered after its last use
    prompt_cache_entries: int = 100_000  # prefix hashes kept at most (memory bound)
    # The Batch API (simulator.batch_api): seconds from creation to completion, seconds
    # before an unfinished batch expires, share of lines failed with a 500, and the limits.
    batch_seconds: float = 2.0
    batch_window: float = 86_400.0
    batch_error_rate: float = 0.0
    batch_max_requests: int = 50_000
    batch_max_file_bytes: int = 200 << 20

    def __post_init__(self) -> None:
        faults = [p for _, p in fault_probabilities(self)]
        if any(not 0 <= p <= 1 for p in faults) or sum(faults) > 1:
            raise ValueError("fault probabilities must be >= 0 and sum to at most 1")
        if self.window <= 0 or self.window > 60:
            raise ValueError(f"window must be in (0, 60] seconds, got {self.window}")
        if self.limit_slice is not None and not 0 < self.limit_slice <= 60:
            raise ValueError(f"limit_slice must be in (0, 60] seconds, got {self.limit_slice}")
        if self.answers not in ANSWER_MODES:
            raise ValueError(f"answers must be one of {', '.join(ANSWER_MODES)}")
        if self.huge_bytes < 1:
            raise ValueError(f"huge_bytes must be at least 1, got {self.huge_bytes}")
        for name in ("retry_after", "huge_chunk_delay", "outage_seconds"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
        if self.outage_after is not None and self.outage_after < 0:
            raise ValueError(f"outage_after must be >= 0, got {self.outage_after}")
        if self.context_limit is not None and self.context_limit < 1:
            raise ValueError(f"context_limit must be >= 1, got {self.context_limit}")
        if not (math.isfinite(self.prompt_cache_ttl) and self.prompt_cache_ttl > 0):
            raise ValueError(f"prompt_cache_ttl must be > 0 seconds, got {self.prompt_cache_ttl}")
        if self.prompt_cache_entries < 1:
            raise ValueError(
                f"prompt_cache_entries must be >= 1, got {self.prompt_cache_entries}"
            )
        if self.context_wording not in CONTEXT_WORDINGS:
            raise ValueError(f"context_wording must be one of {', '.join(CONTEXT_WORDINGS)}")
        if not (math.isfinite(self.batch_seconds) and self.batch_seconds >= 0):
            raise ValueError(f"batch_seconds must be finite and >= 0, got {self.batch_seconds}")
        if not self.batch_window > 0:
            raise ValueError(f"batch_window must be > 0 seconds, got {self.batch_window}")
        if not 0 <= self.batch_error_rate <= 1:
            raise ValueError(f"batch_error_rate must be in [0, 1], got {self.batch_error_rate}")
        if self.batch_max_requests < 1 or self.batch_max_file_bytes < 1:
            raise ValueError("batch_max_requests and batch_max_file_bytes must be >= 1")


def _faults(settings: SimulatorSettings) -> list[tuple[str, float]]:
    # New faults go last: the draws of existing seeds must pick what they picked before.
    return [
        ("5xx", settings.fault_5xx),
        ("reset", settings.fault_reset),
        ("hang", settings.fault_hang),
        ("malformed", settings.fault_malformed),
        ("empty", settings.fault_empty),
        ("truncate", settings.fault_truncate),
        ("429", settings.fault_429),
        ("huge", settings.fault_huge),
    ]


def fault_probabilities(settings: SimulatorSettings) -> list[tuple[str, float]]:
    """Each fault of :data:`FAULTS` with its probability per request."""
    return [(name, getattr(settings, f"fault_{name}")) for name in FAULTS]
