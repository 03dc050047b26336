"""Keeps the gateway as the settings say: started, moved to another port, or stopped.

Like ``control.prometheus.PrometheusSwitch``: ``apply`` never raises.  A taken port or a keyring
that cannot keep the key is logged, kept in ``problem`` and handed to ``on_problem`` (the window
shows it), and the app goes on without the gateway.  The server runs on the loop that calls
``apply`` (the window's qasync loop, or the CLI's), so replies stream straight from the model.
"""

from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from nexus_desktop.gateway.http import HOST, HttpServer
from nexus_desktop.gateway.key import gateway_key, new_key
from nexus_desktop.gateway.service import Gateway
from nexus_desktop.secrets import KeyringUnavailableError

if TYPE_CHECKING:
    from nexus_desktop.core import AppCore

log = logging.getLogger(__name__)


def base_url(port: int) -> str:
    """What other apps are given as the server's address."""
    return f"http://{HOST}:{port}/v1"


class GatewaySwitch:
    def __init__(self, core: AppCore) -> None:
        self.core = core
        self.server: HttpServer | None = None
        self._gateway: Gateway | None = None
        self.key = ""
        """The key requests must carry (read from the keyring when the gateway starts)."""
        self.problem = ""
        self.on_problem: Callable[[str], object] | None = None
        self._applied: tuple[bool, int] | None = None
        self._lock = asyncio.Lock()

    @property
    def busy(self) -> bool:
        """Whether a reply to another app is being written."""
        return self._gateway is not None and self._gateway.replying > 0

    @property
    def url(self) -> str:
        """The base URL while serving, else ''."""
        return base_url(self.server.port) if self.server is not None else ""

    async def apply(self, enabled: bool, port: int) -> str:
        """Follow the settings; returns why the gateway is not serving as asked, or ''.  A setting
        that did not change is not retried (every settings save comes through here)."""
        async with self._lock:
            if self._applied == (enabled, port):
                return self.problem
            self._applied = (enabled, port)
            if self.server is not None and (not enabled or self.server.port != port):
                await self.server.aclose()
                self.server = None
                log.info("The gateway stopped")
            self.problem = ""
            if enabled and self.server is None:
                self.problem = await self._start(port)
        if self.problem and self.on_problem is not None:
            try:
                self.on_problem(self.problem)
            except Exception:
                log.warning("Showing the gateway notice failed", exc_info=True)
        return self.problem

    async def _start(self, port: int) -> str:
        try:
            self.key = await asyncio.to_thread(gateway_key, self.core.secrets)
        except KeyringUnavailableError as error:
            log.warning("The gateway did not start: %s (%s)", error, error.detail)
            return f"The gateway for other apps did not start: {error}"
        gateway = Gateway(self.core, lambda: self.key)
        server = HttpServer(gateway.routes, gateway.authorize, port)
        try:
            await server.start()
        except OSError as error:
            log.warning("The gateway did not start on %s:%d: %s", HOST, port, error)
            if error.errno in (errno.EADDRINUSE, getattr(errno, "WSAEADDRINUSE", errno.EADDRINUSE)):
                return (
                    f"The gateway for other apps did not start: port {port} on {HOST} is in use by another "
                    "program. Pick another port in Settings → Other apps, or stop the program using it."
                )
            return (
                f"The gateway for other apps did not start on {HOST}:{port} ({error.strerror or error}); "
                "pick another port in Settings → Other apps."
            )
        self.server, self._gateway = server, gateway
        log.info("The gateway serves other apps at %s", base_url(server.port))
        return ""

    async def renew_key(self) -> str:
        """A new key, stored in the keyring and required from the next request on."""
        self.key = await asyncio.to_thread(new_key, self.core.secrets)
        return self.key

    async def aclose(self) -> None:
        async with self._lock:
            self._applied = None
            if self.server is not None:
                await self.server.aclose()
                self.server = None
