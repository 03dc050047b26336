"""Find, download and keep GGUF models from Hugging Face, without Qt.

- ``names``: what a file name or a pasted address says (repo, quantisation, split parts).
- ``search``: search the hub and list a repo's GGUF models with size, SHA-256 and fit
  (``llm.vram_fit.fit_by_size``).
- ``download``: one resumable, verified download of a model (all its split parts).
- ``download_queue``: ``DownloadQueue``, the service the UI and CLI drive (start, pause, resume, cancel).
- ``library``: the models on disk with their GGUF metadata, and deleting one.

The hub address comes from ``HF_ENDPOINT`` (as in ``huggingface_hub``), which tests point at a
server on loopback.
"""

import os

# Set before huggingface_hub is first imported, which reads it then: no usage reports.
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
