"""Default hyperparameters by model size and device (a pure function; no torch needed).

CPU figures come from a measured run (SmolLM2-135M, 6-label router, ~100 steps, ~85% held-out):
LoRA r=8, alpha=16, dropout 0.05 on all seven llama projections, AdamW lr 1e-3, 5 warm-up steps,
cosine to 10%, clip 1.0, batch 8, fp32.  Larger models take a smaller learning rate and, on CPU,
smaller batches and shorter sequences so a step stays within a few seconds and memory.

| params       | device | lora_r | alpha | lr    | batch | max_seq_len | max_steps |
|--------------|--------|--------|-------|-------|-------|-------------|-----------|
| < 0.5 B      | cpu    | 8      | 16    | 1e-3  | 8     | 256         | 100       |
| 0.5 B - 2 B  | cpu    | 8      | 16    | 5e-4  | 4     | 256         | 100       |
| >= 2 B       | cpu    | 8      | 16    | 2e-4  | 2     | 256         | 60        |
| < 0.5 B      | cuda   | 16     | 32    | 5e-4  | 16    | 512         | 200       |
| 0.5 B - 2 B  | cuda   | 16     | 32    | 2e-4  | 8     | 1024        | 200       |
| >= 2 B       | cuda   | 16     | 32    | 1e-4  | 4     | 1024        | 200       |
Everything else: dropout 0.05, warmup_steps 5, seed 42, grad_clip 1.0, checkpoint_every 25.
"""

from __future__ import annotations

from typing import Any

LLAMA_TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

_SMALL = 500_000_000
_LARGE = 2_000_000_000


def defaults_for(param_count: int, device: str) -> dict[str, Any]:
    """The hyperparameters the trainer uses for a model of ``param_count`` on ``device`` ("cpu"/"cuda")."""
    size = 0 if param_count < _SMALL else 1 if param_count < _LARGE else 2
    if device == "cuda":
        r, lr, batch, seq, steps = (
            16,
            (5e-4, 2e-4, 1e-4)[size],
            (16, 8, 4)[size],
            (512, 1024, 1024)[size],
            200,
        )
    else:
        r, lr, batch, seq, steps = 8, (1e-3, 5e-4, 2e-4)[size], (8, 4, 2)[size], 256, (100, 100, 60)[size]
    return {
        "lora_r": r,
        "lora_alpha": 2 * r,
        "lora_dropout": 0.05,
        "target_modules": list(LLAMA_TARGET_MODULES),
        "learning_rate": lr,
        "warmup_steps": 5,
        "max_steps": steps,
        "batch_size": batch,
        "max_seq_len": seq,
        "seed": 42,
        "grad_clip": 1.0,
        "checkpoint_every": 25,
    }


if __name__ == "__main__":  # python -m training.hparams PARAM_COUNT DEVICE  -> one JSON line
    import json
    import sys

    print(json.dumps(defaults_for(int(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "cpu")))
