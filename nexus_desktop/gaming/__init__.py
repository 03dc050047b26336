"""Game mode: notice a game, give the GPU back to it, and unload a model left unused (keep-alive)."""
