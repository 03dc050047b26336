"""Secrets live in the OS keyring or in memory, never on disk, and never in the logs."""

from __future__ import annotations

import logging
import os
import signal
import stat
import time
from pathlib import Path

import keyring
import pytest
from keyring.backend import KeyringBackend
from keyring.backends import null

from nexus_desktop import logs
from nexus_desktop.secrets import EncryptedSecretFile, KeyringUnavailableError, SecretStore
from tests.conftest_keyring import read_secret_service_value

SECRET = "sk-nexus-test-0123456789abcdef"
UNAVAILABLE_ON_SAVE = (
    "The system keyring is locked or missing, so the key was not saved. "
    "Unlock it, or keep the key for this session only."
)


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    monkeypatch.setenv("NEXUS_DATA_DIR", str(path))
    return path


_BULKY_DIRECTORIES = {".pyenv", ".git", ".venv", "site-packages", "node_modules", "pip", "wheels"}


def files_containing(text: str, roots: list[Path], since: float) -> list[Path]:
    """Files under ``roots`` changed since ``since`` whose bytes contain ``text``."""
    needle = text.encode()
    found = []
    for root in roots:
        for directory, subdirectories, names in os.walk(root):
            # Interpreter and package trees are large and never where a leaked secret would go.
            subdirectories[:] = [d for d in subdirectories if d not in _BULKY_DIRECTORIES]
            for name in names:
                path = Path(directory, name)
                try:
                    info = path.lstat()
                    if not stat.S_ISREG(info.st_mode) or info.st_mtime < since:
                        continue
                    if needle in path.read_bytes():
                        found.append(path)
                except OSError:
                    continue
    return found


# -- The real Secret Service -------------------------------------------------------------------------


@pytest.mark.keyring
def test_saved_key_is_stored_in_gnome_keyring_and_a_fresh_store_reads_it(
    secret_service_keyring: KeyringBackend, keyring_service_name: str
) -> None:
    SecretStore(keyring_service_name).set("remote-api-key", SECRET)

    assert read_secret_service_value(keyring_service_name, "remote-api-key") == SECRET
    assert SecretStore(keyring_service_name).get("remote-api-key") == SECRET
    assert keyring.get_password(keyring_service_name, "remote-api-key") == SECRET


@pytest.mark.keyring
def test_deleted_key_is_gone_from_gnome_keyring(
    secret_service_keyring: KeyringBackend, keyring_service_name: str
) -> None:
    store = SecretStore(keyring_service_name)
    store.set("remote-api-key", SECRET)

    store.delete("remote-api-key")

    assert read_secret_service_value(keyring_service_name, "remote-api-key") is None
    assert SecretStore(keyring_service_name).get("remote-api-key") is None


@pytest.mark.keyring
def test_deleting_a_key_that_was_never_saved_is_fine(
    secret_service_keyring: KeyringBackend, keyring_service_name: str
) -> None:
    SecretStore(keyring_service_name).delete("never-saved")

    assert SecretStore(keyring_service_name).get("never-saved") is None


@pytest.mark.keyring
def test_saving_to_the_keyring_replaces_a_session_only_key(
    secret_service_keyring: KeyringBackend, keyring_service_name: str
) -> None:
    store = SecretStore(keyring_service_name)
    store.set("remote-api-key", "session-value-123", session_only=True)

    store.set("remote-api-key", SECRET)

    assert not store.is_session_only("remote-api-key")
    assert store.get("remote-api-key") == SECRET


@pytest.mark.keyring
def test_doctor_names_the_secret_service_backend(secret_service_keyring: KeyringBackend) -> None:
    assert SecretStore().backend_name() == "keyring.backends.SecretService.Keyring"


@pytest.mark.keyring
def test_locked_keyring_gives_a_clear_error_quickly_and_session_only_still_works(
    locked_keyring: KeyringBackend, keyring_service_name: str
) -> None:
    store = SecretStore(keyring_service_name)

    with pytest.raises(KeyringUnavailableError) as saving:
        store.set("remote-api-key", SECRET)
    with pytest.raises(KeyringUnavailableError) as reading:
        store.get("remote-api-key")

    assert str(saving.value) == UNAVAILABLE_ON_SAVE
    assert "cannot be read" in str(reading.value)
    assert "Locked" in saving.value.detail
    store.set("remote-api-key", SECRET, session_only=True)
    assert store.get("remote-api-key") == SECRET


@pytest.mark.keyring
def test_keyring_that_stops_answering_is_given_up_after_the_timeout(
    secret_service_keyring: KeyringBackend, keyring_service_name: str
) -> None:
    import secretstorage
    from jeepney.bus_messages import message_bus

    connection = secretstorage.dbus_init()
    reply = connection.send_and_get_reply(message_bus.GetConnectionUnixProcessID("org.freedesktop.secrets"))
    daemon_pid = int(reply.body[0])
    connection.close()
    store = SecretStore(keyring_service_name, timeout=3)

    # A frozen daemon is what a keyring waiting on an unlock prompt looks like to the caller.
    os.kill(daemon_pid, signal.SIGSTOP)
    try:
        with pytest.raises(KeyringUnavailableError) as error:
            store.set("remote-api-key", SECRET)
    finally:
        os.kill(daemon_pid, signal.SIGCONT)
    # The abandoned call still completes once the daemon runs again; let it land before cleanup.
    deadline = time.monotonic() + 30
    while read_secret_service_value(keyring_service_name, "remote-api-key") is None:
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)

    assert str(error.value) == UNAVAILABLE_ON_SAVE
    assert "did not answer within 3 seconds" in error.value.detail


@pytest.mark.keyring
def test_encrypted_file_is_unreadable_on_disk_and_readable_with_the_keyring_key(
    secret_service_keyring: KeyringBackend, keyring_service_name: str, data_dir: Path
) -> None:
    path = data_dir / "modules" / "credentials.bin"
    EncryptedSecretFile(path, SecretStore(keyring_service_name)).set("discord-token", SECRET)

    assert SECRET.encode() not in path.read_bytes()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    reopened = EncryptedSecretFile(path, SecretStore(keyring_service_name))
    assert reopened.read() == {"discord-token": SECRET}
    reopened.delete("discord-token")
    assert EncryptedSecretFile(path, SecretStore(keyring_service_name)).get("discord-token") is None


# -- No keyring at all --------------------------------------------------------------------------------


def test_without_a_keyring_saving_fails_clearly_and_session_only_keeps_the_key_off_disk(
    no_keyring: KeyringBackend, data_dir: Path, tmp_path: Path
) -> None:
    started = time.time() - 1
    store = SecretStore("nexus-test-no-keyring")

    with pytest.raises(KeyringUnavailableError) as error:
        store.set("remote-api-key", SECRET)
    store.set("remote-api-key", SECRET, session_only=True)

    assert str(error.value) == UNAVAILABLE_ON_SAVE
    assert store.get("remote-api-key") == SECRET
    assert store.is_session_only("remote-api-key")
    with pytest.raises(KeyringUnavailableError):
        SecretStore("nexus-test-no-keyring").get("remote-api-key")
    assert files_containing(SECRET, [data_dir, tmp_path, Path.home()], since=started) == []


def test_without_a_keyring_doctor_says_unavailable(no_keyring: KeyringBackend) -> None:
    assert SecretStore().backend_name().startswith("unavailable")


def test_null_keyring_is_refused_rather_than_silently_dropping_the_key() -> None:
    with pytest.raises(KeyringUnavailableError):
        SecretStore(backend=null.Keyring()).set("remote-api-key", SECRET)


def test_plaintext_keyring_from_keyrings_alt_is_refused() -> None:
    keyrings_file = pytest.importorskip("keyrings.alt.file")

    with pytest.raises(KeyringUnavailableError):
        SecretStore(backend=keyrings_file.PlaintextKeyring()).set("remote-api-key", SECRET)


def test_encrypted_file_is_not_written_without_a_keyring(no_keyring: KeyringBackend, data_dir: Path) -> None:
    path = data_dir / "credentials.bin"

    with pytest.raises(KeyringUnavailableError):
        EncryptedSecretFile(path, SecretStore("nexus-test-no-keyring")).set("token", SECRET)

    assert not path.exists()


# -- Logs ---------------------------------------------------------------------------------------------


def test_session_only_key_never_reaches_the_log_file(
    no_keyring: KeyringBackend, log_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "my-private-token-4242"
    SecretStore("nexus-test-no-keyring").set("remote-api-key", secret, session_only=True)
    logger = logging.getLogger("nexus_desktop.test")

    with caplog.at_level(logging.DEBUG):
        logger.info("using key %s for the request", secret)
        logger.warning(f"inline {secret}")
        try:
            raise ValueError(f"server rejected {secret}")
        except ValueError:
            logger.exception("request failed")

    text = log_file.read_text(encoding="utf-8")
    assert "using key *** for the request" in text
    assert "server rejected ***" in text
    assert secret not in text
    assert secret not in caplog.text
    assert all(secret not in record.getMessage() for record in caplog.records)


def test_bearer_headers_and_sk_keys_are_masked_even_when_never_registered(log_file: Path) -> None:
    logger = logging.getLogger("nexus_desktop.test")

    logger.info("headers: {'Authorization': 'Bearer abc.def-unregistered-1'}")
    logger.info("Authorization: Bearer unregistered-token-2")
    logger.info("key was sk-proj-unregistered3333 and api_key=unregistered-4444")

    text = log_file.read_text(encoding="utf-8")
    for leaked in ("unregistered-1", "unregistered-token-2", "unregistered3333", "unregistered-4444"):
        assert leaked not in text
    assert "Authorization: Bearer ***" in text


def test_records_made_without_the_factory_are_masked_by_the_handler_filter(log_file: Path) -> None:
    logs.register_secret("handler-only-secret-77")
    record = logging.makeLogRecord({"name": "x", "levelno": logging.INFO, "msg": "v=handler-only-secret-77"})

    logging.getLogger().handle(record)

    assert "handler-only-secret-77" not in log_file.read_text(encoding="utf-8")
