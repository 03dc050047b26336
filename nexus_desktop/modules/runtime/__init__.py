"""The module runtime: validation in a sandbox and each enabled module in its own process.

- ``validate``: static checks, the hook-signature check and the module's tests, in child processes
- ``supervisor``: ``ModuleSupervisor``, one process per module, every call under a timeout
- ``audit``: the PEP 578 audit hook that holds a module to its manifest inside its process
- ``child``: the main of a module's process; ``process``: starting it and reading its pipes
- ``breaker``: the per-module rate limit; ``protocol``: what crosses the process boundary
"""

from __future__ import annotations

import importlib
from typing import Any

# Lazy, so a module's process (which imports ``runtime.child``) does not load the host's side
# (SQL, pydantic, keyring): less start-up time and memory per module.
_EXPORTS = {
    "ModuleRuntimeStatus": "protocol",
    "RemoteCharacter": "protocol",
    "RemotePanel": "protocol",
    "RemoteScheduledTask": "protocol",
    "RemoteTool": "protocol",
    "ToolResult": "protocol",
    "ModuleRuntimeError": "supervisor",
    "ModuleSupervisor": "supervisor",
    "credential_key": "supervisor",
    "module_data_dir": "validate",
    "validate_and_record": "validate",
    "validate_module": "validate",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
