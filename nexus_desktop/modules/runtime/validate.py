"""Validation: what the app checks about a module before a person is asked to approve it.

``validate_module`` runs everything in child processes contained by the validation profile
(``containment.validating``): nothing the manifest declares is granted before a person approved
it, so a module's tests (its own code) run with no network, no secrets, no subprocesses and
writes only to a scratch folder, under a memory and a time limit.  It checks: compiling every file,
static checks of imports and calls against the declared permissions, native files, the
hook-signature check (pluggy's, on import) and the module's own tests.  The report is a plain
dict that ``validate_and_record`` stores in the lifecycle::

    {"ok": bool, "content_hash": str, "seconds": float,
     "checks": [{"name", "ok", "message", "seconds", "problems": [...]}]}
"""

from __future__ import annotations

import ast
import asyncio
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nexus_desktop import paths
from nexus_desktop.children.exits import describe_exit
from nexus_desktop.children.jsonlines import decode
from nexus_desktop.children.launch import exit_code, kill_tree, launch
from nexus_desktop.modules.install import IGNORED_DIRS, content_hash
from nexus_desktop.modules.manifest import ModuleManifest, load_manifest
from nexus_desktop.modules.runtime.containment import validating, validation_grant
from nexus_desktop.modules.runtime.process import child_command, child_environment

NETWORK_MODULES = frozenset(
    {
        "socket", "ssl", "http", "urllib", "urllib3", "httpx", "httpcore", "requests", "aiohttp",
        "websocket", "websockets", "ftplib", "smtplib", "poplib", "imaplib", "telnetlib", "xmlrpc",
        "socketserver", "paramiko", "grpc", "pycurl",
    }
)  # fmt: skip
SUBPROCESS_MODULES = frozenset({"subprocess", "pty", "pexpect", "sh", "plumbum", "multiprocessing"})
NATIVE_MODULES = frozenset({"ctypes", "_ctypes", "cffi"})
SUBPROCESS_CALL_PREFIXES = ("system", "popen", "exec", "spawn", "posix_spawn", "fork", "startfile")
NATIVE_SUFFIXES = (".so", ".pyd", ".dll", ".dylib")
FILE_OPENERS = frozenset({"open", "Path", "PurePath", "os.open", "io.open", "pathlib.Path"})
DEFAULT_TIMEOUT_SECONDS = 60.0
DEFAULT_MEMORY_LIMIT_MB = 512

Check = dict[str, Any]


def _check(name: str, started: float, problems: list[str], passed: str) -> Check:
    return {
        "name": name,
        "ok": not problems,
        "message": problems[0] if problems else passed,
        "problems": problems[:50],
        "seconds": round(time.monotonic() - started, 4),
    }


def _python_files(folder: Path) -> list[Path]:
    found = []
    for directory, dirnames, filenames in os.walk(folder):
        dirnames[:] = [name for name in dirnames if name not in IGNORED_DIRS]
        found += [Path(directory) / name for name in filenames if name.endswith(".py")]
    return sorted(found)


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else ""
    return ""


def _needs(module: str) -> str | None:
    top = module.split(".")[0]
    if top in NETWORK_MODULES:
        return "network"
    if top in SUBPROCESS_MODULES:
        return "subprocess"
    if top in NATIVE_MODULES:
        return "native_code"
    return None


def _outside(path: str, permissions: dict[str, Any]) -> bool:
    if not (path.startswith(("/", "~")) or (len(path) > 2 and path[1] == ":")):
        return False  # relative: inside the module's working folder
    declared = [*permissions.get("read", ()), *permissions.get("write", ())]
    expanded = os.path.expanduser(path)
    return not any(
        expanded == os.path.expanduser(root)
        or expanded.startswith(os.path.expanduser(root).rstrip("/") + "/")
        for root in declared
    )


def _scan(tree: ast.AST, where: str, permissions: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(permission problems, file-access problems) statically visible in one file."""
    granted = {
        "network": bool(permissions.get("network")),
        "subprocess": bool(permissions.get("subprocess")),
        "native_code": bool(permissions.get("native_code")),
    }
    labels = {"network": "network access", "subprocess": "starting programs", "native_code": "native code"}
    problems: list[str] = []
    files: list[str] = []

    def need(kind: str | None, line: int, what: str) -> None:
        if kind is not None and not granted[kind]:
            field = f"permissions.{kind}"
            problems.append(
                f"{where} line {line} {what}, but its manifest does not allow {labels[kind]} ({field})"
            )

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                need(_needs(alias.name), node.lineno, f"imports {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            need(_needs(node.module), node.lineno, f"imports {node.module}")
            if node.module == "os":
                for alias in node.names:
                    if alias.name.startswith(SUBPROCESS_CALL_PREFIXES):
                        need("subprocess", node.lineno, f"imports os.{alias.name}")
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            first = node.args[0] if node.args else None
            literal = (
                first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) else None
            )
            if name.startswith("os.") and name[3:].startswith(SUBPROCESS_CALL_PREFIXES):
                need("subprocess", node.lineno, f"calls {name}")
            elif name in ("__import__", "importlib.import_module", "import_module") and literal:
                need(_needs(literal), node.lineno, f"imports {literal}")
            elif name in FILE_OPENERS and literal and _outside(literal, permissions):
                files.append(
                    f"{where} line {node.lineno} opens {literal}, outside its folder, but its manifest "
                    "does not list it under permissions.filesystem"
                )
    return problems, files


def static_checks(folder: Path, permissions: dict[str, Any], test_file: str | None = None) -> list[Check]:
    """Compile every file and look for undeclared network, subprocess, native and file access.

    The module's tests (``test_file`` and conftest.py files) are compiled but not held to the
    permissions: they run only during validation, under the audit hook.
    """
    tests = {test_file, "conftest.py"}
    started = time.monotonic()
    syntax: list[str] = []
    imports: list[str] = []
    files: list[str] = []
    trees: list[tuple[str, ast.AST]] = []
    for path in _python_files(folder):
        where = path.relative_to(folder).as_posix()
        try:
            source = path.read_bytes()
            compile(source, where, "exec", dont_inherit=True)
            trees.append((where, ast.parse(source, where)))
        except SyntaxError as error:
            syntax.append(f"{where} line {error.lineno} does not compile ({error.msg}); fix the syntax")
        except (ValueError, RecursionError, MemoryError) as error:
            syntax.append(f"{where} cannot be compiled ({type(error).__name__}); simplify the file")
    checks = [_check("compile", started, syntax, "Every Python file compiles.")]
    started = time.monotonic()
    for where, tree in trees:
        if where in tests or where.endswith("/conftest.py"):
            continue
        found, outside = _scan(tree, where, permissions)
        imports += found
        files += outside
    checks.append(_check("permissions", started, imports, "It uses only what its manifest declares."))
    checks.append(
        _check("file access", started, files, "No access outside its folder is visible in its code.")
    )
    started = time.monotonic()
    native = []
    if not permissions.get("native_code"):
        for directory, _dirs, filenames in os.walk(folder):
            for name in filenames:
                if name.endswith(NATIVE_SUFFIXES) or ".so." in name:
                    relative = (Path(directory) / name).relative_to(folder).as_posix()
                    native.append(
                        f"{relative} is native code, but its manifest does not allow native code "
                        "(permissions.native_code)"
                    )
    checks.append(_check("native files", started, native, "It ships no native code."))
    return checks


def hook_check(load_plugin: Callable[[], list[str]], load: dict[str, Any]) -> Check:
    """Import the module and register it with pluggy, which checks each hookimpl's signature."""
    from nexus_desktop.modules.runtime.child import describe_error

    started = time.monotonic()
    problems = []
    try:
        implemented = set(load_plugin())
    except BaseException as error:
        problems.append(f"Loading it failed: {describe_error(error, load['folder'])}")
    else:
        declared = set(load.get("hooks", ()))
        problems += [
            f"It implements {hook} but its manifest does not list it"
            for hook in sorted(implemented - declared)
        ]
        problems += [
            f"Its manifest lists {hook} but it does not implement it"
            for hook in sorted(declared - implemented)
        ]
    return _check("hooks", started, problems, "Its hooks match the NEXUS hook specifications.")


# Host side ------------------------------------------------------------------------------------


def module_data_dir(name: str) -> Path:
    """The one folder a module may write to (its code folder is read-only: it is hashed)."""
    return paths.data_dir() / "module-data" / name


def load_message(
    manifest: ModuleManifest, folder: Path, data_dir: Path, *, memory_limit_mb: int, op: str = "load"
) -> dict[str, Any]:
    permissions = manifest.permissions
    return {
        "id": 0,
        "op": op,
        "name": manifest.name,
        "folder": str(folder.resolve()),
        "data_dir": str(data_dir),
        "entry_point": manifest.entry_point,
        "hooks": list(manifest.hooks),
        "test_file": manifest.test_file,
        "memory_limit_mb": memory_limit_mb,
        "permissions": {
            "read": list(permissions.filesystem.read),
            "write": list(permissions.filesystem.write),
            "network": list(permissions.network),
            "subprocess": permissions.subprocess,
            "native_code": permissions.native_code,
        },
    }


def _run_child(mode: str, load: dict[str, Any], timeout: float, home: Path) -> tuple[Any, str]:
    """(result, why it failed) of one child run: result is None when it failed."""
    # stderr goes to a file: a program the module started and left running would hold a pipe
    # open, and reading it to the end would wait for that program instead of the check.
    scratch = home / "sandbox"
    with tempfile.TemporaryFile(dir=home) as errors:
        process = launch(
            child_command(mode),
            validating(load, scratch),
            env=child_environment(scratch),
            cwd=scratch,
            stderr=errors,
        )
        try:
            output, _ = process.communicate(json.dumps(load).encode() + b"\n", timeout=timeout)
        except subprocess.TimeoutExpired:
            return None, f"it did not finish within {timeout:g} seconds"
        finally:
            kill_tree(process)
            process.wait()
        errors.seek(0)
        stderr = errors.read()
    for line in output.splitlines():
        message = decode(line)
        if message is not None and message.get("id") == 0:
            if message.get("ok"):
                return message.get("result"), ""
            return None, str(message.get("error"))
    last = stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
    detail = f" (last message: {last[0][:300]})" if last[0] else ""
    return None, f"its checking process {describe_exit(exit_code(process) or 0)}{detail}"


def validate_module(
    folder: Path,
    *,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    memory_limit_mb: int = DEFAULT_MEMORY_LIMIT_MB,
    bundled: bool = False,
) -> dict[str, Any]:
    """Check the module in ``folder`` in sandboxed child processes; blocks (use an executor).

    ``bundled`` is True for modules shipped with the app (see ``load_manifest``).
    """
    started = time.monotonic()
    manifest = load_manifest(folder, bundled=bundled)
    digest = content_hash(folder.resolve())
    with tempfile.TemporaryDirectory(prefix=f"nexus-validate-{manifest.name}-") as scratch:
        home = Path(scratch)
        # Everything the child may write lives under home/sandbox; the error log stays outside.
        load = load_message(manifest, folder, home / "sandbox" / "data", memory_limit_mb=memory_limit_mb)
        load["granted"] = validation_grant(load["permissions"])
        load["scratch_dirs"] = [str(home / "sandbox" / "scratch")]
        (home / "sandbox" / "scratch").mkdir(parents=True)
        load["cpu_seconds"] = max(1, int(timeout))
        checks, failure = _run_child("validate", load, timeout, home)
        if checks is None:
            checks = [{"name": "hooks", "ok": False, "message": f"Checking it failed: {failure}.",
                       "problems": [failure], "seconds": 0.0}]  # fmt: skip
        checks.append(_tests(manifest, load, timeout, home))
    return {
        "ok": all(check["ok"] for check in checks),
        "content_hash": digest,
        "seconds": round(time.monotonic() - started, 3),
        "checks": checks,
        "error": next((check["message"] for check in checks if not check["ok"]), None),
    }


def _tests(manifest: ModuleManifest, load: dict[str, Any], timeout: float, home: Path) -> Check:
    started = time.monotonic()
    if manifest.test_file is None:
        return {
            **_check("tests", started, [], "It has no tests (the manifest sets no test_file)."),
            "skipped": True,
        }
    result, failure = _run_child("test", load, timeout, home)
    if result is None:
        return _check("tests", started, [f"Its tests could not run: {failure}"], "")
    summary = (result.get("output") or ["(no output)"])[-1]
    if result.get("exit_code") != 0:
        check = _check("tests", started, [f"Its tests failed: {summary}"], "")
    else:
        check = _check("tests", started, [], f"Its tests passed: {summary}")
    return {**check, "output": result.get("output", [])}


async def validate_and_record(host: Any, name: str, **options: Any) -> dict[str, Any]:
    """Validate the active version of ``name`` and store the report in its lifecycle record.

    A passing report is recorded with ``record_success``, a failing one with ``record_failure``.
    """
    loop = asyncio.get_running_loop()
    record = await loop.run_in_executor(None, host.lifecycle.get, name)
    bundled = record.source == "bundled"
    report = await loop.run_in_executor(
        None, lambda: validate_module(Path(record.path), bundled=bundled, **options)
    )
    report = {"kind": "validation", **report}
    recorder = host.lifecycle.record_success if report["ok"] else host.lifecycle.record_failure
    await loop.run_in_executor(None, recorder, name, report)
    return report
