"""The status line's words for the model's state; the source manager owns the state itself."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nexus_desktop.chat.sources import ModelState

# The status line's dot colours: its states are named for what the user sees.
_DOT = {"idle": "idle", "loading": "loading", "ready": "ready", "failed": "error"}


def status_text(state: ModelState) -> tuple[str, str]:
    """(the dot's state, the line's text) for ``state``; the llama.cpp build has its own label."""
    from nexus_desktop.ui.chat_view import describe_error

    if state.phase == "loading":
        text = f"Loading {state.name}…"
    elif state.phase == "ready":
        details = [state.name, f"{state.context_size} ctx"]
        if state.gpu_layers > 0:
            details.append(f"{state.gpu_layers} layers on GPU")
        text = "Ready · " + " · ".join(details)
        if state.note:  # a GPU that could not take the model: it says why
            text = f"{text} — {state.note}"
    elif state.phase == "failed" and state.error is not None:
        text = f"Model not loaded — {describe_error(state.error)}"
    elif state.note:  # unloaded on purpose (keep-alive, game mode): it says why
        text = f"{state.note} · {state.name}" if state.name else state.note
    else:
        text = "No model loaded"
    return _DOT[state.phase], text
