"""Model sources: local llama.cpp and OpenAI-compatible servers, behind one contract."""
