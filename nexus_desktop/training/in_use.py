"""Which promoted adapters the chat runs with: a character's persona, and the intent router (or,
when the gate found a bag-of-words classifier as good as the learned router, that one)."""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import Engine

from nexus_desktop.training.gate import baseline_as_good, latest_decision
from nexus_desktop.training.lexical import LexicalClassifier, LexicalError, saved_path
from nexus_desktop.training.registry import AdapterRegistry
from nexus_desktop.training.zoo import ZooError, get_spec, load_zoo

log = logging.getLogger(__name__)
_loaded: dict[Path, tuple[tuple[int, int], LexicalClassifier]] = {}


def persona_adapter(engine: Engine, character: str, model_path: Path) -> Path | None:
    """The active adapter of the character's persona model, when it was trained on ``model_path``.

    An adapter only fits the base it was trained on, so a chat on another model runs without it.
    Rolling back in the registry makes this return the previous adapter (or None) on the next reply.
    """
    try:
        zoo = load_zoo()
    except ZooError as error:
        log.warning("The model zoo could not be read: %s", error)
        return None
    registry = AdapterRegistry(engine)
    for spec in zoo.values():
        if spec.task != "chat_persona" or spec.dataset != f"persona:{character}":
            continue
        active = registry.active(spec.id)
        if active is None or not active.adapter_path.is_file():
            return None
        try:
            same_base = spec.base_model_path().resolve() == model_path.resolve()
        except (OSError, ZooError):
            same_base = False
        return active.adapter_path if same_base else None
    return None


def active_router(engine: Engine) -> tuple[Path, Path, str, tuple[str, ...]] | None:
    """(base model, promoted router adapter, its system prompt, its labels), or None."""
    try:
        spec = get_spec("router")
        active = AdapterRegistry(engine).active(spec.id)
        if active is None or not active.adapter_path.is_file():
            return None
        return spec.base_model_path(), active.adapter_path, spec.system_prompt, spec.labels
    except (ZooError, OSError) as error:
        log.warning("The intent router is unavailable: %s", error)
        return None


def lexical_router(engine: Engine) -> LexicalClassifier | None:
    """The bag-of-words router the gate saved, when no learned router is promoted and the latest
    gate decision found it at least as good as the learned candidate (a model call is then not
    worth it), or None."""
    try:
        spec = get_spec("router")
        if AdapterRegistry(engine).active(spec.id) is not None:
            return None
        decision = latest_decision(engine, spec.id)
        if decision is None or not baseline_as_good(decision.numbers or {}):
            return None
        path = saved_path(spec.id)
        stat = path.stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
        cached = _loaded.get(path)
        if cached is None or cached[0] != stamp:
            cached = _loaded[path] = (stamp, LexicalClassifier.load(path))
        classifier = cached[1]
        return classifier if set(classifier.labels) == set(spec.labels) else None
    except (ZooError, LexicalError, OSError) as error:
        log.warning("The bag-of-words router is unavailable: %s", error)
        return None
