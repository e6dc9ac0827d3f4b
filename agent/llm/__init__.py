"""LLM stage: decision schema, context builder, OpenAI-compatible gateway, cache and local server."""
