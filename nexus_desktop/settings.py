"""User settings: one pydantic model, stored as JSON rows in the database (see ``db.repo``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from nexus_desktop.llm.contract import SamplingSettings
from nexus_desktop.llm.templates import KNOWN_TEMPLATES, InstructTemplate, TemplateChoice

GpuLayers = Literal["auto"] | int
RANDOM_SEED = -1


class Samplers(BaseModel):
    """How replies are sampled, and how long they may be: what a named preset holds."""

    temperature: float = Field(default=0.8, ge=0.0, le=5.0)
    top_p: float = Field(default=0.95, ge=0.0, le=1.0)
    min_p: float = Field(default=0.05, ge=0.0, le=1.0)
    top_k: int = Field(default=40, ge=0, le=1000)
    typical_p: float = Field(default=1.0, ge=0.0, le=1.0)
    repeat_penalty: float = Field(default=1.1, ge=0.5, le=3.0)
    presence_penalty: float = Field(default=0.0, ge=-2.0, le=2.0)
    frequency_penalty: float = Field(default=0.0, ge=-2.0, le=2.0)
    mirostat_mode: Literal[0, 1, 2] = 0
    mirostat_tau: float = Field(default=5.0, ge=0.0, le=20.0)
    mirostat_eta: float = Field(default=0.1, ge=0.0, le=1.0)
    seed: int = Field(default=RANDOM_SEED, ge=RANDOM_SEED, le=2**31 - 1)
    dry_multiplier: float = Field(default=0.0, ge=0.0, le=10.0)
    dry_base: float = Field(default=1.75, ge=1.0, le=4.0)
    dry_allowed_length: int = Field(default=2, ge=1, le=20)
    max_tokens: int = Field(default=400, ge=1, le=32768)


class Settings(Samplers):
    source: Literal["local", "remote", "worker"] = "local"
    """Where replies come from: the local llama.cpp model, an OpenAI-compatible server, or a
    ``nexus worker`` on another PC over the NATS bus (``nexus_desktop/bus``)."""

    # Local llama.cpp model. An empty path means the bundled default model.
    model_path: str = ""
    models_dir: str = ""
    context_size: int = Field(default=4096, ge=256, le=262144)
    threads: int = Field(default_factory=lambda: max(1, min(8, (os.cpu_count() or 2) - 1)), ge=1, le=256)
    gpu_layers: GpuLayers = "auto"
    """Repeating layers on the GPU (0 to the model's count, -1 all) or "auto" (``llm.vram_fit``)."""
    kv_cache_type: Literal["f16", "q8_0", "q4_0"] = "f16"
    """The KV cache's type: q8_0 halves its memory, q4_0 quarters it (with flash attention)."""
    vram_reserve_mb: int = Field(default=4096, ge=0, le=1_048_576)
    """VRAM that "auto" leaves free for games and the desktop."""

    # Sampling: the fields of ``Samplers``, and named sets of them.
    sampler_presets: dict[str, Samplers] = Field(default_factory=dict)
    sampler_preset: str = ""
    """The preset last chosen, for the picker; the values in use are the fields above."""

    # How a local model's prompt is written (remote servers apply their own template).
    chat_template: TemplateChoice = "model"
    custom_template: InstructTemplate = Field(default_factory=lambda: KNOWN_TEMPLATES["chatml"])

    # OpenAI-compatible server. The API key is never here: it lives in the OS keyring.
    remote_base_url: str = "http://127.0.0.1:11434/v1"
    remote_model: str = ""

    # Remote worker: a second PC running ``nexus worker`` on a NATS server (docs/second-pc.md).
    # Only the credentials file's path is kept here; what it holds never enters the database.
    worker_url: str = "nats://127.0.0.1:4222"
    worker_credentials: str = ""
    """A NATS ``.creds`` file, an NKey seed file, or a file holding ``user:password``."""
    worker_tls_ca: str = ""
    """A CA certificate for a ``tls://`` server signed by a private CA (empty: the system's)."""

    # The OpenAI-compatible gateway (nexus_desktop/gateway): other apps (SillyTavern, Open WebUI,
    # the openai client) use NEXUS as their local model server.  Off by default, on 127.0.0.1
    # only, and every request needs the key kept in the keyring.
    gateway_enabled: bool = False
    gateway_port: int = Field(default=5180, ge=1024, le=65535)

    # Engram (nexus_desktop/engram): characters remember facts across chats.
    memory_enabled: bool = True
    memory_recall_count: int = Field(default=4, ge=0, le=32)
    """How many remembered facts, the most relevant to the last message, the prompt may hold."""

    # Typed commands (/roll 2d6) always run tools; letting the model pick tools by itself costs two
    # short extra generations per message, and small models misfire, so it is opt-in.
    tools_by_model: bool = False

    # Modules: developer mode reloads the user's own modules folder on save without re-approval.
    modules_developer_mode: bool = False
    modules_developer_dir: str = ""
    # Co-evolution (coevolve/): a nightly task builds harder module requests and keeps template
    # versions that pass more of them.  Off by default: it spends the code model's time.
    module_coevolution: bool = False

    # The trainer's Python (a venv with torch, and Unsloth on CUDA); empty means .venv-train.
    trainer_python: str = ""

    # Prometheus metrics on 127.0.0.1 (control/prometheus.py), for Grafana users; off by default.
    prometheus_enabled: bool = False
    prometheus_port: int = Field(default=9464, ge=1024, le=65535)

    # Appearance: "system" follows the desktop's light or dark scheme; text size in percent.
    theme: Literal["system", "dark", "light"] = "system"
    font_scale: int = Field(default=100, ge=80, le=150)

    # Game mode (nexus_desktop/gaming/): the GPU belongs to the game while one runs.
    game_mode_manual: bool = False
    """The tray switch and ``nexus game-mode on``: game mode whether or not a game is seen."""
    game_mode_detect: bool = True
    """Notice games by themselves (NVML's graphics processes, a full-screen Direct3D app)."""
    game_mode_action: Literal["unload", "cpu"] = "unload"
    """In game mode: unload the model, or keep chatting with every layer on the CPU."""
    keep_alive_minutes: int = Field(default=5, ge=-1, le=1440)
    """As Ollama's keep_alive: unload a model unused this long; 0 unloads after each reply, -1 never."""

    # Window behaviour.
    minimize_to_tray: bool = False
    last_character_id: int | None = None
    last_group_id: int | None = None
    """The group whose chat was open last (None: a character's was); reopened at start."""

    @field_validator("gpu_layers", mode="before")
    @classmethod
    def _parse_gpu_layers(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        return value

    def conflict(self) -> str | None:
        """Settings that are each valid but disagree, as a sentence; None when they agree.

        Not a validator: settings stored by an older version must still load.
        """
        if self.max_tokens >= self.context_size:
            return (
                f"The response length ({self.max_tokens} tokens) must be shorter than the context "
                f"({self.context_size} tokens), which also holds the prompt"
            )
        custom = self.custom_template
        if self.chat_template == "custom" and not (custom.user_prefix or custom.assistant_prefix):
            return "The custom template needs a user or an assistant prefix to tell the turns apart"
        return None

    def models_folder(self) -> Path:
        """Where models are listed from and downloads go: the chosen folder, or ``models/`` in the
        data folder."""
        from nexus_desktop import paths

        return Path(self.models_dir).expanduser() if self.models_dir.strip() else paths.models_dir()

    def samplers(self) -> Samplers:
        """The sampler values in use, as a preset would hold them."""
        return Samplers.model_validate(self.model_dump(include=set(Samplers.model_fields)))

    def instruct_template(self) -> InstructTemplate | None:
        """The chosen template; None means the model's own."""
        if self.chat_template == "model":
            return None
        if self.chat_template == "custom":
            return self.custom_template
        return KNOWN_TEMPLATES[self.chat_template]

    def sampling(self) -> SamplingSettings:
        return SamplingSettings(
            **self.samplers().model_dump(exclude={"seed"}),
            seed=None if self.seed == RANDOM_SEED else self.seed,
            template=self.instruct_template(),
        )
