"""A simulated OpenAI-compatible provider for tests and benchmarks."""

from .server import (
    SimulatorHandle,
    SimulatorSettings,
    SimulatorStats,
    echo_respond,
    make_app,
    running_simulator,
)

__all__ = [
    "SimulatorHandle",
    "SimulatorSettings",
    "SimulatorStats",
    "echo_respond",
    "make_app",
    "running_simulator",
]
