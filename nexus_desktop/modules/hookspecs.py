"""Every hook a NEXUS module can implement, grouped by the phase in which the app calls it.

A module implements hooks with ``@hookimpl`` on plain functions in its entry-point object::

    from nexus_desktop.modules.hookspecs import hookimpl
    from nexus_desktop.modules.specs import ToolSpec

    @hookimpl
    def register_tools(register):
        register(ToolSpec("dice.roll", "Roll dice like 2d6.", {"type": "object", ...}, roll))

Naming follows Anki's convention: ``*_will_*`` hooks may change a value on its way, ``*_did_*``
hooks are told that something happened.  Registration hooks are ``historic``: a module enabled
while the app runs is called with the same ``register`` callbacks the others got at startup, so
hot-loading needs no restart.  Hooks where one answer wins are ``firstresult``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from nexus_desktop.modules.specs import (
        DashboardPanelSpec,
        MessageContext,
        ScheduledTaskSpec,
        ToolSpec,
    )

PROJECT_NAME = "nexus"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


# Lifecycle ---------------------------------------------------------------------------------


@hookspec(historic=True)
def startup(app_info: dict[str, Any]) -> None:
    """The app has started (or this module was enabled while it runs).

    :param app_info: plain data about the running app: ``version``, ``data_dir`` and
        ``module_dir`` (this module's own folder, the only one it may write to freely).

    Keep it short; slow set-up belongs in a scheduled task.
    """


@hookspec
def shutdown() -> None:
    """The app is quitting or this module is being disabled: flush and close what you opened.

    The host waits a few seconds at most, then stops the module's process regardless.
    """


# Registration (historic: late modules get the same calls) -----------------------------------


@hookspec(historic=True)
def register_tools(register: Callable[[ToolSpec], None]) -> None:
    """Offer tools that characters can call.

    :param register: call ``register(ToolSpec(name, description, parameters, function))`` once
        per tool.  ``parameters`` is a JSON schema of type object; the tool only runs with
        arguments that match it.  Tool names are global: prefix them with your module name.
    """


@hookspec(historic=True)
def register_characters(register: Callable[..., None]) -> None:
    """Add characters to the character list.

    :param register: call ``register(card, avatar=None)`` per character, where ``card`` is a
        ``nexus_desktop.cards.model.CharacterCard`` or a SillyTavern Character Card V2/V3 dict,
        and ``avatar`` optional PNG bytes.  The user can edit or delete them like any other.
    """


@hookspec(historic=True)
def register_scheduled_tasks(register: Callable[[ScheduledTaskSpec], None]) -> None:
    """Ask for work to be run periodically, e.g. a daily summary.

    :param register: call ``register(ScheduledTaskSpec(name, description, interval_seconds,
        function))``.  Tasks never run on the UI thread and a failing task is reported on the
        module's card, not raised into the app.
    """


@hookspec(historic=True)
def register_dashboard_panels(register: Callable[[DashboardPanelSpec], None]) -> None:
    """Add panels to the dashboard.

    :param register: call ``register(DashboardPanelSpec(name, title, render))``.  ``render``
        returns markdown text or a label -> value mapping; the app draws it.
    """


# Chat interceptors ---------------------------------------------------------------------------


@hookspec
def message_will_send(message: str, context: MessageContext) -> str | None:
    """Change the user's message before the model sees it (a filter).

    :param message: the text as it stands after the modules called before this one.
    :param context: which chat and character the message belongs to.
    :return: the replacement text, or None to leave it as it is.

    Modules are chained: each sees the previous one's result (see ``registry.filter_message``).
    The message stored in the chat is always what the user typed.
    """


@hookspec(firstresult=True)
def message_will_be_answered(message: str, context: MessageContext) -> str | None:
    """Answer the message instead of the model, e.g. a ``/roll 2d6`` command.

    :param message: the (filtered) user message.
    :param context: which chat and character the message belongs to.
    :return: the reply to show, or None to let the model answer.  The first module that
        returns a reply wins and the rest are not asked.
    """


@hookspec
def reply_did_finish(reply: str, context: MessageContext) -> None:
    """A reply has been completed and saved (post-interceptor, notification only).

    :param reply: the reply text as shown.
    :param context: which chat and character it belongs to.
    """
