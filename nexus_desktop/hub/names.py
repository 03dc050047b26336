"""What names say: a pasted repo or address, a file's quantisation, split parts, local folders.

Pure functions on text, so the search, the downloader and the library agree on every name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from nexus_desktop.hub.errors import HubError

# Longest names first so "Q4_K_M" wins over "Q4_K" and "IQ3_XS" over "Q3".
_QUANT = re.compile(
    r"(?<![A-Za-z0-9])("
    r"IQ[1-4]_(?:XXS|XS|S|M|NL)|IQ4_NL|IQ4_XS"
    r"|Q[2-8]_K_(?:XL|S|M|L)|Q[2-8]_K|Q[4-8]_[01]|Q2_K_S"
    r"|TQ[12]_0|MXFP4|BF16|F16|F32|FP16|FP32"
    r")(?![A-Za-z0-9])",
    re.IGNORECASE,
)
_SPLIT = re.compile(r"^(?P<prefix>.+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.gguf$", re.IGNORECASE)
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_FOLDER_SEPARATOR = "__"


@dataclass(frozen=True)
class RepoReference:
    """What the user pasted: a repo, and maybe one file of it (from a ``resolve`` or ``blob`` URL)."""

    repo_id: str
    filename: str | None = None
    revision: str | None = None


@dataclass(frozen=True)
class SplitPart:
    prefix: str
    """The name before ``-00001-of-00003.gguf``, the same for every part."""
    index: int
    """1-based, as in the name."""
    count: int


def quantization_from_name(file_name: str) -> str | None:
    """``Q4_K_M``, ``IQ3_XS``, ``F16``... read from a file name, upper case; None when it names none."""
    found = _QUANT.findall(file_name.rsplit("/", 1)[-1])
    if not found:
        return None
    name = str(found[-1]).upper()  # the last one: "Llama-3-F16-Q4_K_M.gguf" is Q4_K_M
    return {"FP16": "F16", "FP32": "F32"}.get(name, name)


def split_part(file_name: str) -> SplitPart | None:
    """The part number of a split model's file (``model-00002-of-00003.gguf``), None otherwise."""
    match = _SPLIT.match(file_name)
    if match is None:
        return None
    return SplitPart(match["prefix"], int(match["index"]), int(match["count"]))


def parse_reference(text: str) -> RepoReference:
    """``owner/name``, ``https://huggingface.co/owner/name`` or a file's ``resolve``/``blob`` URL.

    Any host is accepted for URLs (mirrors and ``HF_ENDPOINT`` included); only the path is read.
    Raises ``HubError`` for anything else.
    """
    cleaned = text.strip().rstrip("/")
    if cleaned.startswith(("http://", "https://")):
        parts = [unquote(part) for part in urlsplit(cleaned).path.split("/") if part]
        if parts[:1] == ["models"]:
            parts = parts[1:]
        if len(parts) >= 2 and _REPO_ID.match(f"{parts[0]}/{parts[1]}"):
            repo_id = f"{parts[0]}/{parts[1]}"
            if len(parts) >= 5 and parts[2] in ("resolve", "blob"):
                return RepoReference(repo_id, "/".join(parts[4:]), parts[3])
            if len(parts) >= 4 and parts[2] == "tree":
                return RepoReference(repo_id, None, parts[3])
            return RepoReference(repo_id)
    elif _REPO_ID.match(cleaned):
        return RepoReference(cleaned)
    raise HubError(
        f"{text.strip()!r} is not a model repo; give it as owner/name "
        "(for example bartowski/SmolLM2-135M-Instruct-GGUF) or paste its Hugging Face address."
    )


def local_folder(repo_id: str) -> str:
    """The models-folder subfolder a repo's downloads go to: ``owner__name``."""
    return repo_id.replace("/", _FOLDER_SEPARATOR, 1)


def repo_from_folder(folder_name: str) -> str | None:
    """The repo a models-folder subfolder came from (``owner__name`` → ``owner/name``), or None."""
    owner, separator, name = folder_name.partition(_FOLDER_SEPARATOR)
    return f"{owner}/{name}" if separator and owner and name else None
