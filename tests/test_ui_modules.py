"""The Modules page: the gallery, installing in the background, the approval dialog and secrets."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nexus_desktop.db.store import Store
from nexus_desktop.modules.runtime.supervisor import credential_key
from nexus_desktop.modules.service import REPO_PLUGINS_DIR, ModuleService
from nexus_desktop.secrets import SecretStore
from tests.conftest_keyring import read_secret_service_value
from tests.ui_support import LONG, qt_loop, run  # noqa: F401  (qt_loop is a fixture)

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "quote-of-the-day"
NAME = "quote-of-the-day"
PERMISSIONS = '\n[permissions]\nnetwork = ["quotes.example.org"]\n'


def example_copy(folder: Path, *, extra_manifest: str = "", failing_test: bool = False) -> Path:
    target = folder / NAME
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    manifest = target / "nexus-module.toml"
    manifest.write_text(manifest.read_text() + extra_manifest)
    if failing_test:
        tests = target / "tests" / "test_quotes.py"
        tests.write_text(tests.read_text() + "\n\ndef test_broken() -> None:\n    assert False\n")
    return target


def make_service(tmp_path: Path, *, bundled: bool, secrets: SecretStore | None = None) -> ModuleService:
    store = Store(tmp_path / "nexus.db")
    return ModuleService(
        store.engine,
        secrets or SecretStore(f"nexus-test-{uuid.uuid4().hex[:8]}", timeout=5),
        bundled_dir=REPO_PLUGINS_DIR if bundled else tmp_path / "no-bundled",
        user_dir=tmp_path / "user",
        environ={},
        start_modules=not bundled,  # the four bundled modules' processes are not what is tested here
        validation_timeout=120,
    )


@pytest.fixture
def page_for(qtbot: Any, qt_loop: asyncio.AbstractEventLoop, tmp_path: Path) -> Iterator[Any]:  # noqa: F811
    from nexus_desktop.ui.modules_page import ModulesPage

    made: list[tuple[Any, ModuleService]] = []

    def make(*, bundled: bool = False, secrets: SecretStore | None = None) -> Any:
        service = make_service(tmp_path, bundled=bundled, secrets=secrets)
        run(qtbot, service.start())
        page = ModulesPage()
        page.resize(1180, 760)
        page.show()
        with qtbot.waitSignal(page.refreshed, timeout=LONG):
            page.bind(service)
        made.append((page, service))
        return page

    yield make
    for page, service in made:
        page.queue.cancel_all()
        page.queue.wait_idle()
        run(qtbot, service.aclose())
        page.close()
        page.deleteLater()


def wait_job(qtbot: Any, page: Any) -> dict[str, Any]:
    with qtbot.waitSignal(page.queue.finished, timeout=LONG) as blocker:
        pass
    outcome = blocker.args[1]
    qtbot.waitUntil(lambda: NAME in page.cards, timeout=LONG)
    return outcome


def card_in_state(qtbot: Any, page: Any, state: str) -> Any:
    qtbot.waitUntil(lambda: NAME in page.views and page.views[NAME].state == state, timeout=LONG)
    return page.cards[NAME]


def open_dialog(qtbot: Any, page: Any, action: str) -> Any:
    with qtbot.waitSignal(page.dialog_opened, timeout=LONG) as blocker:
        page.cards[NAME].trigger(action)
    return blocker.args[0]


def test_the_gallery_shows_the_bundled_modules_with_their_badges(qtbot: Any, page_for: Any) -> None:
    page = page_for(bundled=True)
    assert {"dice", "notes", "system-monitor", "weather"} <= set(page.cards)
    weather = page.cards["weather"]
    assert weather.badge.text() == "On"
    assert "Connect to api.openweathermap.org" in weather.access_label.text()
    assert "Nothing beyond its own folder" in page.cards["dice"].access_label.text()
    assert "approve" not in weather.buttons and "disable" in weather.buttons


def test_installing_from_a_folder_shows_a_card_awaiting_approval_and_approving_runs_it(
    qtbot: Any, page_for: Any, tmp_path: Path
) -> None:
    page = page_for()
    source = example_copy(tmp_path / "src", extra_manifest=PERMISSIONS)
    page.install(source)
    assert page.job_strip.isVisible()
    outcome = wait_job(qtbot, page)
    assert outcome["ok"] and outcome["result"]["validation"]["ok"], outcome
    card = card_in_state(qtbot, page, "awaiting_approval")
    assert card.badge.text() == "Needs approval"
    assert card.footer.text().endswith("checks passed in " + card.footer.text().rsplit("in ", 1)[-1])

    dialog = open_dialog(qtbot, page, "approve")
    assert dialog.access_lines == ["Connect to quotes.example.org (web ports 80 and 443)"]
    assert dialog.approve_button.isEnabled()
    assert dialog.request.content_hash in [w.text() for w in dialog.findChildren(type(card.badge))]
    dialog.approve_button.click()

    card = card_in_state(qtbot, page, "enabled")
    assert card.badge.text() == "On"
    result = run(qtbot, page.service.call_tool("quote-of-the-day.today"))
    assert result.ok and "(" in result.content, result


def test_a_module_that_failed_validation_cannot_be_approved(
    qtbot: Any, page_for: Any, tmp_path: Path
) -> None:
    from nexus_desktop.ui.approval_dialog import ApprovalDialog

    page = page_for()
    page.install(example_copy(tmp_path / "src", failing_test=True))
    outcome = wait_job(qtbot, page)
    assert outcome["ok"] and not outcome["result"]["validation"]["ok"]
    card = card_in_state(qtbot, page, "failed")
    assert card.badge.text() == "Failed" and "approve" not in card.buttons
    assert "Validation failed" in card.footer.text() or "validation failed" in card.footer.text()

    request = run(qtbot, page.service.review(NAME))
    report = run(qtbot, page.service.report(NAME))
    dialog = ApprovalDialog(request, report)
    qtbot.addWidget(dialog)
    assert not dialog.approve_button.isEnabled()
    assert dialog.refusal is not None and "validation failed" in dialog.refusal


def test_a_running_install_can_be_cancelled(qtbot: Any, page_for: Any, tmp_path: Path) -> None:
    page = page_for()
    page.install(example_copy(tmp_path / "src"))
    with qtbot.waitSignal(page.queue.finished, timeout=LONG) as blocker:
        page.cancel_button.click()
    assert blocker.args[1]["cancelled"]
    qtbot.waitUntil(lambda: not page.job_strip.isVisible(), timeout=LONG)


@pytest.mark.keyring
def test_the_secret_dialog_stores_the_key_in_the_keyring(
    qtbot: Any, page_for: Any, secret_service_keyring: Any, keyring_service_name: str
) -> None:
    page = page_for(bundled=True, secrets=SecretStore(keyring_service_name, timeout=10))
    with qtbot.waitSignal(page.dialog_opened, timeout=LONG) as blocker:
        page.cards["weather"].trigger("credentials")
    dialog = blocker.args[0]
    assert dialog.windowTitle() == "Weather: api_key"
    dialog.input.setText("owm-key-1234567890")
    with qtbot.waitSignal(dialog.accepted, timeout=LONG):
        dialog.save_button.click()
    assert dialog.saved_session_only is False and dialog.input.text() == ""
    stored = read_secret_service_value(keyring_service_name, credential_key("weather", "api_key"))
    assert stored == "owm-key-1234567890"


def test_without_a_keyring_the_secret_can_be_kept_for_this_session_only(
    qtbot: Any, page_for: Any, no_keyring: Any
) -> None:
    secrets = SecretStore(f"nexus-test-{uuid.uuid4().hex[:8]}", timeout=5)
    page = page_for(bundled=True, secrets=secrets)
    with qtbot.waitSignal(page.dialog_opened, timeout=LONG) as blocker:
        page.cards["weather"].trigger("credentials")
    dialog = blocker.args[0]
    dialog.input.setText("owm-session-key")
    dialog.save_button.click()
    qtbot.waitUntil(lambda: bool(dialog.banners.banners()), timeout=LONG)
    banner = dialog.banners.banners()[0]
    assert banner.action_button is not None and banner.action_button.text() == "Keep for this session only"
    with qtbot.waitSignal(dialog.accepted, timeout=LONG):
        banner.action_button.click()
    assert dialog.saved_session_only is True
    assert secrets.is_session_only(credential_key("weather", "api_key"))
