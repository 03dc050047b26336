"""Loading with the fit's parameters: the KV cache type, chosen GPU layers on a CPU build, and
the fall-back to the CPU when a GPU cannot take the model.

No test can make llama.cpp's GPU driver fail here, so the fall-back's decision is a pure
function (``worker.cpu_fallback_notice``) tested with the errors a GPU gives; the loads
themselves run the real SmolLM2 in the real worker process.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from nexus_desktop.chat.sources import source_key
from nexus_desktop.llm.contract import ChatInput, ChatMessage, ChatOutput, RunContext, SamplingSettings
from nexus_desktop.llm.local import LocalLlamaSource
from nexus_desktop.llm.worker import built_gpu_backends, cpu_fallback_notice
from nexus_desktop.settings import Settings

GREEDY = SamplingSettings(temperature=0.0, max_tokens=12, seed=7)
OOM = "cudaMalloc failed: out of memory"


# --- The decision -------------------------------------------------------------------------------


def test_a_gpu_that_fails_the_load_falls_back_to_the_cpu_with_a_reason() -> None:
    notice = cpu_fallback_notice(33, OOM, gpu_device=True, built_backends=["CUDA"])
    assert notice == (
        f"The GPU could not load the model ({OOM}), so it runs on the CPU; "
        "lower the GPU layers or the context, or update the GPU driver."
    )


def test_a_gpu_build_whose_driver_finds_no_gpu_says_so_before_loading() -> None:
    notice = cpu_fallback_notice(-1, None, gpu_device=False, built_backends=["CUDA"])
    assert notice is not None and "has CUDA but found no usable GPU" in notice
    assert "update the GPU driver" in notice


def test_no_fallback_where_the_gpu_took_no_part() -> None:
    # Positive controls above; here the GPU is not involved, so there is nothing to fall back from.
    assert cpu_fallback_notice(0, OOM, gpu_device=True, built_backends=["CUDA"]) is None  # CPU load failed
    assert cpu_fallback_notice(33, "unknown model architecture", gpu_device=False, built_backends=[]) is None
    assert cpu_fallback_notice(33, None, gpu_device=False, built_backends=[]) is None  # a CPU build
    assert cpu_fallback_notice(33, None, gpu_device=True, built_backends=["CUDA"]) is None  # a GPU, load next


def test_gpu_backends_are_read_from_the_builds_libraries(tmp_path: Path) -> None:
    for name in ("libggml-base.so", "libggml-cpu.so", "libggml-cuda.so", "ggml-vulkan.dll"):
        (tmp_path / name).write_bytes(b"")
    assert built_gpu_backends(tmp_path) == ["CUDA", "Vulkan"]
    (tmp_path / "libggml-cuda.so").unlink()
    (tmp_path / "ggml-vulkan.dll").unlink()
    assert built_gpu_backends(tmp_path) == []
    assert built_gpu_backends(tmp_path / "missing") == []


# --- Real loads ---------------------------------------------------------------------------------


def answer(model: Path, **options: object) -> tuple[str, LocalLlamaSource]:
    async def main() -> tuple[str, LocalLlamaSource]:
        source = LocalLlamaSource(model, context_size=1024, threads=1, **options)  # type: ignore[arg-type]
        try:
            request = ChatInput((ChatMessage("user", "Name a colour."),), GREEDY)
            events = [event async for event in source.stream(request, RunContext())]
            output = events[-1]
            assert isinstance(output, ChatOutput)
            return output.text, source
        finally:
            await source.aclose()

    return asyncio.run(main())


@pytest.mark.model
def test_a_cpu_build_asked_for_gpu_layers_still_loads_and_answers(smollm2_path: Path) -> None:
    text, source = answer(smollm2_path, gpu_layers=12)
    assert text.strip()
    assert source.supports_gpu_offload is False and source.load_notice == ""


@pytest.mark.model
@pytest.mark.parametrize("kv_type", ["q8_0", "q4_0"])
def test_a_quantised_kv_cache_loads_with_flash_attention_and_answers(
    smollm2_path: Path, kv_type: str
) -> None:
    # llama.cpp refuses a quantised V cache without flash attention, so an answer shows both were set.
    text, _source = answer(smollm2_path, kv_cache_type=kv_type)
    assert text.strip()


def test_changing_the_kv_type_or_autos_reserve_reloads_the_model(smollm2_path: Path) -> None:
    base = Settings(model_path=str(smollm2_path))
    assert source_key(base.model_copy(update={"kv_cache_type": "q8_0"})) != source_key(base)
    assert source_key(base.model_copy(update={"vram_reserve_mb": 2048})) != source_key(base)
    fixed = base.model_copy(update={"gpu_layers": 10})
    # With a fixed layer count the reserve changes nothing: no reload.
    assert source_key(fixed.model_copy(update={"vram_reserve_mb": 2048})) == source_key(fixed)


def test_the_status_line_says_why_a_model_runs_on_the_cpu() -> None:
    from nexus_desktop.chat.sources import ModelState
    from nexus_desktop.ui.model_state_view import status_text

    notice = cpu_fallback_notice(33, OOM, gpu_device=True, built_backends=["CUDA"])
    assert notice is not None
    _dot, text = status_text(ModelState("ready", "big.gguf", 4096, note=notice))
    assert text == f"Ready · big.gguf · 4096 ctx — {notice}"
    _dot, plain = status_text(ModelState("ready", "big.gguf", 4096, gpu_layers=30))
    assert plain == "Ready · big.gguf · 4096 ctx · 30 layers on GPU"  # nothing added without a notice
