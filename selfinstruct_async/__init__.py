"""Self-Instruct as a resumable, rate-limited async pipeline."""

from __future__ import annotations

from .filters import BaseFilter, InstanceContext
from .hookspecs import hookimpl
from .records import Instance, Rejection, Task

__all__ = ["BaseFilter", "Instance", "InstanceContext", "Rejection", "Task", "hookimpl"]
__version__ = "0.1.0"
