"""What a streamed reply shows while it is written: the speaker prefix a small model writes is
left out, as it is from the saved reply; a reply that only starts like the name is kept whole."""

from __future__ import annotations

from nexus_desktop.chat.model_output import PrintedReply, streamed_reply, strip_speaker


def printed(pieces: list[str], speaker: str = "Vega") -> str:
    reply = PrintedReply(speaker)
    return "".join(reply.add(piece) for piece in pieces)


def test_the_printed_reply_leaves_out_the_speaker_prefix_as_the_saved_one_does() -> None:
    pieces = ["Ve", "ga", ":", " Course", " plotted", ".", " "]
    assert printed(pieces) == "Course plotted." == strip_speaker("".join(pieces), "Vega")


def test_a_reply_that_only_starts_like_the_name_is_printed_whole() -> None:
    pieces = ["Ve", "ry", " well", ", captain."]
    assert printed(pieces) == "Very well, captain." == strip_speaker("".join(pieces), "Vega")


def test_nothing_is_shown_while_only_the_start_of_the_prefix_is_in() -> None:
    assert streamed_reply("  Ve", "Vega") == ""
    assert streamed_reply("Vex", "Vega") == "Vex"


def test_spaces_between_words_survive_the_strip_of_each_piece() -> None:
    assert printed(["One ", "two ", " three"]) == "One two  three"
