"""How the status line and the settings page describe the installed llama.cpp build."""

from __future__ import annotations


def describe_build() -> tuple[str, str]:
    """(short status text, what to do next). Runs a probe process: call it off the Qt thread."""
    from nexus_desktop.llm.hardware import llama_build_info

    info = llama_build_info()
    if info.version is None:
        return "llama.cpp: not installed", info.hint
    kind = "GPU offload" if info.supports_gpu_offload else "CPU only"
    return f"llama.cpp {info.version} · {kind}", info.hint or "This build can offload layers to the GPU."
