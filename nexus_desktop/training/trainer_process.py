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

from nexus_desktop import paths
from nexus_desktop.children.exits import describe_exit as describe_child_exit
from nexus_desktop.sandbox.profile import (
    PROGRAM_FOLDERS,
    Profile,
    gpu_devices,
    import_root,
    package_dir,
    python_read_paths,
    system_read_paths,
    system_write_paths,
    training_dir,
)

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


def bundled_trainer() -> Path | None:
    """The trainer's own executable in an installed bundle (installers/bundle/), which runs
    ``-m training.train`` like a Python with torch would; None outside a bundle or without it."""
    if not getattr(sys, "frozen", False):
        return None
    name = "nexus-trainer.exe" if os.name == "nt" else "nexus-trainer"
    program = Path(sys.executable).parent / "trainer" / name
    return program if program.is_file() else None


def default_trainer_command(python: str | None = None) -> list[str]:
    """``<python> -m training.train``: the setting, then $NEXUS_TRAINER_PYTHON, then the bundle's
    trainer, then .venv-train."""
    chosen = python or os.environ.get(TRAINER_PYTHON_ENV)
    if not chosen:
        venv = repo_root() / ".venv-train" / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
        chosen = str(bundled_trainer() or (venv if venv.exists() else sys.executable))
    return [chosen, "-m", "training.train"]


CLOSED_WHILE_TRAINING = "NEXUS was closed while training and the trainer did not finish."


def kept_checkpoint(checkpoint: str | None) -> str:
    """`` The last checkpoint is kept in PATH.`` when that folder is on disk, else nothing: a job
    killed before its first checkpoint (or whose checkpoint was deleted) must not promise one."""
    if checkpoint and Path(checkpoint).is_dir():
        return f" The last checkpoint is kept in {checkpoint}."
    return ""


def describe_exit(returncode: int, checkpoint: str | None = None) -> str:
    return f"The trainer {describe_child_exit(returncode)} before finishing." + kept_checkpoint(checkpoint)


def trainer_home() -> Path:
    """HOME and caches for the trainer's libraries (torch, Triton, Hugging Face), kept across jobs."""
    path = paths.data_dir() / "training" / "home"
    path.mkdir(parents=True, exist_ok=True)
    return path


def trainer_profile(command: list[str], job: dict[str, Any], job_dir: Path) -> Profile:
    """What the trainer may reach: it reads the base model, its datasets, Python and the trainer's
    packages, and writes only its job folder, the converted-model cache and its home.  It has no
    network, and it keeps running when NEXUS closes (no ``die_with_parent``).  ``command`` is the
    trainer setting's command line: a script it names is read too."""
    inputs = [job.get("base_model"), job.get("dataset"), job.get("eval_dataset")]
    inputs += [argument for argument in command[1:] if os.path.isfile(argument)]
    read = [
        *system_read_paths(),
        *python_read_paths(command[0]),
        *python_read_paths(sys.executable),  # the setting's "python" may wrap the app's own
        package_dir(),
        training_dir(),
        import_root(),
    ]
    read += [os.path.realpath(path) for path in inputs if path]
    write = [str(job_dir), str(trainer_home()), *system_write_paths()]
    if job.get("hf_cache_dir"):
        Path(job["hf_cache_dir"]).mkdir(parents=True, exist_ok=True)
        write.append(str(job["hf_cache_dir"]))
    return Profile(
        "trainer",
        read=tuple(read),
        write=tuple(write),
        # The Python the trainer setting names may be a wrapper around another interpreter.
        execute=(
            *PROGRAM_FOLDERS,  # its libraries start programs: its own Python, a C compiler (Triton)
            os.path.dirname(os.path.realpath(command[0])),
            os.path.realpath(sys.executable),
        ),
        devices=tuple(gpu_devices()),
        subprocess=True,
        die_with_parent=False,
    )


def trainer_environment(job_dir: Path) -> dict[str, str]:
    """The app's environment with the trainer's own places: nothing outside its profile is writable."""
    home = trainer_home()
    env = dict(os.environ)
    env.update(
        PYTHONPATH=import_root(),
        PYTHONUNBUFFERED="1",
        PYTHONIOENCODING="utf-8",
        HOME=str(home),
        XDG_CACHE_HOME=str(home / "cache"),
        TMPDIR=str(job_dir),
        HF_HUB_OFFLINE="1",  # no network in the sandbox: fail at once rather than time out
        TRITON_CACHE_DIR=str(home / "triton"),
    )
    return env


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
