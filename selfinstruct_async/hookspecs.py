"""Hook specifications: everything a selfinstruct-async plugin can implement."""

from __future__ import annotations

from collections.abc import Callable

import pluggy

from .filters import InstanceFilter, InstructionFilter
from .prompts import PromptTemplates
from .records import RejectionRecord, Task

PROJECT_NAME = "selfinstruct_async"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


# Start-up: what the run is made of.


@hookspec
def register_instruction_filters(register: Callable[[type[InstructionFilter]], None]) -> None:
    """Register instruction filter classes by calling ``register(cls)``."""


@hookspec
def register_instance_filters(register: Callable[[type[InstanceFilter]], None]) -> None:
    """Register instance filter classes by calling ``register(cls)``."""


@hookspec(firstresult=True)
def prompt_templates(templates: PromptTemplates) -> PromptTemplates | None:
    """Return replacement prompt wording (``dataclasses.replace(templates, ...)``), or None."""


# Run time: observers, called on the event loop; keep them quick.


@hookspec
def task_accepted(task: Task) -> None:
    """Called after a task finished every stage and was committed."""


@hookspec
def candidate_rejected(rejection: RejectionRecord) -> None:
    """Called after an instruction, an instance or a whole task was rejected."""
