"""The pipeline's stages, one module each, connected by bounded memory object streams."""

from __future__ import annotations

from .filter_instances import filter_instances
from .filter_instructions import filter_instructions
from .generate_instances import generate_instances
from .generate_instructions import generate_instructions
from .identify_classification import identify_classification

__all__ = [
    "filter_instances",
    "filter_instructions",
    "generate_instances",
    "generate_instructions",
    "identify_classification",
]
