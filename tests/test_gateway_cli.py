"""``nexus gateway key`` and ``nexus gateway serve``, run as real processes against a real keyring."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import httpx
import pytest

from nexus_desktop.gateway.key import KEY_NAME
from nexus_desktop.secrets import SecretStore
from tests.servers import free_port

pytestmark = pytest.mark.keyring

NEXUS = [sys.executable, "-m", "nexus_desktop.cli"]


def nexus(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*NEXUS, *args], capture_output=True, text=True, timeout=120, env=os.environ.copy())


def test_gateway_key_prints_the_keyring_key_alone_and_the_same_each_time() -> None:
    first = nexus("gateway", "key")
    assert first.returncode == 0, first.stderr
    key = first.stdout.strip()
    assert first.stdout == key + "\n" and key.startswith("nexus-") and len(key) > 30
    assert nexus("gateway", "key").stdout.strip() == key
    assert SecretStore().get(KEY_NAME) == key


def test_gateway_serve_answers_with_the_key_until_ctrl_c() -> None:
    port = free_port()
    key = nexus("gateway", "key").stdout.strip()
    process = subprocess.Popen(
        [*NEXUS, "gateway", "serve", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith(f"Serving other apps at http://127.0.0.1:{port}/v1"), line
        url = f"http://127.0.0.1:{port}/v1/models"
        assert httpx.get(url, headers={"Authorization": f"Bearer {key}"}, timeout=30).status_code == 200
        assert httpx.get(url, headers={"Authorization": "Bearer nope"}, timeout=30).status_code == 401
        process.send_signal(signal.SIGINT)
        assert process.wait(60) == 0
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0  # the port is free again
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)


def test_gateway_serve_on_a_taken_port_says_so_in_one_line_and_exits_1() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = nexus("gateway", "serve", "--port", str(port))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and f"port {port}" in result.stderr
    assert "Traceback" not in result.stderr
    bad = nexus("gateway", "serve", "--port", "80")
    assert bad.returncode == 1 and "1024-65535" in bad.stderr
