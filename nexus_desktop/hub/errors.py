"""The one error type of the hub package: its text is a sentence a user can act on."""

from __future__ import annotations


class HubError(Exception):
    """Searching or downloading failed; ``str(error)`` says why and what to do, in one line.

    Nothing is lost when one is raised: a stopped download keeps its ``.part`` file and resumes.
    """


class DownloadPaused(Exception):
    """The download stopped because pause was asked for; its ``.part`` file is kept."""
