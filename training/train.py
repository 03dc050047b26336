"""The trainer entry point: ``python -m training.train JOB.json`` (cwd = repo root).

Prints only JSON lines on stdout (see training/README.md); exit code 0 only after "done".
torch and friends are imported lazily, so a Python without them reports a "dependency" error.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.data import Example, batches, load_conversations, render, tokenize
from training.hparams import LLAMA_TARGET_MODULES, defaults_for
from training.progress import TrainerError, classify, emit, log, take_over_stdout

_KEEP_CHECKPOINTS = 2
_VERIFY_PROMPTS = 4


@dataclass(frozen=True)
class Job:
    job_id: str
    base_model: str
    dataset: str
    eval_dataset: str | None
    output_dir: Path
    hyperparameters: dict[str, Any]
    device: str
    export_gguf: bool
    verify: bool
    hf_cache_dir: str | None


def read_job(path: str) -> Job:
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        message = f"The job file {path} cannot be read ({error}); start the job again."
        raise TrainerError("internal", message) from None
    if not isinstance(raw, dict) or not all(isinstance(raw.get(k), str) for k in ("base_model", "dataset")):
        raise TrainerError("internal", "The job file lacks base_model or dataset; start the job again.")
    if not isinstance(raw.get("output_dir"), str):
        raise TrainerError("internal", "The job file lacks output_dir; start the job again.")
    device = raw.get("device", "auto")
    if device not in ("auto", "cpu", "cuda"):
        raise TrainerError("internal", f"Unknown device {device!r}; use auto, cpu or cuda.")
    return Job(
        job_id=str(raw.get("job_id", "job")),
        base_model=raw["base_model"],
        dataset=raw["dataset"],
        eval_dataset=raw.get("eval_dataset") or None,
        output_dir=Path(raw["output_dir"]),
        hyperparameters=dict(raw.get("hyperparameters") or {}),
        device=device,
        export_gguf=bool(raw.get("export_gguf", True)),
        verify=bool(raw.get("verify", True)),
        hf_cache_dir=raw.get("hf_cache_dir"),
    )


def _import_training_libraries(requested_device: str) -> tuple[Any, str, str]:
    """torch, the device and the backend; Unsloth (CUDA only) must be imported before transformers."""
    import importlib

    try:
        torch = importlib.import_module("torch")
        device = _pick_device(requested_device, torch)
        backend = "unsloth" if device == "cuda" and _unsloth_available() else "peft"
        if backend == "unsloth":
            importlib.import_module("unsloth")
        for name in ("transformers", "peft", "psutil"):
            importlib.import_module(name)
    except ImportError as error:
        raise TrainerError(
            "dependency",
            f"The trainer's Python ({sys.executable}) lacks {error.name or 'a training library'}; "
            "install with installers/setup-trainer.sh.",
        ) from None
    return torch, device, backend


def _pick_device(requested: str, torch: Any) -> str:
    if requested == "cuda" and not torch.cuda.is_available():
        raise TrainerError(
            "dependency", "No CUDA GPU is usable by the trainer; choose the CPU device instead."
        )
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


def _unsloth_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("unsloth") is not None


def _hyperparameters(job: Job, param_count: int, device: str) -> dict[str, Any]:
    merged = defaults_for(param_count, device)
    merged.update({k: v for k, v in job.hyperparameters.items() if k in merged and v is not None})
    unknown = sorted(set(merged["target_modules"]) - set(LLAMA_TARGET_MODULES))
    if unknown:
        raise TrainerError(
            "export",
            f"target_modules {unknown} cannot be exported to llama.cpp; "
            f"use some of {list(LLAMA_TARGET_MODULES)}.",
        )
    for key in ("max_steps", "batch_size", "max_seq_len", "lora_r", "checkpoint_every"):
        if int(merged[key]) < 1:
            raise TrainerError("internal", f"The hyperparameter {key} must be at least 1.")
    return merged


def learning_rate(step: int, base: float, warmup: int, total: int) -> float:
    """Linear warm-up, then cosine decay to 10% of ``base`` (the measured CPU recipe)."""
    if step <= warmup:
        return base * step / max(warmup, 1)
    progress = (step - warmup) / max(total - warmup, 1)
    return base * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def _collate(batch: list[Example], pad_id: int, torch: Any, device: str) -> dict[str, Any]:
    width = max(len(e.input_ids) for e in batch)
    ids = [e.input_ids + [pad_id] * (width - len(e.input_ids)) for e in batch]
    labels = [e.labels + [-100] * (width - len(e.labels)) for e in batch]
    mask = [[1] * len(e.input_ids) + [0] * (width - len(e.input_ids)) for e in batch]
    return {
        "input_ids": torch.tensor(ids, device=device),
        "attention_mask": torch.tensor(mask, device=device),
        "labels": torch.tensor(labels, device=device),
    }


def _save_atomically(model: Any, target: Path, extra: dict[str, Any] | None = None) -> None:
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(str(partial))
    if extra is not None:
        (partial / "trainer_state.json").write_text(json.dumps(extra), encoding="utf-8")
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)


def _prune_checkpoints(folder: Path) -> None:
    steps = sorted(
        (int(p.name.split("-")[1]), p) for p in folder.glob("step-*") if p.name.split("-")[1].isdigit()
    )
    for _, old in steps[:-_KEEP_CHECKPOINTS]:
        shutil.rmtree(old, ignore_errors=True)


def _eval_loss(
    model: Any, examples: list[Example], batch_size: int, pad_id: int, torch: Any, device: str
) -> float:
    model.eval()
    total = weight = 0.0
    with torch.no_grad():
        for start in range(0, len(examples), batch_size):
            chunk = examples[start : start + batch_size]
            loss = model(**_collate(chunk, pad_id, torch, device)).loss
            tokens = sum(e.trained_tokens for e in chunk)
            total += float(loss) * tokens
            weight += tokens
    model.train()
    return total / max(weight, 1.0)


def _load_model(job: Job, base: Any, device: str, backend: str, torch: Any) -> tuple[Any, Any, Path, Any]:
    from training import base_model

    if backend == "unsloth":
        if base.hf_dir is None:  # Unsloth loads HF folders: convert the GGUF once on the CPU first.
            base_model.load(base, job.hf_cache_dir, torch.float32)
            base = base_model.resolve(job.base_model, job.hf_cache_dir)
        from training.unsloth_backend import load_4bit

        assert base.hf_dir is not None
        model, tokenizer = load_4bit(base.hf_dir)
        return model, tokenizer, base.hf_dir, base
    dtype = torch.float32
    if device == "cuda" and torch.cuda.is_bf16_supported():
        dtype = torch.bfloat16
    model, tokenizer, hf_dir = base_model.load(base, job.hf_cache_dir, dtype)
    return model.to(device), tokenizer, hf_dir, base


def _wrap_lora(model: Any, hp: dict[str, Any], backend: str, torch: Any) -> Any:
    torch.manual_seed(int(hp["seed"]))
    if backend == "unsloth":
        from training.unsloth_backend import add_lora

        return add_lora(model, hp)
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=int(hp["lora_r"]),
        lora_alpha=float(hp["lora_alpha"]),
        lora_dropout=float(hp["lora_dropout"]),
        target_modules=list(hp["target_modules"]),
        bias="none",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


def run(job: Job) -> None:
    from training import base_model

    # The cheap checks come first: a bad file is reported in a second, before torch loads.
    conversations = load_conversations(job.dataset)
    eval_conversations = load_conversations(job.eval_dataset, "eval dataset") if job.eval_dataset else []
    base = base_model.resolve(job.base_model, job.hf_cache_dir)
    torch, device, backend = _import_training_libraries(job.device)
    import psutil

    model, tokenizer, hf_dir, base = _load_model(job, base, device, backend, torch)
    hp = _hyperparameters(job, sum(p.numel() for p in model.parameters()), device)
    log(f"hyperparameters: {json.dumps(hp)}")
    examples = tokenize(tokenizer, conversations, int(hp["max_seq_len"]))
    eval_examples = tokenize(tokenizer, eval_conversations, int(hp["max_seq_len"]))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    model = _wrap_lora(model, hp, backend, torch)
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=float(hp["learning_rate"]), weight_decay=0.0)
    total, every = int(hp["max_steps"]), int(hp["checkpoint_every"])
    emit(
        "started",
        device=device,
        backend=backend,
        total_steps=total,
        trainable_params=sum(p.numel() for p in trainable),
        examples=len(examples),
    )
    checkpoints = job.output_dir / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    process = psutil.Process()
    recent: list[float] = []
    best_train = best_eval = math.inf
    feed = batches(examples, int(hp["batch_size"]), int(hp["seed"]))
    for step in range(1, total + 1):
        started = time.monotonic()
        lr = learning_rate(step, float(hp["learning_rate"]), int(hp["warmup_steps"]), total)
        for group in optimizer.param_groups:
            group["lr"] = lr
        batch = next(feed)
        loss = model(**_collate(batch, pad_id, torch, device)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, float(hp["grad_clip"]))
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        value = float(loss.detach())
        if not math.isfinite(value):
            raise TrainerError(
                "internal", f"The loss became {value} at step {step}; lower the learning rate."
            )
        seconds = time.monotonic() - started
        tokens = sum(len(e.input_ids) for e in batch)
        recent = [*recent[-9:], value]
        best_train = min(best_train, sum(recent) / len(recent))
        emit(
            "step",
            step=step,
            total=total,
            loss=round(value, 5),
            lr=lr,
            tokens=tokens,
            seconds=round(seconds, 3),
            tokens_per_second=round(tokens / max(seconds, 1e-9), 1),
            rss_mb=round(process.memory_info().rss / 1e6, 1),
            gpu_mem_mb=round(torch.cuda.max_memory_allocated() / 1e6, 1) if device == "cuda" else None,
        )
        if eval_examples and (step % every == 0 or step == total):
            eval_loss = _eval_loss(model, eval_examples, int(hp["batch_size"]), pad_id, torch, device)
            best_eval = min(best_eval, eval_loss)
            emit("eval", step=step, eval_loss=round(eval_loss, 5))
        if step % every == 0 and step < total:
            target = checkpoints / f"step-{step}"
            _save_atomically(model, target, {"step": step, "loss": value})
            _prune_checkpoints(checkpoints)
            emit("checkpoint", step=step, path=str(target))
    adapter_dir = job.output_dir / "adapter"
    _save_atomically(model, adapter_dir, {"step": total, "loss": recent[-1]})
    gguf_adapter = _export_and_verify(
        job, model, tokenizer, hf_dir, base.gguf_path, adapter_dir, conversations
    )
    best = best_eval if eval_examples else best_train
    emit(
        "done", adapter_dir=str(adapter_dir), gguf_adapter=gguf_adapter, best_loss=round(best, 5), steps=total
    )


def _export_and_verify(
    job: Job, model: Any, tokenizer: Any, hf_dir: Path, base_gguf: Path | None, adapter_dir: Path, rows: list
) -> str | None:
    if not job.export_gguf:
        return None
    from training.export_gguf import export

    try:
        out = export(adapter_dir, hf_dir, job.output_dir / "adapter.gguf")
    except TrainerError:
        raise
    except OSError:
        raise
    except Exception as error:
        raise TrainerError("export", f"The adapter could not be exported to GGUF ({error}).") from error
    emit("exported", gguf_adapter=str(out))
    if base_gguf is None:
        log("the base is an HF folder with no GGUF beside it: the adapter is not checked through llama.cpp")
        return str(out)
    from training.verify import MIN_AGREEMENT, top1_agreement, validate

    validate(out, base_gguf)
    if job.verify:
        texts = [render(tokenizer, row) for row in rows[:_VERIFY_PROMPTS]]
        agreement = top1_agreement(model, base_gguf, out, texts)
        emit("verified", top1_agreement=round(agreement, 4), prompts=len(texts))
        if agreement < MIN_AGREEMENT:
            raise TrainerError(
                "verify",
                f"llama.cpp with the exported adapter agrees with the trained model on only "
                f"{agreement:.0%} of next tokens (needs {MIN_AGREEMENT:.0%}); the export is not trustworthy.",
            )
    return str(out)


def main(argv: list[str] | None = None) -> int:
    take_over_stdout()
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        emit("error", kind="internal", message="Usage: python -m training.train JOB.json")
        return 2
    try:
        run(read_job(args[0]))
        return 0
    except BaseException as error:  # Every failure becomes one "error" line the app can show.
        if isinstance(error, KeyboardInterrupt):
            raise
        failure = classify(error)
        if failure.kind == "internal":
            traceback.print_exc(file=sys.stderr)
        emit("error", kind=failure.kind, message=str(failure))
        return 1


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
