"""The baseline for train_throughput.py: the same job as NEXUS's trainer, done by one plain script.

    .venv-train/bin/python benchmarks/plain_peft_loop.py JOB.json OUT_DIR    (PYTHONPATH = repo root)

Reads the JOB.json NEXUS wrote for its trainer (same base model, datasets, seed, hyperparameters)
and does the same work in this one process, with no job queue, events, database or sandbox:
load the base, LoRA-train ``max_steps`` steps (the trainer's schedule, clipping and batches), eval
loss and a checkpoint every ``checkpoint_every`` steps, save the adapter, convert it to a GGUF
LoRA, check its header, and compare llama.cpp's next tokens (in process) with the trained model's on
the first four training chats.  The data preparation and the GGUF conversion are the trainer's own
functions (training/data.py, training/export_gguf.py): what the benchmark compares is everything
around them.  Prints one JSON line: {"steps", "loss", "eval_loss", "step_seconds", "top1_agreement", "gguf"}.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from llama_cpp import Llama
from peft import LoraConfig, get_peft_model

from training import base_model
from training.data import batches, load_conversations, render, tokenize
from training.export_gguf import export
from training.hparams import defaults_for
from training.verify import validate

VERIFY_PROMPTS = 4


def collate(batch, pad: int) -> dict[str, torch.Tensor]:  # type: ignore[no-untyped-def]
    width = max(len(e.input_ids) for e in batch)
    return {
        "input_ids": torch.tensor([e.input_ids + [pad] * (width - len(e.input_ids)) for e in batch]),
        "attention_mask": torch.tensor(
            [[1] * len(e.input_ids) + [0] * (width - len(e.input_ids)) for e in batch]
        ),
        "labels": torch.tensor([e.labels + [-100] * (width - len(e.labels)) for e in batch]),
    }


def eval_loss(model, examples, batch_size: int, pad: int) -> float:  # type: ignore[no-untyped-def]
    model.eval()
    total = weight = 0.0
    with torch.no_grad():
        for start in range(0, len(examples), batch_size):
            chunk = examples[start : start + batch_size]
            tokens = sum(e.trained_tokens for e in chunk)
            total += float(model(**collate(chunk, pad)).loss) * tokens
            weight += tokens
    model.train()
    return total / max(weight, 1.0)


def llama_agreement(model, base_gguf: Path, adapter: Path, texts: list[str]) -> float:  # type: ignore[no-untyped-def]
    llm = Llama(
        str(base_gguf), lora_path=str(adapter), n_ctx=1024, n_threads=1, logits_all=True, verbose=False
    )
    agree = total = 0
    model.eval()
    with torch.no_grad():
        for text in texts:
            ids = llm.tokenize(text.encode("utf-8"), add_bos=True, special=True)
            llm.reset()
            llm.eval(ids)
            theirs = np.asarray(llm.scores[: len(ids)]).argmax(axis=-1).tolist()
            ours = model(input_ids=torch.tensor([ids])).logits[0].argmax(dim=-1).tolist()
            agree += sum(1 for a, b in zip(ours, theirs, strict=True) if a == b)
            total += len(ids)
    return agree / max(total, 1)


def main() -> None:
    job = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    out = Path(sys.argv[2])
    base = base_model.resolve(job["base_model"], job["hf_cache_dir"])
    model, tokenizer, hf_dir = base_model.load(base, job["hf_cache_dir"], torch.float32)
    hp = defaults_for(sum(p.numel() for p in model.parameters()), "cpu")
    hp.update({k: v for k, v in job["hyperparameters"].items() if k in hp and v is not None})
    chats = load_conversations(job["dataset"])
    train = tokenize(tokenizer, chats, int(hp["max_seq_len"]))
    held = tokenize(tokenizer, load_conversations(job["eval_dataset"]), int(hp["max_seq_len"]))
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
    total, every, warmup = int(hp["max_steps"]), int(hp["checkpoint_every"]), int(hp["warmup_steps"])
    feed = batches(train, int(hp["batch_size"]), int(hp["seed"]))
    loss = held_loss = math.nan
    step_seconds = 0.0
    for step in range(1, total + 1):
        started = time.monotonic()
        # Linear warm-up, then cosine decay to 10% (the trainer's schedule).
        progress = min((step - warmup) / max(total - warmup, 1), 1.0)
        lr = float(hp["learning_rate"])
        lr *= step / max(warmup, 1) if step <= warmup else 0.1 + 0.45 * (1 + math.cos(math.pi * progress))
        for group in optimizer.param_groups:
            group["lr"] = lr
        value = model(**collate(next(feed), pad)).loss
        value.backward()
        torch.nn.utils.clip_grad_norm_(trainable, float(hp["grad_clip"]))
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss = float(value.detach())
        step_seconds += time.monotonic() - started  # the span the trainer reports as a step's seconds
        if held and (step % every == 0 or step == total):
            held_loss = eval_loss(model, held, int(hp["batch_size"]), pad)
        if step % every == 0 and step < total:
            model.save_pretrained(str(out / "checkpoints" / f"step-{step}"))
    model.save_pretrained(str(out / "adapter"))
    gguf = export(out / "adapter", hf_dir, out / "adapter.gguf")
    assert base.gguf_path is not None
    validate(gguf, base.gguf_path)
    texts = [render(tokenizer, chat) for chat in chats[:VERIFY_PROMPTS]]
    agreement = llama_agreement(model, base.gguf_path, gguf, texts)
    print(
        json.dumps(
            {
                "steps": total,
                "loss": loss,
                "eval_loss": held_loss,
                "step_seconds": step_seconds,
                "top1_agreement": agreement,
                "gguf": str(gguf),
            }
        )
    )


if __name__ == "__main__":
    main()
