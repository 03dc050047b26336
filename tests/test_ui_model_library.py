"""The Models page: My models with real metadata, "Use this model", deleting, and Discover and
Downloads against a fake Hugging Face hub on loopback (tests/hub_server.py)."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt

from tests.hub_server import FakeHub, running_hub, tiny_gguf
from tests.ui_support import (  # noqa: F401  (fixtures)
    LONG,
    core,
    data_dir,
    needs_model,
    qt_loop,
    run,
    window,
)

REPO = "tester/Tiny-Chat-GGUF"
TINY = "tiny-chat.Q8_0.gguf"


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    with running_hub() as fake:
        monkeypatch.setenv("HF_ENDPOINT", fake.url)
        yield fake


def make_page(qtbot: Any, core: Any, apply_settings: Any = None) -> Any:  # noqa: F811
    from nexus_desktop.ui.model_library import ModelLibraryPage

    page = ModelLibraryPage()
    qtbot.addWidget(page)
    page.resize(1000, 700)
    page.bind(core, apply_settings or (lambda settings: None))
    with qtbot.waitSignal(page.refreshed, timeout=LONG):
        page.show()
    qtbot.waitUntil(lambda: page.queue is not None, timeout=LONG)
    wait_drawn(qtbot, page.mine.cards.values())
    return page


def close_page(page: Any) -> None:
    page.close_downloads()
    page.close()


def models_dir(core: Any) -> Path:  # noqa: F811
    return core.settings.models_folder()


def card_for(page: Any, name: str) -> Any:
    return next(card for path, card in page.mine.cards.items() if path.name == name)


def wait_drawn(qtbot: Any, widgets: Any) -> None:
    """Widgets added to a shown page appear on the next turn of the event loop."""
    qtbot.waitUntil(lambda: all(widget.isVisible() for widget in widgets), timeout=LONG)


# My models ----------------------------------------------------------------------------------------


@needs_model
def test_my_models_lists_the_bundled_model_with_its_real_metadata(qtbot: Any, core: Any) -> None:  # noqa: F811
    from nexus_desktop.llm.catalog import default_model_path

    broken = models_dir(core) / "half-written.gguf"
    broken.write_bytes(b"<!DOCTYPE html><html>rate limited</html>")
    page = make_page(qtbot, core)
    bundled = page.mine.cards[default_model_path()]
    facts = bundled.facts.text()
    for fact in ("135M params", "Q4_1", "98 MB", "8,192 ctx", "30 layers", "ChatML chat template"):
        assert fact in facts, facts
    assert "licence apache-2.0" in facts
    assert bundled.delete_button.isHidden()  # the bundled model can never be deleted
    assert bundled.use_button.accessibleName() and bundled.folder_button.toolTip()
    # An unusable file is listed with its one-line reason, and cannot be chosen.
    unusable = card_for(page, "half-written.gguf")
    assert "is a web page, not a model" in unusable.facts.text()
    assert not unusable.use_button.isEnabled()
    close_page(page)


@needs_model
def test_use_this_model_saves_the_setting_and_marks_it_in_use(qtbot: Any, window: Any, core: Any) -> None:  # noqa: F811
    from nexus_desktop.llm.catalog import default_model_path

    bundled = default_model_path()
    assert bundled is not None
    copy = models_dir(core) / "my-copy.gguf"
    try:
        os.link(bundled, copy)  # the real model under another name, without 98 MB of copying
    except OSError:
        shutil.copyfile(bundled, copy)
    page = make_page(qtbot, core, window.apply_settings)
    assert page.mine.cards[bundled].property("inUse") == "true"  # the default setting: bundled
    qtbot.mouseClick(card_for(page, "my-copy.gguf").use_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: core.store.load_settings().model_path == str(copy), timeout=LONG)
    qtbot.waitUntil(lambda: card_for(page, "my-copy.gguf").property("inUse") == "true", timeout=LONG)
    wait_drawn(qtbot, page.mine.cards.values())
    assert core.store.load_settings().source == "local"
    chosen = card_for(page, "my-copy.gguf")
    assert not chosen.use_button.isEnabled() and not chosen.delete_button.isEnabled()  # in use: kept
    # The model picker follows, as after the settings dialog.
    picker = window.top_bar.model_picker
    qtbot.waitUntil(lambda: picker.currentData() == ("local", str(copy)), timeout=LONG)

    # Back to the bundled model: named by an empty setting, as the picker names it.
    qtbot.mouseClick(page.mine.cards[bundled].use_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: core.store.load_settings().model_path == "", timeout=LONG)
    close_page(page)


def test_delete_asks_first_then_removes_the_file(qtbot: Any, core: Any) -> None:  # noqa: F811
    folder = models_dir(core) / "tester__Tiny-Chat-GGUF"
    folder.mkdir(parents=True)
    kept, doomed = folder / "keep-me.Q8_0.gguf", folder / TINY
    kept.write_bytes(tiny_gguf(name="Keep"))
    doomed.write_bytes(tiny_gguf(name="Doomed", seed=2))
    page = make_page(qtbot, core)
    card = card_for(page, TINY)
    assert "licence mit" in card.facts.text() and "4 layers" in card.facts.text()

    qtbot.mouseClick(card.delete_button, Qt.MouseButton.LeftButton)
    assert card.confirm.isVisible() and doomed.exists()  # asked, nothing deleted yet
    qtbot.mouseClick(card.keep_button, Qt.MouseButton.LeftButton)
    assert not card.confirm.isVisible() and doomed.exists()

    qtbot.mouseClick(card.delete_button, Qt.MouseButton.LeftButton)
    with qtbot.waitSignal(page.refreshed, timeout=LONG):
        qtbot.mouseClick(card.confirm_button, Qt.MouseButton.LeftButton)
    assert not doomed.exists() and kept.exists()  # only the chosen file went
    names = {path.name for path in page.mine.cards}
    assert TINY not in names and "keep-me.Q8_0.gguf" in names
    close_page(page)


# Discover and downloads ------------------------------------------------------------------------


def test_search_shows_repos_and_each_file_with_quantisation_size_and_fit(
    qtbot: Any,
    core: Any,  # noqa: F811
    hub: FakeHub,
) -> None:
    from nexus_desktop.llm.vram_fit import fit_by_size

    data = tiny_gguf()
    hub.add_repo(REPO, {TINY: data, "tiny-chat.F16.gguf": tiny_gguf(file_type=1), "README.md": b"hi"})
    hub.add_repo("tester/Notes", {"README.md": b"no models here"})
    page = make_page(qtbot, core)
    page.show_tab("discover")
    discover = page.discover
    discover.search_field.setText("tiny")
    with qtbot.waitSignal(discover.results_shown, timeout=LONG):
        qtbot.keyClick(discover.search_field, Qt.Key.Key_Return)  # Enter searches
    assert discover.repo_list.count() == 1
    assert discover.repo_list.item(0).text().startswith(REPO)
    assert any(line.startswith("GET /api/models?") for line in hub.requests)

    with qtbot.waitSignal(discover.repo_shown, timeout=LONG):
        discover.repo_list.setCurrentRow(0)
    assert sorted(row.model.name for row in discover.rows) == ["tiny-chat.F16.gguf", TINY]
    wait_drawn(qtbot, discover.rows)
    row = discover.row(TINY)
    assert row.facts.text() == f"Q8_0 · {len(data) // 1000} KB"
    assert row.fit.text() == fit_by_size(len(data))
    assert row.download_button.isEnabled()

    # A pasted repo without GGUF files says so in one line; nothing is listed from it.
    discover.paste_field.setText("https://huggingface.co/tester/Notes")
    qtbot.keyClick(discover.paste_field, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: "has no GGUF model files" in discover.status.text(), timeout=LONG)
    close_page(page)


class HoldFirstProgress:
    """Holds the download's thread at its first progress report until released, so a test can
    see the row mid-way and press Pause while the download is really running."""

    def __init__(self) -> None:
        self.reached = threading.Event()
        self.release = threading.Event()

    def __call__(self, job: Any) -> None:
        if job.status == "downloading" and job.progress.done > 0 and not self.reached.is_set():
            self.reached.set()
            self.release.wait(60)


def download_from_discover(qtbot: Any, page: Any, name: str) -> None:
    discover = page.discover
    page.show_tab("discover")
    with qtbot.waitSignal(discover.repo_shown, timeout=LONG):
        discover.open_repo(REPO)
    wait_drawn(qtbot, discover.rows)
    qtbot.mouseClick(discover.row(name).download_button, Qt.MouseButton.LeftButton)
    assert not discover.row(name).download_button.isEnabled()  # no second download of it


def test_download_shows_progress_pauses_resumes_and_lands_in_my_models(
    qtbot: Any,
    core: Any,  # noqa: F811
    hub: FakeHub,
) -> None:
    from nexus_desktop.ui.ops import wait_for_running_ops

    data = tiny_gguf(payload_bytes=3 * 1024 * 1024, name="Tiny Chat")
    hub.add_repo(REPO, {TINY: data})
    page = make_page(qtbot, core)
    hold = HoldFirstProgress()
    assert page.queue is not None
    page.queue.changes.subscribe(hold)  # after the page's own listener: the row hears first
    download_from_discover(qtbot, page, TINY)
    key = f"{REPO}/{TINY}"
    qtbot.waitUntil(lambda: key in page.downloads.rows and hold.reached.is_set(), timeout=LONG)
    row = page.downloads.rows[key]
    page.show_tab("downloads")
    wait_drawn(qtbot, [row])
    qtbot.waitUntil(lambda: 0 < row.bar.value() < 1000, timeout=LONG)
    assert f"of {len(data) / 1e6:.0f} MB" in row.status.text() and "/s" in row.status.text()
    assert row.pause_button.isVisible() and row.cancel_button.isVisible()
    assert page.tabs.tabText(2) == "Downloads (1)"

    qtbot.mouseClick(row.pause_button, Qt.MouseButton.LeftButton)
    run(qtbot, wait_for_running_ops())  # the pause is asked for (off the Qt thread)
    hold.release.set()  # the download goes on to its next chunk, and stops there
    qtbot.waitUntil(lambda: row.job.status == "paused", timeout=LONG)
    assert row.resume_button.isVisible() and row.resume_button.text() == "Resume"
    assert "Paused" in row.status.text()
    final = models_dir(core) / "tester__Tiny-Chat-GGUF" / TINY
    assert not final.exists() and final.with_name(TINY + ".part").exists()  # kept for Resume

    signals = [page.refreshed, page.models_changed]  # My models reads it; the picker is told
    with qtbot.waitSignals(signals, timeout=LONG):
        qtbot.mouseClick(row.resume_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: row.job.status == "done", timeout=LONG)
    assert final.read_bytes() == data
    assert hub.ranges[-1].startswith("bytes=") and hub.ranges[-1] != "bytes=0-"  # it continued
    assert row.bar.value() == 1000 and "in My models" in row.status.text()
    card = page.mine.cards[final]
    assert card.title.text() == "Tiny Chat" and "Q8_0" in card.facts.text()
    assert page.tabs.tabText(2) == "Downloads"
    close_page(page)


def test_a_dropped_download_says_why_offers_retry_and_survives_a_restart(
    qtbot: Any,
    core: Any,  # noqa: F811
    hub: FakeHub,
) -> None:
    data = tiny_gguf(payload_bytes=3 * 1024 * 1024)
    hub.add_repo(REPO, {TINY: data})
    hub.drop_after = 1_500_000  # the connection ends after 1.5 MB (1 MB of it is written)
    page = make_page(qtbot, core)
    download_from_discover(qtbot, page, TINY)
    key = f"{REPO}/{TINY}"
    qtbot.waitUntil(lambda: key in page.downloads.rows, timeout=LONG)
    row = page.downloads.rows[key]
    page.show_tab("downloads")
    qtbot.waitUntil(lambda: row.job.status == "failed", timeout=LONG)
    wait_drawn(qtbot, [row.resume_button])
    assert "connection" in row.status.text() and "resume" in row.status.text()
    assert row.resume_button.isVisible() and row.resume_button.text() == "Retry"
    assert row.property("state") == "failed" and 0 < row.bar.value() < 1000
    close_page(page)

    # A restart: a new page (and queue) lists the unfinished download, paused, with Resume.
    again = make_page(qtbot, core)
    qtbot.waitUntil(lambda: key in again.downloads.rows, timeout=LONG)
    row = again.downloads.rows[key]
    again.show_tab("downloads")
    wait_drawn(qtbot, [row.resume_button])
    assert row.job.status == "paused" and row.resume_button.text() == "Resume"
    assert 0 < row.bar.value() < 1000 and "Paused" in row.status.text()
    qtbot.mouseClick(row.resume_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: row.job.status == "done", timeout=LONG)
    final = models_dir(core) / "tester__Tiny-Chat-GGUF" / TINY
    assert final.read_bytes() == data
    qtbot.waitUntil(lambda: final in again.mine.cards, timeout=LONG)
    close_page(again)


def test_a_file_whose_sha256_does_not_match_is_deleted_and_retry_fetches_it_again(
    qtbot: Any,
    core: Any,  # noqa: F811
    hub: FakeHub,
) -> None:
    data = tiny_gguf()
    hub.add_repo(REPO, {TINY: data})
    hub.lie_sha = {TINY}  # the hub lists a SHA-256 these bytes do not have
    page = make_page(qtbot, core)
    download_from_discover(qtbot, page, TINY)
    key = f"{REPO}/{TINY}"
    rows = page.downloads.rows
    qtbot.waitUntil(lambda: key in rows and rows[key].job.status == "failed", timeout=LONG)
    row = rows[key]
    page.show_tab("downloads")
    wait_drawn(qtbot, [row.resume_button])
    assert "did not match the SHA-256" in row.status.text() and row.resume_button.text() == "Retry"
    final = models_dir(core) / "tester__Tiny-Chat-GGUF" / TINY
    assert not final.exists() and not final.with_name(TINY + ".part").exists()  # nothing bad kept
    assert final not in page.mine.cards

    fetched = len(hub.ranges)
    qtbot.mouseClick(row.resume_button, Qt.MouseButton.LeftButton)  # Retry fetches it again
    qtbot.waitUntil(lambda: len(hub.ranges) > fetched and row.job.status == "failed", timeout=LONG)
    assert "did not match the SHA-256" in row.status.text() and not final.exists()

    # Fixed on the hub: a fresh listing in Discover offers Download again, and it lands.
    hub.lie_sha = set()
    page.show_tab("discover")
    with qtbot.waitSignal(page.discover.repo_shown, timeout=LONG):
        page.discover.open_repo(REPO)
    wait_drawn(qtbot, page.discover.rows)
    button = page.discover.row(TINY).download_button
    assert button.isEnabled()
    with qtbot.waitSignal(page.refreshed, timeout=LONG):
        qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: row.job.status == "done", timeout=LONG)
    assert final.read_bytes() == data and final in page.mine.cards
    close_page(page)


def test_downloads_go_to_the_models_folder_chosen_in_settings(
    qtbot: Any,
    core: Any,  # noqa: F811
    hub: FakeHub,
    tmp_path: Path,
) -> None:
    data = tiny_gguf()
    hub.add_repo(REPO, {TINY: data})
    page = make_page(qtbot, core)
    first_queue = page.queue
    chosen = tmp_path / "my models"
    chosen.mkdir()
    core.settings = core.settings.model_copy(update={"models_dir": str(chosen)})  # Settings → Model
    page.hide()
    page.show()  # the next visit opens the downloads of the new folder
    qtbot.waitUntil(lambda: page.queue is not first_queue and page.queue is not None, timeout=LONG)
    assert page.queue.models_dir == chosen
    download_from_discover(qtbot, page, TINY)
    final = chosen / "tester__Tiny-Chat-GGUF" / TINY
    qtbot.waitUntil(lambda: final in page.mine.cards, timeout=LONG)
    assert final.read_bytes() == data
    close_page(page)


def test_fit_verdicts_get_their_colour() -> None:
    from nexus_desktop.ui.model_library_discover import fit_tone

    assert fit_tone("fits on GPU") == "good"
    assert fit_tone("partly on GPU") == fit_tone("CPU only") == "partial"
    assert fit_tone("too large for this PC") == "bad"


def test_cancel_deletes_what_was_downloaded_and_removes_the_row(
    qtbot: Any,
    core: Any,  # noqa: F811
    hub: FakeHub,
) -> None:
    hub.add_repo(REPO, {TINY: tiny_gguf(payload_bytes=2 * 1024 * 1024)})
    hub.drop_after = 500_000
    page = make_page(qtbot, core)
    download_from_discover(qtbot, page, TINY)
    key = f"{REPO}/{TINY}"
    rows = page.downloads.rows
    qtbot.waitUntil(lambda: key in rows and rows[key].job.status == "failed", timeout=LONG)
    page.show_tab("downloads")
    wait_drawn(qtbot, [rows[key].cancel_button])
    part = models_dir(core) / "tester__Tiny-Chat-GGUF" / (TINY + ".part")
    assert part.exists()
    qtbot.mouseClick(rows[key].cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: key not in rows, timeout=LONG)
    assert not part.exists()
    assert page.downloads.empty.isVisible() and page.tabs.tabText(2) == "Downloads"
    # Discover offers Download again.
    with qtbot.waitSignal(page.discover.repo_shown, timeout=LONG):
        page.discover.open_repo(REPO)
    assert page.discover.row(TINY).download_button.isEnabled()
    close_page(page)


def test_the_page_fits_an_800x500_window(qtbot: Any, window: Any, core: Any) -> None:  # noqa: F811
    from nexus_desktop.ui.model_library import ModelLibraryPage

    def fits() -> bool:
        hint = window.centralWidget().minimumSizeHint()
        return hint.width() <= 800 and hint.height() <= 500

    page = ModelLibraryPage()
    page.bind(core, window.apply_settings)
    window.add_page("models", "Models", "chip", page)
    window.resize(800, 500)
    qtbot.waitUntil(fits, timeout=LONG)  # the chat screen first turns compact, as it does alone
    window.show_page("models")
    qtbot.waitUntil(lambda: page.queue is not None and bool(page.mine.cards), timeout=LONG)
    wait_drawn(qtbot, page.mine.cards.values())
    for tab in ("mine", "discover", "downloads"):
        page.show_tab(tab)
        assert fits(), tab
    for card in page.mine.cards.values():  # every button inside its card, none cut off
        for button in (card.use_button, card.folder_button):
            corner = button.mapTo(card, button.rect().bottomRight())
            assert card.rect().contains(corner), (card.path.name, corner)
    page.close_downloads()
