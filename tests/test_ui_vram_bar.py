"""The VRAM bar and the GPU area of Settings → Model: the slider from 0 to the model's layers,
Auto, the KV cache type and the reserve, with the bar following each change.

This machine has no GPU: the real probe gives the CPU-only explanation, and a "what if" 8 GB
card (``GpuHardware.what_if``) stands in for a gamer's GPU where a bar is needed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from PySide6.QtWidgets import QAbstractButton, QAbstractSpinBox, QComboBox, QSlider, QWidget

from nexus_desktop.llm.gguf_check import inspect_model
from nexus_desktop.llm.vram_fit import GIB, plan_fit
from nexus_desktop.ui.gpu_section import GpuHardware
from nexus_desktop.ui.ops import wait_for_running_ops
from nexus_desktop.ui.settings_dialog import SettingsDialog
from nexus_desktop.ui.vram_bar import VramBar
from tests import ui_support
from tests.ui_support import LONG, run

core, data_dir, qt_loop = ui_support.core, ui_support.data_dir, ui_support.qt_loop


@pytest.fixture
def dialog(qtbot: Any, core: Any) -> Iterator[SettingsDialog]:
    """Settings → Model with the bundled model's header read and this PC's build probed."""
    settings_dialog = SettingsDialog(core, page="model")
    qtbot.addWidget(settings_dialog)
    settings_dialog.resize(800, 500)
    settings_dialog.show()
    gpu = settings_dialog.gpu
    qtbot.waitUntil(lambda: gpu.info is not None and gpu.hardware is not None, timeout=LONG)
    yield settings_dialog
    run(qtbot, wait_for_running_ops())


def legend(bar: VramBar, key: str) -> str:
    return bar.legend_labels[key].text()


def test_the_bar_shows_each_segment_with_its_size_and_the_sentence(qtbot: Any, smollm2_path: Any) -> None:
    bar = VramBar()
    qtbot.addWidget(bar)
    bar.show()
    plan = plan_fit(inspect_model(smollm2_path), 4096, "q8_0", 8 * GIB, None, 4 * GIB)
    bar.set_plan(plan)
    assert bar.bar.isVisible() and bar.legend_holder.isVisible()
    assert "KV cache (q8_0) <b>48 MB</b>" in legend(bar, "kv")
    assert "Game reserve <b>4.0 GB</b>" in legend(bar, "reserve")
    assert bar.sentence.text() == "Auto puts all 30 layers on the GPU."
    assert "Weights on GPU 92 MB" in bar.bar.accessibleDescription()
    image = bar.bar.grab().toImage()
    # The reserve (muted) fills about half of the 8 GB bar.
    assert image.pixelColor(image.width() // 2 - 10, image.height() // 2) != image.pixelColor(
        image.width() - 5, image.height() // 2
    )


def test_a_cpu_only_build_explains_how_to_get_a_gpu_build_instead_of_a_bar(dialog: SettingsDialog) -> None:
    gpu = dialog.gpu
    assert gpu.hardware is not None and gpu.hardware.gpu_build is False  # this machine
    assert not gpu.bar.bar.isVisible()
    assert gpu.bar.sentence.text().startswith("No GPU build: this llama.cpp runs on the CPU only")
    assert "-DGGML_CUDA=on" in gpu.bar.sentence.text()
    assert gpu.layers.maximum() == 30 and gpu.layers_label.text() == "0 of 30"


def test_the_bar_follows_kv_type_context_layers_and_reserve(qtbot: Any, dialog: SettingsDialog) -> None:
    gpu = dialog.gpu
    gpu.set_hardware(GpuHardware.what_if(8 * GIB))
    assert gpu.bar.bar.isVisible() and gpu.auto.isChecked()
    assert gpu.layers.value() == 30 and not gpu.layers.isEnabled()  # the slider shows Auto's pick
    assert "KV cache (f16) <b>90 MB</b>" in legend(gpu.bar, "kv")  # 4,096 tokens

    gpu.kv_type.setCurrentIndex(gpu.kv_type.findData("q4_0"))
    assert "KV cache (q4_0) <b>25 MB</b>" in legend(gpu.bar, "kv")
    dialog.samplers.context_size.set_value(8192)
    assert "KV cache (q4_0) <b>51 MB</b>" in legend(gpu.bar, "kv")

    gpu.auto.setChecked(False)
    assert gpu.layers.isEnabled()
    gpu.layers.setValue(10)
    assert gpu.layers_label.text() == "10 of 30" and gpu.bar.title.text().startswith("10 of 30 layers")
    assert gpu.bar.sentence.text() == "10 of 30 layers on the GPU. Auto would pick 30."

    gpu.reserve.setValue(7.9)  # leaves 100 MB: not even one layer with its buffers
    assert "Over by" in legend(gpu.bar, "left")
    gpu.auto.setChecked(True)
    assert gpu.layers.value() == 0 and gpu.bar.sentence.text().startswith("Too large for this GPU")


def test_the_gpu_choices_are_saved_as_settings(dialog: SettingsDialog) -> None:
    gpu = dialog.gpu
    gpu.set_hardware(GpuHardware.what_if(8 * GIB))
    gpu.auto.setChecked(False)
    gpu.layers.setValue(12)
    gpu.kv_type.setCurrentIndex(gpu.kv_type.findData("q8_0"))
    gpu.reserve.setValue(6)
    saved = dialog.settings()
    assert (saved.gpu_layers, saved.kv_cache_type, saved.vram_reserve_mb) == (12, "q8_0", 6144)
    gpu.layers.setValue(30)
    assert dialog.settings().gpu_layers == -1  # every layer, whatever the next model's count
    gpu.auto.setChecked(True)
    assert dialog.settings().gpu_layers == "auto"


def test_stored_layers_come_back_on_the_slider(qtbot: Any, core: Any) -> None:
    core.settings = core.settings.model_copy(update={"gpu_layers": 7, "kv_cache_type": "q4_0"})
    settings_dialog = SettingsDialog(core, page="model")
    qtbot.addWidget(settings_dialog)
    gpu = settings_dialog.gpu
    qtbot.waitUntil(lambda: gpu.info is not None, timeout=LONG)
    assert not gpu.auto.isChecked() and gpu.layers.value() == 7 and gpu.kv_type.currentData() == "q4_0"
    run(qtbot, wait_for_running_ops())


def test_a_model_file_that_cannot_be_read_says_why_in_place_of_the_bar(
    qtbot: Any, dialog: SettingsDialog, tmp_path: Any
) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"<html>not a model</html>")
    dialog.model_path.setText(str(broken))
    qtbot.waitUntil(lambda: "web page" in dialog.gpu.bar.sentence.text(), timeout=LONG)
    assert dialog.gpu.info is None and not dialog.gpu.bar.bar.isVisible()
    dialog.model_path.setText("")  # positive control: the bundled model's bar comes back
    qtbot.waitUntil(lambda: dialog.gpu.info is not None, timeout=LONG)
    assert dialog.gpu.layers.maximum() == 30


def test_the_gpu_area_fits_800_by_500_with_named_controls(dialog: SettingsDialog) -> None:
    dialog.gpu.set_hardware(GpuHardware.what_if(8 * GIB))
    area = dialog.tabs.currentWidget()
    assert dialog.height() <= 500 and area.horizontalScrollBar().maximum() == 0
    gpu = dialog.gpu
    controls = [gpu.auto, gpu.layers, gpu.kv_type, gpu.reserve]
    assert all(isinstance(c, QAbstractButton | QSlider | QComboBox | QAbstractSpinBox) for c in controls)
    for control in controls:
        assert control.accessibleName() and control.toolTip()
        assert control.width() >= control.minimumSizeHint().width() - 1, control.accessibleName()
    for label in gpu.bar.legend_labels.values():
        assert label.width() >= label.sizeHint().width() - 1, label.text()  # no legend cut off
    assert isinstance(gpu.bar, QWidget) and gpu.bar.width() <= area.viewport().width()
