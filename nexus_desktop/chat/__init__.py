"""Chat: prompt assembly, the chat service and the active model source."""
