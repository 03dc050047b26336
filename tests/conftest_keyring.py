"""Pytest plugin: a real Secret Service (gnome-keyring in a D-Bus session) for keyring tests.

Load it from ``tests/conftest.py`` with ``pytest_plugins = ["tests.conftest_keyring"]``.

Tests marked ``@pytest.mark.keyring`` need a running, unlocked Secret Service.  Without one they
are skipped on a developer machine and FAIL when the ``CI`` environment variable is set, so a
CI job that lost its keyring cannot pass silently.  Run them inside a session like::

    HOME=$(mktemp -d) dbus-run-session -- bash -c \
        'echo -n pw | gnome-keyring-daemon --unlock --components=secrets; pytest -m keyring'
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
import uuid
from collections.abc import Iterator

import keyring
import pytest
from keyring.backend import KeyringBackend
from keyring.backends import fail

_PROBE_TIMEOUT_SECONDS = 15.0
_GNOME_INTERNAL_INTERFACE = "org.gnome.keyring.InternalUnsupportedGuiltRiddenInterface"


def _probe_secret_service() -> str | None:
    """None when an unlocked Secret Service answers, else why not."""
    try:
        import secretstorage
        from keyring.backends import SecretService
    except ImportError as error:
        return f"secretstorage is not installed ({error})"
    if not os.environ.get("DBUS_SESSION_BUS_ADDRESS"):
        return "no D-Bus session (DBUS_SESSION_BUS_ADDRESS is not set)"
    try:
        connection = secretstorage.dbus_init()
        with contextlib.closing(connection):
            if not secretstorage.check_service_availability(connection):
                return "no Secret Service on the D-Bus session"
            if secretstorage.get_default_collection(connection).is_locked():
                return "the default keyring collection is locked"
        if SecretService.Keyring.priority <= 0:
            return "keyring does not consider the Secret Service usable"
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    return None


@functools.cache
def secret_service_problem() -> str | None:
    """Why no real Secret Service can be used here, or None when it can (probed once, bounded)."""
    result: list[str | None] = []
    probe = threading.Thread(target=lambda: result.append(_probe_secret_service()), daemon=True)
    probe.start()
    probe.join(_PROBE_TIMEOUT_SECONDS)
    if not result:
        # A D-Bus session whose HOME is missing makes the first call hang for two minutes.
        return f"the Secret Service did not answer within {_PROBE_TIMEOUT_SECONDS:g} s (does HOME exist?)"
    return result[0]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "keyring: needs a real Secret Service (gnome-keyring in a D-Bus session)"
    )


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("keyring") is None:
        return
    problem = secret_service_problem()
    if problem is None:
        return
    message = f"needs a real Secret Service: {problem}"
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI is set, so this is a failure, not a skip)", pytrace=False)
    pytest.skip(message)


@contextlib.contextmanager
def _keyring_set_to(backend: KeyringBackend) -> Iterator[KeyringBackend]:
    previous = keyring.get_keyring()
    keyring.set_keyring(backend)
    try:
        yield backend
    finally:
        keyring.set_keyring(previous)


@pytest.fixture
def secret_service_keyring() -> Iterator[KeyringBackend]:
    """keyring's global backend pinned to the real Secret Service for the test."""
    from keyring.backends import SecretService

    with _keyring_set_to(SecretService.Keyring()) as backend:
        yield backend


@pytest.fixture
def no_keyring() -> Iterator[KeyringBackend]:
    """keyring's global backend set to ``fail``, as on a system without any keyring."""
    with _keyring_set_to(fail.Keyring()) as backend:
        yield backend


@pytest.fixture
def keyring_service_name() -> Iterator[str]:
    """A keyring service name of its own for the test; its items are removed afterwards."""
    service = f"nexus-test-{uuid.uuid4().hex[:12]}"
    yield service
    if secret_service_problem() is None:
        for item in find_secret_service_items(service):
            item.delete()


def find_secret_service_items(service: str, name: str | None = None) -> list:  # type: ignore[type-arg]
    """Items stored for ``service`` (and ``name``) in the default collection, read over D-Bus directly."""
    import secretstorage

    attributes = {"service": service}
    if name is not None:
        attributes["username"] = name
    connection = secretstorage.dbus_init()
    return list(secretstorage.get_default_collection(connection).search_items(attributes))


def read_secret_service_value(service: str, name: str) -> str | None:
    """The secret as gnome-keyring holds it, bypassing keyring and NEXUS entirely."""
    items = find_secret_service_items(service, name)
    return items[0].get_secret().decode() if items else None


@pytest.fixture
def locked_keyring() -> Iterator[KeyringBackend]:
    """A real, locked gnome-keyring collection that keyring's Secret Service backend must use.

    A collection of its own (made with a known password through gnome-keyring's internal
    interface) is locked rather than the default one, so tests after it still find the default
    collection unlocked.  Unlocking needs a prompt; with no display the prompter cannot start.
    """
    import secretstorage
    from keyring.backends import SecretService
    from secretstorage import util

    connection = secretstorage.dbus_init()
    session = util.open_session(connection)
    internal = util.DBusAddressWrapper(util.SS_PATH, _GNOME_INTERNAL_INTERFACE, connection)
    password = uuid.uuid4().hex.encode()
    label = f"nexus-test-locked-{uuid.uuid4().hex[:8]}"
    (path,) = internal.call(
        "CreateWithMasterPassword",
        "a{sv}(oayays)",
        {util.SS_PREFIX + "Collection.Label": ("s", label)},
        util.format_secret(session, password, "text/plain"),
    )
    collection = secretstorage.Collection(connection, path, session=session)
    collection.lock()
    assert collection.is_locked()
    backend = SecretService.Keyring()
    backend.preferred_collection = path  # type: ignore[attr-defined]
    try:
        with _keyring_set_to(backend):
            yield backend
    finally:
        internal.call(
            "UnlockWithMasterPassword", "o(oayays)", path, util.format_secret(session, password, "text/plain")
        )
        collection.delete()
        connection.close()
