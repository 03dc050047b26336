"""The trainer subprocess from the outside: how to start it, how to stop its whole process tree,
and how to turn its exit and its last events into a job state with the cause in words."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import psutil

from nexus_desktop.processes import exit_signal

TRAINER_PYTHON_ENV = "NEXUS_TRAINER_PYTHON"
_KILL_GRACE_SECONDS = 3.0

ERROR_KINDS = {
    "dataset": "The training data could not be used",
    "base_model": "The base model could not be loaded",
    "dependency": "The trainer is missing a library",
    "oom": "Training ran out of memory",
    "disk": "The disk is full",
    "export": "The adapter could not be converted for llama.cpp",
    "verify": "The converted adapter does not behave like the trained one",
    "internal": "The trainer failed",
}


class JobState(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    DONE = "DONE"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


FINISHED = frozenset({JobState.DONE, JobState.FAILED, JobState.CANCELLED})


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def default_trainer_command(python: str | None = None) -> list[str]:
    """``<python> -m training.train``: the setting, then $NEXUS_TRAINER_PYTHON, then .venv-train."""
    chosen = python or os.environ.get(TRAINER_PYTHON_ENV)
    if not chosen:
        venv = repo_root() / ".venv-train" / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
        chosen = str(venv) if venv.exists() else sys.executable
    return [chosen, "-m", "training.train"]


CLOSED_WHILE_TRAINING = "NEXUS was closed while training and the trainer did not finish."


def kept_checkpoint(checkpoint: str | None) -> str:
    """`` The last checkpoint is kept in PATH.`` when that folder is on disk, else nothing: a job
    killed before its first checkpoint (or whose checkpoint was deleted) must not promise one."""
    if checkpoint and Path(checkpoint).is_dir():
        return f" The last checkpoint is kept in {checkpoint}."
    return ""


def describe_exit(returncode: int, checkpoint: str | None = None) -> str:
    name = exit_signal(returncode)
    if name is None:
        cause = f"The trainer stopped with exit status {returncode} before finishing."
    else:
        why = " (the system may have run out of memory)" if name == "SIGKILL" else ""
        cause = f"The trainer was killed by {name}{why}."
    return cause + kept_checkpoint(checkpoint)


@dataclass
class Outcome:
    done: bool = False
    error: tuple[str, str] | None = None


def verdict(
    cancelled: bool,
    outcome: Outcome,
    returncode: int | None,
    log_path: Path,
    checkpoint: str | None = None,
) -> tuple[JobState, str]:
    """The job's end from its events and exit status; ``returncode`` is None when this process is
    not the trainer's parent (the NEXUS that started it was closed), so only the events tell."""
    if cancelled:
        return JobState.CANCELLED, ""
    if outcome.done and returncode in (0, None):
        return JobState.DONE, ""
    if outcome.error is not None:
        kind, message = outcome.error
        lead = ERROR_KINDS.get(kind, ERROR_KINDS["internal"])
        return JobState.FAILED, f"{lead}: {message}" if message else f"{lead}."
    if returncode is None:
        return JobState.FAILED, CLOSED_WHILE_TRAINING + kept_checkpoint(checkpoint)
    if returncode == 0:
        return JobState.FAILED, "The trainer exited without reporting a finished adapter."
    cause = describe_exit(returncode, checkpoint)
    last = last_line(log_path)
    return JobState.FAILED, f"{cause} Last output: {last}" if last and returncode > 0 else cause


def last_line(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(max(0, path.stat().st_size - 4000))
            lines = [
                line.strip() for line in handle.read().decode("utf-8", "replace").splitlines() if line.strip()
            ]
    except OSError:
        return ""
    return lines[-1][:300] if lines else ""


def number(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def live_process(pid: int | None, started: float | None) -> psutil.Process | None:
    if pid is None:
        return None
    try:
        process = psutil.Process(pid)
        # A recycled pid belongs to some other program: its start time differs.
        if started is None or abs(process.create_time() - started) > 1.0:
            return None
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return process
    except psutil.Error:
        return None


def kill_tree(process: psutil.Process) -> None:
    try:
        family = [*process.children(recursive=True), process]
    except psutil.Error:
        family = [process]
    for member in family:
        try:
            member.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(family, timeout=_KILL_GRACE_SECONDS)
    for member in alive:
        try:
            member.kill()
        except psutil.Error:
            pass
