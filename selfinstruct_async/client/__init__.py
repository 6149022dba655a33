"""The request layer: clients for OpenAI-compatible endpoints and the embedded model,
pacing, retries, tokens and usage."""
