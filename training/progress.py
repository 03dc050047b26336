"""The trainer's side of the protocol: JSON lines on stdout, everything else on stderr.

Libraries print freely (HF warnings, C-level logs); the real stdout is therefore taken over at
start-up and only ``emit`` writes to it, so the parent can parse every line.
"""

from __future__ import annotations

import errno
import json
import os
import sys
from typing import IO, Any

ERROR_KINDS = ("dataset", "base_model", "dependency", "oom", "disk", "export", "verify", "internal")

_protocol_out: IO[str] | None = None


class TrainerError(Exception):
    """A failure the user can act on; ``str()`` is one sentence saying what happened and what to do."""

    def __init__(self, kind: str, message: str) -> None:
        assert kind in ERROR_KINDS, kind
        super().__init__(message)
        self.kind = kind


def take_over_stdout() -> None:
    """Keep the real stdout for protocol lines and send fd 1 (Python and C alike) to stderr."""
    global _protocol_out
    if _protocol_out is not None:
        return
    sys.stdout.flush()
    _protocol_out = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr


def emit(event: str, **fields: Any) -> None:
    line = json.dumps({"event": event, **fields}, ensure_ascii=True, allow_nan=False, default=str)
    out = _protocol_out or sys.stdout
    out.write(line + "\n")
    out.flush()


def log(message: str) -> None:
    print(f"[trainer] {message}", file=sys.stderr, flush=True)


def classify(error: BaseException) -> TrainerError:
    """Turn any exception into the error the user sees."""
    if isinstance(error, TrainerError):
        return error
    if isinstance(error, MemoryError) or type(error).__name__ == "OutOfMemoryError":
        return TrainerError(
            "oom",
            "Training ran out of memory; lower batch_size or max_seq_len, or close other programs.",
        )
    if isinstance(error, RuntimeError) and "out of memory" in str(error).lower():
        return TrainerError("oom", "Training ran out of GPU memory; lower batch_size or max_seq_len.")
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        where = f" ({error.filename})" if error.filename else ""
        return TrainerError("disk", f"The disk is full{where}; free some space and start the job again.")
    return TrainerError(
        "internal", f"The trainer failed unexpectedly ({type(error).__name__}: {_short(error)}); see its log."
    )


def _short(error: BaseException, limit: int = 200) -> str:
    text = " ".join(str(error).split())
    return text[:limit] + ("…" if len(text) > limit else "")
