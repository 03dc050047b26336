"""Logging setup with secret redaction.

Every secret the app handles (API keys, module credentials) is registered with
``register_secret`` and then replaced by ``***`` in every log record, whichever handler
writes it.  Redaction runs twice: in the log-record factory, so records are clean before
any handler (pytest's caplog included) sees them, and in a ``RedactingFilter`` on each
handler that ``setup_logging`` manages, for records built without the factory
(``logging.makeLogRecord``).  Patterns that look like keys (``Authorization: Bearer …``,
``sk-…``, ``api_key=…``) are redacted even when nobody registered them.
"""

from __future__ import annotations

import logging
import logging.handlers
import re
import threading
from pathlib import Path

MASK = "***"
LOG_FILE_NAME = "nexus.log"

_secrets: set[str] = set()
_secrets_lock = threading.Lock()
# Longest first, so a secret that contains another one is masked whole.
_secrets_sorted: tuple[str, ...] = ()

_KEY_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?\s*(?:bearer|basic|token)\s+)[^\s\"',;]+"),
        r"\1" + MASK,
    ),
    (re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=-]{4,}"), r"\1" + MASK),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{8,}"), MASK),
    (re.compile(r"(?i)(api[_-]?key[\"']?\s*[:=]\s*[\"']?)[^\s\"'&,;]+"), r"\1" + MASK),
)

_factory_lock = threading.Lock()
_factory_installed = False
_managed_handler_tag = "_nexus_managed"


def register_secret(value: str | bytes | None) -> None:
    """Mask ``value`` in every log record from now on (for the life of the process)."""
    global _secrets_sorted
    if value is None:
        return
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    # Short values are masked too: an unreadable log is better than a leaked password.
    if not text.strip():
        return
    with _secrets_lock:
        if text in _secrets:
            return
        _secrets.add(text)
        _secrets_sorted = tuple(sorted(_secrets, key=len, reverse=True))
    install_record_redaction()


def redact(text: str) -> str:
    """``text`` with every registered secret and every key-looking string replaced by ``***``."""
    for secret in _secrets_sorted:
        if secret in text:
            text = text.replace(secret, MASK)
    for pattern, replacement in _KEY_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _redact_record(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:  # A broken format string: let the handler report it as logging usually does.
        return
    cleaned = redact(message)
    if cleaned != message or record.args:
        record.msg = cleaned
        record.args = None
    if record.exc_info and not record.exc_text:
        # Formatters reuse exc_text when it is set, so the traceback is cleaned once here.
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


class RedactingFilter(logging.Filter):
    """Masks registered secrets and key-looking strings in each record it sees; drops nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        _redact_record(record)
        return True


def install_record_redaction() -> None:
    """Wrap the log-record factory so every record is redacted when it is created."""
    global _factory_installed
    with _factory_lock:
        if _factory_installed:
            return
        previous = logging.getLogRecordFactory()

        def redacting_factory(*args: object, **kwargs: object) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            _redact_record(record)
            return record

        logging.setLogRecordFactory(redacting_factory)
        _factory_installed = True


def setup_logging(log_dir: Path, level: int | str = logging.INFO) -> Path:
    """Log to ``log_dir/nexus.log`` (rotating, 5 × 2 MB) and redact secrets on every root handler.

    Calling it again replaces the file handler it added before.  Returns the log file's path.
    """
    install_record_redaction()
    log_dir.mkdir(parents=True, exist_ok=True)
    log_file = log_dir / LOG_FILE_NAME
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, _managed_handler_tag, False):
            root.removeHandler(handler)
            handler.close()
    file_handler = logging.handlers.RotatingFileHandler(
        log_file, maxBytes=2_000_000, backupCount=5, encoding="utf-8"
    )
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    setattr(file_handler, _managed_handler_tag, True)
    root.addHandler(file_handler)
    root.setLevel(level)
    for handler in root.handlers:
        if not any(isinstance(existing, RedactingFilter) for existing in handler.filters):
            handler.addFilter(RedactingFilter())
    return log_file
