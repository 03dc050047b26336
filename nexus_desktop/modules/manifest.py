"""The module manifest: ``nexus-module.toml`` (or ``.json``) at the root of a module's folder.

It says who made the module, which hooks it implements and everything it asks for beyond its own
folder: network hosts, files elsewhere, subprocesses, native code and secrets.  The approval dialog
shows exactly that, so validation is strict: any path must stay inside the module folder (no
``..``, no absolute paths, no symlinks leading out), and every rejection names the field and the
fix.  Reading never executes anything from the module.
"""

from __future__ import annotations

import json
import logging
import re
import tomllib
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, Literal

from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion, Version
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from nexus_desktop.modules import hookspecs
from nexus_desktop.modules.errors import ManifestError
from nexus_desktop.modules.specs import NAME_PATTERN
from nexus_desktop.sandbox.egress import describe

log = logging.getLogger(__name__)

MANIFEST_NAMES = ("nexus-module.toml", "nexus-module.json")
MAX_MANIFEST_BYTES = 64 * 1024
SCHEMA_VERSION = 1

Origin = Literal["built-in", "installed", "generated"]
Category = Literal["tools", "characters", "chat", "automation", "dashboard", "other"]

KNOWN_HOOKS = frozenset(
    name for name, value in vars(hookspecs).items() if hasattr(value, f"{hookspecs.PROJECT_NAME}_spec")
)
_ENTRY_POINT = re.compile(r"^([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*):([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)$")
# A host name with an optional leading wildcard label and port, or "*" for any host.
_HOST = re.compile(
    r"^(\*|(\*\.)?[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*)(:\d{1,5})?$"
)
_CREDENTIAL_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")

# What to do, per field, appended to pydantic's own complaints (missing, wrong type, too long).
_ADVICE = {
    "name": 'use lowercase letters, digits and dots or dashes, e.g. name = "dice-roller"',
    "version": 'use a PEP 440 version, e.g. version = "1.0.0"',
    "entry_point": 'name the object that holds your hooks, e.g. entry_point = "dice_roller.main:plugin"',
    "hooks": 'list the hooks your module implements, e.g. hooks = ["register_tools"]',
    "origin": 'use "installed" or "generated"',
    "category": "use one of tools, characters, chat, automation, dashboard or other",
}

_TYPE_ADVICE = {
    "bool_type": "write true or false",
    "bool_parsing": "write true or false",
    "string_type": "write it as text in quotes",
    "string_too_long": "shorten it",
    "string_too_short": "fill it in",
    "too_long": "list fewer items",
    "list_type": 'write it as a list, e.g. ["..."]',
    "tuple_type": 'write it as a list, e.g. ["..."]',
    "int_type": "write a whole number",
    "int_parsing": "write a whole number",
    "model_type": "write it as a table of fields",
    "dict_type": "write it as a table of fields",
}


def _path_problem(value: str) -> str | None:
    """Why a manifest path is not a plain relative path inside the module folder, if it is not."""
    if not value or "\0" in value:
        return "is empty or has a NUL character"
    if PurePosixPath(value).is_absolute() or PureWindowsPath(value).anchor:
        return f"is the absolute path {value!r}; use a path relative to the module folder"
    if ".." in re.split(r"[/\\]", value):
        return f"{value!r} uses '..' to leave the module folder; keep every file inside it"
    return None


def resolve_inside(root: Path, relative: str) -> Path:
    """``root / relative`` if it is an existing file whose real location is inside ``root``."""
    problem = _path_problem(relative)
    if problem:
        raise ValueError(problem)
    candidate = root / relative
    real_root, real = root.resolve(), candidate.resolve()
    if not real.is_relative_to(real_root):
        raise ValueError(
            f"{relative!r} is a link to {str(real)!r}, outside the module folder; "
            "replace the link with the file itself"
        )
    if not real.is_file():
        raise ValueError(f"{relative!r} does not exist in the module folder; add it or fix the path")
    return candidate


class Credential(BaseModel):
    """A secret the module needs (an API key), kept in the OS keyring and handed to it at run time."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(max_length=64)
    instructions: str = Field(min_length=1, max_length=2000)
    """How to get it, shown beside the input box."""
    url: str | None = Field(default=None, max_length=500)
    required: bool = True

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _CREDENTIAL_NAME.fullmatch(value):
            raise ValueError(f"{value!r} is not a usable secret name; use letters, digits and _ . -")
        return value

    @field_validator("url")
    @classmethod
    def _https(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("https://"):
            raise ValueError(f"{value!r} is not an https:// address; link the provider's page over https")
        return value


class FilesystemAccess(BaseModel):
    """Folders or files outside the module's own folder (which it may always use)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    read: tuple[str, ...] = Field(default=(), max_length=50)
    write: tuple[str, ...] = Field(default=(), max_length=50)

    @field_validator("read", "write")
    @classmethod
    def _outside_paths(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        for value in values:
            absolute = (
                value.startswith("~") or PurePosixPath(value).is_absolute() or PureWindowsPath(value).anchor
            )
            if not value or "\0" in value or not absolute:
                raise ValueError(f"{value!r} is not an absolute path; write it as /path, C:/path or ~/path")
            if ".." in re.split(r"[/\\]", value):
                raise ValueError(f"{value!r} uses '..'; write the folder's plain absolute path")
        return values


class Permissions(BaseModel):
    """Everything beyond its own folder that a module asks for; the approval dialog lists it all."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    network: tuple[str, ...] = Field(default=(), max_length=50)
    """Hosts it may connect to, e.g. ``api.example.com``, ``*.example.com:8443``, or ``*`` (any)."""
    filesystem: FilesystemAccess = FilesystemAccess()
    subprocess: bool = False
    native_code: bool = False
    """ctypes/cffi or compiled extension modules: code the app cannot inspect."""

    @field_validator("network")
    @classmethod
    def _hosts(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        for value in values:
            if not _HOST.fullmatch(value):
                raise ValueError(
                    f"{value!r} is not a host name; write just the host, e.g. api.example.com, "
                    "without a scheme or path"
                )
        return values


class ModuleManifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: int = SCHEMA_VERSION
    name: str = Field(min_length=1, max_length=64)
    version: str = Field(max_length=64)
    display_name: str = Field(min_length=1, max_length=80)
    description: str = Field(default="", max_length=2000)
    author: str = Field(default="", max_length=200)
    category: Category = "other"
    entry_point: str = Field(max_length=200)
    hooks: tuple[str, ...] = Field(min_length=1, max_length=len(KNOWN_HOOKS))
    permissions: Permissions = Permissions()
    credentials: tuple[Credential, ...] = Field(default=(), max_length=20)
    dependencies: tuple[str, ...] = Field(default=(), max_length=50)
    test_file: str | None = Field(default=None, max_length=300)
    origin: Origin = "installed"

    @model_validator(mode="before")
    @classmethod
    def _default_display_name(cls, data: Any) -> Any:
        if isinstance(data, dict) and "display_name" not in data and isinstance(data.get("name"), str):
            return {**data, "display_name": data["name"]}
        return data

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME_PATTERN.fullmatch(value) or "_" in value:
            raise ValueError(
                f"{value!r} is not a valid module name; use lowercase letters, digits and dots or dashes, "
                'starting with a letter, e.g. "dice-roller"'
            )
        return value

    @field_validator("version")
    @classmethod
    def _version(cls, value: str) -> str:
        try:
            return str(Version(value))
        except InvalidVersion:
            raise ValueError(
                f"{value!r} is not a valid version; use a PEP 440 version such as 1.0.0"
            ) from None

    @field_validator("entry_point")
    @classmethod
    def _entry_point(cls, value: str, info: ValidationInfo) -> str:
        match = _ENTRY_POINT.fullmatch(value)
        if not match:
            raise ValueError(
                f"{value!r} is not of the form package.module:object; e.g. dice_roller.main:plugin"
            )
        root = _root(info)
        if root is not None:
            parts = match.group(1).split(".")
            candidates = ["/".join(parts) + ".py", "/".join(parts) + "/__init__.py"]
            for relative in candidates:
                if (root / relative).exists() or (root / relative).is_symlink():
                    resolve_inside(root, relative)
                    return value
            raise ValueError(
                f"{value!r} names a module that is not in the folder (looked for {candidates[0]} and "
                f"{candidates[1]}); add the file or fix the entry point"
            )
        return value

    @field_validator("hooks")
    @classmethod
    def _hooks(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        for value in values:
            if value not in KNOWN_HOOKS:
                raise ValueError(
                    f"{value!r} is not a NEXUS hook; use those in nexus_desktop/modules/hookspecs.py, "
                    f"e.g. {', '.join(sorted(KNOWN_HOOKS)[:3])}"
                )
        duplicates = sorted({value for value in values if values.count(value) > 1})
        if duplicates:
            raise ValueError(f"{duplicates[0]!r} is listed twice; list each hook once")
        return values

    @field_validator("credentials")
    @classmethod
    def _unique_credentials(cls, values: tuple[Credential, ...]) -> tuple[Credential, ...]:
        names = [credential.name for credential in values]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"the secret {duplicates[0]!r} is listed twice; list each secret once")
        return values

    @field_validator("dependencies")
    @classmethod
    def _dependencies(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        for value in values:
            try:
                requirement = Requirement(value)
            except InvalidRequirement:
                raise ValueError(f"{value!r} is not a pip requirement; write it like 'httpx>=0.27'") from None
            if requirement.url:
                raise ValueError(
                    f"{value!r} installs from a URL; name a package from the Python Package Index instead"
                )
        return values

    @field_validator("test_file")
    @classmethod
    def _test_file(cls, value: str | None, info: ValidationInfo) -> str | None:
        root = _root(info)
        if value is not None:
            if root is not None:
                resolve_inside(root, value)
            else:
                problem = _path_problem(value)
                if problem:
                    raise ValueError(problem)
        return value

    @field_validator("origin")
    @classmethod
    def _origin(cls, value: Origin, info: ValidationInfo) -> Origin:
        bundled = bool(info.context and info.context.get("bundled"))
        if value == "built-in" and not bundled:
            raise ValueError('only modules shipped with NEXUS may say "built-in"; use "installed"')
        return value

    @property
    def version_key(self) -> Version:
        return Version(self.version)

    def requested_access(self) -> list[str]:
        """What approving this module allows, one line each, for the approval dialog."""
        lines = [describe(entry) for entry in self.permissions.network]
        lines += [f"Read files in {path}" for path in self.permissions.filesystem.read]
        lines += [f"Change files in {path}" for path in self.permissions.filesystem.write]
        if self.permissions.subprocess:
            lines.append("Start other programs")
        if self.permissions.native_code:
            lines.append("Run native code the app cannot inspect")
        for credential in self.credentials:
            needed = "" if credential.required else " (optional)"
            lines.append(f"Use your secret {credential.name}{needed}")
        lines += [f"Install the Python package {requirement}" for requirement in self.dependencies]
        return lines


def _root(info: ValidationInfo) -> Path | None:
    root = info.context.get("root") if info.context else None
    return Path(root) if root is not None else None


def find_manifest(folder: Path) -> Path:
    """The manifest file in ``folder``; exactly one of the known names must be there."""
    found = [
        folder / name for name in MANIFEST_NAMES if (folder / name).exists() or (folder / name).is_symlink()
    ]
    if not found:
        raise ManifestError(
            f"{folder.name} has no nexus-module.toml; add one at the top of the module folder.", field=""
        )
    if len(found) > 1:
        raise ManifestError(
            f"{folder.name} has both nexus-module.toml and nexus-module.json; keep only one of them."
        )
    return found[0]


def read_manifest_data(path: Path) -> dict[str, Any]:
    """The manifest's raw table, refusing links and oversized files before parsing anything."""
    if path.is_symlink():
        raise ManifestError(f"{path.name} is a symbolic link; replace it with the file itself.")
    size = path.stat().st_size
    if size > MAX_MANIFEST_BYTES:
        raise ManifestError(
            f"{path.name} is {size / 1024:,.0f} KB, over the {MAX_MANIFEST_BYTES // 1024} KB limit for a "
            "manifest; keep only the module's description in it."
        )
    with path.open("rb") as file:
        raw = file.read(MAX_MANIFEST_BYTES + 1)  # the file may have grown since stat()
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"{path.name} is over the {MAX_MANIFEST_BYTES // 1024} KB limit for a manifest.")
    try:
        text = raw.decode("utf-8")
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except UnicodeDecodeError:
        raise ManifestError(f"{path.name} is not UTF-8 text; save it as UTF-8.") from None
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as error:
        raise ManifestError(f"{path.name} cannot be parsed ({error}); fix the syntax.") from None
    except RecursionError:
        raise ManifestError(f"{path.name} is nested too deeply to be a manifest; simplify it.") from None
    if not isinstance(data, dict):
        raise ManifestError(f"{path.name} must hold a table of fields at its top level.")
    return data


def load_manifest(folder: Path, *, bundled: bool = False) -> ModuleManifest:
    """Read and validate the manifest in ``folder``, checking its paths against the folder itself.

    ``bundled`` is True only for modules shipped in the app, the only ones allowed origin built-in.
    """
    path = find_manifest(folder)
    data = read_manifest_data(path)
    schema = data.get("schema_version", SCHEMA_VERSION)
    if isinstance(schema, int) and schema > SCHEMA_VERSION:
        # npe2's lesson: a newer manifest is read as far as we understand it, not refused.
        unknown = sorted(set(data) - set(ModuleManifest.model_fields))
        log.warning(
            "%s uses manifest schema %s (this app knows %s); ignoring %s",
            path,
            schema,
            SCHEMA_VERSION,
            unknown,
        )
        data = {key: value for key, value in data.items() if key in ModuleManifest.model_fields}
    return validate_manifest(data, folder=folder, source=path.name, bundled=bundled)


def validate_manifest(
    data: dict[str, Any], *, folder: Path | None = None, source: str = "The manifest", bundled: bool = False
) -> ModuleManifest:
    """``data`` as a manifest, or ``ManifestError`` naming the first bad field and the fix."""
    context = {"root": folder, "bundled": bundled}
    try:
        return ModuleManifest.model_validate(data, context=context)
    except ValidationError as error:
        problems = tuple(_describe(source, item) for item in error.errors())
        first = error.errors()[0]
        raise ManifestError(
            problems[0], field=".".join(str(part) for part in first["loc"]), problems=problems
        ) from None


def _describe(source: str, item: Any) -> str:
    field = ".".join(str(part) for part in item["loc"]) or "(top level)"
    top = str(item["loc"][0]) if item["loc"] else ""
    cause = (item.get("ctx") or {}).get("error")
    if isinstance(cause, ValueError):
        detail = str(cause)
    elif item["type"] == "missing":
        detail = f"is missing; {_ADVICE.get(top, 'add it')}"
    elif item["type"] == "extra_forbidden":
        detail = "is not a manifest field; remove it or check its spelling"
    else:
        kind_advice = _TYPE_ADVICE.get(item["type"], "see the module guide for the expected form")
        advice = (
            _ADVICE.get(top, kind_advice)
            if top in _ADVICE and item["type"] not in _TYPE_ADVICE
            else kind_advice
        )
        message = str(item["msg"]).replace("tuple", "list")  # manifests write lists; we store tuples
        detail = f"{message[0].lower()}{message[1:]}; {advice}"
    return f"{source} field '{field}': {detail}."
