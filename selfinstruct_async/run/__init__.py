"""One run: validation, the shared context, the pool and the wiring of the stages."""
