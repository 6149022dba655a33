"""The seam between the stages and whatever answers their prompts.

Stages build a :class:`CompletionRequest`; an :class:`LLMClient` (HTTP, local model, or a
test double) turns it into a :class:`Completion`. Nothing above this seam knows whether
the answer came from ``/v1/completions``, ``/v1/chat/completions`` or llama.cpp.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

Api = Literal["completions", "chat"]

#: The sampling parameters of a :class:`CompletionRequest`, named as OpenAI-compatible APIs
#: and llama.cpp name them. Prompts copy them from a stage's settings and every backend
#: sends them through :meth:`CompletionRequest.sampling`: a new one is added here, once.
SAMPLING_PARAMETERS: tuple[str, ...] = (
    "temperature",
    "top_p",
    "presence_penalty",
    "frequency_penalty",
)


@dataclass(frozen=True, slots=True)
class CompletionRequest:
    """One prompt with its sampling parameters.

    ``prompt`` is the text a completion model continues. Chat endpoints receive it as the
    user message after ``system``, which tells a chat model to answer in the same format,
    and ``chat_stop`` instead of ``stop`` when it is given.
    """

    stage: str
    prompt: str
    max_tokens: int
    system: str = ""
    temperature: float = 0.0
    top_p: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    stop: tuple[str, ...] = ()
    chat_stop: tuple[str, ...] | None = None
    n: int = 1
    #: How many of the most likely tokens to report at each generated position (0: none).
    #: Backends that cannot say leave :attr:`Choice.top_logprobs` empty.
    logprobs: int = 0
    #: The name of the format the answer must follow (an :data:`ANSWER_FORMATS` key), for
    #: backends that can constrain decoding to it; empty means free text.
    answer_format: str = ""
    #: Completions API only: answer with the prompt in front of the text and
    #: :attr:`Choice.token_logprobs` over the prompt's tokens too (how likely the prompt
    #: reads to the model; :mod:`~selfinstruct_async.client.prompt_scoring` uses it).
    echo: bool = False

    def stop_for(self, api: Api) -> tuple[str, ...]:
        """Stop sequences for an endpoint kind; chat answers need fewer (they add preambles)."""
        if api == "chat" and self.chat_stop is not None:
            return self.chat_stop
        return self.stop

    def key_fields(self) -> dict[str, object]:
        """What identifies this request's answer: every field, but optional ones left at
        their defaults are omitted, so adding an option keeps older checkpoints' keys."""
        fields = {name: getattr(self, name) for name in self.__slots__}
        for name, default in _KEY_OPTIONAL.items():
            if fields[name] == default:
                del fields[name]
        return fields

    def sampling(self) -> dict[str, float]:
        """The :data:`SAMPLING_PARAMETERS` of this request, by name."""
        return {name: getattr(self, name) for name in SAMPLING_PARAMETERS}


#: Fields added after checkpoints already held request keys, with their defaults.
_KEY_OPTIONAL: dict[str, object] = {"logprobs": 0, "answer_format": "", "echo": False}


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts as the server reported them (or as estimated when it did not).

    ``cached_prompt_tokens`` is the part of ``prompt_tokens`` the provider served from its
    prompt cache (OpenAI's ``usage.prompt_tokens_details.cached_tokens``), priced lower.
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class Choice:
    """One generated text and why generation stopped (``stop``, ``length``, ...)."""

    text: str
    finish_reason: str | None = None
    #: Per generated token, the most likely tokens and their log probabilities, when the
    #: request asked for :attr:`CompletionRequest.logprobs` and the backend could say.
    top_logprobs: tuple[dict[str, float], ...] = ()
    #: Per token of the answer (of the prompt too, with :attr:`CompletionRequest.echo`):
    #: its character offset in the answer's text and its log probability (``None`` where
    #: the backend gives none, as for a prompt's first token).
    token_logprobs: tuple[tuple[int, float | None], ...] = ()


@dataclass(frozen=True, slots=True)
class TextScore:
    """The summed log probability of a text's tokens after a prefix, and how many there are."""

    logprob: float
    tokens: int


@dataclass(frozen=True, slots=True)
class Completion:
    """The answer to a :class:`CompletionRequest`."""

    choices: tuple[Choice, ...]
    usage: Usage = field(default_factory=Usage)
    model: str = ""
    #: Served from the request ledger: bought, and judged, in an earlier session.
    replayed: bool = False

    @property
    def text(self) -> str:
        return self.choices[0].text if self.choices else ""

    @property
    def finish_reason(self) -> str | None:
        return self.choices[0].finish_reason if self.choices else None


class LLMClient(Protocol):
    """Anything that can complete a request; implementations own retries and pacing."""

    async def complete(self, request: CompletionRequest) -> Completion:
        """Return the completion, or raise :class:`~selfinstruct_async.errors.LLMError`."""
        ...

    async def aclose(self) -> None:
        """Release connections, threads or models."""
        ...
