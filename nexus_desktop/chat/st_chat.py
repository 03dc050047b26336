"""SillyTavern chat files (JSONL): read one into unsaved NEXUS messages, write a NEXUS chat as one.

Line 1 is a header, ``{"user_name", "character_name", "create_date", "chat_metadata"}``; every
further line is one message, ``{"name", "is_user", "is_system", "send_date", "mes", "swipes",
"swipe_id", "extra", ...}``; ``is_system`` is SillyTavern's "hidden from the prompt", NEXUS's
``Message.hidden``.  What NEXUS has no use for (``extra``, ``swipe_info``,
another speaker's ``name``…) is kept in ``Message.st_extra`` and ``Chat.st_metadata`` and written
back on export, so a chat goes NEXUS → SillyTavern → NEXUS without losing anything.

A file is read whole and checked before anything is saved: a bad line is reported with its number
and what to do, and nothing is half-imported.
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nexus_desktop.db.tables import Message
from nexus_desktop.training.datasets import write_jsonl

USER, CHARACTER, TOOL = "user", "assistant", "tool"
TOOL_NAME = "Tool"
# Fields a message line maps onto NEXUS's own columns; every other field goes to ``st_extra``.
_MAPPED = {"name", "is_user", "is_system", "mes", "swipes", "swipe_id", "send_date"}
# A NEXUS tool result has no SillyTavern role: it goes out as a system line marked with these.
_NEXUS_ROLE, _NEXUS_STATS = "nexus_role", "nexus_stats"


class ChatFileError(ValueError):
    """A chat file that cannot be imported: says where and what to do."""


@dataclass
class StChat:
    user_name: str
    character_name: str
    created_at: datetime | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    messages: list[Message] = field(default_factory=list)
    """Unsaved rows (``chat_id`` 0), in order, positions from 0."""


# Reading ---------------------------------------------------------------------------------------


def read_st_chat(path: Path) -> StChat:
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise ChatFileError(f"{path.name} could not be read ({error.strerror}).") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ChatFileError(
            f"{path.name} is not UTF-8 text; a SillyTavern chat file is JSON lines. Export the chat "
            "from SillyTavern again (Manage chat files → Export as .jsonl)."
        ) from None
    lines = [(number, line) for number, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if not lines:
        raise ChatFileError(
            f"{path.name} is empty; a SillyTavern chat file holds a header line and one line per "
            "message. Pick the .jsonl file SillyTavern exported."
        )
    objects = [(number, _json_object(path, number, line)) for number, line in lines]
    chat = _header(path, *objects[0])
    for number, line in objects[1:]:
        chat.messages.append(_message(path, number, line, chat, len(chat.messages)))
    return chat


def _problem(path: Path, number: int, what: str) -> ChatFileError:
    return ChatFileError(
        f"{path.name}, line {number}: {what}. Fix that line in a text editor, or export the chat "
        "from SillyTavern again; nothing was imported."
    )


def _json_object(path: Path, number: int, line: str) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except json.JSONDecodeError as error:
        raise _problem(
            path, number, f"this is not valid JSON ({error.msg} at column {error.colno})"
        ) from None
    if not isinstance(value, dict):
        raise _problem(path, number, f"expected a JSON object {{…}}, found {_kind(value)}")
    return value


def _header(path: Path, number: int, line: dict[str, Any]) -> StChat:
    if "mes" in line and "chat_metadata" not in line:
        raise _problem(
            path,
            number,
            'the first line should be the chat\'s header ({"user_name", "character_name", '
            '"chat_metadata"…}) but it is a message; is this a SillyTavern chat file?',
        )
    metadata = _typed(path, number, line, "chat_metadata", dict, {})
    return StChat(
        user_name=_typed(path, number, line, "user_name", str, ""),
        character_name=_typed(path, number, line, "character_name", str, ""),
        created_at=parse_st_date(line.get("create_date")),
        metadata=metadata,
    )


def _message(path: Path, number: int, line: dict[str, Any], chat: StChat, position: int) -> Message:
    if "mes" not in line:
        raise _problem(path, number, '"mes" (the message\'s text) is missing')
    text = _typed(path, number, line, "mes", str, "")
    is_user = _typed(path, number, line, "is_user", bool, False)
    is_system = _typed(path, number, line, "is_system", bool, False)
    name = _typed(path, number, line, "name", str, "")
    extra = dict(_typed(path, number, line, "extra", dict, {}))
    swipes = list(_typed(path, number, line, "swipes", list, []))
    if not all(isinstance(swipe, str) for swipe in swipes):
        raise _problem(path, number, '"swipes" should be a list of texts')
    swipe_id = _typed(path, number, line, "swipe_id", int, 0)
    if swipes and not 0 <= swipe_id < len(swipes):
        raise _problem(path, number, f'"swipe_id" is {swipe_id} but the message has {len(swipes)} swipes')
    if not swipes:
        swipes, swipe_id = [text], 0
    swipes[swipe_id] = text  # "mes" is what SillyTavern shows, should the two disagree

    role = USER if is_user else CHARACTER
    stats: list[dict[str, Any] | None] = [None] * len(swipes)
    kept = {key: value for key, value in line.items() if key not in _MAPPED}
    if extra.get(_NEXUS_ROLE) == TOOL:  # a tool result NEXUS exported
        role = TOOL
        saved = extra.pop(_NEXUS_STATS, None)
        del extra[_NEXUS_ROLE]
        if isinstance(saved, list) and len(saved) == len(swipes):
            stats = [entry if isinstance(entry, dict) else None for entry in saved]
    elif name and name != (chat.user_name if is_user else chat.character_name):
        kept["name"] = name  # another speaker (a group chat's member): given back on export
    kept.pop("extra", None)
    if extra:
        kept["extra"] = extra
    message = Message(
        chat_id=0,
        position=position,
        role=role,
        swipes=swipes,
        swipe_index=swipe_id,
        swipe_stats=stats,
        st_extra=kept,
        hidden=is_system and role != TOOL,  # a tool result is marked as a system line, not hidden
    )
    sent = parse_st_date(line.get("send_date"))
    if sent is not None:
        message.created_at = sent
    return message


def _typed(path: Path, number: int, line: dict[str, Any], key: str, kind: type, default: Any) -> Any:
    """``line[key]`` when it is a ``kind``, ``default`` when absent or null; otherwise a clear error."""
    value = line.get(key)
    if value is None:
        return default
    # bool is an int in Python; a swipe_id of true is as wrong as one of "2".
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    wanted = {str: "text", bool: "true or false", int: "a whole number", list: "a list", dict: "an object"}
    raise _problem(path, number, f'"{key}" should be {wanted[kind]}, not {_kind(value)}')


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    names = {str: "text", int: "a number", float: "a number", list: "a list", dict: "an object"}
    return names.get(type(value), "null") if value is not None else "null"


_HUMANIZED = re.compile(
    r"(\d{4})-(\d{1,2})-(\d{1,2})\s*@\s*(\d{1,2})h\s*(\d{1,2})m\s*(\d{1,2})s(?:\s*(\d{1,3})ms)?"
)


def parse_st_date(value: object) -> datetime | None:
    """A SillyTavern timestamp in any of the shapes its versions wrote, as UTC; None if it is none.

    Milliseconds since 1970, ISO 8601, "June 19, 2023 2:20pm" and "2023-5-7 @18h 33m 26s 544ms"
    (the last two in local time).  A date is only shown, so one that cannot be read is not an error.
    """
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = value / 1000 if value > 1e11 else value
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if not isinstance(value, str) or not value.strip():
        return None
    value = value.strip()
    moment: datetime | None = None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        pass
    for shape in ("%B %d, %Y %I:%M%p", "%B %d, %Y %I:%M %p"):
        if moment is None:
            try:
                moment = datetime.strptime(value, shape)
            except ValueError:
                pass
    if moment is None and (match := _HUMANIZED.fullmatch(value)):
        year, month, day, hour, minute, second, millis = match.groups()
        try:
            moment = datetime(
                int(year), int(month), int(day), int(hour), int(minute), int(second), int(millis or 0) * 1000
            )
        except ValueError:
            return None
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.astimezone()).astimezone(UTC)


# Writing ---------------------------------------------------------------------------------------


def write_st_chat(chat: StChat, path: Path) -> int:
    """Write ``chat`` as a SillyTavern chat file (replacing ``path`` whole); returns the messages written."""
    header = {
        "user_name": chat.user_name,
        "character_name": chat.character_name,
        "create_date": humanized_date(chat.created_at or datetime.now(UTC)),
        "chat_metadata": chat.metadata,
    }
    lines = [header, *(_message_line(message, chat) for message in chat.messages)]
    try:
        write_jsonl(lines, path)
    except (OSError, UnicodeError) as error:
        with contextlib.suppress(OSError):  # write_jsonl's partial file, if it got that far
            path.with_name(path.name + ".part").unlink(missing_ok=True)
        reason = error.strerror if isinstance(error, OSError) else "text that cannot be written as UTF-8"
        raise ChatFileError(
            f"The chat could not be saved to {path} ({reason}); pick another folder."
        ) from None
    return len(chat.messages)


def _message_line(message: Message, chat: StChat) -> dict[str, Any]:
    kept = dict(message.st_extra)
    extra = dict(kept.pop("extra", None) or {})
    is_user = message.role == USER
    name = chat.user_name if is_user else chat.character_name
    if message.role == TOOL:
        name = TOOL_NAME
        extra.update({_NEXUS_ROLE: TOOL, _NEXUS_STATS: list(message.swipe_stats)})
        kept["is_system"] = True  # shown, never sent to the model: as SillyTavern treats system lines
    line: dict[str, Any] = {
        "name": kept.pop("name", name),
        "is_user": is_user,
        "is_system": message.hidden or bool(kept.pop("is_system", False)),
        "send_date": iso_date(message.created_at),
        "mes": message.content,
    }
    if not is_user or len(message.swipes) > 1:
        line["swipes"] = list(message.swipes)
        line["swipe_id"] = message.swipe_index
    line["extra"] = extra
    return {**line, **kept}


def iso_date(moment: datetime) -> str:
    """``2024-07-12T01:31:37.000Z``, as JavaScript's ``toISOString`` writes it (stored times are UTC)."""
    utc = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return utc.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def humanized_date(moment: datetime) -> str:
    """``2024-7-12@01h31m37s``, SillyTavern's ``create_date`` and chat file names (local time)."""
    local = (moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment).astimezone()
    return f"{local.year}-{local.month}-{local.day}@{local:%Hh%Mm%Ss}"
