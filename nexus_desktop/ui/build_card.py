"""A module build as a card, in the chat (in place of the ``tool`` message that names the build)
and in the gallery: its steps live, where its code was generated and why, each round's diff and
test output, and, once it awaits approval, the approval dialog and the secrets it needs.

The card follows ``BuildService.changes`` (heard on whatever thread emits, handed to the Qt thread
by a signal) and reads the stored build again, so a reopened chat shows the same card.
"""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import shiboken6
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget

from nexus_desktop.builder.store import FINISHED
from nexus_desktop.ui.layouts import tight
from nexus_desktop.ui.module_card import badge_label
from nexus_desktop.ui.ops import QueryOp
from nexus_desktop.ui.theme import COLORS, set_style
from nexus_desktop.ui.widgets import push_button

if TYPE_CHECKING:
    from nexus_desktop.builder.loop import BuildUpdate
    from nexus_desktop.builder.store import BuildView, RoundSummary
    from nexus_desktop.core import AppCore
    from nexus_desktop.db.tables import Message
    from nexus_desktop.modules.service import CredentialInfo
    from nexus_desktop.providers.tables import RouteRecord

log = logging.getLogger(__name__)

STATUS_WORDS = {
    "refused": "Refused",
    "planning": "Planning",
    "generating": "Writing code",
    "validating": "Testing in the sandbox",
    "repairing": "Repairing",
    "awaiting_approval": "Awaiting approval",
    "failed": "Failed",
}
BADGE_STATES = {"awaiting_approval": "awaiting_approval", "failed": "failed", "refused": "failed"}
ROUND_KINDS = {
    "generate": "manifest, code and tests generated from the module template",
    "repair": "self-repair with the errors",
    "fresh": "self-repair from a fresh context (only the spec and the last error)",
}
MARKS = {"done": "✓", "failed": "✗", "running": "●", "waiting": "○"}


def build_id_of(message: Message) -> int | None:
    """The build a chat ``tool`` message stands for (``ChatService`` hands builds off so), or None."""
    build = (message.stats or {}).get("build")
    build_id = build.get("build_id") if isinstance(build, dict) else None
    return build_id if isinstance(build_id, int) else None


@dataclass(frozen=True)
class BuildShown:
    """What a card shows: the build, where its code was generated and why, and the secrets its
    module declares (once it exists)."""

    build: BuildView
    decision: RouteRecord | None
    credentials: list[CredentialInfo]
    module_state: str | None = None
    """The built module's lifecycle state now (it moves on once approved); None when it is gone."""
    module_badge: str = ""


async def load_build(core: AppCore, build_id: int) -> BuildShown:
    from nexus_desktop.providers.records import load_decision

    build = await core.builds.get(build_id)
    decision = None
    if build.decision_id is not None:
        decision = await core.db.call(load_decision, core.store.engine, build.decision_id)
    if build.status != "awaiting_approval" or not build.module_name:
        return BuildShown(build, decision, [])
    try:
        module = await core.modules.get(build.module_name)
    except LookupError:  # uninstalled since: the card still shows the build
        return BuildShown(build, decision, [])
    return BuildShown(build, decision, list(module.credentials), module.state, module.card.badge)


def build_card_style() -> str:
    c = COLORS
    return f"""
#BuildCard {{ background: {c.assistant_bubble}; border: 1px solid {c.border}; border-radius: 12px; }}
#BuildCard[status="awaiting_approval"] {{ border: 1px solid {c.warning}; }}
#BuildCard[status="failed"], #BuildCard[status="refused"] {{ border: 1px solid {c.danger}; }}
#BuildCard QLabel {{ background: transparent; border: none; }}
#BuildTitle {{ font-weight: 650; }}
#BuildRequest, #BuildStepText {{ color: {c.text_dim}; }}
#BuildRoute {{ color: {c.muted}; font-size: 9pt; }}
#BuildWarning {{ color: {c.warning}; font-size: 9pt; }}
#BuildNow {{ color: {c.accent_hover}; font-size: 9pt; }}
#Badge {{ border-radius: 9px; padding: 2px 9px; font-size: 8.5pt; font-weight: 600; }}
"""


class BuildCard(QWidget):
    """One build; ``role``, ``message`` and the ``set_*`` methods let the chat list hold it."""

    role = "tool"
    heard = Signal(object)
    """A ``BuildUpdate`` of this build, on the Qt thread."""
    shown = Signal()
    """The card now shows the stored build (tests and screenshots wait on it)."""
    dialog_opened = Signal(QWidget)
    """A round, approval, code or secret dialog was opened."""

    def __init__(
        self, core: AppCore, build_id: int, message: Message | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.core = core
        self.build_id = build_id
        self.message: Any = message
        self.shown_build: BuildShown | None = None
        self.now_text = ""
        self.checked_credentials = ""
        self._step_texts: list[str] = []
        set_style(self, build_card_style)
        outer = self._outer = tight(QVBoxLayout(self))
        if message is not None:  # in the chat: under the user's message, as a tool card is
            from nexus_desktop.ui.message_widget import AVATAR_SIZE

            outer.setContentsMargins(AVATAR_SIZE + 12, 2, 0, 2)
        self.frame = QFrame()
        self.frame.setObjectName("BuildCard")
        self.frame.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)
        self.frame.setAccessibleName(f"Module build {build_id}")
        outer.addWidget(self.frame)
        column = QVBoxLayout(self.frame)
        column.setContentsMargins(14, 10, 14, 12)
        column.setSpacing(6)
        header = QHBoxLayout()
        self.title = QLabel(f"Building a module · build {build_id}")
        self.title.setObjectName("BuildTitle")
        self.badge_row = QHBoxLayout()
        header.addWidget(self.title, 1)
        header.addLayout(self.badge_row)
        column.addLayout(header)
        self.request_label = self._label("", "BuildRequest")
        column.addWidget(self.request_label)
        self.route_label = self._label("", "BuildRoute")
        self.warning_label = self._label("", "BuildWarning")
        column.addWidget(self.route_label)
        column.addWidget(self.warning_label)
        self.steps = QVBoxLayout()
        self.steps.setSpacing(4)
        column.addLayout(self.steps)
        self.now_label = self._label("", "BuildNow")
        column.addWidget(self.now_label)
        self.round_buttons = QHBoxLayout()  # each round's diff and test output
        self.round_buttons.setSpacing(6)
        column.addLayout(self.round_buttons)
        self.action_row = QHBoxLayout()
        column.addLayout(self.action_row)
        self._fit_timer = QTimer(self, singleShot=True, interval=0)
        self._fit_timer.timeout.connect(self._fit_labels)
        self._refresh_timer = QTimer(self, singleShot=True, interval=60)
        self._refresh_timer.timeout.connect(self.refresh)
        self.heard.connect(self._heard)
        card = self

        def heard(update: BuildUpdate) -> None:
            if update.build_id == build_id and shiboken6.isValid(card):
                card.heard.emit(update)

        unsubscribe = core.builds.changes.subscribe(heard)
        self.destroyed.connect(lambda *_: unsubscribe())
        self.refresh()

    @staticmethod
    def _label(text: str, name: str) -> QLabel:
        label = QLabel(text)
        label.setObjectName(name)
        label.setTextFormat(Qt.TextFormat.RichText)  # every text shown is escaped first
        label.setWordWrap(True)
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        return label

    # Following the build ------------------------------------------------------------------

    def _heard(self, update: BuildUpdate) -> None:
        # The line under the steps says what is happening now; the end is the Result step's to say
        # (shown once the build is read again), so "it passed" never sits under a step still running.
        self.now_text = "" if update.status in FINISHED else update.text
        self.now_label.setText(html.escape(self.now_text))
        self.now_label.setVisible(bool(self.now_text))
        self._fit_timer.start()
        self._refresh_timer.start()  # a burst of steps is one read

    def refresh(self) -> None:
        QueryOp(parent=self, op=load_build(self.core, self.build_id), success=self.show_build).failure(
            self._failed
        ).run_in_background()

    def _failed(self, error: BaseException) -> None:
        log.warning("Could not read build %s: %s", self.build_id, error)
        self.request_label.setText(html.escape(f"This build could not be read ({error})."))

    def _action_failed(self, error: BaseException) -> None:
        """An approval, secret or check went wrong: say so on the card, in the build's own words."""
        self.now_label.setText(html.escape(f"⚠ {error}"))
        self.now_label.show()

    def show_build(self, shown: BuildShown) -> None:
        self.shown_build = shown
        build = shown.build
        self.frame.setProperty("status", build.status)
        self.frame.style().unpolish(self.frame)
        self.frame.style().polish(self.frame)
        name = build.module_name or "a module"
        self.title.setText(f"Building {name} · build {build.id}")
        self._set_badge(build.status)
        self.request_label.setText(f"“{html.escape(build.description)}”")
        self._show_route(shown.decision, build.source_name)
        self._clear(self.steps)
        self._clear(self.round_buttons)
        self._clear(self.action_row)
        self._step_texts = []
        if build.status != "refused":
            self._step(_plan_state(build), "Plan", _first_lines(build.plan) or "writing the plan…")
            for summary in build.rounds:
                self._round_step(build, summary)
        if build.rounds:
            caption = QLabel("Diff and tests:")
            caption.setObjectName("BuildRoute")
            self.round_buttons.insertWidget(0, caption)
            self.round_buttons.addStretch(1)
        self._show_result(shown)
        self.now_label.setVisible(not build.finished and bool(self.now_text))
        self._fit_timer.start()
        self.shown.emit()

    def _set_badge(self, status: str) -> None:
        self._clear(self.badge_row)
        self.badge = badge_label(STATUS_WORDS.get(status, status), BADGE_STATES.get(status, "validated"))
        self.badge.setAccessibleName(f"Build status: {STATUS_WORDS.get(status, status)}")
        self.badge_row.addWidget(self.badge)

    def _show_route(self, decision: RouteRecord | None, source_name: str) -> None:
        where = decision.source_name if decision is not None else source_name
        why = f" — {decision.reason}" if decision is not None and decision.reason else ""
        self.route_label.setText(f"Code written on {html.escape(where)}{html.escape(why)}" if where else "")
        self.route_label.setVisible(bool(where))
        warning = decision.warning if decision is not None else None
        self.warning_label.setText(f"⚠ {html.escape(warning)}" if warning else "")
        self.warning_label.setVisible(bool(warning))

    def _round_step(self, build: BuildView, summary: RoundSummary) -> None:
        last = summary is build.rounds[-1]
        running = last and not build.finished and summary.seconds is None  # not finished yet
        state = "done" if summary.passed else ("running" if running else "failed")
        what = ROUND_KINDS.get(summary.kind, summary.kind)
        if summary.passed:
            verdict = "validated in the sandbox: its tests passed"
        elif running:
            verdict = "testing in the sandbox…" if build.status == "validating" else "writing…"
        else:
            verdict = f"failed: {summary.error}"
        seconds = f" ({summary.seconds:.0f} s)" if summary.seconds is not None else ""
        self._step(state, f"Round {summary.round_no}", f"{what}; {verdict}{seconds}")
        button = push_button(f"Round {summary.round_no}…")
        button.setAccessibleName(f"Round {summary.round_no}: diff and test output")
        button.setToolTip("The round's diff, test output, prompt and answer (read-only)")
        button.clicked.connect(lambda: self.open_round(summary.round_no))
        self.round_buttons.addWidget(button)

    def _show_result(self, shown: BuildShown) -> None:
        build = shown.build
        if build.status == "awaiting_approval" and shown.module_state is None:
            self._step("done", "Result", f"{build.module_name} passed its tests; it was uninstalled since.")
        elif build.status == "awaiting_approval":
            if shown.module_state == "awaiting_approval":
                self._step(
                    "done", "Result", f"{build.module_name} passed its tests and awaits your approval."
                )
                approve = push_button("Review and approve…", role="primary", icon_name="check")
                approve.setAccessibleName(f"Review and approve {build.module_name}")
                approve.clicked.connect(self.open_approval)
                self.action_row.addWidget(approve)
            else:  # approved (or failed, disabled…) since: the gallery card is where it lives now
                badge = shown.module_badge.lower() or str(shown.module_state)
                self._step(
                    "done",
                    "Result",
                    f"{build.module_name} passed its tests; in the gallery it is {badge} now.",
                )
            for credential in shown.credentials:
                button = push_button(f"Enter {credential.name}…", icon_name="settings")
                button.setAccessibleName(f"Enter the secret {credential.name} for {build.module_name}")
                button.setToolTip("Kept in your OS keyring; then the module's tests run again with it")
                button.clicked.connect(lambda _=False, c=credential: self.open_credential(c))
                self.action_row.addWidget(button)
            if self.checked_credentials:
                self._step(
                    "done" if "passed" in self.checked_credentials else "failed",
                    "Secret",
                    self.checked_credentials,
                )
        elif build.status == "failed":
            rounds = len(build.rounds)
            noun = "round" if rounds == 1 else "rounds"
            self._step(
                "failed",
                "Result",
                f"Failed after {rounds} {noun}: {build.reason or 'its tests never passed'}. "
                "Every round is kept: open one to see why.",
            )
        elif build.status == "refused":
            self._step("failed", "Refused", f"{build.reason} Nothing was generated.")
        self.action_row.addStretch(1)

    def _step(self, state: str, name: str, text: str) -> None:
        """One step, as one wrapped label (a label alone in the column wraps to its full height)."""
        colour = {"done": COLORS.success, "failed": COLORS.danger, "running": COLORS.accent}.get(
            state, COLORS.muted
        )
        mark = f'<span style="color:{colour}; font-weight:700">{MARKS[state]}</span>'
        label = self._label(f"{mark}&nbsp; <b>{html.escape(name)}</b> · {html.escape(text)}", "BuildStepText")
        label.setAccessibleName(f"{name} ({state}): {text}")
        self.steps.addWidget(label)
        self._step_texts.append(f"{name} · {text}")

    @staticmethod
    def _clear(layout: Any) -> None:
        while layout.count():
            item = layout.takeAt(0)
            widget = item.widget()
            if widget is not None:
                widget.hide()
                widget.deleteLater()
            elif item.layout() is not None:
                BuildCard._clear(item.layout())

    def step_texts(self) -> list[str]:
        """The steps as shown, in plain words ("Round 2 · self-repair with the errors; …")."""
        return list(self._step_texts)

    # Dialogs ------------------------------------------------------------------------------

    def _open(self, dialog: QWidget) -> None:
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()  # not exec(): a nested event loop would stall the build's own tasks
        self.dialog_opened.emit(dialog)

    def open_round(self, round_no: int) -> None:
        from nexus_desktop.ui.build_round_dialog import BuildRoundDialog

        def show(round_view: Any) -> None:
            title = f"Build {self.build_id}, round {round_no}: diff and test output"
            self._open(BuildRoundDialog(title, round_view, self))

        QueryOp(parent=self, op=self.core.builds.round_detail(self.build_id, round_no), success=show).failure(
            self._action_failed
        ).run_in_background()

    def open_approval(self) -> None:
        from nexus_desktop.ui.build_round_dialog import Review, approval_dialog, review_module

        if self.shown_build is None:
            return
        modules = self.core.modules

        def show(review: Review) -> None:
            dialog = approval_dialog(review, self, self._open)
            dialog.accepted.connect(
                lambda: (
                    QueryOp(
                        parent=self,
                        op=modules.approve(dialog.approved_request()),
                        success=lambda _: self.refresh(),
                    )
                    .failure(self._action_failed)
                    .run_in_background()
                )
            )
            self._open(dialog)

        QueryOp(
            parent=self, op=review_module(modules, self.shown_build.build.module_name), success=show
        ).failure(self._action_failed).run_in_background()

    def open_credential(self, credential: CredentialInfo) -> None:
        """Ask for the secret; once it is in the keyring the module's tests run again with it."""
        from nexus_desktop.ui.credential_dialog import CredentialDialog

        assert self.shown_build is not None
        name = self.shown_build.build.module_name
        dialog = CredentialDialog(self.core.modules, name, name, credential, self)
        dialog.accepted.connect(lambda: self.check_module(credential.name))
        self._open(dialog)

    def check_module(self, credential: str) -> None:
        """Run the module's validation (its integration test) now that it has ``credential``."""
        assert self.shown_build is not None
        name = self.shown_build.build.module_name
        self.checked_credentials = f"{credential} saved; running the module's tests with it…"
        self.refresh()

        def checked(report: dict[str, Any]) -> None:
            if report.get("ok"):
                self.checked_credentials = f"{credential} saved; the module's tests passed with it."
            else:
                self.checked_credentials = (
                    f"{credential} saved; the module's tests failed: {report.get('error')}"
                )
            self.refresh()

        QueryOp(parent=self, op=self.core.modules.validate(name), success=checked).failure(
            self._action_failed
        ).run_in_background()

    # What the chat list asks of its items -------------------------------------------------

    @property
    def text(self) -> str:
        return str(getattr(self.message, "content", ""))

    def set_message(self, message: Message) -> None:
        self.message = message

    def set_swipeable(self, _swipeable: bool) -> None:
        pass

    def set_busy(self, _busy: bool) -> None:
        pass

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._fit_timer.start()

    def _fit_labels(self) -> None:
        """Give each wrapped label the height its text needs at the width it got: the chat's
        scrolling column sizes items by their hints, which do not follow wrapping."""
        for label in self.frame.findChildren(QLabel):
            if label.wordWrap() and label.isVisible() and label.width() > 0:
                needed = label.heightForWidth(label.width())
                if needed > 0 and label.minimumHeight() != needed:
                    label.setMinimumHeight(needed)

    def set_max_text_width(self, width: int) -> None:
        # On the card itself, not its frame: the chat column then asks its height for the width
        # it really gets, and every wrapped step shows whole.
        left = self._outer.contentsMargins().left()
        self.setMaximumWidth(left + width + 60)


def _plan_state(build: BuildView) -> str:
    if build.plan:
        return "done"
    return "running" if build.status == "planning" else ("failed" if build.finished else "waiting")


def _first_lines(text: str, limit: int = 220) -> str:
    """The start of the plan: the card stays short; the round dialog has the whole prompt."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


__all__ = ["BuildCard", "BuildShown", "build_id_of", "load_build"]
