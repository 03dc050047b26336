"""Engram: characters remember across chats (``service.Engram``), by meaning, with llama.cpp embeddings."""
