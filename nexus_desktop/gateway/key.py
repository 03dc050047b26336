"""The gateway's bearer key: made on first enable, kept in the OS keyring, never anywhere else.

Keyring calls block (D-Bus, an unlock prompt): call these off the event loop's thread.
"""

from __future__ import annotations

import hmac
import secrets as random

from nexus_desktop.secrets import SecretStore

KEY_NAME = "gateway-api-key"
_PREFIX = "nexus-"


def make_key() -> str:
    """A fresh random key; the prefix tells a user pasting it where it came from."""
    return _PREFIX + random.token_urlsafe(32)


def gateway_key(store: SecretStore) -> str:
    """The stored key, made and stored first when there is none yet.

    Raises ``KeyringUnavailableError`` when the keyring cannot keep it: a key that would die with
    the process would break every app configured with it at the next start, so none is made."""
    key = store.get(KEY_NAME)
    if key:
        return key
    return new_key(store)


def new_key(store: SecretStore) -> str:
    """Replace the key (apps configured with the old one get 401 from now on)."""
    key = make_key()
    store.set(KEY_NAME, key)
    return key


def key_matches(header: str | None, key: str) -> bool:
    """Whether an ``Authorization`` header carries ``Bearer <key>`` (compared in constant time)."""
    if not header or not key:
        return False
    scheme, _, given = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), key.encode())
