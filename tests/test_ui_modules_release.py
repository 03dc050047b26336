"""A quarantined module's card offers Release for review…, never an Approve that would fail; the
release validates it, and the approval dialog says why it was quarantined."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nexus_desktop.modules.lifecycle import QUARANTINE_AFTER_FAILURES
from tests.test_ui_modules import (  # noqa: F401  (page_for is a fixture)
    NAME,
    card_in_state,
    example_copy,
    open_dialog,
    page_for,
)
from tests.ui_support import LONG, run

FAILURE = {"error": "quote-of-the-day failed in call_tool: ConnectionError: the PC is offline"}


def test_a_quarantined_card_offers_release_for_review_and_not_a_failing_approve(
    qtbot: Any,
    page_for: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    page = page_for()
    service = page.service
    run(qtbot, service.install(example_copy(tmp_path / "src")))
    run(qtbot, service.approve(run(qtbot, service.review(NAME))))
    for _ in range(QUARANTINE_AFTER_FAILURES):  # what the supervisor records for each failed call
        service.host.lifecycle.record_failure(NAME, FAILURE)
    page.refresh()

    card = card_in_state(qtbot, page, "quarantined")
    assert card.badge.text() == "Quarantined"
    assert card.buttons["release"].text() == "Release for review…"
    assert "approve" not in card.buttons and "enable" not in card.buttons
    assert "disable" not in card.buttons

    with qtbot.waitSignal(page.queue.finished, timeout=LONG) as job:  # released, then validated
        card.trigger("release")
    assert job.args[1]["ok"] and job.args[1]["result"]["validation"]["ok"], job.args[1]
    card = card_in_state(qtbot, page, "awaiting_approval")
    assert "release" not in card.buttons and "approve" in card.buttons

    dialog = open_dialog(qtbot, page, "approve")
    assert dialog.quarantine_view is not None
    reasons = dialog.quarantine_view.text()
    assert "ConnectionError: the PC is offline" in reasons and "failed 3 times in a row" in reasons
    assert dialog.approve_button.isEnabled()
    dialog.approve_button.click()
    card_in_state(qtbot, page, "enabled")
    # The card may show the new state before the approval's restart of the process has finished.
    qtbot.waitUntil(lambda: service.supervisor.status()[NAME].state == "running", timeout=LONG)
    result = run(qtbot, service.call_tool("quote-of-the-day.today"))
    assert result.ok, result
