"""How much of a model fits in VRAM, from its GGUF header alone, and how many layers "Auto" picks.

The estimate mirrors where llama.cpp (the pinned 0.3.36 build) puts things:

- ``token_embd`` (the input layer) always stays on the CPU;
- ``n_gpu_layers`` counts the output layer as the last layer and offloads from the end, so the
  output layer (``output.weight``, or a copy of ``token_embd`` for tied embeddings) goes to the
  GPU with the first offloaded layer.  Here "layers" means the model's repeating layers (the
  slider's 0 to N); ``llama_gpu_layers`` turns that into llama.cpp's count;
- the KV cache of a layer lives on that layer's device:
  ``n_ctx * n_head_kv * (key_length + value_length) * bytes per element`` per layer;
- the compute buffer is llama.cpp's graph buffer for one micro-batch of ``N_UBATCH`` tokens.
  Its allocator reuses memory, so it is modelled as the always-live tensors (the attention mask
  and two hidden states) plus the largest phase: attention (its KQ scores unless flash attention
  is on), the feed-forward block, or the logits when the output layer is on the GPU.  This is an
  estimate; on the CPU it lands within a few percent of what llama.cpp reports.  A GPU runtime
  (CUDA context, cuBLAS) adds ``GPU_RUNTIME_BYTES``, counted with the compute buffers.

Flash attention is on exactly when the KV cache is quantised, because llama.cpp needs it for a
quantised V cache.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from nexus_desktop.llm.gguf_check import ModelInfo

KvType = Literal["f16", "q8_0", "q4_0"]
KV_TYPES: tuple[KvType, ...] = ("f16", "q8_0", "q4_0")
KV_BYTES_PER_ELEMENT: Mapping[str, float] = {"f16": 2.0, "q8_0": 34 / 32, "q4_0": 18 / 32}
N_UBATCH = 512
MIB = 1 << 20
GIB = 1 << 30
GPU_RUNTIME_BYTES = 300 * MIB
DEFAULT_RESERVE_BYTES = 4 * GIB
_F32 = 4
_LAYER = re.compile(r"blk\.(\d+)\.")


@dataclass(frozen=True)
class ModelShape:
    """What the estimate needs from a GGUF header."""

    name: str
    layer_bytes: tuple[int, ...]
    """Weights of each repeating layer (``blk.N.*``)."""
    output_bytes: int
    """The output layer's weights: on the GPU as soon as any layer is."""
    kv_widths: tuple[int, ...]
    """Per layer: ``n_head_kv * (key_length + value_length)``, the KV cache's values per token."""
    n_embd: int
    n_head: int
    n_ff: int
    n_vocab: int

    @property
    def n_layers(self) -> int:
        return len(self.layer_bytes)


def _int(metadata: Mapping[str, object], key: str) -> int | None:
    value = metadata.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def model_shape(info: ModelInfo) -> ModelShape:
    """The header's numbers; per-layer head counts (arrays) fall back to the tensors' shapes."""
    # Imported here: the model worker imports this module, and the gguf package is slow to load.
    from nexus_desktop.llm.gguf_reader import ArrayInfo

    meta, arch = info.metadata, info.architecture
    n_layers = info.n_layers or 0
    layer_bytes = [0] * n_layers
    for name, tensor in info.tensors.items():
        match = _LAYER.match(name)
        if match and int(match.group(1)) < n_layers:
            layer_bytes[int(match.group(1))] += tensor.n_bytes
    output = info.tensors.get("output.weight") or info.tensors.get("token_embd.weight")
    norm = info.tensors.get("output_norm.weight")
    output_bytes = (output.n_bytes if output else 0) + (norm.n_bytes if norm else 0)

    n_embd = info.n_embd or 0
    n_head = _int(meta, f"{arch}.attention.head_count") or 1
    n_head_kv = _int(meta, f"{arch}.attention.head_count_kv") or n_head
    key_length = _int(meta, f"{arch}.attention.key_length") or n_embd // n_head
    value_length = _int(meta, f"{arch}.attention.value_length") or n_embd // n_head
    widths = [n_head_kv * (key_length + value_length)] * n_layers
    if any(
        isinstance(meta.get(f"{arch}.attention.{key}"), ArrayInfo) for key in ("head_count", "head_count_kv")
    ):
        # Per-layer head counts (OpenELM and others): the K and V projections say each layer's width.
        widths = [_kv_width_from_tensors(info, layer, widths[layer]) for layer in range(n_layers)]
    n_ff = _int(meta, f"{arch}.feed_forward_length") or 4 * n_embd
    n_vocab = info.vocab_size or _int(meta, f"{arch}.vocab_size") or (output.shape[-1] if output else 0)
    return ModelShape(
        info.name, tuple(layer_bytes), output_bytes, tuple(widths), n_embd, n_head, n_ff, n_vocab
    )


def _kv_width_from_tensors(info: ModelInfo, layer: int, fallback: int) -> int:
    key = info.tensors.get(f"blk.{layer}.attn_k.weight")
    value = info.tensors.get(f"blk.{layer}.attn_v.weight")
    if key is None or value is None or len(key.shape) < 2 or len(value.shape) < 2:
        return fallback
    return key.shape[1] + value.shape[1]


def kv_cache_bytes(shape: ModelShape, layers: int, n_ctx: int, kv_type: KvType) -> int:
    """The KV cache of the top ``layers`` layers (the ones llama.cpp offloads first)."""
    widths = shape.kv_widths[shape.n_layers - layers :] if layers > 0 else ()
    return int(n_ctx * sum(widths) * KV_BYTES_PER_ELEMENT[kv_type])


def compute_bytes(shape: ModelShape, n_ctx: int, kv_type: KvType, *, with_output: bool) -> int:
    """llama.cpp's graph buffer for one micro-batch (see the module's docstring)."""
    flash_attn = kv_type != "f16"
    tokens = min(N_UBATCH, n_ctx)
    mask = n_ctx * tokens * (2 if flash_attn else _F32)
    hidden = 2 * tokens * shape.n_embd * _F32
    attention = tokens * (shape.n_embd + max(shape.kv_widths, default=0)) * _F32
    if not flash_attn:
        attention += n_ctx * tokens * shape.n_head * _F32
    feed_forward = 2 * tokens * shape.n_ff * _F32
    logits = tokens * shape.n_vocab * _F32 if with_output else 0
    return mask + hidden + max(attention, feed_forward, logits)


def llama_gpu_layers(layers: int, n_layers: int) -> int:
    """llama.cpp's ``n_gpu_layers`` for ``layers`` repeating layers (-1: all): it counts the
    output layer too, and offloads it first."""
    if layers < 0 or layers >= n_layers:
        return -1
    return layers + 1 if layers > 0 else 0


def layers_on_gpu(n_gpu_layers: int, n_layers: int) -> int:
    """The repeating layers llama.cpp puts on the GPU for its ``n_gpu_layers``."""
    if n_gpu_layers < 0:
        return n_layers
    return max(0, min(n_gpu_layers, n_layers + 1) - 1)


@dataclass(frozen=True)
class GpuUse:
    """VRAM for a number of layers: weights, KV cache and compute buffers (with the runtime)."""

    weights: int
    kv_cache: int
    compute: int

    @property
    def total(self) -> int:
        return self.weights + self.kv_cache + self.compute


def gpu_use(shape: ModelShape, layers: int, n_ctx: int, kv_type: KvType) -> GpuUse:
    if layers <= 0:
        return GpuUse(0, 0, 0)
    layers = min(layers, shape.n_layers)
    weights = sum(shape.layer_bytes[shape.n_layers - layers :]) + shape.output_bytes
    compute = compute_bytes(shape, n_ctx, kv_type, with_output=True) + GPU_RUNTIME_BYTES
    return GpuUse(weights, kv_cache_bytes(shape, layers, n_ctx, kv_type), compute)


@dataclass(frozen=True)
class FitPlan:
    """The VRAM bar: what ``layers`` layers take, the reserve, what is left, and a sentence."""

    model: str
    n_layers: int
    layers: int
    """The layers the bar shows (the chosen count, or Auto's)."""
    auto_layers: int
    n_ctx: int
    kv_type: KvType
    gpu_build: bool
    gpu_total: int | None
    use: GpuUse
    reserve: int
    sentence: str

    @property
    def left(self) -> int:
        """VRAM left beside the model and the reserve; negative when they do not fit."""
        return (self.gpu_total or 0) - self.use.total - self.reserve

    @property
    def over(self) -> int:
        """How far the layers on the GPU run into the reserve or past the card (0: they fit)."""
        return max(0, -self.left) if self.use.total else 0

    def segments(self) -> list[tuple[str, str, int]]:
        """(key, label, bytes) of the bar, in order: weights, KV cache, compute, reserve, left."""
        return [
            ("weights", "Weights on GPU", self.use.weights),
            ("kv", f"KV cache ({self.kv_type})", self.use.kv_cache),
            ("compute", "Compute buffers", self.use.compute),
            ("reserve", "Game reserve", min(self.reserve, max(0, (self.gpu_total or 0) - self.use.total))),
            ("left", "Left", max(0, self.left)),
        ]


def plan_fit(
    info: ModelInfo,
    n_ctx: int,
    kv_type: KvType,
    gpu_total_bytes: int | None,
    gpu_free_bytes: int | None,
    reserve_bytes: int,
    layers: int | None = None,
    *,
    gpu_build: bool = True,
) -> FitPlan:
    """Plan ``info`` at ``n_ctx`` tokens: Auto takes the most layers whose VRAM fits inside the
    card's total minus the reserve and inside what is free now; ``layers`` (-1: all) shows a
    chosen count instead.  ``gpu_build`` False: this llama.cpp cannot offload at all."""
    shape = model_shape(info)
    n_layers = shape.n_layers
    if not gpu_build:
        auto = 0
    elif gpu_total_bytes is None:
        auto = n_layers  # an unknown card (AMD or Intel through Vulkan): llama.cpp's own default
    else:
        budget = gpu_total_bytes - reserve_bytes
        if gpu_free_bytes is not None:
            budget = min(budget, gpu_free_bytes)
        auto = next(
            (n for n in range(n_layers, 0, -1) if gpu_use(shape, n, n_ctx, kv_type).total <= budget), 0
        )
    shown = auto if layers is None else (n_layers if layers < 0 else min(layers, n_layers))
    if not gpu_build:
        shown = 0
    use = gpu_use(shape, shown, n_ctx, kv_type)
    plan = FitPlan(
        shape.name, n_layers, shown, auto, n_ctx, kv_type, gpu_build, gpu_total_bytes, use, reserve_bytes, ""
    )
    sentence = _sentence(plan, shape, gpu_free_bytes, chosen=layers is not None)
    return replace(plan, sentence=sentence)


def _sentence(plan: FitPlan, shape: ModelShape, gpu_free: int | None, *, chosen: bool) -> str:
    from nexus_desktop.llm.hardware import gpu_build_command

    n = plan.n_layers
    if not plan.gpu_build:
        return (
            "No GPU build: this llama.cpp runs on the CPU only, so the model does too. "
            f"For an NVIDIA GPU run: {gpu_build_command()} (AMD or Intel: -DGGML_VULKAN=on)."
        )
    if plan.gpu_total is None:
        return f"The GPU's memory is unknown: Auto puts all {n} layers on it; pick fewer if loading fails."
    room = plan.gpu_total - plan.reserve
    if gpu_free is not None and gpu_free < room:
        room_text = f"{format_bytes(gpu_free)} free now"
    else:
        room_text = f"{format_bytes(max(0, room))} left after the {format_bytes(plan.reserve)} reserve"
    if plan.auto_layers == 0:
        one = gpu_use(shape, 1, plan.n_ctx, plan.kv_type).total
        auto = (
            f"Too large for this GPU: even 1 of {n} layers needs {format_bytes(one)} with its buffers, "
            f"more than the {room_text}; Auto runs it on the CPU."
        )
    elif plan.auto_layers == n:
        auto = f"Auto puts all {n} layers on the GPU."
    else:
        auto = (
            f"Auto puts {plan.auto_layers} of {n} layers on the GPU to fit the {room_text}; "
            "the rest run on the CPU (slower)."
        )
    if not chosen or plan.layers == plan.auto_layers:
        return auto
    would = f"Auto would pick {plan.auto_layers}."
    if plan.over:
        return (
            f"{plan.layers} of {n} layers need {format_bytes(plan.use.total)}, more than the {room_text}: "
            f"lower the layers, the context or the KV cache type. {would}"
        )
    return f"{plan.layers} of {n} layers on the GPU. {would}"


def format_bytes(n_bytes: int) -> str:
    """Binary sizes as a gamer's tools show them: "4.0 GB" is 4 GiB."""
    if abs(n_bytes) >= GIB:
        return f"{n_bytes / GIB:.1f} GB"
    return f"{n_bytes / MIB:.0f} MB"


_BAR_CHARS = {"weights": "W", "kv": "K", "compute": "C", "reserve": "R", "left": "."}


def format_fit_text(plan: FitPlan, width: int = 50) -> str:
    """The VRAM bar as text for the CLI: the bar, a legend with sizes, and the sentence."""
    lines = [
        f"{plan.model} · {plan.n_ctx:,} tokens · KV cache {plan.kv_type} · "
        f"{plan.layers} of {plan.n_layers} layers on the GPU"
    ]
    if plan.gpu_build and plan.gpu_total:
        segments = plan.segments()
        cells = bar_cells([size for _key, _label, size in segments], width)
        bar = "".join(
            _BAR_CHARS[key] * count for (key, _label, _size), count in zip(segments, cells, strict=True)
        )
        lines.append(f"[{bar}] {format_bytes(plan.gpu_total)} VRAM")
        label_width = max(len(label) for _key, label, _size in segments)
        for key, label, size in segments:
            lines.append(f"  {_BAR_CHARS[key]} {label.ljust(label_width)}  {format_bytes(size):>8}")
        if plan.over:
            lines.append(f"  ! Over by {format_bytes(plan.over)}: this does not fit beside the reserve")
    lines.append(plan.sentence)
    return "\n".join(lines)


def bar_cells(sizes: list[int], width: int) -> list[int]:
    """Split ``width`` cells among ``sizes``; every non-empty size keeps at least one cell."""
    total = sum(sizes) or 1
    cells = [max(1, round(width * size / total)) if size else 0 for size in sizes]
    while sum(cells) > width and max(cells) > 1:
        cells[cells.index(max(cells))] -= 1
    if sum(cells) < width and any(cells):
        cells[cells.index(max(cells))] += width - sum(cells)
    return cells


def fit_by_size(
    file_bytes: int,
    *,
    gpu_total_bytes: int | None = None,
    ram_total_bytes: int | None = None,
    reserve_bytes: int = DEFAULT_RESERVE_BYTES,
) -> str:
    """A verdict before download, when only the file's size is known: "fits on GPU", "partly on
    GPU", "CPU only" or "too large for this PC".  Sizes not given are read from this machine
    (``gpu_memory``, which blocks: call it off the UI thread)."""
    if gpu_total_bytes is None:
        gpu_total_bytes = _gpu_total()
    if ram_total_bytes is None:
        import psutil

        ram_total_bytes = int(psutil.virtual_memory().total)
    # Beside the weights: a KV cache at a modest context and the compute buffers.
    needed = int(file_bytes * 1.1) + GPU_RUNTIME_BYTES + 512 * MIB
    vram = max(0, gpu_total_bytes - reserve_bytes)
    if vram and needed <= vram:
        return "fits on GPU"
    # The OS and the app keep about a quarter of the RAM.
    if needed > vram + ram_total_bytes * 3 // 4:
        return "too large for this PC"
    return "partly on GPU" if vram else "CPU only"


def _gpu_total() -> int:
    """The GPUs' total VRAM, cached per process (a search lists many files)."""
    from nexus_desktop.llm.hardware import llama_build_info, nvidia_gpus

    gpus = nvidia_gpus()
    if gpus:
        return sum(gpu.vram_total_mb for gpu in gpus) * MIB
    return sum(device.vram_total_mb for device in llama_build_info().devices) * MIB


def gpu_memory() -> tuple[int | None, int | None]:
    """(total, free) VRAM in bytes over the GPUs llama.cpp splits a model across; None when unknown.

    NVIDIA GPUs are read now (NVML or nvidia-smi), so "free" is current; other GPUs come from
    the llama.cpp build's own device list (Vulkan on AMD or Intel), read once per process.
    Blocks (it may start a probe process): call it off the UI thread.
    """
    from nexus_desktop.llm.hardware import gpu_report, llama_build_info

    gpus = gpu_report().gpus
    if gpus:
        return sum(g.vram_total_mb for g in gpus) * MIB, sum(g.vram_free_mb for g in gpus) * MIB
    devices = llama_build_info().devices
    if devices:
        return sum(d.vram_total_mb for d in devices) * MIB, sum(d.vram_free_mb for d in devices) * MIB
    return None, None
