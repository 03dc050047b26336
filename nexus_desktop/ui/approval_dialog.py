"""The approval dialog: exactly what a module asks for, how its checks went, and the files' hash.

Approving records the approval with that hash (``ModuleHost.approve``), so what runs is what was
shown.  When the last validation of these files failed, Approve is disabled and says why.  A
module released from quarantine shows why it was quarantined first.
``ReportDialog`` shows a validation or run-time report in words.
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from nexus_desktop.modules.registry import ApprovalRequest
from nexus_desktop.modules.review_text import (
    ENFORCED,
    NOTHING_ASKED,
    TRUST_NOTE,
    TRUST_NOTE_WEAKER,
    report_lines,
    report_summary,
)
from nexus_desktop.ui.module_card import modules_style
from nexus_desktop.ui.theme import COLORS, set_style
from nexus_desktop.ui.widgets import fit_to_screen, push_button

ACCEPT_WEAKER = "I understand, and approve it with the weaker guarantee"
GENERATED_NOTE = (
    "NEXUS's module builder wrote this module, and its tests, from your request. Nothing of it "
    "ran outside the sandbox yet: read its code before you approve it."
)


def passed_tests(report: dict[str, Any] | None, test_names: list[str]) -> list[str]:
    """The module's tests that passed in its last validation: all of them when its tests check
    passed (pytest ran the whole file), none otherwise."""
    checks = (report or {}).get("checks") or []
    tests = next((check for check in checks if check.get("name") == "tests"), None)
    return list(test_names) if tests is not None and tests.get("ok") and not tests.get("skipped") else []


def refusal_reason(request: ApprovalRequest, report: dict[str, Any] | None) -> str | None:
    """Why approval is refused, or None: the last validation of these files failed."""
    if not report or report.get("kind") != "validation" or report.get("ok"):
        return None
    error = str(report.get("error") or "a check failed").rstrip(".")
    return f"It cannot be approved: its validation failed ({error}). Fix it, then validate it again."


def report_html(report: dict[str, Any] | None) -> str:
    """The report for the dialog: the summary in bold, passed checks green, failed ones red."""
    if not report:
        return "No validation yet."
    rows = [f"<b style='color:{COLORS.text}'>{escape(report_summary(report))}</b>"]
    for check in report.get("checks") or []:
        ok = bool(check.get("ok"))
        mark = f"<span style='color:{COLORS.success if ok else COLORS.danger}'>{'✓' if ok else '✗'}</span>"
        name, message = escape(str(check.get("name", "?"))), escape(str(check.get("message", "")))
        rows.append(f"{mark}&nbsp;&nbsp;{name}: {message}")
    return "<br>".join(rows)


def _note(text: str, object_name: str) -> QLabel:
    label = QLabel(text)
    label.setObjectName(object_name)
    label.setWordWrap(True)
    return label


def _box(heading: str, body: QWidget | None = None, text: str = "") -> QFrame:
    box = QFrame()
    box.setObjectName("ReviewBox")
    layout = QVBoxLayout(box)
    layout.setContentsMargins(14, 10, 14, 12)
    layout.setSpacing(6)
    title = QLabel(heading.upper())
    title.setObjectName("ReviewHeading")
    layout.addWidget(title)
    if text:
        label = QLabel(text)
        label.setWordWrap(True)
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(label)
    if body is not None:
        layout.addWidget(body)
    return box


class ApprovalDialog(QDialog):
    def __init__(
        self,
        request: ApprovalRequest,
        report: dict[str, Any] | None,
        parent: QWidget | None = None,
        *,
        test_names: list[str] | None = None,
        show_code: Callable[[], object] | None = None,
    ) -> None:
        """``test_names``: the tests its test file defines (listed when they passed);
        ``show_code``: opens the module's files read-only (a "Read the code…" button)."""
        super().__init__(parent)
        self.request = request
        self.setWindowTitle(f"Approve {request.display_name}")
        set_style(self, modules_style)
        self.setMinimumWidth(600)
        fit_to_screen(self, 660, 760)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(24, 22, 24, 18)
        outer.setSpacing(12)

        title = QLabel(f"Approve {request.display_name}?")
        title.setObjectName("DialogTitle")
        outer.addWidget(title)
        origin = {"built-in": "built-in", "generated": "generated"}.get(request.origin, "installed by you")
        meta = QLabel(
            f"{request.name} {request.version} · by {request.author or 'an unknown author'} · {origin}"
        )
        meta.setObjectName("PageSubtitle")
        outer.addWidget(meta)
        # What it asks for, its checks and its code scroll between the title and the buttons,
        # so the dialog fits a small screen (800x500) however much there is to show.
        scroll = QScrollArea()
        scroll.setObjectName("ReviewScroll")
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        review = QWidget()
        review.setObjectName("ReviewBody")
        boxes = QVBoxLayout(review)
        boxes.setContentsMargins(0, 0, 12, 0)  # room for the scroll bar beside the boxes
        boxes.setSpacing(12)
        scroll.setWidget(review)
        outer.addWidget(scroll, 1)
        if request.origin == "generated":
            boxes.addWidget(_note(GENERATED_NOTE, "WarningNote"))

        self.quarantine_view: QLabel | None = None
        if request.quarantined_because:
            # What went wrong is what the person is deciding about: it comes before the rest.
            self.quarantine_view = QLabel("\n".join(request.quarantined_because))
            self.quarantine_view.setWordWrap(True)
            self.quarantine_view.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            boxes.addWidget(_box("Why it was quarantined", self.quarantine_view))
            boxes.addWidget(
                _note("Approving turns it on again; its data folder and secrets were kept.", "WarningNote")
            )

        self.access_lines = list(request.access) or [NOTHING_ASKED]
        access = QLabel("\n".join(f"•  {line}" for line in self.access_lines))
        access.setWordWrap(True)
        boxes.addWidget(_box("It asks for", access))

        if request.credentials:
            secrets = "\n\n".join(f"{name}: {how}" for name, how in request.credentials)
            boxes.addWidget(_box("Secrets it needs (kept in your OS keyring)", text=secrets))

        self.accept_weaker: QCheckBox | None = None
        if request.unenforced:
            # Said plainly, and approved only on purpose: the module is refused these otherwise.
            gaps = QLabel("\n".join(f"•  {gap}." for gap in request.unenforced))
            gaps.setWordWrap(True)
            self.accept_weaker = QCheckBox(ACCEPT_WEAKER)
            body = QWidget()
            column = QVBoxLayout(body)
            column.setContentsMargins(0, 0, 0, 0)
            column.addWidget(gaps)
            column.addWidget(self.accept_weaker)
            boxes.addWidget(_box("Not enforced on this PC", body))
        else:
            boxes.addWidget(_box("Enforced by the operating system", text=ENFORCED))

        self.report_view = QLabel(report_html(report))
        self.report_view.setObjectName("ReportView")
        self.report_view.setTextFormat(Qt.TextFormat.RichText)
        self.report_view.setWordWrap(True)
        self.report_view.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        boxes.addWidget(_box("Validation", self.report_view))
        self.passed_tests = passed_tests(report, test_names or [])
        if self.passed_tests:
            self.tests_view = QLabel("\n".join(f"✓  {name}" for name in self.passed_tests))
            self.tests_view.setWordWrap(True)
            self.tests_view.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            boxes.addWidget(_box("Tests that passed", self.tests_view))

        digest = QLabel(request.content_hash)
        digest.setObjectName("Hash")
        digest.setWordWrap(True)
        digest.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        boxes.addWidget(_box("Content hash (what you approve)", digest))

        self.refusal = refusal_reason(request, report)
        note = QLabel(self.refusal or (TRUST_NOTE_WEAKER if request.unenforced else TRUST_NOTE))
        note.setObjectName("RefusalNote" if self.refusal else "WarningNote")
        note.setWordWrap(True)
        outer.addWidget(note)
        if not self.refusal and not report:
            self.unvalidated_note = QLabel(
                "It has not been validated yet; Validate on its card checks it first."
            )
            self.unvalidated_note.setObjectName("WarningNote")
            outer.addWidget(self.unvalidated_note)

        buttons = QHBoxLayout()
        self.code_button = push_button("Read the code…", icon_name="eye")
        self.code_button.setAccessibleName("Read the module's code")
        self.code_button.setToolTip("Every file of the module, read-only")
        self.code_button.setVisible(show_code is not None)
        if show_code is not None:
            self.code_button.clicked.connect(show_code)
        buttons.addWidget(self.code_button)
        buttons.addStretch(1)
        self.cancel_button = push_button("Cancel")
        self.cancel_button.clicked.connect(self.reject)
        self.approve_button = push_button("Approve and enable", role="primary", icon_name="check")
        self.approve_button.clicked.connect(self.accept)
        self._update_approve()
        if self.accept_weaker is not None:
            self.accept_weaker.toggled.connect(self._update_approve)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.approve_button)
        outer.addLayout(buttons)

    def _update_approve(self) -> None:
        weaker_ok = self.accept_weaker is None or self.accept_weaker.isChecked()
        self.approve_button.setEnabled(self.refusal is None and weaker_ok)
        if self.refusal:
            self.approve_button.setToolTip(self.refusal)
        elif not weaker_ok:
            self.approve_button.setToolTip("Tick the box under 'Not enforced on this PC' first.")
        else:
            self.approve_button.setToolTip("")

    def approved_request(self) -> ApprovalRequest:
        """What the person approved: the request, with the weaker guarantee if they accepted it."""
        if self.accept_weaker is not None and self.accept_weaker.isChecked():
            return self.request.accepting_weaker_guarantee()
        return self.request


class ReportDialog(QDialog):
    def __init__(self, title: str, report: dict[str, Any] | None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        set_style(self, modules_style)
        self.resize(640, 420)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(20, 18, 20, 16)
        heading = QLabel(title)
        heading.setObjectName("DialogTitle")
        layout.addWidget(heading)
        self.text = QPlainTextEdit("\n".join(report_lines(report)))
        self.text.setReadOnly(True)
        layout.addWidget(self.text, 1)
        close = push_button("Close")
        close.clicked.connect(self.accept)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(close)
        layout.addLayout(row)


__all__ = ["ApprovalDialog", "ReportDialog", "passed_tests", "refusal_reason"]
