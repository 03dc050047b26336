"""The wire format between NEXUS and its children: one JSON object per line, in ASCII.

The parent reads with ``decode`` (``supervised.ChildProcess``); a child writes with ``Channel``.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from typing import Any

MAX_LINE_BYTES = 8 * 1024 * 1024
"""A longer line from a child is a protocol violation and ends the child."""


def encode(message: dict[str, Any]) -> bytes:
    # ASCII JSON cannot fail to encode, even for text with stray surrogates.
    return json.dumps(message, ensure_ascii=True, separators=(",", ":"), default=str).encode("ascii") + b"\n"


def decode(line: bytes) -> dict[str, Any] | None:
    """The message on ``line``, or None when it is not a JSON object (stray output)."""
    try:
        message = json.loads(line)
    except ValueError:
        return None
    return message if isinstance(message, dict) else None


class Channel:
    """A child's end of the protocol: JSON lines on the original stdout, one writer at a time.

    File descriptor 1 then points at stderr, so whatever else the child prints (a library, a
    module's ``print``) can never be taken for a message.
    """

    def __init__(self) -> None:
        self._fd = os.dup(1)
        os.dup2(2, 1)
        sys.stdout = sys.stderr
        self._lock = threading.Lock()

    def send(self, message: dict[str, Any]) -> None:
        view = memoryview(encode(message))
        with self._lock:
            while view:
                view = view[os.write(self._fd, view) :]
