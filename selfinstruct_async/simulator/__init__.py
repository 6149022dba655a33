"""A simulated OpenAI-compatible provider for tests and benchmarks."""
