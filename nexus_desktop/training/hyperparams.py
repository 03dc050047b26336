"""Hyperparameters that fit the base model's size and the device.

Measured on SmolLM2-135M (docs: platform facts): r=8, alpha=16, lr 1e-3, batch 8, about 100 steps
learnt a 6-label router in 5 minutes on 2 CPU cores; r=16 or longer training overfit.  Bigger
models need a smaller learning rate, more rank, and gradient accumulation to fit in memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nexus_desktop.llm.contract import ModelFileError
from nexus_desktop.llm.gguf_check import inspect_model

TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass(frozen=True)
class SizeBand:
    max_params: float
    lora_r: int
    learning_rate: float
    batch_size: int
    gradient_accumulation_steps: int
    max_seq_len: int
    max_steps: int


# (largest parameter count, r, lr, batch, accumulation, sequence length, steps)
SIZE_BANDS = (
    SizeBand(200e6, 8, 1e-3, 8, 1, 256, 100),
    SizeBand(1.5e9, 16, 2e-4, 4, 2, 512, 200),
    SizeBand(4e9, 16, 1e-4, 2, 4, 1024, 300),
    SizeBand(float("inf"), 16, 5e-5, 1, 8, 1024, 300),
)


def parameter_count(base_model: Path) -> int | None:
    """Parameters of a GGUF base model, or None when it cannot be told (an HF folder, a bad file)."""
    if base_model.is_file():
        try:
            return inspect_model(base_model).parameter_count or None
        except ModelFileError:
            return None
    return None


def band_for(params: int | None) -> SizeBand:
    count = params if params is not None else 0
    return next(band for band in SIZE_BANDS if count <= band.max_params)


def default_hyperparameters(
    params: int | None, *, task_is_classifier: bool = False, device: str = "auto"
) -> dict[str, Any]:
    band = band_for(params)
    seq_len = min(band.max_seq_len, 128) if task_is_classifier else band.max_seq_len
    steps = band.max_steps
    if device == "cpu" and band.max_params > 200e6:
        steps = max(50, steps // 2)  # a CPU run of a big model should finish the same evening
    return {
        "lora_r": band.lora_r,
        "lora_alpha": band.lora_r * 2,
        "lora_dropout": 0.05,
        "target_modules": list(TARGET_MODULES),
        "learning_rate": band.learning_rate,
        "warmup_steps": 5,
        "max_steps": steps,
        "batch_size": band.batch_size,
        "gradient_accumulation_steps": band.gradient_accumulation_steps,
        "max_seq_len": seq_len,
        "seed": 0,
        "grad_clip": 1.0,
        "checkpoint_every": max(10, steps // 5),
    }
