"""The generator's answer: a JSON schema for the module's files, and the parser that checks it.

The schema goes to the source as ``ChatInput.json_schema`` (llama.cpp turns it into a grammar;
an OpenAI-compatible server gets it as ``response_format``).  Whatever comes back is checked
before anything touches the disk: an answer that is not that JSON, has no files or empty ones,
writes outside the module folder, or carries a manifest for another module fails its round with
a reason the repair prompt and the build card show.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from nexus_desktop.builder.template import CONFTEST, CONFTEST_PATH, MANIFEST_PATH

MAX_FILES = 30
MAX_FILE_BYTES = 64 * 1024
MAX_TOTAL_BYTES = 256 * 1024
_NATIVE = (".so", ".pyd", ".dll", ".dylib", ".exe")

FILES_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "files": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
                "required": ["path", "content"],
                "additionalProperties": False,
            },
        },
    },
    "required": ["files"],
    "additionalProperties": False,
}


class OutputError(ValueError):
    """The answer cannot become a module; ``str()`` says why in one sentence."""


@dataclass(frozen=True)
class GeneratedFiles:
    files: dict[str, str]
    """Relative path -> text, in the order the answer gave them (plus conftest.py)."""
    notes: str = ""


def parse_files(output: str, module_name: str) -> GeneratedFiles:
    """The module files in ``output``, or ``OutputError`` with the first reason they are unusable."""
    data = _json(output)
    if not isinstance(data, dict) or not isinstance(data.get("files"), list):
        raise OutputError('The answer is JSON but not {"files": [{"path", "content"}, ...]}.')
    entries = data["files"]
    if not entries:
        raise OutputError("The answer has no files; it must hold the manifest, the package and its tests.")
    if len(entries) > MAX_FILES:
        raise OutputError(f"The answer has {len(entries)} files, over the {MAX_FILES} a module may have.")
    files: dict[str, str] = {}
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            raise OutputError('Every file must be {"path": "...", "content": "..."}.')
        path = _check_path(entry["path"])
        content = entry.get("content")
        if not isinstance(content, str):
            raise OutputError(f"{path} has no text content.")
        if path in files:
            raise OutputError(f"{path} is in the answer twice; give each file once.")
        if not content.strip() and not path.endswith("__init__.py"):
            raise OutputError(f"{path} is empty; write the whole file.")
        if len(content.encode()) > MAX_FILE_BYTES:
            raise OutputError(f"{path} is over {MAX_FILE_BYTES // 1024} KB; a module's files are small.")
        files[path] = content
    if sum(len(text.encode()) for text in files.values()) > MAX_TOTAL_BYTES:
        raise OutputError(
            f"The files add up to over {MAX_TOTAL_BYTES // 1024} KB; a module's files are small."
        )
    files[MANIFEST_PATH] = _checked_manifest(files.get(MANIFEST_PATH), module_name, files)
    files.setdefault(CONFTEST_PATH, CONFTEST)
    notes = data.get("notes")
    return GeneratedFiles(files, notes if isinstance(notes, str) else "")


def answer_json(files: dict[str, str], notes: str = "") -> str:
    """Files as the answer the schema asks for (what a good generator returns); ``notes`` is
    what a model may add without a schema (the schema leaves it out: a small model given room
    for free text after the files rambles on until its token limit)."""
    entries = [{"path": path, "content": content} for path, content in files.items()]
    answer: dict[str, Any] = {"files": entries, **({"notes": notes} if notes else {})}
    return json.dumps(answer, ensure_ascii=False)


_FENCE = re.compile(r"^\s*```(?:json)?\s*\n(.*)\n\s*```\s*$", re.DOTALL)


def _json(output: str) -> Any:
    text = output.strip()
    if not text:
        raise OutputError("The answer was empty; the model wrote nothing.")
    fenced = _FENCE.match(text)  # a model without the schema may still wrap its JSON in a fence
    if fenced:
        text = fenced.group(1)
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise OutputError(
            f"The answer is not valid JSON ({error.msg} at line {error.lineno}, column {error.colno})."
        ) from None
    except RecursionError:
        raise OutputError("The answer is JSON nested too deeply to be module files.") from None


def _check_path(raw: str) -> str:
    path = raw.strip().replace("\\", "/")
    pure = PurePosixPath(path)
    if not path:
        raise OutputError("A file in the answer has no path; give every file its path in the module folder.")
    if "\0" in path or path.startswith(("/", "~")) or re.match(r"^[A-Za-z]:", path):
        raise OutputError(f"The file path {raw!r} is not relative to the module folder.")
    if ".." in pure.parts:
        raise OutputError(f"The file path {raw!r} leaves the module folder ('..').")
    if any(part.startswith(".") for part in pure.parts):
        raise OutputError(f"The file path {raw!r} is hidden; a module has no hidden files.")
    if path.endswith(_NATIVE) or ".so." in pure.name:
        raise OutputError(f"{raw!r} is native code; a generated module is Python only.")
    return pure.as_posix()


def _checked_manifest(text: str | None, module_name: str, files: dict[str, str]) -> str:
    if text is None:
        raise OutputError(f"The answer has no {MANIFEST_PATH}; write the manifest.")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise OutputError(f"{MANIFEST_PATH} is not valid TOML ({error}).") from None
    name = data.get("name")
    if name != module_name:
        raise OutputError(
            f"The manifest is for the module {name!r}, not {module_name!r}; name it {module_name!r}."
        )
    origin = data.get("origin")
    if origin is None:  # generated is what it is, whether or not the model said so
        text = _insert_top(text)
    elif origin != "generated":
        raise OutputError(
            f'The manifest says origin = {origin!r}; a generated module says origin = "generated".'
        )
    test_file = data.get("test_file")
    if not isinstance(test_file, str) or test_file not in files:
        raise OutputError("The manifest's test_file must name the tests file in the answer; write tests.")
    return text


def _insert_top(text: str) -> str:
    """``origin = "generated"`` among the top-level keys (before the first [table])."""
    lines = text.splitlines()
    tables = [i for i, line in enumerate(lines) if line.lstrip().startswith("[")]
    lines.insert(tables[0] if tables else len(lines), 'origin = "generated"')
    return "\n".join(lines) + "\n"
