"""The VRAM estimate and Auto's layer count (llm/vram_fit.py).

Large models are described by a ``ModelInfo`` built here (their files would be gigabytes);
the bundled SmolLM2's real header checks the numbers read from a file, and a real llama.cpp
load checks the estimate against the sizes llama.cpp itself reports.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from gguf.constants import GGMLQuantizationType

from nexus_desktop.llm.gguf_check import ModelInfo, inspect_model
from nexus_desktop.llm.gguf_reader import ArrayInfo, TensorInfo
from nexus_desktop.llm.vram_fit import (
    GIB,
    MIB,
    compute_bytes,
    fit_by_size,
    format_fit_text,
    kv_cache_bytes,
    layers_on_gpu,
    llama_gpu_layers,
    model_shape,
    plan_fit,
)


def big_model(
    n_layers: int = 32,
    layer_mb: int = 200,
    n_embd: int = 4096,
    n_head: int = 32,
    n_head_kv: int | ArrayInfo = 8,
    n_vocab: int = 128_256,
) -> ModelInfo:
    """A header like a quantised 8B llama's: ``n_layers`` layers of ``layer_mb`` MiB each."""
    q4 = GGMLQuantizationType.Q4_K
    tensors = {
        "token_embd.weight": TensorInfo("token_embd.weight", (n_embd, n_vocab), q4, 0, 280 * MIB),
        "output.weight": TensorInfo("output.weight", (n_embd, n_vocab), q4, 0, 400 * MIB),
        "output_norm.weight": TensorInfo("output_norm.weight", (n_embd,), q4, 0, n_embd * 4),
    }
    for layer in range(n_layers):
        name = f"blk.{layer}.ffn_up.weight"
        tensors[name] = TensorInfo(name, (n_embd, 14336), q4, 0, layer_mb * MIB)
        for part, width in (("attn_k", 1024), ("attn_v", 1024)):
            name = f"blk.{layer}.{part}.weight"
            tensors[name] = TensorInfo(name, (n_embd, width), q4, 0, 0)
    return ModelInfo(
        path=Path("/models/big.gguf"),
        file_size=sum(t.n_bytes for t in tensors.values()),
        gguf_version=3,
        kind="model",
        architecture="llama",
        name="Big",
        parameter_count=8_000_000_000,
        size_label="8B",
        quantization="Q4_K_M",
        context_length=131_072,
        n_layers=n_layers,
        n_embd=n_embd,
        vocab_size=n_vocab,
        has_chat_template=True,
        split_count=1,
        adapter_type=None,
        lora_alpha=None,
        tensors=tensors,
        metadata={
            "llama.block_count": n_layers,
            "llama.embedding_length": n_embd,
            "llama.feed_forward_length": 14336,
            "llama.attention.head_count": n_head,
            "llama.attention.head_count_kv": n_head_kv,
        },
    )


# --- The KV cache ------------------------------------------------------------------------------


def test_quantised_kv_cache_roughly_halves_and_quarters_the_memory_and_back() -> None:
    shape = model_shape(big_model())
    f16, q8, q4 = (kv_cache_bytes(shape, 32, 8192, kv) for kv in ("f16", "q8_0", "q4_0"))
    # llama 3 8B at 8k tokens: 32 layers x 8192 x 8 heads x (128 + 128) x 2 bytes = 1 GiB.
    assert f16 == GIB
    assert q8 == GIB * 34 // 64  # 34 bytes per 32 values: a bit more than half
    assert q4 == GIB * 18 // 64
    assert f16 > q8 > q4 and kv_cache_bytes(shape, 32, 8192, "f16") == f16  # going back restores it


def test_more_context_means_a_larger_kv_cache_and_fewer_layers_on_the_gpu() -> None:
    info, shape = big_model(), model_shape(big_model())
    assert kv_cache_bytes(shape, 32, 16384, "f16") == 2 * kv_cache_bytes(shape, 32, 8192, "f16")
    short = plan_fit(info, 4096, "f16", 12 * GIB, None, 4 * GIB)
    long = plan_fit(info, 65536, "f16", 12 * GIB, None, 4 * GIB)
    assert long.use.kv_cache > 0 and long.auto_layers < short.auto_layers


def test_kv_cache_counts_only_the_layers_on_the_gpu() -> None:
    shape = model_shape(big_model())
    assert kv_cache_bytes(shape, 0, 8192, "f16") == 0
    assert kv_cache_bytes(shape, 8, 8192, "f16") * 4 == kv_cache_bytes(shape, 32, 8192, "f16")


def test_per_layer_head_counts_take_each_layers_width_from_its_tensors() -> None:
    from gguf.constants import GGUFValueType

    shape = model_shape(big_model(n_head_kv=ArrayInfo(GGUFValueType.INT32, 32)))
    assert shape.kv_widths == (2048,) * 32  # attn_k and attn_v are 1024 wide each


# --- Auto's layer count ------------------------------------------------------------------------


def test_a_small_model_on_a_24_gb_card_gets_every_layer(smollm2_path: Path) -> None:
    plan = plan_fit(inspect_model(smollm2_path), 8192, "f16", 24 * GIB, 23 * GIB, 4 * GIB)
    assert plan.auto_layers == plan.layers == plan.n_layers == 30
    assert plan.sentence == "Auto puts all 30 layers on the GPU."
    assert plan.over == 0 and plan.left > 19 * GIB


def test_auto_layers_never_grow_as_the_reserve_grows() -> None:
    info = big_model()
    picks = [plan_fit(info, 8192, "f16", 12 * GIB, None, reserve * GIB).auto_layers for reserve in range(13)]
    assert picks == sorted(picks, reverse=True)
    assert picks[0] == 32 and picks[-1] == 0 and 0 < picks[6] < 32  # the sweep covers all three cases
    partial = plan_fit(info, 8192, "f16", 12 * GIB, None, 6 * GIB)
    assert (
        partial.sentence
        == f"Auto puts {partial.auto_layers} of 32 layers on the GPU to fit the 6.0 GB left after "
        "the 6.0 GB reserve; the rest run on the CPU (slower)."
    )
    assert partial.use.total <= 6 * GIB < gpu_total_for(info, partial.auto_layers + 1)


def gpu_total_for(info: ModelInfo, layers: int) -> int:
    return plan_fit(info, 8192, "f16", 12 * GIB, None, 0, layers=layers).use.total


def test_free_vram_at_plan_time_bounds_auto_too() -> None:
    info = big_model()
    idle = plan_fit(info, 8192, "f16", 12 * GIB, 11 * GIB, 2 * GIB)
    busy = plan_fit(info, 8192, "f16", 12 * GIB, 4 * GIB, 2 * GIB)  # a game holds 7 GB
    assert busy.auto_layers < idle.auto_layers and busy.use.total <= 4 * GIB
    assert busy.sentence.startswith(
        f"Auto puts {busy.auto_layers} of 32 layers on the GPU to fit the 4.0 GB free now"
    )


def test_a_model_too_large_for_any_fit_says_so_and_picks_no_layers() -> None:
    huge = big_model(n_layers=80, layer_mb=1700, n_embd=8192, n_head=64)  # a 70B at 8 bits
    plan = plan_fit(huge, 8192, "f16", 6 * GIB, None, 4 * GIB)
    assert plan.auto_layers == plan.layers == 0 and plan.use.total == 0
    assert re.fullmatch(
        r"Too large for this GPU: even 1 of 80 layers needs \d\.\d GB with its buffers, "
        r"more than the 2\.0 GB left after the 4\.0 GB reserve; Auto runs it on the CPU\.",
        plan.sentence,
    )


def test_chosen_layers_that_overflow_say_by_how_much_and_what_auto_would_pick() -> None:
    plan = plan_fit(big_model(), 8192, "f16", 12 * GIB, None, 4 * GIB, layers=32)
    assert plan.layers == 32 and plan.over > 0 and plan.auto_layers < 32
    assert "more than the 8.0 GB left after the 4.0 GB reserve" in plan.sentence
    assert plan.sentence.endswith(f"Auto would pick {plan.auto_layers}.")
    fitting = plan_fit(big_model(), 8192, "f16", 12 * GIB, None, 4 * GIB, layers=10)
    assert fitting.over == 0 and fitting.sentence.startswith("10 of 32 layers on the GPU.")


def test_a_cpu_only_build_explains_how_to_get_a_gpu_build_instead_of_zeros() -> None:
    plan = plan_fit(big_model(), 8192, "f16", 12 * GIB, None, 4 * GIB, gpu_build=False)
    assert plan.auto_layers == plan.layers == 0
    assert plan.sentence.startswith("No GPU build: this llama.cpp runs on the CPU only")
    assert 'CMAKE_ARGS="-DGGML_CUDA=on" pip install' in plan.sentence
    text = format_fit_text(plan)
    assert "[" not in text and plan.sentence in text  # no bar of zeros


def test_an_unknown_card_gets_every_layer_as_llama_cpp_would() -> None:
    plan = plan_fit(big_model(), 8192, "f16", None, None, 4 * GIB)
    assert plan.auto_layers == 32 and "memory is unknown" in plan.sentence


# --- llama.cpp's layer count ------------------------------------------------------------------


def test_llama_cpp_counts_the_output_layer_and_offloads_it_first() -> None:
    assert [llama_gpu_layers(n, 30) for n in (0, 1, 29, 30, -1)] == [0, 2, 30, -1, -1]
    for layers in range(31):
        assert layers_on_gpu(llama_gpu_layers(layers, 30), 30) == layers
    shape = model_shape(big_model())
    one = plan_fit(big_model(), 8192, "f16", 24 * GIB, None, 0, layers=1)
    assert one.use.weights == shape.layer_bytes[-1] + shape.output_bytes  # the output layer comes along


# --- The real model ---------------------------------------------------------------------------


def test_smollm2_header_gives_its_shape(smollm2_path: Path) -> None:
    info = inspect_model(smollm2_path)
    shape = model_shape(info)
    assert shape.n_layers == 30 and shape.n_embd == 576 and shape.n_head == 9 and shape.n_vocab == 49152
    assert shape.kv_widths == (3 * (64 + 64),) * 30  # 3 KV heads of 64 for K and for V
    # Tied embeddings: the output layer is a copy of token_embd (plus the final norm).
    assert shape.output_bytes == info.tensors["token_embd.weight"].n_bytes + 576 * 4
    total = sum(t.n_bytes for t in info.tensors.values())
    assert (
        sum(shape.layer_bytes) + shape.output_bytes
        == total + 576 * 4 - info.tensors["output_norm.weight"].n_bytes
    )


_PROBE = """
import sys, llama_cpp
kv = getattr(llama_cpp, "GGML_TYPE_" + sys.argv[3].upper())
llama_cpp.Llama(model_path=sys.argv[1], n_ctx=int(sys.argv[2]), n_threads=1, type_k=kv, type_v=kv,
                flash_attn=sys.argv[3] != "f16", verbose=True)
"""


@pytest.mark.model
@pytest.mark.parametrize(("n_ctx", "kv_type"), [(512, "f16"), (2048, "f16"), (2048, "q8_0"), (4096, "q4_0")])
def test_estimate_matches_what_llama_cpp_reports_for_smollm2_on_the_cpu(
    smollm2_path: Path, n_ctx: int, kv_type: str
) -> None:
    log = subprocess.run(
        [sys.executable, "-c", _PROBE, str(smollm2_path), str(n_ctx), kv_type],
        capture_output=True, text=True, timeout=120, check=True,
    ).stderr  # fmt: skip

    def mib(pattern: str) -> float:
        match = re.search(pattern + r" buffer size =\s+([\d.]+) MiB", log)
        assert match, f"llama.cpp no longer prints '{pattern} buffer size'"
        return float(match.group(1))

    shape = model_shape(inspect_model(smollm2_path))
    kv = kv_cache_bytes(shape, 30, n_ctx, kv_type)  # type: ignore[arg-type]
    compute = compute_bytes(shape, n_ctx, kv_type, with_output=True)  # type: ignore[arg-type]
    assert kv / MIB == pytest.approx(mib("CPU KV"), rel=0.01)
    assert compute / MIB == pytest.approx(mib("CPU compute"), rel=0.05)
    weights = sum(t.n_bytes for t in inspect_model(smollm2_path).tensors.values())
    assert weights / MIB == pytest.approx(mib("CPU_Mapped model"), rel=0.01)


# --- Text and the verdict before download ----------------------------------------------------


def test_fit_text_draws_a_bar_of_the_given_width_with_a_legend(smollm2_path: Path) -> None:
    plan = plan_fit(inspect_model(smollm2_path), 4096, "q8_0", 8 * GIB, None, 4 * GIB)
    lines = format_fit_text(plan, width=40).splitlines()
    bar = lines[1][1 : lines[1].index("]")]
    assert len(bar) == 40 and bar.startswith("WKC") and "R" * 15 in bar and bar.endswith(".")
    assert lines[1].endswith("8.0 GB VRAM")
    assert [line.split()[0] for line in lines[2:7]] == ["W", "K", "C", "R", "."]
    assert "KV cache (q8_0)" in lines[3] and lines[5].endswith("4.0 GB")
    assert lines[-1] == "Auto puts all 30 layers on the GPU."


def test_fit_by_size_gives_a_verdict_from_the_file_size_alone() -> None:
    card, ram = 12 * GIB, 32 * GIB
    assert fit_by_size(4 * GIB, gpu_total_bytes=card, ram_total_bytes=ram) == "fits on GPU"
    assert fit_by_size(10 * GIB, gpu_total_bytes=card, ram_total_bytes=ram) == "partly on GPU"
    assert fit_by_size(10 * GIB, gpu_total_bytes=0, ram_total_bytes=ram) == "CPU only"
    assert fit_by_size(40 * GIB, gpu_total_bytes=card, ram_total_bytes=ram) == "too large for this PC"
    # The reserve is kept: a model that fills the card without it does not "fit".
    assert fit_by_size(9 * GIB, gpu_total_bytes=card, ram_total_bytes=ram, reserve_bytes=0) == "fits on GPU"
    assert fit_by_size(9 * GIB, gpu_total_bytes=card, ram_total_bytes=ram) == "partly on GPU"
