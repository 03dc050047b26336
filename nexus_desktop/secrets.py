"""Secrets (API keys, module credentials) in the OS keyring, never in plain text.

``SecretStore`` keeps secrets in the system keyring (Secret Service, macOS Keychain, Windows
Credential Locker).  When the keyring is missing, locked or does not answer, it raises
``KeyringUnavailableError`` and the caller may retry with ``session_only=True``, which keeps the
secret in this process's memory only.  Insecure backends (keyrings.alt's plaintext and
file-based keyrings, the ``fail`` and ``null`` backends) are refused, never used as a fallback.

Keyring calls can block: Secret Service talks over D-Bus and may wait for an unlock prompt.
Every call therefore runs in a daemon thread with a timeout, and UI code must still call these
methods off the Qt thread (``asyncio.to_thread`` or a worker).

Every secret that passes through here is registered with the log redactor.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Literal, TypeVar

import keyring
import keyring.errors
from cryptography.fernet import Fernet, InvalidToken
from keyring.backend import KeyringBackend

from nexus_desktop.logs import register_secret

DEFAULT_SERVICE = "nexus-desktop"
DEFAULT_TIMEOUT_SECONDS = 30.0
KeyringAction = Literal["save", "read", "delete", "check"]
_UNAVAILABLE_MESSAGES: dict[KeyringAction, str] = {
    "save": (
        "The system keyring is locked or missing, so the key was not saved. "
        "Unlock it, or keep the key for this session only."
    ),
    "read": (
        "The system keyring is locked or missing, so the saved key cannot be read. "
        "Unlock it, or enter the key again for this session only."
    ),
    "delete": (
        "The system keyring is locked or missing, so the saved key was not deleted. Unlock it and try again."
    ),
    "check": "The system keyring is locked or missing. Unlock it, or keep keys for this session only.",
}
_INSECURE_MODULE_PREFIXES = ("keyrings.alt", "keyring.backends.fail", "keyring.backends.null")
# Errors raised by the D-Bus stacks under the Secret Service backend; matched by module so
# none of them has to be importable on Windows or macOS.
_BACKEND_ERROR_MODULES = ("secretstorage", "jeepney", "dbus")

T = TypeVar("T")


class KeyringUnavailableError(RuntimeError):
    """The OS keyring is missing, locked, insecure or not answering; nothing was stored."""

    def __init__(self, detail: str = "", *, action: KeyringAction = "save") -> None:
        super().__init__(_UNAVAILABLE_MESSAGES[action])
        self.detail = detail
        self.action = action
        """Why, for logs and ``nexus doctor``; never shown as the user-facing message."""


class SecretFileError(RuntimeError):
    """An encrypted secrets file cannot be read with the key in the keyring."""


def _is_backend_error(error: BaseException) -> bool:
    if isinstance(error, keyring.errors.KeyringError | OSError | TimeoutError):
        return True
    module = type(error).__module__ or ""
    return module.split(".")[0] in _BACKEND_ERROR_MODULES


def _priority(backend: KeyringBackend) -> float:
    try:
        return float(backend.priority)
    except Exception:  # Backends report "not usable here" by raising from priority.
        return -1.0


def _is_secure(backend: KeyringBackend) -> bool:
    module = type(backend).__module__
    if module.startswith(_INSECURE_MODULE_PREFIXES) or type(backend).__name__ == "PlaintextKeyring":
        return False
    return _priority(backend) > 0


def _secure_backend(backend: KeyringBackend) -> KeyringBackend:
    """The backend to use, or ``KeyringUnavailableError`` when only insecure ones are there."""
    # The chainer writes to the first backend that accepts; pick a secure one ourselves so a
    # plaintext keyring further down the chain never receives a secret.
    candidates = list(getattr(backend, "backends", None) or [backend])
    for candidate in sorted(candidates, key=_priority, reverse=True):
        if _is_secure(candidate):
            return candidate
    names = ", ".join(f"{type(c).__module__}.{type(c).__name__}" for c in candidates)
    raise KeyringUnavailableError(f"no secure keyring backend (found: {names})")


class SecretStore:
    """Named secrets under one keyring service, with an in-memory session-only fallback.

    ``backend`` pins a keyring backend (tests); by default the one keyring picks at call time.
    """

    def __init__(
        self,
        service: str = DEFAULT_SERVICE,
        *,
        backend: KeyringBackend | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        self.service = service
        self._backend = backend
        self._timeout = timeout
        self._session: dict[str, str] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> str | None:
        """The secret, or None when none is stored; a session-only value wins over the keyring."""
        with self._lock:
            if name in self._session:
                return self._session[name]
        value = self._call(lambda backend: backend.get_password(self.service, name), action="read")
        if value is not None:
            register_secret(value)
        return value

    def set(self, name: str, value: str, *, session_only: bool = False) -> None:
        """Store ``value`` in the keyring, or in memory only with ``session_only=True``.

        Raises ``KeyringUnavailableError`` when the keyring cannot take it; nothing is written
        anywhere else.
        """
        register_secret(value)
        if session_only:
            with self._lock:
                self._session[name] = value
            return
        self._call(lambda backend: backend.set_password(self.service, name, value))
        with self._lock:
            self._session.pop(name, None)

    def delete(self, name: str) -> None:
        """Forget the secret in memory and in the keyring; deleting a missing secret is fine."""
        with self._lock:
            self._session.pop(name, None)

        def delete_from(backend: KeyringBackend) -> None:
            try:
                backend.delete_password(self.service, name)
            except keyring.errors.PasswordDeleteError:
                pass  # Not stored: already the state the caller wants.

        self._call(delete_from, action="delete")

    def is_session_only(self, name: str) -> bool:
        with self._lock:
            return name in self._session

    def backend_name(self) -> str:
        """Which keyring backend secrets go to, for ``nexus doctor``; never raises."""
        try:
            backend = self._call(lambda backend: backend, action="check")
        except KeyringUnavailableError as error:
            return f"unavailable ({error.detail})"
        return f"{type(backend).__module__}.{type(backend).__name__}"

    def _call(self, operation: Callable[[KeyringBackend], T], *, action: KeyringAction = "save") -> T:
        """Run ``operation`` on the secure backend in a daemon thread, bounded by the timeout.

        A call that does not finish in time is abandoned (the daemon thread cannot block exit).
        """
        outcome: dict[str, object] = {}

        def work() -> None:
            try:
                backend = _secure_backend(self._backend or keyring.get_keyring())
                outcome["value"] = operation(backend)
            except BaseException as error:
                outcome["error"] = error

        worker = threading.Thread(target=work, name="nexus-keyring", daemon=True)
        worker.start()
        worker.join(self._timeout)
        if worker.is_alive():
            raise KeyringUnavailableError(
                f"the keyring did not answer within {self._timeout:g} seconds", action=action
            )
        error = outcome.get("error")
        if isinstance(error, KeyringUnavailableError):
            raise KeyringUnavailableError(error.detail, action=action) from None
        if isinstance(error, BaseException):
            if _is_backend_error(error):
                raise KeyringUnavailableError(f"{type(error).__name__}: {error}", action=action) from error
            raise error
        return outcome["value"]  # type: ignore[return-value]


class EncryptedSecretFile:
    """A small JSON map of secrets in a Fernet-encrypted file whose key lives in the keyring.

    For credentials that do not fit the keyring one by one (e.g. a module's config). The file
    alone is useless: without the keyring entry nothing in it can be read.
    """

    def __init__(self, path: Path, store: SecretStore, *, key_name: str | None = None) -> None:
        self.path = path
        self._store = store
        self._key_name = key_name or f"file-key:{path.name}"

    def read(self) -> dict[str, str]:
        if not self.path.exists():
            return {}
        key = self._store.get(self._key_name)
        if key is None:
            raise SecretFileError(
                f"The key for {self.path.name} is not in the system keyring, so its secrets cannot be "
                "read; delete the file and enter the secrets again."
            )
        try:
            data = json.loads(Fernet(key.encode()).decrypt(self.path.read_bytes()))
        except (InvalidToken, ValueError) as error:
            raise SecretFileError(
                f"{self.path.name} does not match the key in the system keyring; "
                "delete the file and enter the secrets again."
            ) from error
        secrets = {str(name): str(value) for name, value in data.items()}
        for value in secrets.values():
            register_secret(value)
        return secrets

    def write(self, secrets: dict[str, str]) -> None:
        for value in secrets.values():
            register_secret(value)
        token = Fernet(self._master_key().encode()).encrypt(json.dumps(secrets).encode())
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(self.path.name + ".tmp")
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(token)
        os.replace(partial, self.path)

    def get(self, name: str) -> str | None:
        return self.read().get(name)

    def set(self, name: str, value: str) -> None:
        secrets = self.read()
        secrets[name] = value
        self.write(secrets)

    def delete(self, name: str) -> None:
        secrets = self.read()
        if secrets.pop(name, None) is not None:
            self.write(secrets)

    def _master_key(self) -> str:
        key = self._store.get(self._key_name)
        if key is None:
            key = Fernet.generate_key().decode()
            # Never session-only: a file encrypted with a key that dies with the process is lost.
            self._store.set(self._key_name, key)
        return key
