"""Every screen from 800x500 up with nothing cut off or overlapping, and the small slips of issue 12
(call counts, the filtered character count, stale notices, the remote server's tab name)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtWidgets import QHBoxLayout, QPushButton, QWidget

from tests.test_ui_modules import (  # noqa: F401  (page_for is a fixture)
    NAME,
    PERMISSIONS,
    card_in_state,
    example_copy,
    open_dialog,
    page_for,
    wait_job,
)
from tests.ui_support import LONG, run
from tests.ui_support import banner_texts as texts


def overlaps(parent: QWidget) -> list[tuple[str, str]]:
    """Pairs of visible child controls of ``parent`` drawn over each other, or sticking out of it."""
    children = [
        w
        for w in parent.findChildren(QWidget, options=Qt.FindChildOption.FindDirectChildrenOnly)
        if w.isVisible()
    ]
    found = []
    bounds = parent.rect()
    for index, first in enumerate(children):
        if not bounds.contains(first.geometry()):
            found.append((type(first).__name__, "outside"))
        for second in children[index + 1 :]:
            if first.geometry().intersects(second.geometry()):
                found.append((type(first).__name__, type(second).__name__))
    return found


def resize(qtbot: Any, window: Any, width: int, height: int) -> None:
    window.resize(width, height)
    qtbot.waitUntil(lambda: window.size() == QSize(width, height), timeout=LONG)
    for _ in range(3):  # the top bar settles after its own resize (compact or not)
        qtbot.wait(20)


def test_the_overlap_check_catches_controls_squeezed_into_too_little_room(qtbot: Any, qt_loop: Any) -> None:
    holder = QWidget()
    qtbot.addWidget(holder)
    bar = QWidget(holder)  # a bar inside a window, as the top bar is: its width is what it is given
    row = QHBoxLayout(bar)
    for text in ("One", "Two", "Three"):
        button = QPushButton(text)
        button.setMinimumWidth(150)
        row.addWidget(button)
    holder.resize(700, 60)
    bar.setGeometry(0, 0, 600, 40)
    holder.show()
    qtbot.waitExposed(holder)
    assert overlaps(bar) == []
    bar.setGeometry(0, 0, 300, 40)  # less than the three need
    qtbot.waitUntil(lambda: bool(overlaps(bar)), timeout=LONG)


def test_the_window_goes_down_to_800x500_with_the_top_bar_controls_side_by_side(
    qtbot: Any, window: Any
) -> None:
    top_bar = window.top_bar
    assert window.minimumSize() == QSize(800, 500)
    resize(qtbot, window, 1280, 800)  # roomy: everything spelled out, nothing overlaps
    assert overlaps(top_bar) == [] and top_bar.new_chat_button.text() == "New chat"
    assert top_bar.avatar.isVisible()
    for width, height in ((860, 560), (800, 500)):
        resize(qtbot, window, width, height)
        assert overlaps(top_bar) == [], (width, overlaps(top_bar))
        # New chat keeps its icon, its name for screen readers and its tooltip.
        assert top_bar.new_chat_button.text() == "" and top_bar.new_chat_button.accessibleName() == "New chat"
        picker = top_bar.model_picker
        assert picker.geometry().right() < top_bar.settings_button.geometry().left()
    assert window.centralWidget().minimumSizeHint().width() <= 800


def test_the_message_box_hint_always_fits_the_box(qtbot: Any, window: Any) -> None:
    from nexus_desktop.ui.composer import PLACEHOLDERS

    box = window.chat_view.composer.input

    def hint_width(text: str) -> int:
        return box.fontMetrics().horizontalAdvance(text)

    def room() -> int:
        return box.viewport().width() - int(2 * box.document().documentMargin())

    resize(qtbot, window, 1280, 800)  # the positive control: the whole hint, and it fits
    assert box.placeholderText() == PLACEHOLDERS[0] and hint_width(PLACEHOLDERS[0]) <= room()
    resize(qtbot, window, 800, 500)
    assert hint_width(PLACEHOLDERS[0]) > room()  # the full hint would be clipped here…
    assert hint_width(box.placeholderText()) <= room()  # …so a shorter one shows, whole
    assert box.placeholderText().startswith("Message…")


def test_a_long_reply_shows_its_last_line_and_send_keeps_its_name_in_an_800x500_window(
    qtbot: Any, window: Any, core: Any
) -> None:
    from PySide6.QtWidgets import QLabel

    chat = window.chat_view
    reply = (
        "*pulls up the star chart* Course plotted: three hops, about forty minutes in total. I've routed "
        "us around the debris field near Tycho — fewer pretty views, far fewer dents. Last line here."
    )
    stats = {
        "completion_tokens": 52,
        "prompt_tokens": 611,
        "tokens_per_second": 38.4,
        "finish_reason": "stop",
    }
    message = run(qtbot, core.db.call(core.store.add_message, chat.chat_id, "assistant", reply, stats))
    # Stats, swipe arrows and buttons make the row under the bubble wider than the bubble itself.
    run(qtbot, core.db.call(core.store.add_swipe, message.id, reply, stats))
    send = chat.composer.send_button
    # At 800x500 Send may be icon-only (it keeps its name for screen readers); wide, it has its caption.
    for width, height, captions in ((800, 500, ("", "Send")), (1280, 800, ("Send",))):
        resize(qtbot, window, width, height)
        run(qtbot, chat.open_character(chat.character))  # the chat opens in a window of this size
        label = chat.widgets[-1].text_label
        # As tall as QLabel itself says its text needs at the width it has: no line cut off.
        qtbot.waitUntil(lambda lb=label: lb.height() >= QLabel.heightForWidth(lb, lb.width()), timeout=LONG)
        assert send.text() in captions and send.accessibleName() == "Send"


def test_every_page_and_dialog_fits_an_800x500_window(qtbot: Any, window: Any, core: Any) -> None:
    from nexus_desktop.ui.character_editor import CharacterEditor
    from nexus_desktop.ui.dashboards.page import DashboardsPage
    from nexus_desktop.ui.modules_page import ModulesPage
    from nexus_desktop.ui.shortcuts_dialog import ShortcutsDialog
    from nexus_desktop.ui.training_page import TrainingPage

    for key, page in (
        ("modules", ModulesPage()),
        ("training", TrainingPage()),
        ("dashboards", DashboardsPage()),
    ):
        window.add_page(key, key.title(), "grid", page)
    resize(qtbot, window, 800, 500)
    for key in ("chat", "modules", "training", "dashboards"):
        window.show_page(key)
        hint = window.centralWidget().minimumSizeHint()
        assert hint.width() <= 800 and hint.height() <= 500, (key, hint)

    editor = CharacterEditor(window, window.character(window.sidebar.current_id()))
    qtbot.addWidget(editor)
    dialogs = [editor, ShortcutsDialog(window), window.open_settings()]
    for dialog in dialogs:
        hint = dialog.minimumSizeHint()
        assert hint.width() <= 800 and hint.height() <= 500, (type(dialog).__name__, hint)
        screen = dialog.screen().availableGeometry()
        assert dialog.width() <= screen.width() and dialog.height() <= screen.height()


# The small slips ----------------------------------------------------------------------------------


def test_the_character_count_says_how_many_match_the_search(qtbot: Any, window: Any) -> None:
    sidebar = window.sidebar
    total = sidebar.list.count()
    assert total >= 3 and sidebar.count_label.text() == str(total)
    sidebar.search.setText("vega")
    assert sidebar.count_label.text() == f"1 of {total}"
    sidebar.search.setText("no such character")
    assert sidebar.count_label.text() == f"0 of {total}"
    sidebar.search.clear()
    assert sidebar.count_label.text() == str(total)


def test_the_name_error_goes_once_a_name_is_typed(qtbot: Any, qt_loop: Any) -> None:
    from nexus_desktop.ui.character_editor import NAME_REQUIRED, CharacterEditor

    editor = CharacterEditor(None)
    qtbot.addWidget(editor)
    editor.save()
    assert texts(editor.banners, "error") == [NAME_REQUIRED]
    qtbot.keyClicks(editor.name_edit, " ")  # still no name: the error stays
    assert texts(editor.banners, "error") == [NAME_REQUIRED]
    qtbot.keyClicks(editor.name_edit, "Orin")
    assert texts(editor.banners, "error") == []


def test_a_remote_server_error_names_the_settings_tab_as_it_is_called(qtbot: Any, window: Any) -> None:
    from nexus_desktop.llm.contract import RemoteServerError
    from nexus_desktop.llm.openai_compat import OpenAICompatSource

    async def fetch() -> str:
        source = OpenAICompatSource("http://127.0.0.1:9/v1", "", api_key=None)
        try:
            await source.list_models()
        except RemoteServerError as error:
            return str(error)
        finally:
            await source.aclose()
        return ""

    message = run(qtbot, fetch())
    assert "Settings → " in message, message
    named = message.split("Settings → ", 1)[1].rstrip(".")
    dialog = window.open_settings()
    tabs = [dialog.tabs.tabText(index) for index in range(dialog.tabs.count())]
    assert named in tabs, (named, tabs)
    dialog.reject()


def test_approving_a_module_clears_its_notice_and_its_card_counts_calls_as_they_happen(
    qtbot: Any,
    page_for: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    from nexus_desktop.ui.module_card import calls_text

    assert [calls_text(n) for n in (0, 1, 2)] == ["0 calls", "1 call", "2 calls"]
    page = page_for()
    page.install(example_copy(tmp_path / "src", extra_manifest=PERMISSIONS))
    wait_job(qtbot, page)
    card_in_state(qtbot, page, "awaiting_approval")
    prompt = [t for t in texts(page.banners) if "approve it to turn it on" in t]
    assert prompt, texts(page.banners)
    qtbot.wait(200)  # a refresh without a state change leaves the notice in place
    assert prompt[0] in texts(page.banners)

    dialog = open_dialog(qtbot, page, "approve")
    dialog.approve_button.click()
    card_in_state(qtbot, page, "enabled")
    qtbot.waitUntil(
        lambda: not any("approve it to turn it on" in t for t in texts(page.banners)), timeout=LONG
    )

    for calls in (1, 2):
        result = run(qtbot, page.service.call_tool("quote-of-the-day.today"))
        assert result.ok, result
        qtbot.waitUntil(
            lambda c=calls: f"Running · {calls_text(c)} ·" in page.cards[NAME].footer.text(), timeout=LONG
        )


def test_module_notices_sit_above_the_cards_and_never_cover_one(qtbot: Any, page_for: Any) -> None:  # noqa: F811
    page = page_for(bundled=True)
    page.resize(740, 470)  # the page in an 800x500 window
    for number in range(4):
        page._banner("info", f"Notice {number}: something about the modules worth a line or two.")
    qtbot.wait(50)
    content = page.scroll_area.widget()

    def place(widget: QWidget) -> QRect:
        return QRect(widget.mapTo(content, widget.rect().topLeft()), widget.size())

    notices = [place(banner) for banner in page.banners.banners()]
    cards = [place(card) for card in page.cards.values()]
    assert len(notices) == 4 and cards
    assert all(not n.intersects(c) for n in notices for c in cards)
    assert max(n.bottom() for n in notices) < min(c.top() for c in cards)


def test_at_150_percent_text_in_800x500_nothing_runs_past_the_edges(
    qtbot: Any, window: Any, core: Any
) -> None:
    from nexus_desktop.ui.theme import set_appearance

    chat = window.chat_view
    stats = {"tokens_per_second": 38.4, "context_used": 663, "context_size": 4096, "model": "SmolLM2"}
    reply = run(qtbot, core.db.call(core.store.add_message, chat.chat_id, "assistant", "Course set.", stats))
    run(qtbot, core.db.call(core.store.add_swipe, reply.id, "Course plotted.", stats))
    sidebar = window.sidebar
    buttons = [sidebar.new_button, sidebar.import_button, sidebar.export_button, sidebar.delete_button]

    def text_fits(button: Any) -> bool:
        room = button.width() - button.iconSize().width() - 16
        return button.fontMetrics().horizontalAdvance(button.text()) <= room

    def chat_fits() -> bool:  # the message column is no wider than what the window shows of it
        return chat.scroll_area.widget().width() <= chat.scroll_area.viewport().width()

    try:
        for scale, captions in ((100, True), (150, False)):  # positive control: captions at 100%
            set_appearance("dark", scale)
            resize(qtbot, window, 800, 500)
            run(qtbot, chat.open_character(chat.character))
            qtbot.waitUntil(lambda: all(text_fits(b) for b in buttons), timeout=LONG)
            qtbot.waitUntil(chat_fits, timeout=LONG)
            assert all(bool(b.text()) == captions for b in buttons)
            assert [b.accessibleName() for b in buttons] == ["New character", "Import", "Export", "Delete"]
    finally:
        set_appearance("dark", 100)
