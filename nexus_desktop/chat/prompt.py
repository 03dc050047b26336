"""Prompt assembly: a character card plus chat history, fitted into the model's context."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from nexus_desktop.cards.lorebook import activate_entries, lore_at_depth, render_lore
from nexus_desktop.cards.model import CharacterCard, LorebookEntry
from nexus_desktop.llm.contract import ChatMessage, ModelError, Role

TokenCounter = Callable[[list[str]], Awaitable[list[int]]]

# Chat templates wrap each message in a few special tokens; count them so the fit is honest.
PER_MESSAGE_OVERHEAD = 6
DEFAULT_SYSTEM_PROMPT = (
    "You are {{char}}. Stay in character and write {{char}}'s next reply to {{user}} "
    "in a few vivid sentences. Never speak for {{user}}."
)
LORE_SCAN_MESSAGES = 8
MEMORY_HEADING = "Things {{char}} remembers from earlier chats (use them when they help):"

_MACROS = {
    r"\{\{char\}\}|<BOT>": "char",
    r"\{\{user\}\}|<USER>": "user",
}


class PromptTooLongError(ModelError):
    """Even the newest message alone does not fit in the model's context."""


@dataclass(frozen=True)
class Turn:
    role: Role
    content: str


@dataclass(frozen=True)
class AuthorNote:
    """SillyTavern's Author's Note: a chat's own text, put ``depth`` messages from the end of the
    chat in the prompt (0: after the last message), as a message of ``role``."""

    text: str
    depth: int = 4
    role: Role = "system"


@dataclass(frozen=True)
class PromptPlan:
    messages: tuple[ChatMessage, ...]
    prompt_tokens: int
    dropped: int
    """How many of the oldest history messages were left out to fit the context."""


def substitute(text: str, char: str, user: str) -> str:
    names = {"char": char, "user": user}
    for pattern, key in _MACROS.items():
        text = re.sub(pattern, lambda _m, k=key: names[k], text, flags=re.IGNORECASE)  # type: ignore[misc]
    return text


def memory_block(memories: Sequence[str]) -> str:
    """Engram's memories for this reply under a clear heading, one a line ("" for none)."""
    if not memories:
        return ""
    return "\n".join([MEMORY_HEADING, *(f"- {text}" for text in memories)])


def system_prompt(
    card: CharacterCard,
    user_name: str,
    lore: Sequence[LorebookEntry],
    persona_description: str = "",
    memories: Sequence[str] = (),
) -> str:
    """SillyTavern's default story string: the user's persona comes after the character's
    description, personality, scenario and lore, then what the character remembers (Engram),
    before the example dialogue."""
    sections = [
        card.system_prompt.strip() or DEFAULT_SYSTEM_PROMPT,
        render_lore(lore, "before_char"),
        card.description.strip(),
        f"{{{{char}}}}'s personality: {card.personality.strip()}" if card.personality.strip() else "",
        f"Scenario: {card.scenario.strip()}" if card.scenario.strip() else "",
        render_lore(lore, "after_char"),
        persona_description.strip(),
        memory_block(memories),
        f"Example dialogue:\n{card.mes_example.strip()}" if card.mes_example.strip() else "",
    ]
    text = "\n\n".join(section for section in sections if section)
    return substitute(text, card.name, user_name)


async def build_prompt(
    card: CharacterCard,
    history: Sequence[Turn],
    *,
    user_name: str,
    persona_description: str = "",
    count_tokens: TokenCounter,
    context_size: int,
    reply_tokens: int,
    author_note: AuthorNote | None = None,
    continuing: bool = False,
    instruction: str = "",
    memories: Sequence[str] = (),
) -> PromptPlan:
    """Fit the system prompt and as much recent history as the context allows.

    The oldest history goes first; the newest message always stays.  ``reply_tokens`` is kept
    free for the answer.  ``user_name`` fills {{user}}; ``persona_description`` is what the
    user's persona says about them.  ``author_note`` goes in at its depth, as lore does.

    ``continuing``: the last turn is a reply to write more of, so it ends the prompt (after the
    post-history instructions) and the model goes on from its last word.  ``instruction``: a
    last system message saying what to write (impersonation's).  ``memories``: what the
    character remembers that bears on this reply (Engram), in the system prompt under a heading.
    """
    if not history:
        raise ValueError("A prompt needs at least one message.")
    recent = [turn.content for turn in history[-LORE_SCAN_MESSAGES:]]
    lore = activate_entries(card.character_book, recent) if card.character_book else []
    system = system_prompt(card, user_name, lore, persona_description, memories)
    in_chat = [
        (d.depth, ChatMessage(d.role, substitute(d.text, card.name, user_name))) for d in lore_at_depth(lore)
    ]
    if author_note is not None and author_note.text.strip():
        note = substitute(author_note.text.strip(), card.name, user_name)
        in_chat.append((author_note.depth, ChatMessage(author_note.role, note)))
    turns = [Turn(t.role, substitute(t.content, card.name, user_name)) for t in history]
    post_history = substitute(card.post_history_instructions.strip(), card.name, user_name)

    instruction = substitute(instruction.strip(), card.name, user_name)
    fixed_texts = [system, post_history, instruction, *(message.content for _, message in in_chat)]
    counts = await count_tokens([*fixed_texts, *(t.content for t in turns)])
    fixed = sum(n + PER_MESSAGE_OVERHEAD for n, text in zip(counts, fixed_texts, strict=False) if text)
    turn_tokens = [n + PER_MESSAGE_OVERHEAD for n in counts[len(fixed_texts) :]]

    budget = context_size - min(reply_tokens, context_size // 2)
    if fixed + turn_tokens[-1] > budget:
        if fixed > budget // 2:
            what = f"{card.name}'s card" + (" with your persona" if persona_description.strip() else "")
            raise PromptTooLongError(
                f"{what} is about {fixed} tokens, too long for a {context_size}-token context. "
                "Shorten the description in the character editor (or your persona's), or raise "
                "Context size in Settings."
            )
        if continuing:
            raise PromptTooLongError(
                f"The reply is about {turn_tokens[-1]} tokens already, and the model's context holds "
                f"{context_size} with room for more. Regenerate it, or raise Context size in Settings."
            )
        raise PromptTooLongError(
            f"Your message is about {turn_tokens[-1]} tokens, but the model's context holds "
            f"{context_size} with room for the reply. Shorten the message, or raise Context size "
            "in Settings."
        )

    kept = 0
    used = fixed
    for tokens in reversed(turn_tokens):
        if used + tokens > budget:
            break
        used += tokens
        kept += 1
    dropped = len(turns) - kept
    chat = [ChatMessage(t.role, t.content) for t in turns[dropped:]]
    unfinished = [chat.pop()] if continuing else []
    messages = [ChatMessage("system", system)]
    messages += _with_lore_at_depth(chat, in_chat)
    if post_history:
        messages.append(ChatMessage("system", post_history))
    if instruction:
        messages.append(ChatMessage("system", instruction))
    messages += unfinished
    return PromptPlan(messages=tuple(messages), prompt_tokens=used, dropped=dropped)


def _with_lore_at_depth(
    chat: list[ChatMessage], lore: Sequence[tuple[int, ChatMessage]]
) -> list[ChatMessage]:
    """``chat`` with each lore message ``depth`` messages from its end (0: after the last one)."""
    out: list[ChatMessage] = []
    for index in range(len(chat) + 1):
        out += [message for depth, message in lore if max(0, len(chat) - depth) == index]
        if index < len(chat):
            out.append(chat[index])
    return out
