"""Who may use the bus: passwords, NKeys, TLS and subject permissions, each against a real
nats-server on a loopback port, each refusal beside the same thing done right."""

from __future__ import annotations

import asyncio
import base64
import datetime
import hashlib
import ipaddress
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import nkeys  # type: ignore[import-untyped]
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from nexus_desktop.bus.nats_synapse import NatsSynapse
from nexus_desktop.bus.signals import Kind, Signal
from nexus_desktop.bus.synapse import BusAuthError, BusError, Connection
from tests.nats_support import NatsServer, start_nats

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_CONFIG = ROOT / "docs" / "examples" / "nats-server.conf"


def run(body: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(asyncio.wait_for(body(), 60))


def user_seed() -> tuple[str, str]:
    """A fresh NKey user: (seed, public key)."""
    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    return seed.decode(), nkeys.from_seed(bytearray(seed)).public_key.decode()


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


async def connect_and_round_trip(connection: Connection) -> None:
    """Connects and proves the connection carries a request and its answer."""
    synapse = NatsSynapse(connection)
    await synapse.connect()

    async def echo(signal: Signal, reply: str) -> None:
        await synapse.publish(reply, Signal(Kind.RESULT, task_id=signal.task_id))

    try:
        await synapse.subscribe("nexus.echo", echo)
        answer = await synapse.request("nexus.echo", Signal(Kind.TASK, task_id="t1"), timeout=2)
        assert answer.task_id == "t1"
    finally:
        await synapse.close()


async def refused(connection: Connection, error: type[BusError] = BusAuthError) -> str:
    started = time.monotonic()
    with pytest.raises(error) as caught:
        await NatsSynapse(connection).connect()
    assert time.monotonic() - started < 3, "the refusal must be told within seconds, not after retries"
    return str(caught.value)


@pytest.fixture
def password_server(tmp_path: Path) -> Any:
    server = start_nats(
        tmp_path, 'authorization { users = [ { user: app, password: "right-horse-battery" } ] }'
    )
    yield server
    server.stop()


def test_a_wrong_password_is_refused_within_seconds_and_the_right_one_connects(
    password_server: NatsServer, tmp_path: Path
) -> None:
    wrong = write(tmp_path / "wrong.txt", "app:wrong-staple\n")
    right = write(tmp_path / "right.txt", "app:right-horse-battery\n")

    message = run(lambda: refused(Connection(password_server.url, credentials=wrong)))
    assert message == (
        f"The NATS server at {password_server.url} refused the credentials in {wrong}: "
        "check the user and password, NKey seed or .creds file with the server's administrator"
    )
    assert "wrong-staple" not in message
    missing = run(lambda: refused(Connection(password_server.url)))
    assert "asks for credentials" in missing
    run(lambda: connect_and_round_trip(Connection(password_server.url, credentials=right)))


def test_a_wrong_nkey_is_refused_within_seconds_and_the_right_one_connects(tmp_path: Path) -> None:
    seed, public = user_seed()
    stranger_seed, _ = user_seed()
    server = start_nats(tmp_path, f"authorization {{ users = [ {{ nkey: {public} }} ] }}")
    try:
        stranger = write(tmp_path / "stranger.nk", stranger_seed + "\n")
        message = run(lambda: refused(Connection(server.url, credentials=stranger)))
        assert message.startswith(f"The NATS server at {server.url} refused the credentials in {stranger}")
        run(
            lambda: connect_and_round_trip(
                Connection(server.url, credentials=write(tmp_path / "me.nk", seed))
            )
        )
    finally:
        server.stop()


def new_key(prefix: int) -> tuple[str, str, Any]:
    """A fresh NKey of ``prefix``'s role: (seed, public key, key pair)."""
    seed = nkeys.encode_seed(os.urandom(32), prefix)
    pair = nkeys.from_seed(bytearray(seed))
    return seed.decode(), pair.public_key.decode(), pair


def signed_jwt(issuer: Any, subject: str, nats_claims: dict[str, Any]) -> str:
    """A NATS JWT for ``subject`` signed by ``issuer`` (as nsc makes them)."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    claims: dict[str, Any] = {"iat": int(time.time()), "iss": issuer.public_key.decode(), "sub": subject}
    claims["nats"] = {"version": 2, **nats_claims}
    claims["jti"] = base64.b32encode(hashlib.sha512(json.dumps(claims).encode()).digest()[:32]).decode()
    head = (
        b64(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}).encode())
        + "."
        + b64(json.dumps(claims).encode())
    )
    return head + "." + b64(issuer.sign(head.encode()))


def operator_mode(account_pair: Any) -> tuple[str, str]:
    """A server config trusting a new operator that signed ``account_pair``'s account; and the
    account's public key."""
    _, operator_public, operator = new_key(nkeys.PREFIX_BYTE_OPERATOR)
    account_public = account_pair.public_key.decode()
    unlimited = {"subs": -1, "conn": -1, "leaf": -1, "imports": -1, "exports": -1, "data": -1, "payload": -1}
    account = signed_jwt(
        operator, account_public, {"type": "account", "limits": {**unlimited, "wildcards": True}}
    )
    operator_jwt = signed_jwt(operator, operator_public, {"type": "operator"})
    config = (
        f"operator: {operator_jwt}\nresolver: MEMORY\nresolver_preload: {{\n {account_public}: {account}\n}}"
    )
    return config, account_public


def creds_file(path: Path, account_pair: Any) -> Path:
    """A .creds file (user JWT and seed) for a new user of ``account_pair``'s account."""
    seed, public, _ = new_key(nkeys.PREFIX_BYTE_USER)
    user = signed_jwt(
        account_pair, public, {"type": "user", "pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1}
    )
    return write(
        path,
        f"-----BEGIN NATS USER JWT-----\n{user}\n------END NATS USER JWT------\n\n"
        f"-----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n",
    )


def test_a_creds_file_of_another_account_is_refused_and_one_of_the_servers_connects(tmp_path: Path) -> None:
    _, _, account = new_key(nkeys.PREFIX_BYTE_ACCOUNT)
    _, _, other_account = new_key(nkeys.PREFIX_BYTE_ACCOUNT)
    config, _ = operator_mode(account)
    server = start_nats(tmp_path, config)
    try:
        stranger = creds_file(tmp_path / "stranger.creds", other_account)
        message = run(lambda: refused(Connection(server.url, credentials=stranger)))
        assert message.startswith(f"The NATS server at {server.url} refused the credentials in {stranger}")
        mine = creds_file(tmp_path / "mine.creds", account)
        run(lambda: connect_and_round_trip(Connection(server.url, credentials=mine)))
    finally:
        server.stop()


def test_a_credentials_file_of_no_known_format_says_which_formats_work(
    password_server: NatsServer, tmp_path: Path
) -> None:
    for name, text in (
        ("token.txt", "just-a-token"),
        ("damaged.nk", "SUAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        ("half.creds", "-----BEGIN NATS USER JWT-----\neyJ0eXAiOiJKV1QifQ\n------END NATS USER JWT------\n"),
    ):
        connection = Connection(password_server.url, credentials=write(tmp_path / name, text))
        message = run(lambda: refused(connection, BusError))  # noqa: B023 (run at once)
        assert str(tmp_path / name) in message
        assert "just-a-token" not in message
        if name == "token.txt":
            assert "an NKey seed file (its text starts with SU), or a file holding user:password" in message
    absent = run(lambda: refused(Connection(password_server.url, credentials=tmp_path / "absent"), BusError))
    assert absent.startswith(f"Cannot read the credentials file {tmp_path / 'absent'}")


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that is its own CA: (certificate, key) in PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "nexus test nats")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path = write(folder / "cert.pem", certificate.public_bytes(serialization.Encoding.PEM).decode())
    key_path = folder / "key.pem"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def test_tls_connects_with_the_servers_ca_and_refuses_clearly_without_it(tmp_path: Path) -> None:
    cert, key = self_signed_certificate(tmp_path)
    server = start_nats(tmp_path, f'tls {{ cert_file: "{cert}"\n key_file: "{key}" }}')
    tls_url = server.url.replace("nats://", "tls://")
    try:
        for url in (tls_url, server.url):
            message = run(lambda: refused(Connection(url), BusError))  # noqa: B023
            assert message == (
                f"The NATS server at {url} shows a TLS certificate this PC does not trust: give the "
                "server's CA certificate file (--tls-ca, or Settings → Remote worker → TLS CA)"
            )
        missing = run(lambda: refused(Connection(tls_url, tls_ca=tmp_path / "no-such-ca.pem"), BusError))
        assert missing.startswith(f"Cannot use {tmp_path / 'no-such-ca.pem'} as the TLS CA file")
        run(lambda: connect_and_round_trip(Connection(tls_url, tls_ca=cert)))
        run(lambda: connect_and_round_trip(Connection(server.url, tls_ca=cert)))
    finally:
        server.stop()


def test_asking_for_tls_from_a_server_without_it_is_refused_not_sent_in_the_clear(tmp_path: Path) -> None:
    server = start_nats(tmp_path)
    tls_url = server.url.replace("nats://", "tls://")
    try:
        message = run(lambda: refused(Connection(tls_url), BusError))
        assert message.startswith(f"The NATS server at {tls_url} does not use TLS, though TLS was asked for")
        run(lambda: connect_and_round_trip(Connection(server.url)))
    finally:
        server.stop()


def example_server(tmp_path: Path) -> NatsServer:
    """The documented example configuration, with this test's passwords."""
    config = EXAMPLE_CONFIG.read_text()
    assert "CHANGE-ME-app-password" in config and "CHANGE-ME-worker-password" in config
    config = config.replace("CHANGE-ME-app-password", "app-test-pw").replace(
        "CHANGE-ME-worker-password", "wk-test-pw"
    )
    return start_nats(tmp_path, config)


def test_the_example_config_lets_a_worker_take_only_its_own_tasks(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = example_server(tmp_path)
    app_login = write(tmp_path / "app.txt", "app:app-test-pw")
    worker_login = write(tmp_path / "worker.txt", "worker:wk-test-pw")

    async def body() -> tuple[list[str], list[str], list[str]]:
        app = NatsSynapse(Connection(server.url, credentials=app_login))
        worker = NatsSynapse(Connection(server.url, credentials=worker_login, name="second-pc"))
        own: list[str] = []
        others: list[str] = []
        reached_other_worker: list[str] = []

        async def take_own(signal: Signal, reply: str) -> None:
            own.append(signal.task_id)
            await worker.publish(reply, Signal(Kind.RESULT, task_id=signal.task_id, sender="second-pc"))

        async def take_others(signal: Signal, reply: str) -> None:
            others.append(signal.task_id)

        async def other_worker(signal: Signal, reply: str) -> None:
            reached_other_worker.append(signal.task_id)

        await app.connect()
        await worker.connect()
        try:
            await worker.subscribe("nexus.worker.other-pc.task", take_others)
            await worker.subscribe("nexus.worker.second-pc.task", take_own)
            await worker.flush()  # the server has taken (or refused) both subscriptions
            await app.subscribe("nexus.worker.other-pc.task", other_worker)  # the app may listen there
            await app.flush()
            await app.publish("nexus.worker.other-pc.task", Signal(Kind.TASK, task_id="not-yours"))
            answer = await app.request(
                "nexus.worker.second-pc.task", Signal(Kind.TASK, task_id="yours"), timeout=2
            )
            assert answer.sender == "second-pc"
            # Nor may the worker send tasks to another worker.
            await worker.publish("nexus.worker.other-pc.task", Signal(Kind.TASK, task_id="forged"))
            await worker.flush()
            await app.flush()
            await asyncio.sleep(0.1)
            return own, others, reached_other_worker
        finally:
            await worker.close()
            await app.close()

    try:
        with caplog.at_level(logging.WARNING, logger="nexus_desktop.bus.nats_synapse"):
            own, others, reached_other_worker = run(body)
    finally:
        server.stop()
    assert own == ["yours"]
    assert others == []
    assert reached_other_worker == ["not-yours"]  # the app's own task got there; the forged one did not
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert any("subscription to" in m and "nexus.worker.other-pc.task" in m for m in refusals), refusals
    assert any("publish to" in m and "nexus.worker.other-pc.task" in m for m in refusals), refusals
    assert all("ask its administrator to allow it" in m for m in refusals)


def test_dendrites_under_the_example_config_serve_and_stream_a_neuron(tmp_path: Path) -> None:
    from nexus_desktop.bus.axon import Axon, Piece, TaskContext
    from nexus_desktop.bus.dendrite import Dendrite

    server = example_server(tmp_path)
    app_login = write(tmp_path / "app.txt", "app:app-test-pw")
    worker_login = write(tmp_path / "worker.txt", "worker:wk-test-pw")

    async def shout(data: dict[str, Any], context: TaskContext) -> dict[str, Any]:
        return {"text": data["text"].upper()}

    async def shout_stream(data: dict[str, Any], context: TaskContext) -> Any:
        for word in data["text"].split():
            yield Piece({"text": word.upper()})
        yield {"text": data["text"].upper()}

    async def body() -> tuple[str, list[str]]:
        worker_synapse = NatsSynapse(Connection(server.url, credentials=worker_login))
        app_synapse = NatsSynapse(Connection(server.url, credentials=app_login))
        worker = Dendrite(worker_synapse, name="second-pc", role="worker")
        worker.register(Axon("shout", shout, stream=shout_stream))
        app = Dendrite(app_synapse, name="gaming-pc")
        try:
            await worker.start()
            await app.start()
            answer = await app.dispatch_and_wait("shout", {"text": "to the stars"}, timeout=5)
            tokens = [s.payload["text"] async for s in app.stream("shout", {"text": "warp now"}, timeout=5)]
            return f"{answer.worker}: {answer.output['text']}", tokens
        finally:
            await app.aclose()
            await worker.aclose()
            await app_synapse.close()
            await worker_synapse.close()

    try:
        answered, tokens = run(body)
    finally:
        server.stop()
    assert answered == "second-pc: TO THE STARS"
    assert tokens == ["WARP", "NOW", "WARP NOW"]
    # The least-privilege worker never asked for anything it may not do (the server logs each).
    assert "Violation" not in server.log_path.read_text()
