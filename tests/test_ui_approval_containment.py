"""The approval dialog says what the operating system enforces, and where this PC cannot, asks
for the weaker guarantee to be accepted before Approve works."""

from __future__ import annotations

from typing import Any

from nexus_desktop.modules.registry import ApprovalRequest
from nexus_desktop.modules.runtime.containment import ACCEPTED

GAP = "Which hosts it may reach is not enforced: this kernel cannot hold its connections"
PASSED = {"kind": "validation", "ok": True, "checks": []}


def request(unenforced: list[str]) -> ApprovalRequest:
    return ApprovalRequest(
        name="net-module",
        version="1.0",
        display_name="Net module",
        author="someone",
        origin="installed",
        access=["Connect to example.org (web ports 80 and 443)"],
        credentials=[],
        content_hash="ab" * 32,
        unenforced=unenforced,
    )


def texts(dialog: Any) -> str:
    from PySide6.QtWidgets import QLabel

    return "\n".join(label.text() for label in dialog.findChildren(QLabel))


def test_where_everything_is_enforced_the_dialog_says_so_and_approve_works(qtbot: Any) -> None:
    from nexus_desktop.ui.approval_dialog import ApprovalDialog

    dialog = ApprovalDialog(request([]), PASSED)
    qtbot.addWidget(dialog)
    assert "ENFORCED BY THE OPERATING SYSTEM" in texts(dialog)
    assert dialog.accept_weaker is None and dialog.approve_button.isEnabled()
    assert dialog.approved_request().access == ["Connect to example.org (web ports 80 and 443)"]


def test_a_gap_is_shown_and_approve_waits_for_the_weaker_guarantee_to_be_accepted(qtbot: Any) -> None:
    from nexus_desktop.ui.approval_dialog import ApprovalDialog

    dialog = ApprovalDialog(request([GAP]), PASSED)
    qtbot.addWidget(dialog)
    assert "NOT ENFORCED ON THIS PC" in texts(dialog) and GAP in texts(dialog)
    assert "ENFORCED BY THE OPERATING SYSTEM" not in texts(dialog)
    assert not dialog.approve_button.isEnabled()
    assert dialog.approved_request().access == ["Connect to example.org (web ports 80 and 443)"]

    assert dialog.accept_weaker is not None
    dialog.accept_weaker.setChecked(True)
    assert dialog.approve_button.isEnabled()
    assert dialog.approved_request().access[-1] == f"{ACCEPTED}{GAP}"
