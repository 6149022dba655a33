"""Immutable records that flow between the pipeline stages and into the checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Level = Literal["instruction", "instance", "task"]


@dataclass(frozen=True, slots=True)
class Instance:
    """One input/output example of a task; ``input`` may be empty."""

    input: str
    output: str

    def to_json(self) -> dict[str, str]:
        """The JSON object of the checkpoint and ``tasks.jsonl`` (what ``asdict`` gives, faster)."""
        return {"input": self.input, "output": self.output}


@dataclass(frozen=True, slots=True)
class SeedTask:
    """A human-written task in the paper's seed schema."""

    id: str
    name: str
    instruction: str
    instances: tuple[Instance, ...]
    is_classification: bool


@dataclass(frozen=True, slots=True)
class Candidate:
    """An instruction parsed from a generation request, not yet filtered."""

    instruction: str
    request_no: int
    position: int = 0
    last: bool = False  # the last item of its response: the response is done once this is
    resumed: bool = False  # re-fed from the checkpoint after a restart; may be decided already

    @property
    def id(self) -> str:
        """Stable across restarts: the request number never repeats."""
        return f"si-{self.request_no}-{self.position}"


@dataclass(frozen=True, slots=True)
class PendingTask:
    """An instruction that passed the instruction filters and is waiting for instances."""

    id: str
    instruction: str
    is_classification: bool | None = None


@dataclass(frozen=True, slots=True)
class Task:
    """A machine-generated task that finished every stage."""

    id: str
    instruction: str
    is_classification: bool
    instances: tuple[Instance, ...]


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a filter turned something down; ``filter`` is filled in by the pipeline."""

    reason: str
    filter: str = ""


@dataclass(frozen=True, slots=True)
class RejectionRecord:
    """A rejection as stored in the checkpoint: what was rejected, where and by whom."""

    level: Level
    filter: str
    reason: str
    text: str
    task_id: str | None = None
