"""Unsloth 4-bit QLoRA on CUDA (not exercised on this project's CPU-only machines).

Unsloth patches transformers when imported, so it is imported here only, and only on CUDA.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def load_4bit(hf_dir: Path, max_seq_len: int = 2048) -> tuple[Any, Any]:
    from unsloth import FastLanguageModel

    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=str(hf_dir), max_seq_length=max_seq_len, load_in_4bit=True, dtype=None
    )
    return model, tokenizer


def add_lora(model: Any, hp: dict[str, Any]) -> Any:
    from unsloth import FastLanguageModel

    return FastLanguageModel.get_peft_model(
        model,
        r=int(hp["lora_r"]),
        lora_alpha=float(hp["lora_alpha"]),
        lora_dropout=float(hp["lora_dropout"]),
        target_modules=list(hp["target_modules"]),
        bias="none",
        use_gradient_checkpointing="unsloth",
        random_state=int(hp["seed"]),
    )
