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
    """This module's process has started: with the app, when the module was approved or enabled
    while the app runs, on a reload, or again after the process crashed.

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
        and ``avatar`` optional PNG bytes.  Each character is added once (by this module and its
        name; ``modules.characters``) and the sidebar shows this module as where it came from.
        From then on it is the user's like any other: edits are kept when the module registers it
        again, and a character the user deleted is not added back.  A card that cannot be read is
        skipped and logged with this module's name.
    """


@hookspec(historic=True)
def register_scheduled_tasks(register: Callable[[ScheduledTaskSpec], None]) -> None:
    """Ask for work to be run periodically, e.g. a daily summary.

    :param register: call ``register(ScheduledTaskSpec(name, description, interval_seconds,
        function))``.  The app's scheduler runs each task every ``interval_seconds`` in this
        module's process (never on the UI thread), with a time limit of the interval clamped to
        10 s - 5 min.  A task that raises or overruns is counted in the scheduler grid
        (Dashboards -> Scheduler health, ``nexus scheduler status``) and, like any failed call, on
        the module's card; it is never raised into the app.
    """


@hookspec(historic=True)
def register_dashboard_panels(register: Callable[[DashboardPanelSpec], None]) -> None:
    """Add panels to the Dashboards page (its Module panels view).

    :param register: call ``register(DashboardPanelSpec(name, title, render))``.  ``render``
        returns markdown text or a label -> value mapping; the app calls it in this module's
        process every ``refresh_seconds`` while the page is open, and draws the result.
    """


# Chat interceptors ---------------------------------------------------------------------------


@hookspec
def message_will_send(message: str, context: MessageContext) -> str | None:
    """Change the user's message before the model sees it (a filter).

    :param message: the text as it stands after the modules called before this one.
    :param context: which chat and character the message belongs to.
    :return: the replacement text, or None to leave it as it is.

    The chat reply pipeline calls it for every message sent, before the model call.  Modules
    are chained: each sees the previous one's result (``ModuleSupervisor.filter_message``), and
    one that fails or takes longer than the interceptor time limit is skipped.  The message
    stored in the chat is always what the user typed.
    """


@hookspec(firstresult=True)
def message_will_be_answered(message: str, context: MessageContext) -> str | None:
    """Answer the message instead of the model, e.g. a ``/roll 2d6`` command.

    :param message: the (filtered) user message.
    :param context: which chat and character the message belongs to.
    :return: the reply to show, or None to let the model answer.  The first module that
        returns a reply wins and the rest are not asked; the reply is saved in the chat.
    """


@hookspec
def reply_did_finish(reply: str, context: MessageContext) -> None:
    """A reply (the model's or a module's answer) has been completed and saved; notification only.

    The chat does not wait for it.

    :param reply: the reply text as shown.
    :param context: which chat and character it belongs to.
    """
