"""Named sampler presets, and SillyTavern's preset files turned into them.

SillyTavern keeps Text Completion presets (for TextGen WebUI, KoboldCpp and llama.cpp) as flat
JSON objects: ``{"temp": 1.5, "top_p": 1, "min_p": 0.1, "rep_pen": 1, ...}``.  Older KoboldAI
ones spell some keys differently (``typical``, ``mirostat``).  The keys NEXUS has a sampler for
become a ``Samplers``; the rest (``top_a``, ``tfs``, ``sampler_order``...) are listed as ignored.
A file that is not JSON, holds a wrong type or a value out of range is refused with the key
named, and nothing changes.
"""

from __future__ import annotations

import json
from collections.abc import Container
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from nexus_desktop.settings import Samplers

MAX_NAME_LENGTH = 64
MAX_PRESET_BYTES = 1_000_000

SILLYTAVERN_KEYS: dict[str, str] = {
    "temp": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "min_p": "min_p",
    "typical_p": "typical_p",
    "typical": "typical_p",
    "rep_pen": "repeat_penalty",
    "presence_pen": "presence_penalty",
    "freq_pen": "frequency_penalty",
    "mirostat_mode": "mirostat_mode",
    "mirostat": "mirostat_mode",
    "mirostat_tau": "mirostat_tau",
    "mirostat_eta": "mirostat_eta",
    "dry_multiplier": "dry_multiplier",
    "dry_base": "dry_base",
    "dry_allowed_length": "dry_allowed_length",
    "seed": "seed",
    "genamt": "max_tokens",
}
"""SillyTavern's key -> the ``Samplers`` field it sets."""


class PresetFileError(ValueError):
    """The file cannot become a preset; ``str(error)`` names the key and what to do."""


@dataclass(frozen=True)
class ImportedPreset:
    name: str
    samplers: Samplers
    ignored: tuple[str, ...]
    """Keys of the file NEXUS has no sampler for, in the file's order."""


def import_sillytavern_preset(path: Path, base: Samplers) -> ImportedPreset:
    """The preset in SillyTavern's JSON file at ``path``; samplers the file leaves out keep their
    values from ``base``.  Reads the file: call it off the UI thread."""
    try:
        raw = path.read_bytes()[: MAX_PRESET_BYTES + 1]
    except OSError as error:
        raise PresetFileError(f"{path.name} could not be read ({error.strerror or error}).") from None
    if len(raw) > MAX_PRESET_BYTES:
        raise PresetFileError(f"{path.name} is over 1 MB, too big for a preset; pick a preset file.")
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as error:
        raise PresetFileError(f"{path.name} is not valid JSON ({error}); export the preset again.") from None
    if not isinstance(data, dict):
        raise PresetFileError(
            f"{path.name} holds a JSON {type(data).__name__}, not a preset object; "
            "pick a SillyTavern Text Completion preset file."
        )
    known = [key for key in data if key in SILLYTAVERN_KEYS]
    if not known:
        raise PresetFileError(
            f"{path.name} has none of the sampler settings a SillyTavern Text Completion preset has "
            "(temp, top_p, rep_pen...); pick such a preset file."
        )
    values = base.model_dump()
    for key in known:
        values[SILLYTAVERN_KEYS[key]] = _number(path, key, data[key])
    try:
        samplers = Samplers.model_validate(values)
    except ValidationError as error:
        first = error.errors()[0]
        field = str(first["loc"][0])
        key = [k for k in known if SILLYTAVERN_KEYS[k] == field][-1]  # the last one set it
        raise PresetFileError(
            f'{path.name}: "{key}" is {data[key]!r}, which is not allowed ({first["msg"].lower()}); '
            "fix it in the file and import it again."
        ) from None
    ignored = tuple(key for key in data if key not in SILLYTAVERN_KEYS)
    return ImportedPreset(name=clean_name(path.stem) or "Imported", samplers=samplers, ignored=ignored)


def _number(path: Path, key: str, value: object) -> int | float:
    # bool is an int in Python, and pydantic would read "0.5" as a number: both are mistakes here.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PresetFileError(
            f'{path.name}: "{key}" should be a number but is {json.dumps(value)}; '
            "fix it in the file and import it again."
        )
    return value


def clean_name(name: str) -> str:
    """A preset name as stored: trimmed, on one line, at most ``MAX_NAME_LENGTH`` characters."""
    return " ".join(name.split())[:MAX_NAME_LENGTH]


def free_name(name: str, taken: Container[str]) -> str:
    """``name``, or ``name (2)``, ``name (3)``... whichever no preset has yet."""
    candidate, number = name, 2
    while candidate in taken:
        suffix = f" ({number})"
        candidate = name[: MAX_NAME_LENGTH - len(suffix)] + suffix
        number += 1
    return candidate
