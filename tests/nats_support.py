"""A real nats-server for the bus tests, started on a free loopback port, and real ``nexus
worker`` subprocesses on it (``start_worker``; the benchmarks and screenshots use them too).

``NatsServer`` runs the Debian package's binary (``nats-server``, on PATH or in /usr/sbin) with a
config file of the test's choosing (users and passwords, NKeys, subject permissions), and can be
stopped and started again on the same port: the "server went away mid-stream" tests.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


def nats_server_binary() -> str | None:
    return shutil.which("nats-server") or shutil.which("nats-server", path="/usr/sbin:/usr/local/sbin")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class NatsServer:
    def __init__(self, folder: Path, config: str = "") -> None:
        binary = nats_server_binary()
        if binary is None:
            raise RuntimeError("nats-server is not installed: apt-get install nats-server (the setup does)")
        self.binary = binary
        self.folder = folder
        self.port = free_port()
        self.config_path = folder / "nats.conf"
        self._config = config
        self._write_config()
        self.log_path = folder / "nats.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._started_once = False

    def _write_config(self) -> None:
        self.config_path.write_text(f"listen: 127.0.0.1:{self.port}\nmax_payload: 1048576\n{self._config}\n")

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the server and wait until *this* process says it is ready: connecting to the port
        is not enough, another test's server may hold it (free_port races between processes)."""
        ready_before = self._log_text().count("Server is ready")
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [self.binary, "-c", str(self.config_path)], stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                if not self._started_once and "address already in use" in self._log_text():
                    self.port = free_port()  # another process took the port first: take another
                    self._write_config()
                    self.start()
                    return
                raise RuntimeError(f"nats-server exited: {self._log_text()[-2000:]}")
            if self._log_text().count("Server is ready") > ready_before:
                self._started_once = True
                return
            time.sleep(0.02)
        raise RuntimeError("nats-server did not start listening within 10 s")

    def _log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A nats-server with no authentication, on a loopback port of its own."""
    server = NatsServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def start_nats(tmp_path: Path, config: str = "") -> NatsServer:
    """A started server with ``config`` (stop it yourself, or use ``nats_server``)."""
    folder = tmp_path / f"nats-{os.urandom(3).hex()}"
    folder.mkdir()
    server = NatsServer(folder, config)
    server.start()
    return server


@dataclass
class WorkerProcess:
    """A ``nexus worker`` subprocess; ``line`` is what it printed once serving."""

    process: subprocess.Popen[str]
    name: str
    line: str

    def stop(self) -> int:
        """SIGTERM (as Ctrl+C does), then its exit status; killed if it hangs."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        return self.process.returncode


def start_worker(
    url: str,
    name: str,
    data_dir: Path,
    *extra: str,
    timeout: float = 120.0,
) -> WorkerProcess:
    """``nexus worker --connect url --name name`` with its own data folder, once it serves
    (its one line printed); raises with what it said if it exits or stays silent."""
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "NEXUS_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "nexus_desktop.cli", "worker", "--connect", url, "--name", name, *extra]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if line.startswith("Serving"):
            return WorkerProcess(process, name, line.strip())
        if not line and process.poll() is not None:
            break
    process.kill()
    _, errors = process.communicate(timeout=5)
    raise RuntimeError(f"nexus worker {name} did not start serving: {errors.strip()[-500:]}")
