"""The baseline for train_throughput.py: a plain transformers + PEFT training loop, no NEXUS.

    .venv-train/bin/python benchmarks/plain_peft_loop.py JOB.json    (PYTHONPATH = repo root)

Reads the same JOB.json NEXUS gave its trainer (same base model, data, seed and hyperparameters)
and prints one JSON line: {"steps", "tokens", "seconds", "tokens_per_second"} over steps 2..N
(step 1 warms up the allocator and is left out, as on the NEXUS side).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model

from training import base_model
from training.data import batches, load_conversations, tokenize


def main() -> None:
    job = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    hp = job["hyperparameters"]
    model, tokenizer, _ = base_model.load(
        base_model.resolve(job["base_model"], job["hf_cache_dir"]), job["hf_cache_dir"], torch.float32
    )
    examples = tokenize(tokenizer, load_conversations(job["dataset"]), int(hp["max_seq_len"]))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    torch.manual_seed(int(hp["seed"]))
    config = LoraConfig(
        r=int(hp["lora_r"]),
        lora_alpha=float(hp["lora_alpha"]),
        lora_dropout=float(hp["lora_dropout"]),
        target_modules=list(hp["target_modules"]),
        bias="none",
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, config)
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=float(hp["learning_rate"]), weight_decay=0.0)
    feed = batches(examples, int(hp["batch_size"]), int(hp["seed"]))
    tokens = seconds = 0.0
    for step in range(1, int(hp["max_steps"]) + 1):
        batch = next(feed)
        started = time.monotonic()
        width = max(len(e.input_ids) for e in batch)
        ids = torch.tensor([e.input_ids + [pad] * (width - len(e.input_ids)) for e in batch])
        labels = torch.tensor([e.labels + [-100] * (width - len(e.labels)) for e in batch])
        mask = torch.tensor([[1] * len(e.input_ids) + [0] * (width - len(e.input_ids)) for e in batch])
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, float(hp["grad_clip"]))
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        float(loss.detach())
        if step > 1:
            seconds += time.monotonic() - started
            tokens += sum(len(e.input_ids) for e in batch)
    steps = int(hp["max_steps"]) - 1
    print(
        json.dumps(
            {"steps": steps, "tokens": tokens, "seconds": seconds, "tokens_per_second": tokens / seconds}
        )
    )


if __name__ == "__main__":
    main()
