"""Settings → Model's GPU area: a layer slider from 0 to the model's N layers with "Auto" beside
it, the KV cache type, the game reserve and the VRAM bar, which follows every change.

The model's header is read once per model file, and the GPU and llama.cpp build once per dialog,
both off the Qt thread; the plan itself (``vram_fit.plan_fit``) is cheap and runs on each change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QSlider,
    QWidget,
)

from nexus_desktop.llm.vram_fit import GIB, KV_TYPES, plan_fit
from nexus_desktop.ui.ops import QueryOp
from nexus_desktop.ui.vram_bar import VramBar

if TYPE_CHECKING:
    from nexus_desktop.llm.gguf_check import ModelInfo
    from nexus_desktop.settings import Settings

KV_LABELS = {
    "f16": "f16 (full quality)",
    "q8_0": "q8_0 (half the memory)",
    "q4_0": "q4_0 (a quarter, some quality loss)",
}


class GpuHardware:
    """What the plan needs to know about this PC; ``what_if`` makes one for a card it lacks."""

    def __init__(self, gpu_build: bool, total: int | None, free: int | None) -> None:
        self.gpu_build, self.total, self.free = gpu_build, total, free

    @classmethod
    def probe(cls) -> GpuHardware:
        """Blocks (NVML, a llama.cpp probe process): off the Qt thread."""
        from nexus_desktop.llm.hardware import llama_build_info
        from nexus_desktop.llm.vram_fit import gpu_memory

        total, free = gpu_memory()
        return cls(llama_build_info().supports_gpu_offload, total, free)

    @classmethod
    def what_if(cls, total: int) -> GpuHardware:
        return cls(True, total, None)


class GpuSection:
    """The GPU rows, added to the model page's form; ``load``/``values`` as the dialog's pages."""

    def __init__(self, parent: QWidget, form: QFormLayout) -> None:
        self.parent = parent
        self.auto = QCheckBox("Auto")
        self.auto.setAccessibleName("Auto GPU layers")
        self.auto.setToolTip("Put as many layers on the GPU as fit beside the game reserve")
        self.layers = QSlider(Qt.Orientation.Horizontal)
        self.layers.setAccessibleName("GPU layers")
        self.layers.setToolTip("Layers on the GPU; 0 keeps the model on the CPU")
        self.layers.setRange(0, 0)
        self.layers_label = QLabel("")
        self.layers_label.setMinimumWidth(self.layers_label.fontMetrics().horizontalAdvance("888 of 888"))
        row = QHBoxLayout()
        row.addWidget(self.auto)
        row.addWidget(self.layers, 1)
        row.addWidget(self.layers_label)
        form.addRow("GPU layers", row)
        self.kv_type = QComboBox()
        self.kv_type.setAccessibleName("KV cache type")
        self.kv_type.setToolTip("A quantised KV cache fits longer contexts in the same VRAM")
        for kv in KV_TYPES:
            self.kv_type.addItem(KV_LABELS[kv], kv)
        form.addRow("KV cache", self.kv_type)
        self.reserve = QDoubleSpinBox()
        self.reserve.setAccessibleName("Game reserve")
        self.reserve.setToolTip("VRAM that Auto leaves free for games and the desktop")
        self.reserve.setRange(0, 256)
        self.reserve.setSingleStep(0.5)
        self.reserve.setDecimals(1)
        self.reserve.setSuffix(" GB")
        form.addRow("Game reserve", self.reserve)
        self.bar = VramBar()
        form.addRow("VRAM", self.bar)

        self.info: ModelInfo | None = None
        self.hardware: GpuHardware | None = None
        self.context = 4096
        self._stored_layers: int | str = "auto"
        self._model_path: str | None = None
        self._reading: str | None = None
        self._path_timer = QTimer(parent)  # typing a path reads the header once the typing stops
        self._path_timer.setSingleShot(True)
        self._path_timer.setInterval(300)
        self._path_timer.timeout.connect(self._read_header)
        self._pending_path = ""
        self.auto.toggled.connect(lambda _on: self.refresh())
        self.layers.valueChanged.connect(lambda _value: self.refresh())
        self.kv_type.currentIndexChanged.connect(lambda _index: self.refresh())
        self.reserve.valueChanged.connect(lambda _value: self.refresh())

    # Inputs ------------------------------------------------------------------------------------

    def load(self, settings: Settings) -> None:
        self._stored_layers = settings.gpu_layers
        self.auto.setChecked(settings.gpu_layers == "auto")
        self.kv_type.setCurrentIndex(max(0, self.kv_type.findData(settings.kv_cache_type)))
        self.reserve.setValue(settings.vram_reserve_mb / 1024)
        self.context = settings.context_size
        self.refresh()

    def values(self) -> dict[str, Any]:
        layers: int | str = "auto"
        if not self.auto.isChecked():
            if self.info is None:  # the header is not read yet: keep what was stored
                layers = self._stored_layers if self._stored_layers != "auto" else -1
            else:
                value = self.layers.value()
                layers = -1 if value >= self.layers.maximum() else value
        return {
            "gpu_layers": layers,
            "kv_cache_type": self.kv_type.currentData(),
            "vram_reserve_mb": round(self.reserve.value() * 1024),
        }

    def set_context(self, tokens: int) -> None:
        self.context = tokens
        self.refresh()

    def set_model_path(self, path: str) -> None:
        """The model field changed: read its header once the typing pauses."""
        self._pending_path = path.strip()
        self._path_timer.start()

    def set_hardware(self, hardware: GpuHardware) -> None:
        self.hardware = hardware
        self.refresh()

    def set_model(self, info: ModelInfo) -> None:
        self.info = info
        n_layers = info.n_layers or 0
        stored = self._stored_layers
        self.layers.blockSignals(True)
        self.layers.setRange(0, n_layers)
        if isinstance(stored, int):
            self.layers.setValue(n_layers if stored < 0 else min(stored, n_layers))
        self.layers.blockSignals(False)
        self.refresh()

    def probe_hardware(self) -> None:
        QueryOp(parent=self.parent, op=GpuHardware.probe, success=self.set_hardware).failure(
            lambda error: self.bar.set_message(f"The GPU could not be checked ({error}).")
        ).run_in_background()

    def _read_header(self) -> None:
        from nexus_desktop.chat.sources import local_model_path
        from nexus_desktop.llm.gguf_check import inspect_model
        from nexus_desktop.settings import Settings

        path = self._pending_path
        if path == self._model_path or path == self._reading:
            return
        self._reading = path

        def read() -> ModelInfo:
            return inspect_model(local_model_path(Settings(model_path=path)))

        def done(info: ModelInfo) -> None:
            if self._reading == path:
                self._model_path, self._reading = path, None
                self.set_model(info)

        def failed(error: BaseException) -> None:
            if self._reading == path:
                self._model_path, self._reading, self.info = path, None, None
                self.bar.set_message(str(error))

        self.bar.set_message("Reading the model's layers…")
        QueryOp(parent=self.parent, op=read, success=done).failure(failed).run_in_background()

    # The plan ----------------------------------------------------------------------------------

    def refresh(self) -> None:
        info, hardware = self.info, self.hardware
        self.layers.setEnabled(not self.auto.isChecked() and info is not None)
        if info is None or hardware is None:
            self.layers_label.setText("")
            if info is not None:
                self.bar.set_message("Checking the GPU…")
            return
        context = min(self.context, info.context_length or self.context)
        chosen = None if self.auto.isChecked() else self.layers.value()
        plan = plan_fit(
            info,
            context,
            self.kv_type.currentData(),
            hardware.total,
            hardware.free,
            round(self.reserve.value() * GIB),
            chosen,
            gpu_build=hardware.gpu_build,
        )
        if self.auto.isChecked():
            self.layers.blockSignals(True)
            self.layers.setValue(plan.auto_layers)  # the slider shows Auto's pick
            self.layers.blockSignals(False)
        self.layers_label.setText(f"{plan.layers} of {plan.n_layers}")
        self.bar.set_plan(plan)
