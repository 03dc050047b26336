"""The prompt carries the character and as much recent history as the context holds."""

from __future__ import annotations

import asyncio

import pytest

from nexus_desktop.cards.model import CharacterCard, Lorebook, LorebookEntry
from nexus_desktop.chat.prompt import PromptTooLongError, Turn, build_prompt, substitute


async def words(texts: list[str]) -> list[int]:
    """Counts one token per word: simple and predictable for fitting tests."""
    return [len(text.split()) for text in texts]


def plan(card: CharacterCard, history: list[Turn], context_size: int = 4096, reply_tokens: int = 100):  # type: ignore[no-untyped-def]
    return asyncio.run(
        build_prompt(
            card,
            history,
            user_name="Sam",
            count_tokens=words,
            context_size=context_size,
            reply_tokens=reply_tokens,
        )
    )


@pytest.fixture
def vega() -> CharacterCard:
    return CharacterCard(
        name="Vega",
        description="{{char}} is the ship's AI and calls {{user}} 'pilot'.",
        personality="dry, loyal",
        scenario="Deep space.",
        post_history_instructions="Answer as {{char}}.",
    )


def test_card_fields_and_names_fill_the_system_prompt(vega: CharacterCard) -> None:
    result = plan(vega, [Turn("user", "hello")])
    system = result.messages[0]
    assert system.role == "system"
    assert "Vega is the ship's AI and calls Sam 'pilot'." in system.content
    assert "dry, loyal" in system.content and "Deep space." in system.content
    assert [m.role for m in result.messages] == ["system", "user", "system"]
    assert result.messages[-1].content == "Answer as Vega."
    assert result.dropped == 0


def test_long_history_drops_the_oldest_messages_first(vega: CharacterCard) -> None:
    history = [Turn("user" if i % 2 else "assistant", f"message {i} " + "word " * 20) for i in range(40)]
    result = plan(vega, history, context_size=400, reply_tokens=100)
    assert result.dropped > 0
    kept = [m.content for m in result.messages[1:-1]]
    assert kept[-1].startswith("message 39")
    assert kept[0].startswith(f"message {result.dropped}")
    assert result.prompt_tokens <= 300


def test_a_message_longer_than_the_context_is_refused_with_advice(vega: CharacterCard) -> None:
    with pytest.raises(PromptTooLongError, match="Shorten the message"):
        plan(vega, [Turn("user", "word " * 5000)], context_size=1024)


def test_a_huge_card_is_blamed_on_the_card_not_the_message() -> None:
    card = CharacterCard(name="Huge", description="lore " * 5000)
    with pytest.raises(PromptTooLongError, match="Huge's card"):
        plan(card, [Turn("user", "hi")], context_size=1024)


def test_lorebook_entries_join_the_prompt_when_their_keys_come_up(vega: CharacterCard) -> None:
    vega.character_book = Lorebook(
        entries=[LorebookEntry(keys=["nebula"], content="The Veil Nebula hides pirates.", id=1)]
    )
    quiet = plan(vega, [Turn("user", "How are the engines?")])
    assert "pirates" not in quiet.messages[0].content
    mentioned = plan(vega, [Turn("user", "Set a course for the nebula.")])
    assert "The Veil Nebula hides pirates." in mentioned.messages[0].content


def test_lore_sillytavern_places_at_a_depth_goes_into_the_chat_there(vega: CharacterCard) -> None:
    at_depth = {"position": 4, "depth": 2, "role": 0}
    vega.character_book = Lorebook(
        entries=[
            LorebookEntry(keys=["nebula"], content="{{char}} fears the nebula.", extensions=at_depth),
            LorebookEntry(keys=["nebula"], content="Pirates hide there.", extensions=at_depth),
            LorebookEntry(
                keys=["nebula"], content="Say it in one line.", extensions={"position": 4, "depth": 0}
            ),
        ]
    )
    history = [Turn("user", "hi"), Turn("assistant", "Hello, pilot."), Turn("user", "Course: the nebula.")]

    result = plan(vega, history)

    assert [m.content for m in result.messages[1:]] == [
        "hi",
        "Vega fears the nebula.\nPirates hide there.",
        "Hello, pilot.",
        "Course: the nebula.",
        "Say it in one line.",
        "Answer as Vega.",
    ]
    assert result.messages[2].role == "system"
    assert "fears" not in result.messages[0].content


def test_lore_deeper_than_the_kept_history_goes_before_its_oldest_message(vega: CharacterCard) -> None:
    vega.character_book = Lorebook(
        entries=[LorebookEntry(keys=["hi"], content="Deep lore.", extensions={"position": 4, "depth": 9})]
    )

    result = plan(vega, [Turn("user", "hi")])

    assert [m.content for m in result.messages[1:3]] == ["Deep lore.", "hi"]
    assert result.prompt_tokens == sum(len(m.content.split()) + 6 for m in result.messages)


def test_macros_are_replaced_case_insensitively() -> None:
    assert substitute("{{Char}} greets {{USER}}, <BOT> and <USER>", "Vega", "Sam") == (
        "Vega greets Sam, Vega and Sam"
    )
