"""PEFT LoRA adapter (safetensors) -> GGUF LoRA adapter that llama.cpp loads with ``lora_path``.

    python -m training.export_gguf ADAPTER_DIR BASE_HF_DIR OUT.gguf

Layout (as llama.cpp's convert_lora_to_gguf.py writes it): ``general.type=adapter``,
``adapter.type=lora``, ``adapter.lora.alpha``, and per projection ``blk.N.<name>.weight.lora_a``
(r x in) and ``.lora_b`` (out x r) in F32.  The q and k ``lora_b`` rows are permuted like
convert_hf_to_gguf.py permutes q/k weights: llama.cpp's rotary embedding expects interleaved
halves; without it top-token agreement with transformers drops from ~96% to ~85%.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

from training.progress import TrainerError

GGUF_NAMES = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
_PEFT_KEY = re.compile(
    r"^(?:base_model\.model\.)?model\.layers\.(\d+)\.(\w+\.\w+)\.lora_([AB])(?:\.\w+)?\.weight$"
)


def permute_rows(weights: np.ndarray, n_head: int, n_head_kv: int | None = None) -> np.ndarray:
    """convert_hf_to_gguf's ``LlamaModel.permute``: HF's rotary halves -> llama.cpp's interleaved pairs."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (
        weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def gguf_tensors(state: dict[str, np.ndarray], n_head: int, n_head_kv: int) -> dict[str, np.ndarray]:
    """Rename and permute a PEFT adapter's tensors; raise ``TrainerError("export")`` on anything unknown."""
    tensors: dict[str, np.ndarray] = {}
    for key, value in state.items():
        match = _PEFT_KEY.match(key)
        if match is None or match.group(2) not in GGUF_NAMES:
            raise TrainerError(
                "export",
                f"The adapter changes {key}, which a llama.cpp LoRA cannot hold; "
                f"train only these modules: {', '.join(m.split('.')[1] for m in GGUF_NAMES)}.",
            )
        layer, module, half = match.groups()
        array = np.ascontiguousarray(value, dtype=np.float32)
        if half == "B" and module == "self_attn.q_proj":
            array = permute_rows(array, n_head, n_head)
        elif half == "B" and module == "self_attn.k_proj":
            array = permute_rows(array, n_head, n_head_kv)
        tensors[f"blk.{layer}.{GGUF_NAMES[module]}.weight.lora_{half.lower()}"] = np.ascontiguousarray(array)
    if not tensors:
        raise TrainerError("export", "The adapter holds no LoRA weights; train again.")
    return tensors


def write_adapter(tensors: dict[str, np.ndarray], alpha: float, out: Path, name: str) -> Path:
    """Write atomically: a half-written adapter could crash llama.cpp, so it never has the final name."""
    import gguf

    partial = out.with_name(out.name + ".partial")
    writer = gguf.GGUFWriter(str(partial), arch="llama")
    writer.add_string(gguf.Keys.General.TYPE, gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(alpha))
    writer.add_name(name)
    for tensor_name in sorted(tensors, key=_tensor_order):
        writer.add_tensor(tensor_name, tensors[tensor_name])
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()
    os.replace(partial, out)
    return out


def _tensor_order(name: str) -> tuple[int, str]:
    return int(name.split(".")[1]), name


def export(adapter_dir: str | Path, base_hf_dir: str | Path, out: str | Path) -> Path:
    from safetensors.numpy import load_file

    adapter_dir, out = Path(adapter_dir), Path(out)
    adapter_config = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    config = json.loads((Path(base_hf_dir) / "config.json").read_text(encoding="utf-8"))
    if config.get("model_type") != "llama":
        raise TrainerError("export", "Only llama-architecture adapters can be exported to GGUF.")
    if adapter_config.get("use_rslora") or adapter_config.get("use_dora"):
        raise TrainerError(
            "export", "rsLoRA and DoRA adapters cannot be exported to llama.cpp; use plain LoRA."
        )
    n_head = int(config["num_attention_heads"])
    n_head_kv = int(config.get("num_key_value_heads") or n_head)
    state: dict[str, Any] = load_file(str(adapter_dir / "adapter_model.safetensors"))
    tensors = gguf_tensors(state, n_head, n_head_kv)
    name = f"{adapter_dir.parent.name or 'nexus'} LoRA"
    return write_adapter(tensors, float(adapter_config["lora_alpha"]), out, name)


if __name__ == "__main__":
    print(export(sys.argv[1], sys.argv[2], sys.argv[3]))
