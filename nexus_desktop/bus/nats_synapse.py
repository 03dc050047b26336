"""The ``nats://`` Synapse: nats-py against a real nats-server.

Signals are encoded at the edge (``signals.encode``) and every message that arrives is checked by
``signals.decode`` before a handler sees it: a malformed, oversized or unknown-kind message is
dropped and logged (rate-limited, never its content).

Connecting fails fast with a sentence that says what to do: ``BusUnavailableError`` when nothing
answers within about 2 s, ``BusAuthError`` when the server refuses the credentials (at once: the
first attempt is not retried).  Once connected, the connection comes back by itself, forever,
every ``RECONNECT_WAIT`` seconds, and the server is told the subscriptions again; ``reconnected``
tells whoever listens (a Dendrite announces itself again), ``disconnected`` that it went away.

Handlers are awaited inline: nats-py hands one subscription's messages over one at a time, so a
handler must be quick (start a task for slow work) or it holds up every later message on its
subject.

TLS is used for a ``tls://`` URL or when a ``tls_ca`` file is given (that CA is trusted, else the
system's); a server that does not then use TLS is refused rather than talked to in the clear.

Credentials are a file, read when connecting, never logged: a NATS ``.creds`` file (a user JWT and
its NKey seed, as ``nsc`` writes them), an NKey seed file (``SU...``), or ``user:password``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
import time
from pathlib import Path
from typing import Any

import nats
import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSubscription

from nexus_desktop.bus.signals import BadSignal, Signal, decode, encode
from nexus_desktop.bus.synapse import (
    BusAuthError,
    BusError,
    BusTimeoutError,
    BusUnavailableError,
    Connection,
    Handler,
    NoRespondersError,
)
from nexus_desktop.changes import Listeners

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 2.0
RECONNECT_WAIT = 0.25
LOG_EVERY_SECONDS = 10.0
_SEND_ERRORS = (
    nats.errors.MaxPayloadError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionDrainingError,
)
CREDENTIAL_FORMATS = (
    "a NATS .creds file (from nsc), an NKey seed file (its text starts with SU), "
    "or a file holding user:password on one line"
)


def credential_options(path: Path) -> dict[str, Any]:
    """nats-py's connect options for the credentials file at ``path`` (``BusError`` says what is wrong)."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as error:
        raise BusError(
            f"Cannot read the credentials file {path}: {error.__class__.__name__}; check the path"
        ) from None
    if "-----BEGIN NATS USER JWT-----" in text:
        if "-----BEGIN USER NKEY SEED-----" not in text:
            raise BusError(f"The .creds file {path} has no NKey seed: export it again with nsc")
        return {"user_credentials": str(path)}
    if text.startswith("SU") and len(text.split()) == 1:
        import nkeys  # type: ignore[import-untyped]

        try:
            nkeys.from_seed(bytearray(text.encode())).wipe()
        except Exception:
            raise BusError(f"The NKey seed in {path} is damaged: copy the seed file again") from None
        return {"nkeys_seed": str(path)}
    user, colon, password = text.partition(":")
    if colon and user and password and "\n" not in text and " " not in user:
        return {"user": user, "password": password}
    raise BusError(f"{path} is not a credentials file NEXUS knows: use {CREDENTIAL_FORMATS}")


def tls_context(connection: Connection) -> ssl.SSLContext | None:
    """An SSL context trusting ``tls_ca`` (or the system's CAs for a ``tls://`` URL); None for plain."""
    if connection.tls_ca is not None:
        try:
            return ssl.create_default_context(cafile=str(connection.tls_ca))
        except (OSError, ssl.SSLError) as error:
            raise BusError(
                f"Cannot use {connection.tls_ca} as the TLS CA file: {error.__class__.__name__}; "
                "give the server's CA certificate in PEM form"
            ) from None
    if connection.url.lower().startswith("tls://"):
        return ssl.create_default_context()
    return None


class RateLimitedLog:
    """Logs one line per key at most every ``every`` seconds, with how many were held back."""

    def __init__(self, every: float = LOG_EVERY_SECONDS) -> None:
        self.every = every
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def warning(self, key: str, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last.get(key, -self.every) < self.every:
            self._held[key] = self._held.get(key, 0) + 1
            return
        held = self._held.pop(key, 0)
        if len(self._last) > 256:  # keys name refusals and error kinds: keep a bounded few
            self._last.clear()
            self._held.clear()
        self._last[key] = now
        suffix = f" ({held} more like it since the last report)" if held else ""
        log.warning(message + suffix, *args)


class _Subscription:
    def __init__(self, inner: NatsSubscription) -> None:
        self._inner = inner

    async def unsubscribe(self) -> None:
        try:
            await self._inner.unsubscribe()
        except (nats.errors.ConnectionClosedError, nats.errors.BadSubscriptionError):
            pass  # already gone with the connection


class NatsSynapse:
    """A Synapse on one nats-py connection (see the module's docstring)."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.url = connection.url
        self.reconnected: Listeners[str] = Listeners()
        """Emitted with the URL (on the event loop) each time a lost connection is back and the
        subscriptions are resumed: a Dendrite subscribes to announce itself (REGISTER) again."""
        self.disconnected: Listeners[str] = Listeners()
        """Emitted with the URL when the connection is lost (it is being re-established)."""
        self._client: Client | None = None
        self._wants_tls = False
        self._connecting_errors: list[Exception] = []
        self._log = RateLimitedLog()

    # -- connecting -------------------------------------------------------------------------

    async def connect(self) -> None:
        if self._client is not None and not self._client.is_closed:
            return  # connected, or reconnecting by itself
        options: dict[str, Any] = {}
        if self.connection.credentials is not None:
            options.update(await asyncio.to_thread(credential_options, self.connection.credentials))
        context = tls_context(self.connection)
        self._wants_tls = context is not None
        if context is not None:
            options["tls"] = context
        client = Client()
        self._connecting_errors = []
        try:
            await asyncio.wait_for(
                client.connect(
                    servers=[self.url],
                    name=self.connection.name or None,
                    connect_timeout=int(CONNECT_TIMEOUT),
                    reconnect_time_wait=RECONNECT_WAIT,  # type: ignore[arg-type]  # nats-py takes seconds as float
                    # The first attempt is not retried (a refused password stays refused); one more
                    # try of an address that did not answer, then the clear error.
                    allow_reconnect=False,
                    max_reconnect_attempts=1,
                    error_cb=self._on_error,
                    disconnected_cb=self._on_disconnected,
                    reconnected_cb=self._on_reconnected,
                    drain_timeout=2,
                    # A server that went silent (a cable pulled) is noticed within about 15 s.
                    ping_interval=5,
                    max_outstanding_pings=2,
                    **options,
                ),
                CONNECT_TIMEOUT + 0.5,
            )
        except Exception as error:  # nats-py raises many kinds; each becomes one sentence
            await _close_quietly(client)
            raise self._connect_error(error) from None
        finally:
            self._connecting_errors = []
        if context is not None and not _uses_tls(client):
            await _close_quietly(client)
            raise BusError(
                f"The NATS server at {self.url} does not use TLS, though TLS was asked for: turn on tls "
                f"in its configuration, or connect with nats://{_host_port(self.url)} and no TLS CA file"
            )
        # Connected: from now on a lost connection is re-established, however long it takes.
        client.options["allow_reconnect"] = True
        client.options["max_reconnect_attempts"] = -1
        self._client = client

    def _connect_error(self, error: Exception) -> BusError:
        causes = [*self._connecting_errors, error]
        text = " ".join(str(cause) for cause in causes).lower()
        url = self.url
        if "authorization violation" in text or any(
            isinstance(c, nats.errors.AuthorizationError) for c in causes
        ):
            if self.connection.credentials is None:
                return BusAuthError(
                    f"The NATS server at {url} asks for credentials: give the credentials file its "
                    "administrator made for you (--credentials, or Settings → Remote worker)"
                )
            return BusAuthError(
                f"The NATS server at {url} refused the credentials in {self.connection.credentials}: "
                "check the user and password, NKey seed or .creds file with the server's administrator"
            )
        if any(isinstance(c, ssl.SSLCertVerificationError) for c in causes):
            return BusError(
                f"The NATS server at {url} shows a TLS certificate this PC does not trust: give the "
                "server's CA certificate file (--tls-ca, or Settings → Remote worker → TLS CA)"
            )
        if any(isinstance(c, ssl.SSLError) for c in causes) or ("tls" in text and "required" in text):
            return BusError(
                f"TLS with the NATS server at {url} failed: use tls://{_host_port(url)} and the "
                "server's CA file, or check the server's tls settings"
            )
        return BusUnavailableError(
            f"No NATS server answers at {url}: start nats-server there, or check the address and the firewall"
        )

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await _close_quietly(client)

    # -- callbacks from nats-py (on the event loop) -------------------------------------------

    async def _on_error(self, error: Exception) -> None:
        if self._client is None:  # still connecting: connect() turns these into one sentence
            self._connecting_errors.append(error)
            return
        if "permissions violation" in str(error).lower():
            refusal = str(error)[:200]
            self._log.warning(
                "refused:" + refusal,
                "The NATS server refused: %s; ask its administrator to allow it",
                refusal,
            )
            return
        self._log.warning(
            "error:" + error.__class__.__name__, "NATS at %s: %s", self.url, error.__class__.__name__
        )

    async def _on_disconnected(self) -> None:
        if self._client is None:
            return
        log.warning("Lost the NATS server at %s; reconnecting every %.2f s", self.url, RECONNECT_WAIT)
        self.disconnected.emit(self.url)

    async def _on_reconnected(self) -> None:
        client = self._client
        if client is not None and self._wants_tls and not _uses_tls(client):
            log.error(
                "The NATS server at %s came back without TLS: disconnected; reconnect by hand", self.url
            )
            await self.close()
            return
        log.info("Back on the NATS server at %s", self.url)
        self.reconnected.emit(self.url)

    # -- the Synapse ------------------------------------------------------------------------

    def _connected(self) -> Client:
        if self._client is None or self._client.is_closed:
            raise BusUnavailableError(f"Not connected to the NATS server at {self.url}: connect first")
        return self._client

    async def publish(self, subject: str, signal: Signal, reply: str = "") -> None:
        data = encode(signal)
        try:
            await self._connected().publish(subject, data, reply=reply)
        except _SEND_ERRORS as error:
            raise self._send_error(error, data) from None

    def _send_error(self, error: Exception, data: bytes) -> Exception:
        """nats-py's refusal to send, as a sentence (plain try/except: this is the hot path)."""
        if isinstance(error, nats.errors.MaxPayloadError):
            return BadSignal(
                f"A signal of {len(data)} bytes is over the NATS server's limit (max_payload): "
                "raise max_payload in its configuration, or send less"
            )
        if isinstance(error, nats.errors.OutboundBufferLimitError):
            return BusUnavailableError(
                f"The NATS server at {self.url} has been away too long to hold more messages: "
                "check that it is running"
            )
        return BusUnavailableError(f"Not connected to the NATS server at {self.url}: connect first")

    async def subscribe(self, subject: str, handler: Handler) -> _Subscription:
        async def deliver(message: Msg) -> None:
            try:
                signal = decode(message.data)
            except BadSignal as error:
                self._log.warning(
                    "bad",
                    "Dropped a message on %s that is not a valid signal (%d bytes): %s",
                    message.subject,
                    len(message.data),
                    _reason(error),
                )
                return
            try:
                await handler(signal, message.reply or "")
            except Exception:
                log.exception("A handler for %s failed on a %s signal", message.subject, signal.kind.value)

        try:
            inner = await self._connected().subscribe(subject, cb=deliver)
        except _SEND_ERRORS as error:
            raise self._send_error(error, b"") from None
        return _Subscription(inner)

    async def request(self, subject: str, signal: Signal, timeout: float) -> Signal:
        data = encode(signal)
        try:
            answer = await self._connected().request(subject, data, timeout=timeout)
        except _SEND_ERRORS as error:
            raise self._send_error(error, data) from None
        except nats.errors.NoRespondersError:
            raise NoRespondersError(f"Nobody listens on {subject} any more: the worker has gone") from None
        except nats.errors.TimeoutError:
            raise BusTimeoutError(
                f"No answer on {subject} within {timeout:g} s: try again, or check the worker"
            ) from None
        try:
            return decode(answer.data)
        except BadSignal as error:
            raise BusError(f"The answer on {subject} was not a valid signal ({_reason(error)})") from None

    def inbox(self) -> str:
        return self._connected().new_inbox()

    async def flush(self, timeout: float = 2.0) -> None:
        """Wait until the server has taken everything sent on this connection so far (a round
        trip).  ``subscribe`` does not wait: messages this connection sends after it are matched
        by the server in order, but another connection's may reach the server first; tests and
        callers that need the subscription live for everyone wait here."""
        try:
            await self._connected().flush(timeout)  # type: ignore[arg-type]  # seconds, float is fine
        except nats.errors.TimeoutError:
            raise BusTimeoutError(
                f"The NATS server at {self.url} did not answer within {timeout:g} s"
            ) from None
        except _SEND_ERRORS as error:
            raise self._send_error(error, b"") from None


async def _close_quietly(client: Client) -> None:
    try:
        if client.is_connected:
            await client.drain()
    except Exception:
        pass  # draining is a courtesy; closing below is what matters
    try:
        # Bounded: after a failed TLS handshake, asyncio's wait for the socket to close never ends.
        await asyncio.wait_for(client.close(), 1.0)
    except Exception:
        log.debug("closing a NATS connection failed", exc_info=True)


def _uses_tls(client: Client) -> bool:
    """Whether the server asked for TLS, so nats-py upgraded the connection (it does only then)."""
    return bool(client._server_info.get("tls_required"))


def _reason(error: BadSignal) -> str:
    """What was wrong, without the message's content (quoted values and parser details)."""
    return re.split(r"[:'\"]", str(error), maxsplit=1)[0].strip()


def _host_port(url: str) -> str:
    return url.split("://", 1)[-1]
