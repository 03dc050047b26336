"""Settings → Generation: sampler presets, the context and reply lengths, the samplers and the
prompt template.

Like the other pages it shows settings (``load``) and hands back the edited ones (``values``);
nothing is stored until the dialog's Save, so Cancel also undoes preset changes.  The number
boxes take their ranges from the ``Samplers`` model, so the form and the validation agree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QInputDialog,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from nexus_desktop.chat.presets import clean_name, free_name, import_sillytavern_preset
from nexus_desktop.settings import Samplers
from nexus_desktop.ui.chat_view import describe_error
from nexus_desktop.ui.ops import QueryOp
from nexus_desktop.ui.sampler_fields import (
    DRY_FIELDS,
    MIROSTAT,
    MIROSTAT_MODES,
    REPETITION,
    SAMPLING,
    Row,
    bounds,
    number_box,
    two_columns,
)
from nexus_desktop.ui.slider_field import SliderField
from nexus_desktop.ui.template_fields import TemplateFields
from nexus_desktop.ui.widgets import BannerArea, help_label, push_button

if TYPE_CHECKING:
    from nexus_desktop.chat.presets import ImportedPreset
    from nexus_desktop.core import AppCore
    from nexus_desktop.settings import Settings

NO_PRESET = "No preset"
MAX_CONTEXT = 262144
SHOWN_IGNORED_KEYS = 8
PRESET_FILTER = "SillyTavern presets (*.json);;All files (*)"


class SamplerPage(QWidget):
    def __init__(self, core: AppCore, banners: BannerArea, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.core = core
        self.banners = banners
        self.presets: dict[str, Samplers] = {}
        self.fields: dict[str, QDoubleSpinBox | QSpinBox] = {}
        self.name_prompt: QInputDialog | None = None
        self._dry_in_build: bool | None = None
        self._remote = False
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(12)
        layout.addWidget(self._preset_group())
        layout.addWidget(self._length_group())
        layout.addWidget(self._sampling_group())
        layout.addWidget(self._repetition_group())
        layout.addWidget(self._mirostat_group())
        self.template = TemplateFields()
        layout.addWidget(self.template)
        self._probe_dry()

    # Groups -------------------------------------------------------------------------------

    def _preset_group(self) -> QGroupBox:
        group = QGroupBox("Preset")
        column = QVBoxLayout(group)
        row = QHBoxLayout()
        self.preset_box = QComboBox()
        self.preset_box.setAccessibleName("Sampler preset")
        self.preset_box.setToolTip("Choosing a preset fills in the samplers and the response length")
        self.preset_box.setMinimumContentsLength(10)
        self.preset_box.activated.connect(lambda _index: self.choose_preset(self.preset_box.currentText()))
        row.addWidget(self.preset_box, 1)
        chosen = self.preset_box.currentText
        buttons: tuple[tuple[str, str, str, Callable[[], object]], ...] = (
            ("Save as…", "check", "Keep the values below as a named preset",
             lambda: self._ask_name("Save preset", self.save_preset_as)),
            ("Rename…", "edit", "Rename the chosen preset",
             lambda: self._ask_name("Rename preset", lambda new: self.rename_preset(chosen(), new))),
            ("Delete", "trash", "Delete the chosen preset", lambda: self.delete_preset(chosen())),
            ("Import…", "import", "Import a SillyTavern Text Completion preset (.json)", self._browse_preset),
        )  # fmt: skip
        made = []
        for text, icon, tip, action in buttons:
            button = push_button(text, icon_name=icon)
            button.setToolTip(tip)
            button.setAccessibleName(tip)
            button.clicked.connect(lambda _checked=False, act=action: act())
            row.addWidget(button)
            made.append(button)
        self.save_preset_button, self.rename_preset_button, self.delete_preset_button, self.import_button = (
            made
        )
        column.addLayout(row)
        column.addWidget(help_label("Preset changes are kept when you press Save below."))
        return group

    def _length_group(self) -> QGroupBox:
        group = QGroupBox("Length")
        form = QFormLayout(group)
        self.context_size = SliderField("Context size", 256, MAX_CONTEXT, 256)
        self.context_size.box.valueChanged.connect(lambda _value: self._check_lengths())
        form.addRow("Context", self.context_size)
        self.limit_label = help_label("Reading the model's limit…")
        form.addRow("", self.limit_label)
        self.max_tokens = SliderField("Response length", 1, int(bounds("max_tokens")[1]), 16)
        self.max_tokens.box.valueChanged.connect(lambda _value: self._check_lengths())
        form.addRow("Response", self.max_tokens)
        self.length_label = help_label("")
        form.addRow("", self.length_label)
        return group

    def _sampling_group(self) -> QGroupBox:
        group = QGroupBox("Sampling")
        grid = QGridLayout(group)
        self.seed = QSpinBox()
        self.seed.setRange(*(int(limit) for limit in bounds("seed")))
        self.seed.setSpecialValueText("Random")
        self.seed.setAccessibleName("Seed")
        self.seed.setToolTip("The same seed and settings give the same reply; Random picks a new one")
        two_columns(grid, [*self._boxes(SAMPLING), ("Seed", self.seed)])
        return group

    def _repetition_group(self) -> QGroupBox:
        group = QGroupBox("Repetition")
        grid = QGridLayout(group)
        two_columns(grid, self._boxes(REPETITION))
        self.dry_label = help_label("Checking whether this llama.cpp build has DRY…")
        grid.addWidget(self.dry_label, grid.rowCount(), 0, 1, 4)
        return group

    def _mirostat_group(self) -> QGroupBox:
        group = QGroupBox("Mirostat")
        grid = QGridLayout(group)
        self.mirostat_mode = QComboBox()
        self.mirostat_mode.setAccessibleName("Mirostat mode")
        self.mirostat_mode.setToolTip("Steer toward a steady surprise instead of cutting the word list")
        for caption, mode in MIROSTAT_MODES:
            self.mirostat_mode.addItem(caption, mode)
        self.mirostat_mode.currentIndexChanged.connect(lambda _index: self._mirostat_changed())
        two_columns(grid, [("Mode", self.mirostat_mode), *self._boxes(MIROSTAT)])
        note = help_label("When on, Mirostat replaces top-k, top-p, min-p and typical-p.")
        grid.addWidget(note, grid.rowCount(), 0, 1, 4)
        return group

    def _boxes(self, rows: Sequence[Row]) -> list[tuple[str, QWidget]]:
        pairs: list[tuple[str, QWidget]] = []
        for row in rows:
            box = number_box(row)
            self.fields[row[0]] = box
            pairs.append((row[1], box))
        return pairs

    # Data ---------------------------------------------------------------------------------

    def load(self, settings: Settings) -> None:
        self.presets = dict(settings.sampler_presets)
        self._fill_presets(settings.sampler_preset)
        self.context_size.set_value(settings.context_size)
        self.show_samplers(settings.samplers())
        self.template.load(settings.chat_template, settings.custom_template)
        self.set_remote(settings.source == "remote", settings.model_path)

    def samplers(self) -> Samplers:
        values: dict[str, Any] = {field: box.value() for field, box in self.fields.items()}
        mode, seed, length = self.mirostat_mode.currentData(), self.seed.value(), self.max_tokens.value()
        return Samplers.model_validate({**values, "mirostat_mode": mode, "seed": seed, "max_tokens": length})

    def show_samplers(self, samplers: Samplers) -> None:
        for field, box in self.fields.items():
            box.setValue(getattr(samplers, field))
        self.mirostat_mode.setCurrentIndex(self.mirostat_mode.findData(samplers.mirostat_mode))
        self.seed.setValue(samplers.seed)
        self.max_tokens.set_value(samplers.max_tokens)
        self._mirostat_changed()
        self._show_dry()

    def values(self) -> dict[str, Any]:
        """The page's part of the settings, for ``Settings.model_validate``."""
        chosen = self.preset_box.currentText()
        choice, custom = self.template.values()
        return {
            **self.samplers().model_dump(),
            "context_size": self.context_size.value(),
            "sampler_presets": dict(self.presets),
            "sampler_preset": chosen if chosen in self.presets else "",
            "chat_template": choice,
            "custom_template": custom,
        }

    # Presets ------------------------------------------------------------------------------

    def _fill_presets(self, chosen: str) -> None:
        self.preset_box.clear()
        self.preset_box.addItem(NO_PRESET)
        self.preset_box.addItems(sorted(self.presets, key=str.casefold))
        self.preset_box.setCurrentIndex(
            max(self.preset_box.findText(chosen), 0) if chosen in self.presets else 0
        )
        self.rename_preset_button.setEnabled(chosen in self.presets)
        self.delete_preset_button.setEnabled(chosen in self.presets)

    def choose_preset(self, name: str) -> None:
        if name in self.presets:
            self.show_samplers(self.presets[name])
        self._fill_presets(name)

    def save_preset_as(self, name: str) -> None:
        name = clean_name(name)
        if not name or name == NO_PRESET:
            self.banners.show_banner("error", "Give the preset a name, then save it again.")
            return
        verb = "updated" if name in self.presets else "added"
        self.presets[name] = self.samplers()
        self._fill_presets(name)
        self.banners.show_banner("info", f'Preset "{name}" {verb}; Save keeps it.')

    def rename_preset(self, old: str, new: str) -> None:
        new = clean_name(new)
        if old not in self.presets or not new or new == old:
            return
        if new in self.presets or new == NO_PRESET:
            self.banners.show_banner("error", f'A preset is already called "{new}"; pick another name.')
            return
        self.presets[new] = self.presets.pop(old)
        self._fill_presets(new)

    def delete_preset(self, name: str) -> None:
        if self.presets.pop(name, None) is not None:
            self._fill_presets("")
            self.banners.show_banner("info", f'Preset "{name}" deleted; Save makes it final.')

    def import_preset(self, path: Path) -> None:
        """Read a SillyTavern preset file off the Qt thread and add it as a preset; a bad file
        changes nothing and its error banner names the key."""
        base = self.samplers()
        op = QueryOp(parent=self, op=lambda: import_sillytavern_preset(path, base), success=self._imported)
        op.failure(lambda error: self.banners.show_banner("error", describe_error(error))).run_in_background()

    def _imported(self, imported: ImportedPreset) -> None:
        name = free_name(imported.name, self.presets)
        self.presets[name] = imported.samplers
        self.choose_preset(name)
        text = f'Imported "{name}"; Save keeps it.'
        if imported.ignored:
            more = len(imported.ignored) - SHOWN_IGNORED_KEYS
            listed = ", ".join(imported.ignored[:SHOWN_IGNORED_KEYS]) + (
                f" and {more} more" if more > 0 else ""
            )
            text += f" Ignored, as NEXUS has no sampler for them: {listed}."
        banner = self.banners.show_banner("info", text)
        if imported.ignored:
            banner.setToolTip("Ignored: " + ", ".join(imported.ignored))

    def _browse_preset(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import a SillyTavern preset", "", PRESET_FILTER)
        if path:
            self.import_preset(Path(path))

    def _ask_name(self, title: str, then: Callable[[str], None]) -> None:
        chosen = self.preset_box.currentText()
        prompt = QInputDialog(self)
        prompt.setWindowTitle(title)
        prompt.setLabelText("Preset name")
        prompt.setTextValue(chosen if chosen in self.presets else "")
        prompt.textValueSelected.connect(then)
        self.name_prompt = prompt
        prompt.open()

    # Limits and availability --------------------------------------------------------------

    def set_remote(self, remote: bool, model_path: str) -> None:
        """Follow the source the dialog would use: limits, DRY and the template differ."""
        self._remote = remote
        self.template.set_remote(remote)
        self._show_dry()
        self.show_limits(model_path)

    def show_limits(self, model_path: str) -> None:
        """Show the model's trained context and the loaded one; the slider ends at the former."""
        state = self.core.sources.state
        ready = state.phase == "ready" and state.context_size
        loaded = f" Loaded now: {state.context_size:,} tokens." if ready else ""
        if self._remote:
            self.context_size.set_slider_end(MAX_CONTEXT)
            self.limit_label.setText("Set this to the context the server runs the model with." + loaded)
            return

        def read_limit() -> tuple[str, int | None]:
            from nexus_desktop.chat.sources import local_model_path
            from nexus_desktop.llm.gguf_check import inspect_model
            from nexus_desktop.settings import Settings

            path = local_model_path(Settings(model_path=model_path))
            return path.name, inspect_model(path).context_length

        def shown(result: tuple[str, int | None]) -> None:
            name, trained = result
            self.context_size.set_slider_end(trained or MAX_CONTEXT)
            limit = (
                f"{name} was trained for {trained:,} tokens; more is not used."
                if trained
                else f"{name} does not say how long a context it was trained for."
            )
            self.limit_label.setText(f"{limit}{loaded} Changing the context reloads the model.")

        QueryOp(parent=self, op=read_limit, success=shown).failure(
            lambda error: self.limit_label.setText(f"The model's limit is unknown: {describe_error(error)}")
        ).run_in_background()

    def _check_lengths(self) -> None:
        context, reply = self.context_size.value(), self.max_tokens.value()
        self.max_tokens.set_slider_end(context - 1)
        if reply >= context:
            self.length_label.setText(f"Too long: a reply must be shorter than the context ({context:,}).")
        else:
            self.length_label.setText(f"At most {reply:,} tokens per reply; the prompt gets the rest.")

    def _mirostat_changed(self) -> None:
        on = bool(self.mirostat_mode.currentData())
        for field in ("mirostat_tau", "mirostat_eta"):
            self.fields[field].setEnabled(on)

    def _probe_dry(self) -> None:
        from nexus_desktop.llm.hardware import llama_build_info

        QueryOp(
            parent=self, op=llama_build_info, success=lambda info: self.set_dry_in_build(info.supports_dry)
        ).failure(lambda _error: self.set_dry_in_build(False)).run_in_background()

    def set_dry_in_build(self, available: bool) -> None:
        self._dry_in_build = available
        self._show_dry()

    def _show_dry(self) -> None:
        if self._remote:
            usable, text = True, "DRY is sent to the server: llama.cpp's server and KoboldCpp apply it."
        elif self._dry_in_build is None:
            usable, text = False, "Checking whether this llama.cpp build has DRY…"
        elif self._dry_in_build:
            usable, text = True, "DRY keeps the model from repeating phrases it already wrote."
        else:
            usable, text = False, "DRY is unavailable: the installed llama.cpp build has no DRY sampler."
        self.dry_label.setText(text)
        for field in DRY_FIELDS:
            self.fields[field].setEnabled(usable)
        # A DRY value from a preset stays changeable, so it can be set back to off.
        self.fields["dry_multiplier"].setEnabled(usable or self.fields["dry_multiplier"].value() > 0)
