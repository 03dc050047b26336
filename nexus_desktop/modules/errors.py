"""Errors a user can hit while installing, approving or managing modules.

``str(error)`` is always one sentence saying what happened and what to do.
"""

from __future__ import annotations


class ModuleError(ValueError):
    """Base class: a module could not be read, installed or changed."""


class ManifestError(ModuleError):
    """A module's manifest is missing, too large or invalid.

    ``field`` names the manifest field at fault (``""`` when the file itself is the problem).
    """

    def __init__(self, message: str, *, field: str = "", problems: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.field = field
        self.problems = problems or (message,)
        """Every problem found, one sentence each; ``str(self)`` is the first."""


class InstallError(ModuleError):
    """An archive or folder was refused (unsafe, too large, a duplicate) and nothing was installed."""


class TransitionError(ModuleError):
    """A lifecycle change that is not allowed from the module's current state."""


class UnknownModuleError(ModuleError, LookupError):
    """No module by that name (or version) is known."""
