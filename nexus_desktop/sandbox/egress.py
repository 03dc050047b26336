"""NEXUS's network gatekeeper: the only way out for a module that may use the network.

A contained module can open TCP connections to one port only, this proxy's (Landlock network
rules); the proxy runs in the app, outside the module's reach, and lets through exactly the
``host`` / ``host:port`` pairs its manifest declares and the user approved:
- an entry without a port means the web ports, 80 and 443;
- only an entry that names a local target (``localhost``, a private address such as
  ``192.168.1.20:8080``, a single-label or ``.local``/``.lan``/``.home.arpa`` name) reaches this
  PC or the home network; every other name, ``*`` and ``*.example.com`` included, is refused when
  it resolves to a loopback, private, link-local or multicast address (a public name whose DNS
  answers 127.0.0.1 must not reach the user's own services);
- the proxy resolves the name itself and connects to the address it checked, so a name that
  resolves differently the second time cannot slip past.

It speaks what HTTP clients expect of ``HTTPS_PROXY``/``HTTP_PROXY`` (``CONNECT host:port``, and
absolute-URI requests for plain HTTP), with a per-module password, so other programs on the PC
cannot borrow it.  Threads, not the event loop: a slow or hostile peer never stalls the app.
"""

from __future__ import annotations

import base64
import fnmatch
import ipaddress
import logging
import secrets
import selectors
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

WEB_PORTS = (80, 443)
_HEAD_LIMIT = 16 * 1024
_HEAD_SECONDS = 10.0
_IDLE_SECONDS = 120.0
_CONNECT_SECONDS = 10.0
_MAX_CONNECTIONS = 32
_USER = "nexus"


@dataclass(frozen=True)
class Rule:
    pattern: str
    ports: tuple[int, ...]

    @classmethod
    def parse(cls, entry: str) -> Rule:
        """``host``, ``host:port``, ``*.domain[:port]``, ``*[:port]``, ``[v6 address]:port``."""
        host, port = entry.strip().lower(), ""
        if host.startswith("["):
            host, _, after = host[1:].partition("]")
            port = after[1:] if after.startswith(":") else ""
        elif host.count(":") == 1:
            host, port = host.split(":")
        return cls(host.rstrip("."), (int(port),) if port.isdigit() else WEB_PORTS)

    @property
    def explicit(self) -> bool:
        return "*" not in self.pattern

    @property
    def local(self) -> bool:
        """The entry itself names this PC or the home network."""
        if not self.explicit:
            return False
        try:
            return not _global(self.pattern)
        except ValueError:  # a name, not an address
            return (
                self.pattern == "localhost"
                or "." not in self.pattern
                or self.pattern.endswith((".localhost", ".local", ".lan", ".home.arpa", ".internal"))
            )

    def matches(self, host: str, port: int) -> bool:
        if port not in self.ports:
            return False
        return host == self.pattern or (not self.explicit and fnmatch.fnmatchcase(host, self.pattern))


def describe(entry: str) -> str:
    """One manifest network entry as the approval dialog states it: what the gatekeeper allows."""
    rule = Rule.parse(entry)
    ports = "web ports 80 and 443" if rule.ports == WEB_PORTS else f"port {rule.ports[0]}"
    if rule.pattern == "*":
        return f"Connect to any host on the internet ({ports}; not this PC or your home network)"
    if not rule.explicit:
        domain = rule.pattern.removeprefix("*.")
        return f"Connect to any host under {domain} ({ports}; not this PC or your home network)"
    return f"Connect to {rule.pattern} ({ports})"


def _global(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


class Refused(Exception):
    """Why a connection was not let through; the text is shown to the module (and the user)."""


def resolve(
    rules: Sequence[Rule],
    module: str,
    host: str,
    port: int,
    getaddrinfo: Callable[..., list[tuple]] = socket.getaddrinfo,  # type: ignore[type-arg]
) -> list[tuple[int, str]]:
    """The (family, address) pairs ``host:port`` may be reached at, or ``Refused`` saying why not."""
    host = host.strip().lower().strip("[]").rstrip(".")
    matching = [rule for rule in rules if rule.matches(host, port)]
    if not matching:
        raise Refused(
            f"{module} may not connect to {host}:{port}; its manifest must list it under permissions.network"
        )
    try:
        infos = getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as error:
        raise Refused(f"{host} could not be found ({error})") from None
    local = any(rule.local for rule in matching)
    allowed = [(family, str(sockaddr[0])) for family, _, _, _, sockaddr in infos]
    allowed = [(family, address) for family, address in allowed if local or _global(address)]
    if allowed:
        return allowed
    raise Refused(
        f"{module} may not connect to {host}:{port}: it is on this PC or your home network, "
        "which only an entry naming a local host (localhost, 192.168.x.y) may reach"
    )


class EgressProxy:
    """One module's gatekeeper, listening on 127.0.0.1 until ``close``."""

    def __init__(
        self, module: str, allowed: Sequence[str], *, on_refused: Callable[[str], None] | None = None
    ) -> None:
        self.module = module
        self.rules = [Rule.parse(entry) for entry in allowed]
        self.password = secrets.token_hex(16)
        self._on_refused = on_refused
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._slots = threading.BoundedSemaphore(_MAX_CONNECTIONS)
        self._closed = False
        threading.Thread(target=self._accept, name=f"egress-{module}", daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://{_USER}:{self.password}@127.0.0.1:{self.port}"

    def environment(self) -> dict[str, str]:
        """What a child's HTTP clients read to send everything through the gatekeeper."""
        names = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")
        return {**dict.fromkeys(names, self.url), "NO_PROXY": "", "no_proxy": ""}

    def close(self) -> None:
        self._closed = True
        try:
            self._listener.close()
        except OSError:
            pass

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if not self._slots.acquire(blocking=False):
                client.close()  # over its budget of open connections
                continue
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            with client:
                client.settimeout(_HEAD_SECONDS)
                head, early = _read_head(client)
                try:
                    upstream, request = self._open(head)
                except Refused as refusal:
                    self._refuse(client, str(refusal))
                    return
                with upstream:
                    if request is None:
                        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    upstream.sendall((request or b"") + early)
                    _pipe(client, upstream)
        except (OSError, ValueError) as error:
            log.debug("Egress for %s ended: %s", self.module, error)
        finally:
            self._slots.release()

    def _open(self, head: bytes) -> tuple[socket.socket, bytes | None]:
        """The upstream socket, and the request to forward (None for a CONNECT tunnel)."""
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = [*lines[0].split(" "), "", "", ""][:3]
        headers = [line for line in lines[1:] if line]
        if not self._authorised(headers):
            raise Refused("this gatekeeper belongs to another module")
        if method.upper() == "CONNECT":
            host, _, port_text = target.rpartition(":")
            port = int(port_text) if port_text.isdigit() else 0
            forward = None
        else:
            url = urlsplit(target)
            if url.scheme != "http" or not url.hostname:
                raise Refused("only CONNECT and plain http:// requests go through the gatekeeper")
            host, port = url.hostname, url.port or 80
            path = url.path or "/"
            if url.query:
                path += "?" + url.query
            kept = [
                h for h in headers if not h.lower().startswith(("proxy-authorization:", "proxy-connection:"))
            ]
            forward = "\r\n".join([f"{method} {path} {version}", *kept, "", ""]).encode("latin-1")
        problem: OSError | None = None
        for family, address in resolve(self.rules, self.module, host, port):
            upstream = socket.socket(family, socket.SOCK_STREAM)
            upstream.settimeout(_CONNECT_SECONDS)
            try:
                upstream.connect((address, port))
            except OSError as error:
                upstream.close()
                problem = error
                continue
            return upstream, forward
        raise Refused(f"{host}:{port} cannot be reached ({problem})")

    def _authorised(self, headers: list[str]) -> bool:
        expected = "basic " + base64.b64encode(f"{_USER}:{self.password}".encode()).decode().lower()
        for header in headers:
            name, _, value = header.partition(":")
            if name.strip().lower() == "proxy-authorization":
                return secrets.compare_digest(value.strip().lower(), expected)
        return False

    def _refuse(self, client: socket.socket, why: str) -> None:
        if self._on_refused is not None:
            self._on_refused(why)
        body = f"NEXUS refused this connection: {why}.\n".encode()
        client.sendall(
            b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain; charset=utf-8\r\n"
            + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )


def _read_head(client: socket.socket) -> tuple[bytes, bytes]:
    """The request head, and whatever the client sent after it (a request body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = client.recv(4096)
        if not chunk:
            raise ValueError("the request ended before its headers did")
        data += chunk
        if len(data) > _HEAD_LIMIT:
            raise ValueError("request headers too long")
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def _pipe(a: socket.socket, b: socket.socket) -> None:
    a.settimeout(None)
    b.settimeout(None)
    with selectors.DefaultSelector() as selector:
        selector.register(a, selectors.EVENT_READ, b)
        selector.register(b, selectors.EVENT_READ, a)
        while True:
            ready = selector.select(_IDLE_SECONDS)
            if not ready:
                return
            for key, _ in ready:
                source: socket.socket = key.fileobj  # type: ignore[assignment]
                data = source.recv(65536)
                if not data:
                    return
                key.data.sendall(data)
