"""The OpenAI-compatible gateway: other apps use NEXUS as their local model server.

- ``http``: a small asyncio HTTP/1.1 server (loopback only, bounded bodies, SSE streaming);
- ``openai_map``: OpenAI request bodies to ``ChatInput`` / ``SamplingSettings``, and replies back;
- ``service``: the two routes, serving the active model and each character as a model;
- ``key``: the bearer key, kept in the OS keyring;
- ``switch``: starts, moves and stops the server as the settings say (like Prometheus's).
"""
