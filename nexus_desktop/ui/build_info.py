"""How the status line and the settings page describe the installed llama.cpp build."""

from __future__ import annotations


def describe_build() -> tuple[str, str]:
    """(short status text, what it runs on or what to do next).

    Runs a probe process: call it off the Qt thread.  The short text stays short (the status line
    does not elide it); the GPU's name and VRAM go in the second part, as ``nexus doctor`` says them.
    """
    from nexus_desktop.llm.hardware import describe_devices, llama_build_info

    info = llama_build_info()
    if info.version is None:
        return "llama.cpp: not installed", info.hint
    short = f"llama.cpp {info.version} · {info.backend}"
    if info.hint:
        return short, info.hint
    if info.devices:
        return short, f"Runs on {describe_devices(info.devices)}."
    return short, "This build can offload layers to the GPU."
