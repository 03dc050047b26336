"""Instruct templates: how a conversation is written out as the one text a local model reads.

A model's GGUF usually carries its own chat template (``tokenizer.chat_template``), and that stays
the default.  A missing or wrong one is common in community files, so a user can pick a known
family instead, or write their own, the way SillyTavern's instruct mode does: text before and
after each role's turn.  The worker renders the chosen template (``render``) and stops where the
template says the reply ends (``stop_strings``).  Remote servers apply their own template.

No BOS token appears here: llama.cpp adds it when the model's vocabulary asks for it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

TemplateChoice = Literal["model", "chatml", "llama3", "mistral", "alpaca", "gemma", "vicuna", "custom"]


@dataclass(frozen=True)
class InstructTemplate:
    """Text around each role's turn; the reply is written after ``assistant_prefix``."""

    system_prefix: str = ""
    system_suffix: str = ""
    user_prefix: str = ""
    user_suffix: str = ""
    assistant_prefix: str = ""
    assistant_suffix: str = ""

    def render(self, messages: Iterable[Mapping[str, object]]) -> str:
        """The prompt for ``messages`` (dicts with ``role`` and ``content``), ending where the
        assistant's reply begins.  Roles other than system and assistant (tool results) are
        written as the user's."""
        parts = []
        for message in messages:
            prefix, suffix = self._around(str(message.get("role")))
            parts.append(f"{prefix}{message.get('content') or ''}{suffix}")
        parts.append(self.assistant_prefix)
        return "".join(parts)

    def stop_strings(self) -> list[str]:
        """Where a reply ends: the end of the assistant's turn, or the start of the user's."""
        ends = (self.assistant_suffix.strip(), self.user_prefix.strip())
        return list(dict.fromkeys(text for text in ends if text))

    def _around(self, role: str) -> tuple[str, str]:
        if role == "system":
            return self.system_prefix, self.system_suffix
        if role == "assistant":
            return self.assistant_prefix, self.assistant_suffix
        return self.user_prefix, self.user_suffix


def _same_for_system_and_user(prefix: str, suffix: str, assistant: tuple[str, str]) -> InstructTemplate:
    """A family with no system role: the system text is written as a user turn."""
    return InstructTemplate(prefix, suffix, prefix, suffix, *assistant)


def _header(role: str) -> str:
    return f"<|start_header_id|>{role}<|end_header_id|>\n\n"


KNOWN_TEMPLATES: dict[str, InstructTemplate] = {
    "chatml": InstructTemplate(
        "<|im_start|>system\n", "<|im_end|>\n",
        "<|im_start|>user\n", "<|im_end|>\n",
        "<|im_start|>assistant\n", "<|im_end|>\n",
    ),
    "llama3": InstructTemplate(
        _header("system"), "<|eot_id|>", _header("user"), "<|eot_id|>", _header("assistant"), "<|eot_id|>"
    ),
    "mistral": _same_for_system_and_user("[INST] ", " [/INST]", ("", "</s>")),
    "alpaca": InstructTemplate("", "\n\n", "### Instruction:\n", "\n\n", "### Response:\n", "\n\n"),
    "gemma": _same_for_system_and_user(
        "<start_of_turn>user\n", "<end_of_turn>\n", ("<start_of_turn>model\n", "<end_of_turn>\n")
    ),
    "vicuna": InstructTemplate("", "\n\n", "USER: ", "\n", "ASSISTANT: ", "</s>\n"),
}  # fmt: skip
"""The families a user can pick by name, written as their models' own templates write them."""

TEMPLATE_LABELS: dict[TemplateChoice, str] = {
    "model": "The model's own",
    "chatml": "ChatML",
    "llama3": "Llama 3",
    "mistral": "Mistral",
    "alpaca": "Alpaca",
    "gemma": "Gemma",
    "vicuna": "Vicuna",
    "custom": "Custom",
}

_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\t": "\\t"}
_ESCAPED = re.compile(r"\\(\\|n|t)")


def one_line(text: str) -> str:
    """``text`` for a one-line field: new lines and tabs written as ``\\n`` and ``\\t``."""
    return "".join(_ESCAPES.get(char, char) for char in text)


def from_one_line(text: str) -> str:
    """The text a one-line field means (``one_line`` undone); other backslashes stay as typed."""
    return _ESCAPED.sub(lambda match: {"\\": "\\", "n": "\n", "t": "\t"}[match.group(1)], text)
