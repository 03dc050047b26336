"""Models → Remote worker in the real window: a reply from a ``nexus worker`` on "another PC" says
which PC answered, Settings → Remote worker finds the workers off the Qt thread, and the picker
offers the worker next to the remote server.  Real nats-server, real worker (subprocess or an
in-process Dendrite serving a stand-in chat Neuron)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QAbstractButton, QCheckBox, QLabel, QLineEdit

from nexus_desktop.bus.axon import Axon, TaskContext
from nexus_desktop.bus.dendrite import Dendrite
from nexus_desktop.bus.synapse import Connection, open_synapse
from nexus_desktop.ui.message_widget import MessageWidget, format_stats
from nexus_desktop.ui.model_bar import WORKER, ModelPicker
from nexus_desktop.ui.ops import wait_for_running_ops
from nexus_desktop.ui.settings_dialog import SettingsDialog
from tests import ui_support
from tests.nats_support import NatsServer, WorkerProcess, free_port, nats_server, start_worker  # noqa: F401
from tests.ui_support import LONG, needs_model, run, type_and_send, wait_model_ready, wait_reply_done

core, data_dir, qt_loop, window = ui_support.core, ui_support.data_dir, ui_support.qt_loop, ui_support.window


@pytest.fixture
def on_worker(core: Any, nats_server: NatsServer, tmp_path: Path) -> Iterator[WorkerProcess]:  # noqa: F811
    """A worker named gpc2 serving the bundled model, and the app set to use it (before the window)."""
    worker = start_worker(nats_server.url, "gpc2", tmp_path / "second-pc", "--serve", "model")
    core.settings = core.settings.model_copy(update={"source": "worker", "worker_url": nats_server.url})
    core.store.save_settings(core.settings)
    yield worker
    worker.stop()


@needs_model
def test_a_reply_from_a_worker_says_which_pc_answered(
    qtbot: Any, on_worker: WorkerProcess, window: Any
) -> None:
    wait_model_ready(qtbot, window)
    status = window.status_line.state_label.text()
    assert status.startswith("Ready · worker: gpc2 · SmolLM2-135M-Instruct.Q4_1.gguf · 4096 ctx")
    picker = window.top_bar.model_picker  # filled once the models folder is read, off the Qt thread
    qtbot.waitUntil(lambda: picker.currentText().startswith("Remote worker"), timeout=LONG)
    type_and_send(qtbot, window, "Hello from the gaming PC")
    wait_reply_done(qtbot, window)
    replies = [w for w in window.chat_view.widgets if isinstance(w, MessageWidget) and w.role == "assistant"]
    last = replies[-1]
    assert last.message.stats and last.message.stats["served_by"] == "gpc2"
    assert format_stats(last.message.stats).startswith("answered by gpc2 · ")
    window.resize(800, 500)  # narrow: the line is elided at its end, the machine still shows
    qtbot.waitUntil(lambda: QLabel.text(last.stats_label).endswith("…"), timeout=LONG)
    assert QLabel.text(last.stats_label).startswith("answered by gpc2 · ")


async def _stand_in_worker(url: str) -> tuple[Dendrite, Any]:
    """A worker named gpc2 whose chat Neuron says what a real one would announce."""

    async def chat(data: dict[str, Any], task: TaskContext) -> dict[str, Any]:
        return {}

    async def roll(data: dict[str, Any], task: TaskContext) -> dict[str, Any]:
        return {"ok": True, "content": "4", "error": None, "seconds": 0.0}

    synapse = open_synapse(Connection(url, name="gpc2"))
    dendrite = Dendrite(synapse, name="gpc2", role="worker")
    dendrite.register(Axon("chat", chat, capabilities=("model=tiny.gguf", "context_size=2048")))
    dendrite.register(Axon("tool.dice.roll", roll))
    await dendrite.start()
    return dendrite, synapse


def test_settings_find_workers_lists_them_off_the_qt_thread(
    qtbot: Any,
    core: Any,
    nats_server: NatsServer,  # noqa: F811
) -> None:
    worker, synapse = run(qtbot, _stand_in_worker(nats_server.url))
    dialog = SettingsDialog(core, page="worker")
    qtbot.addWidget(dialog)
    dialog.resize(800, 500)
    dialog.show()
    section = dialog.worker
    assert dialog.tabs.tabText(dialog.tabs.currentIndex()) == "Remote worker"
    try:
        # A server nobody listens on: one line that says so, and the button comes back.
        section.url.setText(f"nats://127.0.0.1:{free_port()}")
        section.find_button.click()
        qtbot.waitUntil(section.find_button.isEnabled, timeout=LONG)
        assert section.found.text() and "\n" not in section.found.text()
        assert not section.found.text().startswith("gpc2")

        section.url.setText(nats_server.url)
        started = time.monotonic()
        section.find_button.click()
        assert time.monotonic() - started < 0.2  # the click returned at once: the asking is elsewhere
        assert section.found.text() == "Asking the server…" and not section.find_button.isEnabled()
        qtbot.waitUntil(section.find_button.isEnabled, timeout=LONG)
        assert section.found.text() == "gpc2: chat with tiny.gguf (2048 ctx), 1 tool"
    finally:
        run(qtbot, worker.aclose())
        run(qtbot, synapse.close())

    # Ticking the worker unticks the remote server (one source at a time), and Save keeps it.
    dialog.use_remote.setChecked(True)
    section.use.setChecked(True)
    assert not dialog.use_remote.isChecked()
    section.credentials.setText("/home/me/gpc.creds")
    saved = dialog.settings()
    assert saved.source == "worker" and saved.worker_url == nats_server.url
    assert saved.worker_credentials == "/home/me/gpc.creds" and saved.worker_tls_ca == ""
    section.use.setChecked(False)
    assert dialog.settings().source == "local"  # the positive control: unticked, it is not used

    # Every control is named for a screen reader and fits the 800x500 dialog's width.
    controls = section.findChildren(QLineEdit) + section.findChildren(QAbstractButton)
    assert len(controls) >= 7
    for control in controls:
        assert control.accessibleName(), control
        right = control.mapTo(dialog, control.rect().topRight()).x()
        assert 0 < right <= dialog.width(), (control.accessibleName(), right)
    assert any(isinstance(c, QCheckBox) for c in controls)
    dialog.reject()
    run(qtbot, wait_for_running_ops())  # the dialog's own probes (GPU, llama.cpp build, key)
    run(qtbot, core.aclose())


def test_the_model_picker_offers_the_remote_worker(qtbot: Any, core: Any) -> None:
    picker = ModelPicker()
    qtbot.addWidget(picker)
    chosen: list[bool] = []
    picker.worker_chosen.connect(lambda: chosen.append(True))
    picker.set_models([], core.settings, None)
    texts = [picker.itemText(i) for i in range(picker.count())]
    assert "Remote worker…" in texts and "Remote server…" in texts
    picker.activated.emit(texts.index("Remote worker…"))
    assert chosen == [True]
    worker_settings = core.settings.model_copy(update={"source": "worker", "worker_url": "nats://gpc2:4222"})
    picker.set_models([], worker_settings, None)
    assert picker.currentText() == "Remote worker: gpc2:4222"
    assert picker.itemData(picker.currentIndex())[0] == WORKER
    assert "Remote worker…" not in [picker.itemText(i) for i in range(picker.count())]


def test_picking_an_unset_worker_opens_its_settings_page(qtbot: Any, window: Any) -> None:
    window._choose_worker()
    dialog = window.findChild(SettingsDialog)
    assert dialog is not None and dialog.tabs.tabText(dialog.tabs.currentIndex()) == "Remote worker"
    dialog.reject()
