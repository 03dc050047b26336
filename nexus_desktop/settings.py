"""User settings: one pydantic model, stored as JSON rows in the database (see ``db.repo``)."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from nexus_desktop.llm.contract import SamplingSettings

GpuLayers = Literal["auto"] | int


class Settings(BaseModel):
    source: Literal["local", "remote"] = "local"

    # Local llama.cpp model. An empty path means the bundled default model.
    model_path: str = ""
    models_dir: str = ""
    context_size: int = Field(default=4096, ge=256, le=262144)
    threads: int = Field(default_factory=lambda: max(1, min(8, (os.cpu_count() or 2) - 1)), ge=1, le=256)
    gpu_layers: GpuLayers = "auto"

    # Sampling.
    temperature: float = Field(default=0.8, ge=0.0, le=5.0)
    top_p: float = Field(default=0.95, ge=0.0, le=1.0)
    repeat_penalty: float = Field(default=1.1, ge=0.5, le=3.0)
    max_tokens: int = Field(default=400, ge=1, le=32768)

    # OpenAI-compatible server. The API key is never here: it lives in the OS keyring.
    remote_base_url: str = "http://127.0.0.1:11434/v1"
    remote_model: str = ""

    user_name: str = Field(default="You", min_length=1, max_length=64)

    # Typed commands (/roll 2d6) always run tools; letting the model pick tools by itself costs two
    # short extra generations per message, and small models misfire, so it is opt-in.
    tools_by_model: bool = False

    # Modules: developer mode reloads the user's own modules folder on save without re-approval.
    modules_developer_mode: bool = False
    modules_developer_dir: str = ""

    # The trainer's Python (a venv with torch, and Unsloth on CUDA); empty means .venv-train.
    trainer_python: str = ""

    # Prometheus metrics on 127.0.0.1 (control/prometheus.py), for Grafana users; off by default.
    prometheus_enabled: bool = False
    prometheus_port: int = Field(default=9464, ge=1024, le=65535)

    # Window behaviour.
    minimize_to_tray: bool = False
    last_character_id: int | None = None

    @field_validator("gpu_layers", mode="before")
    @classmethod
    def _parse_gpu_layers(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        return value

    def sampling(self) -> SamplingSettings:
        return SamplingSettings(
            temperature=self.temperature,
            top_p=self.top_p,
            repeat_penalty=self.repeat_penalty,
            max_tokens=self.max_tokens,
        )
