"""Settings → Remote worker: replies from ``nexus worker`` on a second PC, over a NATS server.

The address, the credentials file and the TLS CA are settings (``worker_url``,
``worker_credentials``, ``worker_tls_ca``): only the files' paths are kept, never what they hold.
"Find workers" asks the server who is there and what each serves, off the Qt thread.
``load(settings)`` shows the saved values; ``values()`` gives the fields for ``Settings``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtWidgets import QCheckBox, QFileDialog, QFormLayout, QHBoxLayout, QLineEdit, QWidget

from nexus_desktop.ui.ops import QueryOp
from nexus_desktop.ui.widgets import help_label, push_button

if TYPE_CHECKING:
    from nexus_desktop.bus.remote_source import FoundWorker
    from nexus_desktop.settings import Settings


class WorkerSection(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        form = QFormLayout(self)
        form.setContentsMargins(20, 20, 20, 20)
        form.setHorizontalSpacing(18)
        form.setVerticalSpacing(10)

        self.use = QCheckBox("Use a worker on another PC for replies")
        self.use.setAccessibleName("Use a remote worker for replies")
        form.addRow("", self.use)
        self.url = QLineEdit()
        self.url.setPlaceholderText("nats://192.168.1.20:4222")
        self.url.setAccessibleName("NATS server address")
        self.url.setToolTip("The NATS server both PCs connect to (docs/second-pc.md)")
        form.addRow("Server address", self.url)
        self.credentials = QLineEdit()
        self.credentials.setPlaceholderText("A .creds file, an NKey seed file, or user:password")
        self.credentials.setAccessibleName("Credentials file")
        browse = push_button("Browse…", icon_name="folder")
        browse.setAccessibleName("Choose the credentials file")
        browse.clicked.connect(lambda: self._browse(self.credentials, "Choose the NATS credentials file"))
        form.addRow("Credentials", _row(self.credentials, browse))
        self.tls_ca = QLineEdit()
        self.tls_ca.setPlaceholderText("Only for a tls:// server with its own CA")
        self.tls_ca.setAccessibleName("TLS CA certificate")
        browse_ca = push_button("Browse…", icon_name="folder")
        browse_ca.setAccessibleName("Choose the TLS CA certificate")
        browse_ca.clicked.connect(lambda: self._browse(self.tls_ca, "Choose the CA certificate"))
        form.addRow("TLS CA", _row(self.tls_ca, browse_ca))
        self.find_button = push_button("Find workers", icon_name="regenerate")
        self.find_button.setAccessibleName("Find workers")
        self.find_button.setToolTip("Ask the server which workers are there and what each serves")
        self.find_button.clicked.connect(self.find_workers)
        self.found = help_label("")
        self.found.setAccessibleName("Workers found")
        form.addRow("Workers", _row(self.find_button))
        form.addRow("", self.found)
        form.addRow(
            "",
            help_label(
                "Run `nexus worker --connect ADDRESS --credentials FILE` on the PC with the GPU; "
                "this PC then chats with its model while its own GPU stays free for games. The "
                "line under each reply says which PC answered. Only the file paths are saved here."
            ),
        )

    def load(self, settings: Settings) -> None:
        self.use.setChecked(settings.source == "worker")
        self.url.setText(settings.worker_url)
        self.credentials.setText(settings.worker_credentials)
        self.tls_ca.setText(settings.worker_tls_ca)

    def exclude(self, other: QCheckBox) -> None:
        """Ticking ``use`` unticks ``other`` (another source's box) and the other way round."""

        def untick(box: QCheckBox) -> Callable[[bool], None]:
            return lambda on: box.setChecked(False) if on else None

        self.use.toggled.connect(untick(other))
        other.toggled.connect(untick(self.use))

    def values(self) -> dict[str, object]:
        values: dict[str, object] = {
            "worker_url": self.url.text().strip(),
            "worker_credentials": self.credentials.text().strip(),
            "worker_tls_ca": self.tls_ca.text().strip(),
        }
        if self.use.isChecked():
            values["source"] = "worker"
        return values

    def find_workers(self) -> None:
        from nexus_desktop.bus.remote_source import find_workers
        from nexus_desktop.bus.synapse import Connection

        fields = self.values()
        credentials, tls_ca = str(fields["worker_credentials"]), str(fields["worker_tls_ca"])
        connection = Connection(
            str(fields["worker_url"]),
            credentials=Path(credentials).expanduser() if credentials else None,
            tls_ca=Path(tls_ca).expanduser() if tls_ca else None,
        )
        self.find_button.setEnabled(False)
        self.found.setText("Asking the server…")
        # Network waits on the event loop (an async op), never on the Qt thread's paint path.
        op = functools.partial(find_workers, connection)
        QueryOp(parent=self, op=op, success=self._show_found).failure(self._show_problem).run_in_background()

    def _show_found(self, workers: list[FoundWorker]) -> None:
        self.find_button.setEnabled(True)
        if not workers:
            self.found.setText("No worker is connected to this server. Start `nexus worker` on the other PC.")
            return
        self.found.setText("\n".join(worker.describe() for worker in workers))

    def _show_problem(self, error: BaseException) -> None:
        self.find_button.setEnabled(True)
        self.found.setText(str(error).splitlines()[0] if str(error) else type(error).__name__)

    def _browse(self, field: QLineEdit, title: str) -> None:
        start = field.text().strip() or str(Path.home())
        path, _ = QFileDialog.getOpenFileName(self, title, start)
        if path:
            field.setText(path)


def _row(*widgets: QWidget) -> QWidget:
    holder = QWidget()
    row = QHBoxLayout(holder)
    row.setContentsMargins(0, 0, 0, 0)
    for index, widget in enumerate(widgets):
        row.addWidget(widget, 1 if index == 0 and len(widgets) > 1 else 0)
    if len(widgets) == 1:
        row.addStretch(1)
    return holder
