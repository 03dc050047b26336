"""The fine-tuning trainer, run as the app runs it: a real subprocess in .venv-train, real SmolLM2.

Training runs a couple of steps on a handful of rows; what matters is the protocol (JSON lines),
the checkpoints, and that the exported GGUF adapter is accepted by the app's check and by llama.cpp.
Without .venv-train these tests skip locally and fail in CI (setup.sh --test creates it).
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gguf import GGUFWriter

from nexus_desktop.llm.contract import ChatInput, ChatMessage, RunContext, SamplingSettings
from nexus_desktop.llm.gguf_check import inspect_model, validate_lora_adapter
from nexus_desktop.llm.local import LocalLlamaSource
from training.hparams import defaults_for
from training.progress import classify

ROOT = Path(__file__).resolve().parent.parent
TRAINER_PYTHON = ROOT / ".venv-train" / "bin" / "python"
SEED = ROOT / "resources" / "training" / "router_seed.jsonl"
STEP_FIELDS = {
    "step",
    "total",
    "loss",
    "lr",
    "tokens",
    "seconds",
    "tokens_per_second",
    "rss_mb",
    "gpu_mem_mb",
}

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def trainer_python() -> Path:
    if not TRAINER_PYTHON.is_file():
        reason = ".venv-train is missing; create it with: bash installers/setup-trainer.sh"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return TRAINER_PYTHON


@pytest.fixture(scope="module")
def hf_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Shared by the tests: the GGUF is dequantised once, later jobs load the cached fp32 copy."""
    return tmp_path_factory.mktemp("hf-cache")


def tiny_dataset(path: Path, rows: int = 6) -> Path:
    path.write_text(
        "".join(SEED.read_text(encoding="utf-8").splitlines(keepends=True)[:rows]), encoding="utf-8"
    )
    return path


def write_job(
    tmp_path: Path, base: Path, dataset: Path, hf_cache: Path, eval_dataset: Path | None = None, **hyper: Any
) -> Path:
    job = {
        "job_id": "test",
        "base_model": str(base),
        "dataset": str(dataset),
        "eval_dataset": str(eval_dataset) if eval_dataset else None,
        "output_dir": str(tmp_path / "out"),
        "hyperparameters": {
            "max_steps": 2,
            "batch_size": 2,
            "max_seq_len": 96,
            "checkpoint_every": 1,
            **hyper,
        },
        "device": "cpu",
        "export_gguf": True,
        "verify": True,
        "hf_cache_dir": str(hf_cache),
    }
    path = tmp_path / "job.json"
    path.write_text(json.dumps(job), encoding="utf-8")
    return path


def trainer_env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")


def run_trainer(python: Path, job: Path) -> tuple[int, list[dict[str, Any]], str]:
    done = subprocess.run(
        [str(python), "-m", "training.train", str(job)],
        cwd=ROOT,
        env=trainer_env(),
        capture_output=True,
        text=True,
        timeout=1100,
        check=False,
    )
    # Every stdout line is a protocol event; anything else would break the app's reader.
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert all("event" in event for event in events), done.stdout
    return done.returncode, events, done.stderr


def error_of(python: Path, job: Path) -> dict[str, Any]:
    returncode, events, stderr = run_trainer(python, job)
    assert returncode != 0, stderr[-2000:]
    assert events and events[-1]["event"] == "error", (events, stderr[-2000:])
    return events[-1]


# The first job dequantises the GGUF (about 20 s of CPU); a busy shared machine can make it minutes.
@pytest.mark.timeout(1200)
def test_training_streams_progress_and_exports_an_adapter_llama_cpp_runs(
    trainer_python: Path, smollm2_path: Path, hf_cache: Path, tmp_path: Path
) -> None:
    data = tiny_dataset(tmp_path / "data.jsonl")
    job = write_job(tmp_path, smollm2_path, data, hf_cache, eval_dataset=data)
    returncode, events, stderr = run_trainer(trainer_python, job)

    assert returncode == 0, stderr[-3000:]
    names = [event["event"] for event in events]
    assert names[0] == "started" and names[-1] == "done", names
    started = events[0]
    assert started["device"] == "cpu" and started["backend"] == "peft"
    assert started["total_steps"] == 2 and started["examples"] == 6 and started["trainable_params"] > 0
    steps = [event for event in events if event["event"] == "step"]
    assert [step["step"] for step in steps] == [1, 2]
    assert all(
        step.keys() >= STEP_FIELDS and step["loss"] > 0 and step["gpu_mem_mb"] is None for step in steps
    )
    assert [(e["step"], e["eval_loss"] > 0) for e in events if e["event"] == "eval"] == [(1, True), (2, True)]
    checkpoint = next(event for event in events if event["event"] == "checkpoint")
    assert (Path(checkpoint["path"]) / "adapter_model.safetensors").is_file()
    verified = next(event for event in events if event["event"] == "verified")
    assert verified["top1_agreement"] >= 0.9 and verified["prompts"] > 0
    done = events[-1]
    assert done["steps"] == 2 and (Path(done["adapter_dir"]) / "adapter_config.json").is_file()

    adapter = Path(done["gguf_adapter"])
    info = validate_lora_adapter(adapter, inspect_model(smollm2_path))
    assert info.kind == "adapter" and info.lora_alpha == 16.0

    async def answer_with_adapter() -> str:
        source = LocalLlamaSource(smollm2_path, context_size=512, threads=1, lora_path=adapter)
        try:
            request = ChatInput(
                messages=(ChatMessage("user", "Roll a d20."),),
                sampling=SamplingSettings(temperature=0.0, max_tokens=8, seed=1),
            )
            return (await source(request, RunContext())).text
        finally:
            await source.aclose()

    assert asyncio.run(answer_with_adapter()).strip()


@pytest.mark.timeout(900)
def test_killed_training_keeps_its_last_checkpoint(
    trainer_python: Path, smollm2_path: Path, hf_cache: Path, tmp_path: Path
) -> None:
    job = write_job(tmp_path, smollm2_path, tiny_dataset(tmp_path / "data.jsonl"), hf_cache, max_steps=500)
    process = subprocess.Popen(
        [str(trainer_python), "-m", "training.train", str(job)],
        cwd=ROOT,
        env=trainer_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        checkpoint = None
        for line in process.stdout:
            event = json.loads(line)
            assert event["event"] != "error", event
            if event["event"] == "checkpoint":
                checkpoint = Path(event["path"])
                break
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    assert checkpoint is not None and checkpoint.name == "step-1"
    assert (checkpoint / "adapter_model.safetensors").stat().st_size > 0
    assert json.loads((checkpoint / "adapter_config.json").read_text())["r"] == 8


# --- Bad input: one "error" line with the right kind, and a non-zero exit ------------------------


def test_empty_dataset_is_a_dataset_error(trainer_python: Path, smollm2_path: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n", encoding="utf-8")
    error = error_of(trainer_python, write_job(tmp_path, smollm2_path, empty, tmp_path))
    assert error["kind"] == "dataset" and "no rows" in error["message"]


def test_malformed_row_is_reported_with_its_line_number(
    trainer_python: Path, smollm2_path: Path, tmp_path: Path
) -> None:
    data = tiny_dataset(tmp_path / "data.jsonl", rows=2)
    with data.open("a", encoding="utf-8") as handle:
        handle.write('{"messages": [{"role": "user", "content": "no answer here"}]}\n')
    error = error_of(trainer_python, write_job(tmp_path, smollm2_path, data, tmp_path))
    assert error["kind"] == "dataset" and "Line 3" in error["message"]


def test_non_llama_base_model_is_refused(trainer_python: Path, tmp_path: Path) -> None:
    other = tmp_path / "tiny-gpt2.gguf"
    writer = GGUFWriter(other, "gpt2")
    writer.add_tensor("token_embd.weight", np.zeros((8, 16), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    data = tiny_dataset(tmp_path / "data.jsonl")
    error = error_of(trainer_python, write_job(tmp_path, other, data, tmp_path))
    assert error["kind"] == "base_model" and "llama" in error["message"]


def test_missing_base_model_is_a_base_model_error(trainer_python: Path, tmp_path: Path) -> None:
    data = tiny_dataset(tmp_path / "data.jsonl")
    error = error_of(trainer_python, write_job(tmp_path, tmp_path / "gone.gguf", data, tmp_path))
    assert error["kind"] == "base_model"


def test_python_without_torch_gets_a_dependency_error(smollm2_path: Path, tmp_path: Path) -> None:
    # The app's own Python has no torch: exactly the mistake of running the trainer with it.
    job = write_job(tmp_path, smollm2_path, tiny_dataset(tmp_path / "data.jsonl"), tmp_path)
    error = error_of(Path(sys.executable), job)
    assert error["kind"] == "dependency" and "installers/setup-trainer.sh" in error["message"]


def test_full_disk_and_exhausted_memory_get_their_own_kinds() -> None:
    disk = classify(OSError(errno.ENOSPC, "No space left on device", "/data/out/adapter.gguf"))
    assert disk.kind == "disk" and "disk is full" in str(disk)
    assert classify(MemoryError()).kind == "oom"
    assert classify(RuntimeError("CUDA out of memory. Tried to allocate 2 GiB")).kind == "oom"
    assert classify(ValueError("something odd")).kind == "internal"


def test_cpu_defaults_are_the_measured_recipe_for_a_small_model() -> None:
    small = defaults_for(134_515_008, "cpu")
    assert (small["lora_r"], small["lora_alpha"], small["learning_rate"], small["batch_size"]) == (
        8,
        16,
        1e-3,
        8,
    )
    assert small["max_steps"] == 100 and len(small["target_modules"]) == 7
    assert defaults_for(8_000_000_000, "cpu")["learning_rate"] < small["learning_rate"]
    assert defaults_for(134_515_008, "cuda")["lora_r"] == 16
