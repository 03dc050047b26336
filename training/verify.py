"""Check the exported GGUF adapter against the trained model: same next token, position by position.

The llama.cpp side runs in a child process of the trainer's Python (llama-cpp-python is installed
in .venv-train from the wheel the app's setup built), so a crash there cannot take the trainer down.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from training.progress import TrainerError

MIN_AGREEMENT = 0.90
_TIMEOUT_S = 600


def validate(adapter: Path, base_gguf: Path) -> None:
    """The app's own header check: an adapter that fails it would be refused by the app anyway."""
    from nexus_desktop.llm.contract import ModelFileError
    from nexus_desktop.llm.gguf_check import inspect_model, validate_lora_adapter

    try:
        validate_lora_adapter(adapter, inspect_model(base_gguf))
    except ModelFileError as error:
        raise TrainerError("export", f"The exported adapter is not valid for llama.cpp ({error})") from None


def llama_top1(base_gguf: Path, adapter: Path, texts: list[str]) -> dict[str, list[list[int]]]:
    request = {"model": str(base_gguf), "lora": str(adapter), "texts": texts, "threads": 1, "n_ctx": 1024}
    env = dict(os.environ, GGML_NO_BACKTRACE="1")
    try:
        done = subprocess.run(
            [sys.executable, "-m", "training.llama_top1"],
            input=json.dumps(request),
            capture_output=True,
            text=True,
            timeout=_TIMEOUT_S,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise TrainerError("verify", "llama.cpp took too long to check the adapter; try again.") from None
    sys.stderr.write(done.stderr[-4000:])
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1][:200]
        raise TrainerError(
            "verify", f"llama.cpp could not run the exported adapter (exit {done.returncode}: {last})."
        )
    result: dict[str, list[list[int]]] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def top1_agreement(model: Any, base_gguf: Path, adapter: Path, texts: list[str]) -> float:
    """Fraction of positions where transformers+peft and llama.cpp+adapter pick the same next token."""
    import torch

    llama = llama_top1(base_gguf, adapter, texts)
    device = next(model.parameters()).device
    agree = total = 0
    model.eval()
    with torch.no_grad():
        for ids, theirs in zip(llama["tokens"], llama["top1"], strict=True):
            logits = model(input_ids=torch.tensor([ids], device=device)).logits[0]
            ours = logits.argmax(dim=-1).tolist()
            agree += sum(1 for a, b in zip(ours, theirs, strict=True) if a == b)
            total += len(ids)
    return agree / max(total, 1)
